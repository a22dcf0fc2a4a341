// Feeds each decoder garbage: random bytes, and valid encodings with bytes flipped, inserted,
// removed or cut. Decoders must return (ok or an error), never crash, hang or read out of
// bounds, and rpcboot's Thrift reader must accept what Thrift's protocol classes accept and
// read the same values; the suite runs under AddressSanitizer and UndefinedBehaviorSanitizer
// (RPCBOOT_SANITIZE=1 ./test.sh). Seeds are fixed so a failure reproduces; set
// RPCBOOT_FUZZ_ITERATIONS to run longer.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <random>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "thrift_reference.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

int Iterations() {
  const char* env = std::getenv("RPCBOOT_FUZZ_ITERATIONS");
  return env != nullptr ? std::atoi(env) : 20000;
}

std::string Mutate(std::string bytes, std::mt19937_64& rng) {
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < edits; ++i) {
    std::size_t pos = bytes.empty() ? 0 : rng() % bytes.size();
    switch (rng() % 5) {
      case 0:
        if (!bytes.empty()) bytes[pos] = static_cast<char>(rng());
        break;
      case 1:
        if (!bytes.empty()) bytes[pos] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 2:
        bytes.insert(pos, 1, static_cast<char>(rng()));
        break;
      case 3:
        if (!bytes.empty()) bytes.erase(pos, 1 + rng() % 4);
        break;
      default:
        bytes.resize(pos);
        break;
    }
  }
  return bytes;
}

std::string RandomBytes(std::mt19937_64& rng) {
  std::string s(rng() % 256, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Inputs each decoder accepted: [0] Thrift binary, [1] Thrift compact, [2] proto.
using Accepted = std::array<int, 3>;

// What a decoder accepts must be a value the codec can carry: encoded again and decoded again it
// is the same value (or, for values with NaNs, which never compare equal, the same bytes).
template <class T, class Encode, class Decode>
void ExpectRoundTrip(const T& value, Encode encode, Decode decode) {
  std::string again = encode(value);
  T back{};
  absl::Status status = decode(again, &back);
  ASSERT_TRUE(status.ok()) << "a decoded value does not decode after encoding: " << status;
  EXPECT_TRUE(testing::DeepEqual(value, back) || encode(back) == again)
      << "decode(encode(decode(x))) differs from decode(x): " << testing::Hex(again) << " vs "
      << testing::Hex(encode(back));
}

// rpcboot's Thrift reader accepts what Thrift's own protocol classes accept, and reads the
// same value.
template <class T>
void ExpectThriftsVerdict(const std::string& bytes, WireFormat p, const absl::Status& status,
                          const T& value) {
  T reference{};
  absl::Status verdict = testing::ThriftReferenceDecode(bytes, p, &reference);
  ASSERT_EQ(status.ok(), verdict.ok())
      << (p == WireFormat::kThriftBinary ? "binary" : "compact") << ": rpcboot " << status
      << ", Thrift " << verdict << " on " << testing::Hex(bytes);
  if (status.ok()) {
    EXPECT_TRUE(testing::DeepEqual(value, reference) ||
                ThriftEncode(value, p) == ThriftEncode(reference, p))
        << "rpcboot and Thrift read different values from " << testing::Hex(bytes);
  }
}

template <class T>
void DecodeEverywhere(const std::string& bytes, Accepted* accepted) {
  for (WireFormat p : {WireFormat::kThriftBinary, WireFormat::kThriftCompact}) {
    T value{};
    absl::Status status = ThriftDecode(bytes, p, &value);
    ExpectThriftsVerdict(bytes, p, status, value);
    if (status.ok()) {
      ++(*accepted)[p == WireFormat::kThriftBinary ? 0 : 1];
      ExpectRoundTrip(
          value, [p](const T& v) { return ThriftEncode(v, p); },
          [p](const std::string& b, T* out) { return ThriftDecode(b, p, out); });
    }
  }
  T value{};
  if (ProtoDecode(bytes, &value).ok()) {
    ++(*accepted)[2];
    EXPECT_EQ(ProtoEncode(value).size(), ProtoByteSize(value));
    ExpectRoundTrip(
        value, [](const T& v) { return ProtoEncode(v); },
        [](const std::string& b, T* out) { return ProtoDecode(b, out); });
  }
}

template <class T>
void FuzzType(uint64_t seed) {
  std::mt19937_64 rng(seed);
  testing::Randomizer random(seed);
  Accepted accepted{};
  for (int i = 0; i < Iterations(); ++i) {
    DecodeEverywhere<T>(RandomBytes(rng), &accepted);
    T valid = random.Make<T>();
    std::string base;
    switch (i % 3) {
      case 0:
        base = ThriftEncode(valid, WireFormat::kThriftBinary);
        break;
      case 1:
        base = ThriftEncode(valid, WireFormat::kThriftCompact);
        break;
      default:
        base = ProtoEncode(valid);
        break;
    }
    DecodeEverywhere<T>(Mutate(base, rng), &accepted);
  }
  // The garbage reached the decoders' success paths too, not only their error paths.
  EXPECT_GT(accepted[0], 0) << "Thrift binary accepted no input";
  EXPECT_GT(accepted[1], 0) << "Thrift compact accepted no input";
  EXPECT_GT(accepted[2], 0) << "proto accepted no input";
  ::testing::Test::RecordProperty("accepted_thrift_binary", accepted[0]);
  ::testing::Test::RecordProperty("accepted_thrift_compact", accepted[1]);
  ::testing::Test::RecordProperty("accepted_proto", accepted[2]);
}

TEST(CodecFuzz, Everything) { FuzzType<rich::Everything>(11); }
TEST(CodecFuzz, Containers) { FuzzType<rich::Containers>(12); }
TEST(CodecFuzz, Scalars) { FuzzType<rich::Scalars>(13); }
TEST(CodecFuzz, Optionals) { FuzzType<rich::Optionals>(14); }

}  // namespace
}  // namespace rpcboot
