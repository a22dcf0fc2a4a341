#include "rpcboot/config.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "discovery/session.h"
#include "rpcboot/base/internal/read_file.h"
#include "rpcboot/base/log.h"
#include "rpcboot/codec/type_traits.h"
#include "rpcboot/internal/auth.h"

extern char** environ;

namespace rpcboot {
namespace {

// One value as read, with where it came from.
struct Setting {
  std::string key;
  std::string value;
  std::string source;  // "shop.yaml:3", "environment RPCBOOT_X", "command line --x"
};

// A problem with a value ("is not an integer in -1..65535"), or "" when it was taken.
template <class Config>
using Setter = std::function<std::string(Config&, const std::string&)>;
// The value as text, for --help: what a default-constructed config holds is the default.
// (Takes the config by non-const reference only because fields are reached through Field.)
template <class Config>
using Shower = std::function<std::string(Config&)>;

// How one key reads and shows its value. The defaults live only in the config structs' member
// initializers; --help prints them from a default-constructed config.
template <class Config>
struct Rule {
  Setter<Config> set;
  Shower<Config> show;
};

struct Key {
  const char* name;
  const char* meaning;
  Rule<AppConfig> rule;
};

std::string SetInt(const std::string& value, int64_t min, int64_t max, int64_t* out) {
  int64_t v;
  if (!absl::SimpleAtoi(value, &v) || v < min || v > max)
    return absl::StrCat("is not an integer in ", min, "..", max);
  *out = v;
  return "";
}

// A field of `Config` reached by `field(config)`.
template <class Config, class T>
using Field = T& (*)(Config&);

template <class Config, class T>
Rule<Config> IntRule(int64_t min, int64_t max, Field<Config, T> field) {
  return {[=](Config& c, const std::string& value) {
            int64_t v = 0;
            std::string problem = SetInt(value, min, max, &v);
            if (problem.empty()) field(c) = static_cast<T>(v);
            return problem;
          },
          [=](Config& c) { return std::to_string(field(c)); }};
}

template <class Config>
Rule<Config> MsRule(int64_t min, Field<Config, std::chrono::milliseconds> field) {
  return {[=](Config& c, const std::string& value) {
            int64_t v = 0;
            std::string problem = SetInt(value, min, int64_t{24} * 3600 * 1000, &v);
            if (problem.empty()) field(c) = std::chrono::milliseconds(v);
            return problem;
          },
          [=](Config& c) { return std::to_string(field(c).count()); }};
}

// `check` returns a problem with a value, or "" to take it. `unset` is what --help shows for an
// empty default ("(required)"); "" shows "empty".
template <class Config>
Rule<Config> StringRule(Field<Config, std::string> field,
                        std::function<std::string(const std::string&)> check = nullptr,
                        std::string unset = "") {
  return {[=](Config& c, const std::string& value) {
            std::string problem = check ? check(value) : "";
            if (problem.empty()) field(c) = value;
            return problem;
          },
          [=](Config& c) {
            const std::string& v = field(c);
            return !v.empty() ? v : !unset.empty() ? unset : std::string("empty");
          }};
}

template <class Config>
Rule<Config> DoubleRule(double min, double max, Field<Config, double> field) {
  return {[=](Config& c, const std::string& value) -> std::string {
            double v = 0;
            if (!absl::SimpleAtod(value, &v) || !(v >= min && v <= max))
              return absl::StrCat("is not a number in ", min, "..", max);
            field(c) = v;
            return "";
          },
          [=](Config& c) { return absl::StrCat(field(c)); }};
}

std::string ParseBool(const std::string& value, bool* out) {
  std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    *out = true;
  } else if (v == "false" || v == "no" || v == "off" || v == "0") {
    *out = false;
  } else {
    return "is not true or false";
  }
  return "";
}

template <class Config>
Rule<Config> BoolRule(Field<Config, bool> field) {
  return {[=](Config& c, const std::string& value) { return ParseBool(value, &field(c)); },
          [=](Config& c) { return std::string(field(c) ? "true" : "false"); }};
}

// One of a few names, each standing for a value of T.
template <class Config, class T>
Rule<Config> EnumRule(Field<Config, T> field, std::vector<std::pair<std::string, T>> names) {
  std::string choices;
  for (std::size_t i = 0; i < names.size(); ++i)
    absl::StrAppend(&choices, i == 0 ? "" : i + 1 == names.size() ? " or " : ", ", names[i].first);
  return {[=](Config& c, const std::string& value) -> std::string {
            for (const auto& [name, v] : names) {
              if (value != name) continue;
              field(c) = v;
              return "";
            }
            return "is not " + choices;
          },
          [=](Config& c) {
            for (const auto& [name, v] : names)
              if (field(c) == v) return name;
            return std::string("?");
          }};
}

// A ZooKeeper node name: not empty, no '/', not "." or ".." (ZooKeeper refuses those), no
// control characters.
std::string CheckName(const std::string& v) {
  bool control = std::any_of(
      v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  if (v.empty() || v.find('/') != std::string::npos || v == "." || v == ".." || control)
    return "is not a name (non-empty, no '/', not '.' or '..', no control characters)";
  return "";
}

// A file this process can read (TLS certificates and keys, token files): named when wrong, at
// start, rather than at the first connection.
std::string CheckReadable(const std::string& v) {
  if (v.empty()) return "";
  std::error_code ec;
  if (std::filesystem::is_directory(v, ec)) return "is a directory, not a file";
  FILE* f = std::fopen(v.c_str(), "rb");
  if (f == nullptr) return "cannot be read";
  std::fclose(f);
  return "";
}

std::string CheckBasePath(const std::string& v) {
  if (v.empty() || v[0] != '/' || (v.size() > 1 && v.back() == '/') ||
      v.find("//") != std::string::npos)
    return "is not a ZooKeeper path (starts with '/', no trailing or double '/')";
  if (v == "/zookeeper" || v.rfind("/zookeeper/", 0) == 0)
    return "is inside /zookeeper, which ZooKeeper keeps for itself";
  for (absl::string_view part : absl::StrSplit(v.substr(1), '/', absl::SkipEmpty())) {
    if (!CheckName(std::string(part)).empty())
      return "has an element that is not a node name ('.', '..' or a control character)";
  }
  return "";
}

const std::vector<Key>& Keys() {
  static const auto* keys = new std::vector<Key>{
      {"app.name", "the application's name in the registry: <base>/<name>/<id>",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.name; }, CheckName,
                             "(required)")},
      {"app.version", "written as rpcboot.version",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.version; })},
      {"app.zone", "written as rpcboot.zone",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.zone; })},
      {"server.host", "the address the ports bind",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.server.host; })},
      {"server.advertise_host",
       "the address clients connect to, written in the registry; default: server.host unless "
       "it is 0.0.0.0, else this machine's first non-loopback IPv4 address",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.advertise_host; }, nullptr,
                             "(detected)")},
      {"server.grpc_port", "gRPC port; 0: pick a free one; -1: no gRPC",
       IntRule<AppConfig, int>(-1, 65535, [](AppConfig& c) -> int& { return c.server.grpc_port; })},
      {"server.thrift_port", "Thrift port; 0: pick a free one; -1: no Thrift",
       IntRule<AppConfig, int>(-1, 65535,
                               [](AppConfig& c) -> int& { return c.server.thrift_port; })},
      {"server.handler_threads",
       "handler threads, both protocols (handlers may block); 0: twice the cores, at least 8",
       IntRule<AppConfig, int>(0, 4096,
                               [](AppConfig& c) -> int& { return c.server.handler_threads; })},
      {"server.max_concurrent_calls",
       "calls queued and running at once; one more is answered RESOURCE_EXHAUSTED; 0: 64 x "
       "handler threads",
       IntRule<AppConfig, int>(0, 1000000,
                               [](AppConfig& c) -> int& { return c.server.max_concurrent_calls; })},
      {"server.io_threads", "Thrift event loops; 0: max(8, cores)",
       IntRule<AppConfig, int>(0, 256, [](AppConfig& c) -> int& { return c.server.io_threads; })},
      {"server.thrift_io",
       "Thrift event loops: epoll, or uring (io_uring, plaintext only; epoll when refused)",
       EnumRule<AppConfig, ServerOptions::ThriftIo>(
           [](AppConfig& c) -> ServerOptions::ThriftIo& { return c.server.thrift_io; },
           {{"epoll", ServerOptions::ThriftIo::kEpoll},
            {"uring", ServerOptions::ThriftIo::kUring}})},
      {"server.grpc_server",
       "gRPC's HTTP/2 server: native (rpcboot's own, on event loops like Thrift's) or grpcpp "
       "(gRPC's C++ library)",
       EnumRule<AppConfig, ServerOptions::GrpcServer>(
           [](AppConfig& c) -> ServerOptions::GrpcServer& { return c.server.grpc_server; },
           {{"grpcpp", ServerOptions::GrpcServer::kGrpcpp},
            {"native", ServerOptions::GrpcServer::kNative}})},
      {"server.max_connections",
       "open connections at most, per protocol (Thrift: the oldest idle one makes room)",
       IntRule<AppConfig, int>(1, 1000000,
                               [](AppConfig& c) -> int& { return c.server.max_connections; })},
      {"server.frame_timeout_ms",
       "Thrift: a frame must arrive, and a reply be read, within this; gRPC: the handshake",
       MsRule<AppConfig>(
           1, [](AppConfig& c) -> std::chrono::milliseconds& { return c.server.frame_timeout; })},
      {"server.inline_methods",
       "comma-separated <package>.<Service>/<Method> or /* whose handlers never block: run on "
       "the I/O thread, no hop",
       {[](AppConfig& c, const std::string& v) {
          c.server.inline_methods.clear();
          for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
            c.server.inline_methods.emplace_back(absl::StripAsciiWhitespace(part));
          }
          return std::string();
        },
        [](AppConfig& c) {
          return c.server.inline_methods.empty() ? std::string("empty")
                                                 : absl::StrJoin(c.server.inline_methods, ",");
        }}},
      {"server.grpc_max_concurrent_streams", "gRPC: concurrent calls per HTTP/2 connection",
       IntRule<AppConfig, int>(
           1, 100000, [](AppConfig& c) -> int& { return c.server.grpc_max_concurrent_streams; })},
      {"server.grpc_max_connection_age_ms",
       "gRPC: a connection this old is sent GOAWAY (clients reconnect); 0: no limit",
       MsRule<AppConfig>(0,
                         [](AppConfig& c) -> std::chrono::milliseconds& {
                           return c.server.grpc_max_connection_age;
                         })},
      {"server.grpc_max_connection_age_grace_ms",
       "gRPC: how long the calls of a connection past its age may still take",
       MsRule<AppConfig>(0,
                         [](AppConfig& c) -> std::chrono::milliseconds& {
                           return c.server.grpc_max_connection_age_grace;
                         })},
      {"server.grpc_max_unsent_bytes",
       "gRPC: reply bytes a connection may leave unread; a reply past it is RESOURCE_EXHAUSTED",
       IntRule<AppConfig, std::size_t>(
           1024, int64_t{1} << 40,
           [](AppConfig& c) -> std::size_t& { return c.server.grpc_max_unsent_bytes; })},
      {"server.grpc_memory_quota", "gRPC: memory for its connections and calls; 0: no quota",
       IntRule<AppConfig, std::size_t>(
           0, int64_t{1} << 40,
           [](AppConfig& c) -> std::size_t& { return c.server.grpc_memory_quota; })},
      {"server.grpc_compression",
       "gRPC (native server): off (compressed requests refused), accept (gzip/deflate requests "
       "inflated up to max_message_bytes) or gzip (accept, and gzip replies of 1 KiB or more)",
       EnumRule<AppConfig, ServerOptions::GrpcCompression>(
           [](AppConfig& c) -> ServerOptions::GrpcCompression& {
             return c.server.grpc_compression;
           },
           {{"off", ServerOptions::GrpcCompression::kOff},
            {"accept", ServerOptions::GrpcCompression::kAccept},
            {"gzip", ServerOptions::GrpcCompression::kGzip}})},
      {"server.thrift_compression",
       "Thrift: off (zlib THeader calls answered UNIMPLEMENTED) or zlib (inflated up to "
       "max_message_bytes and thrift_inflated_quota; replies compressed alike)",
       EnumRule<AppConfig, ServerOptions::ThriftCompression>(
           [](AppConfig& c) -> ServerOptions::ThriftCompression& {
             return c.server.thrift_compression;
           },
           {{"off", ServerOptions::ThriftCompression::kOff},
            {"zlib", ServerOptions::ThriftCompression::kZlib}})},
      {"server.thrift_inflated_quota",
       "Thrift: inflated request bytes all zlib calls may hold at once",
       IntRule<AppConfig, std::size_t>(
           1024, int64_t{1} << 40,
           [](AppConfig& c) -> std::size_t& { return c.server.thrift_inflated_quota; })},
      {"server.max_message_bytes", "largest request or reply",
       IntRule<AppConfig, std::size_t>(
           1024, int64_t{1} << 30,
           [](AppConfig& c) -> std::size_t& { return c.server.max_message_bytes; })},
      {"server.idle_timeout_ms",
       "close a Thrift connection silent this long; send GOAWAY on a gRPC one without calls",
       MsRule<AppConfig>(
           1, [](AppConfig& c) -> std::chrono::milliseconds& { return c.server.idle_timeout; })},
      {"server.shutdown_grace_ms", "on shutdown, how long in-flight calls may take",
       MsRule<AppConfig>(
           0, [](AppConfig& c) -> std::chrono::milliseconds& { return c.server.shutdown_grace; })},
      {"server.tls.cert_file",
       "PEM certificate chain: TLS on both ports (written as rpcboot.tls in the registry)",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.server.tls.cert_file; },
                             CheckReadable, "(no TLS)")},
      {"server.tls.key_file", "PEM private key of server.tls.cert_file",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.server.tls.key_file; },
                             CheckReadable)},
      {"server.tls.ca_file", "PEM CAs whose client certificates are verified (mutual TLS)",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.server.tls.ca_file; },
                             CheckReadable)},
      {"server.tls.require_client_cert", "refuse clients without a certificate from ca_file",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.server.tls.require_client_cert; })},
      {"server.auth.tokens_file",
       "file of '<principal> <token>' lines: bearer tokens this server accepts",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.server.auth.tokens_file; },
                             CheckReadable)},
      {"server.auth.require_identity",
       "refuse (UNAUTHENTICATED) calls with neither a client certificate nor an accepted token",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.server.auth.require_identity; })},
      {"server.auth.allow",
       "comma-separated '<principal> <package.Service>/<Method>' entries ('*' for any); others "
       "are PERMISSION_DENIED; empty: no list",
       {[](AppConfig& c, const std::string& v) {
          c.server.auth.allow.clear();
          for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
            c.server.auth.allow.emplace_back(absl::StripAsciiWhitespace(part));
          }
          return std::string();
        },
        [](AppConfig& c) {
          return c.server.auth.allow.empty() ? std::string("empty")
                                             : absl::StrJoin(c.server.auth.allow, ",");
        }}},
      {"client.tls.enabled", "TLS for every client (clients.<service>.tls.* override it)",
       BoolRule<AppConfig>(
           [](AppConfig& c) -> bool& { return c.client_defaults.channel.tls.enabled; })},
      {"client.tls.ca_file", "PEM CAs that sign servers' certificates; empty: the system's",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.client_defaults.channel.tls.ca_file; },
           CheckReadable)},
      {"client.tls.cert_file", "PEM certificate every client presents (mutual TLS)",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.client_defaults.channel.tls.cert_file; },
           CheckReadable)},
      {"client.tls.key_file", "PEM private key of client.tls.cert_file",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.client_defaults.channel.tls.key_file; },
           CheckReadable)},
      {"client.token_file", "file holding the bearer token every client sends",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.client_defaults.token_file; },
           CheckReadable)},
      {"server.weight", "written as rpcboot.weight (weighted_random balancers)",
       IntRule<AppConfig, int>(1, 1000000, [](AppConfig& c) -> int& { return c.weight; })},
      {"registry.zookeeper",
       "ZooKeeper connect string host:port,host:port[/chroot]; empty: no registration",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.registry.zookeeper; },
           [](const std::string& v) -> std::string {
             if (v.empty()) return "";
             absl::Status s = discovery::Session::Validate(discovery::SessionOptions{v});
             return s.ok() ? "" : "is not a connect string: " + std::string(s.message());
           })},
      {"registry.snapshot_dir",
       "directory for a snapshot of each watched application's instances, served when "
       "ZooKeeper cannot be reached at start; empty: none",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.registry.snapshot_dir; },
                             [](const std::string& v) -> std::string {
                               std::error_code ec;
                               if (v.empty() || !std::filesystem::exists(v, ec)) return "";
                               return std::filesystem::is_directory(v, ec)
                                          ? ""
                                          : "exists and is not a directory";
                             })},
      {"registry.base_path", "parent of the application nodes",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.registry.base_path; },
                             CheckBasePath)},
      {"registry.session_timeout_ms", "ZooKeeper session timeout",
       MsRule<AppConfig>(
           100,
           [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.session_timeout; })},
      {"registry.digest", "user:password: only this identity may change the instance node",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.registry.digest; },
                             [](const std::string& v) -> std::string {
                               return !v.empty() && v.find(':') == std::string::npos
                                          ? "is not user:password"
                                          : "";
                             })},
      {"registry.recursive_watch",
       "follow applications with persistent recursive watches (else one-shot child watches)",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.registry.recursive_watch; })},
      {"registry.fail_fast",
       "fail at start when ZooKeeper is unreachable (else serve and keep trying)",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.registry.fail_fast; })},
      {"registry.connect_timeout_ms", "how long start waits for ZooKeeper",
       MsRule<AppConfig>(
           0,
           [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.connect_timeout; })},
      {"registry.drain_ms", "on shutdown, time between deregistering and closing the ports",
       MsRule<AppConfig>(
           0, [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.drain; })},
      {"migration.flag_root",
       "parent of the flag nodes that switch clients' migration modes: "
       "<flag_root>/<app.name>/<service>",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.migration.flag_root; },
                             CheckBasePath)},
      {"migration.flags", "watch the flag nodes (needs registry.zookeeper)",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.migration.flags; })},
      {"admin.port",
       "admin HTTP port: status page /, /metrics (Prometheus), /status.json, /health; 0: pick a "
       "free one; -1: off",
       IntRule<AppConfig, int>(-1, 65535, [](AppConfig& c) -> int& { return c.admin.port; })},
      {"admin.host",
       "the address the admin port binds (0.0.0.0 for probes and scrapers from other machines)",
       StringRule<AppConfig>(
           [](AppConfig& c) -> std::string& { return c.admin.host; },
           [](const std::string& v) -> std::string { return v.empty() ? "is empty" : ""; })},
      {"metrics.enabled", "count calls for /metrics and the status page (a few ns a call)",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.metrics_enabled; })},
      {"tracing.enabled",
       "carry W3C trace context (traceparent) on every call and record sampled spans",
       BoolRule<AppConfig>([](AppConfig& c) -> bool& { return c.tracing.enabled; })},
      {"tracing.sample_rate",
       "share of new traces recorded, 0..1 (a caller's sampled flag always wins)",
       DoubleRule<AppConfig>(0, 1, [](AppConfig& c) -> double& { return c.tracing.sample_rate; })},
      {"tracing.otlp_endpoint",
       "OTLP/HTTP JSON collector URL for recorded spans (http://host:4318/v1/traces); empty: "
       "none",
       StringRule<AppConfig>([](AppConfig& c) -> std::string& { return c.tracing.otlp_endpoint; },
                             [](const std::string& v) -> std::string {
                               bool url = v.rfind("http://", 0) == 0 || v.rfind("https://", 0) == 0;
                               return v.empty() || (url && v.find("://") + 3 < v.size() &&
                                                    v[v.find("://") + 3] != '/')
                                          ? ""
                                          : "is not an http:// or https:// URL with a host";
                             })},
  };
  return *keys;
}

// A comma-separated list ("a, b,c").
Rule<ClientConfig> ListRule(std::vector<std::string>& (*field)(ClientConfig&)) {
  return {[field](ClientConfig& c, const std::string& v) {
            std::vector<std::string>& list = field(c);
            list.clear();
            for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
              list.emplace_back(absl::StripAsciiWhitespace(part));
            }
            return std::string();
          },
          [field](ClientConfig& c) {
            const std::vector<std::string>& list = field(c);
            return list.empty() ? std::string("(none)") : absl::StrJoin(list, ",");
          }};
}

struct ClientKey {
  const char* field;
  const char* meaning;
  Rule<ClientConfig> rule;
};

const std::vector<ClientKey>& ClientKeys() {
  static const auto* keys = new std::vector<ClientKey>{
      {"app", "the application serving it, as registered",
       StringRule<ClientConfig>([](ClientConfig& c) -> std::string& { return c.app; }, CheckName,
                                "(the service's package)")},
      {"address", "static://h:p,h:p, zk://h:p/services/<app> or h:p instead of the registry",
       StringRule<ClientConfig>([](ClientConfig& c) -> std::string& { return c.address; }, nullptr,
                                "(this app's registry)")},
      {"protocol", "grpc or thrift",
       EnumRule<ClientConfig, Protocol>(
           [](ClientConfig& c) -> Protocol& { return c.protocol; },
           {{"grpc", Protocol::kGrpc}, {"thrift", Protocol::kThrift}})},
      {"grpc_client",
       "the HTTP/2 client of a grpc client: grpcpp (gRPC's C++ library) or native (rpcboot's, "
       "I/O on the calling thread)",
       EnumRule<ClientConfig, GrpcClient>(
           [](ClientConfig& c) -> GrpcClient& { return c.channel.grpc_client; },
           {{"grpcpp", GrpcClient::kGrpcpp}, {"native", GrpcClient::kNative}})},
      {"grpc_compression",
       "a grpc client's requests: off, or gzip (the server must take gzip: rpcboot's "
       "server.grpc_compression accept or gzip, or a stock gRPC server)",
       EnumRule<ClientConfig, GrpcCompression>(
           [](ClientConfig& c) -> GrpcCompression& { return c.channel.grpc_compression; },
           {{"off", GrpcCompression::kOff}, {"gzip", GrpcCompression::kGzip}})},
      // Checked by App::FromConfig (a balancer of your own is registered before it).
      {"load_balancer", "p2c, round_robin, weighted_random, consistent_hash, or your own",
       StringRule<ClientConfig>(
           [](ClientConfig& c) -> std::string& { return c.channel.load_balancer; },
           [](const std::string& v) -> std::string { return v.empty() ? "is empty" : ""; })},
      {"timeout_ms", "deadline of a call that sets none",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.default_timeout;
                            })},
      {"grpc_keepalive_time_ms",
       "native gRPC client: PING a connection idle this long, close it when unanswered; 0: never",
       MsRule<ClientConfig>(0,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.grpc_keepalive_time;
                            })},
      {"grpc_keepalive_timeout_ms",
       "native gRPC client: how long a keepalive PING may go unanswered",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.grpc_keepalive_timeout;
                            })},
      {"max_attempts", "instances one call may try when retrying is safe",
       IntRule<ClientConfig, int>(1, 10,
                                  [](ClientConfig& c) -> int& { return c.channel.max_attempts; })},
      {"subset_size", "talk to at most this many of the instances (a subset); 0: all",
       IntRule<ClientConfig, int>(0, 100000,
                                  [](ClientConfig& c) -> int& { return c.channel.subset_size; })},
      {"subset_position",
       "this client's place among its peers as index/count (3/10); default: from a hash of "
       "host and pid",
       {[](ClientConfig& c, const std::string& v) -> std::string {
          std::vector<std::string> parts = absl::StrSplit(v, '/');
          int64_t index = 0, count = 0;
          if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &index) ||
              !absl::SimpleAtoi(parts[1], &count) || count <= 0 || index < 0 || index >= count) {
            return "is not index/count with 0 <= index < count (as in 3/10)";
          }
          c.channel.subset_position = static_cast<double>(index) / static_cast<double>(count);
          return "";
        },
        [](ClientConfig& c) {
          return c.channel.subset_position < 0 ? std::string("(hash of host and pid)")
                                               : std::to_string(c.channel.subset_position);
        }}},
      {"tls.enabled", "TLS to this service (any tls key turns it on)",
       BoolRule<ClientConfig>([](ClientConfig& c) -> bool& { return c.channel.tls.enabled; })},
      {"tls.ca_file", "PEM CAs that sign the servers' certificates; empty: the system's",
       StringRule<ClientConfig>(
           [](ClientConfig& c) -> std::string& { return c.channel.tls.ca_file; }, CheckReadable)},
      {"tls.cert_file", "PEM certificate this client presents (mutual TLS)",
       StringRule<ClientConfig>(
           [](ClientConfig& c) -> std::string& { return c.channel.tls.cert_file; }, CheckReadable)},
      {"tls.key_file", "PEM private key of tls.cert_file",
       StringRule<ClientConfig>(
           [](ClientConfig& c) -> std::string& { return c.channel.tls.key_file; }, CheckReadable)},
      {"tls.server_name", "the name servers' certificates must carry; default: the host called",
       StringRule<ClientConfig>(
           [](ClientConfig& c) -> std::string& { return c.channel.tls.server_name; })},
      {"max_in_flight",
       "calls in flight at once to this service; one more is RESOURCE_EXHAUSTED; 0: "
       "no limit",
       IntRule<ClientConfig, int>(0, 1000000,
                                  [](ClientConfig& c) -> int& { return c.channel.max_in_flight; })},
      {"hedge_delay_ms",
       "idempotent calls unanswered after this are sent to a second instance too; 0: off",
       MsRule<ClientConfig>(
           0, [](ClientConfig& c) -> std::chrono::milliseconds& { return c.channel.hedge_delay; })},
      {"hedge_at_p95", "the hedge delay is the observed p95 latency (hedge_delay_ms until known)",
       BoolRule<ClientConfig>([](ClientConfig& c) -> bool& { return c.channel.hedge_at_p95; })},
      {"thrift_multiplexed",
       "send Thrift calls by their multiplexed names (service:method), for a stock "
       "TMultiplexedProcessor server",
       BoolRule<ClientConfig>(
           [](ClientConfig& c) -> bool& { return c.channel.thrift_multiplexed; })},
      {"foreign_instances",
       "also call instances registered without rpcboot metadata (Spring, Curator) over this "
       "client's protocol at their port",
       BoolRule<ClientConfig>(
           [](ClientConfig& c) -> bool& { return c.channel.call_foreign_instances; })},
      {"queue_when_full", "a call past max_in_flight waits for a slot within its deadline",
       BoolRule<ClientConfig>([](ClientConfig& c) -> bool& { return c.channel.queue_when_full; })},
      {"hedge_methods", "comma-separated method names that hedge; empty: every idempotent one",
       ListRule(
           [](ClientConfig& c) -> std::vector<std::string>& { return c.channel.hedge_methods; })},
      {"outlier.enabled", "eject failing or slow instances for a while",
       BoolRule<ClientConfig>([](ClientConfig& c) -> bool& { return c.channel.outlier.enabled; })},
      {"outlier.consecutive_failures", "failures in a row that eject an instance (0: off)",
       IntRule<ClientConfig, int>(
           0, 1000,
           [](ClientConfig& c) -> int& { return c.channel.outlier.consecutive_failures; })},
      {"outlier.failure_rate", "share of failed calls in an interval that ejects (0: off)",
       DoubleRule<ClientConfig>(
           0, 1, [](ClientConfig& c) -> double& { return c.channel.outlier.failure_rate; })},
      {"outlier.latency_factor",
       "mean latency over this x the median of the instances' ejects (0: off)",
       DoubleRule<ClientConfig>(
           0, 1000, [](ClientConfig& c) -> double& { return c.channel.outlier.latency_factor; })},
      {"outlier.min_latency_ms", "and over this",
       MsRule<ClientConfig>(0,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.outlier.min_latency;
                            })},
      {"outlier.min_calls", "calls an instance needs in an interval to be judged",
       IntRule<ClientConfig, int>(
           1, 1000000, [](ClientConfig& c) -> int& { return c.channel.outlier.min_calls; })},
      {"outlier.interval_ms", "how often failure rates and latencies are compared",
       MsRule<ClientConfig>(10,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.outlier.interval;
                            })},
      {"outlier.base_ejection_ms", "the first ejection's length; each repeat doubles it",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.outlier.base_ejection;
                            })},
      {"outlier.max_ejection_ms", "the longest ejection",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.outlier.max_ejection;
                            })},
      {"outlier.max_ejected_percent", "at most this share of the instances ejected at once",
       IntRule<ClientConfig, int>(
           0, 100, [](ClientConfig& c) -> int& { return c.channel.outlier.max_ejected_percent; })},
      {"circuit.enabled", "fail fast while most calls to the service fail",
       BoolRule<ClientConfig>([](ClientConfig& c) -> bool& { return c.channel.circuit.enabled; })},
      {"circuit.failure_rate", "share of failed calls in a window that opens the circuit",
       DoubleRule<ClientConfig>(
           0, 1, [](ClientConfig& c) -> double& { return c.channel.circuit.failure_rate; })},
      {"circuit.min_calls", "calls in the window before the circuit may open",
       IntRule<ClientConfig, int>(
           1, 1000000, [](ClientConfig& c) -> int& { return c.channel.circuit.min_calls; })},
      {"circuit.window_ms", "the window failures are counted in",
       MsRule<ClientConfig>(
           10,
           [](ClientConfig& c) -> std::chrono::milliseconds& { return c.channel.circuit.window; })},
      {"circuit.open_ms", "how long an open circuit fails calls fast before a probe",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.circuit.open_for;
                            })},
      {"retry_budget.ratio", "retries and failovers at most this share of calls...",
       DoubleRule<ClientConfig>(
           0, 10, [](ClientConfig& c) -> double& { return c.channel.retry_budget.ratio; })},
      {"retry_budget.min_per_second", "...plus this many a second",
       IntRule<ClientConfig, int>(
           0, 1000000,
           [](ClientConfig& c) -> int& { return c.channel.retry_budget.min_per_second; })},
      {"retry_budget.backoff_ms", "a retry after a call that had left waits up to this x 2^n",
       MsRule<ClientConfig>(0,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.channel.retry_budget.backoff;
                            })},
      {"token_file", "file holding the bearer token sent with every call",
       StringRule<ClientConfig>([](ClientConfig& c) -> std::string& { return c.token_file; },
                                CheckReadable)},
      {"mode",
       "which side serves calls: local (App::Local), remote, shadow, shadow:remote, percent:N; "
       "default: local when App::Local registered one, else remote",
       {[](ClientConfig& c, const std::string& v) -> std::string {
          absl::StatusOr<MigrationMode> mode = MigrationMode::Parse(v);
          if (!mode.ok()) return "is not a mode (local, remote, shadow, shadow:remote, percent:N)";
          c.migration.mode = *mode;
          c.mode_set = true;
          return "";
        },
        [](ClientConfig& c) {
          return c.mode_set ? c.migration.mode.ToString()
                            : std::string("(local with App::Local, else remote)");
        }}},
      {"fallback_to_local",
       "a remote call that was never sent (no instance, circuit open) is served locally",
       BoolRule<ClientConfig>(
           [](ClientConfig& c) -> bool& { return c.migration.fallback_to_local; })},
      {"shadow_percent", "share of calls also sent to the shadow side, 0 to 100",
       DoubleRule<ClientConfig>(
           0, 100, [](ClientConfig& c) -> double& { return c.migration.shadow.percent; })},
      {"shadow_max_in_flight", "shadow calls in flight at once; more are skipped",
       IntRule<ClientConfig, int>(
           0, 10000, [](ClientConfig& c) -> int& { return c.migration.shadow.max_in_flight; })},
      {"shadow_timeout_ms", "deadline of a shadow call to the remote side",
       MsRule<ClientConfig>(1,
                            [](ClientConfig& c) -> std::chrono::milliseconds& {
                              return c.migration.shadow.timeout;
                            })},
      {"shadow_ignore_fields",
       "comma-separated fields left out of shadow comparisons: name, path.to.field, "
       "Method:field",
       ListRule([](ClientConfig& c) -> std::vector<std::string>& {
         return c.migration.shadow.ignore_fields;
       })},
      {"shadow_methods", "comma-separated non-idempotent methods that are safe to shadow",
       ListRule([](ClientConfig& c) -> std::vector<std::string>& {
         return c.migration.shadow.methods;
       })},
      {"thrift_format", "compact or binary (Thrift)",
       EnumRule<ClientConfig, WireFormat>(
           [](ClientConfig& c) -> WireFormat& { return c.channel.thrift_format; },
           {{"compact", WireFormat::kThriftCompact}, {"binary", WireFormat::kThriftBinary}})},
      {"thrift_compression",
       "a thrift client's requests: off, or zlib (THeader's zlib transform; the server must take "
       "it: rpcboot's server.thrift_compression zlib, or Python's THeader server)",
       EnumRule<ClientConfig, ThriftCompression>(
           [](ClientConfig& c) -> ThriftCompression& { return c.channel.thrift_compression; },
           {{"off", ThriftCompression::kOff}, {"zlib", ThriftCompression::kZlib}})},
  };
  return *keys;
}

std::string EnvName(const std::string& key) {
  return "RPCBOOT_" + absl::AsciiStrToUpper(absl::StrReplaceAll(key, {{".", "_"}}));
}

// What a config file may hold: far more than any real one, little enough that a file of
// aliases that nest into themselves or multiply (YAML's "billion laughs") stops with an error
// instead of taking the process's stack or memory.
constexpr int kMaxConfigDepth = 16;
constexpr std::size_t kMaxConfigSettings = 10000;
constexpr std::size_t kMaxConfigFileBytes = 4 << 20;
// A token file holds one token on its first line (a JWT is a few KiB).
constexpr std::size_t kMaxTokenFileBytes = 64 << 10;

// Flattens a YAML mapping into dotted keys.
absl::Status Flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
                     int depth, std::vector<Setting>* out) {
  std::string where = absl::StrCat(file, ":", node.Mark().line + 1);
  switch (node.Type()) {
    case YAML::NodeType::Map:
      if (depth >= kMaxConfigDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": mappings nested more than ", kMaxConfigDepth, " deep under '",
                         prefix.substr(0, prefix.find('.', prefix.find('.') + 1)),
                         "' (an alias that contains itself?)"));
      }
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(file, ":", entry.first.Mark().line + 1, ": a key must be a plain name"));
        }
        std::string key = entry.first.Scalar();
        if (absl::Status s = Flatten(entry.second, prefix.empty() ? key : prefix + "." + key, file,
                                     depth + 1, out);
            !s.ok())
          return s;
      }
      return absl::OkStatus();
    case YAML::NodeType::Scalar:
    case YAML::NodeType::Null:
      if (out->size() == kMaxConfigSettings) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": more than ", kMaxConfigSettings,
                                                       " settings (aliases that multiply?)"));
      }
      out->push_back({prefix, node.IsScalar() ? node.Scalar() : "", where});
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": a list from ", where, " where a single value belongs"));
  }
}

absl::Status Apply(const Setting& s, AppConfig* config) {
  auto fail = [&](const std::string& problem) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.key, ": '", s.value, "' from ", s.source, " ", problem));
  };
  // Values go into the registry's JSON, the status page, logs and peers' strings: UTF-8 only.
  auto utf8 = [](const std::string& text) {
    return internal::ValidUtf8(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  };
  for (const std::string* text : {&s.key, &s.value}) {
    if (!utf8(*text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          text == &s.key ? "a key" : s.key, ": '", absl::CHexEscape(*text), "' from ",
          utf8(s.source) ? s.source : absl::CHexEscape(s.source), " is not UTF-8 text"));
    }
  }
  for (const Key& key : Keys()) {
    if (s.key != key.name) continue;
    std::string problem = key.rule.set(*config, s.value);
    return problem.empty() ? absl::OkStatus() : fail(problem);
  }
  if (s.key == "settings") {  // `settings:` alone is an empty section
    return s.value.empty() ? absl::OkStatus()
                           : fail("is not a mapping (the application's keys go under settings:)");
  }
  if (s.key.rfind("settings.", 0) == 0) {
    if (s.key.size() == 9) return fail("names no key (settings.<key>=<value>)");
    config->settings.Set(s.key.substr(9), s.value, s.source);
    return absl::OkStatus();
  }
  if (s.key.rfind("clients.", 0) == 0) {
    // clients.<package.Service>.<field>, where a field may hold dots (tls.ca_file).
    for (const ClientKey& key : ClientKeys()) {
      std::string suffix = std::string(".") + key.field;
      if (s.key.size() <= 8 + suffix.size() ||
          s.key.compare(s.key.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      std::string service = s.key.substr(8, s.key.size() - suffix.size() - 8);
      if (service.find('.') == std::string::npos) continue;
      std::string problem = key.rule.set(config->clients[service], s.value);
      return problem.empty() ? absl::OkStatus() : fail(problem);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown key '", s.key, "' from ", s.source,
        ": client keys are clients.<package.Service>.<field>, fields app, address, protocol, "
        "grpc_client, grpc_compression, grpc_keepalive_*, load_balancer, timeout_ms, max_attempts, "
        "subset_size, "
        "subset_position, "
        "thrift_format, thrift_compression, "
        "tls.*, token_file, max_in_flight, outlier.*, circuit.*, retry_budget.*, mode, "
        "shadow_* (--help lists them)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown key '", s.key, "' from ", s.source,
                                                 " (rpcboot's keys: --help or "
                                                 "docs/configuration.md; the application's own "
                                                 "go under settings.)"));
}

// What `client.*` sets, for a client that does not set it itself.
void ApplyClientDefaults(const ClientConfig& defaults, ClientConfig* client) {
  TlsOptions& tls = client->channel.tls;
  const TlsOptions& base = defaults.channel.tls;
  tls.enabled = tls.enabled || base.enabled;
  for (auto [mine, theirs] :
       {std::pair{&tls.ca_file, &base.ca_file}, std::pair{&tls.cert_file, &base.cert_file},
        std::pair{&tls.key_file, &base.key_file}}) {
    if (mine->empty()) *mine = *theirs;
  }
  if (client->token_file.empty()) client->token_file = defaults.token_file;
}

// A client's TLS keys checked together, and its token read.
absl::Status FinishClient(const std::string& prefix, ClientConfig* client) {
  TlsOptions& tls = client->channel.tls;
  if (!tls.ca_file.empty() || !tls.cert_file.empty() || !tls.server_name.empty())
    tls.enabled = true;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ".tls: cert_file and key_file go together (mutual TLS needs both)"));
  }
  if (!client->token_file.empty()) {
    std::string text;
    internal::ReadFileResult read =
        internal::ReadFileUpTo(client->token_file, kMaxTokenFileBytes, &text);
    if (read != internal::ReadFileResult::kOk) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ".token_file: ", client->token_file, " ",
                       internal::ReadFileProblem(read, kMaxTokenFileBytes)));
    }
    std::string token(absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
    if (token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, ".token_file: ", client->token_file,
                                                     " holds no token on its first line"));
    }
    client->channel.bearer_token = token;
  }
  return absl::OkStatus();
}

absl::Status Finish(AppConfig* config) {
  if (config->name.empty()) {
    return absl::InvalidArgumentError(
        "app.name is missing: set it in the config file (app: {name: shop}), as RPCBOOT_APP_NAME "
        "or as --app.name=shop");
  }
  for (auto& [service, client] : config->clients) {
    if (client.app.empty()) client.app = service.substr(0, service.find('.'));
  }
  if (absl::Status s = FinishClient("client", &config->client_defaults); !s.ok()) return s;
  for (auto& [service, client] : config->clients) {
    ApplyClientDefaults(config->client_defaults, &client);
    if (absl::Status s = FinishClient("clients." + service, &client); !s.ok()) return s;
  }
  // The allow list's entries and the tokens file's lines, named now rather than at Start.
  if (absl::StatusOr<std::shared_ptr<const internal::CallGuard>> guard =
          internal::CallGuard::Make(config->server.auth);
      !guard.ok()) {
    return guard.status();
  }
  const TlsOptions& tls = config->server.tls;
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "server.tls: cert_file and key_file go together (both set for TLS, neither for "
        "plaintext)");
  }
  if (tls.cert_file.empty() && (!tls.ca_file.empty() || tls.require_client_cert)) {
    return absl::InvalidArgumentError(
        "server.tls.ca_file / require_client_cert need server.tls.cert_file and key_file: "
        "client certificates are asked for only over TLS");
  }
  if (tls.require_client_cert && tls.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "server.tls.require_client_cert needs server.tls.ca_file: the CAs that sign the client "
        "certificates");
  }
  return absl::OkStatus();
}

absl::StatusOr<AppConfig> Build(const std::vector<Setting>& settings) {
  AppConfig config;
  for (const Setting& s : settings) {
    if (absl::Status status = Apply(s, &config); !status.ok()) return status;
  }
  if (absl::Status s = Finish(&config); !s.ok()) return s;
  return config;
}

// Parses YAML text into settings from `source`.
absl::StatusOr<std::vector<Setting>> ReadYaml(const std::string& yaml, const std::string& source) {
  std::vector<Setting> settings;
  try {
    YAML::Node root = YAML::Load(yaml);
    if (root.IsNull()) return settings;
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the top level must be a mapping (app:, server:, ...)"));
    }
    if (absl::Status s = Flatten(root, "", source, 0, &settings); !s.ok()) return s;
  } catch (const YAML::DeepRecursion& e) {  // its own words are "bad file"
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": not YAML: nested ",
                                                   e.depth(), " deep"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not YAML: ", e.msg));
  } catch (const std::exception& e) {  // out of memory while building the tree
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", source, " cannot be read: ", e.what()));
  }
  // YAML lets a later key silently replace an earlier one; a config file saying two things is
  // a mistake worth naming.
  std::map<std::string, const Setting*> seen;
  for (const Setting& setting : settings) {
    auto [it, fresh] = seen.emplace(setting.key, &setting);
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat(
          setting.key, " is set twice: at ", it->second->source, " and at ", setting.source));
    }
  }
  return settings;
}

}  // namespace

const Settings::Value* Settings::Find(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return nullptr;
  it->second.read.store(true, std::memory_order_relaxed);
  return &it->second;
}

std::string Settings::String(std::string_view key, std::string fallback) const {
  const Value* v = Find(key);
  return v != nullptr ? v->value : fallback;
}

absl::StatusOr<int64_t> Settings::Int(std::string_view key, int64_t fallback, int64_t min,
                                      int64_t max) const {
  const Value* v = Find(key);
  if (v == nullptr) return fallback;
  int64_t out = 0;
  if (std::string problem = SetInt(v->value, min, max, &out); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("settings.", std::string(key), ": '", v->value,
                                                   "' from ", v->source, " ", problem));
  }
  return out;
}

absl::StatusOr<bool> Settings::Bool(std::string_view key, bool fallback) const {
  const Value* v = Find(key);
  if (v == nullptr) return fallback;
  bool out = false;
  if (std::string problem = ParseBool(v->value, &out); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("settings.", std::string(key), ": '", v->value,
                                                   "' from ", v->source, " ", problem));
  }
  return out;
}

bool Settings::Has(std::string_view key) const { return Find(key) != nullptr; }

void Settings::Set(const std::string& key, std::string value, std::string source) {
  values_.insert_or_assign(key, Value(std::move(value), std::move(source)));
}

std::vector<std::pair<std::string, std::string>> Settings::Shown() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, v] : values_) {
    std::string lower = absl::AsciiStrToLower(key);
    bool secret = false;
    for (const char* word : {"password", "passwd", "secret", "token", "credential"})
      secret = secret || lower.find(word) != std::string::npos;
    out.emplace_back(key, secret && !v.value.empty() ? "(redacted)" : v.value);
  }
  return out;
}

std::vector<std::string> Settings::Unread() const {
  std::vector<std::string> out;
  for (const auto& [key, v] : values_) {
    if (!v.read.load(std::memory_order_relaxed))
      out.push_back(absl::StrCat("settings.", std::string(key), " from ", v.source));
  }
  return out;
}

absl::StatusOr<AppConfig> ParseConfig(const std::string& yaml, const std::string& source) {
  absl::StatusOr<std::vector<Setting>> settings = ReadYaml(yaml, source);
  if (!settings.ok()) return settings.status();
  return Build(*settings);
}

absl::StatusOr<AppConfig> LoadConfig(const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>* env) {
  std::string file;
  std::vector<Setting> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if ((arg == "--config" && i + 1 < args.size()) || arg.rfind("--config=", 0) == 0) {
      file = arg == "--config" ? args[++i] : arg.substr(9);
      // An empty name is a script's unset variable (--config=$CONFIG), not "no file".
      if (file.empty()) return absl::InvalidArgumentError("command line: --config names no file");
      continue;
    }
    std::size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos || arg.find('.') > eq) {
      return absl::InvalidArgumentError(absl::StrCat(
          "command line: '", arg,
          "' is not --config=FILE or --<key>=<value> (as in --server.grpc_port=9091)"));
    }
    flags.push_back(
        {arg.substr(2, eq - 2), arg.substr(eq + 1), "command line " + arg.substr(0, eq)});
  }
  std::vector<Setting> settings;
  if (!file.empty()) {
    // Read with a bound: --config=/dev/zero (or a log given by mistake) must not fill memory.
    std::string text;
    internal::ReadFileResult read = internal::ReadFileUpTo(file, kMaxConfigFileBytes, &text);
    if (read == internal::ReadFileResult::kIsDirectory) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", file, " is a directory (give the YAML file itself)"));
    }
    if (read == internal::ReadFileResult::kCannotRead)
      return absl::NotFoundError(absl::StrCat("config file ", file, " cannot be read"));
    if (read != internal::ReadFileResult::kOk) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config file ", file, " ", internal::ReadFileProblem(read, kMaxConfigFileBytes)));
    }
    absl::StatusOr<std::vector<Setting>> from_file = ReadYaml(text, file);
    if (!from_file.ok()) return from_file.status();
    settings = std::move(*from_file);
  }
  std::map<std::string, std::string> process_env;
  if (env == nullptr) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      std::size_t eq = entry.find('=');
      if (entry.rfind("RPCBOOT_", 0) == 0 && eq != std::string::npos)
        process_env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
    env = &process_env;
  }
  for (const Key& key : Keys()) {
    auto it = env->find(EnvName(key.name));
    if (it != env->end()) settings.push_back({key.name, it->second, "environment " + it->first});
  }
  // A misspelt variable would otherwise be ignored without a word. Reported, not fatal: scripts
  // around rpcboot set variables of their own under the prefix.
  for (const auto& [name, value] : *env) {
    if (name.rfind("RPCBOOT_", 0) != 0 || name == "RPCBOOT_LOG_LEVEL" ||
        name == "RPCBOOT_ABSL_DEADLOCK_DETECTION") {
      continue;  // the logger's own, and the gRPC transports' (internal/abseil_mutex.h)
    }
    bool known = std::any_of(Keys().begin(), Keys().end(),
                             [&](const Key& key) { return EnvName(key.name) == name; });
    if (!known) {
      internal::Log(LogLevel::kWarning, absl::StrCat("environment ", name,
                                                     " is not an rpcboot setting; ignored "
                                                     "(settings: --help)"));
    }
  }
  settings.insert(settings.end(), flags.begin(), flags.end());
  return Build(settings);
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

std::vector<std::pair<std::string, std::string>> EffectiveConfig(const AppConfig& config) {
  AppConfig copy = config;
  std::vector<std::pair<std::string, std::string>> out;
  for (const Key& key : Keys()) {
    std::string value = key.rule.show(copy);
    // The password of user:password never leaves the process.
    if (std::string_view(key.name) == "registry.digest" && !config.registry.digest.empty())
      value = config.registry.digest.substr(0, config.registry.digest.find(':')) + ":(redacted)";
    out.emplace_back(key.name, std::move(value));
  }
  for (auto& [service, client] : copy.clients) {
    for (const ClientKey& key : ClientKeys()) {
      out.emplace_back(absl::StrCat("clients.", service, ".", key.field), key.rule.show(client));
    }
  }
  for (auto& [key, value] : config.settings.Shown()) out.emplace_back("settings." + key, value);
  return out;
}

std::string ConfigHelp() {
  std::string help =
      "rpcboot configuration: --config=FILE (YAML), RPCBOOT_<KEY> environment variables, "
      "--<key>=<value> flags (later ones win)\n\n";
  AppConfig defaults;
  for (const Key& key : Keys()) {
    absl::StrAppend(&help, "  ", key.name, " (", EnvName(key.name), ", default ",
                    key.rule.show(defaults), ")\n      ", key.meaning, "\n");
  }
  absl::StrAppend(&help, "\n  clients.<package.Service>.<field>, fields:\n");
  ClientConfig client_defaults;
  for (const ClientKey& key : ClientKeys()) {
    absl::StrAppend(&help, "    ", key.field, " (default ", key.rule.show(client_defaults),
                    ")\n      ", key.meaning, "\n");
  }
  absl::StrAppend(&help,
                  "\n  settings.<key>\n      the application's own keys (file and flags, not "
                  "the environment); the application reads them through AppConfig::settings\n");
  return help;
}

}  // namespace rpcboot
