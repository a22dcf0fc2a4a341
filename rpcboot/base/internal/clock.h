// The steady clock as a count of nanoseconds, for deadlines and windows kept in atomics.
#ifndef RPCBOOT_BASE_INTERNAL_CLOCK_H_
#define RPCBOOT_BASE_INTERNAL_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace rpcboot::internal {

// Nanoseconds since the steady clock's epoch.
inline int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_BASE_INTERNAL_CLOCK_H_
