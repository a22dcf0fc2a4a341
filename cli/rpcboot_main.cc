// rpcboot: the command-line tool for people poking at a running system.
//
//   rpcboot ls zk://HOST:PORT[,HOST:PORT]/services          every application and its instances
//   rpcboot ls zk://HOST:PORT/services/shop                 one application's instances
//   rpcboot health HOST:PORT [SERVICE]                      grpc.health.v1.Health/Check
//   rpcboot health zk://HOST:PORT/services/shop [SERVICE]   every instance of an application
//   rpcboot health http://HOST:PORT                         an admin port's /health
//
// Flags (before or after the command): --timeout_ms=N (default 3000). Exit status: 0 when
// everything asked about is serving (or listed), 1 when something is not, 2 for bad usage or
// an address that cannot be read.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "discovery/instance.h"
#include "discovery/session.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/address.h"
#include "rpcboot/transport/grpc_bytes.h"

namespace {

using rpcboot::discovery::Instance;
using rpcboot::discovery::Session;

constexpr const char* kUsage =
    "usage: rpcboot [--timeout_ms=N] ls zk://HOST:PORT/BASE[/APP]\n"
    "       rpcboot [--timeout_ms=N] health ADDRESS [SERVICE]\n"
    "  ADDRESS: HOST:PORT (gRPC health), zk://HOST:PORT/BASE/APP (each instance), or\n"
    "           http://HOST:PORT (an admin port's /health)\n";

int Usage(const std::string& problem) {
  std::fprintf(stderr, "rpcboot: %s\n%s", problem.c_str(), kUsage);
  return 2;
}

// A ZooKeeper session, connected, or the reason it is not.
std::unique_ptr<Session> Connect(const std::string& connect, std::chrono::milliseconds timeout,
                                 std::string* error) {
  rpcboot::discovery::SessionOptions options;
  options.connect = connect;
  options.session_timeout = std::chrono::milliseconds(std::max<int64_t>(timeout.count(), 2000));
  if (absl::Status s = Session::Validate(options); !s.ok()) {
    *error = std::string(s.message());
    return nullptr;
  }
  auto session = std::make_unique<Session>(options);
  session->Start();
  if (!session->WaitConnected(timeout)) {
    *error = absl::StrCat("ZooKeeper ", connect, " did not answer within ", timeout.count(), " ms");
    return nullptr;
  }
  return session;
}

struct Listed {
  std::string app;
  std::vector<Instance> instances;
  std::vector<std::string> unreadable;  // node names whose data is not an instance
};

// The instances under `path` (an application node), or, when its children are not instances,
// the applications under it (a base path).
absl::StatusOr<std::vector<Listed>> List(Session& session, const std::string& path) {
  absl::StatusOr<std::vector<std::string>> children = session.Children(path, false);
  if (!children.ok()) return children.status();
  auto read_app = [&](const std::string& app_path, const std::vector<std::string>& names) {
    Listed listed;
    listed.app = app_path.substr(app_path.rfind('/') + 1);
    std::vector<std::string> paths;
    for (const std::string& n : names) paths.push_back(app_path + "/" + n);
    std::vector<absl::StatusOr<Session::Node>> nodes = session.GetMany(paths, false);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      absl::StatusOr<Instance> instance = nodes[i].ok()
                                              ? rpcboot::discovery::ParseInstance(nodes[i]->data)
                                              : absl::StatusOr<Instance>(nodes[i].status());
      if (instance.ok()) {
        listed.instances.push_back(*std::move(instance));
      } else {
        listed.unreadable.push_back(names[i]);
      }
    }
    return listed;
  };
  Listed here = read_app(path, *children);
  if (!here.instances.empty() || children->empty()) return std::vector<Listed>{here};
  // No child is an instance: a base path, whose children are applications.
  std::vector<Listed> apps;
  for (const std::string& app : *children) {
    std::string app_path = (path == "/" ? "" : path) + "/" + app;
    absl::StatusOr<std::vector<std::string>> names = session.Children(app_path, false);
    if (!names.ok()) continue;  // gone meanwhile
    apps.push_back(read_app(app_path, *names));
  }
  return apps;
}

std::string Protocols(const Instance& i) {
  std::string out;
  for (const char* protocol : {"grpc", "thrift"}) {
    if (std::optional<int> port = i.PortFor(protocol))
      absl::StrAppend(&out, out.empty() ? "" : " ", protocol, ":", *port);
  }
  return out.empty() ? "(none rpcboot speaks)" : out;
}

std::string NodePath(const rpcboot::internal::ZooKeeperAddress& zk) {
  return (zk.base == "/" ? "" : zk.base) + "/" + zk.app;
}

int Ls(const std::string& address, std::chrono::milliseconds timeout) {
  absl::StatusOr<rpcboot::internal::Address> parsed = rpcboot::internal::ParseAddress(address);
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  if (parsed->kind != rpcboot::internal::Address::Kind::kZooKeeper)
    return Usage("ls reads a registry: give a zk:// address, not '" + address + "'");
  std::string error;
  std::unique_ptr<Session> session = Connect(parsed->zookeeper.connect, timeout, &error);
  if (session == nullptr) {
    std::fprintf(stderr, "rpcboot: %s\n", error.c_str());
    return 2;
  }
  std::string path = NodePath(parsed->zookeeper);
  absl::StatusOr<std::vector<Listed>> apps = List(*session, path);
  if (!apps.ok()) {
    std::fprintf(stderr, "rpcboot: cannot list %s in ZooKeeper %s: %s\n", path.c_str(),
                 parsed->zookeeper.connect.c_str(), std::string(apps.status().message()).c_str());
    return 2;
  }
  std::printf("%-16s %-36s %-22s %-26s %-14s %-4s %s\n", "APP", "ID", "ADDRESS", "PROTOCOLS",
              "STATUS", "TLS", "VERSION");
  for (const Listed& app : *apps) {
    for (const Instance& i : app.instances) {
      auto status = i.metadata.find("instance_status");
      std::string version = i.metadata.count(std::string(rpcboot::discovery::kVersionKey))
                                ? i.metadata.at(std::string(rpcboot::discovery::kVersionKey))
                                : "";
      std::printf("%-16s %-36s %-22s %-26s %-14s %-4s %s\n", app.app.c_str(), i.id.c_str(),
                  absl::StrCat(i.address, ":", i.port).c_str(), Protocols(i).c_str(),
                  status == i.metadata.end() ? "(no status)" : status->second.c_str(),
                  i.ServesTls() ? "yes" : "no", version.c_str());
    }
    for (const std::string& bad : app.unreadable) {
      std::printf("%-16s %-36s (not an instance: unreadable JSON)\n", app.app.c_str(), bad.c_str());
    }
    if (app.instances.empty() && app.unreadable.empty())
      std::printf("%-16s (no instances)\n", app.app.c_str());
  }
  return 0;
}

// grpc.health.v1.Health/Check of `service` at `target`: "SERVING", "NOT_SERVING",
// "SERVICE_UNKNOWN", ... or the call's error (*ok false).
std::string GrpcHealth(const std::string& target, const std::string& service,
                       std::chrono::milliseconds timeout, bool* serving) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  // HealthCheckRequest { string service = 1; }
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    std::size_t n = service.size();
    while (n >= 0x80) {
      request.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    request.push_back(static_cast<char>(n));
    request += service;
  }
  grpc::ByteBuffer reply;
  grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                   grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(), method, &context, rpcboot::internal::ToByteBuffer(request), &reply);
  *serving = false;
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::NOT_FOUND)
      return "SERVICE_UNKNOWN (the server has no service '" + service + "')";
    return absl::StrCat("unreachable or no health service: ", status.error_message(), " (",
                        static_cast<int>(status.error_code()), ")");
  }
  // HealthCheckResponse { ServingStatus status = 1; }: 0x08 <varint>, or empty for UNKNOWN.
  std::string bytes = rpcboot::internal::ToBytes(reply);
  int value = bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;
  *serving = value == 1;
  switch (value) {
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

int Health(const std::string& address, const std::string& service,
           std::chrono::milliseconds timeout) {
  if (address.rfind("http://", 0) == 0) {
    httplib::Client http(address);
    http.set_connection_timeout(timeout);
    http.set_read_timeout(timeout);
    auto res = http.Get("/health");
    if (!res) {
      std::printf("%s: unreachable (%s)\n", address.c_str(),
                  httplib::to_string(res.error()).c_str());
      return 1;
    }
    std::string body = res->body;
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    std::printf("%s: %s (HTTP %d)\n", address.c_str(), body.c_str(), res->status);
    return res->status == 200 ? 0 : 1;
  }
  absl::StatusOr<rpcboot::internal::Address> parsed = rpcboot::internal::ParseAddress(address);
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  std::vector<std::pair<std::string, std::string>> targets;  // (what, host:port or "" + why)
  if (parsed->kind == rpcboot::internal::Address::Kind::kZooKeeper) {
    std::string error;
    std::unique_ptr<Session> session = Connect(parsed->zookeeper.connect, timeout, &error);
    if (session == nullptr) {
      std::fprintf(stderr, "rpcboot: %s\n", error.c_str());
      return 2;
    }
    absl::StatusOr<std::vector<Listed>> apps = List(*session, NodePath(parsed->zookeeper));
    if (!apps.ok()) {
      std::fprintf(stderr, "rpcboot: cannot list %s: %s\n", address.c_str(),
                   std::string(apps.status().message()).c_str());
      return 2;
    }
    for (const Listed& app : *apps) {
      for (const Instance& i : app.instances) {
        std::string what = app.app + " " + i.id;
        std::optional<int> grpc = i.PortFor("grpc");
        targets.push_back({what, grpc ? absl::StrCat(i.address, ":", *grpc) : std::string()});
      }
    }
    if (targets.empty()) {
      std::printf("%s: no instances registered\n", address.c_str());
      return 1;
    }
  } else {
    for (const std::string& endpoint : parsed->endpoints) targets.push_back({endpoint, endpoint});
  }
  int failed = 0;
  for (const auto& [what, target] : targets) {
    if (target.empty()) {
      std::printf("%s: no gRPC port (Thrift only: ask its admin port's /health)\n", what.c_str());
      ++failed;
      continue;
    }
    bool serving = false;
    std::string said = GrpcHealth(target, service, timeout, &serving);
    std::printf("%s%s%s: %s\n", what.c_str(), what == target ? "" : " at ",
                what == target ? "" : target.c_str(), said.c_str());
    failed += serving ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The tool's own output says what happened; the library's informational lines would only
  // repeat it.
  rpcboot::SetLogSink([](rpcboot::LogLevel level, std::string_view message) {
    if (level != rpcboot::LogLevel::kInfo)
      std::fprintf(stderr, "rpcboot: %.*s\n", static_cast<int>(message.size()), message.data());
  });
  std::chrono::milliseconds timeout(3000);
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (a.rfind("--timeout_ms=", 0) == 0) {
      int ms = 0;
      if (!absl::SimpleAtoi(a.substr(13), &ms) || ms <= 0 || ms > 600000)
        return Usage("--timeout_ms: '" + a.substr(13) + "' is not a number of ms in 1..600000");
      timeout = std::chrono::milliseconds(ms);
      continue;
    }
    if (a.rfind("--", 0) == 0) return Usage("unknown flag '" + a + "'");
    args.push_back(a);
  }
  if (args.empty()) return Usage("no command");
  const std::string& command = args[0];
  if (command == "ls") {
    if (args.size() != 2) return Usage("ls takes one zk:// address");
    return Ls(args[1], timeout);
  }
  if (command == "health") {
    if (args.size() < 2 || args.size() > 3) return Usage("health takes an address and a service");
    return Health(args[1], args.size() == 3 ? args[2] : "", timeout);
  }
  if (command == "describe" || command == "call") {
    return Usage("'" + command +
                 "' is not built yet (it needs gRPC reflection): ls and health are");
  }
  return Usage("unknown command '" + command + "'");
}
