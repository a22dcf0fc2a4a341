#include "rpcboot/transport/thrift_wire.h"

#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/grpc_compression.h"

namespace rpcboot::internal {

using apache::thrift::transport::TMemoryBuffer;
using Compact = apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer>;
using Binary = apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer>;

namespace {

std::shared_ptr<TMemoryBuffer> Observe(std::string_view bytes) {
  auto config =
      std::make_shared<apache::thrift::TConfiguration>(static_cast<int>(bytes.size()) + 1);
  return std::make_shared<TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
      static_cast<uint32_t>(bytes.size()), TMemoryBuffer::OBSERVE, config);
}

}  // namespace

namespace {

bool ReadVarint32(std::string_view in, std::size_t* pos, uint32_t* out) {
  uint32_t result = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*pos >= in.size()) return false;
    auto b = static_cast<uint8_t>(in[(*pos)++]);
    result |= static_cast<uint32_t>(b & 0x7f) << shift;
    if (b < 0x80) {
      *out = result;
      return true;
    }
  }
  return false;
}

void WriteVarint32(uint32_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint32_t ReadBigEndian32(std::string_view in, std::size_t pos) {
  return (uint32_t{static_cast<uint8_t>(in[pos])} << 24) |
         (uint32_t{static_cast<uint8_t>(in[pos + 1])} << 16) |
         (uint32_t{static_cast<uint8_t>(in[pos + 2])} << 8) |
         uint32_t{static_cast<uint8_t>(in[pos + 3])};
}

void WriteBigEndian32(uint32_t v, std::string* out) {
  char b[4];
  EncodeFrameLength(v, b);
  out->append(b, 4);
}

}  // namespace

// Message headers are small fixed layouts, parsed and written by hand: no protocol object per
// call on the hot path. Compact: 0x82, version 1 | type << 5, varint seqid, varint name length,
// name. Binary (strict): 0x80 0x01 0x00 type, name length, name, seqid (big-endian).
absl::Status ParseThriftHeader(std::string_view frame, ThriftMessageHeader* header) {
  if (frame.empty()) return absl::InvalidArgumentError("empty Thrift frame");
  auto first = static_cast<uint8_t>(frame[0]);
  auto bad = [](const char* what) {
    return absl::InvalidArgumentError(absl::StrCat("bad Thrift message header: ", what));
  };
  if (first == 0x82) {
    if (frame.size() < 2) return bad("truncated");
    auto version_type = static_cast<uint8_t>(frame[1]);
    if ((version_type & 0x1f) != 1) return bad("unsupported compact protocol version");
    header->type = version_type >> 5;
    std::size_t pos = 2;
    uint32_t seqid, length;
    if (!ReadVarint32(frame, &pos, &seqid) || !ReadVarint32(frame, &pos, &length))
      return bad("truncated");
    if (length > frame.size() - pos) return bad("name runs past the frame");
    header->seqid = static_cast<int32_t>(seqid);
    header->name.assign(frame.substr(pos, length));
    header->body_offset = pos + length;
    header->format = WireFormat::kThriftCompact;
    return absl::OkStatus();
  }
  if (first == 0x80 && frame.size() > 1 && static_cast<uint8_t>(frame[1]) == 0x01) {
    if (frame.size() < 8) return bad("truncated");
    header->type = static_cast<uint8_t>(frame[3]);
    uint32_t length = ReadBigEndian32(frame, 4);
    if (length > frame.size() - 8 || frame.size() - 8 - length < 4)
      return bad("name runs past the frame");
    header->name.assign(frame.substr(8, length));
    header->seqid = static_cast<int32_t>(ReadBigEndian32(frame, 8 + length));
    header->body_offset = 12 + length;
    header->format = WireFormat::kThriftBinary;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("not a Thrift message (first byte 0x",
                                                 absl::Hex(first),
                                                 "; expected 0x82 compact or 0x80 binary)"));
}

void AppendThriftMessageHeader(WireFormat format, std::string_view name, int32_t type,
                               int32_t seqid, std::string* out) {
  if (format == WireFormat::kThriftBinary) {
    out->append({static_cast<char>(0x80), 0x01, 0x00, static_cast<char>(type)});
    WriteBigEndian32(static_cast<uint32_t>(name.size()), out);
    out->append(name);
    WriteBigEndian32(static_cast<uint32_t>(seqid), out);
  } else {
    out->push_back(static_cast<char>(0x82));
    out->push_back(static_cast<char>(0x01 | (type << 5)));
    WriteVarint32(static_cast<uint32_t>(seqid), out);
    WriteVarint32(static_cast<uint32_t>(name.size()), out);
    out->append(name);
  }
}

std::string ThriftMessage(WireFormat format, std::string_view name, int32_t type, int32_t seqid,
                          std::string_view body) {
  std::string out;
  out.reserve(16 + name.size() + body.size());
  AppendThriftMessageHeader(format, name, type, seqid, &out);
  out.append(body);
  return out;
}

bool IsTHeaderFrame(std::string_view frame) {
  return frame.size() >= 2 && static_cast<uint8_t>(frame[0]) == 0x0F &&
         static_cast<uint8_t>(frame[1]) == 0xFF;
}

namespace {

// A header key as call metadata: lowercased, when it is one.
bool MetadataKey(std::string_view key, std::string* lower) {
  if (key.empty() || key.size() > kMaxReceivedMetadataBytes) return false;
  lower->assign(key);
  for (char& c : *lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return IsCallMetadataKey(*lower);
}

}  // namespace

absl::Status ParseTHeader(std::string_view frame, THeaderFrame* out,
                          bool (*keep)(std::string_view key), THeaderMetadata* metadata) {
  auto bad = [](const char* what) {
    return absl::InvalidArgumentError(absl::StrCat("bad THeader frame: ", what));
  };
  if (!IsTHeaderFrame(frame) || frame.size() < 10) return bad("truncated");
  out->flags =
      static_cast<uint16_t>((static_cast<uint8_t>(frame[2]) << 8) | static_cast<uint8_t>(frame[3]));
  out->seqid = static_cast<int32_t>(ReadBigEndian32(frame, 4));
  std::size_t header_size = 4 * static_cast<std::size_t>((static_cast<uint8_t>(frame[8]) << 8) |
                                                         static_cast<uint8_t>(frame[9]));
  if (header_size > frame.size() - 10) return bad("header runs past the frame");
  std::string_view header = frame.substr(10, header_size);
  std::size_t pos = 0;
  uint32_t protocol_id, transforms;
  if (!ReadVarint32(header, &pos, &protocol_id) || !ReadVarint32(header, &pos, &transforms))
    return bad("truncated");
  if (protocol_id != 0 && protocol_id != 2) return bad("unsupported protocol id");
  out->transforms.clear();
  for (uint32_t i = 0; i < transforms; ++i) {
    uint32_t id;
    if (!ReadVarint32(header, &pos, &id)) return bad("truncated transform list");
    out->transforms.push_back(id);
  }
  out->format = protocol_id == 0 ? WireFormat::kThriftBinary : WireFormat::kThriftCompact;
  out->headers.clear();
  while (pos < header.size()) {
    uint32_t info_id;
    if (!ReadVarint32(header, &pos, &info_id)) return bad("truncated info header");
    if (info_id == 0) break;  // padding
    if (info_id != 1) break;  // an info type this reader does not know: stop, as Thrift does
    uint32_t count;
    if (!ReadVarint32(header, &pos, &count)) return bad("truncated info header");
    for (uint32_t i = 0; i < count; ++i) {
      std::string_view kv[2];
      for (std::string_view& part : kv) {
        uint32_t length;
        if (!ReadVarint32(header, &pos, &length) || length > header.size() - pos)
          return bad("truncated info header");
        part = header.substr(pos, length);
        pos += length;
      }
      if (keep == nullptr) {
        out->headers.emplace_back(kv[0], kv[1]);
        continue;
      }
      if (!keep(kv[0])) {
        std::string key;
        if (metadata == nullptr || !MetadataKey(kv[0], &key)) continue;
        metadata->bytes += MetadataEntryBytes(key, kv[1]);
        if (metadata->bytes <= kMaxReceivedMetadataBytes) {
          metadata->entries.emplace_back(std::move(key), kv[1]);
        }
        continue;
      }
      auto same = std::find_if(out->headers.begin(), out->headers.end(),
                               [&](const auto& h) { return h.first == kv[0]; });
      if (same != out->headers.end()) {
        same->second.assign(kv[1]);
      } else {
        out->headers.emplace_back(kv[0], kv[1]);
      }
    }
  }
  out->payload_offset = 10 + header_size;
  return absl::OkStatus();
}

std::string WrapTHeader(const THeaderFrame& header, std::string_view message) {
  std::string info;
  WriteVarint32(header.format == WireFormat::kThriftBinary ? 0 : 2, &info);
  std::optional<std::string> compressed;
  if (std::find(header.transforms.begin(), header.transforms.end(), kTHeaderZlib) !=
      header.transforms.end()) {
    compressed = ZlibMessage(message);
    // Sent plain, and said so, when zlib has no memory or the bytes do not shrink.
    if (compressed && compressed->size() >= message.size()) compressed.reset();
  }
  if (compressed) {
    WriteVarint32(1, &info);
    WriteVarint32(kTHeaderZlib, &info);
    message = *compressed;
  } else {
    WriteVarint32(0, &info);  // no transforms
  }
  if (!header.headers.empty()) {
    WriteVarint32(1, &info);  // key-value info headers
    WriteVarint32(static_cast<uint32_t>(header.headers.size()), &info);
    auto sorted = header.headers;  // THeaderTransport keeps them in a std::map: sorted by key
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [key, value] : sorted) {
      WriteVarint32(static_cast<uint32_t>(key.size()), &info);
      info.append(key);
      WriteVarint32(static_cast<uint32_t>(value.size()), &info);
      info.append(value);
    }
  }
  info.append(4 - info.size() % 4, '\0');  // THeaderTransport always pads, 1 to 4 bytes
  std::string out;
  out.reserve(10 + info.size() + message.size());
  out.append({0x0F, static_cast<char>(0xFF), static_cast<char>(header.flags >> 8),
              static_cast<char>(header.flags)});
  WriteBigEndian32(static_cast<uint32_t>(header.seqid), &out);
  out.push_back(static_cast<char>((info.size() / 4) >> 8));
  out.push_back(static_cast<char>(info.size() / 4));
  out.append(info);
  out.append(message);
  return out;
}

std::string ThriftApplicationException(WireFormat format, int32_t type, std::string_view message) {
  auto buffer = std::make_shared<TMemoryBuffer>(128);
  apache::thrift::TApplicationException e(
      static_cast<apache::thrift::TApplicationException::TApplicationExceptionType>(type),
      std::string(message));
  if (format == WireFormat::kThriftBinary) {
    Binary p(buffer);
    e.write(&p);
  } else {
    Compact p(buffer);
    e.write(&p);
  }
  return buffer->getBufferAsString();
}

std::pair<int32_t, std::string> ReadThriftApplicationException(WireFormat format,
                                                               std::string_view body) {
  auto buffer = Observe(body);
  auto limit = static_cast<int32_t>(body.size());
  apache::thrift::TApplicationException e;
  try {
    if (format == WireFormat::kThriftBinary) {
      Binary p(buffer, limit, limit, false, true);
      e.read(&p);
    } else {
      Compact p(buffer, limit, limit);
      e.read(&p);
    }
  } catch (const apache::thrift::TException& ex) {
    return {apache::thrift::TApplicationException::UNKNOWN,
            std::string("unreadable exception: ") + ex.what()};
  }
  return {e.getType(), e.what()};
}

void EncodeFrameLength(uint32_t length, char out[4]) {
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
}

uint32_t DecodeFrameLength(const char in[4]) {
  return (uint32_t{static_cast<uint8_t>(in[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(in[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(in[2])} << 8) | uint32_t{static_cast<uint8_t>(in[3])};
}

}  // namespace rpcboot::internal
