// The handler pool every server transport hands its calls to, with admission control.
//
// A transport may run a call on its own thread through Enter/Leave (Thrift's loops and gRPC's
// polling threads do, each handing its I/O to another thread: see thrift_server.cc and
// grpc_server.cc), or Submit it: the scheduler runs it on one of a fixed number of handler
// threads, which may block. It holds at most
// `max_calls` calls, queued and running together; a call beyond that is refused at once with
// RESOURCE_EXHAUSTED, never queued without bound. A queued call whose deadline passes before a
// thread takes it is answered DEADLINE_EXCEEDED and its handler never runs. On shutdown, Drain lets
// queued and running calls finish within the grace period and refuses (UNAVAILABLE) any still
// queued at its end, so every call is either run to completion or refused before its handler
// starts.
//
// Thread-safe. Owned by rpcboot::Server, shared by its transports; outlives them.
#ifndef RPCBOOT_INTERNAL_CALL_SCHEDULER_H_
#define RPCBOOT_INTERNAL_CALL_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rpcboot/server_context.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

struct ScheduledCall {
  // The caller's deadline, when the wire carried one.
  std::optional<ServerContext::Clock::time_point> deadline;
  // Runs the handler and sends its reply (on a handler thread).
  std::function<void()> run;
  // Answers the call without running it (on the thread that refuses: a handler thread, the
  // submitting I/O thread, or the one draining). Must not block.
  std::function<void(StatusCode, std::string)> refuse;
};

class CallScheduler {
 public:
  // `threads` handler threads (at least one is needed: fewer start when the system cannot create
  // them, which is logged; with none, every call is refused); at most `max_calls` calls queued
  // and running at once (0: four times the threads). Handlers run at most `threads` at once,
  // counting those run in place (Enter): a handler slot per thread.
  CallScheduler(int threads, int max_calls);
  ~CallScheduler();  // refuses what is queued, joins the threads
  CallScheduler(const CallScheduler&) = delete;
  CallScheduler& operator=(const CallScheduler&) = delete;

  // Queues `call`, or refuses it at once: RESOURCE_EXHAUSTED when max_calls are in, UNAVAILABLE
  // once draining has begun.
  void Submit(ScheduledCall call);

  // For a transport that runs a call on its own thread (where it was read; the transport keeps
  // its I/O going on another thread). True: the call is counted in and holds a handler slot;
  // run it, then Leave once its reply is handed on. False: *code is kOk when every slot is busy
  // (Submit it: it queues like any call), otherwise the refusal Submit would give
  // (RESOURCE_EXHAUSTED, UNAVAILABLE) with *why.
  bool Enter(StatusCode* code, std::string* why);
  void Leave();

  // Stops taking calls, lets queued and running ones finish until `deadline`, then refuses what
  // is still queued. True when nothing was left running at the deadline.
  bool Drain(std::chrono::steady_clock::time_point deadline);

  int threads() const { return static_cast<int>(threads_.size()); }
  int max_calls() const { return max_calls_; }
  int in_flight() const;  // queued + running

 private:
  void Work();

  const int max_calls_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<ScheduledCall> queue_;
  // Written under mu_ except by Enter and Leave, which read them without it.
  std::atomic<int> running_{0};
  std::atomic<int> queued_{0};  // queue_.size()
  std::atomic<bool> draining_{false};
  std::atomic<int> slots_{0};  // handler slots: the threads that started
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_CALL_SCHEDULER_H_
