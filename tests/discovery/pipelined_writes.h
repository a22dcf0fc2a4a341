// Pipelined ZooKeeper writes for tests and benchmarks that need thousands of registrations:
// creates or deletes with up to `window` asynchronous requests in flight on one handle.
#ifndef RPCBOOT_TESTS_DISCOVERY_PIPELINED_WRITES_H_
#define RPCBOOT_TESTS_DISCOVERY_PIPELINED_WRITES_H_

#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rpcboot::testing {

struct PipelinedResult {
  int failed = 0;
  // Steady clock, each request's answer in the order the answers came: ZooKeeper answers one
  // session's requests in the order they were sent, so with no failure, the i-th is the i-th
  // node's.
  std::vector<int64_t> ack_ns;
};

namespace internal {

struct PipelinedState {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  PipelinedResult result;
};

inline void PipelinedDone(int rc, const void* data) {
  auto* state = static_cast<PipelinedState*>(const_cast<void*>(data));
  std::lock_guard<std::mutex> lock(state->mu);
  if (rc != ZOK) ++state->result.failed;
  state->result.ack_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
  --state->in_flight;
  state->cv.notify_all();
}

}  // namespace internal

// Creates (`create`: persistent, open ACL, with each pair's data) or deletes the nodes (path,
// data) and returns once ZooKeeper has answered every request.
inline PipelinedResult PipelinedWrite(zhandle_t* zh,
                                      const std::vector<std::pair<std::string, std::string>>& nodes,
                                      bool create, int window = 500) {
  internal::PipelinedState state;
  state.result.ack_ns.reserve(nodes.size());
  for (const auto& [path, data] : nodes) {
    {
      std::unique_lock<std::mutex> lock(state.mu);
      state.cv.wait(lock, [&] { return state.in_flight < window; });
      ++state.in_flight;
    }
    int rc = create ? zoo_acreate(
                          zh, path.c_str(), data.data(), static_cast<int>(data.size()),
                          &ZOO_OPEN_ACL_UNSAFE, 0,
                          [](int r, const char*, const void* p) { internal::PipelinedDone(r, p); },
                          &state)
                    : zoo_adelete(zh, path.c_str(), -1, internal::PipelinedDone, &state);
    if (rc != ZOK) internal::PipelinedDone(rc, &state);
  }
  std::unique_lock<std::mutex> lock(state.mu);
  state.cv.wait(lock, [&] { return state.in_flight == 0; });
  return state.result;
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_DISCOVERY_PIPELINED_WRITES_H_
