// Native gRPC server transport (server.grpc_server: native): gRPC's HTTP/2 wire, framed by
// nghttp2, on rpcboot's own event loops; gRPC's C++ library is not on the path of a call.
//
// Threads. Loop 0 accepts and hands each connection to a loop, round robin; a loop (one thread,
// epoll) reads its connections, frames their streams, and writes what goes back. A call whose
// request is complete goes to the handler pool (CallScheduler::Submit: max_concurrent_calls,
// handler_threads and the drain count it like any call), and its reply comes back to the loop
// through the loop's inbox; methods listed in server.inline_methods run on the loop itself. A
// loop never runs a handler that may block, so a handler that blocks holds only its own call.
//
// Limits, each enforced before the resource is spent: connections (max_connections: one more is
// closed at once), streams per connection (grpc_max_concurrent_streams, in the SETTINGS sent and
// counted here too: a stream over it is refused, REFUSED_STREAM), request headers (16 KiB), a
// message's length (max_message_bytes, checked on its 5-byte prefix: the message grows as its
// bytes arrive), the request bytes held by all calls not yet handled (grpc_memory_quota), reply
// bytes a connection's peer has not read (grpc_max_unsent_bytes: a reply past it becomes
// RESOURCE_EXHAUSTED), a connection's handshake (frame_timeout), a connection without a call
// (idle_timeout: GOAWAY, then closed) and a connection's age (grpc_max_connection_age, then its
// grace). Compressed requests (server.grpc_compression) are refused (UNIMPLEMENTED) before any of
// their bytes is kept, or inflated on the loop with the output bounded by max_message_bytes and
// counted in the memory quota; replies are compressed by the call's thread (gzip).
//
// grpc.health.v1.Health (Check and Watch) and server reflection are served by the loops (they
// run no user code). TLS (server.tls) is OpenSSL's on the loops' non-blocking sockets, with ALPN
// h2 and the client certificate as the caller's identity, as on the Thrift port.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/call_scheduler.h"
#include "rpcboot/internal/dispatch.h"
#include "rpcboot/internal/grpc_compression.h"
#include "rpcboot/internal/http2_guard.h"
#include "rpcboot/internal/in_place.h"
#include "rpcboot/internal/listener_guard.h"
#include "rpcboot/internal/loop_runners.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server_context.h"
#include "rpcboot/transport/grpc_health.h"
#include "rpcboot/transport/grpc_reflection.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot::internal {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Request headers of one stream, names and values together (gRPC's own hard limit is 16 KiB).
constexpr std::size_t kMaxRequestHeaderBytes = 16 * 1024;
// One read's buffer; a loop reads a connection at most this many times per wake, so one busy
// connection does not starve the others of its loop.
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerWake = 4;
// Frames are taken from nghttp2 until this much waits for the socket; the rest when it drains.
constexpr std::size_t kWriteBatch = 256 * 1024;
// How often a loop looks at its connections' timers.
constexpr std::chrono::milliseconds kTick{100};
// A call run in place that keeps its thread busy this long has the loop handed on (one asleep in
// the kernel, at two of the monitor's checks in a row: 0.5-1 ms).
constexpr std::chrono::milliseconds kBusyFor{2};
// How long a finished connection waits for its peer to close it.
constexpr std::chrono::seconds kLinger{2};
// The flow-control window each stream opens to the peer: room for a whole request of
// max_message_bytes and its prefix, at least 1 MiB; the connection's is four times that.
// Received bytes are taken at once, and what they hold is counted against grpc_memory_quota as
// they arrive, so the windows bound nothing that is not bounded already; a window just short of
// a message would stall each such request a round trip (a request of 1 MiB and a few bytes,
// against a 1 MiB window, waited for its WINDOW_UPDATE to send its last 9 bytes).
constexpr std::size_t kMostWindow = (std::size_t{1} << 31) - 1;  // HTTP/2's largest
uint32_t StreamWindow(std::size_t max_message_bytes) {
  return static_cast<uint32_t>(
      std::clamp<std::size_t>(max_message_bytes + 1024, 1 << 20, kMostWindow));
}

// server.grpc_compression gzip: replies at least this long are compressed.
constexpr std::size_t kCompressFrom = 1024;
// A connection keeps the string of a finished call's request (its next request of at least
// kSpareFrom bytes is gathered in it) and of its reply (the next reply is encoded in it), up to
// kSpareKeptBytes each (and all connections' together within HoldSpare's bound), and lets them go
// once no call has started or ended for kSpareFor: large calls in a row reuse warm memory rather
// than taking fresh pages for each.
constexpr std::size_t kSpareFrom = 64 * 1024;
constexpr std::size_t kSpareKeptBytes = 4 << 20;
constexpr auto kSpareFor = std::chrono::seconds(1);

// A string kept for reuse, and the bytes of the spare bound it holds.
struct SpareString {
  std::string bytes;
  std::size_t held = 0;
};

// "%" and the bytes outside printable ASCII, as %XX: a grpc-message value.
std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '%') {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The longest timeout a call keeps: 99,999,999 hours (grpc-timeout's largest) is past what a
// clock's nanoseconds hold, so longer ones are cut to this (a deadline 100 years away).
constexpr std::chrono::nanoseconds kLongestTimeout = std::chrono::hours(24 * 365 * 100);

// A grpc-timeout value ("100m", "5S"): at most 8 digits and a unit, at most kLongestTimeout.
// nullopt when malformed.
std::optional<std::chrono::nanoseconds> ParseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  int64_t amount = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    amount = amount * 10 + (c - '0');
  }
  int64_t unit_ns = 0;  // one unit, in nanoseconds
  switch (value.back()) {
    case 'H':
      unit_ns = int64_t{3600} * 1000 * 1000 * 1000;
      break;
    case 'M':
      unit_ns = int64_t{60} * 1000 * 1000 * 1000;
      break;
    case 'S':
      unit_ns = 1000 * 1000 * 1000;
      break;
    case 'm':
      unit_ns = 1000 * 1000;
      break;
    case 'u':
      unit_ns = 1000;
      break;
    case 'n':
      unit_ns = 1;
      break;
    default:
      return std::nullopt;
  }
  if (amount > kLongestTimeout.count() / unit_ns) return kLongestTimeout;
  return std::chrono::nanoseconds(amount * unit_ns);
}

// One header field for nghttp2 (it copies names and values when the frame is submitted).
nghttp2_nv Header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

// A gRPC message's 5-byte prefix, at `at`: compressed or not, and its length `n`.
void WriteMessagePrefix(char* at, std::size_t n, bool compressed) {
  at[0] = compressed ? '\1' : '\0';
  at[1] = static_cast<char>(n >> 24);
  at[2] = static_cast<char>(n >> 16);
  at[3] = static_cast<char>(n >> 8);
  at[4] = static_cast<char>(n);
}

// A gRPC message: its prefix and `bytes`.
std::string FramedMessage(std::string_view bytes, bool compressed) {
  std::string out(5 + bytes.size(), '\0');
  WriteMessagePrefix(out.data(), bytes.size(), compressed);
  if (!bytes.empty()) std::memcpy(out.data() + 5, bytes.data(), bytes.size());
  return out;
}

// What a stream asks for.
enum class Kind { kMethod, kUnknown, kHealthCheck, kHealthWatch, kReflection };

class Loop;
class NativeGrpcServerTransport;

// One HTTP/2 stream: one call.
struct Stream {
  int32_t id = 0;
  Kind kind = Kind::kUnknown;
  const Route* route = nullptr;
  // Request headers.
  std::string path;
  std::string method;  // :method
  std::string content_type;
  std::string encoding;  // grpc-encoding
  GrpcCodec codec = GrpcCodec::kIdentity;
  bool accepts_gzip = false;  // grpc-accept-encoding lists gzip (read when replies may be gzip)
  std::string authorization;
  std::string traceparent;
  std::string tracestate;
  bool shadow = false;
  CallMetadata metadata;  // the caller's own (ServerContext::metadata)
  bool bad_timeout = false;
  std::optional<ServerContext::Clock::time_point> deadline;
  std::size_t header_bytes = 0;
  // Request messages, as they arrive.
  char prefix[5] = {};
  std::size_t prefix_got = 0;
  std::size_t length = 0;
  bool in_message = false;
  bool compressed = false;  // the message's prefix says so
  std::string message;
  std::vector<std::string> complete;  // messages received whole, not yet handled
  std::size_t held = 0;               // request bytes counted against the memory quota
  bool half_closed = false;           // the client sent END_STREAM
  // The call.
  bool answered = false;  // its end (trailers, or a trailers-only reply) is submitted
  int64_t started = 0;    // for the method's CallStats
  // Reply messages not yet handed to nghttp2, and how the stream ends once they are out.
  std::string out;
  std::size_t out_sent = 0;    // framed: handed to nghttp2 (ReadReply)
  std::size_t out_copied = 0;  // and copied onto the connection's write buffer (SendReplyData)
  std::size_t counted = 0;     // of `out`, in the connection's `unsent`
  bool headers_sent = false;
  bool reply_gzip = false;  // grpc-encoding: gzip sent with the headers
  bool end_pending = false;
  StatusCode end_code = StatusCode::kOk;
  std::string end_message;
  CallMetadata end_metadata;  // the reply's metadata, as sent ("-bin" values base64)
  bool deferred = false;      // nghttp2 waits for more of `out`
  int watch_sent = -1;        // Health/Watch: the status last sent
};

struct Connection : std::enable_shared_from_this<Connection> {
  int fd = -1;
  std::string peer;  // "ipv4:127.0.0.1:4711", as gRPC names a peer
  Loop* loop = nullptr;
  nghttp2_session* session = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams;
  std::string wbuf;  // bytes for the socket
  std::size_t wbuf_sent = 0;
  // Reply bytes of streams whose replies nghttp2 has not framed in full (flow control holds them
  // back while the peer does not read): each reply counts whole until its last byte is framed.
  std::size_t unsent = 0;
  int dispatched = 0;  // calls whose handler has not answered
  bool writable_wait = false;
  bool heard = false;  // the handshake is over: the client's preface and SETTINGS came
  bool goaway = false;
  bool lingering = false;  // done: its write side shut, waiting for the peer to close
  bool closed = false;
  Http2Scanner scanner;  // floods nghttp2 would take (rpcboot/internal/http2_guard.h)
  ServerTlsSession tls;  // server.tls
  SteadyClock::time_point opened;
  SteadyClock::time_point last_call;       // a call started or ended (for idle_timeout)
  SpareString spare_request, spare_reply;  // see kSpareKeptBytes; the loop's
  SteadyClock::time_point aged_at;         // when its age passed (GOAWAY sent)
  SteadyClock::time_point linger_since;
  bool aged = false;

  ~Connection() {
    if (session != nullptr) nghttp2_session_del(session);
  }
  Stream* StreamOf(int32_t id) {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }
};
using ConnectionPtr = std::shared_ptr<Connection>;

// What a handler needs, owned by the call: the loop goes on with the connection.
struct Call {
  ConnectionPtr conn;
  int32_t stream_id;
  const Route* route;
  std::string request;
  std::string authorization, traceparent, tracestate;
  bool shadow;
  std::optional<ServerContext::Clock::time_point> deadline;
  int64_t started;  // for the method's CallStats
  bool gzip_reply;  // server.grpc_compression gzip, and the caller takes gzip
  CallMetadata metadata;
  std::string reply_storage;  // the connection's spare reply string, for this reply
};

// A handler's answer on its way back to the connection's loop.
struct Answer {
  ConnectionPtr conn;
  int32_t stream_id = 0;
  HandlerOutcome outcome;
  bool shed = false;            // refused before its handler ran
  bool compressed = false;      // outcome.reply is gzip
  bool framed = false;          // outcome.reply starts with its 5-byte message prefix
  std::string request;          // the call's request bytes, for the connection to reuse
  CallMetadata reply_metadata;  // what the handler added (ServerContext::AddReplyMetadata)
  const Route* route = nullptr;
  int64_t started = 0;  // for the method's CallStats
};

class Loop {
 public:
  explicit Loop(NativeGrpcServerTransport* transport) : transport_(transport) {}
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  absl::Status Init();
  void SetListener(int fd) { listen_fd_ = fd; }
  // Runs the loop on the calling thread until it stops (true) or is handed to another thread
  // while this one runs a call in place that blocked (false).
  bool Run();
  // The monitor's check of the call this loop runs in place (InPlaceMonitor::Client).
  bool CheckBlocked();
  bool RunningHere() const { return here_.running(); }

  // Any thread.
  void Adopt(int fd, std::string peer);
  void Post(Answer answer);
  void PostDrain();
  void PostStop();
  // Calls whose handlers have not answered, and connections whose output waits for their peer
  // (for Shutdown's wait).
  int busy() const { return busy_.load(); }

  // Loop thread (nghttp2's callbacks).
  int OnBeginHeaders(Connection& conn, const nghttp2_frame* frame);
  int OnHeader(Connection& conn, const nghttp2_frame* frame, std::string_view name,
               std::string_view value);
  int OnFrameRecv(Connection& conn, const nghttp2_frame* frame);
  int OnData(Connection& conn, int32_t stream_id, const uint8_t* data, std::size_t len);
  int OnStreamClose(Connection& conn, int32_t stream_id);
  // The DATA frame nghttp2 framed from the reply (ReadReply), its bytes copied straight from the
  // stream's `out` onto the connection's write buffer.
  int SendReplyData(Connection& conn, const nghttp2_frame& frame, const uint8_t* header,
                    std::size_t length);
  ssize_t ReadReply(Connection& conn, int32_t stream_id, std::size_t length, uint32_t* flags);

 private:
  void Accept();
  void Open(int fd, std::string peer);
  void OnReadable(const ConnectionPtr& conn);
  void Flush(const ConnectionPtr& conn);
  void Close(const ConnectionPtr& conn);
  void Linger(const ConnectionPtr& conn);
  void Watch(const ConnectionPtr& conn, bool writable);
  void TakeInbox();
  template <class Fn>
  void ToInbox(Fn&& change);
  void Scan(SteadyClock::time_point now);
  void Drain();
  void GoAway(Connection& conn, const char* why);

  // A stream's request is complete (or one of a stream's messages is): serve it.
  void Serve(Connection& conn, Stream& stream);
  void Dispatch(Connection& conn, Stream& stream);
  std::optional<std::string> HealthService(Connection& conn, Stream& stream);
  Answer Handle(Call& call);
  void Submit(std::shared_ptr<Call> call);
  static Answer Refused(const Call& call, StatusCode code, const std::string& why);
  bool RunReady();
  void HandOff(uint64_t running);
  void FlushDirty();
  void Deliver(Answer answer);
  // Ends `stream` with `code` and the handler's reply `metadata` (trailers-only when nothing was
  // sent).
  void Finish(Connection& conn, Stream& stream, StatusCode code, const std::string& message,
              CallMetadata metadata = {});
  void SendMessage(Connection& conn, Stream& stream, std::string_view bytes,
                   bool compressed = false) {
    SendFramed(conn, stream, FramedMessage(bytes, compressed), compressed);
  }
  // A message with its prefix in place, taken whole when nothing waits before it.
  void SendFramed(Connection& conn, Stream& stream, std::string framed, bool compressed);
  void SubmitHeaders(Connection& conn, Stream& stream);
  void Release(Stream& stream);
  // A connection's spare strings: `used` kept (emptied) when larger than `spare` and within
  // kSpareKeptBytes and HoldSpare's bound; taken for use; let go.
  void Keep(SpareString* spare, std::string* used);
  std::string Take(SpareString* spare);
  void Drop(SpareString* spare);
  // RESOURCE_EXHAUSTED: the requests held would pass server.grpc_memory_quota.
  std::string QuotaRefusal() const;
  void RefuseOverQuota(Connection& conn, Stream& stream);
  // Inflates the stream's whole compressed message; false: refused (answered).
  bool Inflate(Connection& conn, Stream& stream);
  void WatchesNotServing();

  NativeGrpcServerTransport* const transport_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int listen_fd_ = -1;
  bool listening_ = false;
  bool listener_added_ = false;
  bool draining_ = false;
  bool stopping_ = false;
  std::map<int, ConnectionPtr> connections_;
  std::vector<ConnectionPtr> dirty_;         // have frames to send after this wake
  std::deque<std::shared_ptr<Call>> ready_;  // to run in place once this wake's reads are framed
  // The call run in place, and the lock the monitor's check holds through a hand-off.
  InPlaceCall here_;
  const Route* here_route_ = nullptr;
  std::mutex handoff_mu_;
  std::atomic<int> busy_{0};

  std::mutex inbox_mu_;
  struct Inbox {
    std::vector<std::pair<int, std::string>> adopt;
    std::vector<Answer> answers;
    bool drain = false;
    bool stop = false;
  } inbox_;
  bool woken_ = false;  // guarded by inbox_mu_: a wake is pending
};

class NativeGrpcServerTransport final : public ServerTransport, private InPlaceMonitor::Client {
 public:
  explicit NativeGrpcServerTransport(const ServerOptions& options) : options_(options) {}
  ~NativeGrpcServerTransport() override { Shutdown(SteadyClock::now()); }

  absl::Status Start(const MethodTable& table, CallScheduler* scheduler) override {
    table_ = &table;
    scheduler_ = scheduler;
    if (!options_.tls.cert_file.empty()) {
      absl::StatusOr<TlsContext> tls = MakeServerTlsContext(options_.tls, "server.tls");
      if (!tls.ok()) return tls.status();
      tls_ = *std::move(tls);
      SSL_CTX_set_alpn_select_cb(tls_.get(), SelectH2, nullptr);
    }
    reflection_ = std::make_unique<GrpcReflection>(table);
    health_.Add("");
    for (const std::string& service : table.services()) health_.Add(service);
    absl::StatusOr<int> fd = ListenNonBlocking("gRPC", options_.host, options_.grpc_port, &port_);
    if (!fd.ok()) return fd.status();
    listen_fd_ = *fd;
    spare_ = std::make_unique<SpareDescriptor>();
    const int io_threads = IoThreads(options_.io_threads);
    for (int i = 0; i < io_threads; ++i) {
      loops_.push_back(std::make_unique<Loop>(this));
      if (absl::Status s = loops_.back()->Init(); !s.ok()) {
        loops_.clear();
        ::close(listen_fd_);
        listen_fd_ = -1;
        return s;
      }
    }
    loops_.front()->SetListener(listen_fd_);
    if (absl::Status s = runners_.StartAll(&loops_, scheduler_->threads()); !s.ok()) {
      loops_.clear();
      ::close(listen_fd_);
      listen_fd_ = -1;
      return s;
    }
    if (std::string error; !monitor_.Start(&error)) {
      // Without the monitor no call runs in place: every call goes to the handler pool.
      Log(LogLevel::kWarning, absl::StrCat("gRPC: no monitor thread (", error,
                                           "); every call goes to the handler pool"));
    }
    Log(LogLevel::kInfo,
        absl::StrCat(
            "gRPC listening on ", options_.host, ":", port_, tls_ ? " (TLS" : " (plaintext",
            tls_ && options_.tls.require_client_cert ? ", client certificates required" : "",
            "; native HTTP/2, I/O threads: ", loops_.size(), ")"));
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void StopAccepting() override {
    if (loops_.empty() || accepting_stopped_.exchange(true)) return;
    health_.StopServing();
    for (auto& loop : loops_) loop->PostDrain();
  }

  // Stops the loops once the replies of finished calls are written (or `deadline` passes). The
  // Loop objects live on until the transport is destroyed, which Server does only after the
  // handler pool is gone: a handler that outlived the grace period may still post its reply.
  void Shutdown(SteadyClock::time_point deadline) override {
    if (loops_.empty() || stopped_) return;
    stopped_ = true;
    StopAccepting();
    // Replies of calls that finished are written before the sockets close.
    runners_.StopAll(loops_, deadline, &monitor_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    spare_.reset();
  }

  // Loop 0 accepted `fd`: give it to a loop, round robin.
  void Assign(int fd, std::string peer) {
    loops_[next_loop_++ % loops_.size()]->Adopt(fd, std::move(peer));
  }
  void ShedOneConnection(int listen_fd) {
    if (spare_ != nullptr) spare_->Shed(listen_fd);
  }

  const ServerOptions& options() const { return options_; }
  // The TLS context, or null for plaintext.
  SSL_CTX* tls() const { return tls_.get(); }
  const MethodTable& table() const { return *table_; }
  CallScheduler& scheduler() { return *scheduler_; }
  const GrpcReflection& reflection() const { return *reflection_; }
  const GrpcHealth& health() const { return health_; }
  std::atomic<int>& connections() { return connections_; }
  bool accepting_stopped() const { return accepting_stopped_.load(); }
  // server.grpc_compression: compressed requests are inflated (accept or gzip).
  bool accepts_compression() const {
    return options_.grpc_compression != ServerOptions::GrpcCompression::kOff;
  }
  // server.grpc_compression gzip: replies go compressed to callers that take gzip.
  bool compresses_replies() const {
    return options_.grpc_compression == ServerOptions::GrpcCompression::kGzip;
  }

  // Request bytes held by calls (received, not yet handled): false when `bytes` more would pass
  // server.grpc_memory_quota (nothing is counted then).
  bool Hold(std::size_t bytes) {
    if (options_.grpc_memory_quota == 0) return true;
    std::size_t now = held_.load(std::memory_order_relaxed);
    do {
      if (now + bytes > options_.grpc_memory_quota) return false;
    } while (!held_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
  }
  // The connections' spare strings (kSpareKeptBytes), counted apart from the quota: all of them
  // together hold at most a quarter of it (64 MiB with no quota), and requests never wait on
  // them.
  bool HoldSpare(std::size_t bytes) {
    const std::size_t limit =
        options_.grpc_memory_quota == 0 ? std::size_t{64} << 20 : options_.grpc_memory_quota / 4;
    std::size_t now = spare_held_.load(std::memory_order_relaxed);
    do {
      if (now + bytes > limit) return false;
    } while (!spare_held_.compare_exchange_weak(now, now + bytes, std::memory_order_relaxed));
    return true;
  }
  void UnholdSpare(std::size_t bytes) { spare_held_.fetch_sub(bytes, std::memory_order_relaxed); }
  void Unhold(std::size_t bytes) {
    if (options_.grpc_memory_quota > 0) held_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // At most one log line a second for floods (refusals, descriptors, the quota).
  bool ShouldLogFlood() { return flood_log_.Allow(); }

  // Whether a loop may run a call in place now (else it goes to the handler pool).
  bool MayRunHere() const { return monitor_.running(); }
  // A loop started a call in place: the monitor must be awake to see it block.
  void NoteRunningHere() { monitor_.Note(); }
  // A loop between its calls: it checks the loops' calls in place when a check is due.
  void PokeMonitor() { monitor_.Poke(); }
  // The check, under the loop's hand-off lock: a spare thread can take a loop.
  bool ReserveRunner() { return runners_.Reserve(); }
  // `loop`'s thread is held by a blocked call: a spare thread takes the loop.
  void HandOver(Loop* loop) { runners_.HandOver(loop); }

 private:
  // InPlaceMonitor::Client: the loops' calls in place.
  bool CheckInPlace() override {
    bool active = false;
    for (auto& loop : loops_) active = loop->CheckBlocked() || active;
    return active;
  }
  bool AnyInPlace() const override {
    for (const auto& loop : loops_) {
      if (loop->RunningHere()) return true;
    }
    return false;
  }

  // ALPN: HTTP/2 when the client offers it (gRPC's clients always do); a client that offers
  // nothing is served all the same.
  static int SelectH2(SSL*, const unsigned char** out, unsigned char* outlen,
                      const unsigned char* in, unsigned int inlen, void*) {
    static const unsigned char kH2[] = {2, 'h', '2'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, kH2, sizeof kH2, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED) {
      return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }

  const ServerOptions options_;
  TlsContext tls_;
  const MethodTable* table_ = nullptr;
  CallScheduler* scheduler_ = nullptr;
  std::unique_ptr<GrpcReflection> reflection_;
  GrpcHealth health_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::unique_ptr<SpareDescriptor> spare_;
  std::vector<std::unique_ptr<Loop>> loops_;
  LoopRunners<Loop> runners_{"gRPC"};
  InPlaceMonitor monitor_{this};
  std::atomic<int> connections_{0};
  std::atomic<std::size_t> held_{0};
  std::atomic<std::size_t> spare_held_{0};
  std::atomic<bool> accepting_stopped_{false};
  bool stopped_ = false;
  std::size_t next_loop_ = 0;  // loop 0's thread only
  LogLimiter flood_log_;
};

// ---- nghttp2's callbacks: each hands the event to the connection's loop ----

Connection& ConnOf(void* user_data) { return *static_cast<Connection*>(user_data); }

int OnBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return ConnOf(user_data).loop->OnBeginHeaders(ConnOf(user_data), frame);
}
int OnHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
               const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  return ConnOf(user_data).loop->OnHeader(
      ConnOf(user_data), frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
      std::string_view(reinterpret_cast<const char*>(value), valuelen));
}
int OnFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return ConnOf(user_data).loop->OnFrameRecv(ConnOf(user_data), frame);
}
int OnDataCb(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
             void* user_data) {
  return ConnOf(user_data).loop->OnData(ConnOf(user_data), stream_id, data, len);
}
int OnFrameSendCb(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  // The reply ended a stream whose request the client is still sending (refused before it was
  // whole): it is told to stop (RST_STREAM NO_ERROR, as HTTP/2 lets a server do), so that it
  // sends nothing more on it.
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    Stream* stream = ConnOf(user_data).StreamOf(frame->hd.stream_id);
    if (stream != nullptr && !stream->half_closed) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
  }
  return 0;
}
int OnStreamCloseCb(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
  return ConnOf(user_data).loop->OnStreamClose(ConnOf(user_data), stream_id);
}
ssize_t ReadReplyCb(nghttp2_session*, int32_t stream_id, uint8_t*, size_t length, uint32_t* flags,
                    nghttp2_data_source*, void* user_data) {
  return ConnOf(user_data).loop->ReadReply(ConnOf(user_data), stream_id, length, flags);
}
int SendReplyDataCb(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                    nghttp2_data_source*, void* user_data) {
  return ConnOf(user_data).loop->SendReplyData(ConnOf(user_data), *frame, framehd, length);
}

class Callbacks {
 public:
  Callbacks() {
    nghttp2_session_callbacks_new(&callbacks_);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks_, OnBeginHeadersCb);
    nghttp2_session_callbacks_set_on_header_callback(callbacks_, OnHeaderCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks_, OnFrameRecvCb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_, OnDataCb);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_, OnStreamCloseCb);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks_, OnFrameSendCb);
    nghttp2_session_callbacks_set_send_data_callback(callbacks_, SendReplyDataCb);
    nghttp2_option_new(&option_);
    // nghttp2 ends a connection past 1,000 resets and 33 a second, whatever the client's other
    // calls: a client that cancels 1% of 30,000 calls a second would lose its connection within
    // seconds. Calls reset at once are bounded by the connection's Http2Scanner instead (more
    // than 1,000 a second, and more than half of the calls opened: a rapid reset).
    nghttp2_option_set_stream_reset_rate_limit(option_, uint64_t{1} << 40, uint64_t{1} << 40);
  }
  ~Callbacks() {
    nghttp2_option_del(option_);
    nghttp2_session_callbacks_del(callbacks_);
  }
  const nghttp2_session_callbacks* get() const { return callbacks_; }
  const nghttp2_option* option() const { return option_; }

 private:
  nghttp2_session_callbacks* callbacks_ = nullptr;
  nghttp2_option* option_ = nullptr;
};

const Callbacks& TheCallbacks() {
  static const Callbacks* callbacks = new Callbacks();
  return *callbacks;
}

// ---- Loop ----

Loop::~Loop() {
  for (auto& [fd, conn] : connections_) {
    conn->closed = true;
    ::close(fd);
  }
  std::lock_guard<std::mutex> lock(inbox_mu_);
  for (auto& [fd, peer] : inbox_.adopt) {
    ::close(fd);
    transport_->connections().fetch_sub(1);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status Loop::Init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("gRPC: cannot create an event loop: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  return absl::OkStatus();
}

// Changes the inbox under its lock, then wakes the loop unless a wake is already on its way.
template <class Fn>
void Loop::ToInbox(Fn&& change) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    change(inbox_);
    wake = !std::exchange(woken_, true);
  }
  if (wake) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

void Loop::Adopt(int fd, std::string peer) {
  ToInbox([&](Inbox& inbox) { inbox.adopt.emplace_back(fd, std::move(peer)); });
}
void Loop::Post(Answer answer) {
  ToInbox([&](Inbox& inbox) { inbox.answers.push_back(std::move(answer)); });
}
void Loop::PostDrain() {
  ToInbox([](Inbox& inbox) { inbox.drain = true; });
}
void Loop::PostStop() {
  ToInbox([](Inbox& inbox) { inbox.stop = true; });
}

bool Loop::Run() {
  if (listen_fd_ >= 0 && !listener_added_) {
    listener_added_ = true;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    listening_ = !draining_ && ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0;
  }
  std::vector<epoll_event> events(256);
  auto next_scan = SteadyClock::now() + kTick;
  while (!stopping_) {
    // Calls left to run by a thread that handed the loop on are run at once.
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                         ready_.empty() ? static_cast<int>(kTick.count()) : 0);
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::kError, absl::StrCat("gRPC: epoll_wait: ", std::strerror(errno)));
      std::this_thread::sleep_for(kTick);
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count = 0;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        TakeInbox();
        continue;
      }
      if (fd == listen_fd_) {
        Accept();
        continue;
      }
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;
      ConnectionPtr conn = it->second;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable(conn);
      if (!conn->closed && (events[i].events & EPOLLOUT)) {
        if (conn->tls.wants_write) {
          // A TLS read waited for the socket to take bytes (a handshake message).
          conn->tls.wants_write = false;
          OnReadable(conn);
        }
        if (!conn->closed) dirty_.push_back(conn);
      }
    }
    FlushDirty();
    if (!ready_.empty() && !RunReady()) return false;  // handed off
    auto now = SteadyClock::now();
    if (now >= next_scan) {
      Scan(now);
      next_scan = now + kTick;
    }
  }
  // Stopped: every connection closes now.
  std::vector<ConnectionPtr> all;
  for (auto& [fd, conn] : connections_) all.push_back(conn);
  for (auto& conn : all) Close(conn);
  return true;
}

void Loop::Accept() {
  for (int accepted = 0; accepted < 64; ++accepted) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        if (transport_->ShouldLogFlood()) {
          Log(LogLevel::kWarning,
              "gRPC: out of file descriptors: a new connection is closed at once");
        }
        transport_->ShedOneConnection(listen_fd_);
      } else if (errno == ENOBUFS || errno == ENOMEM) {
        if (transport_->ShouldLogFlood()) {
          Log(LogLevel::kWarning,
              absl::StrCat("gRPC: cannot accept a connection: ", std::strerror(errno)));
        }
      }
      return;
    }
    if (transport_->connections().fetch_add(1) >= transport_->options().max_connections) {
      transport_->connections().fetch_sub(1);
      Transports().grpc_connections_refused.fetch_add(1, std::memory_order_relaxed);
      if (transport_->ShouldLogFlood()) {
        Log(LogLevel::kWarning,
            absl::StrCat("gRPC: ", transport_->options().max_connections,
                         " connections open (server.max_connections): a new one is closed"));
      }
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string name = PeerName(addr);
    transport_->Assign(fd, (addr.ss_family == AF_INET6 ? "ipv6:" : "ipv4:") + name);
  }
}

void Loop::Open(int fd, std::string peer) {
  auto conn = std::make_shared<Connection>();
  conn->fd = fd;
  conn->peer = std::move(peer);
  conn->loop = this;
  conn->opened = conn->last_call = SteadyClock::now();
  if (SSL_CTX* tls = transport_->tls()) {
    conn->tls.ssl = NewSsl(tls, fd);
    if (conn->tls.ssl == nullptr) {
      ::close(fd);
      transport_->connections().fetch_sub(1);
      return;
    }
    SSL_set_accept_state(conn->tls.ssl);
  }
  const ServerOptions& options = transport_->options();
  if (nghttp2_session_server_new2(&conn->session, TheCallbacks().get(), conn.get(),
                                  TheCallbacks().option()) != 0) {
    if (transport_->ShouldLogFlood()) {
      Log(LogLevel::kWarning, "gRPC: out of memory for a connection from " + conn->peer);
    }
    ::close(fd);
    transport_->connections().fetch_sub(1);
    return;
  }
  const uint32_t window = StreamWindow(options.max_message_bytes);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
       static_cast<uint32_t>(std::max(0, options.grpc_max_concurrent_streams))},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxRequestHeaderBytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 4);
  nghttp2_session_set_local_window_size(
      conn->session, NGHTTP2_FLAG_NONE, 0,
      static_cast<int32_t>(std::min<std::size_t>(4 * std::size_t{window}, kMostWindow)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ::close(fd);
    transport_->connections().fetch_sub(1);
    return;
  }
  connections_[fd] = conn;
  if (draining_) GoAway(*conn, "the server is shutting down");
  Flush(conn);
}

void Loop::TakeInbox() {
  Inbox inbox;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    std::swap(inbox, inbox_);
    woken_ = false;
  }
  for (auto& [fd, peer] : inbox.adopt) Open(fd, std::move(peer));
  for (Answer& answer : inbox.answers) Deliver(std::move(answer));
  if (inbox.drain && !draining_) Drain();
  if (inbox.stop) stopping_ = true;
}

void Loop::Drain() {
  draining_ = true;
  if (listening_) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    listening_ = false;
  }
  WatchesNotServing();
  std::vector<ConnectionPtr> all;
  for (auto& [fd, conn] : connections_) all.push_back(conn);
  for (auto& conn : all) {
    if (conn->lingering) continue;
    GoAway(*conn, "the server is shutting down");
    dirty_.push_back(conn);
  }
}

// GOAWAY naming the last stream taken: the calls on it go on, and a client sends its next ones
// elsewhere (streams it opened past that one never ran, so it may send them again).
void Loop::GoAway(Connection& conn, const char* why) {
  if (conn.goaway) return;
  conn.goaway = true;
  nghttp2_submit_goaway(conn.session, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(conn.session), NGHTTP2_NO_ERROR,
                        reinterpret_cast<const uint8_t*>(why), std::strlen(why));
}

void Loop::Scan(SteadyClock::time_point now) {
  const ServerOptions& options = transport_->options();
  std::vector<ConnectionPtr> all;
  for (auto& [fd, conn] : connections_) all.push_back(conn);
  for (auto& conn : all) {
    if (conn->closed) continue;
    if (conn->lingering) {
      if (now - conn->linger_since > kLinger) Close(conn);
      continue;
    }
    if (!conn->heard && now - conn->opened > options.frame_timeout) {
      Close(conn);  // no HTTP/2 preface and settings within frame_timeout
      continue;
    }
    if (conn->goaway) {
      // Past its age: its calls have the grace to end.
      if (conn->aged && now - conn->aged_at > options.grpc_max_connection_age_grace) Close(conn);
      continue;
    }
    if (now - conn->last_call > kSpareFor) {
      Drop(&conn->spare_request);
      Drop(&conn->spare_reply);
    }
    if (conn->streams.empty() && now - conn->last_call > options.idle_timeout) {
      GoAway(*conn, "idle");
      Flush(conn);
      continue;
    }
    if (options.grpc_max_connection_age.count() > 0 &&
        now - conn->opened > options.grpc_max_connection_age) {
      conn->aged = true;
      conn->aged_at = now;
      GoAway(*conn, "max_age");
      Flush(conn);
    }
  }
}

void Loop::OnReadable(const ConnectionPtr& conn) {
  char in[kReadChunk];
  SSL* ssl = conn->lingering ? nullptr : conn->tls.ssl;
  // Bytes TLS has taken from the socket are read before the loop waits again: epoll would not
  // report them.
  for (int reads = 0;
       !conn->closed && (reads < kReadsPerWake || (ssl != nullptr && SSL_has_pending(ssl) != 0));
       ++reads) {
    ssize_t got = ssl != nullptr ? ServerTlsRecv(conn->tls, conn->fd, in, sizeof in)
                                 : ::recv(conn->fd, in, sizeof in, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (conn->tls.wants_write) Watch(conn, true);  // a handshake message waits to go out
        break;
      }
      if (errno == EPROTO && transport_->ShouldLogFlood()) {
        // TLS refused the peer: a failed handshake (a wrong certificate, plaintext on this
        // port) or a corrupt record.
        Log(LogLevel::kWarning, "gRPC: closing " + conn->peer + ": TLS: " + conn->tls.error);
      }
      Close(conn);
      return;
    }
    if (got == 0) {
      Close(conn);
      return;
    }
    if (conn->lingering) continue;  // what a closing peer still sends is dropped
    if (!conn->scanner.Feed(reinterpret_cast<const unsigned char*>(in),
                            static_cast<std::size_t>(got), SteadyNanos())) {
      Transports().grpc_floods_refused.fetch_add(1, std::memory_order_relaxed);
      if (transport_->ShouldLogFlood()) {
        Log(LogLevel::kWarning, absl::StrCat("gRPC: closed the connection of ", conn->peer, ": ",
                                             conn->scanner.reason()));
      }
      Close(conn);
      return;
    }
    ssize_t used = nghttp2_session_mem_recv(conn->session, reinterpret_cast<const uint8_t*>(in),
                                            static_cast<std::size_t>(got));
    if (used < 0) {
      // Against HTTP/2 (a bad preface, a flood nghttp2 caught): it queued a GOAWAY if it could.
      if (transport_->ShouldLogFlood()) {
        Log(LogLevel::kWarning,
            absl::StrCat("gRPC: closed the connection of ", conn->peer, ": bad HTTP/2 (",
                         nghttp2_strerror(static_cast<int>(used)), ")"));
      }
      Flush(conn);
      Close(conn);
      return;
    }
    if (static_cast<std::size_t>(got) < sizeof in && (ssl == nullptr || SSL_has_pending(ssl) == 0))
      break;
  }
  if (!conn->closed && !conn->lingering) Flush(conn);
}

// Hands nghttp2's frames to the socket. A connection whose session wants neither to read nor to
// write more (after a GOAWAY, with every stream done) closes.
void Loop::Flush(const ConnectionPtr& conn) {
  Connection& c = *conn;
  if (c.lingering) return;
  for (;;) {
    while (c.wbuf.size() - c.wbuf_sent < kWriteBatch) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(c.session, &data);
      if (n < 0) {
        Close(conn);
        return;
      }
      if (n == 0) break;
      if (c.wbuf_sent == c.wbuf.size()) {
        c.wbuf.clear();
        c.wbuf_sent = 0;
      }
      c.wbuf.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (c.wbuf_sent == c.wbuf.size()) break;
    ssize_t n =
        c.tls.ssl != nullptr
            ? ServerTlsSend(c.tls, c.wbuf.data() + c.wbuf_sent, c.wbuf.size() - c.wbuf_sent)
            : ::send(c.fd, c.wbuf.data() + c.wbuf_sent, c.wbuf.size() - c.wbuf_sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        Watch(conn, true);
        return;
      }
      Close(conn);
      return;
    }
    c.wbuf_sent += static_cast<std::size_t>(n);
    if (c.wbuf_sent == c.wbuf.size()) {
      c.wbuf.clear();
      c.wbuf_sent = 0;
    }
  }
  Watch(conn, c.tls.wants_write);
  // Done (nghttp2 wants nothing more: a GOAWAY either way, every stream over; or after this
  // server's GOAWAY, no call left), its frames out: the peer is left to read them and close.
  if ((nghttp2_session_want_read(c.session) == 0 && nghttp2_session_want_write(c.session) == 0) ||
      (c.goaway && c.streams.empty() && c.dispatched == 0)) {
    Linger(conn);
  }
}

// Closing at once with the peer's bytes unread would reset the connection, and a reset may
// drop the GOAWAY the peer has not read yet: the write side is shut instead, and the socket
// closes when the peer closes its side (or kLinger later).
void Loop::Linger(const ConnectionPtr& conn) {
  if (conn->lingering) return;
  conn->lingering = true;
  conn->linger_since = SteadyClock::now();
  if (conn->tls.ssl != nullptr && conn->tls.ready) SSL_shutdown(conn->tls.ssl);  // close_notify
  ::shutdown(conn->fd, SHUT_WR);
}

void Loop::Watch(const ConnectionPtr& conn, bool writable) {
  if (conn->writable_wait == writable) return;
  conn->writable_wait = writable;
  busy_.fetch_add(writable ? 1 : -1);  // output waits for the peer
  epoll_event ev{};
  ev.events = writable ? EPOLLIN | EPOLLOUT : EPOLLIN;
  ev.data.fd = conn->fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn->fd, &ev);
}

void Loop::Close(const ConnectionPtr& conn) {
  if (conn->closed) return;
  conn->closed = true;
  for (auto& [id, stream] : conn->streams) Release(*stream);
  Drop(&conn->spare_request);
  Drop(&conn->spare_reply);
  // A call still with its handler keeps the connection object (its answer finds it closed).
  busy_.fetch_sub(conn->dispatched + (conn->writable_wait ? 1 : 0));
  conn->dispatched = 0;
  conn->streams.clear();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn->fd, nullptr);
  ::close(conn->fd);
  connections_.erase(conn->fd);
  transport_->connections().fetch_sub(1);
}

void Loop::Keep(SpareString* spare, std::string* used) {
  const std::size_t capacity = used->capacity();
  if (capacity > kSpareKeptBytes || capacity <= spare->held) return;
  if (!transport_->HoldSpare(capacity)) return;
  Drop(spare);
  used->clear();
  spare->bytes = std::move(*used);
  spare->held = capacity;
}

std::string Loop::Take(SpareString* spare) {
  std::string taken = std::move(spare->bytes);
  Drop(spare);
  return taken;
}

void Loop::Drop(SpareString* spare) {
  if (spare->held > 0) transport_->UnholdSpare(spare->held);
  spare->held = 0;
  spare->bytes = std::string();
}

void Loop::Release(Stream& stream) {
  if (stream.held > 0) transport_->Unhold(stream.held);
  stream.held = 0;
}

int Loop::OnBeginHeaders(Connection& conn, const nghttp2_frame* frame) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  const int limit = transport_->options().grpc_max_concurrent_streams;
  if (static_cast<int>(conn.streams.size()) >= limit) {
    // Over the limit this server announced (a peer that did not wait for its SETTINGS, or
    // ignores them): the stream never runs.
    nghttp2_submit_rst_stream(conn.session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  auto stream = std::make_unique<Stream>();
  stream->id = frame->hd.stream_id;
  nghttp2_session_set_stream_user_data(conn.session, stream->id, stream.get());
  conn.streams[stream->id] = std::move(stream);
  conn.last_call = SteadyClock::now();
  return 0;
}

int Loop::OnHeader(Connection& conn, const nghttp2_frame* frame, std::string_view name,
                   std::string_view value) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Stream* stream = conn.StreamOf(frame->hd.stream_id);
  if (stream == nullptr || stream->answered) return 0;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers of a request: ignored
  stream->header_bytes += name.size() + value.size() + 32;
  if (stream->header_bytes > kMaxRequestHeaderBytes) {
    Finish(conn, *stream, StatusCode::kResourceExhausted,
           absl::StrCat("rpcboot: request headers over ", kMaxRequestHeaderBytes, " bytes"));
    return 0;
  }
  if (name == ":path") {
    stream->path = std::string(value);
  } else if (name == ":method") {
    stream->method = std::string(value);
  } else if (name == "content-type") {
    stream->content_type = std::string(value);
  } else if (name == "grpc-encoding") {
    stream->encoding = std::string(value);
  } else if (name == "grpc-accept-encoding") {
    // Read only where replies may go compressed: gRPC's clients send it with every call.
    stream->accepts_gzip = transport_->compresses_replies() && AcceptsGzip(value);
  } else if (name == "grpc-timeout") {
    std::optional<std::chrono::nanoseconds> timeout = ParseGrpcTimeout(value);
    if (!timeout) {
      stream->bad_timeout = true;
    } else {
      stream->deadline = ServerContext::Clock::now() +
                         std::chrono::duration_cast<ServerContext::Clock::duration>(*timeout);
    }
  } else if (name == "authorization") {
    stream->authorization = std::string(value);
  } else if (name == kTraceparentHeader) {
    stream->traceparent = std::string(value);
  } else if (name == kTracestateHeader) {
    stream->tracestate = std::string(value);
  } else if (name == kShadowHeader) {
    stream->shadow = value == "1";
  } else if (IsCallMetadataKey(name)) {
    // The caller's own, for ServerContext::metadata: held in the memory quota until the call
    // is handled, as its request is (HPACK lets a few bytes on the wire stand for a long header).
    std::string kept;
    if (!IsBinaryMetadataKey(name)) {
      kept = std::string(value);
    } else if (!absl::Base64Unescape(absl::string_view(value.data(), value.size()), &kept)) {
      Finish(conn, *stream, StatusCode::kInternal,
             "rpcboot: metadata '" + std::string(name) + "' is not base64");
      return 0;
    }
    const std::size_t bytes = MetadataEntryBytes(name, kept);
    if (!transport_->Hold(bytes)) {
      RefuseOverQuota(conn, *stream);
      return 0;
    }
    stream->held += bytes;
    stream->metadata.emplace_back(std::string(name), std::move(kept));
  }
  return 0;
}

int Loop::OnFrameRecv(Connection& conn, const nghttp2_frame* frame) {
  // The handshake is over once the client's preface and SETTINGS are in.
  if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    conn.heard = true;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Stream* stream = conn.StreamOf(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
      !stream->answered) {
    // The request's headers are complete: what the stream asks for is known before its
    // message arrives, so a refusal costs none of its bytes.
    const std::optional<GrpcCodec> codec = GrpcCodecNamed(stream->encoding);
    stream->codec = codec.value_or(GrpcCodec::kIdentity);
    if (stream->method != "POST") {
      Finish(conn, *stream, StatusCode::kUnimplemented,
             "rpcboot: gRPC takes POST, not '" + stream->method + "'");
    } else if (stream->content_type.rfind("application/grpc", 0) != 0) {
      Finish(conn, *stream, StatusCode::kInternal,
             "rpcboot: content-type '" + stream->content_type + "' is not application/grpc");
    } else if (codec != GrpcCodec::kIdentity && !transport_->accepts_compression()) {
      Finish(conn, *stream, StatusCode::kUnimplemented,
             "rpcboot: compressed requests ('" + stream->encoding +
                 "') are not accepted: compression is off on this server "
                 "(server.grpc_compression)");
    } else if (!codec) {
      Finish(conn, *stream, StatusCode::kUnimplemented,
             "rpcboot: grpc-encoding '" + stream->encoding +
                 "' is not supported: this server takes identity, deflate and gzip");
    } else if (stream->bad_timeout) {
      Finish(conn, *stream, StatusCode::kInternal, "rpcboot: malformed grpc-timeout");
    } else if (const Route* route = transport_->table().FindGrpc(stream->path)) {
      stream->kind = Kind::kMethod;
      stream->route = route;
    } else if (stream->path == "/grpc.health.v1.Health/Check") {
      stream->kind = Kind::kHealthCheck;
    } else if (stream->path == "/grpc.health.v1.Health/Watch") {
      stream->kind = Kind::kHealthWatch;
    } else if (stream->path == GrpcReflection::kPaths[0] ||
               stream->path == GrpcReflection::kPaths[1]) {
      // The schema is the server's to show, to the callers server.auth lets through.
      PeerIdentity identity = conn.tls.certificate.value_or(PeerIdentity());
      if (Refusal refusal = transport_->table().guard().Check(
              stream->path, BearerToken(stream->authorization), &identity);
          refusal.refused()) {
        Finish(conn, *stream, refusal.code, refusal.message);
      } else {
        stream->kind = Kind::kReflection;
      }
    } else {
      Transports().unknown_methods.fetch_add(1, std::memory_order_relaxed);
      Finish(conn, *stream, StatusCode::kUnimplemented, "rpcboot: unknown method " + stream->path);
    }
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    stream->half_closed = true;
    if (!stream->answered) Serve(conn, *stream);
  }
  return 0;
}

int Loop::OnData(Connection& conn, int32_t stream_id, const uint8_t* data, std::size_t len) {
  Stream* stream = conn.StreamOf(stream_id);
  if (stream == nullptr || stream->answered) return 0;
  const std::size_t limit = transport_->options().max_message_bytes;
  const char* bytes = reinterpret_cast<const char*>(data);
  while (len > 0) {
    if (!stream->in_message) {
      std::size_t take = std::min(len, 5 - stream->prefix_got);
      std::memcpy(stream->prefix + stream->prefix_got, bytes, take);
      stream->prefix_got += take;
      bytes += take;
      len -= take;
      if (stream->prefix_got < 5) return 0;
      stream->prefix_got = 0;
      const auto* p = reinterpret_cast<const unsigned char*>(stream->prefix);
      stream->length = (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) |
                       (std::size_t{p[3]} << 8) | std::size_t{p[4]};
      stream->compressed = (p[0] & 1) != 0;
      if (stream->compressed && !transport_->accepts_compression()) {
        Finish(conn, *stream, StatusCode::kUnimplemented,
               "rpcboot: a compressed request message: compression is off on this server "
               "(server.grpc_compression)");
        return 0;
      }
      if (stream->compressed && stream->codec == GrpcCodec::kIdentity) {
        Finish(conn, *stream, StatusCode::kInternal,
               "rpcboot: a request message marked compressed on a call without grpc-encoding");
        return 0;
      }
      // The declared length is a limit, checked before any byte is kept.
      if (stream->length > limit) {
        Finish(conn, *stream, StatusCode::kResourceExhausted,
               absl::StrCat("rpcboot: request of ", stream->length, " bytes exceeds the limit of ",
                            limit, " (max_message_bytes)"));
        return 0;
      }
      if (stream->kind == Kind::kMethod || stream->kind == Kind::kHealthCheck) {
        if (!stream->complete.empty()) {
          Finish(conn, *stream, StatusCode::kInternal,
                 "rpcboot: more than one request message to a unary method");
          return 0;
        }
      }
      stream->in_message = true;
      stream->message.clear();
      if (stream->length >= kSpareFrom && conn.spare_request.held > stream->message.capacity()) {
        stream->message = Take(&conn.spare_request);
      }
    }
    std::size_t take = std::min(len, stream->length - stream->message.size());
    if (take > 0) {
      if (!transport_->Hold(take)) {
        RefuseOverQuota(conn, *stream);
        return 0;
      }
      stream->held += take;
      stream->message.append(bytes, take);
      bytes += take;
      len -= take;
    }
    if (stream->message.size() == stream->length) {
      stream->in_message = false;
      if (stream->compressed && !Inflate(conn, *stream)) return 0;
      stream->complete.push_back(std::move(stream->message));
      stream->message = std::string();
      // A stream of messages is answered as they come; a unary call once it ends.
      if (stream->kind == Kind::kReflection) Serve(conn, *stream);
      if (stream->answered) return 0;
    }
  }
  return 0;
}

std::string Loop::QuotaRefusal() const {
  return absl::StrCat("rpcboot: the server holds requests up to its memory quota of ",
                      transport_->options().grpc_memory_quota, " bytes (server.grpc_memory_quota)");
}

void Loop::RefuseOverQuota(Connection& conn, Stream& stream) {
  if (transport_->ShouldLogFlood()) {
    Log(LogLevel::kWarning, "gRPC: " + conn.peer +
                                ": a request refused: the requests held pass "
                                "server.grpc_memory_quota");
  }
  Finish(conn, stream, StatusCode::kResourceExhausted, QuotaRefusal());
}

// The stream's message, compressed, is whole: it is inflated in its place, the output bounded by
// max_message_bytes and held in the memory quota as it grows; the compressed bytes are let go.
bool Loop::Inflate(Connection& conn, Stream& stream) {
  std::string inflated;
  std::size_t grown = 0;
  const std::string refused = QuotaRefusal();
  InflateError error = InflateMessage(
      stream.codec, stream.message, transport_->options().max_message_bytes,
      [&](std::size_t n) {
        if (!transport_->Hold(n)) return false;
        grown += n;
        return true;
      },
      refused, &inflated);
  stream.held += grown;
  if (!error.ok()) {
    if (transport_->ShouldLogFlood()) {
      Log(LogLevel::kWarning, "gRPC: " + conn.peer + ": a request refused: " + error.message);
    }
    Finish(conn, stream, error.code, error.message);
    return false;
  }
  transport_->Unhold(stream.message.size());
  stream.held -= stream.message.size();
  stream.message = std::move(inflated);
  return true;
}

int Loop::OnStreamClose(Connection& conn, int32_t stream_id) {
  auto it = conn.streams.find(stream_id);
  if (it == conn.streams.end()) return 0;
  Stream& stream = *it->second;
  Release(stream);
  // A handler still running answers later: its answer finds no stream and is dropped (the call
  // stays counted in conn.dispatched until then).
  conn.unsent -= stream.counted;
  conn.last_call = SteadyClock::now();
  Keep(&conn.spare_reply, &stream.out);
  conn.streams.erase(it);
  return 0;
}

void Loop::Serve(Connection& conn, Stream& stream) {
  switch (stream.kind) {
    case Kind::kUnknown:
      return;  // answered when its headers came
    case Kind::kMethod: {
      if (stream.in_message || stream.prefix_got != 0 || stream.complete.size() != 1) {
        Finish(conn, stream, StatusCode::kInternal,
               stream.complete.empty() ? "rpcboot: the request has no complete message"
                                       : "rpcboot: the request ends inside a message");
        return;
      }
      Dispatch(conn, stream);
      return;
    }
    case Kind::kHealthCheck: {
      std::optional<std::string> service = HealthService(conn, stream);
      if (!service) return;
      int status = transport_->health().Of(*service);
      if (status == GrpcHealth::kServiceUnknown) {
        Finish(conn, stream, StatusCode::kNotFound, "rpcboot: no service '" + *service + "'");
        return;
      }
      SendMessage(conn, stream, GrpcHealth::Response(status));
      Finish(conn, stream, StatusCode::kOk, "");
      return;
    }
    case Kind::kHealthWatch: {
      if (stream.watch_sent >= 0) {
        return;  // the client ended its side: the watch goes on
      }
      std::optional<std::string> service = HealthService(conn, stream);
      if (!service) return;
      stream.path = *service;  // the service watched, from here on
      stream.watch_sent = transport_->health().Of(*service);
      SendMessage(conn, stream, GrpcHealth::Response(stream.watch_sent));
      if (draining_) {
        Finish(conn, stream, StatusCode::kUnavailable, "rpcboot: the server is shutting down");
      }
      return;
    }
    case Kind::kReflection: {
      for (const std::string& request : stream.complete) {
        SendMessage(conn, stream, transport_->reflection().Answer(request));
      }
      stream.complete.clear();
      Release(stream);
      if (stream.half_closed && !stream.in_message) Finish(conn, stream, StatusCode::kOk, "");
      return;
    }
  }
}

// The service a health stream's HealthCheckRequest names; nullopt when the stream was answered
// with why it has none.
std::optional<std::string> Loop::HealthService(Connection& conn, Stream& stream) {
  if (stream.in_message || stream.complete.size() != 1) {
    Finish(conn, stream, StatusCode::kInternal, "rpcboot: the request has no message");
    return std::nullopt;
  }
  std::optional<std::string> service = GrpcHealth::ServiceOf(stream.complete.front());
  if (!service) {
    Finish(conn, stream, StatusCode::kInvalidArgument,
           "rpcboot: the HealthCheckRequest does not decode");
  }
  return service;
}

void Loop::Dispatch(Connection& conn, Stream& stream) {
  const Route* route = stream.route;
  stream.started = route->runtime->grpc_stats->Start();
  if (stream.deadline && *stream.deadline <= ServerContext::Clock::now()) {
    route->runtime->grpc_stats->Finish(stream.started, StatusCode::kDeadlineExceeded, conn.peer,
                                       "deadline passed before the handler ran", true);
    Finish(conn, stream, StatusCode::kDeadlineExceeded,
           "rpcboot: deadline passed before the handler ran");
    return;
  }
  ++conn.dispatched;
  busy_.fetch_add(1);
  auto call = std::make_shared<Call>(
      Call{conn.shared_from_this(), stream.id, route, std::move(stream.complete.front()),
           std::move(stream.authorization), std::move(stream.traceparent),
           std::move(stream.tracestate), stream.shadow, stream.deadline, stream.started,
           stream.accepts_gzip, std::move(stream.metadata), Take(&conn.spare_reply)});
  stream.complete.clear();
  if (route->run_inline ||  // server.inline_methods: never blocks, runs here, with no slot
      (transport_->MayRunHere() && route->runtime->MayRunInPlace())) {
    ready_.push_back(std::move(call));  // once this read is framed (RunReady)
  } else {
    Submit(std::move(call));
  }
}

Answer Loop::Handle(Call& call) {
  ServerContext context("grpc", call.conn->peer, call.deadline);
  // Set once, at the handshake, before any call: read here from any thread.
  if (call.conn->tls.certificate) *context.mutable_identity() = *call.conn->tls.certificate;
  std::string_view token = BearerToken(call.authorization);
  BeginServerSpan(&context, call.traceparent, call.tracestate);
  context.set_shadow(call.shadow);
  *context.mutable_metadata() = call.metadata;
  ServerContext::Scope scope(&context);
  Answer answer;
  // The reply is encoded after room for its message prefix: sent as it is, with no copy.
  std::string framed = std::move(call.reply_storage);
  framed.assign(5, '\0');
  answer.outcome = RunHandler([&] {
    transport_->table().Serve(*call.route, token, context, [&] {
      call.route->method->serve_proto(call.route->impl, call.request, &framed);
    });
    return std::string();
  });
  answer.reply_metadata = context.TakeReplyMetadata();
  EndServerSpan(context, std::string_view(call.route->method->grpc_path).substr(1),
                answer.outcome.code, answer.outcome.message);
  if (answer.outcome.code == StatusCode::kOk) {
    const std::string_view body = std::string_view(framed).substr(5);
    // Compressed here, on the call's thread, not on the loop.
    if (call.gzip_reply && body.size() >= kCompressFrom) {
      if (std::optional<std::string> gzip = GzipMessage(body)) {
        answer.outcome.reply = *std::move(gzip);
        answer.compressed = true;
      }
    }
    if (!answer.compressed) {
      WriteMessagePrefix(framed.data(), body.size(), false);
      answer.outcome.reply = std::move(framed);
      answer.framed = true;
    }
  }
  answer.conn = call.conn;
  answer.stream_id = call.stream_id;
  answer.route = call.route;
  answer.started = call.started;
  answer.request = std::move(call.request);
  return answer;
}

// The call goes to the handler pool; its answer comes back through the loop's inbox.
void Loop::Submit(std::shared_ptr<Call> call) {
  ScheduledCall scheduled;
  scheduled.deadline = call->deadline;
  scheduled.run = [this, call] { call->conn->loop->Post(Handle(*call)); };
  scheduled.refuse = [call](StatusCode code, std::string why) {
    call->conn->loop->Post(Refused(*call, code, why));
  };
  transport_->scheduler().Submit(std::move(scheduled));
}

Answer Loop::Refused(const Call& call, StatusCode code, const std::string& why) {
  Answer answer;
  answer.conn = call.conn;
  answer.stream_id = call.stream_id;
  answer.outcome.code = code;
  answer.outcome.message = "rpcboot: " + why;
  answer.shed = true;
  answer.route = call.route;
  answer.started = call.started;
  return answer;
}

// The calls this wake framed, on this thread while a handler slot is free: no hop. A call that
// blocks (asleep in the kernel at two of the monitor's checks in a row) or keeps its CPU past
// kBusyFor has the loop taken from this thread (HandOff): the thread then finishes the call as a
// handler thread would and returns false (it runs the loop no more).
bool Loop::RunReady() {
  while (!ready_.empty()) {
    std::shared_ptr<Call> call = std::move(ready_.front());
    ready_.pop_front();
    if (call->conn->closed || call->conn->StreamOf(call->stream_id) == nullptr) {
      // The client reset the stream, or the connection closed, before the call ran.
      Deliver(Refused(*call, StatusCode::kCancelled, "the client cancelled the call"));
      continue;
    }
    // A method in server.inline_methods runs here whatever the load, without a handler slot; if
    // it blocks all the same (the listing was wrong), the monitor hands the loop on as for any
    // call.
    const bool listed = call->route->run_inline;
    StatusCode code = StatusCode::kOk;
    std::string why;
    if (!listed && (!transport_->MayRunHere() || !call->route->runtime->MayRunInPlace())) {
      Submit(std::move(call));
      continue;
    }
    if (!listed && !transport_->scheduler().Enter(&code, &why)) {
      // Every slot busy: it queues for the pool like any call; or it is refused.
      if (code == StatusCode::kOk) {
        Submit(std::move(call));
      } else {
        Deliver(Refused(*call, code, why));
      }
      continue;
    }
    here_route_ = call->route;
    const uint64_t running = here_.Begin();
    transport_->NoteRunningHere();
    Answer answer = Handle(*call);
    if (!here_.End(running)) {
      // The loop went to another thread while the handler ran.
      { std::lock_guard<std::mutex> lock(handoff_mu_); }  // the hand-off is complete
      call->conn->loop->Post(std::move(answer));
      if (!listed) transport_->scheduler().Leave();
      return false;
    }
    if (!listed) transport_->scheduler().Leave();
    Deliver(std::move(answer));
    FlushDirty();  // the reply leaves before the next call runs
    transport_->PokeMonitor();
  }
  return true;
}

bool Loop::CheckBlocked() {
  uint64_t blocked = 0;
  bool asleep = false;
  bool active = here_.Check(kBusyFor, &blocked, &asleep);
  if (blocked != 0) HandOff(blocked);
  return active;
}

// The monitor's check: the call `running` blocked; a spare thread takes the loop.
void Loop::HandOff(uint64_t running) {
  std::lock_guard<std::mutex> lock(handoff_mu_);
  if (!transport_->ReserveRunner()) return;  // no thread to be had: checked again next time
  if (!here_.Displace(running)) return;      // it finished meanwhile
  here_route_->runtime->BlockedInPlace();
  transport_->HandOver(this);
}

void Loop::FlushDirty() {
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    ConnectionPtr conn = std::move(dirty_[i]);
    if (!conn->closed) Flush(conn);
  }
  dirty_.clear();
}

// A handler's answer, on the loop: the reply goes out on its stream, if the stream is still
// there.
void Loop::Deliver(Answer answer) {
  Connection& conn = *answer.conn;
  CallStats* stats = answer.route->runtime->grpc_stats;
  HandlerOutcome& outcome = answer.outcome;
  if (!conn.closed) Keep(&conn.spare_request, &answer.request);
  Stream* stream = conn.closed ? nullptr : conn.StreamOf(answer.stream_id);
  if (stream == nullptr) {
    // The connection closed, or the client reset the stream (or gave up on its deadline),
    // meanwhile: the call is counted as it ended, and its reply has nowhere to go.
    stats->Finish(answer.started, outcome.code, conn.peer, outcome.message, answer.shed);
    if (conn.closed) return;  // its count went with the connection
    --conn.dispatched;
    busy_.fetch_sub(1);
    conn.last_call = SteadyClock::now();
    dirty_.push_back(answer.conn);
    return;
  }
  --conn.dispatched;
  busy_.fetch_sub(1);
  conn.last_call = SteadyClock::now();
  if (outcome.code != StatusCode::kOk) {
    stats->Finish(answer.started, outcome.code, conn.peer, outcome.message, answer.shed);
    Finish(conn, *stream, outcome.code, outcome.message, std::move(answer.reply_metadata));
  } else {
    const std::size_t limit = transport_->options().grpc_max_unsent_bytes;
    const std::size_t held = conn.unsent + (conn.wbuf.size() - conn.wbuf_sent);
    const std::size_t size = outcome.reply.size() - (answer.framed ? 5 : 0);
    if (held > 0 && held + size > limit) {
      std::string what =
          absl::StrCat("rpcboot: reply of ", size, " bytes not sent: ", held,
                       " bytes of earlier replies to this connection are still unread (limit ",
                       limit, ", server.grpc_max_unsent_bytes)");
      if (transport_->ShouldLogFlood()) Log(LogLevel::kWarning, "gRPC: " + conn.peer + ": " + what);
      stats->Finish(answer.started, StatusCode::kResourceExhausted, conn.peer, what);
      Finish(conn, *stream, StatusCode::kResourceExhausted, what, std::move(answer.reply_metadata));
    } else {
      stats->Finish(answer.started, StatusCode::kOk);
      if (answer.framed) {
        SendFramed(conn, *stream, std::move(outcome.reply), false);
      } else {
        SendMessage(conn, *stream, outcome.reply, answer.compressed);
      }
      Finish(conn, *stream, StatusCode::kOk, "", std::move(answer.reply_metadata));
    }
  }
  Release(*stream);
  dirty_.push_back(answer.conn);
}

void Loop::SubmitHeaders(Connection& conn, Stream& stream) {
  stream.headers_sent = true;
  nghttp2_nv headers[4] = {Header(":status", "200"), Header("content-type", "application/grpc")};
  std::size_t count = 2;
  if (transport_->accepts_compression()) {
    headers[count++] = Header("grpc-accept-encoding", kGrpcAcceptedEncodings);
  }
  if (stream.reply_gzip) headers[count++] = Header("grpc-encoding", "gzip");
  nghttp2_data_provider body;
  body.source.ptr = nullptr;
  body.read_callback = ReadReplyCb;
  nghttp2_submit_response(conn.session, stream.id, headers, count, &body);
}

void Loop::SendFramed(Connection& conn, Stream& stream, std::string framed, bool compressed) {
  if (stream.answered) return;
  const std::size_t added = framed.size();
  if (stream.out_copied == stream.out.size()) {
    stream.out = std::move(framed);
    stream.out_sent = 0;
    stream.out_copied = 0;
  } else {
    stream.out.append(framed);
  }
  // A compressed message needs grpc-encoding in the headers, which the first message sends.
  if (compressed && !stream.headers_sent) stream.reply_gzip = true;
  stream.counted += added;
  conn.unsent += added;
  if (!stream.headers_sent) {
    SubmitHeaders(conn, stream);
  } else if (stream.deferred) {
    stream.deferred = false;
    nghttp2_session_resume_data(conn.session, stream.id);
  }
}

void Loop::Finish(Connection& conn, Stream& stream, StatusCode code, const std::string& message,
                  CallMetadata metadata) {
  if (stream.answered) return;
  stream.answered = true;
  Release(stream);
  const std::string status = std::to_string(static_cast<int>(code));
  const std::string encoded = PercentEncode(message);
  for (auto& [key, value] : metadata) {
    if (IsBinaryMetadataKey(key)) value = absl::Base64Escape(absl::string_view(value));
  }
  auto nv = Header;
  if (!stream.headers_sent) {
    // Trailers-only: the status in the one HEADERS frame, which ends the stream.
    stream.headers_sent = true;
    std::vector<nghttp2_nv> headers = {nv(":status", "200"), nv("content-type", "application/grpc"),
                                       nv("grpc-status", status)};
    if (!encoded.empty()) headers.push_back(nv("grpc-message", encoded));
    for (const auto& [key, value] : metadata) headers.push_back(nv(key, value));
    if (transport_->accepts_compression()) {
      headers.push_back(nv("grpc-accept-encoding", kGrpcAcceptedEncodings));
    } else if (code == StatusCode::kUnimplemented && !stream.encoding.empty() &&
               stream.encoding != "identity") {
      headers.push_back(nv("grpc-accept-encoding", "identity"));
    }
    nghttp2_submit_response(conn.session, stream.id, headers.data(), headers.size(), nullptr);
  } else {
    // After the messages: ReadReply submits the trailers when `out` is empty.
    stream.end_pending = true;
    stream.end_code = code;
    stream.end_message = encoded;
    stream.end_metadata = std::move(metadata);
    if (stream.deferred) {
      stream.deferred = false;
      nghttp2_session_resume_data(conn.session, stream.id);
    }
  }
  // A request not read to its end: the stream is reset (NO_ERROR) once the reply is out
  // (OnFrameSendCb); what it brings meanwhile is dropped.
  if (!stream.half_closed) {
    stream.complete.clear();
    stream.message = std::string();
  }
  dirty_.push_back(conn.shared_from_this());
}

ssize_t Loop::ReadReply(Connection& conn, int32_t stream_id, std::size_t length, uint32_t* flags) {
  Stream* stream = conn.StreamOf(stream_id);
  if (stream == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  // The bytes are not copied here (into nghttp2's frame buffer, to be copied again onto the write
  // buffer): SendReplyData copies them once, when nghttp2 sends the frame.
  std::size_t n = std::min(length, stream->out.size() - stream->out_sent);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  stream->out_sent += n;
  if (stream->out_sent < stream->out.size()) return static_cast<ssize_t>(n);
  conn.unsent -= stream->counted;  // a reply counts whole until its last byte is framed
  stream->counted = 0;
  if (!stream->end_pending) {
    if (n > 0) return static_cast<ssize_t>(n);
    stream->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  const std::string status = std::to_string(static_cast<int>(stream->end_code));
  std::vector<nghttp2_nv> trailers = {Header("grpc-status", status)};
  if (!stream->end_message.empty()) trailers.push_back(Header("grpc-message", stream->end_message));
  for (const auto& [key, value] : stream->end_metadata) trailers.push_back(Header(key, value));
  // nghttp2 copies them: they need not outlive the call.
  nghttp2_submit_trailer(conn.session, stream_id, trailers.data(), trailers.size());
  return static_cast<ssize_t>(n);
}

int Loop::SendReplyData(Connection& conn, const nghttp2_frame& frame, const uint8_t* header,
                        std::size_t length) {
  // Held at kWriteBatch unsent, as Flush holds what it takes from nghttp2: the frame is asked
  // for again once the socket has taken some.
  if (conn.wbuf.size() - conn.wbuf_sent >= kWriteBatch) return NGHTTP2_ERR_WOULDBLOCK;
  Stream* stream = conn.StreamOf(frame.hd.stream_id);
  if (stream == nullptr || stream->out.size() - stream->out_copied < length) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream alone
  }
  const std::size_t padding = frame.data.padlen;  // none: no padding callback is set
  conn.wbuf.reserve(conn.wbuf.size() + 9 + padding + length);
  conn.wbuf.append(reinterpret_cast<const char*>(header), 9);
  if (padding > 0) conn.wbuf.push_back(static_cast<char>(padding - 1));
  conn.wbuf.append(stream->out, stream->out_copied, length);
  if (padding > 1) conn.wbuf.append(padding - 1, '\0');
  stream->out_copied += length;
  return 0;
}

// The server stops serving: every watch gets NOT_SERVING and ends.
void Loop::WatchesNotServing() {
  for (auto& [fd, conn] : connections_) {
    for (auto& [id, stream] : conn->streams) {
      if (stream->kind != Kind::kHealthWatch || stream->answered || stream->watch_sent < 0) {
        continue;
      }
      int now = transport_->health().Of(stream->path);
      if (now != stream->watch_sent) {
        stream->watch_sent = now;
        SendMessage(*conn, *stream, GrpcHealth::Response(now));
      }
      Finish(*conn, *stream, StatusCode::kUnavailable, "rpcboot: the server is shutting down");
    }
  }
}

}  // namespace

std::unique_ptr<ServerTransport> MakeNativeGrpcServerTransport(const ServerOptions& options) {
  return std::make_unique<NativeGrpcServerTransport>(options);
}

}  // namespace rpcboot::internal
