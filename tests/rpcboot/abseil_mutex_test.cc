// SettleAbseilDeadlockDetection: Abseil's lock-order checker is off after it unless
// RPCBOOT_ABSL_DEADLOCK_DETECTION=1 keeps it. Each case runs in a child process of its own (the
// setting is once per process), which locks two absl::Mutex in one order and then in the other:
// with the checker on (Debian's Abseil, built without NDEBUG) that aborts the process.
#include "rpcboot/internal/abseil_mutex.h"

#include <absl/synchronization/mutex.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace rpcboot::internal {
namespace {

// Locks a then b, then b then a: a lock-order cycle.
void LockInBothOrders() {
  absl::Mutex a, b;
  a.Lock();
  b.Lock();
  b.Unlock();
  a.Unlock();
  b.Lock();
  a.Lock();
  a.Unlock();
  b.Unlock();
}

struct Outcome {
  bool aborted = false;
  std::string log;  // what rpcboot logged in the child
};

// In a child: `env` as RPCBOOT_ABSL_DEADLOCK_DETECTION (nullptr: unset), then Settle (if
// `settle`), then the cycle.
Outcome RunChild(const char* env, bool settle) {
  char path[] = "/tmp/rpcboot_abseil_mutex_XXXXXX";
  int log_fd = ::mkstemp(path);
  EXPECT_GE(log_fd, 0);
  std::fflush(nullptr);
  Outcome outcome;
  pid_t pid = ::fork();
  EXPECT_GE(pid, 0) << "fork failed";
  if (pid < 0) {
    ::close(log_fd);
    ::unlink(path);
    return outcome;
  }
  if (pid == 0) {
    ::dup2(log_fd, STDERR_FILENO);  // rpcboot's log and Abseil's report
    if (env == nullptr) {
      ::unsetenv("RPCBOOT_ABSL_DEADLOCK_DETECTION");
    } else {
      ::setenv("RPCBOOT_ABSL_DEADLOCK_DETECTION", env, 1);
    }
    if (settle) SettleAbseilDeadlockDetection();
    LockInBothOrders();
    ::_exit(0);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  outcome.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  EXPECT_TRUE(outcome.aborted || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) << status;
  char buf[4096];
  ssize_t n = ::pread(log_fd, buf, sizeof buf, 0);
  if (n > 0) outcome.log.assign(buf, static_cast<std::size_t>(n));
  ::close(log_fd);
  ::unlink(path);
  return outcome;
}

TEST(AbseilDeadlockDetection, DebiansAbseilChecksLockOrderUntilRpcbootTurnsItOff) {
  // The premise: this platform's Abseil runs the checker (a release build would not).
  Outcome untouched = RunChild(nullptr, false);
  EXPECT_TRUE(untouched.aborted) << "Abseil here has no lock-order checker: " << untouched.log;
  Outcome settled = RunChild(nullptr, true);
  EXPECT_FALSE(settled.aborted) << settled.log;
  EXPECT_EQ(settled.log, "");
  EXPECT_FALSE(RunChild("0", true).aborted);
}

TEST(AbseilDeadlockDetection, OneKeepsItAsAbseilsBuildSetIt) {
  Outcome untouched = RunChild(nullptr, false);
  Outcome kept = RunChild("1", true);
  EXPECT_EQ(kept.aborted, untouched.aborted) << kept.log;
}

TEST(AbseilDeadlockDetection, AnyOtherValueIsNamedAndTurnsItOff) {
  Outcome bad = RunChild("yes\x01", true);
  EXPECT_FALSE(bad.aborted) << bad.log;
  EXPECT_NE(bad.log.find("RPCBOOT_ABSL_DEADLOCK_DETECTION: 'yes\\x01' is neither 1"),
            std::string::npos)
      << bad.log;
}

}  // namespace
}  // namespace rpcboot::internal
