#include "rpcboot/internal/abseil_mutex.h"

#include <absl/strings/str_cat.h>
#include <absl/synchronization/mutex.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "rpcboot/base/log.h"

namespace rpcboot::internal {

void SettleAbseilDeadlockDetection() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* keep = std::getenv("RPCBOOT_ABSL_DEADLOCK_DETECTION");
    if (keep != nullptr && std::strcmp(keep, "1") == 0) return;
    if (keep != nullptr && std::strcmp(keep, "0") != 0) {
      Log(LogLevel::kWarning,
          absl::StrCat("RPCBOOT_ABSL_DEADLOCK_DETECTION: '", Printable(keep),
                       "' is neither 1 (keep Abseil's lock-order checker) nor 0 (turn it off); "
                       "turning it off"));
    }
    // Turned off for good: a lock taken while the checker ran and released after leaves an entry
    // in that thread's list of locks held, which only the checker reads.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  });
}

}  // namespace rpcboot::internal
