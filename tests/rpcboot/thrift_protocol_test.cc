// rpcboot's own Thrift binary and compact code (rpcboot/codec/thrift_protocol.h) against Thrift's
// protocol classes: the same bytes written for the same values, and at the edges of the formats
// the same inputs read or refused, with the same values. codec_fuzz_test compares the two readers
// on mutated and random bytes as well.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/codec/thrift_codec.h"
#include "thrift_reference.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

constexpr WireFormat kFormats[] = {WireFormat::kThriftBinary, WireFormat::kThriftCompact};

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

const char* Name(WireFormat format) {
  return format == WireFormat::kThriftBinary ? "binary" : "compact";
}

template <class T>
void ExpectSameBytes(const T& value) {
  for (WireFormat format : kFormats) {
    std::string ours = ThriftEncode(value, format);
    std::string theirs = testing::ThriftReferenceEncode(value, format);
    EXPECT_EQ(ours, theirs) << Name(format) << "\nrpcboot: " << testing::Hex(ours)
                            << "\nThrift:  " << testing::Hex(theirs);
  }
}

// Reads `bytes` with both readers; both must give `ok`, and the same value when they read.
template <class T>
T ExpectBothRead(const std::string& bytes, WireFormat format, bool ok) {
  T ours{};
  T theirs{};
  absl::Status our_status = ThriftDecode(bytes, format, &ours);
  absl::Status their_status = testing::ThriftReferenceDecode(bytes, format, &theirs);
  EXPECT_EQ(their_status.ok(), ok)
      << Name(format) << " Thrift's reader: " << their_status << " on " << testing::Hex(bytes);
  EXPECT_EQ(our_status.ok(), ok) << Name(format) << " rpcboot's reader: " << our_status << " on "
                                 << testing::Hex(bytes);
  if (our_status.ok() && their_status.ok()) {
    EXPECT_TRUE(testing::DeepEqual(ours, theirs)) << Name(format) << " on " << testing::Hex(bytes);
  }
  return ours;
}

TEST(ThriftProtocol, WritesThriftsBytesForRandomValues) {
  testing::RandomOptions options;
  options.max_unordered = 1;  // an unordered map's order is its own, not the codec's
  testing::Randomizer random(21, options);
  for (int i = 0; i < 300; ++i) {
    ExpectSameBytes(random.Make<rich::Everything>());
    ExpectSameBytes(random.Make<rich::Optionals>());
  }
}

TEST(ThriftProtocol, WritesThriftsBytesAtTheLimitsOfEachType) {
  rich::Scalars s;
  s.flag = true;
  s.i8 = std::numeric_limits<int8_t>::min();
  s.i16 = std::numeric_limits<int16_t>::min();
  s.i32 = std::numeric_limits<int32_t>::min();
  s.i64 = std::numeric_limits<int64_t>::min();
  s.u8 = 255;
  s.u16 = 65535;
  s.u32 = std::numeric_limits<uint32_t>::max();
  s.u64 = std::numeric_limits<uint64_t>::max();
  s.f32 = -0.0f;
  s.f64 = std::numeric_limits<double>::infinity();
  s.text = std::string(300, 'x');  // a length of two varint bytes
  s.blob.assign(20000, 0xab);      // three
  ExpectSameBytes(s);
  s.flag = false;
  s.i64 = std::numeric_limits<int64_t>::max();
  s.f64 = std::nan("");
  ExpectSameBytes(s);

  rich::Containers c;
  c.flags = {true, false, true};                     // bools outside a field header: a byte each
  for (int i = 0; i < 15; ++i) c.ints.push_back(i);  // 15 elements: the size after the header
  c.tiny = {-128, 127};
  ExpectSameBytes(c);
}

// The writers write straight onto the end of the caller's string (a reply's, after its frame
// and message header): what it held stays, and what follows is Thrift's bytes, whatever room
// the string had, for values small and large, one after another.
TEST(ThriftProtocol, AppendsThriftsBytesAfterWhatTheStringHolds) {
  testing::Randomizer random(22);
  rich::Scalars large;
  large.text = std::string(1 << 20, 't');  // one write past any room the string has
  large.blob.assign(70000, 0x5a);
  for (WireFormat format : kFormats) {
    for (std::size_t reserved : {std::size_t{0}, std::size_t{16}, std::size_t{4 << 20}}) {
      std::string out = "head";
      out.reserve(reserved);
      std::string expected = out;
      for (int i = 0; i < 20; ++i) {
        auto value = random.Make<rich::Everything>();
        ThriftEncodeAppend(value, format, &out);
        expected += testing::ThriftReferenceEncode(value, format);
        if (i % 5 == 0) {
          ThriftEncodeAppend(large, format, &out);
          expected += testing::ThriftReferenceEncode(large, format);
        }
      }
      ASSERT_EQ(out.size(), expected.size()) << Name(format) << ", " << reserved << " reserved";
      EXPECT_TRUE(out == expected) << Name(format) << ", " << reserved << " reserved";
    }
  }
}

// Structs nested past the compact writer's inline stack of 64 field ids.
TEST(ThriftProtocol, WritesThriftsBytesForDeepNesting) {
  rich::Everything root;
  rich::Everything* at = &root;
  for (int depth = 0; depth < 100; ++depth) {
    at->id = depth;
    at->end = std::to_string(depth);  // a field after the child: the id deltas come back
    at->children.emplace_back();
    at = &at->children.back();
  }
  at->stamp.seconds = 7;
  ExpectSameBytes(root);
}

TEST(ThriftProtocol, ReadsWhatThriftReadsAtTheEdges) {
  using Ints = std::tuple<int32_t, int32_t>;
  // Compact field ids written whole (zigzag varints) and going backwards: field 2, then 1.
  Ints ints = ExpectBothRead<Ints>(Bytes({0x05, 0x04, 0x0e, 0x05, 0x02, 0x0c, 0x00}),
                                   WireFormat::kThriftCompact, true);
  EXPECT_EQ(ints, Ints(6, 7));
  // A compact i32 in ten varint bytes is read as its low 32 bits; in eleven it is refused.
  ints = ExpectBothRead<Ints>(
      Bytes({0x15, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}),
      WireFormat::kThriftCompact, true);
  EXPECT_EQ(std::get<0>(ints), 2);
  ExpectBothRead<Ints>(
      Bytes({0x15, 0x84, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00}),
      WireFormat::kThriftCompact, false);
  // A field id past i16 in a varint keeps its low 16 bits: 65537 is field 1.
  ints = ExpectBothRead<Ints>(Bytes({0x05, 0x82, 0x80, 0x08, 0x0a, 0x00}),
                              WireFormat::kThriftCompact, true);
  EXPECT_EQ(std::get<0>(ints), 5);

  // list<bool> (Containers.flags, field 7): compact reads 1 as true and any other byte as false;
  // binary reads any byte but 0 as true.
  rich::Containers c = ExpectBothRead<rich::Containers>(Bytes({0x79, 0x31, 0x01, 0x02, 0x07, 0x00}),
                                                        WireFormat::kThriftCompact, true);
  EXPECT_EQ(c.flags, std::vector<bool>({true, false, false}));
  c = ExpectBothRead<rich::Containers>(
      Bytes({0x0f, 0x00, 0x07, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x00}),
      WireFormat::kThriftBinary, true);
  EXPECT_EQ(c.flags, std::vector<bool>({false, true}));

  // An empty binary list may name any type Thrift can size, T_VOID (1) too; 5 is no type.
  ExpectBothRead<rich::Containers>(Bytes({0x0f, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00}),
                                   WireFormat::kThriftBinary, true);
  ExpectBothRead<rich::Containers>(Bytes({0x0f, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00}),
                                   WireFormat::kThriftBinary, false);
  // An empty compact map has no type byte; a list naming compact type 13 is refused.
  ExpectBothRead<rich::Containers>(Bytes({0xcb, 0x00, 0x00}), WireFormat::kThriftCompact, true);
  ExpectBothRead<rich::Containers>(Bytes({0x19, 0x1d, 0x00, 0x00}), WireFormat::kThriftCompact,
                                   false);
  // Negative lengths and counts.
  ExpectBothRead<rich::Containers>(Bytes({0x0f, 0x00, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0x00}),
                                   WireFormat::kThriftBinary, false);
  ExpectBothRead<rich::Containers>(Bytes({0x19, 0xf5, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}),
                                   WireFormat::kThriftCompact, false);
}

// Everything.children (field 6) nested: 63 lists of one struct each make 64 nested structs with
// the top one, which both readers take; one more is past Thrift's recursion limit of 64.
TEST(ThriftProtocol, BothReadersStopAtTheSameDepth) {
  for (int levels : {62, 63, 64}) {
    std::string compact;
    for (int i = 0; i < levels; ++i) compact += Bytes({0x69, 0x1c});
    compact += std::string(levels + 1, '\0');
    ExpectBothRead<rich::Everything>(compact, WireFormat::kThriftCompact, levels <= 63);
    std::string binary;
    for (int i = 0; i < levels; ++i) {
      binary += Bytes({0x0f, 0x00, 0x06, 0x0c, 0x00, 0x00, 0x00, 0x01});
    }
    binary += std::string(levels + 1, '\0');
    ExpectBothRead<rich::Everything>(binary, WireFormat::kThriftBinary, levels <= 63);
  }
}

TEST(ThriftProtocol, EveryCutOfAValueIsRefusedByBoth) {
  testing::Randomizer random(5);
  rich::Everything value = random.Make<rich::Everything>();
  for (WireFormat format : kFormats) {
    std::string bytes = ThriftEncode(value, format);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      ExpectBothRead<rich::Everything>(bytes.substr(0, n), format, false);
    }
    ExpectBothRead<rich::Everything>(bytes, format, true);
  }
}

}  // namespace
}  // namespace rpcboot
