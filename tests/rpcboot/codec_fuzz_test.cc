// Feeds each decoder garbage: random bytes, and valid encodings with bytes flipped, inserted,
// removed or cut. Decoders must return (ok or an error), never crash, hang or read out of
// bounds; the suite runs under AddressSanitizer and UndefinedBehaviorSanitizer
// (RPCBOOT_SANITIZE=1 ./test.sh). Seeds are fixed so a failure reproduces; set
// RPCBOOT_FUZZ_ITERATIONS to run longer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
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

// A decoded value must be usable: encoding it again must work.
template <class T>
void DecodeEverywhere(const std::string& bytes, int* accepted) {
  for (ThriftProtocol p : {ThriftProtocol::kBinary, ThriftProtocol::kCompact}) {
    T value{};
    if (ThriftDecode(bytes, p, &value).ok()) {
      ++*accepted;
      (void)ThriftEncode(value, p);
    }
  }
  T value{};
  if (ProtoDecode(bytes, &value).ok()) {
    ++*accepted;
    EXPECT_EQ(ProtoEncode(value).size(), ProtoByteSize(value));
  }
}

template <class T>
void FuzzType(uint64_t seed) {
  std::mt19937_64 rng(seed);
  testing::Randomizer random(seed);
  int accepted = 0;
  for (int i = 0; i < Iterations(); ++i) {
    DecodeEverywhere<T>(RandomBytes(rng), &accepted);
    T valid = random.Make<T>();
    std::string base;
    switch (i % 3) {
      case 0:
        base = ThriftEncode(valid, ThriftProtocol::kBinary);
        break;
      case 1:
        base = ThriftEncode(valid, ThriftProtocol::kCompact);
        break;
      default:
        base = ProtoEncode(valid);
        break;
    }
    DecodeEverywhere<T>(Mutate(base, rng), &accepted);
  }
  // Random proto bytes often parse as unknown fields; report how many inputs were accepted.
  ::testing::Test::RecordProperty("accepted", accepted);
}

TEST(CodecFuzz, Everything) { FuzzType<rich::Everything>(11); }
TEST(CodecFuzz, Containers) { FuzzType<rich::Containers>(12); }
TEST(CodecFuzz, Scalars) { FuzzType<rich::Scalars>(13); }
TEST(CodecFuzz, Optionals) { FuzzType<rich::Optionals>(14); }

}  // namespace
}  // namespace rpcboot
