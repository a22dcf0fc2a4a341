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

pid_t ThreadId() {
  thread_local pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
  return tid;
}

// Whether thread `tid` of this process is asleep (waiting in the kernel: a lock, I/O, a sleep)
// rather than running or waiting for a CPU. Unknown (no /proc): asleep.
bool ThreadAsleep(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');  // "tid (name) S ...": the name may hold spaces
  if (paren == nullptr || paren[1] == '\0' || paren[2] == '\0') return true;
  return paren[2] != 'R';
}

}  // namespace

uint64_t InPlaceCall::Begin() {
  tid_ = ThreadId();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void InPlaceMonitor::Main() {
  int quiet = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (quiet >= kQuietChecksBeforeSleep) {
      asleep_ = true;
      lock.unlock();
      client_->OnQuiet();
      bool running = client_->AnyInPlace();  // a call that started before the flag was seen
      lock.lock();
      if (!running) cv_.wait(lock, [this] { return stop_ || !asleep_.load(); });
      asleep_ = false;
      quiet = 0;
      continue;
    }
    cv_.wait_for(lock, kInterval, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    bool active = client_->CheckInPlace();
    lock.lock();
    quiet = active ? 0 : quiet + 1;
  }
}

}  // namespace rpcboot::internal
