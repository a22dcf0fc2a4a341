// Child processes for integration tests: started with posix_spawn, output to a log file, stopped
// by pid (SIGTERM, SIGKILL) and never left behind.
#ifndef RPCBOOT_TESTS_DISCOVERY_PROCESS_TESTING_H_
#define RPCBOOT_TESTS_DISCOVERY_PROCESS_TESTING_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace rpcboot::testing {

// True the first time this process asks about `path`. Log names carry the test's process id,
// and ids are reused: a log left by an earlier run with the same id must not be read as this
// run's.
inline bool FirstUseOf(const std::string& path) {
  static std::mutex mu;
  static std::set<std::string> used;
  std::lock_guard<std::mutex> lock(mu);
  return used.insert(path).second;
}

class ChildProcess {
 public:
  // Output to `log_path`: the first child of this process to use it starts it afresh, the
  // later ones append.
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(
        &actions, 1, log_path.c_str(),
        O_WRONLY | O_CREAT | O_APPEND | (FirstUseOf(log_path) ? O_TRUNC : 0), 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int signal) { ::kill(pid_, signal); }
  // Waits for the exit; returns the exit code (128 + signal when killed).
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Exited within `timeout`? (then Wait returns at once)
  bool WaitFor(std::chrono::milliseconds timeout, int* code) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_DISCOVERY_PROCESS_TESTING_H_
