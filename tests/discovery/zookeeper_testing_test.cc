// The test ZooKeeper servers end with the process that started them, however it ends: a test
// that crashes or is killed by the test runner leaves no server behind.
#include "tests/discovery/zookeeper_testing.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/discovery/process_testing.h"

namespace rpcboot::testing {
namespace {

// Whether process `pid` runs (a zombie does not).
bool Running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  std::size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// The pids an owner printed ("pids 123 456"), once it has.
std::vector<pid_t> OwnedPids(const std::string& log) {
  std::vector<pid_t> pids;
  Eventually(
      [&] {
        std::ifstream in(log);
        std::string word;
        if (!(in >> word) || word != "pids") return false;
        for (long pid; in >> pid;) pids.push_back(static_cast<pid_t>(pid));
        return !pids.empty();
      },
      std::chrono::seconds(60));
  return pids;
}

void ExpectServersEndWithOwner(const std::vector<std::string>& argv, int signal) {
  std::string log =
      std::string(RPCBOOT_TEST_TMP) + "/zookeeper_owner-" + std::to_string(::getpid()) + ".log";
  std::remove(log.c_str());
  ChildProcess owner(argv, log);
  std::vector<pid_t> servers = OwnedPids(log);
  ASSERT_FALSE(servers.empty()) << "the owner printed no pids; its log: " << log;
  for (pid_t pid : servers) ASSERT_TRUE(Running(pid)) << pid;
  owner.Signal(signal);
  EXPECT_EQ(owner.Wait(), 128 + signal);
  for (pid_t pid : servers) {
    EXPECT_TRUE(Eventually([&] { return !Running(pid); }, std::chrono::seconds(30)))
        << "ZooKeeper (pid " << pid << ") still runs after its owner was killed";
    if (Running(pid)) ::kill(pid, SIGKILL);
  }
}

TEST(ZooKeeperTesting, ServerStopsWhenItsOwnerIsKilled) {
  ExpectServersEndWithOwner({RPCBOOT_ZOOKEEPER_OWNER}, SIGKILL);
}

TEST(ZooKeeperTesting, EnsembleStopsWhenItsOwnerCrashes) {
  ExpectServersEndWithOwner({RPCBOOT_ZOOKEEPER_OWNER, "--ensemble"}, SIGABRT);
}

}  // namespace
}  // namespace rpcboot::testing
