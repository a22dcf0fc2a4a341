// The bounded inflate and the gzip of gRPC messages (rpcboot/internal/grpc_compression.h), with
// inputs made by zlib itself. The native server's use of it, with stock peers, is checked by
// tests/interop/compression_test.py.
#include "rpcboot/internal/grpc_compression.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>

namespace rpcboot::internal {
namespace {

// `in` compressed by zlib: gzip (window bits + 16) or zlib's own format.
std::string Compress(const std::string& in, bool gzip) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, gzip ? 15 + 16 : 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

InflateError Inflate(GrpcCodec codec, const std::string& in, std::size_t limit, std::string* out,
                     std::size_t quota = std::string::npos, std::size_t* asked = nullptr) {
  std::size_t granted = 0;
  return InflateMessage(
      codec, in, limit,
      [&](std::size_t n) {
        if (asked != nullptr) *asked += n;
        if (granted + n > quota) return false;
        granted += n;
        return true;
      },
      "over the quota", out);
}

TEST(GrpcCompressionTest, GzipAndDeflateInflateToWhatWasCompressed) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "order " + std::to_string(i) + ": two pizzas; ";
  std::string out;
  std::size_t asked = 0;
  ASSERT_TRUE(
      Inflate(GrpcCodec::kGzip, Compress(text, true), text.size(), &out, std::string::npos, &asked)
          .ok());
  EXPECT_EQ(out, text);
  EXPECT_EQ(asked, text.size()) << "every byte made was counted, once";
  ASSERT_TRUE(Inflate(GrpcCodec::kDeflate, Compress(text, false), text.size(), &out).ok());
  EXPECT_EQ(out, text);
  ASSERT_TRUE(Inflate(GrpcCodec::kGzip, Compress("", true), 0, &out).ok());
  EXPECT_EQ(out, "");
}

// 64 MiB of zeros compress to about 64 KiB; inflating stops once the output passes the limit,
// having made no more than the limit.
TEST(GrpcCompressionTest, ABombStopsAtTheLimit) {
  const std::string bomb = Compress(std::string(64 << 20, '\0'), true);
  ASSERT_LT(bomb.size(), 100u << 10);
  std::string out;
  std::size_t asked = 0;
  InflateError error = Inflate(GrpcCodec::kGzip, bomb, 1 << 20, &out, std::string::npos, &asked);
  EXPECT_EQ(error.code, StatusCode::kResourceExhausted);
  EXPECT_NE(error.message.find("limit of 1048576 bytes (max_message_bytes)"), std::string::npos)
      << error.message;
  EXPECT_LE(asked, std::size_t{1} << 20);
  EXPECT_LE(out.size(), std::size_t{1} << 20);
  // Exactly at the limit is allowed.
  const std::string text(100000, 'q');
  EXPECT_TRUE(Inflate(GrpcCodec::kGzip, Compress(text, true), text.size(), &out).ok());
  EXPECT_EQ(Inflate(GrpcCodec::kGzip, Compress(text, true), text.size() - 1, &out).code,
            StatusCode::kResourceExhausted);
}

TEST(GrpcCompressionTest, TheQuotaStopsAnInflate) {
  const std::string text(1 << 20, 'z');
  std::string out;
  InflateError error =
      Inflate(GrpcCodec::kGzip, Compress(text, true), 2 << 20, &out, /*quota=*/100000);
  EXPECT_EQ(error.code, StatusCode::kResourceExhausted);
  EXPECT_EQ(error.message, "over the quota");
  EXPECT_LE(out.size(), 100000u);
}

TEST(GrpcCompressionTest, BytesThatAreNotTheFormatAreInternal) {
  const std::string text(5000, 'k');
  const std::string gzip = Compress(text, true);
  std::string out;
  struct Case {
    const char* what;
    GrpcCodec codec;
    std::string in;
    const char* says;
  } cases[] = {
      {"not gzip", GrpcCodec::kGzip, "plain words, no header", "does not inflate"},
      {"gzip read as deflate", GrpcCodec::kDeflate, gzip, "does not inflate"},
      {"deflate read as gzip", GrpcCodec::kGzip, Compress(text, false), "does not inflate"},
      {"cut short", GrpcCodec::kGzip, gzip.substr(0, gzip.size() - 10), "ends before"},
      {"nothing", GrpcCodec::kGzip, "", "ends before"},
      {"bytes after its end", GrpcCodec::kGzip, gzip + "tail", "4 bytes after the end"},
      {"a bad checksum", GrpcCodec::kGzip,
       gzip.substr(0, gzip.size() - 8) + std::string(4, '\x55') + gzip.substr(gzip.size() - 4),
       "does not inflate"},
  };
  for (const Case& c : cases) {
    InflateError error = Inflate(GrpcCodec(c.codec), c.in, 1 << 20, &out);
    EXPECT_EQ(error.code, StatusCode::kInternal) << c.what << ": " << error.message;
    EXPECT_NE(error.message.find(c.says), std::string::npos) << c.what << ": " << error.message;
  }
}

TEST(GrpcCompressionTest, EncodingNamesAndAcceptLists) {
  EXPECT_EQ(GrpcCodecNamed(""), GrpcCodec::kIdentity);
  EXPECT_EQ(GrpcCodecNamed("identity"), GrpcCodec::kIdentity);
  EXPECT_EQ(GrpcCodecNamed("gzip"), GrpcCodec::kGzip);
  EXPECT_EQ(GrpcCodecNamed("deflate"), GrpcCodec::kDeflate);
  EXPECT_EQ(GrpcCodecNamed("snappy"), std::nullopt);
  EXPECT_EQ(GrpcCodecNamed("GZIP"), std::nullopt);
  EXPECT_TRUE(AcceptsGzip("identity,deflate,gzip"));
  EXPECT_TRUE(AcceptsGzip("identity, gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_FALSE(AcceptsGzip("identity,deflate"));
  EXPECT_FALSE(AcceptsGzip("gzipx"));
  EXPECT_FALSE(AcceptsGzip(""));
}

TEST(GrpcCompressionTest, GzipMessageIsGzipAndOnlyWhenSmaller) {
  const std::string text(50000, 'r');
  std::optional<std::string> gzip = GzipMessage(text);
  ASSERT_TRUE(gzip);
  EXPECT_LT(gzip->size(), text.size() / 10);
  std::string out;
  ASSERT_TRUE(Inflate(GrpcCodec::kGzip, *gzip, text.size(), &out).ok());
  EXPECT_EQ(out, text);
  // Bytes that do not compress (random ones) are left as they are.
  std::mt19937 random(4711);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(random());
  EXPECT_EQ(GzipMessage(noise), std::nullopt);
  EXPECT_EQ(GzipMessage(""), std::nullopt);
}

}  // namespace
}  // namespace rpcboot::internal
