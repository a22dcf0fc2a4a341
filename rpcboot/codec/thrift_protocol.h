// rpcboot's own Thrift binary and compact wire code: writers that append to a byte buffer and
// readers over a byte range, with the bytes of Thrift 0.17's TBinaryProtocol and
// TCompactProtocol and none of their machinery (no transport object, no virtual calls, no message
// size accounting, no copy of a string through a scratch buffer).
//
// Internal: thrift_codec.h's ThriftEncode/ThriftDecode and the call bindings use these. They
// spell their methods as Thrift's protocols do (writeFieldBegin, readI32, ...) so the codec's
// struct walkers take either; a user who mixes rpcboot structs into Thrift code passes Thrift's
// own protocol to ThriftWriteStruct/ThriftReadStruct instead.
//
// Readers accept what Thrift's readers (with the codec's checks of type bytes) accept, and read
// the same values: tests/rpcboot/thrift_protocol_test.cc feeds both the same mutated bytes. Every
// length and count is bounded by the bytes left before anything is read or allocated; errors are
// thrown as apache::thrift::protocol::TProtocolException, as Thrift's readers throw them.
//
// Thread safety: an object is used by one thread at a time; nothing is shared.
#ifndef RPCBOOT_CODEC_THRIFT_PROTOCOL_H_
#define RPCBOOT_CODEC_THRIFT_PROTOCOL_H_

#include <thrift/protocol/TEnum.h>
#include <thrift/protocol/TProtocolException.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace rpcboot::internal {

using apache::thrift::protocol::TType;

// ---- writing ----

// Where a message is written: straight onto the end of a std::string (a reply's, after its
// frame and message header), which grows as the values need room; no buffer of its own, so a
// large message is neither copied once more nor kept in memory after it is sent. Values are
// written at `cur_` after a check that `n` bytes fit.
class ThriftWireOutput {
 public:
  ThriftWireOutput() = default;
  ThriftWireOutput(const ThriftWireOutput&) = delete;
  ThriftWireOutput& operator=(const ThriftWireOutput&) = delete;

  // Ends the message: *out holds what it held before, then the message.
  void Finish() {
    out_->resize(static_cast<std::size_t>(cur_ - begin_));
    out_ = nullptr;
  }
  // Ends a message that failed: *out holds only what it held before.
  void Abandon() {
    out_->resize(start_);
    out_ = nullptr;
  }

 protected:
  ~ThriftWireOutput() = default;

  // Starts a message on the end of *out.
  void ResetOutput(std::string* out) {
    out_ = out;
    start_ = out->size();
    begin_ = reinterpret_cast<uint8_t*>(out->data());
    cur_ = end_ = begin_ + start_;
  }

  uint8_t* Room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - cur_) < n) Grow(n);
    return cur_;
  }
  // Stores go through a local pointer and cur_ is set once: a store through a uint8_t* may
  // alias cur_ itself, and would make the compiler reload it after every byte.
  uint32_t PutByte(uint8_t b) {
    uint8_t* at = Room(1);
    *at = b;
    cur_ = at + 1;
    return 1;
  }
  uint32_t PutBytes(const void* data, std::size_t size) {
    if (static_cast<std::size_t>(end_ - cur_) < size) {
      GrowWith(data, size);
    } else if (size != 0) {
      std::memcpy(cur_, data, size);
      cur_ += size;
    }
    return static_cast<uint32_t>(size);
  }
  [[noreturn]] static void ThrowTooLong(std::size_t size);

  uint8_t* cur_ = nullptr;

 private:
  void Grow(std::size_t n);
  // Grow, with `data` written as the string grows rather than into room zero-filled first.
  void GrowWith(const void* data, std::size_t size);

  std::string* out_ = nullptr;
  std::size_t start_ = 0;  // out_'s size before the message
  uint8_t* begin_ = nullptr;
  uint8_t* end_ = nullptr;
};

// TBinaryProtocol's bytes (strict: no message header is written here), big-endian.
class ThriftBinaryWriter : public ThriftWireOutput {
 public:
  // Starts a message on the end of *out.
  void Reset(std::string* out) { ResetOutput(out); }

  uint32_t writeStructBegin(const char*) { return 0; }
  uint32_t writeStructEnd() { return 0; }
  uint32_t writeFieldBegin(const char*, TType type, int16_t id) {
    uint8_t* at = Room(3);
    at[0] = static_cast<uint8_t>(type);
    at[1] = static_cast<uint8_t>(static_cast<uint16_t>(id) >> 8);
    at[2] = static_cast<uint8_t>(id);
    cur_ = at + 3;
    return 3;
  }
  uint32_t writeFieldEnd() { return 0; }
  uint32_t writeFieldStop() { return PutByte(apache::thrift::protocol::T_STOP); }
  uint32_t writeListBegin(TType elem, uint32_t size) {
    uint8_t* at = Room(5);
    at[0] = static_cast<uint8_t>(elem);
    PutBig32(at + 1, size);
    cur_ = at + 5;
    return 5;
  }
  uint32_t writeListEnd() { return 0; }
  uint32_t writeMapBegin(TType key, TType value, uint32_t size) {
    uint8_t* at = Room(6);
    at[0] = static_cast<uint8_t>(key);
    at[1] = static_cast<uint8_t>(value);
    PutBig32(at + 2, size);
    cur_ = at + 6;
    return 6;
  }
  uint32_t writeMapEnd() { return 0; }
  uint32_t writeBool(bool v) { return PutByte(v ? 1 : 0); }
  uint32_t writeByte(int8_t v) { return PutByte(static_cast<uint8_t>(v)); }
  uint32_t writeI16(int16_t v) {
    uint8_t* at = Room(2);
    at[0] = static_cast<uint8_t>(static_cast<uint16_t>(v) >> 8);
    at[1] = static_cast<uint8_t>(v);
    cur_ = at + 2;
    return 2;
  }
  uint32_t writeI32(int32_t v) {
    uint8_t* at = Room(4);
    PutBig32(at, static_cast<uint32_t>(v));
    cur_ = at + 4;
    return 4;
  }
  uint32_t writeI64(int64_t v) {
    uint8_t* at = Room(8);
    PutBig64(at, static_cast<uint64_t>(v));
    cur_ = at + 8;
    return 8;
  }
  uint32_t writeDouble(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    return writeI64(static_cast<int64_t>(bits));
  }
  uint32_t writeString(std::string_view s) { return writeBinary(s.data(), s.size()); }
  uint32_t writeBinary(const void* data, std::size_t size) {
    if (size > static_cast<std::size_t>(INT32_MAX)) ThrowTooLong(size);
    uint8_t* at = Room(4);  // the bytes make their own room (PutBytes)
    PutBig32(at, static_cast<uint32_t>(size));
    cur_ = at + 4;
    return 4 + PutBytes(data, size);
  }

 private:
  static void PutBig32(uint8_t* at, uint32_t v) {
    at[0] = static_cast<uint8_t>(v >> 24);
    at[1] = static_cast<uint8_t>(v >> 16);
    at[2] = static_cast<uint8_t>(v >> 8);
    at[3] = static_cast<uint8_t>(v);
  }
  static void PutBig64(uint8_t* at, uint64_t v) {
    PutBig32(at, static_cast<uint32_t>(v >> 32));
    PutBig32(at + 4, static_cast<uint32_t>(v));
  }
};

// The compact protocol's type nibble for a Thrift type (Thrift's TTypeToCType).
constexpr uint8_t ThriftCompactType(TType type) {
  using namespace apache::thrift::protocol;
  switch (type) {
    case T_BOOL:
      return 1;
    case T_BYTE:
      return 3;
    case T_I16:
      return 4;
    case T_I32:
      return 5;
    case T_I64:
      return 6;
    case T_DOUBLE:
      return 7;
    case T_STRING:
      return 8;
    case T_LIST:
      return 9;
    case T_SET:
      return 10;
    case T_MAP:
      return 11;
    case T_STRUCT:
      return 12;
    default:
      return 0;
  }
}

// TCompactProtocol's bytes: zigzag varints, field id deltas, a bool field's value in its header.
class ThriftCompactWriter : public ThriftWireOutput {
 public:
  // Starts a message on the end of *out (an encode that threw may have left a struct open).
  void Reset(std::string* out) {
    ResetOutput(out);
    last_id_ = 0;
    bool_field_pending_ = false;
    depth_ = 0;
    deeper_ids_.clear();
  }

  uint32_t writeStructBegin(const char*) {
    if (depth_ < kInlineDepth) {
      last_ids_[depth_] = last_id_;
    } else {
      deeper_ids_.push_back(last_id_);
    }
    ++depth_;
    last_id_ = 0;
    return 0;
  }
  uint32_t writeStructEnd() {
    --depth_;
    if (depth_ < kInlineDepth) {
      last_id_ = last_ids_[depth_];
    } else {
      last_id_ = deeper_ids_.back();
      deeper_ids_.pop_back();
    }
    return 0;
  }
  uint32_t writeFieldBegin(const char*, TType type, int16_t id) {
    if (type == apache::thrift::protocol::T_BOOL) {  // the value goes in the header
      bool_field_id_ = id;
      bool_field_pending_ = true;
      return 0;
    }
    return FieldHeader(ThriftCompactType(type), id);
  }
  uint32_t writeFieldEnd() { return 0; }
  uint32_t writeFieldStop() { return PutByte(0); }
  uint32_t writeListBegin(TType elem, uint32_t size) {
    const uint8_t type = ThriftCompactType(elem);
    if (size <= 14) return PutByte(static_cast<uint8_t>(size << 4 | type));
    uint8_t* at = Room(6);
    *at = static_cast<uint8_t>(0xf0 | type);
    cur_ = at + 1;
    return 1 + PutVarint(size);
  }
  uint32_t writeListEnd() { return 0; }
  uint32_t writeMapBegin(TType key, TType value, uint32_t size) {
    if (size == 0) return PutByte(0);
    Room(6);
    uint32_t n = PutVarint(size);
    uint8_t* at = cur_;
    *at = static_cast<uint8_t>(ThriftCompactType(key) << 4 | ThriftCompactType(value));
    cur_ = at + 1;
    return n + 1;
  }
  uint32_t writeMapEnd() { return 0; }
  uint32_t writeBool(bool v) {
    const uint8_t type = v ? 1 : 2;
    if (bool_field_pending_) {
      bool_field_pending_ = false;
      return FieldHeader(type, bool_field_id_);
    }
    return PutByte(type);
  }
  uint32_t writeByte(int8_t v) { return PutByte(static_cast<uint8_t>(v)); }
  uint32_t writeI16(int16_t v) { return writeI32(v); }
  uint32_t writeI32(int32_t v) {
    Room(5);
    return PutVarint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
  }
  uint32_t writeI64(int64_t v) {
    Room(10);
    return PutVarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  uint32_t writeDouble(double v) {  // little-endian, as Thrift writes it
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    uint8_t* at = Room(8);
    for (int i = 0; i < 8; ++i) at[i] = static_cast<uint8_t>(bits >> (8 * i));
    cur_ = at + 8;
    return 8;
  }
  uint32_t writeString(std::string_view s) { return writeBinary(s.data(), s.size()); }
  uint32_t writeBinary(const void* data, std::size_t size) {
    if (size > static_cast<std::size_t>(INT32_MAX)) ThrowTooLong(size);
    Room(5);  // the bytes make their own room (PutBytes)
    uint32_t n = PutVarint(static_cast<uint32_t>(size));
    return n + PutBytes(data, size);
  }

 private:
  static constexpr int kInlineDepth = 64;

  uint32_t FieldHeader(uint8_t type, int16_t id) {
    const int delta = id - last_id_;
    last_id_ = id;
    if (delta > 0 && delta <= 15) return PutByte(static_cast<uint8_t>(delta << 4 | type));
    return PutByte(type) + writeI16(id);  // the id whole, after the type
  }
  // Writes a varint where Room has made space for it (5 bytes for 32 bits, 10 for 64).
  template <class U>
  uint32_t PutVarint(U v) {
    uint8_t* const start = cur_;
    uint8_t* at = start;
    while (v >= 0x80) {
      *at++ = static_cast<uint8_t>(v | 0x80);
      v >>= 7;
    }
    *at++ = static_cast<uint8_t>(v);
    cur_ = at;
    return static_cast<uint32_t>(at - start);
  }

  int16_t last_id_ = 0;
  int16_t bool_field_id_ = 0;
  bool bool_field_pending_ = false;
  int depth_ = 0;
  int16_t last_ids_[kInlineDepth] = {};
  std::vector<int16_t> deeper_ids_;  // structs nested past kInlineDepth
};

// ---- reading ----

// A byte range being read, with Thrift's recursion limit (64 nested values).
class ThriftWireInput {
 public:
  static constexpr int kRecursionLimit = 64;

  ThriftWireInput(const uint8_t* data, std::size_t size) : cur_(data), end_(data + size) {}

  std::size_t available_read() const { return static_cast<std::size_t>(end_ - cur_); }

  // As TProtocol counts nesting (TInputRecursionTracker).
  void incrementInputRecursionDepth() {
    if (++depth_ > kRecursionLimit) ThrowDepth();
  }
  void decrementInputRecursionDepth() { --depth_; }

 protected:
  const uint8_t* Take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - cur_) < n) ThrowTruncated();
    const uint8_t* at = cur_;
    cur_ += n;
    return at;
  }
  uint8_t TakeByte() { return *Take(1); }
  // A length or count read from the wire: refused when negative or when even `unit` bytes per
  // element would run past the input.
  uint32_t CheckCount(int32_t count, std::size_t unit) {
    if (count < 0) ThrowNegative();
    if (static_cast<std::size_t>(count) * unit > available_read()) ThrowTruncated();
    return static_cast<uint32_t>(count);
  }
  [[noreturn]] static void ThrowTruncated();
  [[noreturn]] static void ThrowNegative();
  [[noreturn]] static void ThrowDepth();

  const uint8_t* cur_;
  const uint8_t* end_;

 private:
  int depth_ = 0;
};

[[noreturn]] void ThrowInvalidTypeByte(int byte);
[[noreturn]] void ThrowInvalidCompactType(int nibble);

class ThriftBinaryReader : public ThriftWireInput {
 public:
  using ThriftWireInput::ThriftWireInput;

  void readStructBegin(std::string&) {}
  void readStructEnd() {}
  void readFieldBegin(std::string&, TType& type, int16_t& id) {
    const uint8_t byte = TakeByte();
    if (byte > apache::thrift::protocol::T_UTF16) ThrowInvalidTypeByte(byte);
    type = static_cast<TType>(byte);
    if (type == apache::thrift::protocol::T_STOP) {
      id = 0;
      return;
    }
    readI16(id);
  }
  void readFieldEnd() {}
  void readListBegin(TType& elem, uint32_t& size) {
    elem = ContainerType(TakeByte());
    int32_t n;
    readI32(n);
    size = CheckCount(n, 1);
  }
  void readSetBegin(TType& elem, uint32_t& size) { readListBegin(elem, size); }
  void readListEnd() {}
  void readSetEnd() {}
  void readMapBegin(TType& key, TType& value, uint32_t& size) {
    const uint8_t* types = Take(2);
    key = ContainerType(types[0]);
    value = ContainerType(types[1]);
    int32_t n;
    readI32(n);
    size = CheckCount(n, 2);
  }
  void readMapEnd() {}
  void readBool(bool& v) { v = TakeByte() != 0; }
  void readByte(int8_t& v) { v = static_cast<int8_t>(TakeByte()); }
  void readI16(int16_t& v) {
    const uint8_t* at = Take(2);
    v = static_cast<int16_t>(static_cast<uint16_t>(at[0] << 8 | at[1]));
  }
  void readI32(int32_t& v) { v = static_cast<int32_t>(Big32(Take(4))); }
  void readI64(int64_t& v) {
    const uint8_t* at = Take(8);
    v = static_cast<int64_t>(uint64_t{Big32(at)} << 32 | Big32(at + 4));
  }
  void readDouble(double& v) {
    int64_t bits;
    readI64(bits);
    std::memcpy(&v, &bits, 8);
  }
  // The bytes of a string or binary value, left in the input.
  std::string_view ReadBytes() {
    int32_t n;
    readI32(n);
    const uint32_t size = CheckCount(n, 1);
    return std::string_view(reinterpret_cast<const char*>(Take(size)), size);
  }
  void readString(std::string& v) { v.assign(ReadBytes()); }
  void readBinary(std::string& v) { readString(v); }

 private:
  static uint32_t Big32(const uint8_t* at) {
    return uint32_t{at[0]} << 24 | uint32_t{at[1]} << 16 | uint32_t{at[2]} << 8 | at[3];
  }
  // The types a list or map header may name, as Thrift's reader lets them through: each type it
  // can size, T_STOP and T_VOID included (with those only an empty container reads).
  static TType ContainerType(uint8_t byte) {
    constexpr uint32_t kSized = 0xFD5F;  // 0-4, 6, 8, 10-15
    if (byte > 15 || ((kSized >> byte) & 1) == 0) ThrowInvalidTypeByte(byte);
    return static_cast<TType>(byte);
  }
};

class ThriftCompactReader : public ThriftWireInput {
 public:
  using ThriftWireInput::ThriftWireInput;

  void readStructBegin(std::string&) {
    if (struct_depth_ >= kMaxStructDepth) ThrowDepth();  // past the recursion limit anyway
    last_ids_[struct_depth_++] = last_id_;
    last_id_ = 0;
  }
  void readStructEnd() { last_id_ = last_ids_[--struct_depth_]; }
  void readFieldBegin(std::string&, TType& type, int16_t& id) {
    const uint8_t byte = TakeByte();
    const uint8_t compact = byte & 0x0f;
    if (compact == 0) {
      type = apache::thrift::protocol::T_STOP;
      id = 0;
      return;
    }
    const int16_t delta = static_cast<int16_t>(byte >> 4);
    if (delta == 0) {
      readI16(id);
    } else {
      id = static_cast<int16_t>(last_id_ + delta);
    }
    type = TypeOf(compact);
    if (compact == 1 || compact == 2) {  // a bool field: its value is the type
      bool_value_ = compact == 1;
      bool_value_pending_ = true;
    }
    last_id_ = id;
  }
  void readFieldEnd() {}
  void readListBegin(TType& elem, uint32_t& size) {
    const uint8_t byte = TakeByte();
    int32_t n = byte >> 4;
    if (n == 15) n = static_cast<int32_t>(ReadVarint());
    size = CheckCount(n, 1);
    elem = TypeOf(byte & 0x0f);
  }
  void readSetBegin(TType& elem, uint32_t& size) { readListBegin(elem, size); }
  void readListEnd() {}
  void readSetEnd() {}
  void readMapBegin(TType& key, TType& value, uint32_t& size) {
    const auto n = static_cast<int32_t>(ReadVarint());
    const uint8_t types = n != 0 ? TakeByte() : 0;
    size = CheckCount(n, 2);
    key = TypeOf(types >> 4);
    value = TypeOf(types & 0x0f);
  }
  void readMapEnd() {}
  void readBool(bool& v) {
    if (bool_value_pending_) {
      bool_value_pending_ = false;
      v = bool_value_;
      return;
    }
    v = TakeByte() == 1;
  }
  void readByte(int8_t& v) { v = static_cast<int8_t>(TakeByte()); }
  void readI16(int16_t& v) {
    int32_t wide;
    readI32(wide);
    v = static_cast<int16_t>(wide);  // as Thrift's reader: the low 16 bits
  }
  void readI32(int32_t& v) {
    const auto n = static_cast<uint32_t>(ReadVarint());  // as Thrift's: up to 10 bytes, cut
    v = static_cast<int32_t>((n >> 1) ^ (0u - (n & 1)));
  }
  void readI64(int64_t& v) {
    const uint64_t n = ReadVarint();
    v = static_cast<int64_t>((n >> 1) ^ (uint64_t{0} - (n & 1)));
  }
  void readDouble(double& v) {
    const uint8_t* at = Take(8);
    uint64_t bits = 0;
    for (int i = 7; i >= 0; --i) bits = bits << 8 | at[i];
    std::memcpy(&v, &bits, 8);
  }
  std::string_view ReadBytes() {
    const uint32_t size = CheckCount(static_cast<int32_t>(ReadVarint()), 1);
    return std::string_view(reinterpret_cast<const char*>(Take(size)), size);
  }
  void readString(std::string& v) { v.assign(ReadBytes()); }
  void readBinary(std::string& v) { readString(v); }

 private:
  // Every struct read is inside a recursion-depth count, so none nests deeper than this.
  static constexpr int kMaxStructDepth = kRecursionLimit + 2;

  uint64_t ReadVarint() {
    if (end_ - cur_ >= 1 && *cur_ < 0x80) return *cur_++;
    return ReadLongVarint();
  }
  uint64_t ReadLongVarint();
  // The Thrift type of a compact type nibble (Thrift's getTType).
  static TType TypeOf(uint8_t compact) {
    using namespace apache::thrift::protocol;
    static constexpr TType kTypes[13] = {T_STOP,   T_BOOL,   T_BOOL, T_BYTE, T_I16, T_I32,   T_I64,
                                         T_DOUBLE, T_STRING, T_LIST, T_SET,  T_MAP, T_STRUCT};
    if (compact > 12) ThrowInvalidCompactType(compact);
    return kTypes[compact];
  }

  int16_t last_id_ = 0;
  bool bool_value_ = false;
  bool bool_value_pending_ = false;
  int struct_depth_ = 0;
  int16_t last_ids_[kMaxStructDepth];
};

template <class P>
inline constexpr bool kIsThriftWire =
    std::is_base_of_v<ThriftWireOutput, P> || std::is_base_of_v<ThriftWireInput, P>;

}  // namespace rpcboot::internal

#endif  // RPCBOOT_CODEC_THRIFT_PROTOCOL_H_
