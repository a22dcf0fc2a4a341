// Bounds on the HTTP/2 frames a peer may send rpcboot's gRPC port, where gRPC 1.51 has none.
//
//   Http2Scanner scanner;                         // one per connection, fed what it receives
//   if (!scanner.Feed(bytes, size, now_ns)) close;  // a flood
//
//   InspectAccepted(fd);          // plaintext: a connection accepted on a guarded gRPC listener
//   InspectTlsServers(+1 / -1);   // TLS: while an rpcboot gRPC server serves TLS
//
// Measured against gRPC 1.51 (Debian 12's), one connection each, raw frames:
//   - a header block (HEADERS, then CONTINUATION frames) that never ends is kept whole, outside
//     gRPC's metadata limit (8 KiB) and its ResourceQuota: 1.5 GB sent on two connections took a
//     server from 23 MB to 1.66 GB, plaintext and TLS alike (the "CONTINUATION flood");
//   - a flood of empty DATA frames, or of WINDOW_UPDATE frames, holds the thread that reads it:
//     every other client's call failed its 5 s deadline while it lasted;
//   - calls opened and reset at once (HEADERS, then RST_STREAM: the "rapid reset",
//     CVE-2023-44487) are read faster than gRPC frees them: 20,000 on one connection took a
//     server from 23 MB to 200 MB (about 9 KB a call, still held when the last one was reset);
//   - the stream limit (server.grpc_max_concurrent_streams) holds only once the client has
//     acknowledged the SETTINGS that carry it: 20,000 calls opened by a client that never did
//     took a server from 22 MB to 264 MB.
// Such a connection is closed: a header block past kMaxHeaderBlockBytes or
// kMaxHeaderBlockFrames; more than kMaxEmptyDataFrames empty DATA frames in a row that do not
// end their stream (Netty closes at 2); within one second, more frames that carry no call
// (WINDOW_UPDATE, PING, SETTINGS, empty DATA) than kMaxControlFramesPerSecond and
// kControlFramesPerCall for each call (HEADERS) begun in it; within one second, more than
// kMaxRapidResetsPerSecond calls reset by the client that it had opened in that second or the one
// before, when they are more than half of the calls it opened in that second (Envoy's rule for
// "premature" resets is alike: a client that cancels a minority of its calls, as a hedging one
// does, is never closed); more than kMaxStreamsBeforeSettingsAck calls opened before the client
// acknowledged the server's SETTINGS (afterwards gRPC closes a connection past the limit).
//
// rpcboot reads the frame headers of each connection of its gRPC port as gRPC receives them
// (the process's recvmsg for plaintext connections, SSL_read for TLS ones, both defined here and
// passing through to the C library and OpenSSL) and fails that connection's read, so gRPC
// closes it. The bounds are far from what a client does: a header block of eight times gRPC's
// own metadata limit (no block gRPC would take is refused), and a client streaming replies at
// 300 MB/s sends about 10,000 WINDOW_UPDATEs a second, a client of unary calls a few per call.
// Nothing else is read or changed: a few comparisons per frame header, and for every other socket
// of the process one table lookup per recvmsg.
//
// Thread-safe.
#ifndef RPCBOOT_INTERNAL_HTTP2_GUARD_H_
#define RPCBOOT_INTERNAL_HTTP2_GUARD_H_

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rpcboot::internal {

inline constexpr std::uint64_t kMaxHeaderBlockBytes = 64 * 1024;
// A block of kMaxHeaderBlockBytes takes 4 frames of the default frame size: more than this many
// frames of one block is a flood of small (or empty) ones.
inline constexpr std::uint32_t kMaxHeaderBlockFrames = 64;
inline constexpr std::uint32_t kMaxEmptyDataFrames = 64;
inline constexpr std::uint32_t kMaxControlFramesPerSecond = 10000;
// Control frames a call adds to that second's allowance (a client's WINDOW_UPDATEs and pings
// follow the replies it takes: gRPC's own client sends more than 10,000 a second at its
// busiest).
inline constexpr std::uint32_t kControlFramesPerCall = 8;
// gRPC frees the calls of one connection at tens of thousands a second here: a thousand a second
// is far below what makes them pile up, and far above what a client cancels in a second.
inline constexpr std::uint32_t kMaxRapidResetsPerSecond = 1000;
// A call's reset counts once (a client may answer what the server still sends on a call it gave
// up with another RST_STREAM): the scanner remembers which of the client's last
// kTrackedStreams calls it reset (a connection has at most server.grpc_max_concurrent_streams
// open, 100 by default).
inline constexpr std::uint32_t kTrackedStreams = 2048;
// Stock gRPC clients wait for the server's SETTINGS before they open a call, and nghttp2's (Node's)
// opens at most 100 until then: ten times that.
inline constexpr std::uint32_t kMaxStreamsBeforeSettingsAck = 1000;

// Follows one HTTP/2 connection's bytes from the client: the preface, then each frame's 9-byte
// header; payloads are skipped without being read. Not thread-safe.
class Http2Scanner {
 public:
  // The next `size` bytes the peer sent, received at `now_ns` (a steady clock, in ns). False
  // once a bound is passed (and from then on).
  bool Feed(const unsigned char* data, std::size_t size, std::int64_t now_ns);
  // Why Feed said false, in words.
  std::string reason() const;
  bool failed() const { return failed_ != Bound::kNone; }

 private:
  enum class Bound {
    kNone,
    kBlockBytes,
    kBlockFrames,
    kEmptyData,
    kControlFrames,
    kRapidResets,
    kStreamsBeforeAck
  };
  // One frame header, complete in head_.
  Bound OnFrame(std::uint64_t length, unsigned char type, unsigned char flags, std::uint32_t stream,
                std::int64_t now_ns);

  std::uint32_t preface_left_ = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  bool followed_ = true;             // false: not HTTP/2 from its first byte; nothing to follow
  unsigned char head_[9] = {};
  std::uint32_t head_have_ = 0;
  std::uint64_t payload_left_ = 0;
  bool in_block_ = false;  // a HEADERS frame without END_HEADERS came, and no end since
  std::uint64_t block_bytes_ = 0;
  std::uint32_t block_frames_ = 0;
  std::uint32_t empty_data_ = 0;  // empty DATA frames in a row that did not end their stream
  std::int64_t second_start_ns_ = 0;
  std::uint32_t control_frames_ = 0;  // since second_start_ns_
  // Streams the client opens have increasing ids: those from first_stream_ on were opened in
  // this second, those from recent_stream_ on in this second or the one before.
  std::uint32_t next_stream_ = 1;  // above every stream the client opened
  std::uint32_t first_stream_ = 1;
  std::uint32_t recent_stream_ = 1;
  std::uint32_t opened_ = 0;        // streams opened since second_start_ns_
  std::uint32_t rapid_resets_ = 0;  // calls from recent_stream_ on reset since then
  // Of the client's last kTrackedStreams streams (ids below next_stream_), those it reset; a
  // stream's bit is (id / 2) % kTrackedStreams.
  std::bitset<kTrackedStreams> reset_;
  bool settings_acked_ = false;  // the client acknowledged the server's SETTINGS
  std::uint32_t opened_before_ack_ = 0;
  Bound failed_ = Bound::kNone;
};

// Scans what the peer of `fd`, a connection just accepted on a guarded plaintext gRPC listener,
// sends from now on (until another connection is accepted as `fd`).
void InspectAccepted(int fd);
// Counts the rpcboot gRPC servers serving TLS (+1 when one starts, -1 when it stops): while any
// does, every server-side TLS connection of the process that chose HTTP/2 (ALPN "h2") is
// scanned.
void InspectTlsServers(int delta);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_HTTP2_GUARD_H_
