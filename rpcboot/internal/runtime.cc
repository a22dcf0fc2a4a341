// Small runtime pieces shared by transports: logging, the handler thread pool, the per-call
// server context.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "rpcboot/internal/log.h"
#include "rpcboot/internal/thread_pool.h"
#include "rpcboot/server_context.h"

namespace rpcboot {
namespace internal {

ThreadPool::ThreadPool(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void ThreadPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace internal

namespace {
thread_local const ServerContext* current_context = nullptr;
}  // namespace

const ServerContext* ServerContext::Current() { return current_context; }

std::chrono::milliseconds ServerContext::remaining() const {
  if (!deadline_) return std::chrono::hours(24 * 365);
  return std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now());
}

ServerContext::Scope::Scope(const ServerContext* context) : previous_(current_context) {
  current_context = context;
}

ServerContext::Scope::~Scope() { current_context = previous_; }

}  // namespace rpcboot
