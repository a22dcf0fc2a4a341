// Thrift codec: writes reflected C++ structs straight to a Thrift TProtocol and reads them back,
// with no generated Thrift classes and no copy through them.
//
//   std::string bytes = rpcboot::ThriftEncode(shop, rpcboot::WireFormat::kThriftCompact);
//   shop::Shop decoded;
//   absl::Status status = rpcboot::ThriftDecode(bytes, rpcboot::WireFormat::kThriftCompact,
//                                               &decoded);
//
// The format is kThriftCompact or kThriftBinary; any other value is read as binary.
//
// The bytes are those thrift-compiler's C++ code writes for the emitted `.thrift` file: field
// id = RPCBOOT_ID or declaration index + 1, fields in declaration order, std::optional fields
// only when set.
// ThriftWriteStruct/ThriftReadStruct take any protocol; pass the concrete protocol type
// (TCompactProtocolT<TMemoryBuffer>, ...) to avoid a virtual call per value.
//
// Reading follows the generated code's rules: unknown field ids are skipped, missing fields keep
// their defaults. It is stricter in one way: a known field id with the wrong wire type is an
// error, not silently skipped. ThriftReadStruct throws apache::thrift::TException on bad input
// (as Thrift's own readers do); ThriftDecode returns a status instead and bounds every length by
// the input's size.
//
// Thread safety: the functions keep no state; a protocol object must not be shared by threads.
#ifndef RPCBOOT_CODEC_THRIFT_CODEC_H_
#define RPCBOOT_CODEC_THRIFT_CODEC_H_

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/protocol/TProtocol.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>

#include <boost/pfr/core.hpp>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/codec/thrift_protocol.h"
#include "rpcboot/codec/type_traits.h"
#include "rpcboot/wire_format.h"

namespace rpcboot {

namespace internal {

using apache::thrift::protocol::TProtocolException;
using apache::thrift::protocol::TType;

template <class T>
constexpr TType ThriftTypeOf() {
  using apache::thrift::protocol::T_BOOL;
  using apache::thrift::protocol::T_BYTE;
  using apache::thrift::protocol::T_DOUBLE;
  using apache::thrift::protocol::T_I16;
  using apache::thrift::protocol::T_I32;
  using apache::thrift::protocol::T_I64;
  using apache::thrift::protocol::T_LIST;
  using apache::thrift::protocol::T_MAP;
  using apache::thrift::protocol::T_STRING;
  using apache::thrift::protocol::T_STRUCT;
  if constexpr (kIsOptional<T>) {
    return ThriftTypeOf<typename T::value_type>();
  } else if constexpr (kIsBool<T>) {
    return T_BOOL;
  } else if constexpr (kIsEnum<T>) {
    return T_I32;
  } else if constexpr (kIsInteger<T>) {
    // Unsigned types widen to the next signed width (lossless); uint64_t keeps its bits in i64.
    constexpr std::size_t kWidth = std::is_signed_v<T> ? sizeof(T) : sizeof(T) * 2;
    if constexpr (kWidth == 1) return T_BYTE;
    if constexpr (kWidth == 2) return T_I16;
    if constexpr (kWidth == 4) return T_I32;
    return T_I64;
  } else if constexpr (kIsFloat<T>) {
    return T_DOUBLE;
  } else if constexpr (kIsString<T> || kIsBytes<T>) {
    return T_STRING;
  } else if constexpr (kIsList<T>) {
    return T_LIST;
  } else if constexpr (kIsMap<T>) {
    return T_MAP;
  } else if constexpr (kIsMessage<T>) {
    return T_STRUCT;
  } else {
    static_assert(kDependentFalse<T>,
                  "rpcboot: type has no Thrift mapping (see docs/annotations.md)");
  }
}

const char* ThriftTypeName(TType type);

[[noreturn]] void ThrowThriftDecodeError(std::string message);

template <class P, class T>
uint32_t ThriftWriteValue(P& p, const T& v);

template <class P, class T, std::size_t... I>
uint32_t ThriftWriteFields(P& p, const T& v, std::index_sequence<I...>) {
  uint32_t n = 0;
  (
      [&] {
        const auto& field = FieldRef<I>(v);
        using F = std::decay_t<decltype(field)>;
        constexpr int16_t kId = static_cast<int16_t>(FieldId<T, I>());
        if constexpr (kIsOptional<F>) {
          if (!field.has_value()) return;
          n += p.writeFieldBegin(FieldName<T, I>(), ThriftTypeOf<F>(), kId);
          n += ThriftWriteValue(p, *field);
        } else {
          n += p.writeFieldBegin(FieldName<T, I>(), ThriftTypeOf<F>(), kId);
          n += ThriftWriteValue(p, field);
        }
        n += p.writeFieldEnd();
      }(),
      ...);
  return n;
}

template <class P, class T>
uint32_t ThriftWriteValue(P& p, const T& v) {
  if constexpr (kIsBool<T>) {
    return p.writeBool(v);
  } else if constexpr (kIsEnum<T>) {
    return p.writeI32(static_cast<int32_t>(v));
  } else if constexpr (kIsInteger<T>) {
    constexpr TType kType = ThriftTypeOf<T>();
    if constexpr (kType == apache::thrift::protocol::T_BYTE)
      return p.writeByte(static_cast<int8_t>(v));
    if constexpr (kType == apache::thrift::protocol::T_I16)
      return p.writeI16(static_cast<int16_t>(v));
    if constexpr (kType == apache::thrift::protocol::T_I32)
      return p.writeI32(static_cast<int32_t>(v));
    if constexpr (kType == apache::thrift::protocol::T_I64)
      return p.writeI64(static_cast<int64_t>(v));
  } else if constexpr (kIsFloat<T>) {
    return p.writeDouble(static_cast<double>(v));
  } else if constexpr (kIsString<T>) {
    return p.writeString(v);
  } else if constexpr (kIsBytes<T>) {
    if constexpr (kIsThriftWire<P>) {
      return p.writeBinary(v.data(), v.size());
    } else {
      return p.writeBinary(std::string(v.begin(), v.end()));  // TProtocol takes std::string only
    }
  } else if constexpr (kIsList<T>) {
    using E = typename T::value_type;
    uint32_t n = p.writeListBegin(ThriftTypeOf<E>(), static_cast<uint32_t>(v.size()));
    for (const auto& e : v) n += ThriftWriteValue(p, static_cast<const E&>(e));
    return n + p.writeListEnd();
  } else if constexpr (kIsMap<T>) {
    using K = typename T::key_type;
    using V = typename T::mapped_type;
    uint32_t n =
        p.writeMapBegin(ThriftTypeOf<K>(), ThriftTypeOf<V>(), static_cast<uint32_t>(v.size()));
    for (const auto& [key, value] : v) {
      n += ThriftWriteValue(p, key);
      n += ThriftWriteValue(p, value);
    }
    return n + p.writeMapEnd();
  } else if constexpr (kIsMessage<T>) {
    uint32_t n = p.writeStructBegin(StructName<T>());
    n += ThriftWriteFields(p, v, FieldIndexes<T>{});
    n += p.writeFieldStop();
    return n + p.writeStructEnd();
  } else {
    static_assert(kDependentFalse<T>,
                  "rpcboot: type has no Thrift mapping (see docs/annotations.md)");
  }
}

template <class P, class T>
void ThriftReadValue(P& p, T& v);

template <class P>
struct IsThriftBinary : std::false_type {};
template <class Transport, class ByteOrder>
struct IsThriftBinary<apache::thrift::protocol::TBinaryProtocolT<Transport, ByteOrder>>
    : std::true_type {};

// The transport a binary protocol reads from (a protected member; read through a member pointer).
template <class Transport, class ByteOrder>
Transport* ThriftBinaryTransport(
    apache::thrift::protocol::TBinaryProtocolT<Transport, ByteOrder>& p) {
  using Base = apache::thrift::protocol::TBinaryProtocolT<Transport, ByteOrder>;
  struct Access : Base {
    static Transport* Get(Base& b) { return b.*(&Access::trans_); }
  };
  return Access::Get(p);
}

// Thrift's binary reader casts whatever byte it reads to TType, which is undefined behaviour for
// bytes the enum cannot hold. Before a binary header is read, its `count` type bytes are peeked
// (buffered transports, which rpcboot always uses, allow it) and checked. The compact reader
// validates type nibbles itself.
template <class P>
void ThriftCheckTypeBytes(P& p, uint32_t count) {
  if constexpr (IsThriftBinary<P>::value) {
    uint32_t len = count;
    const uint8_t* peek = ThriftBinaryTransport(p)->borrow(nullptr, &len);
    if (peek == nullptr) return;  // too short: the read itself will fail cleanly
    for (uint32_t i = 0; i < count; ++i) {
      if (peek[i] > apache::thrift::protocol::T_UTF16) ThrowInvalidTypeByte(peek[i]);
    }
  } else {
    (void)p;
    (void)count;
  }
}

template <class P>
void ThriftReadFieldBegin(P& p, std::string& name, TType& type, int16_t& id) {
  ThriftCheckTypeBytes(p, 1);
  p.readFieldBegin(name, type, id);
}

template <class P>
void ThriftReadListBegin(P& p, TType& elem_type, uint32_t& size) {
  ThriftCheckTypeBytes(p, 1);
  p.readListBegin(elem_type, size);
}

template <class P>
void ThriftReadMapBegin(P& p, TType& key_type, TType& value_type, uint32_t& size) {
  ThriftCheckTypeBytes(p, 2);
  p.readMapBegin(key_type, value_type, size);
}

// Counts one level of nesting on a reader for as long as it lives (Thrift's
// TInputRecursionTracker, for rpcboot's readers as well as Thrift's protocols).
template <class P>
class ThriftNesting {
 public:
  explicit ThriftNesting(P& p) : p_(p) { p_.incrementInputRecursionDepth(); }
  ~ThriftNesting() { p_.decrementInputRecursionDepth(); }
  ThriftNesting(const ThriftNesting&) = delete;
  ThriftNesting& operator=(const ThriftNesting&) = delete;

 private:
  P& p_;
};

// Skips a value of a field this struct does not know (a newer peer's), like Thrift's skip() but
// through the checked header readers above.
template <class P>
void ThriftSkip(P& p, TType type) {
  using namespace apache::thrift::protocol;
  ThriftNesting<P> nesting(p);
  switch (type) {
    case T_BOOL: {
      bool b;
      p.readBool(b);
      return;
    }
    case T_BYTE: {
      int8_t x;
      p.readByte(x);
      return;
    }
    case T_I16: {
      int16_t x;
      p.readI16(x);
      return;
    }
    case T_I32: {
      int32_t x;
      p.readI32(x);
      return;
    }
    case T_I64: {
      int64_t x;
      p.readI64(x);
      return;
    }
    case T_DOUBLE: {
      double x;
      p.readDouble(x);
      return;
    }
    case T_STRING: {
      if constexpr (kIsThriftWire<P>) {
        p.ReadBytes();
      } else {
        std::string x;
        p.readBinary(x);
      }
      return;
    }
    case T_STRUCT: {
      std::string name;
      TType field_type;
      int16_t id;
      p.readStructBegin(name);
      while (true) {
        ThriftReadFieldBegin(p, name, field_type, id);
        if (field_type == T_STOP) break;
        ThriftSkip(p, field_type);
        p.readFieldEnd();
      }
      p.readStructEnd();
      return;
    }
    case T_MAP: {
      TType key_type, value_type;
      uint32_t size;
      ThriftReadMapBegin(p, key_type, value_type, size);
      for (uint32_t i = 0; i < size; ++i) {
        ThriftSkip(p, key_type);
        ThriftSkip(p, value_type);
      }
      p.readMapEnd();
      return;
    }
    case T_SET:
    case T_LIST: {
      TType elem_type;
      uint32_t size;
      ThriftCheckTypeBytes(p, 1);
      if (type == T_SET) {
        p.readSetBegin(elem_type, size);
      } else {
        ThriftReadListBegin(p, elem_type, size);
      }
      for (uint32_t i = 0; i < size; ++i) ThriftSkip(p, elem_type);
      if (type == T_SET) {
        p.readSetEnd();
      } else {
        p.readListEnd();
      }
      return;
    }
    default:
      ThrowThriftDecodeError(absl::StrCat("cannot skip a value of type ", ThriftTypeName(type)));
  }
}

// Reads a wire integer of the field's Thrift width and range-checks narrowing conversions.
template <class P, class T>
void ThriftReadInteger(P& p, T& v) {
  constexpr TType kType = ThriftTypeOf<T>();
  int64_t wide = 0;
  if constexpr (kType == apache::thrift::protocol::T_BYTE) {
    int8_t x;
    p.readByte(x);
    wide = x;
  } else if constexpr (kType == apache::thrift::protocol::T_I16) {
    int16_t x;
    p.readI16(x);
    wide = x;
  } else if constexpr (kType == apache::thrift::protocol::T_I32) {
    int32_t x;
    p.readI32(x);
    wide = x;
  } else {
    int64_t x;
    p.readI64(x);
    wide = x;
  }
  if constexpr (std::is_unsigned_v<T> && sizeof(T) == 8) {  // uint64_t, unsigned long long
    v = static_cast<T>(static_cast<uint64_t>(wide));        // same bits by contract
  } else {
    if (!FitsIn<T>(wide)) {
      ThrowThriftDecodeError(absl::StrCat("value ", wide, " is out of range for the field's type"));
    }
    v = static_cast<T>(wide);
  }
}

template <class P, class T>
void ThriftReadStructFields(P& p, T& v);

template <class P, class T>
void ThriftReadValue(P& p, T& v) {
  using apache::thrift::protocol::TType;
  if constexpr (kIsBool<T>) {
    p.readBool(v);
  } else if constexpr (kIsEnum<T>) {
    int32_t x;
    p.readI32(x);
    if (!EnumValueFits<T>(x)) {
      ThrowThriftDecodeError(absl::StrCat("enum value ", x, " is out of range"));
    }
    v = static_cast<T>(x);
  } else if constexpr (kIsInteger<T>) {
    ThriftReadInteger(p, v);
  } else if constexpr (kIsFloat<T>) {
    double x;
    p.readDouble(x);
    if constexpr (std::is_same_v<T, float>) {
      // The wire's double may not fit a float field: 1e300 would become inf (or undefined).
      if (std::isfinite(x) && std::fabs(x) > std::numeric_limits<float>::max()) {
        ThrowThriftDecodeError(absl::StrCat("value ", x, " is out of range for a float field"));
      }
    }
    v = static_cast<T>(x);
  } else if constexpr (kIsString<T>) {
    bool valid;
    if constexpr (kIsThriftWire<P>) {
      std::string_view bytes = p.ReadBytes();
      valid = AssignValidUtf8(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &v);
    } else {
      p.readString(v);
      valid = ValidUtf8(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    }
    if (!valid) ThrowThriftDecodeError("string field holds invalid UTF-8");
  } else if constexpr (kIsBytes<T>) {
    if constexpr (kIsThriftWire<P>) {
      std::string_view bytes = p.ReadBytes();
      v.assign(bytes.begin(), bytes.end());
    } else {
      std::string tmp;
      p.readBinary(tmp);
      v.assign(tmp.begin(), tmp.end());
    }
  } else if constexpr (kIsList<T>) {
    using E = typename T::value_type;
    TType elem_type;
    uint32_t size;
    ThriftReadListBegin(p, elem_type, size);
    if (size > 0 && elem_type != ThriftTypeOf<E>()) {
      ThrowThriftDecodeError(absl::StrCat("list of ", ThriftTypeName(elem_type),
                                          ", expected list of ",
                                          ThriftTypeName(ThriftTypeOf<E>())));
    }
    v.clear();
    // The size prefix is not trusted for allocation: grow as elements actually arrive.
    v.reserve(std::min<uint32_t>(size, 1024));
    for (uint32_t i = 0; i < size; ++i) {
      if constexpr (kIsBool<E>) {  // std::vector<bool> has no bool& to read into
        bool b;
        p.readBool(b);
        v.push_back(b);
      } else {
        ThriftReadValue(p, v.emplace_back());  // in place: no move of large elements
      }
    }
    p.readListEnd();
  } else if constexpr (kIsMap<T>) {
    using K = typename T::key_type;
    using V = typename T::mapped_type;
    TType key_type, value_type;
    uint32_t size;
    ThriftReadMapBegin(p, key_type, value_type, size);
    if (size > 0 && (key_type != ThriftTypeOf<K>() || value_type != ThriftTypeOf<V>())) {
      ThrowThriftDecodeError(absl::StrCat(
          "map<", ThriftTypeName(key_type), ",", ThriftTypeName(value_type), ">, expected map<",
          ThriftTypeName(ThriftTypeOf<K>()), ",", ThriftTypeName(ThriftTypeOf<V>()), ">"));
    }
    v.clear();
    for (uint32_t i = 0; i < size; ++i) {
      K key{};
      ThriftReadValue(p, key);
      ThriftReadValue(p, v[std::move(key)]);  // in place, as generated code does
    }
    p.readMapEnd();
  } else if constexpr (kIsMessage<T>) {
    ThriftReadStructFields(p, v);
  } else {
    static_assert(kDependentFalse<T>,
                  "rpcboot: type has no Thrift mapping (see docs/annotations.md)");
  }
}

// Decode errors carry the field path as the proto codec writes it: ".stamp.zone: <problem>",
// each level adding its field name (its id when unnamed) on the way out; ThriftDecode puts the
// top-level struct's name in front ("rich.Everything.stamp.zone: <problem>").
template <class T, std::size_t I>
std::string ThriftFieldPath(const char* inner) {
  const char* name = FieldName<T, I>();
  std::string path =
      absl::StrCat(".", *name != '\0' ? std::string(name) : std::to_string(FieldId<T, I>()));
  if (inner[0] != '.') path += ": ";
  return path + inner;
}

template <class P, class T, std::size_t I>
void ThriftReadField(P& p, T& v, TType wire_type) {
  auto& field = FieldRef<I>(v);
  using F = std::decay_t<decltype(field)>;
  try {
    if (wire_type != ThriftTypeOf<F>()) {
      ThrowThriftDecodeError(absl::StrCat("wire type ", ThriftTypeName(wire_type), ", expected ",
                                          ThriftTypeName(ThriftTypeOf<F>())));
    }
    // A field read replaces its default member initializer whole: an optional or a struct starts
    // from its type's defaults (a stock peer leaves off the fields it has not set; a struct that
    // defaults to {1, 20} must not read such a {size: 50} as {1, 50}); lists and maps are emptied
    // as they are read.
    if constexpr (kIsOptional<F>) {
      ThriftReadValue(p, field.emplace());
    } else if constexpr (kIsMessage<F>) {
      field = F{};
      ThriftReadValue(p, field);
    } else {
      ThriftReadValue(p, field);
    }
  } catch (const TProtocolException& e) {
    throw TProtocolException(e.getType(), ThriftFieldPath<T, I>(e.what()));
  }
}

template <class P, class T, std::size_t... I>
bool ThriftDispatchField(P& p, T& v, int16_t id, TType wire_type, std::index_sequence<I...>) {
  (void)p, (void)v, (void)wire_type;  // unused for an empty struct
  return ((id == static_cast<int16_t>(FieldId<T, I>())
               ? (ThriftReadField<P, T, I>(p, v, wire_type), true)
               : false) ||
          ...);
}

// One out-of-line reader per struct type, as generated code has: inlining whole nested types
// into their parents makes large, cache-unfriendly functions.
template <class P, class T>
__attribute__((noinline)) void ThriftReadStructFields(P& p, T& v) {
  ThriftNesting<P> nesting(p);
  std::string name;
  TType wire_type;
  int16_t id;
  p.readStructBegin(name);
  while (true) {
    ThriftReadFieldBegin(p, name, wire_type, id);
    if (wire_type == apache::thrift::protocol::T_STOP) break;
    if (!ThriftDispatchField(p, v, id, wire_type, FieldIndexes<T>{})) {
      ThriftSkip(p, wire_type);  // a newer peer's field
    }
    p.readFieldEnd();
  }
  p.readStructEnd();
}

// Calls fn(reader) with rpcboot's reader of `format` over `bytes` (which must outlive it). Every
// length and count it reads is bounded by the bytes left; Thrift's exceptions pass through.
template <class Fn>
decltype(auto) WithBoundedThriftReader(std::string_view bytes, WireFormat format, Fn&& fn) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (format == WireFormat::kThriftCompact) {
    ThriftCompactReader reader(data, bytes.size());
    return fn(reader);
  }
  ThriftBinaryReader reader(data, bytes.size());
  return fn(reader);
}

template <class T>
absl::Status ThriftDecodeValue(std::string_view bytes, WireFormat format, T* out) {
  try {
    return WithBoundedThriftReader(bytes, format, [out](auto& reader) {
      ThriftReadValue(reader, *out);
      if (reader.available_read() != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("thrift: ", reader.available_read(), " bytes left after the struct"));
      }
      return absl::OkStatus();
    });
  } catch (const apache::thrift::TException& e) {
    if (e.what()[0] != '.') return absl::InvalidArgumentError(absl::StrCat("thrift: ", e.what()));
    const char* name = StructName<T>();
    return absl::InvalidArgumentError(
        absl::StrCat("thrift: ", *name != '\0' ? name : "struct", e.what()));
  }
}

}  // namespace internal

// Writes `value` as a Thrift struct. Returns the bytes written, as Thrift's writers do.
template <class Protocol, class T>
uint32_t ThriftWriteStruct(Protocol& protocol, const T& value) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ThriftWriteStruct takes an aggregate struct or a std::tuple");
  return internal::ThriftWriteValue(protocol, value);
}

// Reads a Thrift struct into `*value` (merging into what it holds, as Thrift's readers do).
// Throws apache::thrift::TException on bad input.
template <class Protocol, class T>
void ThriftReadStruct(Protocol& protocol, T* value) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ThriftReadStruct takes an aggregate struct or a std::tuple");
  internal::ThriftReadValue(protocol, *value);
}

namespace internal {
// Both writers of this thread, reused by its encodes (the compact writer's stack of field ids
// allocates only once). An encode runs no user code, so none starts inside another.
struct ThriftWriters {
  ThriftBinaryWriter binary;
  ThriftCompactWriter compact;
};
ThriftWriters& Writers();

// Runs fn(writer) on this thread's writer of `format`, which appends to `*out`; an encode that
// throws leaves `*out` as it was.
template <class Fn>
void ThriftWriteToString(WireFormat format, std::string* out, Fn&& fn) {
  ThriftWriters& writers = Writers();
  auto run = [out, &fn](auto& writer) {
    writer.Reset(out);
    try {
      fn(writer);
    } catch (...) {
      writer.Abandon();
      throw;
    }
    writer.Finish();
  };
  if (format == WireFormat::kThriftCompact) {
    run(writers.compact);
  } else {
    run(writers.binary);
  }
}
}  // namespace internal

// Appends `value`, encoded with the binary or compact protocol, to `*out`.
template <class T>
void ThriftEncodeAppend(const T& value, WireFormat format, std::string* out) {
  internal::ThriftWriteToString(format, out,
                                [&value](auto& protocol) { ThriftWriteStruct(protocol, value); });
}

// Encodes `value` with the binary or compact protocol into a fresh string.
template <class T>
std::string ThriftEncode(const T& value, WireFormat format) {
  std::string out;
  ThriftEncodeAppend(value, format, &out);
  return out;
}

// Decodes one struct that fills `bytes` exactly. `*out` should be default-constructed.
template <class T>
absl::Status ThriftDecode(std::string_view bytes, WireFormat format, T* out) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ThriftDecode takes an aggregate struct or a std::tuple");
  return internal::ThriftDecodeValue(bytes, format, out);
}

}  // namespace rpcboot

#endif  // RPCBOOT_CODEC_THRIFT_CODEC_H_
