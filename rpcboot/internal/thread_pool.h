// A fixed pool of threads running submitted tasks in FIFO order. Thread-safe. The destructor
// runs the tasks already queued, then joins.
#ifndef RPCBOOT_INTERNAL_THREAD_POOL_H_
#define RPCBOOT_INTERNAL_THREAD_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rpcboot::internal {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Work();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_THREAD_POOL_H_
