// HeaderBlockScanner: an HTTP/2 client's bytes followed frame by frame, header blocks bounded.
// (The bound on a running server, over TCP and TLS against raw peers:
// tests/interop/continuation_flood_test.py.)
#include "rpcboot/internal/header_block_guard.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace rpcboot::internal {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr unsigned char kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kContinuation = 0x9;
constexpr unsigned char kEndHeaders = 0x4;

std::string Frame(unsigned char type, unsigned char flags, std::size_t length) {
  std::string out;
  out.push_back(static_cast<char>(length >> 16));
  out.push_back(static_cast<char>(length >> 8));
  out.push_back(static_cast<char>(length));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.append("\0\0\0\1", 4);
  out.append(length, 'x');
  return out;
}

bool Feed(HeaderBlockScanner& scanner, const std::string& bytes) {
  return scanner.Feed(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

// Every byte on its own: frame headers split anywhere are put together.
bool FeedByteByByte(HeaderBlockScanner& scanner, const std::string& bytes) {
  bool ok = true;
  for (char c : bytes) ok = Feed(scanner, std::string(1, c)) && ok;
  return ok;
}

std::string Start() { return std::string(kPreface) + Frame(kSettings, 0, 6); }

TEST(HeaderBlockScanner, CallsWithBlocksUnderTheBoundsAndLargeMessagesPass) {
  // Blocks of up to 64 KiB in 64 frames; DATA frames of any size do not count.
  std::string stream = Start() + Frame(kHeaders, kEndHeaders, 300) + Frame(kData, 0, 16384) +
                       Frame(kHeaders, 0, 16384) + Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, kEndHeaders, kMaxHeaderBlockBytes - 3 * 16384);
  for (int i = 0; i < 100; ++i) stream += Frame(kData, 0, 16384);
  stream += Frame(kHeaders, 0, 10);
  for (std::uint32_t i = 2; i < kMaxHeaderBlockFrames; ++i) stream += Frame(kContinuation, 0, 0);
  stream += Frame(kContinuation, kEndHeaders, 10);
  HeaderBlockScanner whole;
  EXPECT_TRUE(Feed(whole, stream));
  HeaderBlockScanner bytes;
  EXPECT_TRUE(FeedByteByByte(bytes, stream));
}

TEST(HeaderBlockScanner, ABlockPastItsBytesFailsAndStaysFailed) {
  std::string stream = Start() + Frame(kHeaders, 0, 16384) + Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, 0, 16384) + Frame(kContinuation, 0, 16384);
  HeaderBlockScanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));  // exactly 64 KiB so far
  EXPECT_FALSE(Feed(scanner, Frame(kContinuation, kEndHeaders, 1)));
  EXPECT_NE(scanner.reason().find("more than 65536 bytes"), std::string::npos) << scanner.reason();
  EXPECT_FALSE(Feed(scanner, Frame(kSettings, 0, 0)));

  HeaderBlockScanner bytes;
  EXPECT_FALSE(FeedByteByByte(bytes, stream + Frame(kContinuation, 0, 1)));
}

TEST(HeaderBlockScanner, ABlockOfTooManyFramesFailsEvenWhenEmpty) {
  std::string stream = Start() + Frame(kHeaders, 0, 0);
  for (std::uint32_t i = 1; i < kMaxHeaderBlockFrames; ++i) stream += Frame(kContinuation, 0, 0);
  HeaderBlockScanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));
  EXPECT_FALSE(Feed(scanner, Frame(kContinuation, 0, 0)));
  EXPECT_NE(scanner.reason().find("more than 64 frames"), std::string::npos) << scanner.reason();
}

TEST(HeaderBlockScanner, TheBoundIsPerBlock) {
  // Many blocks, each under the bound, together far over it.
  std::string stream = Start();
  for (int i = 0; i < 50; ++i) {
    stream += Frame(kHeaders, 0, 16384) + Frame(kContinuation, kEndHeaders, 16384);
  }
  HeaderBlockScanner scanner;
  EXPECT_TRUE(Feed(scanner, stream));
}

TEST(HeaderBlockScanner, BytesThatAreNotHttp2AreNotFollowed) {
  // Not the preface (a TLS connection followed from its middle, an HTTP/1 request): gRPC
  // answers what it makes of them; the scanner never fails such a connection.
  HeaderBlockScanner scanner;
  std::string stream = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + Frame(kHeaders, 0, 16384);
  for (int i = 0; i < 100; ++i) stream += Frame(kContinuation, 0, 16384);
  EXPECT_TRUE(FeedByteByByte(scanner, stream));
}

}  // namespace
}  // namespace rpcboot::internal
