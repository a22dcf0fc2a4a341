// The threads that run a transport's event loops, and the spares that take over a loop whose
// thread is held by a call it ran in place (in_place.h): the Thrift loops and the native gRPC
// server's loops both run this way. Also what both transports start the same way: their
// listening socket and their number of loops.
//
//   LoopRunners<Loop> runners("Thrift");   // Loop has `bool Run()`: false once handed off
//   runners.StartAll(&loops, handler_threads);  // a thread for each loop, at start
//   // the check, under the loop's hand-off lock, when the loop's call blocked:
//   if (runners.Reserve() && here.Displace(token)) runners.HandOver(loop);
//   runners.StopAll(loops, deadline, &monitor);  // shutdown
//
// Thread-safe.
#ifndef RPCBOOT_INTERNAL_LOOP_RUNNERS_H_
#define RPCBOOT_INTERNAL_LOOP_RUNNERS_H_

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/in_place.h"
#include "rpcboot/internal/socket.h"

namespace rpcboot::internal {

// A non-blocking listening socket on host:port (port 0: a free one, *bound_port the one bound);
// errors start with `protocol`.
inline absl::StatusOr<int> ListenNonBlocking(const std::string& protocol, const std::string& host,
                                             int port, int* bound_port) {
  absl::StatusOr<int> fd = Listen(host, port, bound_port);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(), absl::StrCat(protocol, ": ", fd.status().message()));
  }
  ::fcntl(*fd, F_SETFL, ::fcntl(*fd, F_GETFL) | O_NONBLOCK);
  return *fd;
}

// A transport's event loops: server.io_threads, by default one per core and at least 8 (up to
// 8 busy connections each get a thread of their own, as a thread per connection would give
// them, which on a small machine whose cores the callers share costs less per call than one
// thread waking several callers: docs/benchmarks.md).
inline int IoThreads(int configured) {
  return configured > 0 ? configured
                        : std::max(8, static_cast<int>(std::thread::hardware_concurrency()));
}

template <class Loop>
class LoopRunners {
 public:
  // `protocol` names the transport in the log ("Thrift", "gRPC").
  explicit LoopRunners(std::string protocol) : protocol_(std::move(protocol)) {}
  ~LoopRunners() { Stop(); }
  LoopRunners(const LoopRunners&) = delete;
  LoopRunners& operator=(const LoopRunners&) = delete;

  // A thread that runs `loop` (and, once it is handed off, waits to take another). False with
  // the system's reason in *error when the thread could not be started.
  bool Start(Loop* loop, std::string* error) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      threads_.emplace_back([this, loop] { Main(loop); });
    } catch (const std::system_error& e) {
      *error = e.what();
      return false;
    }
    ++count_;
    return true;
  }

  // A thread for each of `loops` (index 0 first). When the system refuses one, the transport
  // serves with the loops that got a thread: `loops` is cut to them (no connection was given to
  // the others yet), and the log says so. An error when not even one started. Threads at most are
  // then twice the loops and `handler_threads` (a displaced call holds a handler slot: at most the
  // pool's size of them at once).
  absl::Status StartAll(std::vector<std::unique_ptr<Loop>>* loops, int handler_threads) {
    const std::size_t wanted = loops->size();
    for (std::size_t i = 0; i < wanted; ++i) {
      if (std::string error; !Start((*loops)[i].get(), &error)) {
        if (i == 0) {
          return absl::ResourceExhaustedError(
              absl::StrCat(protocol_, ": cannot start an I/O thread: ", error));
        }
        Log(LogLevel::kError, absl::StrCat(protocol_, ": started ", i, " of ", wanted,
                                           " I/O threads; the system refused more: ", error));
        loops->resize(i);
        break;
      }
    }
    set_max(static_cast<int>(2 * loops->size()) + std::max(1, handler_threads));
    return absl::OkStatus();
  }

  // Shutdown: waits until no loop is busy (the replies of finished calls written, as each loop's
  // busy() says) or `deadline` passes; then stops every loop, then `monitor` (the checks are all
  // that add threads), then joins every thread.
  void StopAll(const std::vector<std::unique_ptr<Loop>>& loops,
               std::chrono::steady_clock::time_point deadline, InPlaceMonitor* monitor) {
    while (std::chrono::steady_clock::now() < deadline) {
      int busy = 0;
      for (const auto& loop : loops) busy += loop->busy();
      if (busy == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (const auto& loop : loops) loop->PostStop();
    monitor->Stop();
    Stop();
  }

  // Threads at most, those running loops and the spares together.
  void set_max(int max) {
    std::lock_guard<std::mutex> lock(mu_);
    max_ = max;
  }

  // The check, under the loop's hand-off lock: makes sure a spare thread can take a loop
  // (starts one when none is spare). False when none can be had: the loop waits for its call.
  bool Reserve() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_ > static_cast<int>(orphans_.size())) return true;
    if (count_ >= max_) return false;
    try {
      threads_.emplace_back([this] { Main(nullptr); });
    } catch (const std::system_error& e) {
      if (log_.Allow()) {
        Log(LogLevel::kWarning,
            absl::StrCat(protocol_, ": cannot start a thread for a loop whose call blocked: ",
                         e.what(), "; the loop waits for the call"));
      }
      return false;
    }
    ++count_;
    ++free_;
    return true;
  }

  // `loop`'s thread is held by a blocked call (displaced): a spare thread takes the loop.
  void HandOver(Loop* loop) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      orphans_.push_back(loop);
    }
    cv_.notify_one();
  }

  // Joins every thread; each loop must have been told to stop (its Run returns). No thread is
  // added meanwhile: only the checks add, and none may run after the monitor stopped.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  // Runs a loop until it stops or is handed off, then waits to take a handed-off loop.
  void Main(Loop* loop) {
    bool counted_free = loop == nullptr;  // started spare: counted by Reserve
    while (true) {
      if (loop != nullptr) loop->Run();  // false (handed off) or true (stopped): free again
      std::unique_lock<std::mutex> lock(mu_);
      if (!counted_free) ++free_;
      counted_free = false;
      cv_.wait(lock, [this] { return stop_ || !orphans_.empty(); });
      if (orphans_.empty()) return;
      loop = orphans_.front();
      orphans_.pop_front();
      --free_;
    }
  }

  const std::string protocol_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;  // every runner thread
  std::deque<Loop*> orphans_;         // handed-off loops waiting for a thread
  int count_ = 0;
  int free_ = 0;  // waiting for (or about to wait for) a handed-off loop
  int max_ = 0;
  bool stop_ = false;
  LogLimiter log_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_LOOP_RUNNERS_H_
