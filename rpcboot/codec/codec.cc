#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"

namespace rpcboot::internal {

const char* ThriftTypeName(TType type) {
  using namespace apache::thrift::protocol;
  switch (type) {
    case T_STOP:
      return "stop";
    case T_BOOL:
      return "bool";
    case T_BYTE:
      return "byte";
    case T_I16:
      return "i16";
    case T_I32:
      return "i32";
    case T_I64:
      return "i64";
    case T_DOUBLE:
      return "double";
    case T_STRING:
      return "string";
    case T_STRUCT:
      return "struct";
    case T_MAP:
      return "map";
    case T_SET:
      return "set";
    case T_LIST:
      return "list";
    default:
      return "unknown type";
  }
}

ThriftWriters& Writers() {
  thread_local ThriftWriters writers;
  return writers;
}

void ThrowThriftDecodeError(std::string message) {
  throw TProtocolException(TProtocolException::INVALID_DATA, std::move(message));
}

void ThrowInvalidTypeByte(int byte) {
  ThrowThriftDecodeError(absl::StrCat("invalid Thrift type byte ", byte));
}

void ThrowInvalidCompactType(int nibble) {
  ThrowThriftDecodeError(absl::StrCat("invalid Thrift compact type ", nibble));
}

namespace {

// Room past what a value needs: half of what the message holds so far (from 256 bytes up to 64
// KiB), so many small values take few resizes, and the few bytes after a long string or list
// (the fields after it, the struct's end) fit without another. The string's capacity grows by
// doubling, so a string kept from an earlier message of this size resizes without allocating.
std::size_t Slack(std::size_t written) {
  return std::clamp<std::size_t>(written / 2, 256, 64 * 1024);
}

}  // namespace

void ThriftWireOutput::Grow(std::size_t n) {
  const auto used = static_cast<std::size_t>(cur_ - begin_);
  out_->resize(used + n + Slack(used - start_));
  begin_ = reinterpret_cast<uint8_t*>(out_->data());
  cur_ = begin_ + used;
  end_ = begin_ + out_->size();
}

void ThriftWireOutput::GrowWith(const void* data, std::size_t size) {
  // resize() zero-fills what it adds: for a 1 MiB string that is a second pass over 1 MiB. The
  // bytes are appended instead (a copy, no fill), and only the slack after them is filled.
  const auto used = static_cast<std::size_t>(cur_ - begin_);
  const std::size_t total = used + size + Slack(used - start_);
  out_->reserve(total);  // may move the bytes so far, as resize would
  out_->resize(used);    // down to what is written: no fill
  out_->append(static_cast<const char*>(data), size);
  out_->resize(total);
  begin_ = reinterpret_cast<uint8_t*>(out_->data());
  cur_ = begin_ + used + size;
  end_ = begin_ + out_->size();
}

void ThriftWireOutput::ThrowTooLong(std::size_t size) {
  throw TProtocolException(TProtocolException::SIZE_LIMIT,
                           absl::StrCat("a value of ", size, " bytes is too long for Thrift"));
}

void ThriftWireInput::ThrowTruncated() { ThrowThriftDecodeError("the input ends inside a value"); }

void ThriftWireInput::ThrowNegative() { ThrowThriftDecodeError("negative length or count"); }

void ThriftWireInput::ThrowDepth() {
  throw TProtocolException(TProtocolException::DEPTH_LIMIT,
                           absl::StrCat("values nested deeper than ", kRecursionLimit));
}

uint64_t ThriftCompactReader::ReadLongVarint() {
  uint64_t value = 0;
  for (int i = 0; i < 10; ++i) {
    const uint8_t byte = TakeByte();
    value |= uint64_t{byte & 0x7fu} << (7 * i);
    if (byte < 0x80) return value;
  }
  ThrowThriftDecodeError("a varint runs over 10 bytes");
}

bool ValidUtf8(const uint8_t* data, std::size_t size) {
  const uint8_t* p = data;
  const uint8_t* end = data + size;
  while (p < end) {
    // ASCII fast path: 32 bytes at a time, then eight.
    while (end - p >= 32) {
      uint64_t words[4];
      std::memcpy(words, p, 32);
      if ((words[0] | words[1] | words[2] | words[3]) & 0x8080808080808080ull) break;
      p += 32;
    }
    while (end - p >= 8) {
      uint64_t word;
      std::memcpy(&word, p, 8);
      if (word & 0x8080808080808080ull) break;
      p += 8;
    }
    if (p >= end) break;
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < n) return false;
    for (std::size_t i = 1; i < n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    p += n;
  }
  return true;
}

std::string& ProtoDeferBuffer(std::size_t size) {
  thread_local std::string buffer;
  // Kept for the next message, unless it grew large for one with many small values.
  if (buffer.capacity() > 64 * 1024 && size <= 64 * 1024) std::string().swap(buffer);
  buffer.resize(size);
  return buffer;
}

void ProtoAppendDeferred(const std::string& buffer, std::size_t written,
                         const std::vector<ProtoSizeCache::Deferred>& deferred, std::size_t size,
                         std::string* out) {
  if (written != buffer.size()) {
    throw std::logic_error(absl::StrCat("rpcboot: proto encode wrote ", written,
                                        " bytes around its large values, sized ", buffer.size()));
  }
  out->reserve(out->size() + size);
  std::size_t from = 0;
  for (const ProtoSizeCache::Deferred& value : deferred) {
    out->append(buffer, from, value.at - from);
    out->append(value.data, value.size);
    from = value.at;
  }
  out->append(buffer, from, written - from);
}

bool AssignValidUtf8(const uint8_t* data, std::size_t size, std::string* out) {
  constexpr std::size_t kPiece = 16 * 1024;
  if (size <= kPiece) {
    if (!ValidUtf8(data, size)) return false;
    out->assign(reinterpret_cast<const char*>(data), size);
    return true;
  }
  out->clear();
  out->reserve(size);
  std::size_t at = 0;
  while (at < size) {
    // A piece ends before a byte that can start a character, so none is split: valid UTF-8 is
    // then valid piece by piece, and a character cut short fails its piece.
    std::size_t end = std::min(size, at + kPiece);
    while (end < size && end > at && (data[end] & 0xC0) == 0x80) --end;
    if (end == at || !ValidUtf8(data + at, end - at)) return false;
    out->append(reinterpret_cast<const char*>(data) + at, end - at);
    at = end;
  }
  return true;
}

absl::Status ProtoDecodeError(const char* type_name, const ProtoReader& reader) {
  std::string where = *type_name != '\0' ? type_name : "message";
  return absl::InvalidArgumentError(
      absl::StrCat("proto: ", where, reader.path, ": ", reader.error));
}

}  // namespace rpcboot::internal
