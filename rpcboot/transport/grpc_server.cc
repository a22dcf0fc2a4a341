// gRPC server transport on gRPC's completion-queue API, polled by rpcboot's own threads; no
// generated gRPC code: every bound method is registered by its path with its bytes as they came.
//
// Threads. rpcboot's own threads poll one completion queue: gRPC reads, frames and writes on
// them. A call arrives with its request, and the thread that took it holds a handler slot
// (CallScheduler::Enter, so max_concurrent_calls, handler_threads and the drain count it like any
// call) and runs the handler itself: no hop to another thread. While the server is quiet one
// thread polls and runs each call in place, and a monitor hands polling to another thread when a
// call blocks or runs long; under heavy load one or two poll, whichever served faster when last
// tried, and with two the one that takes a call first makes sure the other polls in its place,
// as gRPC's own synchronous server does (Pollers, below). Polling
// never waits long on a handler, so handlers may block; with every slot busy, or no thread to
// poll in a thread's place, a call queues for the handler pool instead.
// grpc.health.v1.Health and server reflection are served from the same queue (they run no user
// code); a path no service has is answered UNIMPLEMENTED. No gRPC callback service is
// registered: gRPC would start threads of its own to poll beside these.
#include <grpc/compression.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/async_stream.h>
#include <grpcpp/support/async_unary_call.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/abseil_mutex.h"
#include "rpcboot/internal/call_scheduler.h"
#include "rpcboot/internal/in_place.h"
#include "rpcboot/internal/listener_guard.h"
#include "rpcboot/internal/polling_choice.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server_context.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/grpc_health.h"
#include "rpcboot/transport/grpc_reflection.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot::internal {
namespace {

// Reply bytes each connection (gRPC names it by its peer address) has handed to gRPC and its peer
// has not yet taken: gRPC completes a reply only once flow control let it out, so a peer that
// never reads would otherwise make the server hold every reply it asked for.
class UnsentLedger {
 public:
  explicit UnsentLedger(std::size_t limit) : limit_(limit) {}

  // Counts `bytes` for `peer` and returns 0, or returns what `peer` already holds when the
  // reply would pass the limit (and counts nothing).
  std::size_t Reserve(const std::string& peer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t& held = unsent_[peer];
    if (held > 0 && held + bytes > limit_) return held;
    held += bytes;
    return 0;
  }

  void Release(const std::string& peer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = unsent_.find(peer);
    if (it == unsent_.end()) return;
    it->second -= std::min(it->second, bytes);
    if (it->second == 0) unsent_.erase(it);
  }

  std::size_t limit() const { return limit_; }

  // At most one warning a second, however many replies are refused.
  bool ShouldLog() { return log_.Allow(); }

 private:
  const std::size_t limit_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::size_t> unsent_;
  LogLimiter log_;
};

// The verified client certificate of a call over mutual TLS, as gRPC's auth context has it.
void CertificateIdentity(const grpc::ServerContextBase& context, PeerIdentity* identity) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return;
  auto text = [](const grpc::string_ref& ref) { return std::string(ref.data(), ref.size()); };
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_subject"))
    identity->subject = text(v);
  std::string first_name;
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_uri")) {
    identity->alt_names.push_back("URI:" + text(v));
    if (first_name.empty()) first_name = text(v);
  }
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_dns")) {
    identity->alt_names.push_back("DNS:" + text(v));
  }
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_ip")) {
    identity->alt_names.push_back("IP:" + text(v));
  }
  std::string common_name;
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_common_name"))
    common_name = text(v);
  identity->principal = !first_name.empty() ? first_name : common_name;
  if (!identity->principal.empty()) identity->source = "certificate";
}

// A duration as a channel argument: whole milliseconds, at least 1, at most INT_MAX.
int ClampedMillis(std::chrono::milliseconds d) {
  return static_cast<int>(std::clamp<int64_t>(d.count(), 1, std::numeric_limits<int>::max()));
}

// The value of a request header (metadata key) of a call; empty when absent.
std::string_view Header(const grpc::ServerContextBase& context, std::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  return it == metadata.end() ? std::string_view()
                              : std::string_view(it->second.data(), it->second.size());
}

// Something a completion-queue event completes: a call's next step.
class Tag {
 public:
  virtual ~Tag() = default;
  // On a polling thread. True when this thread stopped polling to run a handler (and ran it):
  // the thread then goes back through Pollers::Rejoin.
  virtual bool Proceed(bool ok) = 0;
};

// The threads that poll the completion queue, and their spares. A call that arrives runs on the
// thread that took it (Run), one of two ways (PollingChoice picks):
// - quiet (one thread polls): the thread runs the call in place and goes on polling; no other
//   thread wakes. Meanwhile nothing else of gRPC's is read or written, so the monitor
//   (InPlaceMonitor) gives polling to a spare thread when a call is still running at two of its
//   checks in a row (0.5 ms apart) and is asleep in the kernel (that method's calls then go the
//   busy way for a second), or has kept its thread busy for kBusyFor. A polling thread runs the
//   check between its events when one is due, so the monitor's own thread wakes only every
//   kFallbackInterval while calls flow (at 0.5 ms it cost the lone caller's server 0.4 context
//   switches a call); a lone poller whose call blocks is thus relieved within about 5 ms.
// - busy (two threads poll): the thread first makes sure another one polls in its place, as
//   gRPC's sync server does, so calls run side by side on up to the handler pool's size of
//   threads. Each call then costs a wake-up: the second thread takes over gRPC's polling.
// Every kWindow checks the monitor reads the CPU time the threads ran and waited to run, and
// the calls that started, and PollingChoice picks the way: quiet under light load, and under
// heavy load the way that started calls faster when the other was last tried.
class Pollers final : private InPlaceMonitor::Client {
 public:
  // At most `max_threads` threads in all (polling, running calls, spare).
  Pollers(grpc::ServerCompletionQueue* cq, int max_threads) : cq_(cq), max_threads_(max_threads) {}
  ~Pollers() override { Stop(); }

  // Starts the monitor and the threads that poll; false when not even one could be started.
  bool Start() {
    if (std::string error; !monitor_.Start(&error)) {
      Log(LogLevel::kWarning, absl::StrCat("gRPC: no monitor thread (", error,
                                           "); every call first hands polling to another thread"));
      target_ = kBusyPolling;
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < target_.load(); ++i) {
      if (!StartThreadLocked()) break;
    }
    return !threads_.empty();
  }

  enum class Ran {
    kInPlace,   // the call ran on this thread, which still polls
    kHandedOn,  // the call ran on this thread, which no longer polls: it must Rejoin
    kNot,       // no thread could poll in this one's place: the call did not run
  };
  // On a polling thread, holding a handler slot (unless the method is listed in
  // server.inline_methods): runs a call of `route` by `handle`. A listed method's calls run in
  // place both ways (kNot never comes back for them): the monitor still hands polling on from
  // one that runs long or blocks.
  template <class Fn>
  Ran Run(const Route& route, Fn&& handle) {
    Slot* self = current_;
    if (self != nullptr) self->calls.fetch_add(1, std::memory_order_relaxed);
    if (self != nullptr && monitor_.running() &&
        (route.run_inline ||
         (target_.load(std::memory_order_relaxed) == 1 && route.runtime->MayRunInPlace()))) {
      self->route = &route;
      const uint64_t token = self->call.Begin();
      monitor_.Note();
      handle();
      if (self->call.End(token)) return Ran::kInPlace;
      { std::lock_guard<std::mutex> lock(mu_); }  // the monitor's hand-off is complete
      return Ran::kHandedOn;
    }
    if (route.run_inline) {
      handle();
      return Ran::kInPlace;
    }
    if (!HandOn()) return Ran::kNot;
    handle();
    return Ran::kHandedOn;
  }

  // Stops the monitor, then every thread; the queue must be shut down first (its Next then ends).
  void Stop() {
    monitor_.Stop();
    std::deque<Slot> slots;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      slots.swap(threads_);
    }
    cv_.notify_all();
    for (Slot& slot : slots) slot.thread.join();
  }

 private:
  static constexpr int kBusyPolling = 2;
  // A call in place that is asleep in the kernel at two of the monitor's checks in a row has
  // blocked; one that keeps its thread busy (computing, or waiting for a CPU) holds polling this
  // long before it is handed on anyway.
  static constexpr std::chrono::milliseconds kBusyFor{2};
  // Monitor checks between two looks at the load (Turn): PollingChoice's window.
  static constexpr int kWindow = 32;

  // A polling thread and the call it runs in place.
  struct Slot {
    std::thread thread;
    InPlaceCall call;
    const Route* route = nullptr;   // of that call, while it runs
    std::atomic<pid_t> tid{0};      // once the thread runs
    std::atomic<int64_t> calls{0};  // calls it took so far (its own line: no sharing per call)
    int64_t wanted_ns = 0;          // monitor only: ThreadWantedNanos(tid) at the last Turn
  };

  // Polls the queue until it is shut down and drained.
  void Poll(Slot* self) {
    current_ = self;
    self->tid = CurrentThreadId();
    void* tag = nullptr;
    bool ok = false;
    while (true) {
      bool got = cq_->Next(&tag, &ok);
      if (!got) return;
      bool rejoin = static_cast<Tag*>(tag)->Proceed(ok);
      monitor_.Poke();  // between events: the check, when due, runs here, not on a wake-up
      if (!rejoin && polling_.load(std::memory_order_relaxed) > target_.load()) {
        rejoin = StepDown();
      }
      if (rejoin && !Rejoin()) return;
    }
  }

  // The calling thread stops polling to run a call (busy): true once another thread polls in
  // its place (this thread must then Rejoin); false when none can (it goes on polling).
  bool HandOn() {
    if (polling_.fetch_sub(1, std::memory_order_acq_rel) > 1) return true;
    std::lock_guard<std::mutex> lock(mu_);
    if (AddPollerLocked()) return true;
    polling_.fetch_add(1, std::memory_order_acq_rel);
    return false;
  }

  // After a call handed on, or a step down: polls again while fewer threads poll than the way
  // of polling wants, else waits as a spare. False: stop.
  bool Rejoin() {
    int polling = polling_.load();
    while (polling < target_.load()) {
      if (polling_.compare_exchange_weak(polling, polling + 1)) return true;
    }
    std::unique_lock<std::mutex> lock(mu_);
    ++spares_;
    cv_.wait(lock, [this] { return wakes_ > 0 || stopping_; });
    if (wakes_ > 0) {  // AddPollerLocked took it off the spares and counted it as polling
      --wakes_;
      return true;
    }
    --spares_;
    return false;
  }

  // More threads poll than the way of polling wants: true when this one stopped counting.
  bool StepDown() {
    int polling = polling_.load();
    while (polling > target_.load()) {
      if (polling_.compare_exchange_weak(polling, polling - 1)) return true;
    }
    return false;
  }

  // One more thread polls: a spare woken, or a new thread (counted in polling_ either way).
  bool AddPollerLocked() {
    if (stopping_) return false;
    if (spares_ > 0) {
      --spares_;
      ++wakes_;
      polling_.fetch_add(1, std::memory_order_acq_rel);
      cv_.notify_one();
      return true;
    }
    return static_cast<int>(threads_.size()) < max_threads_ && StartThreadLocked();
  }

  // A new thread that polls (counted in polling_); false when the system would not start one.
  bool StartThreadLocked() {
    polling_.fetch_add(1, std::memory_order_acq_rel);
    threads_.emplace_back();
    Slot* slot = &threads_.back();
    try {
      slot->thread = std::thread([this, slot] { Poll(slot); });
      return true;
    } catch (const std::system_error& e) {
      threads_.pop_back();
      polling_.fetch_sub(1, std::memory_order_acq_rel);
      if (log_.Allow()) {
        Log(LogLevel::kWarning,
            absl::StrCat("gRPC: cannot start a polling thread (", e.what(),
                         "); calls wait for the handler pool until threads are available"));
      }
      return false;
    }
  }

  // InPlaceMonitor::Client. Hands polling on from a call in place that has run at two checks
  // in a row, and turns the way of polling by load.
  bool CheckInPlace() override {
    bool active = target_.load() != 1;  // busy: awake to turn back once load falls
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Slot& slot : threads_) {
        uint64_t blocked = 0;
        bool asleep = false;
        active = slot.call.Check(kBusyFor, &blocked, &asleep) || active;
        if (blocked != 0) HandOnFromLocked(slot, blocked, asleep);
      }
    }
    if (++checks_ >= kWindow) {
      checks_ = 0;
      Turn();
    }
    return active;
  }

  // Monitor, every kWindow checks: the CPU the threads wanted since the last time (ran, or
  // waited to run), in threads' worth; turns the way of polling by it.
  void Turn() {
    std::vector<std::pair<pid_t, int64_t*>> tids;
    int64_t calls = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Slot& slot : threads_) {
        if (pid_t tid = slot.tid.load(); tid != 0) tids.emplace_back(tid, &slot.wanted_ns);
        calls += slot.calls.load(std::memory_order_relaxed);
      }
    }
    int64_t wanted = 0;
    bool known = tids.empty();
    for (auto& [tid, last] : tids) {
      int64_t now = ThreadWantedNanos(tid);
      if (now < 0) continue;
      known = true;
      if (*last > 0) wanted += now - *last;
      *last = now;
    }
    if (!known) {  // no schedstat to judge by: the busy way, which never stalls polling
      if (target_.exchange(kBusyPolling) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        for (int i = 1; i < kBusyPolling; ++i) AddPollerLocked();
      }
      return;
    }
    auto now = std::chrono::steady_clock::now();
    int64_t wall = std::chrono::duration_cast<std::chrono::nanoseconds>(now - turned_at_).count();
    turned_at_ = now;
    const int64_t window_calls = calls - calls_at_turn_;
    calls_at_turn_ = calls;
    if (wall <= 0 ||
        wall > 10 * std::chrono::nanoseconds(kWindow * InPlaceMonitor::kInterval).count()) {
      return;  // the monitor slept meanwhile: a fresh start
    }
    PollingChoice::Window window;
    window.demand = static_cast<double>(wanted) / static_cast<double>(wall);
    window.calls = window_calls;
    window.wall_ns = wall;
    const bool busy = choice_.Next(window) == PollingChoice::Way::kBusy;
    if (busy && target_.load() == 1) {
      target_ = kBusyPolling;
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 1; i < kBusyPolling; ++i) AddPollerLocked();
    } else if (!busy && target_.load() != 1) {
      target_ = 1;  // a polling thread steps down after its next event
    }
  }

  bool AnyInPlace() const override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Slot& slot : threads_) {
      if (slot.call.running()) return true;
    }
    return false;
  }
  void OnQuiet() override {
    if (target_.load() != 1) target_ = 1;
    choice_.Reset();
    checks_ = 0;
  }

  // Monitor: `slot`'s call in place (`token`) blocked (`asleep`) or runs long; another thread
  // polls in its place. A method whose call blocked runs the busy way for a while.
  void HandOnFromLocked(Slot& slot, uint64_t token, bool asleep) {
    if (stopping_ || (spares_ == 0 && static_cast<int>(threads_.size()) >= max_threads_)) {
      return;  // no thread to be had: checked again next time
    }
    if (!slot.call.Displace(token)) return;  // it finished meanwhile
    if (asleep) slot.route->runtime->BlockedInPlace();
    polling_.fetch_sub(1, std::memory_order_acq_rel);
    AddPollerLocked();  // if even that fails, the call's thread polls again once it is done
  }

  static thread_local Slot* current_;  // the polling thread's own slot

  grpc::ServerCompletionQueue* const cq_;
  const int max_threads_;
  std::atomic<int> target_{1};   // threads that poll: 1 (quiet) or kBusyPolling (busy)
  std::atomic<int> polling_{0};  // threads polling (or running a call in place), or about to
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int spares_ = 0;  // threads waiting in Rejoin
  int wakes_ = 0;   // spares told to poll that have not yet woken
  bool stopping_ = false;
  std::deque<Slot> threads_;  // every thread started; a deque: a slot never moves
  int checks_ = 0;            // monitor only: checks since the last Turn
  std::chrono::steady_clock::time_point turned_at_;  // and when that was
  int64_t calls_at_turn_ = 0;                        // and the threads' calls then
  PollingChoice choice_;                             // monitor only: the way of polling
  LogLimiter log_;
  InPlaceMonitor monitor_{this};  // last: stopped (in Stop) before the rest goes
};

thread_local Pollers::Slot* Pollers::current_ = nullptr;

// Every bound method, registered by its gRPC path, then the built-in ones (health, reflection):
// gRPC reads a unary request before it hands the call over, and passes its bytes as they came.
class MethodService final : public grpc::Service {
 public:
  // The built-in methods, indexed after the bound ones.
  enum Builtin { kHealthCheck, kHealthWatch, kReflection, kReflectionAlpha };

  explicit MethodService(const std::vector<const Route*>& routes) : routes_(routes) {
    using grpc::internal::RpcMethod;
    for (const Route* route : routes) Add(route->method->grpc_path.c_str(), RpcMethod::NORMAL_RPC);
    Add("/grpc.health.v1.Health/Check", RpcMethod::NORMAL_RPC);
    Add("/grpc.health.v1.Health/Watch", RpcMethod::SERVER_STREAMING);
    for (const char* path : GrpcReflection::kPaths) Add(path, RpcMethod::BIDI_STREAMING);
  }

  int routes() const { return static_cast<int>(routes_.size()); }
  const Route* route(int index) const { return routes_[index]; }
  int index(Builtin builtin) const { return routes() + builtin; }

  // Each call arrives on `cq`, and its later steps complete there too.
  void RequestUnary(int index, grpc::ServerContext* context, grpc::ByteBuffer* request,
                    grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* writer,
                    grpc::ServerCompletionQueue* cq, void* tag) {
    RequestAsyncUnary(index, context, request, writer, cq, cq, tag);
  }
  void RequestServerStream(int index, grpc::ServerContext* context, grpc::ByteBuffer* request,
                           grpc::ServerAsyncWriter<grpc::ByteBuffer>* writer,
                           grpc::ServerCompletionQueue* cq, void* tag) {
    RequestAsyncServerStreaming(index, context, request, writer, cq, cq, tag);
  }
  void RequestBidi(int index, grpc::ServerContext* context,
                   grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream,
                   grpc::ServerCompletionQueue* cq, void* tag) {
    RequestAsyncBidiStreaming(index, context, stream, cq, cq, tag);
  }

 private:
  void Add(const char* path, grpc::internal::RpcMethod::RpcType type) {
    int index = static_cast<int>(methods_added_++);
    AddMethod(new grpc::internal::RpcServiceMethod(path, type, nullptr));
    MarkMethodRaw(index);
  }

  std::vector<const Route*> routes_;
  std::size_t methods_added_ = 0;
};

// The answer to a HealthCheckRequest that does not decode.
grpc::Status UndecodableHealthCheck() {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "rpcboot: the HealthCheckRequest does not decode");
}

class GrpcServerTransport;

// One call of a bound method: requested, then (with its request) run, then finished.
class UnaryCall final : public Tag {
 public:
  UnaryCall(GrpcServerTransport* transport, int index) : transport_(transport), index_(index) {}

  bool Proceed(bool ok) override;

  // Runs the handler under the call's ServerContext and sends its reply or error.
  void Handle();
  // Answers without running the handler.
  void Refuse(StatusCode code, const std::string& message);

  grpc::ServerContext* context() { return &context_; }
  grpc::ByteBuffer* request() { return &request_; }
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* writer() { return &writer_; }
  const Route* route() const { return route_; }
  std::optional<ServerContext::Clock::time_point> deadline() const { return deadline_; }

 private:
  enum class State { kRequested, kFinishing };
  void Reply(const grpc::Status& status);

  GrpcServerTransport* const transport_;
  const int index_;  // in the MethodService
  State state_ = State::kRequested;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> writer_{&context_};
  grpc::ByteBuffer reply_;
  const Route* route_ = nullptr;
  int64_t started_ = 0;  // for the method's CallStats
  std::optional<ServerContext::Clock::time_point> deadline_;
  std::string peer_;          // the connection, as gRPC names it
  std::size_t reserved_ = 0;  // counted in the ledger under peer_ until the reply is out
};

// A call of a path no bound service has: answered UNIMPLEMENTED.
class UnknownCall final : public Tag {
 public:
  explicit UnknownCall(GrpcServerTransport* transport) : transport_(transport) {}
  bool Proceed(bool ok) override;
  grpc::GenericServerContext* context() { return &context_; }
  grpc::GenericServerAsyncReaderWriter* stream() { return &stream_; }

 private:
  GrpcServerTransport* const transport_;
  bool finishing_ = false;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_{&context_};
};

// grpc.health.v1.Health/Check.
class HealthCheckCall final : public Tag {
 public:
  explicit HealthCheckCall(GrpcServerTransport* transport);
  bool Proceed(bool ok) override;

 private:
  GrpcServerTransport* const transport_;
  bool finishing_ = false;
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> writer_{&context_};
  grpc::ByteBuffer reply_;
};

// grpc.health.v1.Health/Watch: the status now, then again when it changes. The server changes
// it only when it stops (to NOT_SERVING): the watch then gets NOT_SERVING and ends
// (UNAVAILABLE), so a stopping server never waits for its watchers.
class WatchCall {
 public:
  explicit WatchCall(GrpcServerTransport* transport);
  // Sends NOT_SERVING if that was not sent, then ends the stream. Any thread.
  void Close();

 private:
  // A step of the stream; each calls one member when it completes.
  class Step final : public Tag {
   public:
    Step(WatchCall* call, void (WatchCall::*on)(bool)) : call_(call), on_(on) {}
    bool Proceed(bool ok) override {
      (call_->*on_)(ok);
      return false;
    }

   private:
    WatchCall* const call_;
    void (WatchCall::*const on_)(bool);
  };
  void OnArrived(bool ok);
  void OnWritten(bool ok);
  void OnFinished(bool ok);
  void OnDone(bool ok);
  // Writes the status when it differs from the last one sent, or ends the stream once closed.
  void SendLocked();
  // True when nothing of the call is outstanding any more: the caller deletes it.
  bool OverLocked() const { return done_ && !writing_ && (!finishing_ || finished_); }

  GrpcServerTransport* const transport_;
  Step arrived_{this, &WatchCall::OnArrived};
  Step written_{this, &WatchCall::OnWritten};
  Step finished_step_{this, &WatchCall::OnFinished};
  Step done_step_{this, &WatchCall::OnDone};
  std::mutex mu_;
  std::string service_;
  int sent_ = 0;  // the last status written (0: none)
  bool writing_ = false;
  bool closing_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  bool done_ = false;  // gRPC's word that the call is over
  grpc::ServerContext context_;
  grpc::ByteBuffer request_;
  grpc::ServerAsyncWriter<grpc::ByteBuffer> writer_{&context_};
  grpc::ByteBuffer reply_;
};

// Server reflection (one stream: each request read is answered in order), to the callers
// server.auth lets through: the schema is the server's to show. No user code runs.
class ReflectionCall final : public Tag {
 public:
  ReflectionCall(GrpcServerTransport* transport, int index);
  bool Proceed(bool ok) override;

 private:
  enum class State { kRequested, kReading, kWriting, kFinishing };
  void Finish(const grpc::Status& status);

  GrpcServerTransport* const transport_;
  const int index_;
  State state_ = State::kRequested;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_{&context_};
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class GrpcServerTransport final : public ServerTransport {
 public:
  explicit GrpcServerTransport(const ServerOptions& options)
      : options_(options), ledger_(options.grpc_max_unsent_bytes) {}
  ~GrpcServerTransport() override { Shutdown(std::chrono::steady_clock::now()); }

  absl::Status Start(const MethodTable& table, CallScheduler* scheduler) override {
    SettleAbseilDeadlockDetection();  // before gRPC's first mutex of this server
    table_ = &table;
    scheduler_ = scheduler;
    std::vector<const Route*> routes;
    table.ForEachGrpc([&routes](const Route& route) { routes.push_back(&route); });
    methods_ = std::make_unique<MethodService>(routes);
    reflection_ = std::make_unique<GrpcReflection>(table);
    // Health and reflection are served from the calls' queue (see the top of this file): gRPC's
    // default health service is off for this server, whatever the process-wide setting says.
    health_.Add("");
    for (const std::string& service : table.services()) health_.Add(service);
    grpc::ServerBuilder builder;
    builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    std::string address = options_.host + ":" + std::to_string(options_.grpc_port);
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!options_.tls.cert_file.empty()) {
      absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls = TlsCredentials();
      if (!tls.ok()) return tls.status();
      credentials = *std::move(tls);
    }
    builder.AddListeningPort(address, credentials, &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.grpc_max_concurrent_streams);
    // As on Thrift: a connection must finish its handshake (TLS, the HTTP/2 preface and
    // settings) within frame_timeout, and one without a call for idle_timeout is sent GOAWAY
    // (a gRPC client reconnects on its next call), so idle sockets do not hold descriptors.
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                               ClampedMillis(options_.frame_timeout));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               ClampedMillis(options_.idle_timeout));
    // A connection holding calls whose requests never finish arriving is not idle: its age bounds
    // it (GOAWAY, then closed once its calls end or the grace passes).
    if (options_.grpc_max_connection_age.count() > 0) {
      builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                 ClampedMillis(options_.grpc_max_connection_age));
      builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                 ClampedMillis(options_.grpc_max_connection_age_grace));
    }
    // gRPC binds with SO_REUSEPORT by default, so a second process would share a port in use
    // and register a second instance on it; a port in use must be an error, as on Thrift.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Compressed requests are refused before they are inflated (a small gzip bomb would
    // otherwise be inflated in full before the size limit applies).
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
    if (options_.grpc_memory_quota > 0) {
      grpc::ResourceQuota quota("rpcboot");
      quota.Resize(options_.grpc_memory_quota);
      builder.SetResourceQuota(quota);
    }
    builder.RegisterService(methods_.get());
    builder.RegisterAsyncGenericService(&unknown_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      cq_->Shutdown();
      Drain();
      return absl::UnavailableError("gRPC: cannot listen on " + address +
                                    " (port in use or bad host)");
    }
    // Threads: one or two poll; a thread running a handler holds a handler slot, so at most the
    // pool's size of them run handlers at once.
    pollers_ = std::make_unique<Pollers>(cq_.get(), scheduler->threads() + 2);
    for (int i = 0; i < methods_->routes(); ++i) {
      for (int n = 0; n < kRequestsPerMethod; ++n) RequestCall(i);
    }
    RequestUnknown();
    RequestHealthCheck();
    RequestWatch();
    RequestReflection(methods_->index(MethodService::kReflection));
    RequestReflection(methods_->index(MethodService::kReflectionAlpha));
    GuardGrpcListeners(port_, options_.max_connections, !options_.tls.cert_file.empty());
    if (!pollers_->Start()) {
      UnguardGrpcListeners(port_);
      server_->Shutdown(std::chrono::system_clock::now());
      cq_->Shutdown();
      Drain();
      server_.reset();
      return absl::ResourceExhaustedError("gRPC: cannot start a polling thread");
    }
    Log(LogLevel::kInfo, absl::StrCat("gRPC listening on ", options_.host, ":", port_,
                                      options_.tls.cert_file.empty() ? " (plaintext)" : " (TLS)"));
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void StopAccepting() override {
    if (server_ == nullptr || stopping_.joinable()) return;
    // grpc.health.v1.Health: SERVING for "" (the server) and for each service by its full name,
    // as Kubernetes and Envoy probes ask; NOT_SERVING from the moment the server stops taking
    // calls.
    health_.StopServing();
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      watches_closed_ = true;
      // Closed under the lock: a watch that ends meanwhile waits in RemoveWatch.
      for (WatchCall* watch : watches_) watch->Close();
      watches_.clear();
    }
    UnguardGrpcListeners(port_);  // gRPC closes them now
    // grpc::Server::Shutdown stops new calls at once and waits for those in flight, which the
    // scheduler finishes (or refuses) during its drain; it blocks, so it runs beside the drain.
    // Its own deadline is far: the drain, not gRPC, decides when a call is given up.
    stopping_ = std::thread([this] {
      server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace +
                        std::chrono::seconds(2));
    });
  }

  void Shutdown(std::chrono::steady_clock::time_point) override {
    if (server_ == nullptr) return;
    StopAccepting();
    stopping_.join();
    server_->Wait();
    // Every call is over: what is left in the queue are requests for calls that never came.
    cq_->Shutdown();
    pollers_->Stop();
    server_.reset();
  }

  // The next call of method `index` (on a polling thread, or at start).
  void RequestCall(int index) {
    auto* call = new UnaryCall(this, index);
    methods_->RequestUnary(index, call->context(), call->request(), call->writer(), cq_.get(),
                           call);
  }

  void RequestUnknown() {
    auto* call = new UnknownCall(this);
    unknown_.RequestCall(call->context(), call->stream(), cq_.get(), cq_.get(), call);
  }
  void RequestHealthCheck() { new HealthCheckCall(this); }
  void RequestWatch() { new WatchCall(this); }
  void RequestReflection(int index) { new ReflectionCall(this, index); }

  MethodService& methods() { return *methods_; }
  grpc::ServerCompletionQueue* cq() { return cq_.get(); }
  const GrpcHealth& health() const { return health_; }
  const GrpcReflection& reflection() const { return *reflection_; }

  // A watch that arrived: false once the server stopped serving (the watch closes itself).
  bool AddWatch(WatchCall* watch) {
    std::lock_guard<std::mutex> lock(watch_mu_);
    if (watches_closed_) return false;
    watches_.insert(watch);
    return true;
  }
  void RemoveWatch(WatchCall* watch) {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watches_.erase(watch);
  }

  const Route* route(int index) const { return methods_->route(index); }
  const MethodTable& table() const { return *table_; }
  UnsentLedger& ledger() { return ledger_; }

  // A call that arrived with its request (on the polling thread that took it). True when this
  // thread ran its handler in place (another thread polled meanwhile).
  bool Dispatch(UnaryCall* call) {
    if (call->deadline() && *call->deadline() <= ServerContext::Clock::now()) {
      call->Refuse(StatusCode::kDeadlineExceeded, "deadline passed before the handler ran");
      return false;
    }
    if (call->route()->run_inline) {  // server.inline_methods: never blocks, no hop
      return pollers_->Run(*call->route(), [call] { call->Handle(); }) == Pollers::Ran::kHandedOn;
    }
    StatusCode code = StatusCode::kOk;
    std::string why;
    if (scheduler_->Enter(&code, &why)) {
      Pollers::Ran ran = pollers_->Run(*call->route(), [call] { call->Handle(); });
      scheduler_->Leave();
      if (ran != Pollers::Ran::kNot) return ran == Pollers::Ran::kHandedOn;
      // No thread to poll in this one's place: the pool runs it.
    } else if (code != StatusCode::kOk) {
      call->Refuse(code, why);
      return false;
    }
    // `call` lives until its reply is out: exactly one of run and refuse answers it.
    ScheduledCall scheduled;
    scheduled.deadline = call->deadline();
    scheduled.run = [call] { call->Handle(); };
    scheduled.refuse = [call](StatusCode refused, std::string message) {
      call->Refuse(refused, message);
    };
    scheduler_->Submit(std::move(scheduled));
    return false;
  }

 private:
  // Requests each method keeps posted: calls gRPC can hand over without waiting for a thread to
  // post the next one.
  static constexpr int kRequestsPerMethod = 2;

  // Takes what is left in the shut-down queue (when no thread polls it).
  void Drain() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(false);
  }

  // The same checks and the same messages as the Thrift side's TLS (gRPC reads the PEM text).
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials() const {
    const TlsOptions& tls = options_.tls;
    // The Thrift side's context checks what gRPC would only log: key matches certificate, CA
    // file holds certificates.
    absl::StatusOr<TlsContext> check = MakeServerTlsContext(tls, "server.tls");
    if (!check.ok()) return check.status();
    absl::StatusOr<std::string> cert = ReadPemFile(tls.cert_file, "server.tls.cert_file");
    absl::StatusOr<std::string> key = ReadPemFile(tls.key_file, "server.tls.key_file");
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl(
        tls.ca_file.empty()       ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
        : tls.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                  : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!tls.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadPemFile(tls.ca_file, "server.tls.ca_file");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    return grpc::SslServerCredentials(ssl);
  }

  ServerOptions options_;
  UnsentLedger ledger_;
  const MethodTable* table_ = nullptr;
  CallScheduler* scheduler_ = nullptr;
  std::unique_ptr<MethodService> methods_;
  std::unique_ptr<GrpcReflection> reflection_;
  GrpcHealth health_;
  std::mutex watch_mu_;
  std::set<WatchCall*> watches_;  // arrived and not yet over
  bool watches_closed_ = false;
  grpc::AsyncGenericService unknown_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Pollers> pollers_;
  std::thread stopping_;
  int port_ = 0;
};

bool UnaryCall::Proceed(bool ok) {
  if (state_ == State::kFinishing) {  // the reply went out, or the call ended without it
    if (reserved_ > 0) transport_->ledger().Release(peer_, reserved_);
    delete this;
    return false;
  }
  if (!ok) {  // the server is shutting down: no call came
    delete this;
    return false;
  }
  transport_->RequestCall(index_);  // the method's next call
  state_ = State::kFinishing;
  route_ = transport_->route(index_);
  started_ = route_->runtime->grpc_stats->Start();
  if (context_.raw_deadline().tv_sec != gpr_inf_future(GPR_CLOCK_REALTIME).tv_sec) {
    deadline_ = context_.deadline();
  }
  return transport_->Dispatch(this);
}

void UnaryCall::Handle() {
  peer_ = context_.peer();
  ServerContext call("grpc", peer_, deadline_);
  CertificateIdentity(context_, call.mutable_identity());
  std::string_view token = BearerToken(Header(context_, "authorization"));
  BeginServerSpan(&call, Header(context_, kTraceparentHeader), Header(context_, kTracestateHeader));
  call.set_shadow(Header(context_, kShadowHeader) == "1");
  // The caller's own metadata (gRPC has bounded its size already).
  AppendCallMetadata(context_.client_metadata(), call.mutable_metadata());
  ServerContext::Scope scope(&call);
  std::string request = ToBytes(request_);
  const MethodTable& table = transport_->table();
  HandlerOutcome outcome = RunHandler([&] {
    std::string reply;
    table.Serve(*route_, token, call, [&] {
      reply = ServeToString(*route_->method, route_->impl, WireFormat::kProto, request);
    });
    return reply;
  });
  EndServerSpan(call, std::string_view(route_->method->grpc_path).substr(1), outcome.code,
                outcome.message);
  // gRPC base64-encodes "-bin" values itself.
  for (auto& [key, value] : call.TakeReplyMetadata()) context_.AddTrailingMetadata(key, value);
  CallStats* stats = route_->runtime->grpc_stats;
  if (outcome.code != StatusCode::kOk) {
    stats->Finish(started_, outcome.code, peer_, outcome.message);
    Reply(grpc::Status(static_cast<grpc::StatusCode>(outcome.code), outcome.message));
    return;
  }
  UnsentLedger& ledger = transport_->ledger();
  if (std::size_t held = ledger.Reserve(peer_, outcome.reply.size()); held > 0) {
    std::string what =
        absl::StrCat("rpcboot: reply of ", outcome.reply.size(), " bytes not sent: ", held,
                     " bytes of earlier replies to this connection are still unread (limit ",
                     ledger.limit(), ", server.grpc_max_unsent_bytes)");
    if (ledger.ShouldLog()) Log(LogLevel::kWarning, "gRPC: " + peer_ + ": " + what);
    stats->Finish(started_, StatusCode::kResourceExhausted, peer_, what);
    Reply(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, what));
    return;
  }
  reserved_ = outcome.reply.size();
  reply_ = ToByteBuffer(outcome.reply);
  stats->Finish(started_, StatusCode::kOk);
  Reply(grpc::Status::OK);
}

void UnaryCall::Refuse(StatusCode code, const std::string& message) {
  route_->runtime->grpc_stats->Finish(started_, code, context_.peer(), message, true);
  Reply(grpc::Status(static_cast<grpc::StatusCode>(code), "rpcboot: " + message));
}

// The last this thread may touch `this`: the reply's completion deletes it, on any thread.
void UnaryCall::Reply(const grpc::Status& status) {
  if (status.ok()) {
    writer_.Finish(reply_, status, this);
  } else {
    writer_.FinishWithError(status, this);
  }
}

bool UnknownCall::Proceed(bool ok) {
  if (finishing_ || !ok) {
    delete this;
    return false;
  }
  transport_->RequestUnknown();
  finishing_ = true;
  Transports().unknown_methods.fetch_add(1, std::memory_order_relaxed);
  stream_.Finish(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "rpcboot: unknown method " + context_.method()),
      this);
  return false;
}

HealthCheckCall::HealthCheckCall(GrpcServerTransport* transport) : transport_(transport) {
  transport->methods().RequestUnary(transport->methods().index(MethodService::kHealthCheck),
                                    &context_, &request_, &writer_, transport->cq(), this);
}

bool HealthCheckCall::Proceed(bool ok) {
  if (finishing_ || !ok) {
    delete this;
    return false;
  }
  transport_->RequestHealthCheck();
  finishing_ = true;
  std::optional<std::string> service = GrpcHealth::ServiceOf(ToBytes(request_));
  if (!service) {
    writer_.FinishWithError(UndecodableHealthCheck(), this);
    return false;
  }
  int status = transport_->health().Of(*service);
  if (status == GrpcHealth::kServiceUnknown) {  // as gRPC's own health service answers
    writer_.FinishWithError(
        grpc::Status(grpc::StatusCode::NOT_FOUND, "rpcboot: no service '" + *service + "'"), this);
    return false;
  }
  reply_ = ToByteBuffer(GrpcHealth::Response(status));
  writer_.Finish(reply_, grpc::Status::OK, this);
  return false;
}

WatchCall::WatchCall(GrpcServerTransport* transport) : transport_(transport) {
  context_.AsyncNotifyWhenDone(&done_step_);
  transport->methods().RequestServerStream(transport->methods().index(MethodService::kHealthWatch),
                                           &context_, &request_, &writer_, transport->cq(),
                                           &arrived_);
}

void WatchCall::OnArrived(bool ok) {
  if (!ok) {  // the server is shutting down: no call came (and none will say it is done)
    delete this;
    return;
  }
  transport_->RequestWatch();
  std::optional<std::string> service = GrpcHealth::ServiceOf(ToBytes(request_));
  if (!service) {
    std::lock_guard<std::mutex> lock(mu_);
    finishing_ = true;
    writer_.Finish(UndecodableHealthCheck(), &finished_step_);
    return;
  }
  service_ = *std::move(service);           // before AddWatch: Close may come from then on
  bool added = transport_->AddWatch(this);  // not under mu_: Close runs under the list's lock
  std::lock_guard<std::mutex> lock(mu_);
  if (!added) closing_ = true;
  SendLocked();
}

void WatchCall::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closing_ = true;
  SendLocked();
}

void WatchCall::SendLocked() {
  if (writing_ || finishing_ || done_) return;
  if (int now = transport_->health().Of(service_); now != sent_) {
    sent_ = now;
    reply_ = ToByteBuffer(GrpcHealth::Response(now));
    writing_ = true;
    writer_.Write(reply_, &written_);
    return;
  }
  if (closing_) {
    finishing_ = true;
    writer_.Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "rpcboot: server shutting down"),
                   &finished_step_);
  }
}

void WatchCall::OnWritten(bool ok) {
  std::unique_lock<std::mutex> lock(mu_);
  writing_ = false;
  if (ok) SendLocked();  // else the watcher is gone: gRPC says done next
  if (OverLocked()) {
    lock.unlock();
    delete this;
  }
}

void WatchCall::OnFinished(bool) {
  std::unique_lock<std::mutex> lock(mu_);
  finished_ = true;
  if (OverLocked()) {
    lock.unlock();
    delete this;
  }
}

void WatchCall::OnDone(bool) {
  transport_->RemoveWatch(this);  // before mu_: Close runs under the transport's lock
  std::unique_lock<std::mutex> lock(mu_);
  done_ = true;
  if (OverLocked()) {
    lock.unlock();
    delete this;
  }
}

ReflectionCall::ReflectionCall(GrpcServerTransport* transport, int index)
    : transport_(transport), index_(index) {
  transport->methods().RequestBidi(index, &context_, &stream_, transport->cq(), this);
}

bool ReflectionCall::Proceed(bool ok) {
  switch (state_) {
    case State::kRequested: {
      if (!ok) break;
      transport_->RequestReflection(index_);
      PeerIdentity identity;
      CertificateIdentity(context_, &identity);
      std::string_view token = BearerToken(Header(context_, "authorization"));
      const char* path =
          GrpcReflection::kPaths[index_ - transport_->methods().index(MethodService::kReflection)];
      if (Refusal refusal = transport_->table().guard().Check(path, token, &identity);
          refusal.refused()) {
        Finish(grpc::Status(static_cast<grpc::StatusCode>(refusal.code), refusal.message));
        return false;
      }
      state_ = State::kReading;
      stream_.Read(&request_, this);
      return false;
    }
    case State::kReading:
      if (!ok) {  // the client closed its side: the stream is over
        Finish(grpc::Status::OK);
        return false;
      }
      reply_ = ToByteBuffer(transport_->reflection().Answer(ToBytes(request_)));
      state_ = State::kWriting;
      stream_.Write(reply_, this);
      return false;
    case State::kWriting:
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "rpcboot: reflection reply not sent"));
        return false;
      }
      state_ = State::kReading;
      stream_.Read(&request_, this);
      return false;
    case State::kFinishing:
      break;
  }
  delete this;
  return false;
}

void ReflectionCall::Finish(const grpc::Status& status) {
  state_ = State::kFinishing;
  stream_.Finish(status, this);
}

}  // namespace

std::unique_ptr<ServerTransport> MakeGrpcServerTransport(const ServerOptions& options) {
  return std::make_unique<GrpcServerTransport>(options);
}

}  // namespace rpcboot::internal
