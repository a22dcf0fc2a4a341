#include "rpcboot/internal/in_place.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <system_error>

namespace rpcboot::internal {
namespace {

// Checks in a row with no call in place before the monitor sleeps.
constexpr int kQuietChecksBeforeSleep = 200;

// Reads /proc/self/task/<tid>/<file> into `buf` (NUL-terminated): false when it cannot.
bool ReadTaskFile(pid_t tid, const char* file, char* buf, std::size_t size) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/%s", static_cast<int>(tid), file);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = ::read(fd, buf, size - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return true;
}

// Whether thread `tid` of this process is asleep (waiting in the kernel: a lock, I/O, a sleep)
// rather than running or waiting for a CPU. Unknown (no /proc): asleep.
bool ThreadAsleep(pid_t tid) {
  char buf[256];
  if (!ReadTaskFile(tid, "stat", buf, sizeof buf)) return true;
  const char* paren = std::strrchr(buf, ')');  // "tid (name) S ...": the name may hold spaces
  if (paren == nullptr || paren[1] == '\0' || paren[2] == '\0') return true;
  return paren[2] != 'R';
}

}  // namespace

pid_t CurrentThreadId() {
  thread_local pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
  return tid;
}

int64_t ThreadWantedNanos(pid_t tid) {
  char buf[128];
  if (!ReadTaskFile(tid, "schedstat", buf, sizeof buf)) return -1;
  unsigned long long ran = 0, waited = 0;
  if (std::sscanf(buf, "%llu %llu", &ran, &waited) != 2) return -1;
  return static_cast<int64_t>(ran + waited);
}

uint64_t InPlaceCall::Begin() {
  tid_ = CurrentThreadId();
  const uint64_t token = (((state_.load() >> 2) + 1) << 2) | kRunning;
  state_.store(token);
  return token;
}

bool InPlaceCall::Check(std::chrono::nanoseconds busy_for, uint64_t* blocked, bool* asleep) {
  *blocked = 0;
  *asleep = false;
  uint64_t state = state_.load();
  bool running = (state & 3) == kRunning;
  bool active = running || state != seen_;
  if (!running || state != seen_) {
    seen_ = state;
    seen_at_ = std::chrono::steady_clock::now();
    return active;
  }
  // The same call as at the previous check. tid_ was written before the state was published;
  // it is read only while that call runs.
  *asleep = ThreadAsleep(tid_);
  if (*asleep || std::chrono::steady_clock::now() - seen_at_ >= busy_for) *blocked = state;
  return active;
}

bool InPlaceMonitor::Start(std::string* error) {
  try {
    thread_ = std::thread([this] { Main(); });
  } catch (const std::system_error& e) {
    *error = e.what();
    return false;
  }
  running_ = true;
  return true;
}

void InPlaceMonitor::Stop() {
  if (!thread_.joinable()) return;
  running_ = false;
  // An owner's check that began before running_ went false ends before Stop returns; none
  // begins after (PokeDue reads running_ under the lock).
  { std::lock_guard<std::mutex> check(check_mu_); }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void InPlaceMonitor::CheckLocked(bool by_owner) {
  const bool active = client_->CheckInPlace();
  const int64_t now = SteadyNanos();
  last_check_.store(now, std::memory_order_relaxed);
  if (by_owner) last_owner_check_.store(now, std::memory_order_relaxed);
  quiet_.store(active ? 0 : quiet_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void InPlaceMonitor::PokeDue(int64_t now) {
  std::unique_lock<std::mutex> check(check_mu_, std::try_to_lock);
  if (!check.owns_lock() || !running()) return;  // another thread checks, or stopped
  if (now - last_check_.load(std::memory_order_relaxed) < kIntervalNanos) return;  // just done
  CheckLocked(true);
}

void InPlaceMonitor::Main() {
  constexpr int64_t kRecent = 2 * kIntervalNanos;
  std::chrono::microseconds wait = kInterval;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (quiet_.load() >= kQuietChecksBeforeSleep) {
      asleep_ = true;
      lock.unlock();
      {
        std::lock_guard<std::mutex> check(check_mu_);  // not beside an owner's check
        client_->OnQuiet();
      }
      bool running = client_->AnyInPlace();  // a call that started before the flag was seen
      lock.lock();
      if (!running) cv_.wait(lock, [this] { return stop_ || !asleep_.load(); });
      asleep_ = false;
      quiet_ = 0;
      wait = kInterval;
      continue;
    }
    cv_.wait_for(lock, wait, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    if (SteadyNanos() - last_owner_check_.load(std::memory_order_relaxed) < kRecent) {
      // An owner thread checked lately: it goes on while it runs. Look again later, and check
      // here once the owners have stopped poking (all idle, or held by their calls).
      wait = kFallbackInterval;
    } else {
      std::lock_guard<std::mutex> check(check_mu_);
      CheckLocked(false);
      wait = kInterval;
    }
    lock.lock();
  }
}

}  // namespace rpcboot::internal
