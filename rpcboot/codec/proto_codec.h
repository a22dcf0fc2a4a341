// Protobuf codec: encodes reflected C++ structs as proto3 wire bytes and decodes them, with no
// generated protobuf classes.
//
//   std::string bytes = rpcboot::ProtoEncode(shop);
//   shop::Shop decoded;
//   absl::Status status = rpcboot::ProtoDecode(bytes, &decoded);
//
// The bytes are those protoc's C++ code writes (with deterministic serialization, which only
// orders map entries) for the emitted `.proto` file: field number = RPCBOOT_ID or declaration
// index + 1 (fields go out in declaration order, which is protoc's number order unless RPCBOOT_ID
// numbers them out of order; decoders accept any order), scalars omitted when zero, packed repeated
// scalars, std::optional fields written whenever set, nested structs always written, a list or map
// inside another container or an optional wrapped in a message whose field 1 holds it.
//
// Decoding follows proto3: unknown fields are skipped, missing fields keep their defaults,
// repeated scalars are accepted packed or not, a repeated message field appends. Bad input
// (truncation, a length past the end, invalid UTF-8 in a string, a known field with the wrong
// wire type, a value out of the C++ field's range, nesting deeper than 100) returns
// InvalidArgument naming the field. A length prefix never allocates more than the input holds.
//
// Thread safety: the functions keep no state.
#ifndef RPCBOOT_CODEC_PROTO_CODEC_H_
#define RPCBOOT_CODEC_PROTO_CODEC_H_

#include <array>
#include <boost/pfr/core.hpp>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/codec/type_traits.h"

namespace rpcboot {
namespace internal {

enum ProtoWireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

inline constexpr int kProtoMaxDepth = 100;

constexpr uint32_t ProtoTag(uint32_t number, ProtoWireType wire) { return (number << 3) | wire; }

constexpr std::size_t VarintSize(uint64_t v) {
  // 1 byte per 7 bits, at least 1.
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

inline uint8_t* WriteVarint(uint64_t v, uint8_t* p) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

template <uint32_t kTag>
inline uint8_t* WriteTag(uint8_t* p) {
  if constexpr (kTag < 0x80) {
    *p = static_cast<uint8_t>(kTag);
    return p + 1;
  } else {
    return WriteVarint(kTag, p);
  }
}

// Sizes of nested messages and packed payloads, recorded in pre-order by the sizing pass and
// read back in the same order by the writing pass, so each is computed once.
class ProtoSizeCache {
 public:
  std::size_t Reserve() {
    if (count_ < kInline) return count_++;
    overflow_.push_back(0);
    return count_++;
  }
  void Set(std::size_t slot, std::size_t size) {
    if (slot < kInline) {
      inline_[slot] = size;
    } else {
      overflow_[slot - kInline] = size;
    }
  }
  std::size_t Next() {
    std::size_t slot = read_++;
    return slot < kInline ? inline_[slot] : overflow_[slot - kInline];
  }

  // String and bytes values of kDeferBytes or more. The size pass counts their bytes; a write
  // pass that defers (Defer) leaves them out of the buffer it writes and records where each
  // goes, and ProtoEncodeAppend appends them to the output around what was written: a 1 MiB
  // string is copied once, into memory nothing filled first.
  static constexpr std::size_t kDeferBytes = 16 * 1024;
  struct Deferred {
    std::size_t at;  // offset in the written buffer
    const char* data;
    std::size_t size;
  };
  void CountLarge(std::size_t size) { large_bytes_ += size; }
  std::size_t large_bytes() const { return large_bytes_; }
  void DeferFrom(const uint8_t* base) { defer_base_ = base; }
  // True when the value is left out of the buffer (written by whoever called DeferFrom).
  bool Defer(const uint8_t* at, const char* data, std::size_t size) {
    if (defer_base_ == nullptr || size < kDeferBytes) return false;
    deferred_.push_back({static_cast<std::size_t>(at - defer_base_), data, size});
    return true;
  }
  const std::vector<Deferred>& deferred() const { return deferred_; }

 private:
  static constexpr std::size_t kInline = 32;
  std::size_t inline_[kInline];
  std::vector<std::size_t> overflow_;
  std::size_t count_ = 0;
  std::size_t read_ = 0;
  std::size_t large_bytes_ = 0;
  const uint8_t* defer_base_ = nullptr;
  std::vector<Deferred> deferred_;
};

// Which proto shape a C++ type takes.
template <class T>
inline constexpr bool kProtoPackable = kIsBool<T> || kIsInteger<T> || kIsEnum<T> || kIsFloat<T>;

template <class T>
constexpr ProtoWireType ProtoWireTypeOf() {
  if constexpr (std::is_same_v<T, float>) {
    return kFixed32;
  } else if constexpr (std::is_same_v<T, double>) {
    return kFixed64;
  } else if constexpr (kProtoPackable<T>) {
    return kVarint;
  } else {
    return kLengthDelimited;
  }
}

// Varint payload of a scalar: proto int32 (int8/16/32, enums) sign-extends to 64 bits.
template <class T>
constexpr uint64_t ProtoVarintOf(T v) {
  if constexpr (kIsEnum<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v)));
  } else if constexpr (kIsBool<T>) {
    return v ? 1 : 0;
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(v));
  } else {
    return static_cast<uint64_t>(v);
  }
}

// proto3 omits a singular scalar equal to its default; for floats, protoc compares the bits
// (so -0.0 is written).
template <class T>
inline bool ProtoIsDefault(const T& v) {
  if constexpr (kIsFloat<T>) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    Bits bits;
    std::memcpy(&bits, &v, sizeof bits);
    return bits == 0;
  } else if constexpr (kProtoPackable<T>) {
    return v == T{};
  } else {
    return v.empty();  // strings and bytes
  }
}

template <class T>
std::size_t ProtoElemSize(const T& v, ProtoSizeCache& cache);
template <class T>
uint8_t* ProtoWriteElem(const T& v, ProtoSizeCache& cache, uint8_t* p);
// `write_zero`: write a singular scalar, enum, string or bytes field even when it holds
// proto3's zero (see ProtoMustWriteZero).
template <uint32_t kNumber, class T>
std::size_t ProtoFieldSize(const T& v, ProtoSizeCache& cache, bool write_zero = false);
template <uint32_t kNumber, class T>
uint8_t* ProtoWriteField(const T& v, ProtoSizeCache& cache, uint8_t* p, bool write_zero = false);

// Decoders leave a field absent from the bytes at its default member initializer (contract 2:
// so that a field added later keeps its default when an older peer talks). proto3 omits a zero
// field, so where a struct's default for a field is not zero (`int32_t retries = 3;`), a zero
// it holds is written explicitly, or the receiver would read 3. Every proto3 parser reads an
// explicit zero as zero. Fields whose default is zero (the usual case) are omitted as protoc
// omits them, byte for byte. Lists and maps have no way to say "empty" in proto3: give them
// empty defaults.
template <class T, std::size_t I>
constexpr bool ProtoDefaultKnown() {
  if constexpr (HasNonZeroDefaults<T>::value) {
    return StructInfo<T>::kNonZeroDefaults[I] != 2;
  } else {
    return false;
  }
}

template <class T, std::size_t I>
bool ProtoMustWriteZero() {
  using F = std::decay_t<decltype(FieldRef<I>(std::declval<T&>()))>;
  if constexpr (IsTuple<T>::value || kIsOptional<F> || kIsList<F> || kIsMap<F> || kIsMessage<F>) {
    return false;  // arguments start value-initialized; the others carry presence themselves
  } else if constexpr (ProtoDefaultKnown<T, I>()) {
    return StructInfo<T>::kNonZeroDefaults[I] == 1;  // what codegen read in the header
  } else {
    static const bool kNonZeroDefault = [] {
      const T defaults{};
      return !ProtoIsDefault(FieldRef<I>(defaults));
    }();
    return kNonZeroDefault;
  }
}

template <class T, std::size_t... I>
std::size_t ProtoBodySize(const T& v, ProtoSizeCache& cache, std::index_sequence<I...>) {
  return (std::size_t{0} + ... +
          ProtoFieldSize<FieldId<T, I>()>(FieldRef<I>(v), cache, ProtoMustWriteZero<T, I>()));
}

template <class T, std::size_t... I>
uint8_t* ProtoWriteBody(const T& v, ProtoSizeCache& cache, uint8_t* p, std::index_sequence<I...>) {
  ((p = ProtoWriteField<FieldId<T, I>()>(FieldRef<I>(v), cache, p, ProtoMustWriteZero<T, I>())),
   ...);
  return p;
}

// Size of a value as a repeated element, map key/value or singular payload, without its tag;
// length-delimited values include their length prefix.
template <class T>
std::size_t ProtoElemSize(const T& v, ProtoSizeCache& cache) {
  if constexpr (std::is_same_v<T, float>) {
    return 4;
  } else if constexpr (std::is_same_v<T, double>) {
    return 8;
  } else if constexpr (kProtoPackable<T>) {
    return VarintSize(ProtoVarintOf(v));
  } else if constexpr (kIsString<T> || kIsBytes<T>) {
    if (v.size() >= ProtoSizeCache::kDeferBytes) cache.CountLarge(v.size());
    return VarintSize(v.size()) + v.size();
  } else if constexpr (kIsMessage<T> || kIsContainer<T>) {
    // A struct is a message; a container here is a wrapper message holding it as field 1.
    std::size_t slot = cache.Reserve();
    std::size_t body;
    if constexpr (kIsMessage<T>) {
      body = ProtoBodySize(v, cache, FieldIndexes<T>{});
    } else {
      body = ProtoFieldSize<1>(v, cache);
    }
    cache.Set(slot, body);
    return VarintSize(body) + body;
  } else {
    static_assert(kDependentFalse<T>,
                  "rpcboot: type has no proto mapping (see docs/annotations.md)");
  }
}

template <class T>
uint8_t* ProtoWriteElem(const T& v, ProtoSizeCache& cache, uint8_t* p) {
  if constexpr (kIsFloat<T>) {
    std::memcpy(p, &v, sizeof(T));  // little-endian hosts only, like the rest of rpcboot
    return p + sizeof(T);
  } else if constexpr (kProtoPackable<T>) {
    return WriteVarint(ProtoVarintOf(v), p);
  } else if constexpr (kIsString<T> || kIsBytes<T>) {
    p = WriteVarint(v.size(), p);
    if (cache.Defer(p, reinterpret_cast<const char*>(v.data()), v.size())) return p;
    if (!v.empty()) std::memcpy(p, v.data(), v.size());
    return p + v.size();
  } else if constexpr (kIsMessage<T> || kIsContainer<T>) {
    p = WriteVarint(cache.Next(), p);
    if constexpr (kIsMessage<T>) {
      return ProtoWriteBody(v, cache, p, FieldIndexes<T>{});
    } else {
      return ProtoWriteField<1>(v, cache, p);
    }
  }
}

template <uint32_t kNumber, class T>
std::size_t ProtoFieldSize(const T& v, ProtoSizeCache& cache, bool write_zero) {
  if constexpr (kIsOptional<T>) {
    using E = typename T::value_type;
    if (!v.has_value()) return 0;
    return VarintSize(ProtoTag(kNumber, ProtoWireTypeOf<E>())) + ProtoElemSize(*v, cache);
  } else if constexpr (kIsList<T>) {
    using E = typename T::value_type;
    if (v.empty()) return 0;
    if constexpr (kProtoPackable<E>) {
      std::size_t payload;
      if constexpr (kIsFloat<E>) {
        payload = v.size() * sizeof(E);
      } else if constexpr (kIsBool<E>) {
        payload = v.size();
      } else {
        std::size_t slot = cache.Reserve();
        payload = 0;
        for (const auto& e : v) payload += VarintSize(ProtoVarintOf(e));
        cache.Set(slot, payload);
      }
      return VarintSize(ProtoTag(kNumber, kLengthDelimited)) + VarintSize(payload) + payload;
    } else {
      std::size_t size = VarintSize(ProtoTag(kNumber, kLengthDelimited)) * v.size();
      for (const auto& e : v) size += ProtoElemSize(e, cache);
      return size;
    }
  } else if constexpr (kIsMap<T>) {
    std::size_t size = VarintSize(ProtoTag(kNumber, kLengthDelimited)) * v.size();
    for (const auto& [key, value] : v) {
      std::size_t slot = cache.Reserve();
      // Map entries always carry both key (field 1) and value (field 2).
      std::size_t entry = 2 + ProtoElemSize(key, cache) + ProtoElemSize(value, cache);
      cache.Set(slot, entry);
      size += VarintSize(entry) + entry;
    }
    return size;
  } else if constexpr (kIsMessage<T>) {
    return VarintSize(ProtoTag(kNumber, kLengthDelimited)) + ProtoElemSize(v, cache);
  } else {
    if (!write_zero && ProtoIsDefault(v)) return 0;
    return VarintSize(ProtoTag(kNumber, ProtoWireTypeOf<T>())) + ProtoElemSize(v, cache);
  }
}

template <uint32_t kNumber, class T>
uint8_t* ProtoWriteField(const T& v, ProtoSizeCache& cache, uint8_t* p, bool write_zero) {
  if constexpr (kIsOptional<T>) {
    using E = typename T::value_type;
    if (!v.has_value()) return p;
    p = WriteTag<ProtoTag(kNumber, ProtoWireTypeOf<E>())>(p);
    return ProtoWriteElem(*v, cache, p);
  } else if constexpr (kIsList<T>) {
    using E = typename T::value_type;
    if (v.empty()) return p;
    if constexpr (kProtoPackable<E>) {
      p = WriteTag<ProtoTag(kNumber, kLengthDelimited)>(p);
      if constexpr (kIsFloat<E>) {
        std::size_t bytes = v.size() * sizeof(E);
        p = WriteVarint(bytes, p);
        std::memcpy(p, v.data(), bytes);
        return p + bytes;
      } else if constexpr (kIsBool<E>) {
        p = WriteVarint(v.size(), p);
        for (bool e : v) *p++ = e ? 1 : 0;
        return p;
      } else {
        p = WriteVarint(cache.Next(), p);
        for (const auto& e : v) p = WriteVarint(ProtoVarintOf(e), p);
        return p;
      }
    } else {
      for (const auto& e : v) {
        p = WriteTag<ProtoTag(kNumber, kLengthDelimited)>(p);
        p = ProtoWriteElem(e, cache, p);
      }
      return p;
    }
  } else if constexpr (kIsMap<T>) {
    using K = typename T::key_type;
    using V = typename T::mapped_type;
    for (const auto& [key, value] : v) {
      p = WriteTag<ProtoTag(kNumber, kLengthDelimited)>(p);
      p = WriteVarint(cache.Next(), p);
      p = WriteTag<ProtoTag(1, ProtoWireTypeOf<K>())>(p);
      p = ProtoWriteElem(key, cache, p);
      p = WriteTag<ProtoTag(2, ProtoWireTypeOf<V>())>(p);
      p = ProtoWriteElem(value, cache, p);
    }
    return p;
  } else if constexpr (kIsMessage<T>) {
    p = WriteTag<ProtoTag(kNumber, kLengthDelimited)>(p);
    return ProtoWriteElem(v, cache, p);
  } else {
    if (!write_zero && ProtoIsDefault(v)) return p;
    p = WriteTag<ProtoTag(kNumber, ProtoWireTypeOf<T>())>(p);
    return ProtoWriteElem(v, cache, p);
  }
}

// ---- Decoding ----

struct ProtoReader {
  const uint8_t* p;
  const uint8_t* end;
  int depth = 0;
  std::string error;  // what went wrong, innermost first
  std::string path;   // field path, built while unwinding

  bool Fail(const char* what) {
    error = what;
    return false;
  }
  bool ReadVarint(uint64_t* out) {
    if (p < end && *p < 0x80) {  // the common one-byte case
      *out = *p++;
      return true;
    }
    uint64_t result = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p >= end) return Fail("truncated varint");
      uint8_t b = *p++;
      result |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (b < 0x80) {
        *out = result;
        return true;
      }
    }
    return Fail("varint longer than 10 bytes");
  }
  bool ReadLength(std::size_t* out) {
    uint64_t len;
    if (!ReadVarint(&len)) return false;
    if (len > static_cast<uint64_t>(end - p))
      return Fail("length prefix runs past the end of the input");
    *out = static_cast<std::size_t>(len);
    return true;
  }
  template <class F>
  bool ReadFixed(F* out) {
    if (static_cast<std::size_t>(end - p) < sizeof(F)) return Fail("truncated fixed-width value");
    std::memcpy(out, p, sizeof(F));
    p += sizeof(F);
    return true;
  }
  bool Skip(uint32_t wire) {
    uint64_t ignored;
    std::size_t len;
    switch (wire) {
      case kVarint:
        return ReadVarint(&ignored);
      case kFixed64:
        return static_cast<std::size_t>(end - p) >= 8 ? (p += 8, true) : Fail("truncated fixed64");
      case kFixed32:
        return static_cast<std::size_t>(end - p) >= 4 ? (p += 4, true) : Fail("truncated fixed32");
      case kLengthDelimited:
        if (!ReadLength(&len)) return false;
        p += len;
        return true;
      case 3:
      case 4:
        return Fail("group wire type (deprecated, not proto3)");
      default:
        return Fail("invalid wire type");
    }
  }
};

absl::Status ProtoDecodeError(const char* type_name, const ProtoReader& reader);

template <class T>
bool ProtoReadScalar(ProtoReader& r, T* v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    return r.ReadFixed(v);
  } else {
    uint64_t raw;
    if (!r.ReadVarint(&raw)) return false;
    if constexpr (kIsBool<T>) {
      *v = raw != 0;
    } else if constexpr (kIsEnum<T>) {
      int32_t x = static_cast<int32_t>(raw);  // proto int32 truncation
      if (!EnumValueFits<T>(x)) return r.Fail("enum value out of range");
      *v = static_cast<T>(x);
    } else if constexpr (sizeof(T) == 8) {
      *v = static_cast<T>(raw);
    } else if constexpr (std::is_signed_v<T>) {
      int32_t x = static_cast<int32_t>(raw);
      if (!FitsIn<T>(x)) return r.Fail("value out of range for the field's type");
      *v = static_cast<T>(x);
    } else {
      uint32_t x = static_cast<uint32_t>(raw);
      if (!FitsIn<T>(x)) return r.Fail("value out of range for the field's type");
      *v = static_cast<T>(x);
    }
    return true;
  }
}

template <class T>
bool ProtoReadBody(ProtoReader& r, const uint8_t* end, T* v);
template <class T>
bool ProtoReadField(ProtoReader& r, uint32_t wire, T* v);

// Reads a value whose wire form is already known to match ProtoWireTypeOf<T>.
template <class T>
bool ProtoReadElem(ProtoReader& r, T* v) {
  if constexpr (kProtoPackable<T>) {
    return ProtoReadScalar(r, v);
  } else {
    std::size_t len;
    if (!r.ReadLength(&len)) return false;
    if constexpr (kIsString<T> || kIsBytes<T>) {
      if constexpr (kIsString<T>) {
        if (!AssignValidUtf8(r.p, len, v)) return r.Fail("string field holds invalid UTF-8");
      } else {
        v->assign(reinterpret_cast<const char*>(r.p), reinterpret_cast<const char*>(r.p) + len);
      }
      r.p += len;
      return true;
    } else {
      return ProtoReadBody(r, r.p + len, v);
    }
  }
}

template <class T, std::size_t I>
bool ProtoReadFieldOf(ProtoReader& r, uint32_t wire, T* v);

// A field the bytes hold replaces the value it starts with (the struct's default member
// initializer), whole: a list or map is emptied and a struct or optional made anew at its first
// occurrence in a message, and the occurrences that follow merge into it, as proto3 merges one
// message's repeated and message fields. Without this a list that defaults to {1, 2} read
// {1, 2} from the wire as {1, 2, 1, 2}, and a struct that defaults to {1, 20} read {0, 50},
// whose 0 proto3 leaves off the wire, as {1, 50}.
template <class F>
inline constexpr bool kProtoReplacedWhole = kIsContainer<F> || kIsMessage<F> || kIsOptional<F>;

template <class T>
constexpr std::size_t ProtoFieldSlots() {
  if constexpr (kIsMessage<T>) {
    return FieldCount<T>();
  } else {
    return 0;  // a wrapper message around a container: its field 1 appends
  }
}

template <class T, std::size_t I, class Seen>
void ProtoFirstOccurrence(T* v, Seen& seen) {
  auto& field = FieldRef<I>(*v);
  using F = std::decay_t<decltype(field)>;
  if constexpr (kProtoReplacedWhole<F>) {
    if (seen[I]) return;
    seen[I] = true;
    if constexpr (kIsContainer<F>) {
      field.clear();
    } else if constexpr (kIsOptional<F>) {
      field.reset();
    } else {
      field = F{};
    }
  }
}

template <class T, class Seen, std::size_t... I>
bool ProtoDispatch(ProtoReader& r, uint32_t number, uint32_t wire, T* v, Seen& seen, bool* known,
                   std::index_sequence<I...>) {
  (void)r, (void)number, (void)wire, (void)v, (void)seen;  // unused for an empty message
  bool ok = true;
  *known = ((number == FieldId<T, I>() ? (ProtoFirstOccurrence<T, I>(v, seen),
                                          ok = ProtoReadFieldOf<T, I>(r, wire, v), true)
                                       : false) ||
            ...);
  return ok;
}

// Reads the fields of a message (a struct, or a wrapper whose field 1 is the container) that
// ends at `end`.
template <class T>
bool ProtoReadBody(ProtoReader& r, const uint8_t* end, T* v) {
  if (++r.depth > kProtoMaxDepth) return r.Fail("messages nested deeper than 100");
  const uint8_t* saved_end = r.end;
  r.end = end;
  [[maybe_unused]] std::array<bool, ProtoFieldSlots<T>()> seen{};
  while (r.p < end) {
    uint64_t tag;
    if (!r.ReadVarint(&tag)) return false;
    uint32_t number = static_cast<uint32_t>(tag >> 3);
    uint32_t wire = static_cast<uint32_t>(tag & 7);
    if (number == 0 || tag > 0xFFFFFFFFu) return r.Fail("invalid field number");
    bool known = false;
    if constexpr (kIsMessage<T>) {
      if (!ProtoDispatch(r, number, wire, v, seen, &known, FieldIndexes<T>{})) {
        return false;
      }
    } else {  // wrapper message around a container
      if (number == 1) {
        known = true;
        if (!ProtoReadField(r, wire, v)) return false;
      }
    }
    if (!known && !r.Skip(wire)) return false;
  }
  r.end = saved_end;
  --r.depth;
  return true;
}

template <class K, class V, class M>
bool ProtoReadMapEntry(ProtoReader& r, M* map) {
  std::size_t len;
  if (!r.ReadLength(&len)) return false;
  const uint8_t* end = r.p + len;
  const uint8_t* saved_end = r.end;
  r.end = end;
  K key{};
  V value{};
  while (r.p < end) {
    uint64_t tag;
    if (!r.ReadVarint(&tag)) return false;
    uint32_t number = static_cast<uint32_t>(tag >> 3);
    uint32_t wire = static_cast<uint32_t>(tag & 7);
    if (number == 1) {
      if (wire != ProtoWireTypeOf<K>()) return r.Fail("map key has the wrong wire type");
      if (!ProtoReadElem(r, &key)) return false;
    } else if (number == 2) {
      if (wire != ProtoWireTypeOf<V>()) return r.Fail("map value has the wrong wire type");
      if (!ProtoReadElem(r, &value)) return false;
    } else if (number == 0) {
      return r.Fail("invalid field number");
    } else if (!r.Skip(wire)) {
      return false;
    }
  }
  r.end = saved_end;
  map->insert_or_assign(std::move(key), std::move(value));
  return true;
}

// Reads one occurrence of a field whose C++ type is T, given the wire type on the wire.
template <class T>
bool ProtoReadField(ProtoReader& r, uint32_t wire, T* v) {
  if constexpr (kIsOptional<T>) {
    using E = typename T::value_type;
    if (wire != ProtoWireTypeOf<E>()) return r.Fail("wrong wire type");
    if (!v->has_value()) v->emplace();
    return ProtoReadElem(r, &**v);
  } else if constexpr (kIsList<T>) {
    using E = typename T::value_type;
    if constexpr (kProtoPackable<E>) {
      if (wire == kLengthDelimited) {  // packed
        std::size_t len;
        if (!r.ReadLength(&len)) return false;
        const uint8_t* end = r.p + len;
        if constexpr (kIsFloat<E>) {
          if (len % sizeof(E) != 0)
            return r.Fail("packed fixed-width payload is not a whole number of values");
          std::size_t n = len / sizeof(E);
          if (n > 0) {
            std::size_t old = v->size();
            v->resize(old + n);  // bounded by the input length checked above
            std::memcpy(v->data() + old, r.p, len);
          }
          r.p = end;
          return true;
        } else {
          const uint8_t* saved_end = r.end;
          r.end = end;
          while (r.p < end) {
            E e;
            if (!ProtoReadScalar(r, &e)) return false;
            v->push_back(e);
          }
          r.end = saved_end;
          return true;
        }
      }
      if (wire != ProtoWireTypeOf<E>()) return r.Fail("wrong wire type");
      E e;
      if (!ProtoReadScalar(r, &e)) return false;
      v->push_back(e);
      return true;
    } else {
      if (wire != kLengthDelimited) return r.Fail("wrong wire type");
      return ProtoReadElem(r, &v->emplace_back());  // in place: no move of large elements
    }
  } else if constexpr (kIsMap<T>) {
    if (wire != kLengthDelimited) return r.Fail("wrong wire type");
    return ProtoReadMapEntry<typename T::key_type, typename T::mapped_type>(r, v);
  } else {
    if (wire != ProtoWireTypeOf<T>()) return r.Fail("wrong wire type");
    return ProtoReadElem(r, v);
  }
}

template <class T, std::size_t I>
bool ProtoReadFieldOf(ProtoReader& r, uint32_t wire, T* v) {
  if (ProtoReadField(r, wire, &FieldRef<I>(*v))) return true;
  std::string part = ".";
  const char* name = FieldName<T, I>();
  part += *name != '\0' ? std::string(name) : std::to_string(FieldId<T, I>());
  r.path.insert(0, part);
  return false;
}

}  // namespace internal

// The exact size of ProtoEncode's output.
template <class T>
std::size_t ProtoByteSize(const T& value) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ProtoByteSize takes an aggregate struct or a std::tuple");
  internal::ProtoSizeCache cache;
  return internal::ProtoBodySize(value, cache, internal::FieldIndexes<T>{});
}

namespace internal {

// A buffer of this thread, `size` bytes long, for the parts of a message around its deferred
// values (ProtoSizeCache::Defer).
std::string& ProtoDeferBuffer(std::size_t size);
// Appends to *out the `written` bytes of `buffer` with the deferred values put back in between.
void ProtoAppendDeferred(const std::string& buffer, std::size_t written,
                         const std::vector<ProtoSizeCache::Deferred>& deferred, std::size_t size,
                         std::string* out);

// Writes a message of `size` bytes whose large values `cache` counted: `write(p)` writes the
// rest from p on, the large values are appended to *out where they go.
template <class Write>
void ProtoEncodeAround(std::size_t size, ProtoSizeCache& cache, std::string* out, Write&& write) {
  std::string& buffer = ProtoDeferBuffer(size - cache.large_bytes());
  auto* base = reinterpret_cast<uint8_t*>(buffer.data());
  cache.DeferFrom(base);
  const uint8_t* end = write(base);
  ProtoAppendDeferred(buffer, static_cast<std::size_t>(end - base), cache.deferred(), size, out);
}

}  // namespace internal

// Appends `value`, encoded as a proto3 message body, to `*out`.
template <class T>
void ProtoEncodeAppend(const T& value, std::string* out) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ProtoEncode takes an aggregate struct or a std::tuple");
  internal::ProtoSizeCache cache;
  constexpr auto kFields = internal::FieldIndexes<T>{};
  const std::size_t at = out->size();
  const std::size_t size = internal::ProtoBodySize(value, cache, kFields);
  if (cache.large_bytes() == 0) {
    out->resize(at + size);
    internal::ProtoWriteBody(value, cache, reinterpret_cast<uint8_t*>(out->data() + at), kFields);
    return;
  }
  // resize() zero-fills what it adds, a second pass over every byte of a large value: the rest
  // is written to a buffer instead, and the large values appended to *out between its parts.
  internal::ProtoEncodeAround(size, cache, out, [&](uint8_t* p) {
    return internal::ProtoWriteBody(value, cache, p, kFields);
  });
}

// Encodes `value` as a proto3 message body, replacing `*out`.
template <class T>
void ProtoEncode(const T& value, std::string* out) {
  out->clear();
  ProtoEncodeAppend(value, out);
}

template <class T>
std::string ProtoEncode(const T& value) {
  std::string out;
  ProtoEncode(value, &out);
  return out;
}

// Decodes a proto3 message body into `*out`: a field the bytes hold replaces what `*out` holds
// (a list, map, struct or optional whole), a field they do not hold keeps it (start from a
// default-constructed value for a plain decode: its default member initializers).
template <class T>
absl::Status ProtoDecode(std::string_view bytes, T* out) {
  static_assert(internal::kIsMessage<T>,
                "rpcboot: ProtoDecode takes an aggregate struct or a std::tuple");
  const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  internal::ProtoReader reader{begin, begin + bytes.size()};
  if (internal::ProtoReadBody(reader, reader.end, out)) return absl::OkStatus();
  return internal::ProtoDecodeError(internal::StructName<T>(), reader);
}

}  // namespace rpcboot

#endif  // RPCBOOT_CODEC_PROTO_CODEC_H_
