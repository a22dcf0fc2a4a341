// Concurrent Count() calls for resilience tests, in-process and against rich_app processes.
#ifndef RPCBOOT_TESTS_RPCBOOT_COUNT_CALLS_H_
#define RPCBOOT_TESTS_RPCBOOT_COUNT_CALLS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "rich_service.h"
#include "rpcboot/status.h"

namespace rpcboot::testing {

// `threads` callers make `calls` Count()s in all through `client`; returns how many failed and
// adds to *slow those slower than `slow_after`.
inline int64_t CountCalls(rich::RichService& client, int threads, int64_t calls,
                          std::atomic<int64_t>* slow = nullptr,
                          std::chrono::milliseconds slow_after = std::chrono::milliseconds(100)) {
  std::atomic<int64_t> next{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&] {
      while (next.fetch_add(1) < calls) {
        auto start = std::chrono::steady_clock::now();
        try {
          client.Count();
        } catch (const RpcError&) {
          failed.fetch_add(1);
        }
        if (slow != nullptr && std::chrono::steady_clock::now() - start > slow_after)
          slow->fetch_add(1);
      }
    });
  }
  for (std::thread& t : callers) t.join();
  return failed.load();
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_COUNT_CALLS_H_
