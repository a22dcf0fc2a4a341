#include "rpcboot/internal/http2_guard.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/internal/clock.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/internal/socket.h"

namespace rpcboot::internal {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr unsigned char kData = 0x0;
constexpr unsigned char kHeaders = 0x1;
constexpr unsigned char kRstStream = 0x3;
constexpr unsigned char kSettings = 0x4;
constexpr unsigned char kPushPromise = 0x5;
constexpr unsigned char kPing = 0x6;
constexpr unsigned char kWindowUpdate = 0x8;
constexpr unsigned char kContinuation = 0x9;
constexpr unsigned char kEndStream = 0x1;
constexpr unsigned char kAck = 0x1;  // SETTINGS, PING
constexpr unsigned char kEndHeaders = 0x4;
constexpr std::int64_t kSecondNs = 1'000'000'000;

// The bit of stream `id` in Http2Scanner::reset_ (client streams have odd ids).
std::size_t Bit(std::uint32_t id) { return (id / 2) % kTrackedStreams; }

}  // namespace

bool Http2Scanner::Feed(const unsigned char* data, std::size_t size, std::int64_t now_ns) {
  if (failed()) return false;
  while (size > 0 && followed_) {
    if (preface_left_ > 0) {
      // Not HTTP/2 from its first byte (or followed from its middle): nothing to follow; gRPC
      // answers what it makes of it.
      const std::size_t at = sizeof kPreface - 1 - preface_left_;
      const std::size_t take = std::min<std::size_t>(preface_left_, size);
      if (std::memcmp(data, kPreface + at, take) != 0) {
        followed_ = false;
        return true;
      }
      preface_left_ -= static_cast<std::uint32_t>(take);
      data += take;
      size -= take;
      continue;
    }
    if (payload_left_ > 0) {
      const std::uint64_t take = std::min<std::uint64_t>(payload_left_, size);
      payload_left_ -= take;
      data += take;
      size -= static_cast<std::size_t>(take);
      continue;
    }
    const std::size_t take = std::min<std::size_t>(sizeof head_ - head_have_, size);
    std::memcpy(head_ + head_have_, data, take);
    head_have_ += static_cast<std::uint32_t>(take);
    data += take;
    size -= take;
    if (head_have_ < sizeof head_) continue;
    head_have_ = 0;
    const std::uint64_t length =
        std::uint64_t{head_[0]} << 16 | std::uint64_t{head_[1]} << 8 | std::uint64_t{head_[2]};
    const std::uint32_t stream = (std::uint32_t{head_[5]} & 0x7f) << 24 |
                                 std::uint32_t{head_[6]} << 16 | std::uint32_t{head_[7]} << 8 |
                                 std::uint32_t{head_[8]};
    failed_ = OnFrame(length, head_[3], head_[4], stream, now_ns);
    if (failed()) return false;
    payload_left_ = length;
  }
  return true;
}

Http2Scanner::Bound Http2Scanner::OnFrame(std::uint64_t length, unsigned char type,
                                          unsigned char flags, std::uint32_t stream,
                                          std::int64_t now_ns) {
  if (type == kHeaders || type == kPushPromise) {
    block_bytes_ = length;
    block_frames_ = 1;
    in_block_ = (flags & kEndHeaders) == 0;
  } else if (type == kContinuation) {
    block_bytes_ += length;
    ++block_frames_;
    in_block_ = in_block_ && (flags & kEndHeaders) == 0;
  }
  // Any other frame inside a block is a protocol error, gRPC's to answer.
  if (block_bytes_ > kMaxHeaderBlockBytes) return Bound::kBlockBytes;
  if (block_frames_ > kMaxHeaderBlockFrames) return Bound::kBlockFrames;
  if (!in_block_) {
    block_bytes_ = 0;
    block_frames_ = 0;
  }
  const bool empty_data = type == kData && length == 0 && (flags & kEndStream) == 0;
  if (empty_data) {
    if (++empty_data_ > kMaxEmptyDataFrames) return Bound::kEmptyData;
  } else if (type == kData || type == kHeaders) {
    empty_data_ = 0;
  }
  if (now_ns - second_start_ns_ >= kSecondNs) {
    // The second that ends was the one before this one only if it ended just now.
    recent_stream_ = now_ns - second_start_ns_ < 2 * kSecondNs ? first_stream_ : next_stream_;
    first_stream_ = next_stream_;
    second_start_ns_ = now_ns;
    control_frames_ = 0;
    opened_ = 0;
    rapid_resets_ = 0;
  }
  if (type == kHeaders) {
    if (stream >= next_stream_) {  // a new stream (HEADERS of an open one are its trailers)
      // Streams skipped (never opened) and this one: none reset yet.
      if (stream - next_stream_ >= 2 * kTrackedStreams) {
        reset_.reset();
      } else {
        for (std::uint32_t id = next_stream_; id <= stream; ++id) reset_.reset(Bit(id));
      }
      next_stream_ = stream + 1;
      ++opened_;
      if (!settings_acked_ && ++opened_before_ack_ > kMaxStreamsBeforeSettingsAck) {
        return Bound::kStreamsBeforeAck;
      }
    }
  }
  if (type == kSettings && (flags & kAck) != 0) settings_acked_ = true;
  // A client's own RST_STREAM of a stream it opened lately, once: a call it gave up at once.
  if (type == kRstStream && stream >= recent_stream_ && stream < next_stream_ &&
      next_stream_ - stream <= 2 * kTrackedStreams && !reset_.test(Bit(stream))) {
    reset_.set(Bit(stream));
    if (++rapid_resets_ > kMaxRapidResetsPerSecond && std::uint64_t{rapid_resets_} * 2 > opened_) {
      return Bound::kRapidResets;
    }
  }
  if (empty_data || type == kWindowUpdate || type == kPing || type == kSettings) {
    // A client's own flow control and pings follow the replies it takes: each call adds a few.
    if (++control_frames_ >
        kMaxControlFramesPerSecond + std::uint64_t{kControlFramesPerCall} * opened_) {
      return Bound::kControlFrames;
    }
  }
  return Bound::kNone;
}

std::string Http2Scanner::reason() const {
  switch (failed_) {
    case Bound::kBlockBytes:
      return absl::StrCat("a header block of more than ", kMaxHeaderBlockBytes,
                          " bytes (HEADERS and CONTINUATION frames without END_HEADERS)");
    case Bound::kBlockFrames:
      return absl::StrCat("a header block of more than ", kMaxHeaderBlockFrames,
                          " frames (CONTINUATION without END_HEADERS)");
    case Bound::kEmptyData:
      return absl::StrCat("more than ", kMaxEmptyDataFrames,
                          " empty DATA frames in a row that do not end their stream");
    case Bound::kControlFrames:
      return absl::StrCat("more than ", kMaxControlFramesPerSecond, " WINDOW_UPDATE, PING, ",
                          "SETTINGS or empty DATA frames in a second (and ", kControlFramesPerCall,
                          " per call)");
    case Bound::kRapidResets:
      return absl::StrCat("more than ", kMaxRapidResetsPerSecond,
                          " calls reset by the client within a second of opening them, more ",
                          "than half of those it opened (HEADERS, then RST_STREAM: a rapid reset)");
    case Bound::kStreamsBeforeAck:
      return absl::StrCat("more than ", kMaxStreamsBeforeSettingsAck,
                          " calls opened before the client acknowledged the server's SETTINGS ",
                          "(which carry its stream limit)");
    case Bound::kNone:
      break;
  }
  return "";
}

namespace {

// The scanners of plaintext connections, by descriptor: 1024 pages of 1024, each page made
// when a descriptor in it is first accepted. A scanner stays until another connection is
// accepted as its descriptor (nothing here sees a close); the socket it was made for is checked
// before it fails a read, so a descriptor reused for another socket is never failed.
struct Tracked {
  Http2Scanner scanner;
  dev_t dev = 0;
  ino_t ino = 0;
};
constexpr int kPageBits = 10;
constexpr int kPages = 1024;
struct Page {
  std::atomic<Tracked*> slots[1 << kPageBits];
};
std::atomic<Page*> pages[kPages];

std::atomic<Tracked*>* Slot(int fd, bool make) {
  if (fd < 0 || (fd >> kPageBits) >= kPages) return nullptr;
  std::atomic<Page*>& at = pages[fd >> kPageBits];
  Page* page = at.load(std::memory_order_acquire);
  if (page == nullptr) {
    if (!make) return nullptr;
    Page* fresh = new Page();  // zeroed
    if (at.compare_exchange_strong(page, fresh, std::memory_order_acq_rel)) {
      page = fresh;
    } else {
      delete fresh;  // another thread made it first; `page` holds theirs
    }
  }
  return &page->slots[fd & ((1 << kPageBits) - 1)];
}

bool SameSocket(int fd, const Tracked& tracked) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_dev == tracked.dev && st.st_ino == tracked.ino;
}

LogLimiter& Limiter() {
  static LogLimiter* limiter = new LogLimiter;
  return *limiter;
}

std::string Peer(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown peer";
  return PeerName(addr);
}

// Counts the connection closed and says why (once a second at most).
void LogRefused(const std::string& peer, const Http2Scanner& scanner) {
  Transports().grpc_floods_refused.fetch_add(1, std::memory_order_relaxed);
  if (!Limiter().Allow()) return;
  Log(LogLevel::kWarning,
      absl::StrCat("gRPC: closed the connection of ", peer, ": ", scanner.reason()));
}

using Recvmsg = ssize_t (*)(int, msghdr*, int);
ssize_t SystemRecvmsg(int fd, msghdr* msg, int flags) {
  return static_cast<ssize_t>(::syscall(SYS_recvmsg, fd, msg, flags));
}
// The C library's recvmsg (or the sanitizer's in front of it), past the one defined below.
Recvmsg NextRecvmsg() {
  static const Recvmsg next = [] {
    void* found = ::dlsym(RTLD_NEXT, "recvmsg");
    return found != nullptr ? reinterpret_cast<Recvmsg>(found) : &SystemRecvmsg;
  }();
  return next;
}

using SslRead = int (*)(SSL*, void*, int);
// OpenSSL's SSL_read, past the one defined below.
SslRead NextSslRead() {
  static const SslRead next = reinterpret_cast<SslRead>(::dlsym(RTLD_NEXT, "SSL_read"));
  return next;
}

std::atomic<int> tls_servers{0};
char not_followed;  // the ex_data of a TLS connection looked at and not followed

void FreeScanner(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  if (ptr != nullptr && ptr != &not_followed) delete static_cast<Http2Scanner*>(ptr);
}

int ScannerIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &FreeScanner);
  return index;
}

}  // namespace

void InspectAccepted(int fd) {
  std::atomic<Tracked*>* slot = Slot(fd, /*make=*/true);
  if (slot == nullptr) return;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  auto* tracked = new Tracked;
  tracked->dev = st.st_dev;
  tracked->ino = st.st_ino;
  // The scanner of the connection that had this descriptor before (closed since).
  delete slot->exchange(tracked, std::memory_order_acq_rel);
}

void InspectTlsServers(int delta) {
  if (delta > 0) ScannerIndex();  // made before any read can need it
  tls_servers.fetch_add(delta, std::memory_order_relaxed);
}

}  // namespace rpcboot::internal

extern "C" ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  using namespace rpcboot::internal;
  const ssize_t n = NextRecvmsg()(fd, msg, flags);
  if (n <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)) != 0) return n;
  std::atomic<Tracked*>* slot = Slot(fd, /*make=*/false);
  Tracked* tracked = slot != nullptr ? slot->load(std::memory_order_acquire) : nullptr;
  if (tracked == nullptr) return n;
  std::size_t left = static_cast<std::size_t>(n);
  const std::int64_t now = SteadyNanos();
  bool ok = true;
  for (std::size_t i = 0; ok && left > 0 && i < msg->msg_iovlen; ++i) {
    const std::size_t take = std::min(left, msg->msg_iov[i].iov_len);
    ok = tracked->scanner.Feed(static_cast<const unsigned char*>(msg->msg_iov[i].iov_base), take,
                               now);
    left -= take;
  }
  if (ok) return n;
  const int error = errno;
  std::unique_ptr<Tracked> failed(slot->exchange(nullptr, std::memory_order_acq_rel));
  if (failed == nullptr || !SameSocket(fd, *failed)) {
    // The descriptor names a socket the scanner was not made for (the connection it followed
    // closed without a connection accepted in its place): not this one's to fail.
    errno = error;
    return n;
  }
  LogRefused(Peer(fd), failed->scanner);
  ::shutdown(fd, SHUT_RDWR);
  errno = ECONNRESET;  // gRPC closes the connection
  return -1;
}

extern "C" int SSL_read(SSL* ssl, void* buf, int num) {
  using namespace rpcboot::internal;
  SslRead next = NextSslRead();
  if (next == nullptr) {
    ERR_raise_data(ERR_LIB_USER, 1, "rpcboot: OpenSSL's SSL_read not found");
    return -1;
  }
  const int n = next(ssl, buf, num);
  if (n <= 0 || tls_servers.load(std::memory_order_relaxed) == 0) return n;
  const int index = ScannerIndex();
  if (index < 0) return n;
  void* data = SSL_get_ex_data(ssl, index);
  if (data == &not_followed) return n;
  auto* scanner = static_cast<Http2Scanner*>(data);
  if (scanner == nullptr) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_size = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_size);
    const bool h2 = alpn_size == 2 && std::memcmp(alpn, "h2", 2) == 0;
    if (SSL_is_server(ssl) != 1 || !h2) {
      SSL_set_ex_data(ssl, index, &not_followed);
      return n;
    }
    scanner = new Http2Scanner;
    if (SSL_set_ex_data(ssl, index, scanner) != 1) {
      delete scanner;
      return n;
    }
  }
  const bool failed_before = scanner->failed();
  if (scanner->Feed(static_cast<const unsigned char*>(buf), static_cast<std::size_t>(n),
                    SteadyNanos())) {
    return n;
  }
  if (!failed_before) LogRefused("a TLS peer", *scanner);
  ERR_raise_data(ERR_LIB_USER, 1, "rpcboot: %s", scanner->reason().c_str());
  return -1;  // gRPC closes the connection
}
