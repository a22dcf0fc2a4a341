// rpcboot writes and parses Thrift message headers by hand; they must be byte-identical to
// Thrift's own TCompactProtocol/TBinaryProtocol writeMessageBegin, and the parser must survive
// garbage.
#include "rpcboot/transport/thrift_wire.h"

#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <random>

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

TEST(ThriftWire, FrameLengthsAreBigEndian) {
  char b[4];
  EncodeFrameLength(0x01020304, b);
  EXPECT_EQ(std::string(b, 4), "\x01\x02\x03\x04");
  EXPECT_EQ(DecodeFrameLength(b), 0x01020304u);
}

}  // namespace
}  // namespace rpcboot::internal
