// A process that owns one ZooKeeper server (with --ensemble, a 3-node ensemble) and does nothing
// else, for zookeeper_testing_test: prints "pids <pid> ..." once they serve, then waits to be
// killed.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "tests/discovery/zookeeper_testing.h"

int main(int argc, char** argv) {
  try {
    std::unique_ptr<rpcboot::testing::ZooKeeperServer> single;
    std::unique_ptr<rpcboot::testing::ZooKeeperEnsemble> three;
    std::string pids;
    if (argc > 1 && std::string(argv[1]) == "--ensemble") {
      three = std::make_unique<rpcboot::testing::ZooKeeperEnsemble>("owned_ensemble");
      for (pid_t pid : three->pids()) pids += " " + std::to_string(pid);
    } else {
      single = std::make_unique<rpcboot::testing::ZooKeeperServer>("owned_server");
      pids = " " + std::to_string(single->pid());
    }
    std::printf("pids%s\n", pids.c_str());
    std::fflush(stdout);
    while (true) ::pause();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zookeeper_owner: %s\n", e.what());
    return 1;
  }
}
