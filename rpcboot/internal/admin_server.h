// The admin HTTP port (admin.port): what a running process is doing, for people and for tools.
//
//   /              the status page: this instance, served and called methods with live rate,
//                  error rate and p50/p99, each client's instances, recent failed calls, the
//                  effective configuration (secrets redacted). Plain HTML; a little inline
//                  script refreshes it.
//   /status.json   the same data as JSON
//   /metrics       Prometheus text exposition (rpcboot_* and process_* families)
//   /health        200 "SERVING" while the instance serves, 503 "NOT_SERVING" otherwise
//   /health.json   {"status": "SERVING"}
//
// Owned by rpcboot::App (which fills AdminInfo on each request); internal. Serves on two
// threads of its own; Start and Stop from one thread.
#ifndef RPCBOOT_INTERNAL_ADMIN_SERVER_H_
#define RPCBOOT_INTERNAL_ADMIN_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/channel.h"

namespace rpcboot::internal {

// What the process says about itself, read on each request.
struct AdminInfo {
  std::string app, version, zone;
  bool serving = false;  // false before Start and once shutdown began
  int grpc_port = -1, thrift_port = -1;
  bool tls = false;
  std::string zookeeper;      // connect string; empty without a registry
  std::string registry_path;  // this instance's node; empty when not registering
  bool registered = false;
  bool zookeeper_connected = false;
  int64_t zookeeper_disconnected_ms = 0;
  int zookeeper_sessions = 0;
  int zookeeper_expirations = 0;
  int registrations = 0;  // times the node was written
  struct Client {
    std::string service;   // "shop.ShopService"
    std::string target;    // "zk://127.0.0.1:2181/services/shop"
    std::string protocol;  // "grpc" / "thrift"
    ChannelState state;
  };
  std::vector<Client> clients;
  std::vector<std::pair<std::string, std::string>> config;  // key, value (redacted)
};

class AdminServer {
 public:
  // `info` is read for the pages and /metrics; `serving` alone for /health, which probes ask
  // often.
  AdminServer(std::function<AdminInfo()> info, std::function<bool()> serving);
  ~AdminServer();  // Stop
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds host:port (0: a free port) and serves. The error names the address.
  absl::Status Start(const std::string& host, int port);
  int port() const;  // the bound port, -1 before Start
  void Stop();

  // The bodies of the pages, for the handlers (and for tests without HTTP).
  std::string StatusPage();
  std::string StatusJson();
  std::string Metrics();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_ADMIN_SERVER_H_
