// rpcboot writes and parses Thrift message headers by hand; they must be byte-identical to
// Thrift's own TCompactProtocol/TBinaryProtocol writeMessageBegin, and the parser must survive
// garbage.
#include "rpcboot/transport/thrift_wire.h"

#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/THeaderTransport.h>

#include <algorithm>
#include <random>

#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/grpc_compression.h"

namespace rpcboot::internal {
namespace {

using apache::thrift::transport::TMemoryBuffer;

std::string ThriftWritten(WireFormat format, const std::string& name, int32_t type, int32_t seqid) {
  auto buffer = std::make_shared<TMemoryBuffer>();
  auto message_type = static_cast<apache::thrift::protocol::TMessageType>(type);
  if (format == WireFormat::kThriftBinary) {
    apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer> p(buffer);
    p.writeMessageBegin(name, message_type, seqid);
  } else {
    apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer> p(buffer);
    p.writeMessageBegin(name, message_type, seqid);
  }
  return buffer->getBufferAsString();
}

TEST(ThriftWire, HeadersMatchThriftsOwnWriter) {
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    for (const std::string& name : {std::string(""), std::string("Echo"),
                                    std::string("rich.RichService:Echo"), std::string(300, 'm')}) {
      for (int32_t type : {kThriftCall, kThriftReply, kThriftException, kThriftOneway}) {
        for (int32_t seqid : {0, 1, 127, 128, 65535, INT32_MAX, -1, INT32_MIN}) {
          std::string expected = ThriftWritten(format, name, type, seqid);
          std::string ours = ThriftMessage(format, name, type, seqid, "body");
          ASSERT_EQ(ours, expected + "body") << name << " " << type << " " << seqid;
          ThriftMessageHeader header;
          ASSERT_TRUE(ParseThriftHeader(ours, &header).ok());
          EXPECT_EQ(header.name, name);
          EXPECT_EQ(header.type, type);
          EXPECT_EQ(header.seqid, seqid);
          EXPECT_EQ(header.format, format);
          EXPECT_EQ(ours.substr(header.body_offset), "body");
        }
      }
    }
  }
}

TEST(ThriftWire, ParserRejectsGarbageWithoutReadingPastTheEnd) {
  std::mt19937_64 rng(5);
  int accepted = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string frame(rng() % 24, '\0');
    for (auto& c : frame) c = static_cast<char>(rng());
    if (i % 2 == 0 && !frame.empty()) frame[0] = static_cast<char>(0x82);
    if (i % 4 == 1 && frame.size() > 1) frame.replace(0, 2, "\x80\x01");
    ThriftMessageHeader header;
    if (ParseThriftHeader(frame, &header).ok()) {
      ++accepted;
      EXPECT_LE(header.body_offset, frame.size());
    }
  }
  ThriftMessageHeader header;
  EXPECT_EQ(ParseThriftHeader("", &header).message(), "empty Thrift frame");
  EXPECT_NE(ParseThriftHeader("GET /", &header).message().find("not a Thrift message"),
            std::string::npos);
  EXPECT_NE(ParseThriftHeader(std::string("\x82\x21\x01\x7f", 4), &header)
                .message()
                .find("name runs past"),
            std::string::npos);
}

// THeader frames as Thrift's own THeaderTransport (libthriftz) writes and reads them.
TEST(ThriftWire, THeaderMatchesThriftsHeaderTransport) {
  using apache::thrift::transport::THeaderTransport;
  for (int16_t protocol_id : {int16_t{0}, int16_t{2}}) {
    for (int headers = 0; headers < 3; ++headers) {
      auto sink = std::make_shared<TMemoryBuffer>();
      THeaderTransport writer(sink);
      writer.setProtocolId(protocol_id);
      writer.setSequenceNumber(77);
      THeaderFrame ours;
      ours.seqid = 77;
      ours.format = protocol_id == 0 ? WireFormat::kThriftBinary : WireFormat::kThriftCompact;
      for (int h = 0; h < headers; ++h) {
        std::string key = h == 0 ? "rpcboot-timeout-ms" : "k" + std::to_string(h);
        std::string value = std::string(h * 5, 'v');
        writer.setHeader(key, value);
        ours.headers.emplace_back(key, value);
      }
      std::string payload = "payload bytes";
      writer.write(reinterpret_cast<const uint8_t*>(payload.data()),
                   static_cast<uint32_t>(payload.size()));
      writer.flush();
      std::string theirs = sink->getBufferAsString();
      std::string mine = WrapTHeader(ours, payload);
      ASSERT_EQ(theirs.substr(4), mine)
          << "protocol " << protocol_id << ", " << headers << " headers";
      EXPECT_EQ(DecodeFrameLength(theirs.data()), mine.size());

      THeaderFrame parsed;
      ASSERT_TRUE(ParseTHeader(mine, &parsed).ok());
      EXPECT_EQ(parsed.seqid, 77);
      EXPECT_EQ(parsed.format, ours.format);
      std::sort(ours.headers.begin(), ours.headers.end());
      EXPECT_EQ(parsed.headers, ours.headers);
      EXPECT_EQ(mine.substr(parsed.payload_offset), payload);
    }
  }
}

// With the zlib transform: what Thrift's THeaderTransport writes compressed, ParseTHeader reads
// (the transform listed, the message left as sent, zlib's format) and the inflated message is
// what was written; WrapTHeader lays out the same frame around zlib's output. (Thrift 0.17's C++
// THeaderTransport cannot read zlib frames back, its own included: its reader aborts. Python's
// reads rpcboot's: tests/interop/thrift_compression_test.py.)
TEST(ThriftWire, THeaderZlibTransformMatchesThriftsHeaderTransport) {
  using apache::thrift::transport::THeaderTransport;
  const std::string payload(5000, 'z');
  auto sink = std::make_shared<TMemoryBuffer>();
  THeaderTransport writer(sink);
  writer.setProtocolId(2);
  writer.setTransform(THeaderTransport::ZLIB_TRANSFORM);
  writer.write(reinterpret_cast<const uint8_t*>(payload.data()),
               static_cast<uint32_t>(payload.size()));
  writer.flush();
  std::string theirs = sink->getBufferAsString().substr(4);
  THeaderFrame parsed;
  ASSERT_TRUE(ParseTHeader(theirs, &parsed).ok());
  EXPECT_EQ(parsed.transforms, std::vector<uint32_t>{kTHeaderZlib});
  auto inflate = [](std::string_view compressed) {
    std::string out;
    EXPECT_TRUE(
        InflateMessage(
            GrpcCodec::kDeflate, compressed, 1 << 20, [](std::size_t) { return true; }, "", &out)
            .ok());
    return out;
  };
  EXPECT_EQ(inflate(std::string_view(theirs).substr(parsed.payload_offset)), payload);

  THeaderFrame ours;
  ours.transforms = {kTHeaderZlib};
  std::string mine = WrapTHeader(ours, payload);
  EXPECT_LT(mine.size(), payload.size() / 10) << "compressed";
  THeaderFrame back;
  ASSERT_TRUE(ParseTHeader(mine, &back).ok());
  EXPECT_EQ(back.transforms, std::vector<uint32_t>{kTHeaderZlib});
  EXPECT_EQ(mine.substr(0, back.payload_offset), theirs.substr(0, parsed.payload_offset))
      << "the same header as THeaderTransport's";
  EXPECT_EQ(inflate(std::string_view(mine).substr(back.payload_offset)), payload);
}

TEST(ThriftWire, THeaderParserRejectsGarbage) {
  std::mt19937_64 rng(6);
  for (int i = 0; i < 50000; ++i) {
    std::string frame(rng() % 40, '\0');
    for (auto& c : frame) c = static_cast<char>(rng() % 4 == 0 ? 0 : rng());
    if (frame.size() >= 2) frame.replace(0, 2, "\x0f\xff");
    THeaderFrame parsed;
    if (ParseTHeader(frame, &parsed).ok()) {
      EXPECT_LE(parsed.payload_offset, frame.size());
    }
  }
  THeaderFrame parsed;
  EXPECT_NE(ParseTHeader(std::string("\x0f\xff\0\0\0\0\0\x01\x00\x10", 10), &parsed)
                .message()
                .find("runs past"),
            std::string::npos);
}

TEST(ThriftWire, THeaderParserCopiesOnlyTheHeadersAsked) {
  THeaderFrame ours;
  ours.seqid = 9;
  ours.headers = {{"a", "1"}, {"noise", "x"}, {"b", "2"}, {"a", "3"}, {"noise", "y"}};
  std::string frame = WrapTHeader(ours, "payload");
  THeaderFrame parsed;
  ASSERT_TRUE(ParseTHeader(frame, &parsed, [](std::string_view key) {
                return key == "a" || key == "b";
              }).ok());
  // Each key asked for once, with its last value; the rest read past, not copied.
  std::sort(parsed.headers.begin(), parsed.headers.end());
  EXPECT_EQ(parsed.headers,
            (std::vector<std::pair<std::string, std::string>>{{"a", "3"}, {"b", "2"}}));
  EXPECT_EQ(frame.substr(parsed.payload_offset), "payload");
  // A header that runs past its section fails the frame whether or not it is asked for.
  std::string cut = frame;
  cut[9] = 1;  // the section is 4 bytes now: the headers in it end early
  EXPECT_FALSE(ParseTHeader(cut, &parsed, [](std::string_view) { return false; }).ok());
}

// With a metadata sink, the headers not asked for that are call metadata are copied in the order
// of the frame (sorted by key, as THeaderTransport writes them; keys lowercased, repeats kept), the
// protocol's and malformed keys left out, and once past kMaxReceivedMetadataBytes no more are
// copied while all are counted.
TEST(ThriftWire, THeaderParserCollectsCallMetadataWithinItsBound) {
  THeaderFrame ours;
  ours.headers = {{"rpcboot-timeout-ms", "50"},
                  {"X-Tenant", "acme"},
                  {"x-tenant", "beta"},
                  {"grpc-timeout", "1S"},
                  {"bad key", "x"},
                  {"authorization", "t"},
                  {"x-blob-bin", std::string("\0\xff", 2)}};
  THeaderFrame parsed;
  THeaderMetadata metadata;
  ASSERT_TRUE(ParseTHeader(
                  WrapTHeader(ours, "m"), &parsed,
                  [](std::string_view key) { return key == "rpcboot-timeout-ms"; }, &metadata)
                  .ok());
  EXPECT_EQ(parsed.headers,
            (std::vector<std::pair<std::string, std::string>>{{"rpcboot-timeout-ms", "50"}}));
  EXPECT_EQ(
      metadata.entries,
      (std::vector<std::pair<std::string, std::string>>{
          {"x-tenant", "acme"}, {"x-blob-bin", std::string("\0\xff", 2)}, {"x-tenant", "beta"}}));
  EXPECT_EQ(metadata.bytes, (8 + 4 + 32) + (8 + 4 + 32) + (10 + 2 + 32));

  ours.headers.clear();
  for (int i = 0; i < 40; ++i)
    ours.headers.emplace_back("x-" + std::to_string(i), std::string(500, 'v'));
  THeaderMetadata many;
  ASSERT_TRUE(ParseTHeader(
                  WrapTHeader(ours, "m"), &parsed, [](std::string_view) { return false; }, &many)
                  .ok());
  EXPECT_GT(many.bytes, kMaxReceivedMetadataBytes);
  EXPECT_EQ(many.bytes, 10 * (3 + 500 + 32) + 30 * (4 + 500 + 32));
  std::size_t kept = 0;
  for (const auto& [key, value] : many.entries) kept += MetadataEntryBytes(key, value);
  EXPECT_LE(kept, kMaxReceivedMetadataBytes);
  EXPECT_EQ(many.entries.size(), 30u) << "copied up to the bound, in order";
}

TEST(ThriftWire, FrameLengthsAreBigEndian) {
  char b[4];
  EncodeFrameLength(0x01020304, b);
  EXPECT_EQ(std::string(b, 4), "\x01\x02\x03\x04");
  EXPECT_EQ(DecodeFrameLength(b), 0x01020304u);
}

}  // namespace
}  // namespace rpcboot::internal
