// Thrift server transport: framed messages (compact or binary, plain or THeader, multiplexed or
// not) on an event-driven core. A few I/O threads, each an epoll loop, own the sockets: they
// accept, read frames as bytes arrive (a frame's buffer grows with the bytes received; the
// declared length is only a limit), parse message headers and answer what needs no handler
// (unknown method, wrong message type, a frame over the size limit, a deadline already passed,
// the schema asked through rpcboot.ThriftReflection).
// A call that finds a handler slot free (CallScheduler::Enter) runs on the loop's own thread,
// with no hop; a check hands the loop to a spare thread when such a call blocks (HandOff), and
// the blocked thread finishes its call as a pool thread would. The busy loops run that check
// between their calls; a monitor thread runs it when they do not (all idle, or held). Other calls
// go to the CallScheduler's pool, whose threads write the reply (or post it to the loop). One call
// per connection is in flight at a time (Thrift clients wait for each reply). rpcboot methods all
// answer: a ONEWAY message is refused.
//
// Limits, each enforced before the resource is spent: max_connections (at the cap the loop
// closes its oldest idle connection for the newcomer, or refuses it), a frame must be complete
// within frame_timeout of its first byte, a connection with nothing in progress closes after
// idle_timeout, a reply the peer does not read closes the connection after frame_timeout, and a
// connection with more than 1 MiB of replies unsent is not read until they have gone.
// Running out of file descriptors or memory fails one connection, never the process.
//
// With server.thrift_io: uring (plaintext only) a loop waits on an io_uring instead of epoll: a
// receive stays armed on each connection that may read (into buffers the kernel takes from a
// ring the loop shares by all its connections, so idle connections hold no buffer), a reply
// goes out as a send, and one io_uring_enter hands the kernel the reply and the next receive
// and waits for what comes next: one system call per call where epoll makes three. Everything
// else (frames, limits, calls in place, hand-offs, the pool) is the same code.
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/call_scheduler.h"
#include "rpcboot/internal/grpc_compression.h"
#include "rpcboot/internal/in_place.h"
#include "rpcboot/internal/listener_guard.h"
#include "rpcboot/internal/loop_runners.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server_context.h"
#include "rpcboot/transport/server_transport.h"
#include "rpcboot/transport/thrift_reflection.h"
#include "rpcboot/transport/thrift_wire.h"

namespace rpcboot::internal {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Of a frame over the size limit, the bytes read to find the call it carries.
constexpr std::size_t kOversizedHead = 4096;
// Of a compressed frame refused (server.thrift_compression off), what is inflated to answer it.
constexpr std::size_t kCompressedHead = 64 * 1024;
// Bytes read from one socket per readiness event before the loop serves the others.
constexpr std::size_t kReadBudget = 1 << 20;
// A frame up to this size that arrived in pieces is served from a buffer each thread reuses.
constexpr std::size_t kReusedFrameBytes = 64 * 1024;
// A frame with at least this much still to come is waited for whole: the socket's low-water mark
// (SO_RCVLOWAT) is set to the rest, so the loop wakes once when it is in rather than for each
// piece the peer's window let through.
constexpr std::size_t kWaitWholeBytes = 128 * 1024;
constexpr auto kScanInterval = std::chrono::milliseconds(100);
// A call a loop runs in place that is still running at two of the monitor's checks in a row
// (InPlaceMonitor::kInterval apart) and is asleep in the kernel has blocked: the loop goes to
// another thread. One that keeps its thread busy (computing, or waiting for a CPU) is left where
// it runs this long before its loop is handed on anyway.
constexpr auto kBusyFor = std::chrono::milliseconds(10);
// Reply bytes a connection may have unsent before the loop stops reading its next frames (a peer
// that sends calls and never reads the answers is held here, then closed at frame_timeout).
constexpr std::size_t kUnsentBeforeRead = 1 << 20;
// A connection gets its frame's buffer back after the call, up to this size, for its next frame
// (the stock servers keep one per connection for good), and lets it go once it has sent nothing
// for kSpareFor: a client that keeps sending large calls reuses warm memory rather than taking
// fresh pages for each, and an idle connection holds none.
constexpr std::size_t kSpareKeptBytes = 4 << 20;
constexpr auto kSpareFor = std::chrono::seconds(1);

// io_uring loops: submission and completion queue sizes; the receive buffers the kernel picks
// from (a connection holds one only from the moment bytes arrive until the loop copies them).
constexpr unsigned kRingEntries = 512;
constexpr unsigned kRingCompletions = 8192;
constexpr unsigned kRecvBuffers = 64;
constexpr std::size_t kRecvBufferBytes = 16 * 1024;
constexpr uint16_t kRecvGroup = 0;
// What a completion is for, in its user_data: a connection's address with the low bits saying
// receive or send, or one of the loop's own operations.
constexpr uint64_t kOpRecv = 0;
constexpr uint64_t kOpSend = 1;
constexpr uint64_t kOpMask = 3;
constexpr uint64_t kOpWake = 2;
constexpr uint64_t kOpListen = 6;
constexpr uint64_t kOpCancel = 10;
constexpr uint64_t kOpTick = 14;
// A reply up to this size, sent whole to a connection whose last send completed at once, is
// expected to complete within the system call that submits it (a client that read its last
// reply has at least this much room).
constexpr std::size_t kQuickSendBytes = 64 * 1024;

// The bytes of a connection's frame received so far (and any that came after it). Once 64 KiB of
// a larger frame are in, its rest is read straight into it, the storage doubling with the bytes
// received and never growing past the frame's end (the declared length is only a limit). A whole
// frame moves on to its call without a copy.
class FrameBuffer {
 public:
  FrameBuffer() = default;
  FrameBuffer(FrameBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  FrameBuffer& operator=(FrameBuffer&& other) noexcept {
    if (this != &other) {
      std::free(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~FrameBuffer() { std::free(data_); }

  const char* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return std::string_view(data_, size_); }

  // Where up to `want` (> 0) more bytes go, and in *room how many fit there (at least one):
  // room for as many as it holds, at most. Commit says how many came. Throws std::bad_alloc.
  char* Tail(std::size_t want, std::size_t* room) {
    if (capacity_ - size_ < std::min(want, kMinRoom)) {
      Grow(size_ + std::min(want, std::max(size_, kMinRoom)));
    }
    *room = std::min(capacity_ - size_, want);
    return data_ + size_;
  }
  void Commit(std::size_t n) { size_ += n; }
  void Append(const char* bytes, std::size_t n) {
    if (capacity_ - size_ < n) Grow(std::max(size_ + n, 2 * capacity_));
    if (n != 0) std::memcpy(data_ + size_, bytes, n);
    size_ += n;
  }
  // Drops the first n bytes.
  void Consume(std::size_t n) {
    size_ -= n;
    if (size_ != 0) std::memmove(data_, data_ + n, size_);
  }
  // Empty, and holding no storage.
  void Release() { *this = FrameBuffer(); }
  // Empty, keeping its storage for the next frame.
  void Clear() { size_ = 0; }
  std::size_t capacity() const { return capacity_; }

 private:
  static constexpr std::size_t kMinRoom = 4096;

  void Grow(std::size_t capacity) {
    void* grown = std::realloc(data_, capacity);
    if (grown == nullptr) throw std::bad_alloc();
    data_ = static_cast<char*>(grown);
    capacity_ = capacity;
  }

  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// "shop.ShopService:GetShop" -> "GetShop": replies carry the plain method name, as Thrift's
// TMultiplexedProcessor answers; a thrift-compiler client skips a reply of any other name.
std::string_view ReplyName(std::string_view name) {
  std::size_t colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// The reply to the call `header` describes, framed as the call came (in THeader when it did):
// `type` kThriftReply around a result struct, or kThriftException around a
// TApplicationException. Every reply the server writes is made here.
std::string ReplyFrame(const THeaderFrame* theader, const ThriftMessageHeader& header, int32_t type,
                       std::string_view body);

// Starts a plain framed reply in *out (its storage reused): room for the frame's length, and the
// message header of a reply of `type` to the call `header` describes. The struct goes after it;
// FillFrameLength fills in the length.
void StartPlainReply(const ThriftMessageHeader& header, int32_t type, std::string* out) {
  out->assign(4, '\0');
  AppendThriftMessageHeader(header.format, ReplyName(header.name), type, header.seqid, out);
}
// The frame in *out, its first 4 bytes kept for it: its length.
void FillFrameLength(std::string* out) {
  EncodeFrameLength(static_cast<uint32_t>(out->size() - 4), out->data());
}

// The THeader info headers a server reads (ParseTHeader copies only these, each once).
bool ServerHeader(std::string_view key) {
  return key == kTimeoutHeader || key == kAuthorizationHeader || key == kTraceparentHeader ||
         key == kTracestateHeader || key == kShadowHeader;
}

// What a call's THeader carried besides the message.
struct CallMeta {
  std::optional<ServerContext::Clock::time_point> deadline;
  std::string token;                    // the "authorization" header's bearer token
  std::string traceparent, tracestate;  // W3C trace context
  bool shadow = false;                  // rpcboot-shadow: 1
  CallMetadata metadata;                // the caller's own headers
  int64_t started = 0;                  // for the method's CallStats (thrift_stats)
};

// Runs `route`'s handler on this thread under the call's ServerContext, once `table`'s guard
// allowed the caller, inside the interceptors (`certificate`: the connection's verified client
// certificate, or null); returns the reply frame to the call (`header`, in `theader` when it came
// so): its result struct (the reply, or the handler's error as RpcError, field 1), and in THeader
// the handler's reply metadata as headers.
std::string Serve(std::string storage, const Route& route, const MethodTable& table,
                  const std::string& peer, const PeerIdentity* certificate, const CallMeta& meta,
                  const THeaderFrame* theader, const ThriftMessageHeader& header,
                  std::string_view args) {
  const WireFormat format = header.format;
  ServerContext context("thrift", peer, meta.deadline);
  if (certificate != nullptr) *context.mutable_identity() = *certificate;
  BeginServerSpan(&context, meta.traceparent, meta.tracestate);
  context.set_shadow(meta.shadow);
  *context.mutable_metadata() = meta.metadata;
  ServerContext::Scope scope(&context);
  // Plain framed, the result is written where the frame will hold it, after the length and the
  // message header (the length is filled in last); in THeader, whose headers come first, it is
  // framed once written.
  std::string reply = std::move(storage);
  reply.clear();
  if (theader == nullptr) StartPlainReply(header, kThriftReply, &reply);
  const std::size_t result_at = reply.size();
  HandlerOutcome outcome = RunHandler([&] {
    table.Serve(route, meta.token, context,
                [&] { route.method->serve_thrift(route.impl, format, args, &reply); });
    return std::string();
  });
  route.runtime->thrift_stats->Finish(meta.started, outcome.code, peer, outcome.message);
  EndServerSpan(context, std::string_view(route.method->grpc_path).substr(1), outcome.code,
                outcome.message);
  if (outcome.code != StatusCode::kOk) {
    reply.resize(result_at);
    reply += ThriftErrorResult(format, outcome.code, outcome.message);
  }
  if (theader == nullptr) {  // plain framed: no place for reply metadata
    FillFrameLength(&reply);
    return reply;
  }
  CallMetadata reply_metadata = context.TakeReplyMetadata();
  if (reply_metadata.empty()) return ReplyFrame(theader, header, kThriftReply, reply);
  THeaderFrame with = *theader;
  with.headers = std::move(reply_metadata);
  return ReplyFrame(&with, header, kThriftReply, reply);
}

class Loop;
class ThriftServerTransport;

// Inflated request bytes a zlib THeader call holds in the server's thrift_inflated_quota, given
// back when the call (its holder) ends.
class InflatedHold {
 public:
  explicit InflatedHold(ThriftServerTransport* server) : server_(server) {}
  ~InflatedHold();
  InflatedHold(InflatedHold&& other) noexcept
      : server_(other.server_), bytes_(std::exchange(other.bytes_, 0)) {}
  InflatedHold(const InflatedHold&) = delete;
  InflatedHold& operator=(const InflatedHold&) = delete;
  InflatedHold& operator=(InflatedHold&&) = delete;
  // False when `n` more would pass the quota.
  bool Grow(std::size_t n);

 private:
  ThriftServerTransport* server_;
  std::size_t bytes_ = 0;
};

// A server's open connections (the accepted ones not yet closed), mirrored in the process's
// metrics (rpcboot_server_connections).
class ConnectionCount {
 public:
  int load() const { return n_.load(); }
  int fetch_add(int n) {
    TransportCounters& t = Transports();
    t.thrift_connections.fetch_add(n, std::memory_order_relaxed);
    t.thrift_connections_accepted.fetch_add(n, std::memory_order_relaxed);
    return n_.fetch_add(n);
  }
  int fetch_sub(int n) {
    Transports().thrift_connections.fetch_sub(n, std::memory_order_relaxed);
    return n_.fetch_sub(n);
  }

 private:
  std::atomic<int> n_{0};
};

// One client connection. Its I/O state belongs to its loop's thread; a handler thread holds a
// shared_ptr only to post the reply back through the loop.
struct Connection : std::enable_shared_from_this<Connection> {
  int fd = -1;
  std::string peer;
  Loop* loop = nullptr;
  FrameBuffer in;          // received, not yet consumed: the current frame so far
  std::size_t skip = 0;    // of an oversized frame: bytes still to drop
  std::string skip_reply;  // its answer, sent once the frame has been dropped
  std::string out;         // reply bytes not yet written
  // A written reply's string, emptied, that the next reply is made in (see kSpareKeptBytes).
  // Whoever runs the connection's call owns it: the loop, or the call's thread while
  // call_in_flight is set.
  std::string spare_out;
  std::size_t out_sent = 0;
  // Set by the loop when it hands a call to the scheduler; cleared by whoever finishes it (the
  // loop, or the handler thread on the direct path). While set, the loop leaves `in` and `out`
  // alone and never closes the descriptor.
  std::atomic<bool> call_in_flight{false};
  // Held by the handler thread on the direct path from re-arming EPOLLIN until it has cleared
  // call_in_flight: a loop told the connection is readable while the flag is still set waits
  // on it, rather than spin on the level-triggered event (and, on a busy machine, keep the very
  // thread that would clear the flag off the CPU).
  std::mutex rearm_mu;
  std::atomic<bool> hung_up{false};  // the peer is gone while a call ran: close when it ends
  bool closed = false;
  uint32_t events = 0;                  // registered with epoll
  SteadyClock::time_point frame_start;  // first byte of the frame being read
  // Loop only (epoll): the socket's SO_RCVLOWAT while a large frame is being read (WaitForRest);
  // 0 when it is the kernel's default of one byte.
  std::size_t low_water = 0;
  SteadyClock::time_point write_start;  // first byte of the reply being written
  SteadyClock::time_point last_active;
  ServerTlsSession tls;  // server.tls
  // io_uring loops, loop thread only: a receive is armed; a send is in flight (the kernel reads
  // `out` from out_sent on, so replies queued meanwhile wait in `queued`); operations the kernel
  // still holds (the descriptor is closed, and the object let go, once they have all ended); the
  // last send did not complete within the system call that submitted it, and the serial of the
  // send now in flight.
  bool recv_armed = false;
  bool send_armed = false;
  bool send_stalled = false;
  uint64_t send_serial = 0;
  int ring_ops = 0;
  std::string queued;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
};
using ConnectionPtr = std::shared_ptr<Connection>;

const PeerIdentity* Certificate(const Connection& conn) {
  return conn.tls.certificate ? &*conn.tls.certificate : nullptr;
}

// Reply bytes of a connection not yet taken by the kernel.
std::size_t Unsent(const Connection& conn) {
  return conn.out.size() - conn.out_sent + conn.queued.size();
}

// Writes to a connection's socket (through TLS when it has it) without blocking: bytes taken,
// or -1 with errno (EAGAIN: the socket is full; try when writable).
ssize_t Send(Connection& conn, const char* data, std::size_t n) {
  if (conn.tls.ssl == nullptr) return ::send(conn.fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  return ServerTlsSend(conn.tls, data, n);
}

class ThriftServerTransport;

// One I/O thread: an epoll loop over its connections (and, for loop 0, the listening socket).
class Loop {
 public:
  Loop(ThriftServerTransport* server, int index) : server_(server), index_(index) {}
  ~Loop();

  absl::Status Init();
  // Before the loop's thread starts: waits on an io_uring instead of epoll (server.thrift_io:
  // uring). An error (a kernel or sandbox that refuses it, a kernel too old) leaves it on epoll;
  // DropRing puts back a loop that got one.
  absl::Status InitRing();
  // The epoll loop's tick (tick_fd_), once; the thread that runs the loop.
  void StartTick();
  void DropRing();
  bool on_ring() const { return ring_ != nullptr; }
  // Runs the loop on the calling thread until it stops (true), or until the monitor gave it to
  // another thread because a call this thread ran in place blocked (false: that call is
  // finished, its reply handed on, and the thread no longer touches the loop).
  bool Run();
  // Every check (the monitor thread's, or a loop's Poke), one at a time: when the call run in
  // place has blocked, hands the loop to another thread. True when calls ran in place since the
  // previous check.
  bool CheckBlocked();
  bool RunningHere() const { return here_.running(); }

  // From any thread: a new connection for this loop (over_cap: only if an idle one can go).
  void Adopt(int fd, std::string peer, bool over_cap);
  // From a handler thread (or the loop itself): the reply of `conn`'s call, of which the first
  // `sent` bytes are written already; empty for none.
  // `spare`, when given, is the call's frame buffer, which the connection may keep.
  void PostReply(const ConnectionPtr& conn, std::string reply, std::size_t sent = 0,
                 FrameBuffer* spare = nullptr);
  // From a handler thread: writes the reply straight to the socket and gives the connection
  // back to reading, without waking the loop (the common case: one thread hop per call, not
  // two). False when the loop must take it (draining, peer gone, bytes of a next frame already
  // read, a socket buffer full): post the reply instead.
  // When true, it may have taken `reply`.
  bool FinishOnWorker(const ConnectionPtr& conn, std::string& reply, FrameBuffer* spare = nullptr);
  // Gives `conn` the buffer of its last frame, emptied, when it has none and it is not too big.
  static void Recycle(Connection& conn, FrameBuffer* spare);
  // Keeps a written reply's string as conn.spare_out, emptied, when it is larger than the one
  // kept and not too big.
  static void KeepReplyString(Connection& conn, std::string* written);
  // From any thread: stop taking frames, close idle connections, and (finally) stop.
  void PostDrain();
  void PostStop();
  // Connections with a call or a reply still in progress (read by Shutdown's wait).
  int busy() const { return busy_.load(); }
  int index() const { return index_; }

  // Before the loop's thread starts: the listening socket this loop accepts on, once watched.
  void SetListener(int listen_fd) { listen_fd_ = listen_fd; }
  // From any thread, once: accepts from here on.
  void WatchListener();
  void UnwatchListener();

 private:
  struct Inbox {
    std::vector<std::pair<int, std::string>> adopt;
    std::vector<std::pair<int, std::string>> adopt_over_cap;
    struct Reply {
      ConnectionPtr conn;
      std::string bytes;
      std::size_t sent;
      FrameBuffer spare;
    };
    std::vector<Reply> replies;
    bool drain = false;
    bool stop = false;
    bool watch_listener = false;  // io_uring: the listener is watched from the loop's thread
    bool unwatch_listener = false;
  };

  void Wake();
  void TakeInbox();
  void Register(int fd, std::string peer);
  bool EvictOldestIdle();
  // `here`: a call may run on this thread (from Run's events only). Each returns false when
  // the thread lost the loop while a call ran here: the caller returns at once.
  bool OnReadable(const ConnectionPtr& conn, bool here);
  // `n` bytes read from `conn`: an oversized frame's tail is dropped, a whole frame served from
  // where it was read, the rest kept in `in` and served once complete.
  bool OnBytes(const ConnectionPtr& conn, const char* data, std::size_t n, bool here);
  // Whether the loop reads `conn` now (no call in flight, not draining, few reply bytes unsent).
  bool WantsInput(const Connection& conn) const;
  // io_uring: the loop (Run's), an operation's completion, and arming each kind of operation.
  bool RunRing();
  bool OnCompletion(uint64_t data, int res, uint32_t flags);
  bool OnReceived(const ConnectionPtr& conn, int res, uint32_t flags);
  void OnSent(const ConnectionPtr& conn, int res);
  void AfterWritten(const ConnectionPtr& conn);
  io_uring_sqe* Sqe();
  void ArmWake();
  void ArmTick();
  void ArmListener();
  void ArmRecv(const ConnectionPtr& conn);
  void ArmSend(const ConnectionPtr& conn);
  void Cancel(uint64_t data);
  // A closed connection whose operations have all ended: its descriptor closes now.
  void Retire(const ConnectionPtr& conn);
  void OnWritable(const ConnectionPtr& conn);
  bool ProcessInput(const ConnectionPtr& conn, bool here);
  // Of a frame over kReusedFrameBytes (and within the limit) of which kReusedFrameBytes are in:
  // the bytes still to come; else 0.
  std::size_t LargeFrameRest(const Connection& conn) const;
  // Plaintext epoll loops: sets the socket's low-water mark to the rest of the frame being read
  // when that is kWaitWholeBytes or more, else back to the default (one byte).
  void WaitForRest(Connection& conn);
  // `frame`: the frame's bytes after its length, valid until this returns.
  // `buffer` or `owned`, when given, holds the frame's bytes and may be taken by a call sent to
  // the pool.
  bool HandleFrame(const ConnectionPtr& conn, std::string_view frame, bool here,
                   FrameBuffer* buffer = nullptr, std::string* owned = nullptr);
  bool RunHere(const ConnectionPtr& conn, const Route& route, const THeaderFrame* wrap,
               const ThriftMessageHeader& header, const CallMeta& meta, std::string_view args);
  // A compressed THeader frame's message (`payload`), inflated into *out under `hold`; false
  // with the code and reason to answer (or to close with, when *out says nothing of whom).
  bool Inflate(const THeaderFrame& theader, std::string_view payload, std::string* out,
               InflatedHold* hold, StatusCode* code, std::string* why);
  void HandOff(uint64_t running);
  // Writes `reply` from byte `from` on.
  void QueueReply(const ConnectionPtr& conn, std::string reply, std::size_t from = 0);
  void Flush(const ConnectionPtr& conn);
  void SetEvents(const ConnectionPtr& conn, uint32_t events);
  void UpdateEvents(const ConnectionPtr& conn);
  void Close(const ConnectionPtr& conn, std::string_view why, LogLevel level);
  // A frame over max_message_bytes whose first bytes are in `in`: false when the connection
  // closed or more bytes are needed.
  bool TakeOversized(const ConnectionPtr& conn, uint32_t length);
  void Scan(SteadyClock::time_point now);
  void Accept();

  ThriftServerTransport* const server_;
  const int index_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  // The scan's tick on epoll: a timer in the epoll set, so that epoll_wait sleeps without a
  // timeout of its own. Made by the first Run (StartTick); -1 on io_uring (the tick is an
  // operation in the ring) or when no descriptor could be had (then the wait times out at the
  // scan interval instead, and the next Run tries again).
  int tick_fd_ = -1;
  int listen_fd_ = -1;
  std::mutex inbox_mu_;
  Inbox inbox_;
  std::atomic<bool> wake_pending_{false};
  std::unordered_map<int, ConnectionPtr> connections_;  // by descriptor; loop thread only
  std::atomic<int> busy_{0};
  bool draining_ = false;
  std::atomic<bool> draining_seen_{false};  // draining_, for handler threads
  bool stopping_ = false;
  // When the loop last woke: the time of what it does until it waits again (connection
  // activity, frame and reply starts, the scan). Late by at most the calls run in place since,
  // which the timeouts (seconds) do not notice; one clock reading per wake, not one per use.
  SteadyClock::time_point now_;

  // The call the loop's thread runs in place; the monitor's Displace takes the loop away.
  InPlaceCall here_;
  ConnectionPtr here_conn_;            // its connection, while it runs
  const Route* here_route_ = nullptr;  // and its method
  std::mutex handoff_mu_;              // held by the check through a hand-off

  // io_uring (server.thrift_io: uring); null on epoll. Used by the thread running the loop only.
  std::unique_ptr<io_uring> ring_;
  void* recv_mapping_ = nullptr;  // the buffer ring, then kRecvBuffers buffers
  io_uring_buf_ring* recv_ring_ = nullptr;
  char* recv_memory_ = nullptr;
  uint64_t wake_value_ = 0;
  bool wake_armed_ = false;
  __kernel_timespec tick_{0, std::chrono::nanoseconds(kScanInterval).count()};
  bool tick_armed_ = false;
  bool listen_armed_ = false;
  std::atomic<bool> listener_off_{false};  // UnwatchListener: accept nothing more
  int ring_ops_ = 0;                       // operations submitted whose completion is to come
  std::vector<ConnectionPtr> starved_;     // receives that found no buffer: armed again
  // Sends submitted since the last wait that should complete within it (their connections'
  // sends have), with their serials: the wait counts them, so it returns for what comes next.
  std::vector<std::pair<ConnectionPtr, uint64_t>> quick_sends_, waited_sends_;
  std::unordered_map<Connection*, ConnectionPtr> closing_;  // closed, operations still held
};

class ThriftServerTransport final : public ServerTransport, private InPlaceMonitor::Client {
 public:
  explicit ThriftServerTransport(const ServerOptions& options) : options_(options) {}
  ~ThriftServerTransport() override { Shutdown(SteadyClock::now()); }

  absl::Status Start(const MethodTable& table, CallScheduler* scheduler) override {
    table_ = &table;
    scheduler_ = scheduler;
    if (!options_.tls.cert_file.empty()) {
      absl::StatusOr<TlsContext> tls = MakeServerTlsContext(options_.tls, "server.tls");
      if (!tls.ok()) return tls.status();
      tls_ = *std::move(tls);
    }
    absl::StatusOr<int> fd =
        ListenNonBlocking("Thrift", options_.host, options_.thrift_port, &port_);
    if (!fd.ok()) return fd.status();
    listen_fd_ = *fd;
    // Held back for the moment the process runs out: accept() can then take a connection off
    // the backlog to close it, instead of spinning on EMFILE.
    spare_ = std::make_unique<SpareDescriptor>();
    const int io_threads = IoThreads(options_.io_threads);
    for (int i = 0; i < io_threads; ++i) {
      loops_.push_back(std::make_unique<Loop>(this, i));
      if (absl::Status s = loops_.back()->Init(); !s.ok()) {
        loops_.clear();
        ::close(listen_fd_);
        return s;
      }
    }
    bool ring = options_.thrift_io == ServerOptions::ThriftIo::kUring;
    if (ring && tls_) {
      Log(LogLevel::kWarning,
          "Thrift: server.thrift_io uring serves plaintext only; with TLS the loops use epoll");
      ring = false;
    }
    for (std::size_t i = 0; ring && i < loops_.size(); ++i) {
      if (absl::Status s = loops_[i]->InitRing(); !s.ok()) {
        Log(LogLevel::kWarning,
            absl::StrCat("Thrift: server.thrift_io uring: ", s.message(), "; the loops use epoll"));
        for (std::size_t j = 0; j < i; ++j) loops_[j]->DropRing();
        ring = false;
      }
    }
    loops_.front()->SetListener(listen_fd_);
    // No connection is taken before the listener is watched (below), so none was given to a
    // loop that got no thread.
    if (absl::Status s = runners_.StartAll(&loops_, scheduler_->threads()); !s.ok()) {
      loops_.clear();
      ::close(listen_fd_);
      return s;
    }
    loops_.front()->WatchListener();
    if (std::string error; !monitor_.Start(&error)) {
      // Without the monitor no call runs in place: every call goes to the handler pool.
      Log(LogLevel::kWarning, absl::StrCat("Thrift: no monitor thread (", error,
                                           "); every call goes to the handler pool"));
    }
    Log(LogLevel::kInfo,
        absl::StrCat(
            "Thrift listening on ", options_.host, ":", port_, tls_ ? " (TLS" : " (plaintext",
            tls_ && options_.tls.require_client_cert ? ", client certificates required" : "",
            "; I/O threads: ", loops_.size(),
            loops_.front()->on_ring() ? " on io_uring" : " on epoll", ")"));
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void StopAccepting() override {
    if (loops_.empty() || accepting_stopped_.exchange(true)) return;
    loops_.front()->UnwatchListener();
    for (auto& loop : loops_) loop->PostDrain();
  }

  // Stops the loops; the Loop objects and their sockets live on until the transport is
  // destroyed, which Server does only after the handler pool is gone: a handler that outlived
  // the grace period may still hand its reply to its loop or write it to its socket.
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
    Loop* loop = loops_[next_loop_++ % loops_.size()].get();
    bool over_cap = connections_.load() > options_.max_connections;  // counts this one
    loop->Adopt(fd, std::move(peer), over_cap);
  }

  // Out of descriptors: accept one connection with the spare and close it at once.
  void ShedOneConnection(int listen_fd) {
    if (spare_ != nullptr) spare_->Shed(listen_fd);
  }

  // The TLS context, or null for plaintext.
  SSL_CTX* tls() const { return tls_.get(); }

  // Whether a loop may run a call in place now (else it goes to the handler pool).
  bool MayRunHere() const { return monitor_.running(); }
  // A loop started a call in place: the monitor must be awake to see it block.
  void NoteRunningHere() { monitor_.Note(); }
  // A loop between its calls: it checks the other loops' calls in place when a check is due,
  // so that the monitor thread need not wake for it while the loops are busy.
  void PokeMonitor(SteadyClock::time_point now) { monitor_.Poke(SteadyNanos(now)); }
  // The check (the monitor thread's, or a poking loop's), under the loop's hand-off lock: makes
  // sure a spare thread can take a loop (starts one when none is spare). False when none can be
  // had: the loop waits for its call instead.
  bool ReserveRunner() { return runners_.Reserve(); }
  // Monitor: `loop`'s thread is held by a blocked call; a spare thread takes the loop.
  void HandOver(Loop* loop) { runners_.HandOver(loop); }

  const ServerOptions& options() const { return options_; }
  const MethodTable& table() const { return *table_; }
  CallScheduler& scheduler() { return *scheduler_; }
  ConnectionCount& connections() { return connections_; }

  // At most one log line per second for floods (refusals, descriptor exhaustion).
  bool ShouldLogFlood() { return flood_log_.Allow(); }

  // thrift_inflated_quota: false when `n` more inflated bytes would pass it.
  bool HoldInflated(std::size_t n) {
    std::size_t now = inflated_held_.load(std::memory_order_relaxed);
    do {
      if (now + n > options_.thrift_inflated_quota) return false;
    } while (!inflated_held_.compare_exchange_weak(now, now + n, std::memory_order_relaxed));
    return true;
  }
  void UnholdInflated(std::size_t n) { inflated_held_.fetch_sub(n, std::memory_order_relaxed); }

 private:
  const ServerOptions options_;
  std::atomic<std::size_t> inflated_held_{0};
  TlsContext tls_;
  const MethodTable* table_ = nullptr;
  CallScheduler* scheduler_ = nullptr;
  int listen_fd_ = -1;
  std::unique_ptr<SpareDescriptor> spare_;  // only loop 0 accepts: one thread uses it
  int port_ = 0;
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

  std::vector<std::unique_ptr<Loop>> loops_;
  LoopRunners<Loop> runners_{"Thrift"};
  InPlaceMonitor monitor_{this};
  ConnectionCount connections_;
  std::atomic<bool> accepting_stopped_{false};
  bool stopped_ = false;
  LogLimiter flood_log_;
  std::size_t next_loop_ = 0;  // loop 0's thread only
};

// ---- Loop ----

Loop::~Loop() {
  if (ring_ != nullptr) {
    // Every operation the kernel holds points into a connection or a buffer freed here: cancel
    // them all and wait for their completions (bounded) before the ring goes.
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kOpCancel);
    ++ring_ops_;
    auto until = SteadyClock::now() + std::chrono::seconds(2);
    while (ring_ops_ > 0 && SteadyClock::now() < until) {
      __kernel_timespec wait{0, 50 * 1000 * 1000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &wait, nullptr);
      unsigned head, seen = 0;
      io_uring_for_each_cqe(ring_.get(), head, cqe) { ++seen; }
      io_uring_cq_advance(ring_.get(), seen);
      ring_ops_ -= static_cast<int>(seen);
    }
    for (auto& [raw, conn] : closing_) ::close(conn->fd);
    closing_.clear();
    DropRing();
  }
  for (auto& [fd, conn] : connections_) {
    ::close(fd);
    conn->closed = true;
    server_->connections().fetch_sub(1);
  }
  std::lock_guard<std::mutex> lock(inbox_mu_);
  for (auto* list : {&inbox_.adopt, &inbox_.adopt_over_cap}) {
    for (auto& [fd, peer] : *list) {
      ::close(fd);
      server_->connections().fetch_sub(1);
    }
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (tick_fd_ >= 0) ::close(tick_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

absl::Status Loop::Init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Thrift: cannot create an event loop: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  return absl::OkStatus();
}

void Loop::StartTick() {
  if (tick_fd_ >= 0) return;
  // A wait with a timeout arms and cancels a kernel timer every time the loop sleeps, which on a
  // paravirtualized machine costs a noticeable part of a cheap call; a periodic timer in the set
  // is armed once.
  tick_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (tick_fd_ < 0) return;
  itimerspec every{};
  every.it_interval.tv_nsec = std::chrono::nanoseconds(kScanInterval).count();
  every.it_value = every.it_interval;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = tick_fd_;
  if (::timerfd_settime(tick_fd_, 0, &every, nullptr) != 0 ||
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tick_fd_, &ev) != 0) {
    ::close(tick_fd_);
    tick_fd_ = -1;
  }
}

absl::Status Loop::InitRing() {
  auto ring = std::make_unique<io_uring>();
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = kRingCompletions;
  if (int rc = io_uring_queue_init_params(kRingEntries, ring.get(), &params); rc < 0) {
    return absl::UnavailableError(absl::StrCat("io_uring refused (", std::strerror(-rc),
                                               "; a seccomp profile or an old kernel)"));
  }
  // No completion dropped when the queue is full, a timeout on the wait, sockets polled inside
  // the kernel: Linux 5.11; the buffer ring below needs 5.19.
  constexpr uint32_t kNeeded = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_FAST_POLL;
  if ((params.features & kNeeded) != kNeeded) {
    io_uring_queue_exit(ring.get());
    return absl::UnavailableError("this kernel's io_uring is too old (Linux 6.0 or later needed)");
  }
  const std::size_t ring_bytes = kRecvBuffers * sizeof(io_uring_buf);
  void* mapping = ::mmap(nullptr, ring_bytes + kRecvBuffers * kRecvBufferBytes,
                         PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    io_uring_queue_exit(ring.get());
    return absl::ResourceExhaustedError(
        absl::StrCat("no memory for receive buffers: ", std::strerror(errno)));
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(mapping);
  reg.ring_entries = kRecvBuffers;
  reg.bgid = kRecvGroup;
  if (int rc = io_uring_register_buf_ring(ring.get(), &reg, 0); rc < 0) {
    ::munmap(mapping, ring_bytes + kRecvBuffers * kRecvBufferBytes);
    io_uring_queue_exit(ring.get());
    return absl::UnavailableError(
        absl::StrCat("no buffer ring (", std::strerror(-rc), "; Linux 6.0 or later needed)"));
  }
  recv_mapping_ = mapping;
  recv_ring_ = static_cast<io_uring_buf_ring*>(mapping);
  recv_memory_ = static_cast<char*>(mapping) + ring_bytes;
  io_uring_buf_ring_init(recv_ring_);
  const int mask = io_uring_buf_ring_mask(kRecvBuffers);
  for (unsigned i = 0; i < kRecvBuffers; ++i) {
    io_uring_buf_ring_add(recv_ring_, recv_memory_ + i * kRecvBufferBytes, kRecvBufferBytes,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(recv_ring_, kRecvBuffers);
  ring_ = std::move(ring);
  return absl::OkStatus();
}

void Loop::DropRing() {
  if (ring_ == nullptr) return;
  io_uring_queue_exit(ring_.get());
  ring_.reset();
  ::munmap(recv_mapping_, kRecvBuffers * (sizeof(io_uring_buf) + kRecvBufferBytes));
  recv_mapping_ = nullptr;
  recv_ring_ = nullptr;
  recv_memory_ = nullptr;
}

void Loop::WatchListener() {
  if (ring_ != nullptr) {
    {
      std::lock_guard<std::mutex> lock(inbox_mu_);
      inbox_.watch_listener = true;
    }
    Wake();
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
}

void Loop::UnwatchListener() {
  if (ring_ != nullptr) {
    // Accept takes nothing from here on; the loop cancels its poll.
    listener_off_ = true;
    {
      std::lock_guard<std::mutex> lock(inbox_mu_);
      inbox_.unwatch_listener = true;
    }
    Wake();
    return;
  }
  // epoll_ctl is safe from any thread: no accept event is reported after this returns.
  if (listen_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
}

void Loop::Wake() {
  if (wake_pending_.exchange(true)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Loop::Adopt(int fd, std::string peer, bool over_cap) {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    (over_cap ? inbox_.adopt_over_cap : inbox_.adopt).emplace_back(fd, std::move(peer));
  }
  Wake();
}

void Loop::PostReply(const ConnectionPtr& conn, std::string reply, std::size_t sent,
                     FrameBuffer* spare) {
  FrameBuffer kept = spare != nullptr ? std::move(*spare) : FrameBuffer();
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.replies.push_back(Inbox::Reply{conn, std::move(reply), sent, std::move(kept)});
  }
  Wake();
}

void Loop::Recycle(Connection& conn, FrameBuffer* spare) {
  if (spare == nullptr || spare->capacity() == 0 || spare->capacity() > kSpareKeptBytes ||
      conn.in.capacity() != 0) {
    return;
  }
  spare->Clear();
  conn.in = std::move(*spare);
}

void Loop::KeepReplyString(Connection& conn, std::string* written) {
  if (written->capacity() > kSpareKeptBytes || conn.spare_out.capacity() >= written->capacity()) {
    return;
  }
  written->clear();
  conn.spare_out = std::move(*written);
}

bool Loop::FinishOnWorker(const ConnectionPtr& conn, std::string& reply, FrameBuffer* spare) {
  // An io_uring loop's operations are submitted by its own thread: the reply goes through it.
  if (ring_ != nullptr) return false;
  if (draining_seen_.load() || conn->hung_up.load() || !conn->in.empty()) return false;
  std::size_t sent = 0;
  while (sent < reply.size()) {
    ssize_t n = Send(*conn, reply.data() + sent, reply.size() - sent);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (sent == 0) return false;
  if (sent < reply.size()) {
    PostReply(conn, std::move(reply), sent, spare);  // the loop writes the rest as the peer reads
    return true;
  }
  // The loop touches neither `in` nor spare_out until the call is over.
  Recycle(*conn, spare);
  KeepReplyString(*conn, &reply);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = conn->fd;
  conn->events = EPOLLIN;
  busy_.fetch_sub(1);
  std::lock_guard<std::mutex> rearming(conn->rearm_mu);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn->fd, &ev) != 0) {
    // The loop dropped it (the peer hung up): let the loop close it.
    conn->call_in_flight = false;
    PostReply(conn, std::string());
    return true;
  }
  conn->call_in_flight = false;  // from here on the loop owns the connection again
  return true;
}

void Loop::PostDrain() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.drain = true;
  }
  Wake();
}

void Loop::PostStop() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.stop = true;
  }
  Wake();
}

bool Loop::Run() {
  if (ring_ != nullptr) return RunRing();
  StartTick();
  std::vector<epoll_event> events(256);
  now_ = SteadyClock::now();
  auto next_scan = now_ + kScanInterval;
  const int timeout = tick_fd_ >= 0 ? -1 : static_cast<int>(kScanInterval.count());
  while (!stopping_) {
    bool ticked = false;
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    now_ = SteadyClock::now();
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::kError, absl::StrCat("Thrift: epoll_wait: ", std::strerror(errno)));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
        wake_pending_.store(false);
        TakeInbox();
      } else if (fd == tick_fd_) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = ::read(tick_fd_, &expirations, sizeof expirations);
        ticked = true;
      } else if (fd == listen_fd_) {
        Accept();
      } else if (auto it = connections_.find(fd); it != connections_.end()) {
        ConnectionPtr conn = it->second;  // alive through this event
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          // Gone both ways. Still read what arrived (a last call from a client that closed)
          // unless a call is running: its reply has nowhere to go.
          if (conn->call_in_flight) {
            // Its handler may still write to the descriptor: close once the call ends.
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
            conn->hung_up = true;
            continue;
          }
          OnReadable(conn, false);
          if (!conn->call_in_flight && !conn->out.empty()) Flush(conn);
          if (!conn->call_in_flight) Close(conn, "", LogLevel::kInfo);
          continue;
        }
        if (events[i].events & EPOLLOUT) OnWritable(conn);
        if (!conn->closed && (events[i].events & EPOLLIN)) {
          // Readable while its call is in flight: the call's thread has armed EPOLLIN and is
          // about to hand the connection back (FinishOnWorker).
          if (conn->call_in_flight) {
            std::lock_guard<std::mutex> handed_back(conn->rearm_mu);  // waits for it
          }
          if (!OnReadable(conn, true)) {
            return false;  // handed off: the events not yet served are reported again
          }
        }
      }
    }
    server_->PokeMonitor(now_);
    if (tick_fd_ >= 0 ? ticked : now_ >= next_scan) {
      Scan(now_);
      next_scan = now_ + kScanInterval;
    }
  }
  return true;
}

bool Loop::RunRing() {
  now_ = SteadyClock::now();
  auto next_scan = now_ + kScanInterval;
  if (!wake_armed_) ArmWake();
  if (!tick_armed_) ArmTick();
  while (!stopping_) {
    for (const ConnectionPtr& conn : starved_) UpdateEvents(conn);
    starved_.clear();
    // Submits what the last round prepared and waits, in one system call, with no timeout of
    // its own (the tick is an operation in the ring: on a paravirtualized machine arming a
    // timer on every wait costs a tenth of a call). A small send to a socket with room, which
    // is every reply to a client that read its last one, completes within the call: its
    // completion is counted in, so the wait is for what comes next, not for the send just made.
    // A counted send whose socket is full (a peer that stopped reading) holds the wait until
    // one more completion or the tick, once: its connection's sends are not counted again
    // until one completes at once.
    waited_sends_.swap(quick_sends_);
    quick_sends_.clear();
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait(ring_.get(), 1 + static_cast<unsigned>(waited_sends_.size()));
    now_ = SteadyClock::now();
    if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
      Log(LogLevel::kError, absl::StrCat("Thrift: io_uring_enter: ", std::strerror(-rc)));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // One completion at a time, each marked seen before it is served: a thread that loses the
    // loop to a blocked call leaves the rest to the next.
    while (!stopping_ && io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
      const uint64_t data = cqe->user_data;
      const int res = cqe->res;
      const uint32_t flags = cqe->flags;
      io_uring_cqe_seen(ring_.get(), cqe);
      if (!OnCompletion(data, res, flags)) return false;
    }
    for (const auto& [conn, serial] : waited_sends_) {
      conn->send_stalled = conn->send_armed && conn->send_serial == serial;
    }
    waited_sends_.clear();
    server_->PokeMonitor(now_);
    if (now_ >= next_scan) {
      Scan(now_);
      next_scan = now_ + kScanInterval;
    }
  }
  io_uring_submit(ring_.get());  // the cancellations prepared on the way out
  return true;
}

bool Loop::OnCompletion(uint64_t data, int res, uint32_t flags) {
  --ring_ops_;
  if (data == kOpWake) {
    wake_armed_ = false;
    wake_pending_.store(false);
    TakeInbox();
    if (!stopping_) ArmWake();
    return true;
  }
  if (data == kOpListen) {
    listen_armed_ = false;  // both stop once UnwatchListener has run
    Accept();
    ArmListener();
    return true;
  }
  if (data == kOpTick) {
    tick_armed_ = false;  // the scan runs after this round's completions
    if (!stopping_) ArmTick();
    return true;
  }
  if (data == kOpCancel) return true;
  ConnectionPtr conn = reinterpret_cast<Connection*>(data & ~kOpMask)->shared_from_this();
  --conn->ring_ops;
  if ((data & kOpMask) == kOpRecv) {
    if (!OnReceived(conn, res, flags)) return false;
  } else {
    OnSent(conn, res);
  }
  if (conn->closed) Retire(conn);
  return true;
}

bool Loop::OnReceived(const ConnectionPtr& conn, int res, uint32_t flags) {
  conn->recv_armed = false;
  // The bytes are copied out and the buffer given back at once: a call run in place that blocks
  // keeps its thread's copy, and the loop goes on with the ring's buffers.
  thread_local char copy[kRecvBufferBytes];
  if (flags & IORING_CQE_F_BUFFER) {
    const auto id = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
    char* buffer = recv_memory_ + std::size_t{id} * kRecvBufferBytes;
    if (res > 0 && !conn->closed) std::memcpy(copy, buffer, static_cast<std::size_t>(res));
    io_uring_buf_ring_add(recv_ring_, buffer, kRecvBufferBytes, id,
                          io_uring_buf_ring_mask(kRecvBuffers), 0);
    io_uring_buf_ring_advance(recv_ring_, 1);
  }
  if (conn->closed) return true;
  if (res == -ENOBUFS) {
    starved_.push_back(conn);  // every buffer was taken in this round: armed again after it
    return true;
  }
  if (res == -EINTR || res == -EAGAIN) {
    UpdateEvents(conn);
    return true;
  }
  if (res == 0) {
    bool quiet = conn->in.empty() && conn->skip == 0;
    Close(conn, quiet ? "" : "disconnected in the middle of a frame",
          quiet ? LogLevel::kInfo : LogLevel::kWarning);
    return true;
  }
  if (res < 0) {
    Close(conn, absl::StrCat("read failed: ", std::strerror(-res)), LogLevel::kInfo);
    return true;
  }
  const auto n = static_cast<std::size_t>(res);
  if (draining_) {
    // No call starts now: the bytes are dropped, and the connection closes once its reply is out.
    conn->last_active = now_;
    return true;
  }
  if (conn->call_in_flight) {
    // Bytes of a next frame, received by a receive armed before the call began: kept for when
    // its reply is out (no receive is armed again until then).
    conn->last_active = now_;
    if (conn->in.empty()) conn->frame_start = now_;
    try {
      conn->in.Append(copy, n);
    } catch (const std::bad_alloc&) {
      Close(conn, "out of memory for its frame", LogLevel::kWarning);
    }
    return true;
  }
  if (!OnBytes(conn, copy, n, true)) return false;
  UpdateEvents(conn);  // the next receive, when the loop wants one
  return true;
}

void Loop::OnSent(const ConnectionPtr& conn, int res) {
  conn->send_armed = false;
  if (conn->closed) return;
  if (res <= 0) {
    Close(conn, "could not write a reply; client gone", LogLevel::kInfo);
    return;
  }
  conn->out_sent += static_cast<std::size_t>(res);
  Flush(conn);  // the rest of it, or the replies queued behind it
  if (!conn->closed && !conn->send_armed) AfterWritten(conn);
}

void Loop::AfterWritten(const ConnectionPtr& conn) {
  if (draining_ && !conn->call_in_flight) {
    Close(conn, "", LogLevel::kInfo);
    return;
  }
  ProcessInput(conn, false);
  if (!conn->closed) UpdateEvents(conn);
}

io_uring_sqe* Loop::Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  while (sqe == nullptr) {
    io_uring_submit(ring_.get());  // the queue is full: the kernel takes what is in it
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

void Loop::ArmWake() {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, kOpWake);
  wake_armed_ = true;
  ++ring_ops_;
}

void Loop::ArmTick() {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_timeout(sqe, &tick_, 0, 0);
  io_uring_sqe_set_data64(sqe, kOpTick);
  tick_armed_ = true;
  ++ring_ops_;
}

void Loop::ArmListener() {
  if (listen_armed_ || listen_fd_ < 0 || listener_off_.load()) return;
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_poll_add(sqe, listen_fd_, POLLIN);
  io_uring_sqe_set_data64(sqe, kOpListen);
  listen_armed_ = true;
  ++ring_ops_;
}

void Loop::ArmRecv(const ConnectionPtr& conn) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_recv(sqe, conn->fd, nullptr, kRecvBufferBytes, 0);
  io_uring_sqe_set_flags(sqe, IOSQE_BUFFER_SELECT);
  sqe->buf_group = kRecvGroup;
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(conn.get()) | kOpRecv);
  conn->recv_armed = true;
  ++conn->ring_ops;
  ++ring_ops_;
}

void Loop::ArmSend(const ConnectionPtr& conn) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_send(sqe, conn->fd, conn->out.data() + conn->out_sent,
                     conn->out.size() - conn->out_sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(conn.get()) | kOpSend);
  conn->send_armed = true;
  ++conn->send_serial;
  ++conn->ring_ops;
  ++ring_ops_;
  if (!conn->send_stalled && conn->out_sent == 0 && conn->out.size() <= kQuickSendBytes) {
    quick_sends_.emplace_back(conn, conn->send_serial);
  }
}

void Loop::Cancel(uint64_t data) {
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_cancel64(sqe, data, 0);
  io_uring_sqe_set_data64(sqe, kOpCancel);
  ++ring_ops_;
}

void Loop::Retire(const ConnectionPtr& conn) {
  if (conn->ring_ops > 0) return;
  auto it = closing_.find(conn.get());
  if (it == closing_.end()) return;
  ::close(conn->fd);
  conn->out = std::string();
  closing_.erase(it);
}

void Loop::TakeInbox() {
  Inbox taken;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    std::swap(taken, inbox_);
  }
  for (auto& [fd, peer] : taken.adopt) {
    if (draining_) {
      ::close(fd);
      server_->connections().fetch_sub(1);
    } else {
      Register(fd, std::move(peer));
    }
  }
  for (auto& [fd, peer] : taken.adopt_over_cap) {
    if (!draining_ && EvictOldestIdle()) {
      Register(fd, std::move(peer));
    } else {
      if (server_->ShouldLogFlood()) {
        Log(LogLevel::kWarning,
            absl::StrCat("Thrift: refusing ", peer, ": ", server_->options().max_connections,
                         " connections open and none idle (server.max_connections)"));
      }
      ::close(fd);
      server_->connections().fetch_sub(1);
      Transports().thrift_connections_refused.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (auto& [conn, reply, sent, spare] : taken.replies) {
    if (conn->call_in_flight) {
      conn->call_in_flight = false;
      busy_.fetch_sub(1);
    }
    if (conn->closed) continue;
    if (conn->hung_up) {
      Close(conn, "", LogLevel::kInfo);
      continue;
    }
    conn->last_active = now_;
    Recycle(*conn, &spare);
    if (!conn->in.empty()) conn->frame_start = conn->last_active;  // waited on the call
    if (!reply.empty()) QueueReply(conn, std::move(reply), sent);
    if (conn->closed) continue;
    if (draining_ && conn->out.empty()) {
      Close(conn, "", LogLevel::kInfo);
      continue;
    }
    UpdateEvents(conn);
    if (!draining_) ProcessInput(conn, false);  // frames that arrived while the call ran
  }
  if (taken.drain && !draining_) {
    draining_ = true;
    draining_seen_ = true;
    std::vector<ConnectionPtr> idle;
    for (auto& [fd, conn] : connections_) {
      if (!conn->call_in_flight && conn->out.empty()) idle.push_back(conn);
    }
    for (const ConnectionPtr& conn : idle) Close(conn, "", LogLevel::kInfo);
  }
  if (taken.watch_listener) ArmListener();
  if (taken.unwatch_listener && listen_armed_) Cancel(kOpListen);
  if (taken.stop) stopping_ = true;
}

void Loop::Register(int fd, std::string peer) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ConnectionPtr conn;
  try {
    conn = std::make_shared<Connection>();
  } catch (const std::bad_alloc&) {
    ::close(fd);
    server_->connections().fetch_sub(1);
    return;
  }
  conn->fd = fd;
  conn->peer = std::move(peer);
  conn->loop = this;
  conn->last_active = now_;
  conn->frame_start = conn->last_active;  // TLS: the handshake must end within frame_timeout
  if (SSL_CTX* tls = server_->tls()) {
    conn->tls.ssl = NewSsl(tls, fd);
    if (conn->tls.ssl == nullptr) {
      ::close(fd);
      server_->connections().fetch_sub(1);
      return;
    }
    SSL_set_accept_state(conn->tls.ssl);
  }
  connections_.emplace(fd, conn);
  if (ring_ != nullptr) {
    UpdateEvents(conn);  // its first receive
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    Close(conn, absl::StrCat("cannot watch it: ", std::strerror(errno)), LogLevel::kWarning);
    return;
  }
  conn->events = EPOLLIN;
}

bool Loop::EvictOldestIdle() {
  ConnectionPtr oldest;
  for (auto& [fd, conn] : connections_) {
    if (conn->call_in_flight || !conn->out.empty() || !conn->in.empty() || conn->skip > 0) continue;
    if (oldest == nullptr || conn->last_active < oldest->last_active) oldest = conn;
  }
  if (oldest == nullptr) return false;
  Close(oldest, "closed for a new connection: server.max_connections reached, this one idle",
        LogLevel::kInfo);
  return true;
}

void Loop::Accept() {
  for (int i = 0; i < 64 && !listener_off_.load(std::memory_order_relaxed); ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE) {
        if (server_->ShouldLogFlood()) {
          Log(LogLevel::kWarning, "Thrift: out of file descriptors; refusing connections");
        }
        server_->ShedOneConnection(listen_fd_);
        return;
      }
      if (server_->ShouldLogFlood()) {
        Log(LogLevel::kWarning, absl::StrCat("Thrift: accept failed: ", std::strerror(errno)));
      }
      return;
    }
    server_->connections().fetch_add(1);
    server_->Assign(fd, PeerName(addr));
  }
}

bool Loop::OnReadable(const ConnectionPtr& conn, bool here) {
  if (conn->call_in_flight || conn->closed) return true;
  thread_local char buffer[64 * 1024];
  std::size_t budget = kReadBudget;
  while (budget > 0 && !conn->closed && !conn->call_in_flight) {
    // The rest of a large frame goes straight into its buffer, and so does the next frame of a
    // connection that kept a large frame's buffer (Recycle): a client that keeps sending large
    // calls has none of their bytes copied on the way in.
    char* into = buffer;
    std::size_t room = sizeof buffer;
    const std::size_t rest = LargeFrameRest(*conn);
    if (rest > 0) {
      try {
        into = conn->in.Tail(rest, &room);
      } catch (const std::bad_alloc&) {
        Close(conn, "out of memory for its frame", LogLevel::kWarning);
        return true;
      }
    } else if (conn->in.empty() && conn->skip == 0 && conn->in.capacity() > sizeof buffer) {
      into = conn->in.Tail(conn->in.capacity(), &room);  // fits: allocates nothing
    }
    ssize_t got = conn->tls.ssl != nullptr ? ServerTlsRecv(conn->tls, conn->fd, into, room)
                                           : ::recv(conn->fd, into, room, 0);
    if (got < 0 && errno == EPROTO) {
      // TLS refused the peer: a handshake that failed (wrong certificate, plaintext on this
      // port) or a corrupt record.
      if (server_->ShouldLogFlood()) {
        Log(LogLevel::kWarning, "Thrift: closing " + conn->peer + ": TLS: " + conn->tls.error);
      }
      Close(conn, "", LogLevel::kInfo);
      return true;
    }
    if (got > 0) {
      budget -= std::min(budget, static_cast<std::size_t>(got));
      if (into != buffer) {
        if (conn->in.empty()) conn->frame_start = now_;
        conn->in.Commit(static_cast<std::size_t>(got));
        conn->last_active = now_;
        if (!ProcessInput(conn, here)) return false;
      } else if (!OnBytes(conn, buffer, static_cast<std::size_t>(got), here)) {
        return false;
      }
      // A short read took all there was: epoll (level-triggered) reports what comes next, so
      // the usual call costs no recv that only says EAGAIN.
      if (static_cast<std::size_t>(got) < room &&
          (conn->tls.ssl == nullptr || SSL_has_pending(conn->tls.ssl) == 0))
        break;
      continue;
    }
    if (got == 0) {
      bool quiet = conn->in.empty() && conn->skip == 0;
      Close(conn, quiet ? "" : "disconnected in the middle of a frame",
            quiet ? LogLevel::kInfo : LogLevel::kWarning);
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    Close(conn, absl::StrCat("read failed: ", std::strerror(errno)), LogLevel::kInfo);
    return true;
  }
  // Also after the read budget ran out: a mark left at an earlier, larger rest would leave the
  // rest that did arrive unreported.
  if (!conn->closed && !conn->call_in_flight && conn->tls.ssl == nullptr) WaitForRest(*conn);
  return true;
}

void Loop::WaitForRest(Connection& conn) {
  std::size_t rest = 0;
  if (conn.skip == 0 && conn.in.size() >= 4) {
    const std::size_t length = DecodeFrameLength(conn.in.data());
    if (length <= server_->options().max_message_bytes && 4 + length > conn.in.size()) {
      rest = 4 + length - conn.in.size();
    }
  }
  if (rest < kWaitWholeBytes) rest = 0;
  if (rest == conn.low_water) return;
  // The kernel caps the mark at half its largest receive buffer (net.ipv4.tcp_rmem) and raises
  // the socket's buffer to hold it; the loop is then woken with less than the rest, and sets
  // the mark again to what is left.
  const int mark =
      rest == 0 ? 1
                : static_cast<int>(std::min<std::size_t>(rest, std::numeric_limits<int>::max()));
  if (::setsockopt(conn.fd, SOL_SOCKET, SO_RCVLOWAT, &mark, sizeof mark) != 0) rest = 0;
  conn.low_water = rest;
}

std::size_t Loop::LargeFrameRest(const Connection& conn) const {
  if (conn.skip > 0 || conn.in.size() < kReusedFrameBytes) return 0;
  const std::size_t length = DecodeFrameLength(conn.in.data());
  if (length <= kReusedFrameBytes || length > server_->options().max_message_bytes) return 0;
  return 4 + length > conn.in.size() ? 4 + length - conn.in.size() : 0;
}

bool Loop::OnBytes(const ConnectionPtr& conn, const char* data, std::size_t take, bool here) {
  conn->last_active = now_;
  // An oversized frame's tail is dropped as it arrives, never kept.
  if (conn->skip > 0) {
    std::size_t dropped = std::min(conn->skip, take);
    conn->skip -= dropped;
    data += dropped;
    take -= dropped;
    if (conn->skip == 0 && !conn->skip_reply.empty()) {
      QueueReply(conn, std::move(conn->skip_reply));
      conn->skip_reply.clear();
    }
  }
  const uint32_t length = take >= 4 ? DecodeFrameLength(data) : 0;
  if (!conn->closed && conn->in.empty() && length != 0 &&
      length <= server_->options().max_message_bytes && take == 4 + std::size_t{length}) {
    // The usual call: one whole frame in one read, served from where it was read.
    if (!HandleFrame(conn, std::string_view(data + 4, length), here)) return false;
  } else if (take > 0 && !conn->closed) {
    if (conn->in.empty()) conn->frame_start = conn->last_active;
    try {
      conn->in.Append(data, take);
    } catch (const std::bad_alloc&) {
      Close(conn, "out of memory for its frame", LogLevel::kWarning);
      return true;
    }
  }
  return ProcessInput(conn, here);
}

bool Loop::ProcessInput(const ConnectionPtr& conn, bool here) {
  const ServerOptions& options = server_->options();
  while (!conn->closed && !conn->call_in_flight && conn->skip == 0 && conn->in.size() >= 4) {
    uint32_t length = DecodeFrameLength(conn->in.data());
    if (length == 0) {
      Close(conn, "empty frame", LogLevel::kWarning);
      return true;
    }
    if (length > options.max_message_bytes) {
      if (!TakeOversized(conn, length)) return true;
      continue;
    }
    if (conn->in.size() < 4 + std::size_t{length}) return true;  // wait for the rest
    // The frame is in: the next one's first bytes must wake the loop (WaitForRest).
    if (conn->low_water != 0) {
      const int one = 1;
      ::setsockopt(conn->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
      conn->low_water = 0;
    }
    // The frame leaves `in` before it is served (a call that blocks here hands the loop to
    // another thread, which may read on meanwhile): a large one alone in `in` takes its buffer
    // along, the others are copied out (a small one into a buffer this thread reuses).
    const std::string_view bytes = conn->in.view().substr(4, length);
    if (length > kReusedFrameBytes && conn->in.size() == 4 + std::size_t{length}) {
      FrameBuffer large = std::move(conn->in);
      if (!HandleFrame(conn, bytes, here, &large)) return false;
      if (!conn->call_in_flight && !conn->closed) Recycle(*conn, &large);  // served in place
      continue;
    }
    thread_local std::string reused;
    std::string copied;
    std::string& frame = length <= kReusedFrameBytes ? reused : copied;
    frame.assign(bytes);
    if (conn->in.size() == 4 + std::size_t{length}) {
      conn->in.Clear();
    } else {
      conn->in.Consume(4 + std::size_t{length});
      conn->frame_start = now_;
    }
    if (!HandleFrame(conn, frame, here, nullptr, &frame == &copied ? &copied : nullptr)) {
      return false;
    }
  }
  return true;
}

std::string ReplyFrame(const THeaderFrame* theader, const ThriftMessageHeader& header, int32_t type,
                       std::string_view body) {
  std::string reply;
  if (theader == nullptr) {
    reply.reserve(4 + 16 + header.name.size() + body.size());
    StartPlainReply(header, type, &reply);
    reply.append(body);
    FillFrameLength(&reply);
  } else {
    reply = WrapTHeader(
        *theader, ThriftMessage(header.format, ReplyName(header.name), type, header.seqid, body));
    reply.insert(0, 4, '\0');
    FillFrameLength(&reply);
  }
  return reply;
}

bool Loop::TakeOversized(const ConnectionPtr& conn, uint32_t length) {
  // Read only the head (never the declared length), answer RESOURCE_EXHAUSTED as the gRPC side
  // does, and drop the rest as it arrives.
  const std::size_t limit = server_->options().max_message_bytes;
  auto not_thrift = [&] {
    if (LooksLikeTls(conn->in.view())) {
      Close(conn,
            "sent a TLS handshake: it has TLS on, this port is plaintext (server.tls.cert_file "
            "unset)",
            LogLevel::kWarning);
      return false;
    }
    Close(conn,
          absl::StrCat("frame of ", length, " bytes (limit ", limit,
                       "; is the client using framed transport?)"),
          LogLevel::kWarning);
    return false;
  };
  std::size_t head = std::min<std::size_t>(length, kOversizedHead);
  if (conn->in.size() < 4 + head) {
    // Bytes that cannot start a Thrift message (an HTTP request read as a length, say) need no
    // more reading.
    auto first = conn->in.size() > 4 ? static_cast<uint8_t>(conn->in.data()[4]) : 0x82;
    if (first != 0x82 && first != 0x80 && first != 0x0F) return not_thrift();
    return false;
  }
  std::string_view frame(conn->in.data() + 4, head);
  std::optional<THeaderFrame> theader;
  std::string_view message = frame;
  if (IsTHeaderFrame(frame)) {
    theader.emplace();
    // A compressed head cannot be read without inflating: such a frame is closed as not Thrift.
    if (!ParseTHeader(frame, &*theader, &NoInfoHeaders).ok() || !theader->transforms.empty()) {
      return not_thrift();
    }
    message = frame.substr(theader->payload_offset);
  }
  ThriftMessageHeader header;
  if (!ParseThriftHeader(message, &header).ok() || header.type != kThriftCall) return not_thrift();
  std::string what = absl::StrCat("request of ", length, " bytes exceeds the server's limit of ",
                                  limit, " (server.max_message_bytes)");
  Log(LogLevel::kWarning, "Thrift: " + conn->peer + ": " + what);
  std::string reply =
      ReplyFrame(theader ? &*theader : nullptr, header, kThriftReply,
                 ThriftErrorResult(header.format, StatusCode::kResourceExhausted, what));
  std::size_t dropped_now = std::min<std::size_t>(conn->in.size() - 4, length);
  conn->skip = length - dropped_now;
  conn->in.Consume(4 + dropped_now);
  if (!conn->in.empty()) conn->frame_start = now_;
  if (conn->skip == 0) {
    QueueReply(conn, std::move(reply));
  } else {
    conn->skip_reply = std::move(reply);  // sent once the rest has been dropped
  }
  return true;
}

bool Loop::HandleFrame(const ConnectionPtr& conn, std::string_view frame, bool here,
                       FrameBuffer* buffer, std::string* owned) {
  // Unwrap THeader; serve the message inside with the caller's deadline; answer in kind.
  std::optional<THeaderFrame> theader;
  THeaderMetadata custom;
  std::size_t offset = 0;
  std::string inflated;  // a compressed frame's message
  InflatedHold hold(server_);
  if (IsTHeaderFrame(frame)) {
    theader.emplace();
    if (absl::Status s = ParseTHeader(frame, &*theader, &ServerHeader, &custom); !s.ok()) {
      Close(conn, std::string(s.message()), LogLevel::kWarning);
      return true;
    }
    offset = theader->payload_offset;
    StatusCode code = StatusCode::kOk;
    std::string why;
    if (!theader->transforms.empty() &&
        !Inflate(*theader, frame.substr(offset), &inflated, &hold, &code, &why)) {
      // Answered (plainly) when what was inflated says whom to answer, else closed.
      ThriftMessageHeader head;
      if (!ParseThriftHeader(inflated, &head).ok() || head.type != kThriftCall) {
        Close(conn, why, LogLevel::kWarning);
        return true;
      }
      if (server_->ShouldLogFlood()) Log(LogLevel::kWarning, "Thrift: " + conn->peer + ": " + why);
      THeaderFrame plain = *theader;
      plain.transforms.clear();
      QueueReply(conn,
                 ReplyFrame(&plain, head, kThriftReply, ThriftErrorResult(head.format, code, why)));
      return true;
    }
  }
  const bool compressed = theader && !theader->transforms.empty();
  std::string_view message = compressed ? std::string_view(inflated) : frame.substr(offset);
  ThriftMessageHeader header;
  if (absl::Status s = ParseThriftHeader(message, &header); !s.ok()) {
    Close(conn, std::string(s.message()), LogLevel::kWarning);
    return true;
  }
  CallMeta meta;
  std::optional<ServerContext::Clock::time_point>& deadline = meta.deadline;
  if (theader) {
    for (const auto& [key, value] : theader->headers) {
      if (key == kAuthorizationHeader) meta.token = std::string(BearerToken(value));
      if (key == kTraceparentHeader) meta.traceparent = value;
      if (key == kTracestateHeader) meta.tracestate = value;
      if (key == kShadowHeader) meta.shadow = value == "1";
      if (key != kTimeoutHeader) continue;
      char* end = nullptr;
      long long ms = std::strtoll(value.c_str(), &end, 10);
      if (ms < 0 || end == nullptr || *end != '\0') continue;
      // A deadline past any the system clock can say is no deadline: clamp to a year.
      ms = std::min<long long>(ms, 365LL * 24 * 3600 * 1000);
      deadline = ServerContext::Clock::now() + std::chrono::milliseconds(ms);
    }
    theader->headers.clear();
    meta.metadata = std::move(custom.entries);
  }
  const THeaderFrame* wrap = theader ? &*theader : nullptr;
  if (header.type != kThriftCall) {
    // Every rpcboot method answers (the emitted IDL declares none oneway): a ONEWAY message is
    // refused, never run silently.
    std::string why = header.type == kThriftOneway ? "rpcboot: methods are not oneway"
                                                   : "rpcboot: expected a call message";
    QueueReply(conn, ReplyFrame(wrap, header, kThriftException,
                                ThriftApplicationException(header.format, kThriftInvalidMessageType,
                                                           why)));
    return true;
  }
  if (header.name == kThriftSchemaMethod) {
    const PeerIdentity* certificate = Certificate(*conn);
    QueueReply(
        conn, ReplyFrame(wrap, header, kThriftReply,
                         AnswerThriftSchema(server_->table().bindings(), server_->table().guard(),
                                            meta.token, certificate ? *certificate : PeerIdentity(),
                                            header.format, message.substr(header.body_offset))));
    return true;
  }
  if (custom.bytes > kMaxReceivedMetadataBytes) {
    // As the native gRPC server answers request headers past the same size.
    QueueReply(conn, ReplyFrame(wrap, header, kThriftReply,
                                ThriftErrorResult(
                                    header.format, StatusCode::kResourceExhausted,
                                    absl::StrCat("rpcboot: THeader metadata of ", custom.bytes,
                                                 " bytes exceeds ", kMaxReceivedMetadataBytes))));
    return true;
  }
  const Route* route = server_->table().FindThrift(header.name);
  if (route == nullptr) {
    Transports().unknown_methods.fetch_add(1, std::memory_order_relaxed);
    std::string shown = Printable(header.name);
    std::string why = server_->table().ThriftUnknownReason(header.name);
    if (why.empty()) why = "unknown method '" + shown + "'";
    Log(LogLevel::kInfo, "Thrift: " + conn->peer + ": " + why);
    QueueReply(conn, ReplyFrame(wrap, header, kThriftException,
                                ThriftApplicationException(header.format, kThriftUnknownMethod,
                                                           "rpcboot: " + why)));
    return true;
  }
  CallStats* stats = route->runtime->thrift_stats;
  meta.started = stats->Start();
  if (deadline && *deadline <= ServerContext::Clock::now()) {
    stats->Finish(meta.started, StatusCode::kDeadlineExceeded, conn->peer,
                  "deadline passed before the handler ran", true);
    QueueReply(conn, ReplyFrame(wrap, header, kThriftReply,
                                ThriftErrorResult(header.format, StatusCode::kDeadlineExceeded,
                                                  "rpcboot: deadline passed before the handler "
                                                  "ran")));
    return true;
  }
  if (route->run_inline) {
    // Listed in server.inline_methods: never blocks, so it runs right here, without a hop.
    QueueReply(conn,
               Serve(std::move(conn->spare_out), *route, server_->table(), conn->peer,
                     Certificate(*conn), meta, wrap, header, message.substr(header.body_offset)));
    return true;
  }
  if (here && server_->MayRunHere() && route->runtime->MayRunInPlace()) {
    // Counted in by the scheduler like any call (a handler slot, max_concurrent_calls, drain),
    // then run on this thread: no hop. With every slot busy it queues for the pool instead.
    StatusCode code = StatusCode::kOk;
    std::string why;
    if (server_->scheduler().Enter(&code, &why)) {
      return RunHere(conn, *route, wrap, header, meta, message.substr(header.body_offset));
    }
    if (code != StatusCode::kOk) {
      stats->Finish(meta.started, code, conn->peer, why, true);
      QueueReply(conn, ReplyFrame(wrap, header, kThriftReply,
                                  ThriftErrorResult(header.format, code, "rpcboot: " + why)));
      return true;
    }
  }
  conn->call_in_flight = true;
  busy_.fetch_add(1);
  UpdateEvents(conn);  // no more reading until the reply is out
  // What the handler thread needs, owned by the call.
  struct Pending {
    ConnectionPtr conn;
    std::string frame;   // or a compressed frame's message, inflated; or
    FrameBuffer buffer;  // the frame, as it was read (frame_start into it)
    std::size_t frame_start;
    std::optional<THeaderFrame> theader;
    ThriftMessageHeader header;
    std::size_t body_offset;
    const Route* route;
    const MethodTable* table;
    CallMeta meta;
    InflatedHold hold;

    std::string Reply(std::string_view result) const {
      return ReplyFrame(theader ? &*theader : nullptr, header, kThriftReply, result);
    }
  };
  const bool take_buffer = !compressed && buffer != nullptr;
  std::string kept = compressed         ? std::move(inflated)
                     : take_buffer      ? std::string()
                     : owned != nullptr ? std::move(*owned)
                                        : std::string(frame);
  FrameBuffer read = take_buffer ? std::move(*buffer) : FrameBuffer();
  const std::size_t frame_start =
      take_buffer ? static_cast<std::size_t>(frame.data() - read.data()) : 0;
  const std::size_t body_offset = (compressed ? 0 : offset) + header.body_offset;
  auto pending = std::make_shared<Pending>(Pending{
      conn, std::move(kept), std::move(read), frame_start, std::move(theader), std::move(header),
      body_offset, route, &server_->table(), std::move(meta), std::move(hold)});
  ScheduledCall call;
  call.deadline = pending->meta.deadline;
  call.run = [pending] {
    Pending& p = *pending;
    const std::string_view bytes =
        p.buffer.empty() ? std::string_view(p.frame) : p.buffer.view().substr(p.frame_start);
    std::string reply =
        Serve(std::move(p.conn->spare_out), *p.route, *p.table, p.conn->peer, Certificate(*p.conn),
              p.meta, p.theader ? &*p.theader : nullptr, p.header, bytes.substr(p.body_offset));
    if (!p.conn->loop->FinishOnWorker(p.conn, reply, &p.buffer)) {
      p.conn->loop->PostReply(p.conn, std::move(reply), 0, &p.buffer);
    }
  };
  call.refuse = [pending](StatusCode code, std::string why) {
    const Pending& p = *pending;
    p.route->runtime->thrift_stats->Finish(p.meta.started, code, p.conn->peer, why, true);
    p.conn->loop->PostReply(p.conn,
                            p.Reply(ThriftErrorResult(p.header.format, code, "rpcboot: " + why)));
  };
  server_->scheduler().Submit(std::move(call));
  return true;
}

InflatedHold::~InflatedHold() {
  if (bytes_ > 0) server_->UnholdInflated(bytes_);
}

bool InflatedHold::Grow(std::size_t n) {
  if (!server_->HoldInflated(n)) return false;
  bytes_ += n;
  return true;
}

bool Loop::Inflate(const THeaderFrame& theader, std::string_view payload, std::string* out,
                   InflatedHold* hold, StatusCode* code, std::string* why) {
  const ServerOptions& options = server_->options();
  if (theader.transforms.size() != 1 || theader.transforms.front() != kTHeaderZlib) {
    *code = StatusCode::kUnimplemented;
    *why = absl::StrCat("THeader transform(s) ", absl::StrJoin(theader.transforms, ","),
                        " not supported (zlib, 1, is the one this server reads)");
    return false;
  }
  if (options.thrift_compression == ServerOptions::ThriftCompression::kOff) {
    // Only the head, to say whom the refusal is for.
    (void)InflateMessage(
        GrpcCodec::kDeflate, payload, kCompressedHead, [](std::size_t) { return true; }, "", out);
    *code = StatusCode::kUnimplemented;
    *why =
        "rpcboot: compressed THeader frames (zlib) are not accepted: compression is off on this "
        "server (server.thrift_compression)";
    return false;
  }
  InflateError error = InflateMessage(
      GrpcCodec::kDeflate, payload, options.max_message_bytes,
      [hold](std::size_t n) { return hold->Grow(n); },
      absl::StrCat("rpcboot: a compressed request refused: the requests inflated pass the quota "
                   "of ",
                   options.thrift_inflated_quota, " bytes (server.thrift_inflated_quota)"),
      out);
  if (error.ok()) return true;
  *code = error.code;
  *why = std::move(error.message);
  return false;
}

bool Loop::RunHere(const ConnectionPtr& conn, const Route& route, const THeaderFrame* wrap,
                   const ThriftMessageHeader& header, const CallMeta& meta, std::string_view args) {
  // Entered (Enter) by the caller. If the handler blocks, the monitor gives the loop to another
  // thread (HandOff) and this one finishes the call as a handler thread would.
  here_conn_ = conn;
  here_route_ = &route;
  const uint64_t running = here_.Begin();
  server_->NoteRunningHere();
  std::string reply = Serve(std::move(conn->spare_out), route, server_->table(), conn->peer,
                            Certificate(*conn), meta, wrap, header, args);
  if (here_.End(running)) {
    here_conn_.reset();
    QueueReply(conn, std::move(reply));
    server_->scheduler().Leave();
    return true;
  }
  // The loop went to another thread while the handler ran: finish as a handler thread does.
  { std::lock_guard<std::mutex> lock(handoff_mu_); }  // the hand-off is complete
  if (!FinishOnWorker(conn, reply)) PostReply(conn, std::move(reply));
  server_->scheduler().Leave();
  return false;
}

bool Loop::CheckBlocked() {
  uint64_t blocked = 0;
  bool asleep = false;
  bool active = here_.Check(kBusyFor, &blocked, &asleep);
  if (blocked != 0) HandOff(blocked);
  return active;
}

void Loop::HandOff(uint64_t running) {
  std::lock_guard<std::mutex> lock(handoff_mu_);
  if (!server_->ReserveRunner()) return;  // no thread to be had: checked again next time
  if (!here_.Displace(running)) return;   // it finished meanwhile
  // The call's thread no longer touches the loop; the next runner starts after this. The
  // connection is treated as one whose call went to the pool: not read until its reply is out.
  ConnectionPtr conn = std::move(here_conn_);
  here_route_->runtime->BlockedInPlace();
  conn->call_in_flight = true;
  busy_.fetch_add(1);
  // epoll_ctl may come from this thread; an io_uring loop arms nothing for a connection whose
  // call runs, and its ring belongs to the thread that runs the loop.
  if (ring_ == nullptr) UpdateEvents(conn);
  server_->HandOver(this);
}

void Loop::QueueReply(const ConnectionPtr& conn, std::string reply, std::size_t from) {
  if (conn->send_armed) {
    // The kernel reads `out` until its send completes: this waits behind it.
    if (conn->queued.empty() && from == 0) {
      conn->queued = std::move(reply);
    } else {
      conn->queued.append(reply, from);
    }
    return;
  }
  if (conn->out.empty()) {
    if (!conn->call_in_flight) KeepReplyString(*conn, &conn->out);
    conn->out = std::move(reply);
    conn->out_sent = from;
    conn->write_start = now_;
  } else {
    conn->out.append(reply, from);
  }
  Flush(conn);
}

void Loop::Flush(const ConnectionPtr& conn) {
  if (ring_ != nullptr) {
    if (conn->send_armed || conn->closed) return;
    if (conn->out_sent >= conn->out.size()) {
      conn->out = std::move(conn->queued);
      conn->queued = std::string();
      conn->out_sent = 0;
      if (!conn->out.empty()) conn->write_start = now_;
    }
    if (!conn->out.empty()) ArmSend(conn);
    UpdateEvents(conn);
    return;
  }
  while (conn->out_sent < conn->out.size()) {
    ssize_t n = Send(*conn, conn->out.data() + conn->out_sent, conn->out.size() - conn->out_sent);
    if (n > 0) {
      conn->out_sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      UpdateEvents(conn);  // wait for EPOLLOUT
      return;
    }
    Close(conn, "could not write a reply; client gone", LogLevel::kInfo);
    return;
  }
  conn->out.clear();
  conn->out_sent = 0;
  UpdateEvents(conn);
}

void Loop::OnWritable(const ConnectionPtr& conn) {
  Flush(conn);
  if (conn->closed) return;
  if (conn->tls.wants_write) {
    // A TLS read was waiting for the socket to take bytes (a handshake message).
    conn->tls.wants_write = false;
    OnReadable(conn, false);
    if (conn->closed) return;
    UpdateEvents(conn);
  }
  if (draining_ && conn->out.empty() && !conn->call_in_flight) {
    Close(conn, "", LogLevel::kInfo);
    return;
  }
  if (conn->out.empty()) ProcessInput(conn, false);
}

bool Loop::WantsInput(const Connection& conn) const {
  return !conn.call_in_flight && !draining_ && Unsent(conn) < kUnsentBeforeRead;
}

void Loop::UpdateEvents(const ConnectionPtr& conn) {
  if (ring_ != nullptr) {
    // A receive armed while the loop no longer wants input stays: what it brings is kept.
    if (!conn->closed && !conn->recv_armed && WantsInput(*conn)) ArmRecv(conn);
    return;
  }
  uint32_t events = 0;
  if (WantsInput(*conn)) events |= EPOLLIN;
  if (!conn->out.empty() || conn->tls.wants_write) events |= EPOLLOUT;
  if (events == conn->events || conn->closed) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = conn->fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn->fd, &ev);
  conn->events = events;
}

void Loop::Close(const ConnectionPtr& conn, std::string_view why, LogLevel level) {
  if (conn->closed) return;
  if (!why.empty()) Log(level, "Thrift: closing " + conn->peer + ": " + std::string(why));
  if (ring_ != nullptr) {
    // The descriptor stays open (its number not reused) until the kernel has let go of every
    // operation on it; the bytes a send reads stay too.
    if (conn->recv_armed) Cancel(reinterpret_cast<uint64_t>(conn.get()) | kOpRecv);
    if (conn->send_armed) Cancel(reinterpret_cast<uint64_t>(conn.get()) | kOpSend);
    connections_.erase(conn->fd);
    conn->closed = true;
    conn->in.Release();
    if (!conn->send_armed) conn->out = std::string();
    conn->queued = std::string();
    conn->spare_out = std::string();
    server_->connections().fetch_sub(1);
    if (conn->ring_ops > 0) {
      closing_.emplace(conn.get(), conn);
    } else {
      ::close(conn->fd);
    }
    return;
  }
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn->fd, nullptr);
  ::close(conn->fd);
  connections_.erase(conn->fd);
  conn->closed = true;
  conn->in.Release();
  conn->out.clear();
  conn->out.shrink_to_fit();
  conn->spare_out = std::string();
  server_->connections().fetch_sub(1);
  // A call still running keeps the object; its reply finds the connection closed.
}

void Loop::Scan(SteadyClock::time_point now) {
  const ServerOptions& options = server_->options();
  std::vector<std::pair<ConnectionPtr, std::string>> expired;
  for (auto& [fd, conn] : connections_) {
    if (!conn->call_in_flight && now - conn->last_active > kSpareFor) {
      if (conn->in.empty()) conn->in.Release();
      if (conn->out.empty() && !conn->send_armed) conn->out = std::string();
      conn->spare_out = std::string();
    }
    // A call's thread may hand `in` its buffer back (Recycle): read only when none runs.
    bool mid_frame = !conn->call_in_flight && (!conn->in.empty() || conn->skip > 0 ||
                                               (conn->tls.ssl != nullptr && !conn->tls.ready));
    if (conn->hung_up && !conn->call_in_flight) {
      expired.emplace_back(conn, "");
    } else if (mid_frame && now - conn->frame_start > options.frame_timeout) {
      expired.emplace_back(
          conn, absl::StrCat("frame not completed within ", options.frame_timeout.count(),
                             " ms (server.frame_timeout_ms)"));
    } else if (mid_frame && now - conn->last_active > options.idle_timeout) {
      expired.emplace_back(
          conn, absl::StrCat("no byte of its frame for ", options.idle_timeout.count(), " ms"));
    } else if (!conn->out.empty() && now - conn->write_start > options.frame_timeout) {
      expired.emplace_back(
          conn, absl::StrCat("reply not read within ", options.frame_timeout.count(), " ms"));
    } else if (!conn->call_in_flight && conn->in.empty() && conn->skip == 0 && conn->out.empty() &&
               now - conn->last_active > options.idle_timeout) {
      expired.emplace_back(conn, absl::StrCat("idle for ", options.idle_timeout.count(), " ms"));
    }
  }
  for (auto& [conn, why] : expired) Close(conn, why, LogLevel::kInfo);
}

}  // namespace

std::unique_ptr<ServerTransport> MakeThriftServerTransport(const ServerOptions& options) {
  return std::make_unique<ThriftServerTransport>(options);
}

}  // namespace rpcboot::internal
