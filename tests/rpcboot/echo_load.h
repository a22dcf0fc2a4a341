// Callers that keep calling Echo with a fresh id each until stopped, and remember which ids were
// answered: for tests that count each call on the side that served it.
#ifndef RPCBOOT_TESTS_RPCBOOT_ECHO_LOAD_H_
#define RPCBOOT_TESTS_RPCBOOT_ECHO_LOAD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rich_service.h"
#include "rpcboot/status.h"

namespace rpcboot::testing {

class EchoLoad {
 public:
  // `threads` callers send `request` with value.id set to 0, 1, 2, ...
  EchoLoad(std::shared_ptr<rich::RichService> client, int threads, rich::EchoRequest request) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, client, request]() mutable {
        while (!stop_.load()) {
          request.value.id = next_id_.fetch_add(1);
          try {
            client->Echo(request);
            std::lock_guard<std::mutex> lock(mu_);
            answered_.push_back(request.value.id);
          } catch (const RpcError& e) {
            std::lock_guard<std::mutex> lock(mu_);
            if (failed_++ == 0) first_failure_ = e.what();
          }
        }
      });
    }
  }
  ~EchoLoad() { Stop(); }  // an assertion that returns early still stops the callers
  EchoLoad(const EchoLoad&) = delete;
  EchoLoad& operator=(const EchoLoad&) = delete;

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  // True once `n` more calls have been answered (false after `timeout`).
  bool Progress(std::size_t n, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::size_t target = answered() + n;
    auto give_up = std::chrono::steady_clock::now() + timeout;
    while (answered() < target) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }
  std::size_t answered() {
    std::lock_guard<std::mutex> lock(mu_);
    return answered_.size();
  }
  std::vector<int64_t> answered_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return answered_;
  }
  int failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }
  std::string first_failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_failure_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> next_id_{0};
  std::mutex mu_;  // guards what follows
  std::vector<int64_t> answered_;
  int failed_ = 0;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_ECHO_LOAD_H_
