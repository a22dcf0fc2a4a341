// rpcboot's configuration: a YAML file, then environment variables, then command-line flags,
// each overriding the one before (docs/configuration.md lists every key).
//
//   # shop.yaml
//   app: {name: shop, version: 1.2.0}
//   server: {grpc_port: 9091, thrift_port: 9090}
//   registry: {zookeeper: "zk1:2181,zk2:2181,zk3:2181"}
//   clients:
//     order.OrderService: {protocol: thrift, load_balancer: consistent_hash}
//
//   $ RPCBOOT_SERVER_GRPC_PORT=0 ./shop --config=shop.yaml --registry.drain_ms=200
//
// Every error names the key, the value and where it came from ("server.grpc_port: 'x' from
// shop.yaml:3 is not an integer in -1..65535"). Plain values; thread-compatible.
#ifndef RPCBOOT_CONFIG_H_
#define RPCBOOT_CONFIG_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/client.h"
#include "rpcboot/migration.h"
#include "rpcboot/server.h"
#include "rpcboot/tracing.h"

namespace rpcboot {

// How this process calls one service (`clients.<package.Service>.*`).
struct ClientConfig {
  // The application whose instances serve it (its registry name); default: the service's
  // package ("shop" for shop.ShopService).
  std::string app;
  // Where the instances are: empty for this process's registry (registry.zookeeper), or any
  // address MakeChannel takes ("static://h:p,h:p", "zk://h:p/services/shop", "h:p").
  std::string address;
  Protocol protocol = Protocol::kGrpc;
  ChannelOptions channel;  // load_balancer, timeout_ms, max_attempts, thrift_format, tls.*
  // A file whose first line is the bearer token sent with every call (read at load into
  // channel.bearer_token).
  std::string token_file;
  // Moving between an in-process implementation (App::Local) and the service: the mode, the
  // shadow settings and fallback_to_local (rpcboot/migration.h). mode_set: `mode` was given.
  MigrationOptions migration;
  bool mode_set = false;
};

// The application's own keys: `settings.<key>` in the config file (any mapping under
// `settings:`) or `--settings.<key>=<value>` on the command line, a flag over the file. rpcboot
// only carries them; the application reads each with a typed getter, which names the key, the
// value and where it came from when the value does not fit:
//
//   absl::StatusOr<int64_t> shards = app->config().settings.Int("store.shards", 8, 1, 64);
//   // "settings.store.shards: 'x' from order.yaml:21 is not an integer in 1..64"
//
// A key never read by the time App::Start runs is logged as a warning (a misspelt key would
// otherwise be ignored). Not from the environment: RPCBOOT_<KEY> covers rpcboot's own keys.
// Getters are thread-safe; Set is for loading.
class Settings {
 public:
  // The value of settings.<key>, or `fallback` when the key is not set.
  std::string String(std::string_view key, std::string fallback) const;
  // An integer in min..max; `fallback` when unset.
  absl::StatusOr<int64_t> Int(std::string_view key, int64_t fallback, int64_t min,
                              int64_t max) const;
  // true/false, yes/no, on/off, 1/0; `fallback` when unset.
  absl::StatusOr<bool> Bool(std::string_view key, bool fallback) const;
  bool Has(std::string_view key) const;

  // `key` is the part after "settings."; a later Set of a key replaces it.
  void Set(const std::string& key, std::string value, std::string source);
  // Every key with its value (for the status page: a key naming a password, secret, token or
  // credential shows "(redacted)").
  std::vector<std::pair<std::string, std::string>> Shown() const;
  // "settings.<key> from <source>" of each key no getter has asked for yet.
  std::vector<std::string> Unread() const;

 private:
  struct Value {
    Value(std::string v, std::string s) : value(std::move(v)), source(std::move(s)) {}
    Value(const Value& other) : value(other.value), source(other.source), read(other.read.load()) {}
    Value& operator=(const Value& other) {
      value = other.value;
      source = other.source;
      read = other.read.load();
      return *this;
    }
    std::string value;
    std::string source;  // "order.yaml:21", "command line --settings.store.path"
    mutable std::atomic<bool> read{false};
  };
  const Value* Find(std::string_view key) const;

  std::map<std::string, Value, std::less<>> values_;
};

struct AppConfig {
  std::string name;  // app.name: the registry name (required)
  std::string version = "1.0.0";
  std::string zone;
  ServerOptions server;        // server.*
  std::string advertise_host;  // the address written in the registry; empty: detected
  int weight = 100;            // rpcboot.weight in the registry

  struct Registry {
    std::string zookeeper;  // connect string, with an optional chroot; empty: no registry
    std::string base_path = "/services";
    std::chrono::milliseconds session_timeout{std::chrono::seconds(10)};
    std::string digest;  // "user:password": digest ACL on the instance node
    // Start fails when ZooKeeper cannot be reached within connect_timeout; otherwise the app
    // serves anyway and registers once it can.
    bool fail_fast = false;
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
    // On shutdown: time between deleting the node and closing the ports, so that clients' watches
    // fire and they stop sending new calls first.
    std::chrono::milliseconds drain{std::chrono::seconds(1)};
    // A snapshot of each watched application's instances is kept here and served when
    // ZooKeeper cannot be reached at start (never over a live list). Empty: no snapshots.
    std::string snapshot_dir;
    // Follow watched applications with persistent recursive watches (ZooKeeper 3.6+, on a
    // second connection): one event and one read per changed instance. Off: one-shot child
    // watches, which list every instance again after each change (used anyway against an
    // older server).
    bool recursive_watch = true;
  } registry;

  std::map<std::string, ClientConfig> clients;  // by service full name
  // client.tls.*, client.token_file: for every client that does not set its own (already
  // applied to `clients`; App applies them to services without an entry).
  ClientConfig client_defaults;

  // migration.*: the flag nodes that switch clients' modes while they run (docs/migration.md):
  // <flag_root>/<app.name>/<service>, watched when flags is on and there is a registry.
  struct Migration {
    std::string flag_root = "/rpcboot/migration";
    bool flags = true;
  } migration;

  // The admin HTTP port (status page, /metrics, /health); port -1: off, 0: a free port.
  struct Admin {
    std::string host = "127.0.0.1";
    int port = -1;
  } admin;
  bool metrics_enabled = true;  // metrics.enabled: count calls (for /metrics and the page)
  // tracing.*: W3C trace context across calls, sampling, OTLP export (rpcboot/tracing.h);
  // service_name is app.name.
  TracingOptions tracing;
  Settings settings;  // settings.*: the application's own keys
};

// Reads `args` (argv without the program name): --config=FILE (or --config FILE), then every
// --<key>=<value>; the environment (RPCBOOT_<KEY>, as in RPCBOOT_SERVER_GRPC_PORT, for the
// app/server/registry keys) applies between the file and the flags. `env` defaults to the
// process environment.
absl::StatusOr<AppConfig> LoadConfig(const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>* env = nullptr);

// Parses YAML text as if it were a file called `source`, without environment or flags.
absl::StatusOr<AppConfig> ParseConfig(const std::string& yaml, const std::string& source);

// Every key with the value `config` holds, as --help would show it, clients' keys included;
// secrets redacted (the password of registry.digest). For the status page.
std::vector<std::pair<std::string, std::string>> EffectiveConfig(const AppConfig& config);

// Every key with its default and meaning: what --help prints.
std::string ConfigHelp();

// True when `args` (argv without the program name) hold --help or -h.
bool WantsHelp(const std::vector<std::string>& args);

}  // namespace rpcboot

#endif  // RPCBOOT_CONFIG_H_
