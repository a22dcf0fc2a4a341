// The steady clock as a count of nanoseconds, for deadlines and windows kept in atomics.
#ifndef RPCBOOT_BASE_INTERNAL_CLOCK_H_
#define RPCBOOT_BASE_INTERNAL_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace rpcboot::internal {

// `time` as nanoseconds since the steady clock's epoch.
inline int64_t SteadyNanos(std::chrono::steady_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

// Nanoseconds since the steady clock's epoch.
inline int64_t SteadyNanos() { return SteadyNanos(std::chrono::steady_clock::now()); }

}  // namespace rpcboot::internal

#endif  // RPCBOOT_BASE_INTERNAL_CLOCK_H_
