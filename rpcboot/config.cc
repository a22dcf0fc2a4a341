#include "rpcboot/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "discovery/session.h"

extern char** environ;

namespace rpcboot {
namespace {

// One value as read, with where it came from.
struct Setting {
  std::string key;
  std::string value;
  std::string source;  // "shop.yaml:3", "environment RPCBOOT_X", "command line --x"
};

// A problem with a value: "is not an integer in -1..65535".
using Setter = std::function<std::string(AppConfig&, const std::string&)>;

struct Key {
  const char* name;
  const char* default_text;
  const char* meaning;
  Setter set;
};

std::string SetInt(const std::string& value, int64_t min, int64_t max, int64_t* out) {
  int64_t v;
  if (!absl::SimpleAtoi(value, &v) || v < min || v > max)
    return absl::StrCat("is not an integer in ", min, "..", max);
  *out = v;
  return "";
}

Setter IntKey(int64_t min, int64_t max, std::function<void(AppConfig&, int64_t)> assign) {
  return [=](AppConfig& c, const std::string& value) {
    int64_t v = 0;
    std::string problem = SetInt(value, min, max, &v);
    if (problem.empty()) assign(c, v);
    return problem;
  };
}

Setter MsKey(int64_t min, std::function<std::chrono::milliseconds&(AppConfig&)> field) {
  return IntKey(min, int64_t{24} * 3600 * 1000,
                [=](AppConfig& c, int64_t v) { field(c) = std::chrono::milliseconds(v); });
}

Setter StringKey(std::function<std::string&(AppConfig&)> field) {
  return [=](AppConfig& c, const std::string& value) {
    field(c) = value;
    return std::string();
  };
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

const std::vector<Key>& Keys() {
  static const auto* keys = new std::vector<Key>{
      {"app.name", "(required)", "the application's name in the registry: <base>/<name>/<id>",
       [](AppConfig& c, const std::string& v) -> std::string {
         if (v.empty() || v.find('/') != std::string::npos)
           return "is not a name (non-empty, no '/')";
         c.name = v;
         return "";
       }},
      {"app.version", "1.0.0", "written as rpcboot.version",
       StringKey([](AppConfig& c) -> std::string& { return c.version; })},
      {"app.zone", "", "written as rpcboot.zone",
       StringKey([](AppConfig& c) -> std::string& { return c.zone; })},
      {"server.host", "0.0.0.0", "the address the ports bind",
       StringKey([](AppConfig& c) -> std::string& { return c.server.host; })},
      {"server.advertise_host", "(detected)",
       "the address clients connect to, written in the registry; default: server.host unless "
       "it is 0.0.0.0, else this machine's first non-loopback IPv4 address",
       StringKey([](AppConfig& c) -> std::string& { return c.advertise_host; })},
      {"server.grpc_port", "-1", "gRPC port; 0: pick a free one; -1: no gRPC",
       IntKey(-1, 65535,
              [](AppConfig& c, int64_t v) { c.server.grpc_port = static_cast<int>(v); })},
      {"server.thrift_port", "-1", "Thrift port; 0: pick a free one; -1: no Thrift",
       IntKey(-1, 65535,
              [](AppConfig& c, int64_t v) { c.server.thrift_port = static_cast<int>(v); })},
      {"server.handler_threads", "0", "gRPC handler threads; 0: twice the cores, at least 8",
       IntKey(0, 4096,
              [](AppConfig& c, int64_t v) { c.server.handler_threads = static_cast<int>(v); })},
      {"server.max_message_bytes", "16777216", "largest request or reply",
       IntKey(1024, int64_t{1} << 30,
              [](AppConfig& c, int64_t v) {
                c.server.max_message_bytes = static_cast<std::size_t>(v);
              })},
      {"server.idle_timeout_ms", "60000", "Thrift: close a connection silent for this long",
       MsKey(1, [](AppConfig& c) -> std::chrono::milliseconds& { return c.server.idle_timeout; })},
      {"server.shutdown_grace_ms", "5000", "on shutdown, how long in-flight calls may take",
       MsKey(0,
             [](AppConfig& c) -> std::chrono::milliseconds& { return c.server.shutdown_grace; })},
      {"server.weight", "100", "written as rpcboot.weight (weighted_random balancers)",
       IntKey(1, 1000000, [](AppConfig& c, int64_t v) { c.weight = static_cast<int>(v); })},
      {"registry.zookeeper", "",
       "ZooKeeper connect string host:port,host:port[/chroot]; empty: "
       "no registration",
       [](AppConfig& c, const std::string& v) -> std::string {
         if (!v.empty()) {
           absl::Status s = discovery::Session::Validate(discovery::SessionOptions{v});
           if (!s.ok()) return "is not a connect string: " + std::string(s.message());
         }
         c.registry.zookeeper = v;
         return "";
       }},
      {"registry.base_path", "/services", "parent of the application nodes",
       [](AppConfig& c, const std::string& v) -> std::string {
         if (v.empty() || v[0] != '/' || (v.size() > 1 && v.back() == '/') ||
             v.find("//") != std::string::npos)
           return "is not a ZooKeeper path (starts with '/', no trailing or double '/')";
         c.registry.base_path = v;
         return "";
       }},
      {"registry.session_timeout_ms", "10000", "ZooKeeper session timeout",
       MsKey(
           100,
           [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.session_timeout; })},
      {"registry.digest", "", "user:password: only this identity may change the instance node",
       [](AppConfig& c, const std::string& v) -> std::string {
         if (!v.empty() && v.find(':') == std::string::npos) return "is not user:password";
         c.registry.digest = v;
         return "";
       }},
      {"registry.fail_fast", "false",
       "fail at start when ZooKeeper is unreachable (else serve and keep trying)",
       [](AppConfig& c, const std::string& v) { return ParseBool(v, &c.registry.fail_fast); }},
      {"registry.connect_timeout_ms", "5000", "how long start waits for ZooKeeper",
       MsKey(
           0,
           [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.connect_timeout; })},
      {"registry.drain_ms", "1000", "on shutdown, time between deregistering and closing the ports",
       MsKey(0, [](AppConfig& c) -> std::chrono::milliseconds& { return c.registry.drain; })},
  };
  return *keys;
}

struct ClientKey {
  const char* field;
  const char* default_text;
  const char* meaning;
  std::function<std::string(ClientConfig&, const std::string&)> set;
};

const std::vector<ClientKey>& ClientKeys() {
  static const auto* keys = new std::vector<ClientKey>{
      {"app", "(the service's package)", "the application serving it, as registered",
       [](ClientConfig& c, const std::string& v) -> std::string {
         if (v.empty() || v.find('/') != std::string::npos) return "is not a name";
         c.app = v;
         return "";
       }},
      {"address", "(this app's registry)",
       "static://h:p,h:p, zk://h:p/services/<app> or h:p instead of the registry",
       [](ClientConfig& c, const std::string& v) {
         c.address = v;
         return std::string();
       }},
      {"protocol", "grpc", "grpc or thrift",
       [](ClientConfig& c, const std::string& v) -> std::string {
         if (v == "grpc") {
           c.protocol = Protocol::kGrpc;
         } else if (v == "thrift") {
           c.protocol = Protocol::kThrift;
         } else {
           return "is not grpc or thrift";
         }
         return "";
       }},
      {"load_balancer", "p2c", "p2c, round_robin, weighted_random, consistent_hash, or your own",
       // Checked when the client is made: balancers of one's own may be registered later.
       [](ClientConfig& c, const std::string& v) -> std::string {
         if (v.empty()) return "is empty";
         c.channel.load_balancer = v;
         return "";
       }},
      {"timeout_ms", "5000", "deadline of a call that sets none",
       [](ClientConfig& c, const std::string& v) {
         int64_t ms = 0;
         std::string problem = SetInt(v, 1, int64_t{24} * 3600 * 1000, &ms);
         if (problem.empty()) c.channel.default_timeout = std::chrono::milliseconds(ms);
         return problem;
       }},
      {"max_attempts", "3", "instances one call may try when retrying is safe",
       [](ClientConfig& c, const std::string& v) {
         int64_t n = 0;
         std::string problem = SetInt(v, 1, 10, &n);
         if (problem.empty()) c.channel.max_attempts = static_cast<int>(n);
         return problem;
       }},
      {"thrift_format", "compact", "compact or binary (Thrift)",
       [](ClientConfig& c, const std::string& v) -> std::string {
         if (v == "compact") {
           c.channel.thrift_format = WireFormat::kThriftCompact;
         } else if (v == "binary") {
           c.channel.thrift_format = WireFormat::kThriftBinary;
         } else {
           return "is not compact or binary";
         }
         return "";
       }},
  };
  return *keys;
}

std::string EnvName(const std::string& key) {
  return "RPCBOOT_" + absl::AsciiStrToUpper(absl::StrReplaceAll(key, {{".", "_"}}));
}

// Flattens a YAML mapping into dotted keys.
absl::Status Flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
                     std::vector<Setting>* out) {
  std::string where = absl::StrCat(file, ":", node.Mark().line + 1);
  switch (node.Type()) {
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(file, ":", entry.first.Mark().line + 1, ": a key must be a plain name"));
        }
        std::string key = entry.first.Scalar();
        if (absl::Status s =
                Flatten(entry.second, prefix.empty() ? key : prefix + "." + key, file, out);
            !s.ok())
          return s;
      }
      return absl::OkStatus();
    case YAML::NodeType::Scalar:
      out->push_back({prefix, node.Scalar(), where});
      return absl::OkStatus();
    case YAML::NodeType::Null:
      out->push_back({prefix, "", where});
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
  for (const Key& key : Keys()) {
    if (s.key != key.name) continue;
    std::string problem = key.set(*config, s.value);
    return problem.empty() ? absl::OkStatus() : fail(problem);
  }
  if (s.key.rfind("clients.", 0) == 0) {
    std::size_t last = s.key.rfind('.');
    std::string service = s.key.substr(8, last > 8 ? last - 8 : 0);
    std::string field = s.key.substr(last + 1);
    if (!service.empty() && service.find('.') != std::string::npos) {
      for (const ClientKey& key : ClientKeys()) {
        if (field != key.field) continue;
        std::string problem = key.set(config->clients[service], s.value);
        return problem.empty() ? absl::OkStatus() : fail(problem);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown key '", s.key, "' from ", s.source,
        ": client keys are clients.<package.Service>.<field>, fields app, address, protocol, "
        "load_balancer, timeout_ms, max_attempts, thrift_format"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown key '", s.key, "' from ", s.source,
                                                 " (rpcboot's keys: --help or "
                                                 "docs/configuration.md)"));
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

// Parses what `load` returns (YAML::Load or YAML::LoadFile) into settings from `source`.
template <class LoadFn>
absl::StatusOr<std::vector<Setting>> ReadYaml(LoadFn load, const std::string& source) {
  std::vector<Setting> settings;
  try {
    YAML::Node root = load();
    if (root.IsNull()) return settings;
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the top level must be a mapping (app:, server:, ...)"));
    }
    if (absl::Status s = Flatten(root, "", source, &settings); !s.ok()) return s;
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("config file ", source, " cannot be read"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not YAML: ", e.msg));
  }
  return settings;
}

}  // namespace

absl::StatusOr<AppConfig> ParseConfig(const std::string& yaml, const std::string& source) {
  absl::StatusOr<std::vector<Setting>> settings =
      ReadYaml([&] { return YAML::Load(yaml); }, source);
  if (!settings.ok()) return settings.status();
  return Build(*settings);
}

absl::StatusOr<AppConfig> LoadConfig(const std::vector<std::string>& args,
                                     const std::map<std::string, std::string>* env) {
  std::string file;
  std::vector<Setting> flags;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--config" && i + 1 < args.size()) {
      file = args[++i];
      continue;
    }
    if (arg.rfind("--config=", 0) == 0) {
      file = arg.substr(9);
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
    absl::StatusOr<std::vector<Setting>> from_file =
        ReadYaml([&] { return YAML::LoadFile(file); }, file);
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
  settings.insert(settings.end(), flags.begin(), flags.end());
  return Build(settings);
}

std::string ConfigHelp() {
  std::string help =
      "rpcboot configuration: --config=FILE (YAML), RPCBOOT_<KEY> environment variables, "
      "--<key>=<value> flags (later ones win)\n\n";
  for (const Key& key : Keys()) {
    absl::StrAppend(&help, "  ", key.name, " (", EnvName(key.name), ", default ",
                    key.default_text[0] ? key.default_text : "empty", ")\n      ", key.meaning,
                    "\n");
  }
  absl::StrAppend(&help, "\n  clients.<package.Service>.<field>, fields:\n");
  for (const ClientKey& key : ClientKeys()) {
    absl::StrAppend(&help, "    ", key.field, " (default ", key.default_text, ")\n      ",
                    key.meaning, "\n");
  }
  return help;
}

}  // namespace rpcboot
