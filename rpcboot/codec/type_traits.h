// How the codecs classify a C++ field type. The categories follow the type mapping table in
// docs/annotations.md; rpcboot-codegen enforces the same table on headers, so a type that
// reaches a codec through generated code is always one of these.
#ifndef RPCBOOT_CODEC_TYPE_TRAITS_H_
#define RPCBOOT_CODEC_TYPE_TRAITS_H_

#include <array>
#include <boost/pfr/core.hpp>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "rpcboot/reflect.h"

namespace rpcboot::internal {

template <class T>
struct IsVector : std::false_type {};
template <class T, class A>
struct IsVector<std::vector<T, A>> : std::true_type {};

template <class T>
struct IsMap : std::false_type {};
template <class K, class V, class C, class A>
struct IsMap<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct IsMap<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

template <class T>
struct IsStdArray : std::false_type {};
template <class T, std::size_t N>
struct IsStdArray<std::array<T, N>> : std::true_type {};

template <class T>
inline constexpr bool kIsBytes = std::is_same_v<T, std::vector<std::uint8_t>>;
template <class T>
inline constexpr bool kIsList = IsVector<T>::value && !kIsBytes<T>;
template <class T>
inline constexpr bool kIsMap = IsMap<T>::value;
template <class T>
inline constexpr bool kIsOptional = IsOptional<T>::value;
template <class T>
inline constexpr bool kIsString = std::is_same_v<T, std::string>;
template <class T>
inline constexpr bool kIsBool = std::is_same_v<T, bool>;
// Fixed-width integers; plain char is excluded on purpose (use int8_t or std::string).
template <class T>
inline constexpr bool kIsInteger =
    std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
    !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>;
template <class T>
inline constexpr bool kIsFloat = std::is_same_v<T, float> || std::is_same_v<T, double>;
template <class T>
inline constexpr bool kIsEnum = std::is_enum_v<T>;
template <class T>
inline constexpr bool kIsStruct =
    std::is_class_v<T>&& std::is_aggregate_v<T> && !IsStdArray<T>::value;
template <class T>
struct IsTuple : std::false_type {};
template <class... A>
struct IsTuple<std::tuple<A...>> : std::true_type {};
// What the codecs write as a Thrift struct or a proto message: a user struct, or a method's
// argument list (std::tuple, field i + 1 = argument i).
template <class T>
inline constexpr bool kIsMessage = kIsStruct<T> || IsTuple<T>::value;

// A message's fields: a tuple's elements; a struct codegen described through its generated
// StructInfo<T>::kFieldPointers (see rpcboot/reflect.h); any other struct through Boost.PFR.
template <class T>
constexpr std::size_t FieldCount() {
  if constexpr (IsTuple<T>::value) {
    return std::tuple_size_v<T>;
  } else if constexpr (HasFieldPointers<T>::value) {
    return std::tuple_size_v<std::remove_const_t<decltype(StructInfo<T>::kFieldPointers)>>;
  } else {
    return boost::pfr::tuple_size_v<T>;
  }
}

// Field I (0-based) of a message.
template <std::size_t I, class T>
constexpr decltype(auto) FieldRef(T& v) {
  using U = std::remove_const_t<T>;
  if constexpr (IsTuple<U>::value) {
    return std::get<I>(v);
  } else if constexpr (HasFieldPointers<U>::value) {
    return (v.*std::get<I>(StructInfo<U>::kFieldPointers));  // an lvalue: a reference
  } else {
    return boost::pfr::get<I>(v);
  }
}

template <class T>
using FieldIndexes = std::make_index_sequence<FieldCount<T>()>;

// A list or map: proto needs a wrapper message when one sits inside another container.
template <class T>
inline constexpr bool kIsContainer = kIsList<T> || kIsMap<T>;

template <class>
inline constexpr bool kDependentFalse = false;

// Converts a wire integer into the field's C++ type; false when the value does not fit.
template <class To, class From>
constexpr bool FitsIn(From v) {
  if constexpr (std::is_signed_v<From> == std::is_signed_v<To>) {
    return v >= static_cast<From>(std::numeric_limits<To>::min()) &&
           v <= static_cast<From>(std::numeric_limits<To>::max());
  } else if constexpr (std::is_signed_v<From>) {  // signed wire value into unsigned field
    return v >= 0 && static_cast<std::make_unsigned_t<From>>(v) <= std::numeric_limits<To>::max();
  } else {  // unsigned wire value into signed field
    return v <= static_cast<std::make_unsigned_t<To>>(std::numeric_limits<To>::max());
  }
}

// True when `v` may be stored in enum E without undefined behaviour. Generated EnumInfo knows
// the exact range (an enum without a fixed underlying type holds fewer values than its
// underlying type); without it, the underlying type's range is used.
template <class E>
constexpr bool EnumValueFits(std::int64_t v) {
  if constexpr (HasEnumInfo<E>::value) {
    return v >= EnumInfo<E>::kMinValue && v <= EnumInfo<E>::kMaxValue;
  } else {
    return FitsIn<std::underlying_type_t<E>>(v);
  }
}

// Both codecs hold `std::string` fields to UTF-8 (proto3 requires it, and Thrift's Java, Python
// and Go peers decode strings as UTF-8), so a string behaves the same over either wire. Bytes
// belong in std::vector<uint8_t>.
bool ValidUtf8(const uint8_t* data, std::size_t size);
// Replaces *out with the `size` bytes at `data` if they are valid UTF-8; false (with *out holding
// some of them) if not. A long string is checked and copied a piece at a time, each piece copied
// while its check has it in cache: one pass over memory, not two.
bool AssignValidUtf8(const uint8_t* data, std::size_t size, std::string* out);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_CODEC_TYPE_TRAITS_H_
