#include "rpcboot/internal/call_scheduler.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/metrics.h"

namespace rpcboot::internal {

CallScheduler::CallScheduler(int threads, int max_calls)
    : max_calls_(max_calls > 0 ? max_calls : 4 * std::max(threads, 1)) {
  threads_.reserve(static_cast<std::size_t>(std::max(threads, 0)));
  for (int i = 0; i < threads; ++i) {
    try {
      threads_.emplace_back([this] { Work(); });
    } catch (const std::system_error& e) {
      Log(LogLevel::kError, absl::StrCat("handler pool: started ", i, " of ", threads,
                                         " threads; the system refused more: ", e.what()));
      break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    slots_ = static_cast<int>(threads_.size());  // the threads started: read by Work and Enter
  }
  work_cv_.notify_all();
}

CallScheduler::~CallScheduler() {
  std::deque<ScheduledCall> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    draining_ = true;
    refused.swap(queue_);
    queued_ = 0;
  }
  Transports().queued_calls.fetch_sub(static_cast<int64_t>(refused.size()));
  work_cv_.notify_all();
  for (ScheduledCall& call : refused) call.refuse(StatusCode::kUnavailable, "server stopped");
  for (std::thread& t : threads_) t.join();
}

void CallScheduler::Submit(ScheduledCall call) {
  std::unique_lock<std::mutex> lock(mu_);
  if (draining_ || threads_.empty()) {
    lock.unlock();
    call.refuse(StatusCode::kUnavailable,
                draining_ ? "server shutting down; call not run" : "server has no handler threads");
    return;
  }
  if (static_cast<int>(queue_.size()) + running_ >= max_calls_) {
    lock.unlock();
    call.refuse(StatusCode::kResourceExhausted,
                absl::StrCat("server busy: ", max_calls_,
                             " calls in progress (server.max_concurrent_calls)"));
    return;
  }
  queue_.push_back(std::move(call));
  queued_ = static_cast<int>(queue_.size());
  Transports().queued_calls.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  work_cv_.notify_one();
}

bool CallScheduler::Enter(StatusCode* code, std::string* why) {
  // Lock-free: the loops of a busy server call this for every call.
  const int slots = slots_.load();
  int running = running_.load();
  while (true) {
    if (draining_.load()) {
      *code = StatusCode::kUnavailable;
      *why = "server shutting down; call not run";
      return false;
    }
    int queued = queued_.load();
    if (queued + running >= max_calls_) {
      *code = StatusCode::kResourceExhausted;
      *why = absl::StrCat("server busy: ", max_calls_,
                          " calls in progress (server.max_concurrent_calls)");
      return false;
    }
    if (running >= slots || queued > 0) {
      *code = StatusCode::kOk;  // no slot free (or calls wait for one): queue it
      return false;
    }
    if (running_.compare_exchange_weak(running, running + 1)) break;
  }
  // Drain sets draining_ and then reads running_; this counted in and then reads draining_:
  // one of the two sees the other. Counted in after the drain began: back out, unrun.
  if (draining_.load()) {
    Leave();
    *code = StatusCode::kUnavailable;
    *why = "server shutting down; call not run";
    return false;
  }
  return true;
}

void CallScheduler::Leave() {
  int left = running_.fetch_sub(1) - 1;
  if (queued_.load() > 0 || (left == 0 && draining_.load())) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queue_.empty()) work_cv_.notify_one();  // its slot is free
    if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
  }
}

bool CallScheduler::Drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  idle_cv_.wait_until(lock, deadline, [this] { return queue_.empty() && running_ == 0; });
  std::deque<ScheduledCall> refused;
  refused.swap(queue_);
  queued_ = 0;
  bool clean = running_ == 0;
  lock.unlock();
  Transports().queued_calls.fetch_sub(static_cast<int64_t>(refused.size()));
  for (ScheduledCall& call : refused) {
    call.refuse(StatusCode::kUnavailable, "server shutting down; call not run");
  }
  return clean && refused.empty();
}

int CallScheduler::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size()) + running_;
}

void CallScheduler::Work() {
  while (true) {
    ScheduledCall call;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A slot may be held by a call run in place (Enter, which counts in without the lock):
      // claim one with the same compare-and-swap, or wait for one to be free.
      bool claimed = false;
      work_cv_.wait(lock, [&] {
        if (stopping_) return true;
        if (queue_.empty()) return false;
        const int slots = slots_.load();
        int running = running_.load();
        while (running < slots) {
          if (running_.compare_exchange_weak(running, running + 1)) {
            claimed = true;
            return true;
          }
        }
        return false;
      });
      if (!claimed) return;  // stopping
      call = std::move(queue_.front());
      queue_.pop_front();
      queued_ = static_cast<int>(queue_.size());
    }
    Transports().queued_calls.fetch_sub(1, std::memory_order_relaxed);
    if (call.deadline && *call.deadline <= ServerContext::Clock::now()) {
      call.refuse(StatusCode::kDeadlineExceeded, "deadline passed before the handler ran");
    } else {
      call.run();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
    }
  }
}

}  // namespace rpcboot::internal
