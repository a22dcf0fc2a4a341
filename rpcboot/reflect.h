// Compile-time descriptions of user structs, enums and services.
//
// Boost.PFR gives rpcboot the order and types of a struct's fields; it cannot give their names.
// rpcboot-codegen fills that gap: for every struct, enum and service an interface reaches, the
// generated `<stem>.rpcboot.h` specializes the templates below. Codecs and transports read them
// when they are present (for names in error messages and debug protocols, and a struct's fields
// by name) and work on field ids and Boost.PFR alone when they are not.
//
// Everything here is constexpr data: thread-safe, no ownership, no lifetime concerns.
#ifndef RPCBOOT_REFLECT_H_
#define RPCBOOT_REFLECT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace rpcboot {

// Specialized by generated code for each struct. Members:
//   kName        IDL name ("MenuItem")
//   kFullName    package-qualified IDL name ("shop.MenuItem")
//   kFieldNames  std::array<std::string_view, N>
//   kFieldIds    std::array<std::uint16_t, N>: each field's wire id (RPCBOOT_ID, else index + 1)
//   kFieldPointers  std::tuple of pointers to its data members, in declaration order. The
//                codecs reach a described struct's fields through them rather than Boost.PFR,
//                whose field count g++ 12 cannot compile for some structs (an internal compiler
//                error on a default member initializer such as `std::vector<std::string> tags =
//                {"new"};`)
template <class T>
struct StructInfo;

// Specialized by generated code for each enum. Members:
//   kName, kFullName        as for structs
//   kNames, kValues         enumerator names and values, in declaration order
//   kMinValue, kMaxValue    the values a decoder may store without undefined behaviour
template <class E>
struct EnumInfo;

// One method of a service as generated code describes it. `Pointer` is the pure virtual member
// function (`&shop::ShopService::GetShop`); parameter and return types come from it. Never
// noexcept: codegen refuses such methods (a proxy reports a failed call by throwing).
template <auto Pointer>
struct MethodTraits;

namespace internal {
template <class Service, class R, class... Args>
struct MethodSignature {
  using ServiceType = Service;
  using Return = R;
  // Parameters as values: what a server decodes into and a client encodes from.
  using Params = std::tuple<std::remove_cv_t<std::remove_reference_t<Args>>...>;
  // Parameters exactly as declared (const& included): what a proxy's override must take.
  using RawParams = std::tuple<Args...>;
  static constexpr std::size_t kParamCount = sizeof...(Args);
};
}  // namespace internal

template <class Service, class R, class... Args, R (Service::*Pointer)(Args...)>
struct MethodTraits<Pointer> : internal::MethodSignature<Service, R, Args...> {
  static constexpr auto kPointer = Pointer;
};

template <class Service, class R, class... Args, R (Service::*Pointer)(Args...) const>
struct MethodTraits<Pointer> : internal::MethodSignature<Service, R, Args...> {
  static constexpr auto kPointer = Pointer;
};

// Specialized by generated code for each service. Members:
//   kName, kFullName, kMethodCount
//   template <std::size_t I> struct Method: MethodTraits<...> plus kName, kIdempotent,
//     kParamNames, kProtoRequestIsParam (the single struct parameter is the gRPC request
//     message) and kProtoResponseIsReturn (the struct return value is the gRPC response message)
template <class Service>
struct ServiceInfo;

namespace internal {

template <class T, class = void>
struct HasStructInfo : std::false_type {};
template <class T>
struct HasStructInfo<T, std::void_t<decltype(StructInfo<T>::kFieldNames)>> : std::true_type {};

template <class E, class = void>
struct HasEnumInfo : std::false_type {};
template <class E>
struct HasEnumInfo<E, std::void_t<decltype(EnumInfo<E>::kMinValue)>> : std::true_type {};

template <class S, class = void>
struct HasServiceInfo : std::false_type {};
template <class S>
struct HasServiceInfo<S, std::void_t<decltype(ServiceInfo<S>::kMethodCount)>> : std::true_type {};

// The IDL name of a struct, or "" when no generated description is linked in.
template <class T>
constexpr const char* StructName() {
  if constexpr (HasStructInfo<T>::value) {
    return StructInfo<T>::kFullName.data();
  } else {
    return "";
  }
}

template <class T, class = void>
struct HasFieldPointers : std::false_type {};
template <class T>
struct HasFieldPointers<T, std::void_t<decltype(StructInfo<T>::kFieldPointers)>> : std::true_type {
};

template <class T, class = void>
struct HasNonZeroDefaults : std::false_type {};
template <class T>
struct HasNonZeroDefaults<T, std::void_t<decltype(StructInfo<T>::kNonZeroDefaults)>>
    : std::true_type {};

template <class T, class = void>
struct HasFieldIds : std::false_type {};
template <class T>
struct HasFieldIds<T, std::void_t<decltype(StructInfo<T>::kFieldIds)>> : std::true_type {};

// The wire id of field I (0-based): the generated one, else declaration index + 1 (and always
// that for a method's parameters).
template <class T, std::size_t I>
constexpr std::uint16_t FieldId() {
  if constexpr (HasFieldIds<T>::value) {
    return StructInfo<T>::kFieldIds[I];
  } else {
    return static_cast<std::uint16_t>(I + 1);
  }
}

// The name of field I (0-based), or "" when no generated description is linked in. Generated
// names are string literals, so data() is NUL-terminated.
template <class T, std::size_t I>
constexpr const char* FieldName() {
  if constexpr (HasStructInfo<T>::value) {
    return StructInfo<T>::kFieldNames[I].data();
  } else {
    return "";
  }
}

}  // namespace internal
}  // namespace rpcboot

#endif  // RPCBOOT_REFLECT_H_
