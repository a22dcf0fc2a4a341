// Real ZooKeeper servers for tests, started and stopped through scripts/zookeeper.sh (Debian's
// jars, 127.0.0.1, free ports, minSessionTimeout 1 s). Each owns a directory under the test's
// binary directory and stops its servers, by pid, when destroyed.
#ifndef RPCBOOT_TESTS_DISCOVERY_ZOOKEEPER_TESTING_H_
#define RPCBOOT_TESTS_DISCOVERY_ZOOKEEPER_TESTING_H_

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

class ZooKeeperServer {
 public:
  explicit ZooKeeperServer(const std::string& name) : dir_(ZooKeeperDir(name)) {
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
  std::string port_;
};

class ZooKeeperEnsemble {
 public:
  explicit ZooKeeperEnsemble(const std::string& name) : dir_(ZooKeeperDir(name)) {
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
