// The closed-loop load both RPC benchmarks drive: `callers` threads, each calling through its
// own caller function as fast as replies come back, for a fixed time. Latencies are kept per
// call (no sampling), so p50 and p99 are exact for the run.
#ifndef RPCBOOT_BENCH_LOAD_TESTING_H_
#define RPCBOOT_BENCH_LOAD_TESTING_H_

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace rpcboot::bench {

struct Result {
  long calls = 0;  // answered or failed, over the measured seconds
  double calls_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  long errors = 0;
};

// make_caller(i) returns caller i's call, which answers true on success. Each is called once
// first (to connect and warm up), then in a loop for `seconds`. `mark` (if set) is called with
// false when the measured loop starts and with true when it has ended, every caller still
// connected.
inline Result Load(int callers, double seconds,
                   const std::function<std::function<bool()>(int)>& make_caller,
                   const std::function<void(bool end)>& mark = nullptr) {
  using Clock = std::chrono::steady_clock;
  std::vector<std::function<bool()>> calls;
  for (int i = 0; i < callers; ++i) calls.push_back(make_caller(i));
  for (auto& call : calls) call();
  if (mark) mark(false);
  std::atomic<bool> stop{false};
  std::vector<std::vector<float>> latencies(callers);
  std::vector<long> errors(callers, 0);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      latencies[i].reserve(1 << 16);
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = Clock::now();
        if (!calls[i]()) ++errors[i];
        latencies[i].push_back(std::chrono::duration<float, std::micro>(Clock::now() - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (mark) mark(true);
  std::vector<float> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  r.calls = static_cast<long>(all.size());
  r.calls_per_second = static_cast<double>(all.size()) / elapsed;
  if (!all.empty()) {
    r.p50_us = all[all.size() / 2];
    r.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
    r.p999_us = all[std::min(all.size() - 1, all.size() * 999 / 1000)];
  }
  for (long e : errors) r.errors += e;
  return r;
}

// This benchmark's binary started again as `self --serve=<kind>` (the server side, in its own
// process), with rpcboot's log at `log_level`; stopped by pid (SIGTERM) when destroyed.
// `first_line` is what the server printed first (its ports); NextLine reads on.
class SelfProcess {
 public:
  SelfProcess(const char* self, const std::string& kind, const char* log_level) {
    int out[2];
    if (::pipe(out) != 0) std::abort();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::string arg = "--serve=" + kind;
    char* argv[] = {const_cast<char*>(self), const_cast<char*>(arg.c_str()), nullptr};
    setenv("RPCBOOT_LOG_LEVEL", log_level, 1);
    if (posix_spawn(&pid_, self, &actions, nullptr, argv, environ) != 0) std::abort();
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    first_line_ = NextLine();
  }
  ~SelfProcess() {
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
    ::close(out_);
  }
  SelfProcess(const SelfProcess&) = delete;
  SelfProcess& operator=(const SelfProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& first_line() const { return first_line_; }
  // The next line the server prints (waits for it; "" once its output is closed).
  std::string NextLine() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string first_line_;
};

}  // namespace rpcboot::bench

#endif  // RPCBOOT_BENCH_LOAD_TESTING_H_
