// A bound on the HTTP/2 header blocks a peer may send rpcboot's gRPC port.
//
//   HeaderBlockScanner scanner;              // one per connection, fed what it receives in order
//   if (!scanner.Feed(bytes, size)) close;   // a header block passed the bound
//
//   InspectAccepted(fd);            // plaintext: a connection accepted on a guarded gRPC listener
//   InspectTlsServers(+1 / -1);     // TLS: while an rpcboot gRPC server serves TLS
//
// gRPC 1.51 (Debian 12's) keeps a header block (a HEADERS frame and the CONTINUATION frames
// after it) until its END_HEADERS flag, whatever its size: neither its metadata limit (8 KiB; a
// block past it fails its call, but only once it ends) nor its ResourceQuota counts it. A peer
// that sends CONTINUATION frames and never ends the block makes the server hold all it sends
// (measured: 1.5 GB sent on two connections took a server from 23 MB to 1.66 GB, plaintext and
// TLS alike), the "CONTINUATION flood" that later gRPC releases bound.
//
// rpcboot reads the frame headers of each connection of its gRPC port as gRPC receives them
// (the process's recvmsg for plaintext connections, SSL_read for TLS ones, both defined here
// and passing through to the C library and OpenSSL) and fails that connection's read, so gRPC
// closes it, once a header block passes kMaxHeaderBlockBytes or kMaxHeaderBlockFrames. The bound
// is eight times gRPC's own metadata limit: no block gRPC would accept is refused; a block
// between the two still fails only its call, as before. Nothing else is read or changed: one
// comparison per frame header, and for every other socket of the process one table lookup per
// recvmsg.
//
// Thread-safe.
#ifndef RPCBOOT_INTERNAL_HEADER_BLOCK_GUARD_H_
#define RPCBOOT_INTERNAL_HEADER_BLOCK_GUARD_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace rpcboot::internal {

inline constexpr std::uint64_t kMaxHeaderBlockBytes = 64 * 1024;
// A block of kMaxHeaderBlockBytes takes 4 frames of the default frame size: more than this many
// frames of one block is a flood of small (or empty) ones.
inline constexpr std::uint32_t kMaxHeaderBlockFrames = 64;

// Follows one HTTP/2 connection's bytes from the client: the preface, then each frame's 9-byte
// header; payloads are skipped without being read. Not thread-safe.
class HeaderBlockScanner {
 public:
  // The next `size` bytes the peer sent. False once a header block has passed a bound (and
  // from then on).
  bool Feed(const unsigned char* data, std::size_t size);
  // Why Feed said false, in words.
  std::string reason() const;
  bool failed() const { return failed_; }

 private:
  std::uint32_t preface_left_ = 24;  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  unsigned char head_[9] = {};
  std::uint32_t head_have_ = 0;
  std::uint64_t payload_left_ = 0;
  bool in_block_ = false;  // a HEADERS frame without END_HEADERS came, and no end since
  std::uint64_t block_bytes_ = 0;
  std::uint32_t block_frames_ = 0;
  bool failed_ = false;
};

// Scans what the peer of `fd`, a connection just accepted on a guarded plaintext gRPC listener,
// sends from now on (until another connection is accepted as `fd`).
void InspectAccepted(int fd);
// Counts the rpcboot gRPC servers serving TLS (+1 when one starts, -1 when it stops): while any
// does, the header blocks of every server-side TLS connection of the process that chose HTTP/2
// (ALPN "h2") are scanned.
void InspectTlsServers(int delta);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_HEADER_BLOCK_GUARD_H_
