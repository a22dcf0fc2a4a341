// Http2Scanner: an HTTP/2 client's bytes followed frame by frame; header blocks, runs of empty
// DATA frames, control frames per second, calls reset at once and calls opened before the
// SETTINGS ack bounded. (The bounds on a running server, over TCP and TLS against raw peers:
// tests/interop/http2_flood_test.py and rapid_reset_test.py.)
#include "rpcboot/internal/http2_guard.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "socket_testing.h"

namespace rpcboot::internal {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr unsigned char kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kPing = 0x6,
                        kWindowUpdate = 0x8, kContinuation = 0x9;
constexpr unsigned char kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
constexpr int64_t kSecond = 1'000'000'000;

// A frame of `length` bytes of payload.
std::string Frame(unsigned char type, unsigned char flags, std::size_t length) {
  return testing::Http2Frame(type, flags, std::string(length, 'x'));
}

bool Feed(Http2Scanner& scanner, const std::string& bytes, int64_t now_ns = 0) {
  return scanner.Feed(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), now_ns);
}

// Every byte on its own: frame headers split anywhere are put together.
bool FeedByteByByte(Http2Scanner& scanner, const std::string& bytes) {
  bool ok = true;
  for (char c : bytes) ok = Feed(scanner, std::string(1, c)) && ok;
  return ok;
}

// Calls `first`, `first` + 2, ... (`count` of them) opened: HEADERS with END_HEADERS.
std::string Open(std::uint32_t first, std::uint32_t count) {
  std::string out;
  for (std::uint32_t i = 0; i < count; ++i)
    out += testing::Http2Frame(kHeaders, kEndHeaders, std::string(10, 'h'), first + 2 * i);
  return out;
}

// The same calls reset by the client (RST_STREAM, CANCEL).
std::string Reset(std::uint32_t first, std::uint32_t count) {
  std::string out;
  for (std::uint32_t i = 0; i < count; ++i)
    out += testing::Http2Frame(kRstStream, 0, std::string("\0\0\0\x08", 4), first + 2 * i);
  return out;
}

std::string Start() { return std::string(kPreface) + Frame(kSettings, 0, 6); }

// The same, and the server's SETTINGS acknowledged: the stream limit holds.
std::string Acked() { return Start() + Frame(kSettings, kAck, 0); }

TEST(Http2Scanner, CallsWithBlocksUnderTheBoundsAndLargeMessagesPass) {
  // Blocks of up to 64 KiB in 64 frames; DATA frames of any size do not count.
  std::string stream = Start() + Frame(kHeaders, kEndHeaders, 300) + Frame(kData, 0, 16384) +
                       Frame(kHeaders, 0, 16384) + Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, kEndHeaders, kMaxHeaderBlockBytes - 3 * 16384);
  for (int i = 0; i < 100; ++i) stream += Frame(kData, 0, 16384);
  stream += Frame(kHeaders, 0, 10);
  for (std::uint32_t i = 2; i < kMaxHeaderBlockFrames; ++i) stream += Frame(kContinuation, 0, 0);
  stream += Frame(kContinuation, kEndHeaders, 10);
  Http2Scanner whole;
  EXPECT_TRUE(Feed(whole, stream));
  Http2Scanner bytes;
  EXPECT_TRUE(FeedByteByByte(bytes, stream));
}

TEST(Http2Scanner, ABlockPastItsBytesFailsAndStaysFailed) {
  std::string stream = Start() + Frame(kHeaders, 0, 16384) + Frame(kContinuation, 0, 16384) +
                       Frame(kContinuation, 0, 16384) + Frame(kContinuation, 0, 16384);
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));  // exactly 64 KiB so far
  EXPECT_FALSE(Feed(scanner, Frame(kContinuation, kEndHeaders, 1)));
  EXPECT_NE(scanner.reason().find("more than 65536 bytes"), std::string::npos) << scanner.reason();
  EXPECT_FALSE(Feed(scanner, Frame(kSettings, 0, 0)));

  Http2Scanner bytes;
  EXPECT_FALSE(FeedByteByByte(bytes, stream + Frame(kContinuation, 0, 1)));
}

TEST(Http2Scanner, ABlockOfTooManyFramesFailsEvenWhenEmpty) {
  std::string stream = Start() + Frame(kHeaders, 0, 0);
  for (std::uint32_t i = 1; i < kMaxHeaderBlockFrames; ++i) stream += Frame(kContinuation, 0, 0);
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));
  EXPECT_FALSE(Feed(scanner, Frame(kContinuation, 0, 0)));
  EXPECT_NE(scanner.reason().find("more than 64 frames"), std::string::npos) << scanner.reason();
}

TEST(Http2Scanner, TheBoundIsPerBlock) {
  // Many blocks, each under the bound, together far over it.
  std::string stream = Start();
  for (int i = 0; i < 50; ++i) {
    stream += Frame(kHeaders, 0, 16384) + Frame(kContinuation, kEndHeaders, 16384);
  }
  Http2Scanner scanner;
  EXPECT_TRUE(Feed(scanner, stream));
}

TEST(Http2Scanner, BytesThatAreNotHttp2AreNotFollowed) {
  // Not the preface (a TLS connection followed from its middle, an HTTP/1 request): gRPC
  // answers what it makes of them; the scanner never fails such a connection.
  Http2Scanner scanner;
  std::string stream = "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + Frame(kHeaders, 0, 16384);
  for (int i = 0; i < 100; ++i) stream += Frame(kContinuation, 0, 16384);
  EXPECT_TRUE(FeedByteByByte(scanner, stream));
}

TEST(Http2Scanner, ARunOfEmptyDataFramesFails) {
  // Empty DATA frames that end their stream (a half-close) and runs broken by a frame with
  // bytes do not count; 65 in a row that do not end their stream do.
  std::string stream = Start() + Frame(kHeaders, kEndHeaders, 10);
  for (int run = 0; run < 10; ++run) {
    for (std::uint32_t i = 0; i < kMaxEmptyDataFrames; ++i) stream += Frame(kData, 0, 0);
    stream += Frame(kData, 0, 5) + Frame(kData, kEndStream, 0);
  }
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));
  for (std::uint32_t i = 0; i < kMaxEmptyDataFrames; ++i)
    ASSERT_TRUE(Feed(scanner, Frame(kData, 0, 0)));
  EXPECT_FALSE(Feed(scanner, Frame(kData, 0, 0)));
  EXPECT_NE(scanner.reason().find("empty DATA frames in a row"), std::string::npos)
      << scanner.reason();
}

TEST(Http2Scanner, ControlFramesAreBoundedPerSecond) {
  // Up to the bound in one second, then again in the next; one more within a second fails.
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, Start(), 0));  // its SETTINGS is the first control frame
  std::string window_updates;
  for (std::uint32_t i = 1; i < kMaxControlFramesPerSecond; ++i) {
    window_updates += Frame(kWindowUpdate, 0, 4);
  }
  ASSERT_TRUE(Feed(scanner, window_updates, kSecond / 2));
  ASSERT_TRUE(Feed(scanner, Frame(kWindowUpdate, 0, 4) + Frame(kPing, 0, 8), 2 * kSecond));
  std::string more;
  for (std::uint32_t i = 2; i < kMaxControlFramesPerSecond; ++i) more += Frame(kPing, 0, 8);
  ASSERT_TRUE(Feed(scanner, more, 2 * kSecond + kSecond / 2));
  EXPECT_FALSE(Feed(scanner, Frame(kWindowUpdate, 0, 4), 3 * kSecond - 1));
  EXPECT_NE(scanner.reason().find("in a second"), std::string::npos) << scanner.reason();
}

TEST(Http2Scanner, EachCallAddsToTheSecondsControlFrames) {
  // A busy client's WINDOW_UPDATEs and pings follow its calls: 100 calls allow 800 more.
  Http2Scanner scanner;
  std::string stream = Start();
  for (std::uint32_t i = 0; i < 100; ++i)
    stream += Open(1 + 2 * i, 1) + testing::Http2Frame(kData, kEndStream, "xxxxx", 1 + 2 * i);
  for (std::uint32_t i = 1; i < kMaxControlFramesPerSecond + 100 * kControlFramesPerCall; ++i) {
    stream += Frame(kWindowUpdate, 0, 4);
  }
  ASSERT_TRUE(Feed(scanner, stream));
  EXPECT_FALSE(Feed(scanner, Frame(kPing, 0, 8)));
}

TEST(Http2Scanner, CallsOpenedAndResetAtOnceFailPastTheBound) {
  // The rapid reset: each call opened and reset at once. Up to the bound in a second pass.
  std::string stream = Acked();
  for (std::uint32_t i = 0; i < kMaxRapidResetsPerSecond; ++i) {
    stream += Open(1 + 2 * i, 1) + Reset(1 + 2 * i, 1);
  }
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, stream));
  const std::uint32_t next = 1 + 2 * kMaxRapidResetsPerSecond;
  ASSERT_TRUE(Feed(scanner, Open(next, 1)));
  EXPECT_FALSE(Feed(scanner, Reset(next, 1)));
  EXPECT_NE(scanner.reason().find("rapid reset"), std::string::npos) << scanner.reason();

  Http2Scanner bytes;
  EXPECT_FALSE(FeedByteByByte(bytes, stream + Open(next, 1) + Reset(next, 1)));
}

TEST(Http2Scanner, AClientThatCancelsAMinorityOfItsCallsIsNotClosed) {
  // A hedging client at 4,000 calls a second cancels the losers: 1,500 resets, under half. What
  // the server still sends on them it answers with another RST_STREAM each: a call counts once.
  std::string calls = Acked();
  std::string again;
  for (std::uint32_t first = 1; first < 8000; first += 16) {
    calls += Open(first, 8) + Reset(first, 3);
    again += Reset(first, 3);
  }
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, calls + again, 0));
  ASSERT_TRUE(Feed(scanner, again, kSecond + 1));
  // Calls are what is weighed: 3,000 more HEADERS on one call (its trailers) open nothing.
  std::string stream = Acked() + Open(1, 1);
  for (int i = 0; i < 3000; ++i) stream += Open(1, 1);
  for (std::uint32_t i = 0; i <= kMaxRapidResetsPerSecond; ++i) {
    stream += Open(3 + 2 * i, 1) + Reset(3 + 2 * i, 1);
  }
  Http2Scanner trailers;
  EXPECT_FALSE(Feed(trailers, stream, 0));
}

TEST(Http2Scanner, ResetsCountForTheSecondAfterTheCallsOpenedAndNoLonger) {
  // 2,000 calls opened in one second: given up within the next second, they count (there is
  // no call opened in that second to weigh them against); given up later, they do not (a
  // deadline, a client going away).
  Http2Scanner late;
  ASSERT_TRUE(Feed(late, Acked() + Open(1, 2000), 0));
  ASSERT_TRUE(Feed(late, Reset(1, 2000), 2 * kSecond + kSecond / 2));
  ASSERT_TRUE(Feed(late, Open(4001, 2000) + Reset(4001, 1000), 3 * kSecond + kSecond / 2));

  Http2Scanner next;
  ASSERT_TRUE(Feed(next, Acked() + Open(1, 2000), 0));
  ASSERT_TRUE(Feed(next, Reset(1, kMaxRapidResetsPerSecond), kSecond + kSecond / 2));
  EXPECT_FALSE(Feed(next, Reset(1 + 2 * kMaxRapidResetsPerSecond, 1), kSecond + kSecond / 2));
}

TEST(Http2Scanner, OnlyTheLastCallsAreFollowed) {
  // 3,048 calls opened in a second: 1,000 resets of the oldest (not among the last
  // kTrackedStreams) are not counted, resets of the newest are, in whatever order they come.
  const std::uint32_t opened = 1000 + kTrackedStreams;
  auto newest = [](std::uint32_t from, std::uint32_t count) {  // backwards
    std::string out;
    for (std::uint32_t i = from; i < from + count; ++i) out += Reset(1 + 2 * (opened - 1 - i), 1);
    return out;
  };
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, Acked() + Open(1, opened) + Reset(1, 1000) + newest(0, 600), 0));
  ASSERT_TRUE(Feed(scanner, newest(600, opened / 2 - 600), 0));
  EXPECT_FALSE(Feed(scanner, newest(opened / 2, 1), 0));  // more than half
}

TEST(Http2Scanner, ResetsAreBoundedPerSecond) {
  // The bound each second, ten seconds in a row: far more than the bound in all.
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, Acked(), 0));
  std::uint32_t next = 1;
  for (int second = 0; second < 10; ++second) {
    std::string stream;
    for (std::uint32_t i = 0; i < kMaxRapidResetsPerSecond; ++i, next += 2)
      stream += Open(next, 1) + Reset(next, 1);
    ASSERT_TRUE(Feed(scanner, stream, second * kSecond)) << "second " << second;
  }
}

TEST(Http2Scanner, CallsOpenedBeforeTheSettingsAreAcknowledgedAreBounded) {
  // Before the client acknowledges the server's SETTINGS (and its stream limit), up to the
  // bound; the next one fails.
  Http2Scanner scanner;
  ASSERT_TRUE(Feed(scanner, Start() + Open(1, kMaxStreamsBeforeSettingsAck)));
  EXPECT_FALSE(Feed(scanner, Open(1 + 2 * kMaxStreamsBeforeSettingsAck, 1)));
  EXPECT_NE(scanner.reason().find("acknowledged the server's SETTINGS"), std::string::npos)
      << scanner.reason();
  // Acknowledged (whenever): no bound here. A SETTINGS frame that is no ack does not count.
  Http2Scanner acked;
  EXPECT_TRUE(Feed(acked, Start() + Open(1, 500) + Frame(kSettings, kAck, 0) + Open(1001, 5000)));
  Http2Scanner not_ack;
  EXPECT_FALSE(Feed(not_ack, Start() + Open(1, 500) + Frame(kSettings, 0, 6) + Open(1001, 501)));
}

}  // namespace
}  // namespace rpcboot::internal
