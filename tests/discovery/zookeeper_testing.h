// Real ZooKeeper servers for tests, started and stopped through scripts/zookeeper.sh (Debian's
// jars, 127.0.0.1, free ports, minSessionTimeout 1 s). Each owns a directory under the test's
// binary directory and stops its servers, by pid, when destroyed, or when its process ends any
// other way (a crash, SIGKILL, a test runner's timeout: StopWhenOwnerEnds).
#ifndef RPCBOOT_TESTS_DISCOVERY_ZOOKEEPER_TESTING_H_
#define RPCBOOT_TESTS_DISCOVERY_ZOOKEEPER_TESTING_H_

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace rpcboot::testing {

// Runs the script; returns its stdout, throws with its output when it fails.
inline std::string RunZooKeeperScript(const std::string& args) {
  std::string command = std::string(RPCBOOT_ZOOKEEPER_SCRIPT) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  int rc = ::pclose(pipe);
  if (rc != 0) throw std::runtime_error("'" + command + "' failed:\n" + out);
  return out;
}

inline std::string ValueAfter(const std::string& out, const std::string& key) {
  std::size_t at = out.rfind(key + "=");
  if (at == std::string::npos) throw std::runtime_error("no " + key + "= in: " + out);
  std::size_t end = out.find('\n', at);
  return out.substr(at + key.size() + 1, end - at - key.size() - 1);
}

// The process id a server started in `dir` wrote (0 when there is none).
inline pid_t PidIn(const std::string& dir) {
  std::ifstream in(dir + "/zk.pid");
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

// A unique directory for one server or ensemble of one test.
inline std::string ZooKeeperDir(const std::string& name) {
  return std::string(RPCBOOT_TEST_TMP) + "/" + name + "-" + std::to_string(::getpid());
}

// Stops the servers in `dirs` once this process has ended, however it ended: a shell in a session
// of its own waits for the end of a pipe that only this process holds open (close-on-exec: no
// program it starts inherits it), then runs `zookeeper.sh stop` on each directory. A server that
// was stopped already (the owner's destructor ran) is left as it is.
class StopWhenOwnerEnds {
 public:
  explicit StopWhenOwnerEnds(const std::vector<std::string>& dirs) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;  // no guard; the destructors still stop
    std::vector<std::string> argv = {"/bin/sh", "-c",
                                     "cat >/dev/null; for d in \"$@\"; do \"$0\" stop \"$d\"; done",
                                     RPCBOOT_ZOOKEEPER_SCRIPT};
    argv.insert(argv.end(), dirs.begin(), dirs.end());
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    // Nothing else of this process's (its sockets, the test runner's pipe) lives on in the shell.
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // Its own session: a signal to the owner's process group (a terminal's ^C) leaves it running.
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID);
    if (posix_spawn(&pid_, "/bin/sh", &actions, &attributes, args.data(), environ) != 0) pid_ = 0;
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[0]);
    write_end_ = fds[1];
  }
  // The owner ends normally: the shell hears the pipe close, finds the servers stopped, exits.
  ~StopWhenOwnerEnds() {
    if (write_end_ >= 0) ::close(write_end_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  StopWhenOwnerEnds(const StopWhenOwnerEnds&) = delete;
  StopWhenOwnerEnds& operator=(const StopWhenOwnerEnds&) = delete;

 private:
  pid_t pid_ = 0;
  int write_end_ = -1;
};

class ZooKeeperServer {
 public:
  explicit ZooKeeperServer(const std::string& name)
      : dir_(ZooKeeperDir(name)), stop_when_owner_ends_({dir_}) {
    RunZooKeeperScript("stop " + dir_);
    std::system(("rm -rf " + dir_).c_str());
    port_ = ValueAfter(RunZooKeeperScript("start " + dir_), "port");
  }
  // Stops the server and removes its directory (data and log): repeated runs leave nothing.
  ~ZooKeeperServer() {
    try {
      RunZooKeeperScript("stop " + dir_);
      std::system(("rm -rf " + dir_).c_str());
    } catch (...) {
    }
  }
  ZooKeeperServer(const ZooKeeperServer&) = delete;
  ZooKeeperServer& operator=(const ZooKeeperServer&) = delete;

  std::string connect() const { return "127.0.0.1:" + port_; }
  const std::string& port() const { return port_; }
  // The server's process id (0 when it is not running).
  pid_t pid() const { return PidIn(dir_); }
  void Stop() { RunZooKeeperScript("stop " + dir_); }
  // Starts again on the same port with the same data.
  void Start() { RunZooKeeperScript("start " + dir_ + " " + port_); }

 private:
  std::string dir_;
  StopWhenOwnerEnds stop_when_owner_ends_;  // destroyed after the destructor has stopped it
  std::string port_;
};

class ZooKeeperEnsemble {
 public:
  explicit ZooKeeperEnsemble(const std::string& name)
      : dir_(ZooKeeperDir(name)), stop_when_owner_ends_({dir_ + "/1", dir_ + "/2", dir_ + "/3"}) {
    std::system(("rm -rf " + dir_).c_str());
    connect_ = ValueAfter(RunZooKeeperScript("ensemble " + dir_), "connect");
  }
  ~ZooKeeperEnsemble() {
    bool stopped = true;
    for (int n = 1; n <= 3; ++n) {
      try {
        RunZooKeeperScript("stop " + dir_ + "/" + std::to_string(n));
      } catch (...) {
        stopped = false;
      }
    }
    if (stopped) std::system(("rm -rf " + dir_).c_str());
  }
  ZooKeeperEnsemble(const ZooKeeperEnsemble&) = delete;
  ZooKeeperEnsemble& operator=(const ZooKeeperEnsemble&) = delete;

  const std::string& connect() const { return connect_; }
  // The process ids of the three members (0 for one that is not running).
  std::vector<pid_t> pids() const {
    return {PidIn(dir_ + "/1"), PidIn(dir_ + "/2"), PidIn(dir_ + "/3")};
  }
  // The member (1..3) that leads, or 0.
  int Leader() const {
    for (int n = 1; n <= 3; ++n) {
      try {
        if (RunZooKeeperScript("mode " + dir_ + "/" + std::to_string(n)).find("leader") == 0)
          return n;
      } catch (...) {
      }
    }
    return 0;
  }
  void StopMember(int n) { RunZooKeeperScript("stop " + dir_ + "/" + std::to_string(n)); }
  void StartMember(int n) { RunZooKeeperScript("start " + dir_ + "/" + std::to_string(n)); }

 private:
  std::string dir_;
  StopWhenOwnerEnds stop_when_owner_ends_;
  std::string connect_;
};

// Polls `condition` every 10 ms until it holds or `timeout` passes.
inline bool Eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_DISCOVERY_ZOOKEEPER_TESTING_H_
