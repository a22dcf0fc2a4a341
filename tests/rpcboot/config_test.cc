// Configuration: YAML, then environment, then flags; every error names key, value and source.
#include "rpcboot/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

#include "rpcboot/app.h"
#include "rpcboot/base/log.h"

namespace rpcboot {
namespace {

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = "/tmp/rpcboot_config_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

const std::map<std::string, std::string> kNoEnv;

TEST(Config, FileThenEnvironmentThenFlags) {
  std::string file = WriteFile("full.yaml", R"(
app: {name: shop, version: 2.1.0, zone: a}
server:
  host: 127.0.0.1
  grpc_port: 9091
  thrift_port: 9090
  shutdown_grace_ms: 2500
  thrift_io: uring
  grpc_server: grpcpp
  grpc_compression: gzip
  thrift_compression: zlib
  thrift_inflated_quota: 1048576
  weight: 300
registry:
  zookeeper: "127.0.0.1:2181,127.0.0.1:2182/apps"
  session_timeout_ms: 4000
  drain_ms: 200
  fail_fast: yes
  recursive_watch: false
clients:
  order.OrderService:
    protocol: thrift
    load_balancer: consistent_hash
    grpc_compression: gzip
    grpc_keepalive_time_ms: 30000
    timeout_ms: 800
    thrift_format: binary
    thrift_compression: zlib
  shop.ShopService:
    address: static://127.0.0.1:1,127.0.0.1:2
)");
  std::map<std::string, std::string> env = {{"RPCBOOT_SERVER_GRPC_PORT", "0"},
                                            {"RPCBOOT_SERVER_THRIFT_PORT", "7000"}};
  absl::StatusOr<AppConfig> c =
      LoadConfig({"--config=" + file, "--server.thrift_port=-1", "--registry.drain_ms=50"}, &env);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "shop");
  EXPECT_EQ(c->version, "2.1.0");
  EXPECT_EQ(c->zone, "a");
  EXPECT_EQ(c->server.host, "127.0.0.1");
  EXPECT_EQ(c->server.grpc_port, 0) << "environment over file";
  EXPECT_EQ(c->server.thrift_port, -1) << "flag over environment";
  EXPECT_EQ(c->server.shutdown_grace, std::chrono::milliseconds(2500));
  EXPECT_EQ(c->server.thrift_io, ServerOptions::ThriftIo::kUring);
  EXPECT_EQ(c->server.grpc_server, ServerOptions::GrpcServer::kGrpcpp);
  EXPECT_EQ(c->server.grpc_compression, ServerOptions::GrpcCompression::kGzip);
  EXPECT_EQ(c->server.thrift_compression, ServerOptions::ThriftCompression::kZlib);
  EXPECT_EQ(c->server.thrift_inflated_quota, 1048576u);
  EXPECT_EQ(c->weight, 300);
  EXPECT_EQ(c->registry.zookeeper, "127.0.0.1:2181,127.0.0.1:2182/apps");
  EXPECT_EQ(c->registry.session_timeout, std::chrono::milliseconds(4000));
  EXPECT_EQ(c->registry.drain, std::chrono::milliseconds(50));
  EXPECT_TRUE(c->registry.fail_fast);
  EXPECT_FALSE(c->registry.recursive_watch);
  EXPECT_EQ(c->registry.base_path, "/services");
  const ClientConfig& order = c->clients.at("order.OrderService");
  EXPECT_EQ(order.app, "order") << "the package by default";
  EXPECT_EQ(order.protocol, Protocol::kThrift);
  EXPECT_EQ(order.channel.load_balancer, "consistent_hash");
  EXPECT_EQ(order.channel.grpc_compression, GrpcCompression::kGzip);
  EXPECT_EQ(order.channel.grpc_keepalive_time, std::chrono::milliseconds(30000));
  EXPECT_EQ(order.channel.grpc_keepalive_timeout, std::chrono::seconds(20)) << "the default";
  EXPECT_EQ(c->clients.at("shop.ShopService").channel.grpc_compression, GrpcCompression::kOff);
  EXPECT_EQ(order.channel.default_timeout, std::chrono::milliseconds(800));
  EXPECT_EQ(order.channel.thrift_format, WireFormat::kThriftBinary);
  EXPECT_EQ(order.channel.thrift_compression, ThriftCompression::kZlib);
  EXPECT_EQ(c->clients.at("shop.ShopService").channel.thrift_compression, ThriftCompression::kOff)
      << "the default";
  EXPECT_EQ(c->clients.at("shop.ShopService").address, "static://127.0.0.1:1,127.0.0.1:2");
}

TEST(Config, DefaultsWithOnlyAName) {
  absl::StatusOr<AppConfig> c = LoadConfig({"--app.name=shop"}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.grpc_port, -1);
  EXPECT_EQ(c->server.thrift_port, -1);
  EXPECT_EQ(c->registry.zookeeper, "");
  EXPECT_EQ(c->registry.session_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c->registry.drain, std::chrono::seconds(1));
  EXPECT_FALSE(c->registry.fail_fast);
  EXPECT_TRUE(c->registry.recursive_watch);
}

std::string Error(const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = kNoEnv) {
  absl::StatusOr<AppConfig> c = LoadConfig(args, &env);
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(Config, ErrorsNameTheKeyTheValueAndWhereItCameFrom) {
  std::string file = WriteFile("bad_port.yaml", "app:\n  name: shop\nserver:\n  grpc_port: http\n");
  EXPECT_EQ(Error({"--config=" + file}),
            "server.grpc_port: 'http' from " + file + ":4 is not an integer in -1..65535");
  EXPECT_EQ(Error({"--app.name=shop"}, {{"RPCBOOT_SERVER_THRIFT_PORT", "70000"}}),
            "server.thrift_port: '70000' from environment RPCBOOT_SERVER_THRIFT_PORT is not an "
            "integer in -1..65535");
  EXPECT_EQ(Error({"--app.name=shop", "--server.thrift_io=kqueue"}),
            "server.thrift_io: 'kqueue' from command line --server.thrift_io is not epoll or "
            "uring");
  EXPECT_EQ(Error({"--app.name=shop", "--server.grpc_server=netty"}),
            "server.grpc_server: 'netty' from command line --server.grpc_server is not grpcpp or "
            "native");
  EXPECT_EQ(Error({"--app.name=shop", "--server.grpc_compression=zstd"}),
            "server.grpc_compression: 'zstd' from command line --server.grpc_compression is not "
            "off, accept or gzip");
  EXPECT_EQ(Error({"--app.name=shop", "--server.thrift_compression=gzip"}),
            "server.thrift_compression: 'gzip' from command line --server.thrift_compression is "
            "not off or zlib");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.grpc_compression=br"}),
            "clients.shop.ShopService.grpc_compression: 'br' from command line "
            "--clients.shop.ShopService.grpc_compression is not off or gzip");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.thrift_compression=gzip"}),
            "clients.shop.ShopService.thrift_compression: 'gzip' from command line "
            "--clients.shop.ShopService.thrift_compression is not off or zlib");
  EXPECT_EQ(Error({"--app.name=shop", "--registry.fail_fast=maybe"}),
            "registry.fail_fast: 'maybe' from command line --registry.fail_fast is not true or "
            "false");
  EXPECT_EQ(Error({"--app.name=shop", "--registry.zookeeper=zk1"}),
            "registry.zookeeper: 'zk1' from command line --registry.zookeeper is not a connect "
            "string: ZooKeeper connect string 'zk1': 'zk1' is not host:port (port 0-65535)");
  EXPECT_EQ(Error({"--app.name=shop", "--registry.base_path=services/"}),
            "registry.base_path: 'services/' from command line --registry.base_path is not a "
            "ZooKeeper path (starts with '/', no trailing or double '/')");
  EXPECT_EQ(Error({"--app.name=shop", "--registry.snapshot_dir=/dev/null"}),
            "registry.snapshot_dir: '/dev/null' from command line --registry.snapshot_dir exists "
            "and is not a directory");
  EXPECT_EQ(Error({"--app.name=shop", "--server.grcp_port=1"}),
            "unknown key 'server.grcp_port' from command line --server.grcp_port (rpcboot's keys: "
            "--help or docs/configuration.md; the application's own go under settings.)");
  EXPECT_EQ(
      Error({"--app.name=shop", "--clients.shop.ShopService.protocl=grpc"}),
      "unknown key 'clients.shop.ShopService.protocl' from command line "
      "--clients.shop.ShopService.protocl: client keys are "
      "clients.<package.Service>.<field>, fields app, address, protocol, grpc_client, "
      "grpc_compression, grpc_keepalive_*, load_balancer, timeout_ms, max_attempts, subset_size, "
      "subset_position, "
      "thrift_format, thrift_compression, "
      "tls.*, "
      "token_file, max_in_flight, outlier.*, circuit.*, retry_budget.*, mode, shadow_* (--help "
      "lists them)");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.subset_position=10/10"}),
            "clients.shop.ShopService.subset_position: '10/10' from command line "
            "--clients.shop.ShopService.subset_position is not index/count with 0 <= index < "
            "count (as in 3/10)");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.foreign_instances=maybe"}),
            "clients.shop.ShopService.foreign_instances: 'maybe' from command line "
            "--clients.shop.ShopService.foreign_instances is not true or false");
  {
    absl::StatusOr<AppConfig> foreign = LoadConfig(
        {"--app.name=order", "--clients.shop.ShopService.foreign_instances=true"}, &kNoEnv);
    ASSERT_TRUE(foreign.ok()) << foreign.status();
    EXPECT_TRUE(foreign->clients.at("shop.ShopService").channel.call_foreign_instances);
  }
  {
    absl::StatusOr<AppConfig> mux = LoadConfig(
        {"--app.name=order", "--clients.shop.ShopService.thrift_multiplexed=true"}, &kNoEnv);
    ASSERT_TRUE(mux.ok()) << mux.status();
    EXPECT_TRUE(mux->clients.at("shop.ShopService").channel.thrift_multiplexed);
  }
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.thrift_multiplexed=2"}),
            "clients.shop.ShopService.thrift_multiplexed: '2' from command line "
            "--clients.shop.ShopService.thrift_multiplexed is not true or false");
  {
    absl::StatusOr<AppConfig> native = LoadConfig({"--app.name=order"}, &kNoEnv);
    ASSERT_TRUE(native.ok()) << native.status();
    EXPECT_EQ(ChannelOptions().grpc_client, GrpcClient::kNative);  // the default
    absl::StatusOr<AppConfig> grpcpp =
        LoadConfig({"--app.name=order", "--clients.shop.ShopService.grpc_client=grpcpp"}, &kNoEnv);
    ASSERT_TRUE(grpcpp.ok()) << grpcpp.status();
    EXPECT_EQ(grpcpp->clients.at("shop.ShopService").channel.grpc_client, GrpcClient::kGrpcpp);
  }
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.grpc_client=quic"}),
            "clients.shop.ShopService.grpc_client: 'quic' from command line "
            "--clients.shop.ShopService.grpc_client is not grpcpp or native");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.protocol=http"}),
            "clients.shop.ShopService.protocol: 'http' from command line "
            "--clients.shop.ShopService.protocol is not grpc or thrift");
  EXPECT_EQ(Error({"serve"}),
            "command line: 'serve' is not --config=FILE or --<key>=<value> (as in "
            "--server.grpc_port=9091)");
  EXPECT_EQ(Error({}),
            "app.name is missing: set it in the config file (app: {name: shop}), as "
            "RPCBOOT_APP_NAME or as --app.name=shop");
  EXPECT_EQ(Error({"--config=/nonexistent/shop.yaml"}),
            "config file /nonexistent/shop.yaml cannot be read");
  // A script's unset variable (--config=$CONFIG) once meant no file and then "app.name is
  // missing"; it is named.
  EXPECT_EQ(Error({"--app.name=shop", "--config="}), "command line: --config names no file");
  EXPECT_EQ(Error({"--app.name=shop", "--config", ""}), "command line: --config names no file");
}

TEST(Config, TlsAndAuthKeys) {
  std::string cert = WriteFile("shop.crt", "-----BEGIN CERTIFICATE-----\n");
  std::string key = WriteFile("shop.key", "-----BEGIN PRIVATE KEY-----\n");
  std::string token = WriteFile("order.token", "  s3cret \nignored\n");
  std::string yaml =
      "app: {name: order}\n"
      "server:\n"
      "  tls: {cert_file: " +
      cert + ", key_file: " + key + ", ca_file: " + cert +
      ", require_client_cert: true}\n"
      "  auth: {require_identity: true, allow: 'order shop.ShopService/*, * */Now'}\n"
      "client: {tls: {ca_file: " +
      cert + "}, token_file: " + token +
      "}\n"
      "clients:\n"
      "  shop.ShopService: {tls: {server_name: shop.internal}}\n"
      "  pay.PayService: {tls: {cert_file: " +
      cert + ", key_file: " + key + "}}\n";
  absl::StatusOr<AppConfig> c = LoadConfig({"--config=" + WriteFile("tls.yaml", yaml)}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server.tls.cert_file, cert);
  EXPECT_TRUE(c->server.tls.require_client_cert);
  EXPECT_TRUE(c->server.auth.require_identity);
  EXPECT_EQ(c->server.auth.allow,
            (std::vector<std::string>{"order shop.ShopService/*", "* */Now"}));
  const ChannelOptions& shop = c->clients.at("shop.ShopService").channel;
  EXPECT_TRUE(shop.tls.enabled);
  EXPECT_EQ(shop.tls.server_name, "shop.internal");
  EXPECT_EQ(shop.tls.ca_file, cert) << "from client.tls";
  EXPECT_EQ(shop.bearer_token, "s3cret") << "from client.token_file, its first line, trimmed";
  const ChannelOptions& pay = c->clients.at("pay.PayService").channel;
  EXPECT_EQ(pay.tls.cert_file, cert);
  EXPECT_TRUE(c->client_defaults.channel.tls.enabled) << "a CA file turns TLS on";
  EXPECT_EQ(c->client_defaults.channel.bearer_token, "s3cret");

  EXPECT_EQ(Error({"--app.name=shop", "--server.tls.cert_file=/nonexistent.crt"}),
            "server.tls.cert_file: '/nonexistent.crt' from command line --server.tls.cert_file "
            "cannot be read");
  EXPECT_EQ(Error({"--app.name=shop", "--server.tls.cert_file=" + cert}),
            "server.tls: cert_file and key_file go together (both set for TLS, neither for "
            "plaintext)");
  EXPECT_EQ(Error({"--app.name=shop", "--server.tls.require_client_cert=true"}),
            "server.tls.ca_file / require_client_cert need server.tls.cert_file and key_file: "
            "client certificates are asked for only over TLS");
  EXPECT_EQ(Error({"--app.name=shop", "--server.tls.cert_file=" + cert,
                   "--server.tls.key_file=" + key, "--server.tls.require_client_cert=true"}),
            "server.tls.require_client_cert needs server.tls.ca_file: the CAs that sign the "
            "client certificates");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.tls.cert_file=" + cert}),
            "clients.shop.ShopService.tls: cert_file and key_file go together (mutual TLS needs "
            "both)");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.tls.ca_file=/tmp"}),
            "clients.shop.ShopService.tls.ca_file: '/tmp' from command line "
            "--clients.shop.ShopService.tls.ca_file is a directory, not a file");
  EXPECT_EQ(
      Error({"--app.name=shop", "--client.token_file=" + WriteFile("empty.token", "\n")}),
      "client.token_file: " + WriteFile("empty.token", "\n") + " holds no token on its first line");
  EXPECT_EQ(Error({"--app.name=shop", "--server.auth.allow=order"}),
            "server.auth.allow: 'order' is not '<principal> <package.Service>/<Method>' (as in "
            "'order shop.ShopService/*')");
  std::string tokens = WriteFile("tokens.txt", "order s3cret\nops\n");
  EXPECT_EQ(Error({"--app.name=shop", "--server.auth.tokens_file=" + tokens}),
            "server.auth.tokens_file: " + tokens + ":2 is not '<principal> <token>'");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.tls.enabled=sure"}),
            "clients.shop.ShopService.tls.enabled: 'sure' from command line "
            "--clients.shop.ShopService.tls.enabled is not true or false");
}

TEST(Config, ResilienceKeys) {
  absl::StatusOr<AppConfig> c =
      LoadConfig({"--app.name=order", "--clients.shop.ShopService.max_in_flight=32",
                  "--clients.shop.ShopService.outlier.consecutive_failures=3",
                  "--clients.shop.ShopService.outlier.failure_rate=0.25",
                  "--clients.shop.ShopService.outlier.max_ejection_ms=4000",
                  "--clients.shop.ShopService.circuit.enabled=false",
                  "--clients.shop.ShopService.retry_budget.ratio=0.2"},
                 &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  const ChannelOptions& shop = c->clients.at("shop.ShopService").channel;
  EXPECT_EQ(shop.max_in_flight, 32);
  EXPECT_EQ(shop.outlier.consecutive_failures, 3);
  EXPECT_DOUBLE_EQ(shop.outlier.failure_rate, 0.25);
  EXPECT_EQ(shop.outlier.max_ejection, std::chrono::milliseconds(4000));
  EXPECT_FALSE(shop.circuit.enabled);
  EXPECT_DOUBLE_EQ(shop.retry_budget.ratio, 0.2);
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.outlier.failure_rate=2"}),
            "clients.shop.ShopService.outlier.failure_rate: '2' from command line "
            "--clients.shop.ShopService.outlier.failure_rate is not a number in 0..1");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.circuit.open_ms=-5"}),
            "clients.shop.ShopService.circuit.open_ms: '-5' from command line "
            "--clients.shop.ShopService.circuit.open_ms is not an integer in 1..86400000");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.grpc_keepalive_timeout_ms=0"}),
            "clients.shop.ShopService.grpc_keepalive_timeout_ms: '0' from command line "
            "--clients.shop.ShopService.grpc_keepalive_timeout_ms is not an integer in "
            "1..86400000");
}

TEST(Config, MigrationKeys) {
  absl::StatusOr<AppConfig> c = LoadConfig(
      {"--app.name=order", "--clients.shop.ShopService.mode=percent:25",
       "--clients.shop.ShopService.shadow_percent=10",
       "--clients.shop.ShopService.shadow_max_in_flight=3",
       "--clients.shop.ShopService.shadow_timeout_ms=250",
       "--clients.shop.ShopService.shadow_ignore_fields=served_by, GetShop:menu.name",
       "--clients.shop.ShopService.shadow_methods=Reserve",
       "--clients.shop.ShopService.fallback_to_local=true", "--migration.flag_root=/flags"},
      &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  const ClientConfig& shop = c->clients.at("shop.ShopService");
  EXPECT_TRUE(shop.mode_set);
  EXPECT_EQ(shop.migration.mode.ToString(), "percent:25");
  EXPECT_DOUBLE_EQ(shop.migration.shadow.percent, 10);
  EXPECT_EQ(shop.migration.shadow.max_in_flight, 3);
  EXPECT_EQ(shop.migration.shadow.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(shop.migration.shadow.ignore_fields,
            (std::vector<std::string>{"served_by", "GetShop:menu.name"}));
  EXPECT_EQ(shop.migration.shadow.methods, (std::vector<std::string>{"Reserve"}));
  EXPECT_TRUE(shop.migration.fallback_to_local);
  EXPECT_EQ(c->migration.flag_root, "/flags");
  // shadow_max_in_flight must not be read as max_in_flight of a service "shop.ShopService.shadow".
  EXPECT_EQ(c->clients.count("shop.ShopService.shadow"), 0u);
  EXPECT_EQ(shop.channel.max_in_flight, 0);

  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.mode=sideways"}),
            "clients.shop.ShopService.mode: 'sideways' from command line "
            "--clients.shop.ShopService.mode is not a mode (local, remote, shadow, "
            "shadow:remote, percent:N)");
  EXPECT_EQ(Error({"--app.name=shop", "--clients.shop.ShopService.shadow_percent=150"}),
            "clients.shop.ShopService.shadow_percent: '150' from command line "
            "--clients.shop.ShopService.shadow_percent is not a number in 0..100");
  EXPECT_NE(Error({"--app.name=shop", "--migration.flag_root=flags"}).find("migration.flag_root"),
            std::string::npos);
  // A client that starts local needs no registry yet; one that starts remote does.
  absl::StatusOr<AppConfig> local_only =
      LoadConfig({"--app.name=order", "--clients.shop.ShopService.mode=local"}, &kNoEnv);
  ASSERT_TRUE(local_only.ok());
  EXPECT_TRUE(App::FromConfig(*local_only).ok());
  absl::StatusOr<AppConfig> remote =
      LoadConfig({"--app.name=order", "--clients.shop.ShopService.mode=remote"}, &kNoEnv);
  ASSERT_TRUE(remote.ok());
  EXPECT_FALSE(App::FromConfig(*remote).ok());
}

TEST(Config, AdminAndMetricsKeys) {
  absl::StatusOr<AppConfig> c = ParseConfig("app: {name: shop}\n", "none.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin.port, -1) << "off unless asked for";
  EXPECT_EQ(c->admin.host, "127.0.0.1") << "operators only, unless opened";
  EXPECT_TRUE(c->metrics_enabled);
  c = ParseConfig(
      "app: {name: shop}\nadmin: {port: 9100, host: 0.0.0.0}\nmetrics: {enabled: off}\n",
      "admin.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->admin.port, 9100);
  EXPECT_EQ(c->admin.host, "0.0.0.0");
  EXPECT_FALSE(c->metrics_enabled);
  for (const auto& [yaml, wanted] : std::vector<std::pair<std::string, std::string>>{
           {"admin: {port: 70000}", "admin.port: '70000' from bad.yaml:2"},
           {"admin: {port: http}", "admin.port: 'http' from bad.yaml:2 is not an integer"},
           {"admin: {host: \"\"}", "admin.host: '' from bad.yaml:2 is empty"},
           {"metrics: {enabled: maybe}", "metrics.enabled: 'maybe' from bad.yaml:2 is not true"}}) {
    absl::StatusOr<AppConfig> bad = ParseConfig("app: {name: shop}\n" + yaml + "\n", "bad.yaml");
    ASSERT_FALSE(bad.ok()) << yaml;
    EXPECT_NE(bad.status().message().find(wanted), absl::string_view::npos) << bad.status();
  }
}

TEST(Config, TheEffectiveConfigurationNeverShowsTheRegistryPassword) {
  absl::StatusOr<AppConfig> c = ParseConfig(
      "app: {name: shop}\nregistry: {digest: \"ops:pa55word\"}\n"
      "clients:\n  pay.PayService: {timeout_ms: 750}\n",
      "secret.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  std::map<std::string, std::string> shown;
  for (const auto& [key, value] : EffectiveConfig(*c)) {
    EXPECT_EQ(value.find("pa55word"), std::string::npos) << key;
    shown[key] = value;
  }
  EXPECT_EQ(shown["registry.digest"], "ops:(redacted)");
  EXPECT_EQ(shown["clients.pay.PayService.timeout_ms"], "750");
  EXPECT_EQ(shown["app.name"], "shop");
  EXPECT_EQ(c->registry.digest, "ops:pa55word") << "the config itself keeps it";
}

TEST(Config, FilesThatAreNotTheRightShape) {
  std::string not_yaml = WriteFile("not_yaml.yaml", "app: {name: shop\nserver: [\n");
  std::string message = Error({"--config=" + not_yaml});
  EXPECT_EQ(message.rfind(not_yaml + ":", 0), 0u) << message;
  EXPECT_NE(message.find(": not YAML: "), std::string::npos) << message;

  std::string list = WriteFile("list.yaml", "app:\n  name: [shop, order]\n");
  EXPECT_EQ(Error({"--config=" + list}),
            "app.name: a list from " + list + ":2 where a single value belongs");

  std::string scalar = WriteFile("scalar.yaml", "just text\n");
  EXPECT_EQ(Error({"--config=" + scalar}),
            scalar + ": the top level must be a mapping (app:, server:, ...)");
  EXPECT_EQ(
      ParseConfig("app: {name: shop}\nregistry: {drain_ms: -5}\n", "inline").status().message(),
      "registry.drain_ms: '-5' from inline:2 is not an integer in 0..86400000");
}

// Aliases are YAML's own; a file can make them contain themselves or multiply a thousandfold
// per line. Either ends in an error naming the file, not a process that hangs or fills memory.
TEST(Config, AliasesThatNestIntoThemselvesOrMultiplyAreRefused) {
  std::string cycle = WriteFile("cycle.yaml", "app: {name: shop}\nserver: &a {weight: *a}\n");
  std::string message = Error({"--config=" + cycle});
  EXPECT_EQ(message.rfind(cycle + ":2: mappings nested more than 16 deep under 'server.weight'", 0),
            0u)
      << message;

  std::string laughs =
      "app: {name: shop}\nl0: &l0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1}\n";
  for (int i = 1; i < 9; ++i) {
    laughs += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " {";
    for (int j = 0; j < 8; ++j) {
      laughs += (j ? ", k" : "k") + std::to_string(j) + ": *l" + std::to_string(i - 1);
    }
    laughs += "}\n";
  }
  // 8^9 (134 million) settings if expanded.
  std::string multiply = WriteFile("laughs.yaml", laughs);
  message = Error({"--config=" + multiply});
  EXPECT_NE(message.find("more than 10000 settings (aliases that multiply?)"), std::string::npos)
      << message;
  EXPECT_EQ(message.rfind(multiply + ":", 0), 0u) << message;

  // Nesting written out by hand is refused the same way, and an honest deep key still reads.
  std::string deep = "app: {name: shop}\nx: ";
  for (int i = 0; i < 40; ++i) deep += "{k: ";
  deep += "1" + std::string(40, '}') + "\n";
  message = Error({"--config=" + WriteFile("deep.yaml", deep)});
  EXPECT_NE(message.find("mappings nested more than 16 deep under 'x.k'"), std::string::npos)
      << message;
  std::string brackets = WriteFile(
      "brackets.yaml", "x: " + std::string(100000, '[') + std::string(100000, ']') + "\n");
  message = Error({"--config=" + brackets});
  EXPECT_EQ(message.rfind(brackets + ":1:", 0), 0u) << message;
  EXPECT_NE(message.find(": not YAML: nested "), std::string::npos) << message;
  std::string tls = WriteFile("nested_client.yaml",
                              "app: {name: order}\nclients:\n  shop.ShopService:\n    tls:\n"
                              "      enabled: true\n");
  absl::StatusOr<AppConfig> c = LoadConfig({"--config=" + tls}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->clients.at("shop.ShopService").channel.tls.enabled);
}

// Reading is bounded: a device or a log given as the config file is an error, not a process
// that reads until memory runs out.
TEST(Config, AConfigFileIsReadUpToFourMebibytes) {
  EXPECT_EQ(Error({"--config=/dev/zero"}), "config file /dev/zero is larger than 4 MiB");
  std::string big = WriteFile("big.yaml", "app: {name: shop}\n# " + std::string(4 << 20, 'x'));
  EXPECT_EQ(Error({"--config=" + big}), "config file " + big + " is larger than 4 MiB");
  std::string fits = WriteFile("fits.yaml", "app: {name: shop}\n# " + std::string(4 << 19, 'x'));
  absl::StatusOr<AppConfig> c = LoadConfig({"--config=" + fits}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "shop");
  std::filesystem::remove(big);
  std::filesystem::remove(fits);
}

// So is every file a setting names: a token file, the server's tokens file.
TEST(Config, TokenFilesAreReadWithABound) {
  EXPECT_EQ(Error({"--app.name=shop", "--client.token_file=/dev/zero"}),
            "client.token_file: /dev/zero is larger than 64 KiB");
  EXPECT_EQ(Error({"--app.name=shop", "--server.auth.tokens_file=/dev/zero"}),
            "server.auth.tokens_file: /dev/zero is larger than 16 MiB");
  std::string token = WriteFile("long.token", "s3cret\n" + std::string(64 << 10, '#'));
  EXPECT_EQ(Error({"--app.name=shop", "--client.token_file=" + token}),
            "client.token_file: " + token + " is larger than 64 KiB");
  std::string fits = WriteFile("fits.token", "s3cret\n" + std::string(60 << 10, '#'));
  absl::StatusOr<AppConfig> c =
      LoadConfig({"--app.name=shop", "--client.token_file=" + fits}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->client_defaults.channel.bearer_token, "s3cret");
  std::filesystem::remove(token);
  std::filesystem::remove(fits);
}

TEST(Config, HelpListsEveryKey) {
  std::string help = ConfigHelp();
  for (const char* key : {"app.name",
                          "app.version",
                          "app.zone",
                          "server.host",
                          "server.advertise_host",
                          "server.grpc_port",
                          "server.thrift_port",
                          "server.handler_threads",
                          "server.max_message_bytes",
                          "server.idle_timeout_ms",
                          "server.shutdown_grace_ms",
                          "server.weight",
                          "registry.zookeeper",
                          "registry.base_path",
                          "registry.session_timeout_ms",
                          "registry.digest",
                          "registry.fail_fast",
                          "registry.connect_timeout_ms",
                          "registry.drain_ms",
                          "registry.snapshot_dir",
                          "server.grpc_max_unsent_bytes",
                          "server.grpc_memory_quota",
                          "server.thrift_io",
                          "server.grpc_server",
                          "server.grpc_compression",
                          "server.thrift_compression",
                          "server.thrift_inflated_quota",
                          "RPCBOOT_SERVER_GRPC_PORT",
                          "load_balancer",
                          "subset_size",
                          "subset_position",
                          "thrift_format"}) {
    EXPECT_NE(help.find(key), std::string::npos) << key;
  }
}

TEST(Config, HelpShowsTheDefaultsTheStructsHold) {
  std::string help = ConfigHelp();
  AppConfig defaults;
  ClientConfig client;
  for (const std::string& line :
       {"server.idle_timeout_ms (RPCBOOT_SERVER_IDLE_TIMEOUT_MS, default " +
            std::to_string(defaults.server.idle_timeout.count()) + ")",
        "server.max_message_bytes (RPCBOOT_SERVER_MAX_MESSAGE_BYTES, default " +
            std::to_string(defaults.server.max_message_bytes) + ")",
        "registry.base_path (RPCBOOT_REGISTRY_BASE_PATH, default " + defaults.registry.base_path +
            ")",
        std::string("registry.fail_fast (RPCBOOT_REGISTRY_FAIL_FAST, default false)"),
        std::string("app.name (RPCBOOT_APP_NAME, default (required))"),
        "timeout_ms (default " + std::to_string(client.channel.default_timeout.count()) + ")",
        std::string("protocol (default grpc)"), std::string("thrift_format (default compact)")}) {
    EXPECT_NE(help.find(line), std::string::npos) << line << "\n" << help;
  }
}

TEST(Config, HelpIsAskedForExplicitly) {
  EXPECT_TRUE(WantsHelp({"--config=x.yaml", "--help"}));
  EXPECT_TRUE(WantsHelp({"-h"}));
  EXPECT_FALSE(WantsHelp({"--config=help"}));
  // LoadConfig does not treat --help as anything but a bad argument.
  absl::StatusOr<AppConfig> config = LoadConfig({"--help"}, &kNoEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("'--help' is not --config=FILE"), std::string::npos)
      << config.status();
}

TEST(Config, MissingConfigFileIsAnErrorNotHelp) {
  absl::StatusOr<AppConfig> config = LoadConfig({"--config=/nonexistent/rpcboot.yaml"}, &kNoEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find("/nonexistent/rpcboot.yaml cannot be read"),
            std::string::npos)
      << config.status();
}

TEST(Config, ADirectoryAsTheConfigFileIsAnError) {
  std::string dir = ::testing::TempDir() + "/rpcboot-config-dir";
  std::filesystem::create_directories(dir);
  absl::StatusOr<AppConfig> config = LoadConfig({"--config=" + dir}, &kNoEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "config file " + dir + " is a directory (give the YAML file itself)");
}

TEST(Config, AKeySetTwiceInOneFileIsAnError) {
  absl::StatusOr<AppConfig> config =
      ParseConfig("app: {name: shop}\nserver: {grpc_port: 1}\nserver.grpc_port: 2\n", "dup.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "server.grpc_port is set twice: at dup.yaml:2 and at dup.yaml:3");
  config = ParseConfig("app: {name: a}\napp: {name: b}\n", "twice.yaml");
  EXPECT_FALSE(config.ok()) << "a repeated top-level key";
}

TEST(Config, NamesAndPathsZooKeeperWouldRefuse) {
  for (const char* name : {"..", ".", "a\x01b"}) {
    absl::StatusOr<AppConfig> config =
        ParseConfig(std::string("app: {name: \"") + name + "\"}\n", "names.yaml");
    ASSERT_FALSE(config.ok()) << name;
    EXPECT_NE(config.status().message().find("is not a name"), std::string::npos)
        << config.status();
  }
  for (const char* path : {"/zookeeper", "/zookeeper/quota", "/services/..", "/a/./b"}) {
    absl::StatusOr<AppConfig> config = ParseConfig(
        std::string("app: {name: shop}\nregistry: {base_path: \"") + path + "\"}\n", "p.yaml");
    ASSERT_FALSE(config.ok()) << path;
    EXPECT_NE(config.status().message().find("registry.base_path"), std::string::npos)
        << config.status();
  }
}

TEST(Config, TheApplicationsOwnKeysComeFromTheFileAndTheFlags) {
  std::string file = WriteFile("settings.yaml", R"(
app: {name: order}
settings:
  store:
    path: /var/lib/order/orders.db
    shards: 16
  loyalty: on
  note: "a:b c"
)");
  absl::StatusOr<AppConfig> c = LoadConfig(
      {"--config=" + file, "--settings.store.shards=32", "--settings.region=eu"}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  const Settings& settings = c->settings;
  EXPECT_EQ(settings.String("store.path", "x"), "/var/lib/order/orders.db");
  EXPECT_EQ(settings.String("note", ""), "a:b c");
  EXPECT_EQ(settings.String("region", ""), "eu") << "a flag may add a key";
  EXPECT_EQ(settings.String("absent", "fallback"), "fallback");
  EXPECT_EQ(settings.Int("store.shards", 8, 1, 64).value_or(-1), 32) << "flag over file";
  EXPECT_EQ(settings.Int("absent", 8, 1, 64).value_or(-1), 8);
  EXPECT_EQ(settings.Bool("loyalty", false).value_or(false), true);
  EXPECT_EQ(settings.Bool("absent", true).value_or(false), true);
  EXPECT_TRUE(settings.Has("store.path"));
  EXPECT_FALSE(settings.Has("store")) << "a mapping is not a value";

  absl::StatusOr<AppConfig> empty = ParseConfig("app: {name: order}\nsettings:\n", "empty.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->settings.Unread().empty());
}

TEST(Config, TheApplicationsOwnKeysNameTheirProblems) {
  std::string file =
      WriteFile("bad_settings.yaml", "app: {name: order}\nsettings:\n  shards: many\n");
  absl::StatusOr<AppConfig> c =
      LoadConfig({"--config=" + file, "--settings.loyalty=perhaps", "--settings.big=99"}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << "rpcboot only carries them: " << c.status();
  EXPECT_EQ(c->settings.Int("shards", 8, 1, 64).status().message(),
            "settings.shards: 'many' from " + file + ":3 is not an integer in 1..64");
  EXPECT_EQ(c->settings.Int("big", 8, 1, 64).status().message(),
            "settings.big: '99' from command line --settings.big is not an integer in 1..64");
  EXPECT_EQ(c->settings.Bool("loyalty", false).status().message(),
            "settings.loyalty: 'perhaps' from command line --settings.loyalty is not true or "
            "false");
  EXPECT_EQ(Error({"--app.name=order", "--settings.=1"}),
            "settings.: '1' from command line --settings. names no key (settings.<key>=<value>)");
  std::string scalar_settings =
      WriteFile("scalar_settings.yaml", "app: {name: order}\nsettings: 5\n");
  EXPECT_EQ(Error({"--config=" + scalar_settings}),
            "settings: '5' from " + scalar_settings +
                ":2 is not a mapping (the application's keys go under settings:)");
  std::string list =
      WriteFile("list_settings.yaml", "app: {name: order}\nsettings:\n  tags: [a, b]\n");
  EXPECT_EQ(Error({"--config=" + list}),
            "settings.tags: a list from " + list + ":3 where a single value belongs");
}

// Configuration text goes into the registry's JSON, the status page and peers' strings: bytes
// that are not UTF-8 are refused at load, naming the key (a zone of 0xff aborted the process
// when it registered).
TEST(Config, TextThatIsNotUtf8IsRefusedNamingTheKey) {
  EXPECT_EQ(Error({"--app.name=shop", "--app.zone=\xff"}),
            "app.zone: '\\xff' from command line --app.zone is not UTF-8 text");
  std::string file =
      WriteFile("not_utf8.yaml", "app: {name: shop}\nsettings:\n  motto: \"a\xc3\"\n");
  EXPECT_EQ(Error({"--config=" + file}),
            "settings.motto: 'a\\xc3' from " + file + ":3 is not UTF-8 text");
  EXPECT_EQ(Error({"--app.name=shop", "--settings.k\xfe=1"}),
            "a key: 'settings.k\\xfe' from command line --settings.k\\xfe is not UTF-8 text");
  // UTF-8 itself is fine.
  absl::StatusOr<AppConfig> c =
      LoadConfig({"--app.name=shop", "--app.zone=z\xc3\xbcrich"}, &kNoEnv);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->zone, "z\xc3\xbcrich");
}

TEST(Config, TheEffectiveConfigurationShowsTheApplicationsKeysButNotItsSecrets) {
  absl::StatusOr<AppConfig> c = ParseConfig(
      "app: {name: order}\nsettings:\n  db: {path: o.db, password: hunter2}\n  api_token: t0k\n",
      "s.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  std::map<std::string, std::string> shown;
  for (const auto& [key, value] : EffectiveConfig(*c)) shown[key] = value;
  EXPECT_EQ(shown["settings.db.path"], "o.db");
  EXPECT_EQ(shown["settings.db.password"], "(redacted)");
  EXPECT_EQ(shown["settings.api_token"], "(redacted)");
  EXPECT_EQ(c->settings.String("db.password", ""), "hunter2") << "the application reads it";
}

TEST(Config, AKeyTheApplicationNeverReadIsReportedAtStart) {
  absl::StatusOr<AppConfig> c = ParseConfig(
      "app: {name: order}\nserver: {grpc_port: -1, thrift_port: -1}\n"
      "settings:\n  store: {path: o.db, shrads: 4}\n",
      "typo.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<std::unique_ptr<App>> app = App::FromConfig(*c);
  ASSERT_TRUE(app.ok()) << app.status();
  EXPECT_EQ((*app)->config().settings.String("store.path", ""), "o.db");
  std::vector<std::string> lines;
  SetLogSink([&](LogLevel level, std::string_view message) {
    if (level == LogLevel::kWarning) lines.emplace_back(message);
  });
  absl::Status started = (*app)->Start();
  SetLogSink(nullptr);
  ASSERT_TRUE(started.ok()) << started;
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "order: settings.store.shrads from typo.yaml:4 has not been read by the application "
            "(misspelt?)");
  (*app)->Shutdown();
}

TEST(Config, AMisspeltEnvironmentVariableIsReported) {
  std::vector<std::string> lines;
  SetLogSink([&](LogLevel, std::string_view message) { lines.emplace_back(message); });
  std::map<std::string, std::string> env = {{"RPCBOOT_APP_NAME", "shop"},
                                            {"RPCBOOT_SERVER_GRPC_PROT", "9000"}};
  absl::StatusOr<AppConfig> config = LoadConfig({}, &env);
  SetLogSink(nullptr);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "environment RPCBOOT_SERVER_GRPC_PROT is not an rpcboot setting; ignored (settings: "
            "--help)");
}

}  // namespace
}  // namespace rpcboot
