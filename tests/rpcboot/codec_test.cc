// The Thrift and protobuf codecs on reflected structs: exact bytes for small cases, round trips
// of the whole mapping table, schema evolution, and every class of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "value_testing.h"

namespace evolution {
// Version 1 and 2 of one message: v2 appended fields, as a newer peer would.
struct V1 {
  int32_t a = 0;
  int32_t later = 42;  // keeps its default when the peer did not send it
};
struct V2 {
  int32_t a = 0;
  int32_t later = 0;
  std::string b;
  std::vector<int32_t> c;
  rich::Point d;
  std::map<std::string, rich::Point> e;
};
struct OnlyA {
  int32_t a = 0;
};
struct AsString {
  std::string a;
};
struct AsUint8 {
  uint8_t a = 0;
};
struct AsInt16 {
  int16_t a = 0;
};
struct AsVector {
  std::vector<int32_t> a;
};
struct AsMap {
  std::map<int32_t, std::string> a;
};
}  // namespace evolution

namespace spellings {
// The integer types a header may spell other than <cstdint>'s: on Linux `long` is int64_t, but
// `long long` and `unsigned long long` are types of their own with the same width.
struct Integers {
  long l = 0;
  long long ll = 0;
  unsigned long ul = 0;
  unsigned long long ull = 0;
  std::size_t size = 0;
  std::map<unsigned long long, long long> by_ull;
  std::vector<unsigned long long> ulls;
};
}  // namespace spellings

namespace rpcboot {
namespace {

using testing::DeepEqual;
using testing::Hex;
using testing::Randomizer;

constexpr WireFormat kThriftProtocols[] = {WireFormat::kThriftBinary, WireFormat::kThriftCompact};

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

// ---- exact bytes ----

TEST(ProtoCodec, EncodesKnownBytes) {
  EXPECT_EQ(ProtoEncode(rich::Point{1, 2}), Bytes({0x08, 0x01, 0x10, 0x02}));
  EXPECT_EQ(ProtoEncode(rich::Point{0, 0}), "") << "proto3 omits zero scalars";
  EXPECT_EQ(ProtoEncode(rich::Point{-1, 0}),
            Bytes({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}))
      << "negative int32 is sign-extended to ten bytes";
  rich::Stamp stamp{300, 0, "utc"};
  EXPECT_EQ(ProtoEncode(stamp), Bytes({0x08, 0xac, 0x02, 0x1a, 0x03, 'u', 't', 'c'}));
  EXPECT_EQ(ProtoByteSize(stamp), ProtoEncode(stamp).size());
}

TEST(ProtoCodec, PacksRepeatedScalarsAndWritesNestedStructs) {
  rich::Containers c;
  c.ints = {1, 2, 300};
  EXPECT_EQ(ProtoEncode(c), Bytes({0x0a, 0x04, 0x01, 0x02, 0xac, 0x02}));
  rich::Everything e;
  std::string bytes = ProtoEncode(e);
  // Nested structs are always present (like a set submessage), empty ones as tag + length 0.
  // Scalars.level defaults to LEVEL_LOW (1), so scalars (field 2) holds field 16 = 1.
  EXPECT_EQ(bytes, Bytes({0x12, 0x03, 0x80, 0x01, 0x01, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00}));
}

TEST(ProtoCodec, WritesOptionalsWhenSetEvenIfZero) {
  rich::Optionals o;
  o.maybe_int = 0;
  o.maybe_list = std::vector<int32_t>{};
  EXPECT_EQ(ProtoEncode(o), Bytes({0x08, 0x00, 0x2a, 0x00}));
}

TEST(ProtoCodec, WritesNegativeZeroLikeProtoc) {
  rich::Scalars s;
  s.level = static_cast<rich::Level>(0);
  s.f64 = -0.0;
  std::string bytes = ProtoEncode(s);
  // f64 (field 11): tag and 8 bytes of -0.0; then level (field 16), a zero written explicitly
  // because Scalars defaults it to LEVEL_LOW (see AZeroWhereTheDefaultIsNotZeroSurvives).
  ASSERT_EQ(bytes.size(), 9u + 3u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), (11 << 3) | 1);
  EXPECT_EQ(Hex(bytes.substr(9)), "80 01 00 ");
}

TEST(ThriftCodec, EncodesKnownCompactAndBinaryBytes) {
  // Compact: field header (delta 1, type i32 = 5), zigzag varint; then stop.
  EXPECT_EQ(ThriftEncode(rich::Point{1, 2}, WireFormat::kThriftCompact),
            Bytes({0x15, 0x02, 0x15, 0x04, 0x00}));
  // Binary: type, id (i16), value (i32 big-endian); then stop.
  EXPECT_EQ(ThriftEncode(rich::Point{1, 2}, WireFormat::kThriftBinary),
            Bytes({0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00,
                   0x02, 0x00}));
  rich::Optionals empty;
  EXPECT_EQ(ThriftEncode(empty, WireFormat::kThriftCompact), Bytes({0x00}))
      << "unset optionals are not written";
}

// Each thread decodes with one reader it reuses: a decode that failed part-way (inside a struct,
// which leaves Thrift's compact reader mid-struct) must not change what the next one reads, and
// each message gets limits of its own size, not the previous one's.
TEST(ThriftCodec, AReusedReaderIsUnchangedByAFailedDecodeAndBoundedByEachMessage) {
  rich::Scalars s;
  s.text = std::string(1000, 'x');
  s.i32 = 7;
  for (WireFormat p : kThriftProtocols) {
    const std::string whole = ThriftEncode(s, p);
    rich::Scalars back;
    ASSERT_TRUE(ThriftDecode(whole, p, &back).ok());
    EXPECT_EQ(back.text, s.text);
    // Cut inside the string: the decode fails (the string claims more than there is).
    rich::Scalars cut;
    absl::Status failed =
        ThriftDecode(std::string_view(whole).substr(0, whole.size() / 2), p, &cut);
    EXPECT_FALSE(failed.ok());
    // The same bytes again decode whole, on the same thread, field for field.
    rich::Scalars again;
    ASSERT_TRUE(ThriftDecode(whole, p, &again).ok());
    EXPECT_EQ(again.text, s.text);
    EXPECT_EQ(again.i32, 7);
    // A short message after the long one is refused, not read past its end.
    std::string small = whole.substr(0, 10);
    rich::Scalars tiny;
    EXPECT_FALSE(ThriftDecode(small, p, &tiny).ok());
  }
}

// A decode inside a decode on one thread (the reader is taken) gets a reader of its own.
TEST(ThriftCodec, ADecodeInsideADecodeReadsItsOwnBytes) {
  const std::string outer = ThriftEncode(rich::Point{1, 2}, WireFormat::kThriftCompact);
  const std::string inner = ThriftEncode(rich::Point{3, 4}, WireFormat::kThriftBinary);
  rich::Point inner_point, outer_point;
  absl::Status status =
      internal::WithBoundedThriftReader(outer, WireFormat::kThriftCompact, [&](auto& protocol) {
        EXPECT_TRUE(ThriftDecode(inner, WireFormat::kThriftBinary, &inner_point).ok());
        ThriftReadStruct(protocol, &outer_point);
        return absl::OkStatus();
      });
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(inner_point.x, 3);
  EXPECT_EQ(inner_point.y, 4);
  EXPECT_EQ(outer_point.x, 1);
  EXPECT_EQ(outer_point.y, 2);
}

TEST(ThriftCodec, WidensUnsignedTypes) {
  rich::Scalars s;
  s.u8 = 255;
  s.u64 = std::numeric_limits<uint64_t>::max();
  for (WireFormat p : kThriftProtocols) {
    rich::Scalars back;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(s, p), p, &back).ok());
    EXPECT_EQ(back.u8, 255);
    EXPECT_EQ(back.u64, std::numeric_limits<uint64_t>::max()) << "uint64_t keeps its bits in i64";
  }
}

TEST(Codecs, EveryIntegerSpellingRoundTripsAtItsLimits) {
  using ULL = unsigned long long;
  using LL = long long;
  spellings::Integers limits{
      std::numeric_limits<long>::min(),
      std::numeric_limits<LL>::min(),
      std::numeric_limits<unsigned long>::max(),
      std::numeric_limits<ULL>::max(),
      std::numeric_limits<std::size_t>::max(),
      {{std::numeric_limits<ULL>::max(), std::numeric_limits<LL>::max()}, {0, -1}},
      {std::numeric_limits<ULL>::max(), ULL{1} << 63, 0}};
  auto check = [&](const spellings::Integers& back, const char* wire) {
    EXPECT_EQ(back.l, limits.l) << wire;
    EXPECT_EQ(back.ll, limits.ll) << wire;
    EXPECT_EQ(back.ul, limits.ul) << wire;
    EXPECT_EQ(back.ull, limits.ull) << wire << ": unsigned long long keeps its bits as uint64_t";
    EXPECT_EQ(back.size, limits.size) << wire;
    EXPECT_EQ(back.by_ull, limits.by_ull) << wire;
    EXPECT_EQ(back.ulls, limits.ulls) << wire;
  };
  for (WireFormat p : kThriftProtocols) {
    spellings::Integers back;
    absl::Status status = ThriftDecode(ThriftEncode(limits, p), p, &back);
    ASSERT_TRUE(status.ok()) << status;
    check(back, "thrift");
  }
  spellings::Integers back;
  absl::Status status = ProtoDecode(ProtoEncode(limits), &back);
  ASSERT_TRUE(status.ok()) << status;
  check(back, "proto");
}

// ---- round trips ----

TEST(Codecs, RoundTripEveryMappedTypeOverAllProtocols) {
  Randomizer random(1);
  for (int i = 0; i < 300; ++i) {
    auto value = random.Make<rich::Everything>();
    for (WireFormat p : kThriftProtocols) {
      rich::Everything back;
      std::string bytes = ThriftEncode(value, p);
      ASSERT_TRUE(ThriftDecode(bytes, p, &back).ok()) << Hex(bytes);
      ASSERT_TRUE(DeepEqual(value, back)) << "thrift round trip " << i;
    }
    rich::Everything back;
    std::string bytes = ProtoEncode(value);
    ASSERT_EQ(bytes.size(), ProtoByteSize(value));
    auto status = ProtoDecode(bytes, &back);
    ASSERT_TRUE(status.ok()) << status << " " << Hex(bytes);
    ASSERT_TRUE(DeepEqual(value, back)) << "proto round trip " << i;
  }
}

TEST(Codecs, NestedStructDeclarationsRoundTrip) {
  rich::Order order{{{1, 2}, {3, 4}}, {{"x", {5, 6}}}};
  rich::Order back;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(order), &back).ok());
  EXPECT_TRUE(DeepEqual(order, back));
  EXPECT_EQ(StructInfo<rich::Order::Line>::kFullName, "rich.Line");
}

TEST(Codecs, NegativeEnumValuesRoundTrip) {
  rich::Scalars s;
  s.light = rich::Light::kOff;
  rich::Scalars back;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(s), &back).ok());
  EXPECT_EQ(back.light, rich::Light::kOff);
  back = {};
  ASSERT_TRUE(
      ThriftDecode(ThriftEncode(s, WireFormat::kThriftCompact), WireFormat::kThriftCompact, &back)
          .ok());
  EXPECT_EQ(back.light, rich::Light::kOff);
}

// ---- schema evolution ----

TEST(Codecs, SkipUnknownFieldsFromANewerPeer) {
  evolution::V2 v2{7, 8, "hello", {1, 2, 3}, {4, 5}, {{"k", {6, 7}}}};
  for (WireFormat p : kThriftProtocols) {
    evolution::OnlyA old;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(v2, p), p, &old).ok());
    EXPECT_EQ(old.a, 7);
  }
  evolution::OnlyA old;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(v2), &old).ok());
  EXPECT_EQ(old.a, 7);
}

TEST(Codecs, MissingFieldsKeepTheirDefaults) {
  evolution::OnlyA a{5};
  for (WireFormat p : kThriftProtocols) {
    evolution::V1 v1;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(a, p), p, &v1).ok());
    EXPECT_EQ(v1.a, 5);
    EXPECT_EQ(v1.later, 42);
  }
  evolution::V1 v1;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(a), &v1).ok());
  EXPECT_EQ(v1.a, 5);
  EXPECT_EQ(v1.later, 42);
}

TEST(Codecs, AZeroWhereTheDefaultIsNotZeroSurvives) {
  // later defaults to 42: a 0 the sender holds must arrive as 0, not as the receiver's default.
  evolution::V1 zero{5, 0};
  for (WireFormat p : kThriftProtocols) {
    evolution::V1 back;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(zero, p), p, &back).ok());
    EXPECT_EQ(back.later, 0);
  }
  std::string bytes = ProtoEncode(zero);
  EXPECT_EQ(Hex(bytes), "08 05 10 00 ") << "written explicitly, as proto3 parsers accept";
  evolution::V1 back;
  ASSERT_TRUE(ProtoDecode(bytes, &back).ok());
  EXPECT_EQ(back.later, 0);
  EXPECT_EQ(ProtoByteSize(zero), bytes.size());
  // A field whose default is zero is still omitted when zero, as protoc omits it.
  EXPECT_EQ(Hex(ProtoEncode(evolution::V1{0, 42})), "10 2a ");
}

TEST(ProtoCodec, AcceptsPackedAndUnpackedRepeatedScalars) {
  rich::Containers c;
  // ints (field 1) unpacked: two varint occurrences, then a packed run.
  std::string bytes = Bytes({0x08, 0x05, 0x08, 0x06, 0x0a, 0x02, 0x07, 0x08});
  ASSERT_TRUE(ProtoDecode(bytes, &c).ok());
  EXPECT_EQ(c.ints, (std::vector<int32_t>{5, 6, 7, 8}));
}

TEST(ProtoCodec, EmptyPackedRunsDecodeToNothing) {
  rich::Containers c;
  // floats (field 6) and ints (field 1) as packed runs of length 0.
  ASSERT_TRUE(ProtoDecode(Bytes({0x32, 0x00, 0x0a, 0x00}), &c).ok());
  EXPECT_TRUE(c.floats.empty());
  EXPECT_TRUE(c.ints.empty());
  EXPECT_FALSE(ProtoDecode(Bytes({0x32, 0x03, 0x00, 0x00, 0x00}), &c).ok())
      << "3 bytes are no whole float";
}

TEST(ProtoCodec, MapEntriesWithMissingKeyOrValueUseDefaults) {
  rich::Containers c;
  // counts (field 12): one entry with only a value (field 2 = 9), one with only a key "x".
  std::string bytes = Bytes({0x62, 0x02, 0x10, 0x09, 0x62, 0x03, 0x0a, 0x01, 'x'});
  ASSERT_TRUE(ProtoDecode(bytes, &c).ok());
  EXPECT_EQ(c.counts.at(""), 9);
  EXPECT_EQ(c.counts.at("x"), 0);
}

// ---- bad input ----

TEST(Codecs, WrongWireTypeForAKnownFieldIsAnError) {
  evolution::OnlyA a{5};
  for (WireFormat p : kThriftProtocols) {
    evolution::AsString s;
    auto status = ThriftDecode(ThriftEncode(a, p), p, &s);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("wire type i32, expected string"), std::string::npos) << status;
  }
  evolution::AsString s;
  auto status = ProtoDecode(ProtoEncode(a), &s);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("wrong wire type"), std::string::npos) << status;
  EXPECT_NE(status.message().find(".1"), std::string::npos) << "names the field: " << status;
}

TEST(Codecs, ErrorsNameTheFieldPath) {
  rich::Everything e;
  e.stamp.zone = "utc";
  std::string bytes = ProtoEncode(e);
  bytes[bytes.size() - 2] = static_cast<char>(0xff);  // invalid UTF-8 inside stamp.zone
  rich::Everything back;
  auto status = ProtoDecode(bytes, &back);
  EXPECT_EQ(status.message(), "proto: rich.Everything.stamp.zone: string field holds invalid UTF-8")
      << status;
}

TEST(Codecs, ThriftHoldsStringsToUtf8AndNamesThePathAsProtoDoes) {
  rich::Everything e;
  e.stamp.zone = std::string("\xc3\x28", 2);  // a lead byte without its continuation
  for (WireFormat p : kThriftProtocols) {
    std::string bytes = ThriftEncode(e, p);
    rich::Everything back;
    auto status = ThriftDecode(bytes, p, &back);
    EXPECT_EQ(status.message(),
              "thrift: rich.Everything.stamp.zone: string field holds invalid UTF-8")
        << status;
  }
  // Bytes are bytes: any value round-trips in a std::vector<uint8_t>.
  rich::Containers c;
  c.blobs = {{0xff, 0xfe, 0x00}};
  for (WireFormat p : kThriftProtocols) {
    rich::Containers back;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(c, p), p, &back).ok());
    EXPECT_EQ(back.blobs, c.blobs);
  }
}

TEST(Codecs, OutOfRangeValuesAreErrors) {
  evolution::AsInt16 wide{300};
  for (WireFormat p : kThriftProtocols) {
    evolution::AsUint8 narrow;
    auto status = ThriftDecode(ThriftEncode(wide, p), p, &narrow);
    EXPECT_NE(status.message().find("value 300 is out of range"), std::string::npos) << status;
  }
  evolution::AsUint8 narrow;
  auto status = ProtoDecode(ProtoEncode(evolution::OnlyA{300}), &narrow);
  EXPECT_NE(status.message().find("out of range"), std::string::npos) << status;
  // An enum value outside what the C++ enum can hold (Level holds 0..3).
  rich::Scalars s;
  status = ProtoDecode(Bytes({0x80, 0x01, 0x09}), &s);  // field 16 (level) = 9
  EXPECT_NE(status.message().find("enum value out of range"), std::string::npos) << status;
}

TEST(Codecs, EveryTruncationIsHandled) {
  Randomizer random(2);
  for (int i = 0; i < 20; ++i) {
    auto value = random.Make<rich::Everything>();
    for (WireFormat p : kThriftProtocols) {
      std::string bytes = ThriftEncode(value, p);
      for (std::size_t n = 0; n < bytes.size(); ++n) {
        rich::Everything back;
        EXPECT_FALSE(ThriftDecode(std::string_view(bytes).substr(0, n), p, &back).ok())
            << "a Thrift struct cut at " << n << " of " << bytes.size() << " lacks its stop byte";
      }
    }
    // A proto message cut at a field boundary is a valid shorter message; anywhere else it is
    // an error. Neither may crash or read past the end (ASan checks).
    std::string bytes = ProtoEncode(value);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      rich::Everything back;
      (void)ProtoDecode(std::string_view(bytes).substr(0, n), &back);
    }
  }
  rich::Stamp stamp{1, 2, "abcdef"};
  std::string bytes = ProtoEncode(stamp);
  rich::Stamp back;
  auto status = ProtoDecode(std::string_view(bytes).substr(0, bytes.size() - 2), &back);
  EXPECT_NE(status.message().find("length prefix runs past the end of the input"),
            std::string::npos)
      << status;
}

TEST(Codecs, HugeLengthPrefixesDoNotAllocate) {
  // proto: field 3 (zone), length 2^32 - 1, with four bytes behind it.
  rich::Stamp stamp;
  auto status =
      ProtoDecode(Bytes({0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a', 'b', 'c', 'd'}), &stamp);
  EXPECT_NE(status.message().find("length prefix runs past the end"), std::string::npos) << status;
  // Thrift compact: field 3 string with length 2^31 - 1.
  status = ThriftDecode(Bytes({0x38, 0xff, 0xff, 0xff, 0xff, 0x07, 'a', 0x00}),
                        WireFormat::kThriftCompact, &stamp);
  EXPECT_FALSE(status.ok());
  // Thrift binary: field 1 of Containers, list<i32> claiming 2^31 - 1 elements.
  rich::Containers c;
  status = ThriftDecode(Bytes({0x0f, 0x00, 0x01, 0x08, 0x7f, 0xff, 0xff, 0xff, 0x00}),
                        WireFormat::kThriftBinary, &c);
  EXPECT_FALSE(status.ok());
  // Thrift compact: a map claiming 2^31 - 1 entries.
  evolution::AsMap m;
  status = ThriftDecode(Bytes({0x1b, 0xff, 0xff, 0xff, 0xff, 0x07, 0x58, 0x00}),
                        WireFormat::kThriftCompact, &m);
  EXPECT_FALSE(status.ok());
}

TEST(Codecs, DeepNestingIsRejected) {
  // Everything.children (field 6) nested 150 levels deep.
  std::string proto;
  for (int i = 0; i < 150; ++i) {
    std::string outer;
    outer += static_cast<char>(0x32);
    std::size_t len = proto.size();
    do {
      outer += static_cast<char>((len & 0x7f) | (len >= 0x80 ? 0x80 : 0));
      len >>= 7;
    } while (len > 0);
    proto = outer + proto;
  }
  rich::Everything e;
  auto status = ProtoDecode(proto, &e);
  EXPECT_NE(status.message().find("nested deeper than 100"), std::string::npos) << status;

  // Thrift: the same through list<Everything> (field 6), 100 levels; Thrift's limit is 64.
  std::string thrift;
  for (int i = 0; i < 100; ++i) thrift += Bytes({0x69, 0x1c});  // field 6 list, 1 struct
  thrift += std::string(101, '\0');
  status = ThriftDecode(thrift, WireFormat::kThriftCompact, &e);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("thrift:"), std::string::npos) << status;
}

TEST(ThriftCodec, InvalidTypeBytesAreErrorsNotUndefinedBehaviour) {
  rich::Everything e;
  // A field header whose type byte (0x35) is no Thrift type.
  auto status = ThriftDecode(Bytes({0x35, 0x00, 0x01, 0x00}), WireFormat::kThriftBinary, &e);
  EXPECT_NE(status.message().find("invalid Thrift type byte 53"), std::string::npos) << status;
  // The same inside an unknown field being skipped: field 99, a list whose element type is 0x80.
  status = ThriftDecode(Bytes({0x0f, 0x00, 0x63, 0x80, 0x00, 0x00, 0x00, 0x01, 0x00}),
                        WireFormat::kThriftBinary, &e);
  EXPECT_NE(status.message().find("invalid Thrift type byte 128"), std::string::npos) << status;
  // Compact validates type nibbles itself.
  status = ThriftDecode(Bytes({0x1e, 0x00}), WireFormat::kThriftCompact, &e);
  EXPECT_FALSE(status.ok());
}

TEST(Codecs, TrailingBytesAfterAThriftStructAreAnError) {
  std::string bytes = ThriftEncode(rich::Point{1, 2}, WireFormat::kThriftCompact) + "x";
  rich::Point p;
  auto status = ThriftDecode(bytes, WireFormat::kThriftCompact, &p);
  EXPECT_NE(status.message().find("1 bytes left after the struct"), std::string::npos) << status;
}

TEST(ProtoCodec, RejectsInvalidWireTypesAndFieldZero) {
  rich::Point p;
  EXPECT_NE(ProtoDecode(Bytes({0x2b}), &p).message().find("group wire type"), std::string::npos);
  EXPECT_NE(ProtoDecode(Bytes({0x2e}), &p).message().find("invalid wire type"), std::string::npos);
  EXPECT_NE(ProtoDecode(Bytes({0x0b}), &p).message().find("wrong wire type"), std::string::npos);
  EXPECT_NE(ProtoDecode(Bytes({0x00, 0x01}), &p).message().find("invalid field number"),
            std::string::npos);
  EXPECT_NE(ProtoDecode(
                Bytes({0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), &p)
                .message()
                .find("varint longer than 10 bytes"),
            std::string::npos);
}

TEST(ProtoCodec, Utf8Validation) {
  auto check = [](std::string_view s) {
    return internal::ValidUtf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_TRUE(check("plain ascii text, long enough for the fast path"));
  EXPECT_TRUE(check("é日本🍕"));
  EXPECT_FALSE(check("\xc0\x80")) << "overlong";
  EXPECT_FALSE(check("\xed\xa0\x80")) << "surrogate";
  EXPECT_FALSE(check("\xf4\x90\x80\x80")) << "past U+10FFFF";
  EXPECT_FALSE(check("abc\xe6\x97")) << "truncated sequence";
  // A sequence at every offset of the 32- and 8-byte ASCII blocks, valid and not.
  for (std::size_t at = 0; at < 80; ++at) {
    std::string text(100, 'a');
    EXPECT_TRUE(check(text.replace(at, 2, "\xc3\xa9"))) << "valid at " << at;
    text.assign(100, 'a');
    EXPECT_FALSE(check(text.replace(at, 2, "\xc0\x80"))) << "overlong at " << at;
    text.assign(100, 'a');
    text[at] = '\x80';
    EXPECT_FALSE(check(text)) << "a lone continuation byte at " << at;
  }
}

// A long string is checked and copied 16 KiB at a time, each piece ending before a byte that can
// start a character: the answer is ValidUtf8's for the whole, with characters of every length
// and broken ones at and around each piece's end, and a valid string is copied whole.
TEST(ProtoCodec, LongStringsAreCheckedPieceByPieceAsAWhole) {
  const std::string inserts[] = {
      "\xc3\xa9",
      "\xe6\x97\xa5",
      "\xf0\x9f\x8d\x95",  // valid, 2 to 4 bytes
      "\xc0\x80",
      "\xed\xa0\x80",  // overlong, surrogate
      "\xe6\x97",
      "\x80",
      "\x80\x80\x80\x80\x80",              // cut short, lone continuation bytes
      "\xf0\x9f\x8d\x95\xf0\x9f\x8d\x95",  // two 4-byte characters
  };
  int checked = 0;
  for (std::size_t boundary : {std::size_t{16 * 1024}, std::size_t{32 * 1024}}) {
    for (std::size_t at = boundary - 6; at <= boundary + 2; ++at) {
      for (const std::string& insert : inserts) {
        std::string text(40000, 'a');
        text.replace(at, insert.size(), insert);
        const auto* data = reinterpret_cast<const uint8_t*>(text.data());
        std::string copied = "old";
        const bool valid = internal::ValidUtf8(data, text.size());
        EXPECT_EQ(internal::AssignValidUtf8(data, text.size(), &copied), valid)
            << "at " << at << ", " << insert.size() << " bytes";
        if (valid) {
          EXPECT_TRUE(copied == text) << "at " << at;
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 2 * 9 * 9);
  // Through both decoders: a string field of 40,000 bytes with a character across 16 KiB.
  std::string text(40000, 'b');
  text.replace(16 * 1024 - 1, 3, "\xe6\x97\xa5");
  rich::Stamp stamp;
  stamp.zone = text;
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    rich::Stamp decoded;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(stamp, format), format, &decoded).ok());
    EXPECT_TRUE(decoded.zone == text);
  }
  rich::Stamp decoded;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(stamp), &decoded).ok());
  EXPECT_TRUE(decoded.zone == text);
  stamp.zone[16 * 1024] = 'x';  // the character cut short at the piece's end
  EXPECT_FALSE(ThriftDecode(ThriftEncode(stamp, WireFormat::kThriftCompact),
                            WireFormat::kThriftCompact, &decoded)
                   .ok());
  EXPECT_FALSE(ProtoDecode(ProtoEncode(stamp), &decoded).ok());
}

// A Thrift peer's double does not fit every C++ float: out of range is an error, as an
// out-of-range integer is; infinities and NaN stay what they are; rounding is fine.
TEST(ThriftCodec, RejectsADoubleOutOfAFloatsRange) {
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    std::tuple<float> out{};
    absl::Status status =
        ThriftDecode(ThriftEncode(std::tuple<double>{1e300}, format), format, &out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("value 1e+300 is out of range for a float field"),
              std::string::npos)
        << status.message();
    ASSERT_TRUE(ThriftDecode(ThriftEncode(std::tuple<double>{-1e-300}, format), format, &out).ok());
    ASSERT_TRUE(
        ThriftDecode(
            ThriftEncode(std::tuple<double>{std::numeric_limits<double>::infinity()}, format),
            format, &out)
            .ok());
    EXPECT_TRUE(std::isinf(std::get<0>(out)));
    ASSERT_TRUE(ThriftDecode(ThriftEncode(std::tuple<double>{0.1}, format), format, &out).ok());
    EXPECT_EQ(std::get<0>(out), 0.1f);
  }
}

}  // namespace
}  // namespace rpcboot
