#include "rpcboot/internal/call_scheduler.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"

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
}

CallScheduler::~CallScheduler() {
  std::deque<ScheduledCall> refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    draining_ = true;
    refused.swap(queue_);
  }
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
  lock.unlock();
  work_cv_.notify_one();
}

bool CallScheduler::Enter(StatusCode* code, std::string* why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) {
    *code = StatusCode::kUnavailable;
    *why = "server shutting down; call not run";
    return false;
  }
  if (static_cast<int>(queue_.size()) + running_ >= max_calls_) {
    *code = StatusCode::kResourceExhausted;
    *why = absl::StrCat("server busy: ", max_calls_,
                        " calls in progress (server.max_concurrent_calls)");
    return false;
  }
  if (running_ >= static_cast<int>(threads_.size()) || !queue_.empty()) {
    *code = StatusCode::kOk;  // no slot free (or calls wait for one): queue it
    return false;
  }
  ++running_;
  return true;
}

void CallScheduler::Leave() {
  std::lock_guard<std::mutex> lock(mu_);
  --running_;
  if (!queue_.empty()) work_cv_.notify_one();  // its slot is free
  if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
}

bool CallScheduler::Drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  idle_cv_.wait_until(lock, deadline, [this] { return queue_.empty() && running_ == 0; });
  std::deque<ScheduledCall> refused;
  refused.swap(queue_);
  bool clean = running_ == 0;
  lock.unlock();
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
      // A slot may be held by a call run in place (Enter): wait for one to be free.
      work_cv_.wait(lock, [this] {
        return stopping_ || (!queue_.empty() && running_ < static_cast<int>(threads_.size()));
      });
      if (queue_.empty()) return;  // stopping
      call = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
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
