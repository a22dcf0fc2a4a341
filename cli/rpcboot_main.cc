// rpcboot: the command-line tool for people poking at a running system.
//
//   rpcboot ls zk://HOST:PORT[,HOST:PORT]/services          every application and its instances
//   rpcboot ls zk://HOST:PORT/services/shop                 one application's instances
//   rpcboot health HOST:PORT [SERVICE]                      grpc.health.v1.Health/Check
//   rpcboot health zk://HOST:PORT/services/shop [SERVICE]   every instance of an application
//   rpcboot health http://HOST:PORT                         an admin port's /health
//   rpcboot describe ADDRESS [SERVICE]                      services, methods, message types
//   rpcboot call ADDRESS pkg.Service/Method 'JSON'          one call, JSON in and out
//
// describe and call learn the services from the server: gRPC server reflection, or on a Thrift
// port rpcboot.ThriftReflection (or a schema file, --schema=<stem>.thrift.json); no IDL needed.
// ADDRESS is HOST:PORT, static://HOST:PORT,... (the first that accepts a connection) or
// zk://HOST:PORT/BASE/APP (the first UP instance with a gRPC port, else one with a Thrift port).
// --protocol=thrift|grpc chooses; HOST:PORT is gRPC unless it says thrift (or a --schema is given).
//
// Flags (before or after the command): --timeout_ms=N (default 3000); --token_file=F sends the
// bearer token on F's first line with every call (servers with server.auth); --tls_ca=F
// connects over TLS, trusting the PEM certificates in F; --tls_cert=F and --tls_key=F present a
// client certificate (mutual TLS); --tls_server_name=N checks the server's certificate for N
// instead of the host called; --metadata=KEY=VALUE (repeatable) gives `call` metadata of its own
// (gRPC metadata, THeader headers on Thrift). Exit status: 0
// when everything asked about is serving (or listed, described, answered), 1 when something is not
// (a call's error, a server not serving), 2 for bad usage, bad JSON, an unknown service or
// method, or an address that cannot be read.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/thrift_schema.h"
#include "discovery/instance.h"
#include "discovery/session.h"
#include "rpcboot/base/internal/host_port.h"
#include "rpcboot/base/internal/read_file.h"
#include "rpcboot/base/log.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/address.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/migration.h"
#include "rpcboot/status.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/thrift_reflection.h"

namespace {

using rpcboot::discovery::Instance;
using rpcboot::discovery::Session;

// --token_file's token: sent as "authorization: Bearer <token>" on every gRPC call.
std::string g_token;

void Authorize(grpc::ClientContext* context) {
  if (!g_token.empty()) context->AddMetadata("authorization", "Bearer " + g_token);
}

// --metadata=KEY=VALUE flags, in order: the call's own metadata (gRPC metadata; THeader headers
// on Thrift), for `call`.
rpcboot::CallOptions g_call_options;

// --tls_*: empty root_certs means plaintext. The files' contents (gRPC) and paths (Thrift).
struct TlsFlags {
  std::string root_certs, cert_chain, private_key, server_name;
  std::string ca_file, cert_file, key_file;
};
TlsFlags g_tls;

// --protocol: "" (gRPC, or what a zk:// instance serves), "grpc" or "thrift"; --schema: a
// Thrift schema file to use instead of asking the server.
std::string g_protocol;
std::string g_schema_file;
// --compression: "" (none), "gzip" (gRPC requests) or "zlib" (Thrift requests, THeader's zlib
// transform).
std::string g_compression;

// A gRPC channel to `target`, over TLS when --tls_ca was given.
std::shared_ptr<grpc::Channel> GrpcChannel(const std::string& target) {
  grpc::ChannelArguments args;
  if (g_compression == "gzip") args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  if (g_tls.root_certs.empty())
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = g_tls.root_certs;
  ssl.pem_cert_chain = g_tls.cert_chain;
  ssl.pem_private_key = g_tls.private_key;
  if (!g_tls.server_name.empty()) args.SetSslTargetNameOverride(g_tls.server_name);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

// Everything the tool writes goes through here: what it prints comes from registrations,
// servers' replies and status messages, so a control character in them (an escape sequence that
// would retitle, recolour or rewrite the operator's terminal) is written as \u00XX, which keeps
// JSON output valid and equal in value. Kept: newline and tab.
__attribute__((format(printf, 2, 3))) void Print(std::FILE* out, const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::va_list again;
  va_copy(again, args);
  int size = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text(size > 0 ? static_cast<std::size_t>(size) : 0, '\0');
  if (size > 0) std::vsnprintf(text.data(), text.size() + 1, format, again);
  va_end(again);
  std::string safe;
  safe.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    unsigned code = 0x100;  // none
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      code = c;
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      code = static_cast<unsigned char>(text[++i]);  // a C1 control (U+0080..U+009F) in UTF-8
    }
    if (code == 0x100) {
      safe.push_back(static_cast<char>(c));
      continue;
    }
    char escaped[7];
    std::snprintf(escaped, sizeof escaped, "\\u%04x", code);
    safe += escaped;
  }
  std::fwrite(safe.data(), 1, safe.size(), out);
}

// What `call` got back as the reply's metadata, on stderr ("-bin" values in base64).
void PrintReplyMetadata(const rpcboot::internal::CallMetadata& metadata) {
  for (const auto& [key, value] : metadata) {
    const bool binary = rpcboot::internal::IsBinaryMetadataKey(key);
    Print(stderr, "reply metadata: %s=%s\n", key.c_str(),
          binary ? absl::Base64Escape(absl::string_view(value)).c_str() : value.c_str());
  }
}

// A flag's file (a schema, a certificate, a key) is read up to this size, a token file up to the
// smaller one: --token_file=/dev/zero must be an error, not a process reading until memory runs
// out.
constexpr std::size_t kMaxFlagFileBytes = 64 << 20;
constexpr std::size_t kMaxTokenFileBytes = 64 << 10;

// The whole of file `path` into *out: "" when read, else what is wrong with it ("cannot be read",
// "is empty", "is larger than 64 MiB").
std::string ReadFlagFile(const std::string& path, std::size_t max_bytes, std::string* out) {
  rpcboot::internal::ReadFileResult read = rpcboot::internal::ReadFileUpTo(path, max_bytes, out);
  if (read != rpcboot::internal::ReadFileResult::kOk)
    return rpcboot::internal::ReadFileProblem(read, max_bytes);
  return out->empty() ? "is empty" : "";
}

constexpr const char* kUsage =
    "usage: rpcboot [--timeout_ms=N] [--token_file=F] [--tls_ca=F [--tls_cert=F --tls_key=F]\n"
    "               [--tls_server_name=N]] COMMAND ...\n"
    "       rpcboot [--timeout_ms=N] ls zk://HOST:PORT/BASE[/APP]\n"
    "       rpcboot [--timeout_ms=N] health ADDRESS [SERVICE]\n"
    "       rpcboot [--timeout_ms=N] [--protocol=grpc|thrift] [--schema=F] describe ADDRESS\n"
    "               [SERVICE]\n"
    "       rpcboot [--timeout_ms=N] [--protocol=grpc|thrift] [--schema=F]\n"
    "               [--metadata=KEY=VALUE ...] [--compression=gzip|zlib]\n"
    "               call ADDRESS package.Service/Method 'JSON'\n"
    "       rpcboot [--timeout_ms=N] flag zk://HOST:PORT[/FLAG_ROOT] APP package.Service\n"
    "               [local | remote | shadow[:local|:remote] | percent:N | clear]\n"
    "  ADDRESS: HOST:PORT (gRPC; Thrift with --protocol=thrift or --schema),\n"
    "           static://HOST:PORT,... (describe and call: the first that accepts a connection),\n"
    "           zk://HOST:PORT/BASE/APP (health: each instance; describe and call: the first UP\n"
    "           instance with a gRPC port, else one with a Thrift port), or http://HOST:PORT\n"
    "           (health of an admin port)\n"
    "  --schema=F: a Thrift schema (rpcboot-codegen's <stem>.thrift.json) instead of asking the\n"
    "              server through rpcboot.ThriftReflection\n"
    "  --compression: requests compressed: gzip on gRPC (the server must take gzip), zlib on\n"
    "              Thrift (THeader's zlib transform, for requests of 1 KiB or more; the server\n"
    "              must take it); compressed replies are read either way\n"
    "  flag: reads or sets the migration mode of APP's client of the service (the node\n"
    "        FLAG_ROOT/APP/package.Service, FLAG_ROOT /rpcboot/migration by default); clear\n"
    "        deletes it (the client's configured mode again)\n";

int Usage(const std::string& problem) {
  Print(stderr, "rpcboot: %s\n%s", problem.c_str(), kUsage);
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

// rpcboot flag: the node a running App watches for its client's migration mode.
int Flag(const std::string& address, const std::string& app, const std::string& service,
         const std::string& value, std::chrono::milliseconds timeout) {
  if (address.rfind("zk://", 0) != 0)
    return Usage("flag needs a zk://HOST:PORT[/FLAG_ROOT] address, not '" + address + "'");
  std::string rest = address.substr(5);
  std::string connect = rest.substr(0, rest.find('/'));
  std::string root =
      rest.find('/') == std::string::npos ? "/rpcboot/migration" : rest.substr(rest.find('/'));
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (connect.empty()) return Usage("flag: '" + address + "' names no ZooKeeper server");
  for (const std::string* part : {&app, &service}) {
    if (part->empty() || part->find('/') != std::string::npos)
      return Usage("flag: '" + *part + "' is not a plain name (APP, then package.Service)");
  }
  if (service.find('.') == std::string::npos)
    return Usage("flag: '" + service + "' is not package.Service");
  if (!value.empty() && value != "clear") {
    if (absl::StatusOr<rpcboot::MigrationMode> mode = rpcboot::MigrationMode::Parse(value);
        !mode.ok())
      return Usage("flag: " + std::string(mode.status().message()));
  }
  std::string error;
  std::unique_ptr<Session> session = Connect(connect, timeout, &error);
  if (session == nullptr) {
    Print(stderr, "rpcboot: %s\n", error.c_str());
    return 2;
  }
  const std::string path = (root == "/" ? "" : root) + "/" + app + "/" + service;
  absl::Status written = absl::OkStatus();
  if (value == "clear") {
    written = session->Delete(path);
    if (absl::IsNotFound(written)) written = absl::OkStatus();
  } else if (!value.empty()) {
    written = session->Set(path, value);
    if (absl::IsNotFound(written)) {
      written = session->CreateParents(path);
      if (written.ok()) written = session->Create(path, value, Session::Mode::kPersistent);
    }
  }
  if (!written.ok()) {
    Print(stderr, "rpcboot: cannot write %s: %s\n", path.c_str(),
          std::string(written.message()).c_str());
    return 1;
  }
  absl::StatusOr<Session::Node> node = session->Get(path, false);
  if (absl::IsNotFound(node.status())) {
    Print(stdout, "%s: no flag (the client's configured mode)\n", path.c_str());
    return 0;
  }
  if (!node.ok()) {
    Print(stderr, "rpcboot: cannot read %s: %s\n", path.c_str(),
          std::string(node.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<rpcboot::MigrationMode> mode = rpcboot::MigrationMode::Parse(node->data);
  Print(stdout, "%s = %s (version %d)%s\n", path.c_str(), node->data.c_str(), node->version,
        mode.ok() ? "" : "  <- not a mode: clients ignore it");
  return 0;
}

int Ls(const std::string& address, std::chrono::milliseconds timeout) {
  absl::StatusOr<rpcboot::internal::Address> parsed = rpcboot::internal::ParseAddress(address);
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  if (parsed->kind != rpcboot::internal::Address::Kind::kZooKeeper)
    return Usage("ls reads a registry: give a zk:// address, not '" + address + "'");
  std::string error;
  std::unique_ptr<Session> session = Connect(parsed->zookeeper.connect, timeout, &error);
  if (session == nullptr) {
    Print(stderr, "rpcboot: %s\n", error.c_str());
    return 2;
  }
  std::string path = NodePath(parsed->zookeeper);
  absl::StatusOr<std::vector<Listed>> apps = List(*session, path);
  if (!apps.ok()) {
    Print(stderr, "rpcboot: cannot list %s in ZooKeeper %s: %s\n", path.c_str(),
          parsed->zookeeper.connect.c_str(), std::string(apps.status().message()).c_str());
    return 2;
  }
  Print(stdout, "%-16s %-36s %-22s %-26s %-14s %-4s %s\n", "APP", "ID", "ADDRESS", "PROTOCOLS",
        "STATUS", "TLS", "VERSION");
  for (const Listed& app : *apps) {
    for (const Instance& i : app.instances) {
      auto status = i.metadata.find("instance_status");
      std::string version = i.metadata.count(std::string(rpcboot::discovery::kVersionKey))
                                ? i.metadata.at(std::string(rpcboot::discovery::kVersionKey))
                                : "";
      Print(stdout, "%-16s %-36s %-22s %-26s %-14s %-4s %s\n", app.app.c_str(), i.id.c_str(),
            absl::StrCat(i.address, ":", i.port).c_str(), Protocols(i).c_str(),
            status == i.metadata.end() ? "(no status)" : status->second.c_str(),
            i.ServesTls() ? "yes" : "no", version.c_str());
    }
    for (const std::string& bad : app.unreadable) {
      Print(stdout, "%-16s %-36s (not an instance: unreadable JSON)\n", app.app.c_str(),
            bad.c_str());
    }
    if (app.instances.empty() && app.unreadable.empty())
      Print(stdout, "%-16s (no instances)\n", app.app.c_str());
  }
  return 0;
}

// grpc.health.v1.Health/Check of `service` at `target`: "SERVING", "NOT_SERVING",
// "SERVICE_UNKNOWN", ... or the call's error (*ok false).
std::string GrpcHealth(const std::string& target, const std::string& service,
                       std::chrono::milliseconds timeout, bool* serving) {
  auto channel = GrpcChannel(target);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  Authorize(&context);
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
    std::string_view host_port = std::string_view(address).substr(7);
    if (!host_port.empty() && host_port.back() == '/') host_port.remove_suffix(1);
    if (!rpcboot::internal::IsHostPort(host_port)) {
      return Usage("address '" + address + "': an admin port is http://HOST:PORT (port 0-65535)");
    }
    httplib::Client http(address);
    http.set_connection_timeout(timeout);
    http.set_read_timeout(timeout);
    auto res = http.Get("/health");
    if (!res) {
      Print(stdout, "%s: unreachable (%s)\n", address.c_str(),
            httplib::to_string(res.error()).c_str());
      return 1;
    }
    std::string body = res->body;
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    Print(stdout, "%s: %s (HTTP %d)\n", address.c_str(), body.c_str(), res->status);
    return res->status == 200 ? 0 : 1;
  }
  absl::StatusOr<rpcboot::internal::Address> parsed = rpcboot::internal::ParseAddress(address);
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  std::vector<std::pair<std::string, std::string>> targets;  // (what, host:port or "" + why)
  if (parsed->kind == rpcboot::internal::Address::Kind::kZooKeeper) {
    std::string error;
    std::unique_ptr<Session> session = Connect(parsed->zookeeper.connect, timeout, &error);
    if (session == nullptr) {
      Print(stderr, "rpcboot: %s\n", error.c_str());
      return 2;
    }
    absl::StatusOr<std::vector<Listed>> apps = List(*session, NodePath(parsed->zookeeper));
    if (!apps.ok()) {
      Print(stderr, "rpcboot: cannot list %s: %s\n", address.c_str(),
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
      Print(stdout, "%s: no instances registered\n", address.c_str());
      return 1;
    }
  } else {
    for (const std::string& endpoint : parsed->endpoints) targets.push_back({endpoint, endpoint});
  }
  int failed = 0;
  for (const auto& [what, target] : targets) {
    if (target.empty()) {
      Print(stdout, "%s: no gRPC port (Thrift only: ask its admin port's /health)\n", what.c_str());
      ++failed;
      continue;
    }
    bool serving = false;
    std::string said = GrpcHealth(target, service, timeout, &serving);
    Print(stdout, "%s%s%s: %s\n", what.c_str(), what == target ? "" : " at ",
          what == target ? "" : target.c_str(), said.c_str());
    failed += serving ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}

// ---- describe and call: gRPC server reflection ----

void PutText(std::string* out, int field, const std::string& text) {
  uint64_t key = (static_cast<uint64_t>(field) << 3) | 2;
  for (uint64_t v : {key, static_cast<uint64_t>(text.size())}) {
    while (v >= 0x80) {
      out->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out->push_back(static_cast<char>(v));
  }
  *out += text;
}

// The length-delimited fields `number` of a serialized message.
std::vector<std::string> Fields(const std::string& message, int number) {
  std::vector<std::string> out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(message.data()),
                                            static_cast<int>(message.size()));
  while (uint32_t tag = in.ReadTag()) {
    if ((tag & 7) == 2) {
      uint32_t length = 0;
      std::string value;
      if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) break;
      if (static_cast<int>(tag >> 3) == number) out.push_back(std::move(value));
    } else if ((tag & 7) == 0) {
      uint64_t ignored;
      if (!in.ReadVarint64(&ignored)) break;
    } else {
      break;
    }
  }
  return out;
}

// What a server says about itself through reflection (grpc.reflection.v1alpha, which every
// gRPC server with reflection answers), and the types it names.
class Reflection {
 public:
  Reflection(std::shared_ptr<grpc::Channel> channel, std::chrono::milliseconds timeout)
      : channel_(std::move(channel)), timeout_(timeout), pool_(&database_) {}

  // One request on a stream of its own; the reply, or why there is none.
  absl::StatusOr<std::string> Ask(const std::string& request) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout_);
    Authorize(&context);
    grpc::CompletionQueue queue;
    auto call = stub.PrepareCall(
        &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
    grpc::ByteBuffer out = rpcboot::internal::ToByteBuffer(request), in;
    grpc::Status status;
    // One operation at a time, each waited for: the queue hands back exactly that tag.
    auto step = [&](intptr_t tag) {
      void* got = nullptr;
      bool ok = false;
      return queue.Next(&got, &ok) && ok && got == reinterpret_cast<void*>(tag);
    };
    bool ok = true;
    call->StartCall(reinterpret_cast<void*>(1));
    ok = ok && step(1);
    if (ok) call->Write(out, reinterpret_cast<void*>(2));
    ok = ok && step(2);
    if (ok) call->Read(&in, reinterpret_cast<void*>(3));
    ok = ok && step(3);
    if (ok) call->WritesDone(reinterpret_cast<void*>(4));
    ok = ok && step(4);
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    queue.Shutdown();
    void* tag;
    bool drained;
    while (queue.Next(&tag, &drained)) {
    }
    if (!ok || !status.ok()) {
      return absl::UnavailableError(status.ok()
                                        ? "the reflection stream broke"
                                        : absl::StrCat(status.error_message(), " (gRPC code ",
                                                       static_cast<int>(status.error_code()), ")"));
    }
    return rpcboot::internal::ToBytes(in);
  }

  absl::StatusOr<std::vector<std::string>> Services() {
    std::string request;
    PutText(&request, 7, "");
    absl::StatusOr<std::string> reply = Ask(request);
    if (!reply.ok()) return reply.status();
    std::vector<std::string> names;
    for (const std::string& list : Fields(*reply, 6)) {
      for (const std::string& service : Fields(list, 1)) {
        for (const std::string& name : Fields(service, 1)) names.push_back(name);
      }
    }
    if (names.empty()) return absl::NotFoundError("the server listed no services");
    return names;
  }

  // The descriptor of `service`, its file and imports fetched from the server.
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> Service(const std::string& service) {
    if (const auto* known = pool_.FindServiceByName(service)) return known;
    std::string request;
    PutText(&request, 4, service);
    absl::StatusOr<std::string> reply = Ask(request);
    if (!reply.ok()) return reply.status();
    for (const std::string& response : Fields(*reply, 4)) {
      for (const std::string& bytes : Fields(response, 1)) {
        google::protobuf::FileDescriptorProto file, known;
        // A file two services import comes with each: kept once (Add would log an error).
        if (file.ParseFromString(bytes) && !database_.FindFileByName(file.name(), &known))
          database_.Add(file);
      }
    }
    if (const auto* found = pool_.FindServiceByName(service)) return found;
    return absl::NotFoundError("the server has no service " + service);
  }

  google::protobuf::DescriptorPool& pool() { return pool_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::chrono::milliseconds timeout_;
  google::protobuf::SimpleDescriptorDatabase database_;
  google::protobuf::DescriptorPool pool_;
};

// The server ADDRESS names for describe and call, and the protocol to speak to it.
struct Target {
  std::string endpoint;  // "host:port"; empty, with *error, when there is none
  bool thrift = false;
};

// ADDRESS itself, or the first UP instance of a zk:// application with a port of the protocol
// asked for (--protocol; else gRPC, or Thrift for an application that serves only Thrift).
Target PickTarget(const std::string& address, std::chrono::milliseconds timeout,
                  std::string* error) {
  std::vector<std::string> protocols;
  if (!g_protocol.empty()) {
    protocols = {g_protocol};
  } else if (!g_schema_file.empty()) {
    protocols = {"thrift"};
  } else {
    protocols = {"grpc", "thrift"};
  }
  Target target;
  absl::StatusOr<rpcboot::internal::Address> parsed = rpcboot::internal::ParseAddress(address);
  if (!parsed.ok()) {
    *error = std::string(parsed.status().message());
    return target;
  }
  if (parsed->kind != rpcboot::internal::Address::Kind::kZooKeeper) {
    target.thrift = protocols[0] == "thrift";
    if (parsed->endpoints.size() == 1) {
      target.endpoint = parsed->endpoints[0];
      return target;
    }
    // static://: the first endpoint that accepts a connection.
    std::string last;
    for (const std::string& endpoint : parsed->endpoints) {
      std::size_t colon = endpoint.rfind(':');
      std::string host = endpoint.substr(0, colon);
      if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      rpcboot::internal::ConnectError why;
      int fd = rpcboot::internal::Connect(host, endpoint.substr(colon + 1),
                                          std::chrono::steady_clock::now() + timeout, &why);
      if (fd >= 0) {
        ::close(fd);
        target.endpoint = endpoint;
        return target;
      }
      last = why.message;
    }
    *error = "no endpoint of " + address + " accepts a connection (the last: " + last + ")";
    return target;
  }
  std::unique_ptr<Session> session = Connect(parsed->zookeeper.connect, timeout, error);
  if (session == nullptr) return target;
  absl::StatusOr<std::vector<Listed>> apps = List(*session, NodePath(parsed->zookeeper));
  if (!apps.ok()) {
    *error = std::string(apps.status().message());
    return target;
  }
  for (const std::string& protocol : protocols) {
    for (const Listed& app : *apps) {
      for (const Instance& i : app.instances) {
        std::optional<int> port = i.PortFor(protocol);
        if (!i.IsUp() || !port) continue;
        target.endpoint = absl::StrCat(i.address, ":", *port);
        target.thrift = protocol == "thrift";
        return target;
      }
    }
  }
  *error = absl::StrCat("no UP instance with a ",
                        protocols.size() > 1       ? "gRPC or Thrift"
                        : protocols[0] == "thrift" ? "Thrift"
                                                   : "gRPC",
                        " port under ", address);
  return target;
}

// ---- describe and call over Thrift: rpcboot.ThriftReflection or a schema file ----

// `header`: THeader frames, which carry the deadline to the server (rpcboot servers and
// Thrift's THeader servers read them); plain framed otherwise, which every Thrift server reads.
// A token always travels in THeader.
std::shared_ptr<rpcboot::Channel> ThriftChannelTo(const std::string& endpoint,
                                                  std::chrono::milliseconds timeout, bool header) {
  rpcboot::ChannelOptions options;
  options.default_timeout = timeout;
  options.thrift_header = header;
  if (g_compression == "zlib") options.thrift_compression = rpcboot::ThriftCompression::kZlib;
  options.bearer_token = g_token;
  if (!g_tls.ca_file.empty()) {
    options.tls.enabled = true;
    options.tls.ca_file = g_tls.ca_file;
    options.tls.cert_file = g_tls.cert_file;
    options.tls.key_file = g_tls.key_file;
    options.tls.server_name = g_tls.server_name;
  }
  return rpcboot::MakeThriftChannel(endpoint, options);
}

// One Thrift call of service/method with an encoded args struct: the result struct, or the
// call's error. Sent by its multiplexed name ("shop.ShopService:GetShop"), which rpcboot servers
// and TMultiplexedProcessor read; a server that does not know that name (a stock server with one
// plain processor) ran nothing, and is asked again by the plain name.
std::string ThriftCall(rpcboot::Channel& channel, const std::string& service,
                       const std::string& method, const std::string& args,
                       const rpcboot::CallOptions& options) {
  rpcboot::internal::MethodBinding binding;
  binding.name = service + ":" + method;
  binding.grpc_path = "/" + service + "/" + method;
  try {
    return channel.Call(binding, args, options);
  } catch (const rpcboot::RpcError& e) {
    if (e.code() != rpcboot::StatusCode::kUnimplemented ||
        e.message().find("rpcboot: unknown method") == 0)
      throw;
  }
  binding.name = method;
  return channel.Call(binding, args, options);
}

// The schema: --schema's file, or what the server's rpcboot.ThriftReflection answers (of
// `service` alone, when given). InvalidArgument: a file that is not a schema; Unimplemented: a
// server without rpcboot.ThriftReflection; otherwise the call's error.
absl::StatusOr<rpcboot::cli::ThriftSchema> LoadThriftSchema(const std::string& endpoint,
                                                            const std::string& service,
                                                            std::chrono::milliseconds timeout) {
  using rpcboot::cli::ThriftSchema;
  if (!g_schema_file.empty()) {
    std::string document;
    if (std::string problem = ReadFlagFile(g_schema_file, kMaxFlagFileBytes, &document);
        !problem.empty())
      return absl::InvalidArgumentError("--schema: '" + g_schema_file + "' " + problem);
    absl::StatusOr<ThriftSchema> schema = ThriftSchema::Parse(document);
    if (!schema.ok())
      return absl::InvalidArgumentError("--schema: " + g_schema_file + ": " +
                                        std::string(schema.status().message()));
    return schema;
  }
  // Plain framed (unless a token must travel): a server that is not rpcboot then answers
  // "unknown method" instead of dropping a frame it cannot read.
  std::shared_ptr<rpcboot::Channel> channel = ThriftChannelTo(endpoint, timeout, !g_token.empty());
  rpcboot::internal::MethodBinding binding;
  binding.name = std::string(rpcboot::internal::kThriftSchemaMethod);
  binding.grpc_path = std::string(rpcboot::internal::kThriftSchemaPath);
  std::string document;
  try {
    const rpcboot::WireFormat format = rpcboot::WireFormat::kThriftCompact;
    std::string reply = channel->Call(
        binding, rpcboot::internal::ThriftSchemaRequest(format, service), rpcboot::CallOptions());
    document = rpcboot::internal::ThriftSchemaFromResult(format, reply);
  } catch (const rpcboot::RpcError& e) {
    if (e.code() == rpcboot::StatusCode::kUnimplemented) {
      return absl::UnimplementedError(
          endpoint +
          " does not answer rpcboot.ThriftReflection (a Thrift server that is not rpcboot, or "
          "an older one): give the schema with --schema=FILE (rpcboot-codegen writes "
          "<stem>.thrift.json beside the .thrift)");
    }
    return absl::Status(
        static_cast<absl::StatusCode>(e.code()),
        absl::StrCat(endpoint, ": ", std::string(rpcboot::StatusCodeName(e.code())), ": ",
                     e.message(),
                     e.code() == rpcboot::StatusCode::kUnavailable
                         ? " (is it a Thrift port? a gRPC port takes --protocol=grpc)"
                         : ""));
  }
  absl::StatusOr<ThriftSchema> schema = ThriftSchema::Parse(document);
  if (!schema.ok())
    return absl::DataLossError(endpoint + " answered a schema this tool cannot read: " +
                               std::string(schema.status().message()));
  return schema;
}

std::string ServiceNames(const rpcboot::cli::ThriftSchema& schema) {
  std::string names;
  for (const auto& s : schema.services())
    absl::StrAppend(&names, names.empty() ? "" : ", ", s.name);
  return names.empty() ? "none" : names;
}

int DescribeThrift(const std::string& endpoint, const std::string& only,
                   std::chrono::milliseconds timeout) {
  absl::StatusOr<rpcboot::cli::ThriftSchema> schema = LoadThriftSchema(endpoint, "", timeout);
  if (!schema.ok()) {
    Print(stderr, "rpcboot: %s\n", std::string(schema.status().message()).c_str());
    return absl::IsInvalidArgument(schema.status()) ? 2 : 1;
  }
  std::string from = g_schema_file.empty() ? "rpcboot.ThriftReflection at " + endpoint
                                           : "schema file " + g_schema_file;
  bool found = false;
  for (const rpcboot::cli::ThriftService& service : schema->services()) {
    if (!only.empty() && service.name != only) continue;
    found = true;
    Print(stdout, "%s (Thrift, from %s)\n", service.name.c_str(), from.c_str());
    if (service.methods.empty()) {
      Print(stdout,
            "  (no schema: its glue was generated before rpcboot-codegen embedded one)\n\n");
      continue;
    }
    Print(stdout, "%s\n", rpcboot::cli::ThriftSchema::Describe(service).c_str());
  }
  if (!found) {
    Print(stderr, "rpcboot: %s has no service %s (it serves: %s)\n", endpoint.c_str(), only.c_str(),
          ServiceNames(*schema).c_str());
    return 1;
  }
  return 0;
}

int CallThrift(const std::string& endpoint, const std::string& service_name,
               const std::string& method_name, const std::string& json,
               std::chrono::milliseconds timeout) {
  using rpcboot::cli::ThriftSchema;
  absl::StatusOr<ThriftSchema> schema =
      LoadThriftSchema(endpoint, g_schema_file.empty() ? service_name : "", timeout);
  if (!schema.ok()) {
    Print(stderr, "rpcboot: %s\n", std::string(schema.status().message()).c_str());
    return 2;
  }
  const rpcboot::cli::ThriftService* service = schema->Find(service_name);
  if (service == nullptr) {
    Print(stderr, "rpcboot: %s has no service %s (it serves: %s)\n", endpoint.c_str(),
          service_name.c_str(), ServiceNames(*schema).c_str());
    return 2;
  }
  const rpcboot::cli::ThriftMethod* method = service->Find(method_name);
  if (method == nullptr) {
    std::string methods;
    for (const auto& m : service->methods)
      absl::StrAppend(&methods, methods.empty() ? "" : ", ", m.name);
    Print(stderr, "rpcboot: %s has no method %s (methods: %s)\n", service_name.c_str(),
          method_name.c_str(), methods.empty() ? "none in its schema" : methods.c_str());
    return 2;
  }
  const rpcboot::WireFormat format = rpcboot::WireFormat::kThriftCompact;
  absl::StatusOr<std::string> args = ThriftSchema::EncodeArgs(*service, *method, json, format);
  if (!args.ok()) {
    Print(stderr, "rpcboot: the JSON is not the parameters of %s/%s: %s\n", service_name.c_str(),
          method_name.c_str(), std::string(args.status().message()).c_str());
    return 2;
  }
  // THeader to a server that answered rpcboot.ThriftReflection (it reads the deadline); plain
  // framed to one known only by a schema file, which may be any Thrift server.
  std::shared_ptr<rpcboot::Channel> channel =
      ThriftChannelTo(endpoint, timeout, g_schema_file.empty() || !g_token.empty());
  std::string reply;
  rpcboot::internal::CallMetadata reply_metadata;
  rpcboot::CallOptions options = g_call_options;
  options.reply_metadata = &reply_metadata;
  try {
    reply = ThriftCall(*channel, service_name, method_name, *args, options);
  } catch (const rpcboot::RpcError& e) {
    PrintReplyMetadata(reply_metadata);
    Print(stdout, "%s: %s\n", std::string(rpcboot::StatusCodeName(e.code())).c_str(),
          e.message().c_str());
    return 1;
  }
  PrintReplyMetadata(reply_metadata);
  absl::StatusOr<rpcboot::cli::ThriftReply> decoded =
      ThriftSchema::DecodeResult(*service, *method, reply, format);
  if (!decoded.ok()) {
    Print(stderr, "rpcboot: %s/%s: %s\n", service_name.c_str(), method_name.c_str(),
          std::string(decoded.status().message()).c_str());
    return 1;
  }
  if (!decoded->ok) {
    Print(stdout, "%s: %s\n", std::string(rpcboot::StatusCodeName(decoded->code)).c_str(),
          decoded->message.c_str());
    return 1;
  }
  Print(stdout, "%s\n", decoded->json.c_str());
  return 0;
}

int Describe(const std::string& address, const std::string& only,
             std::chrono::milliseconds timeout) {
  std::string error;
  Target picked = PickTarget(address, timeout, &error);
  if (picked.endpoint.empty()) {
    Print(stderr, "rpcboot: %s\n", error.c_str());
    return 2;
  }
  if (picked.thrift) return DescribeThrift(picked.endpoint, only, timeout);
  const std::string& target = picked.endpoint;
  Reflection reflection(GrpcChannel(target), timeout);
  absl::StatusOr<std::vector<std::string>> services = reflection.Services();
  if (!services.ok()) {
    Print(stderr, "rpcboot: %s: no reflection: %s\n", target.c_str(),
          std::string(services.status().message()).c_str());
    return 1;
  }
  bool found = false;
  for (const std::string& name : *services) {
    if (!only.empty() ? name != only : name.rfind("grpc.", 0) == 0) continue;
    found = true;
    absl::StatusOr<const google::protobuf::ServiceDescriptor*> service = reflection.Service(name);
    if (!service.ok()) {
      Print(stdout, "%s: %s\n", name.c_str(), std::string(service.status().message()).c_str());
      continue;
    }
    Print(stdout, "%s (%s)\n", name.c_str(), (*service)->file()->name().c_str());
    std::set<std::string> shown;
    std::vector<const google::protobuf::Descriptor*> messages;
    for (int m = 0; m < (*service)->method_count(); ++m) {
      const google::protobuf::MethodDescriptor* method = (*service)->method(m);
      Print(stdout, "  rpc %s(%s) returns (%s)\n", method->name().c_str(),
            method->input_type()->full_name().c_str(), method->output_type()->full_name().c_str());
      for (const auto* type : {method->input_type(), method->output_type()}) {
        if (shown.insert(type->full_name()).second) messages.push_back(type);
      }
    }
    for (const google::protobuf::Descriptor* message : messages) {
      Print(stdout, "\n%s", message->DebugString().c_str());
    }
    Print(stdout, "\n");
  }
  if (!found) {
    std::string list;
    for (const std::string& name : *services)
      absl::StrAppend(&list, list.empty() ? "" : ", ", name);
    Print(stderr, "rpcboot: %s has no service %s (it serves: %s)\n", target.c_str(), only.c_str(),
          list.c_str());
    return 1;
  }
  return 0;
}

int Call(const std::string& address, const std::string& path, const std::string& json,
         std::chrono::milliseconds timeout) {
  std::size_t slash = path.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
    return Usage("'" + path + "' is not package.Service/Method");
  }
  std::string service_name = path.substr(0, slash), method_name = path.substr(slash + 1);
  std::string error;
  Target picked = PickTarget(address, timeout, &error);
  if (picked.endpoint.empty()) {
    Print(stderr, "rpcboot: %s\n", error.c_str());
    return 2;
  }
  if (picked.thrift) return CallThrift(picked.endpoint, service_name, method_name, json, timeout);
  const std::string& target = picked.endpoint;
  auto channel = GrpcChannel(target);
  Reflection reflection(channel, timeout);
  absl::StatusOr<const google::protobuf::ServiceDescriptor*> service =
      reflection.Service(service_name);
  if (!service.ok()) {
    Print(stderr, "rpcboot: %s: %s\n", target.c_str(),
          std::string(service.status().message()).c_str());
    return 2;
  }
  const google::protobuf::MethodDescriptor* method = (*service)->FindMethodByName(method_name);
  if (method == nullptr) {
    std::string methods;
    for (int m = 0; m < (*service)->method_count(); ++m)
      absl::StrAppend(&methods, m == 0 ? "" : ", ", (*service)->method(m)->name());
    Print(stderr, "rpcboot: %s has no method %s (methods: %s)\n", service_name.c_str(),
          method_name.c_str(), methods.c_str());
    return 2;
  }
  google::protobuf::DynamicMessageFactory factory(&reflection.pool());
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype(method->input_type())->New());
  auto parsed = google::protobuf::util::JsonStringToMessage(json, request.get());
  if (!parsed.ok()) {
    Print(stderr, "rpcboot: the JSON is not a %s: %s\n", method->input_type()->full_name().c_str(),
          parsed.ToString().c_str());
    return 2;
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  Authorize(&context);
  for (const auto& [key, value] : g_call_options.metadata) context.AddMetadata(key, value);
  grpc::ByteBuffer reply;
  std::string rpc_path = "/" + service_name + "/" + method_name;
  grpc::internal::RpcMethod rpc(rpc_path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(), rpc, &context, rpcboot::internal::ToByteBuffer(request->SerializeAsString()),
      &reply);
  rpcboot::internal::CallMetadata reply_metadata;
  rpcboot::internal::AppendCallMetadata(context.GetServerInitialMetadata(), &reply_metadata);
  rpcboot::internal::AppendCallMetadata(context.GetServerTrailingMetadata(), &reply_metadata);
  PrintReplyMetadata(reply_metadata);
  if (!status.ok()) {
    int code = static_cast<int>(status.error_code());
    Print(stdout, "%s: %s\n",
          std::string(rpcboot::StatusCodeName(rpcboot::StatusCodeFromInt(code))).c_str(),
          status.error_message().c_str());
    return 1;
  }
  std::unique_ptr<google::protobuf::Message> answer(
      factory.GetPrototype(method->output_type())->New());
  if (!answer->ParseFromString(rpcboot::internal::ToBytes(reply))) {
    Print(stderr, "rpcboot: the reply is not a %s\n", method->output_type()->full_name().c_str());
    return 1;
  }
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(*answer, &out, options);
  if (out.empty() || out.back() != '\n') out += '\n';
  Print(stdout, "%s", out.c_str());
  return 0;
}

// The command, once the flags are read.
int Run(const std::string& command, const std::vector<std::string>& args,
        std::chrono::milliseconds timeout) {
  if (command == "ls") {
    if (args.size() != 2) return Usage("ls takes one zk:// address");
    return Ls(args[1], timeout);
  }
  if (command == "health") {
    if (args.size() < 2 || args.size() > 3) return Usage("health takes an address and a service");
    return Health(args[1], args.size() == 3 ? args[2] : "", timeout);
  }
  if (command == "describe") {
    if (args.size() < 2 || args.size() > 3) return Usage("describe takes an address and a service");
    return Describe(args[1], args.size() == 3 ? args[2] : "", timeout);
  }
  if (command == "call") {
    if (args.size() != 4) return Usage("call takes an address, Service/Method and the JSON");
    return Call(args[1], args[2], args[3], timeout);
  }
  if (command == "flag") {
    if (args.size() != 4 && args.size() != 5)
      return Usage("flag takes a zk:// address, an app, a service and optionally a mode");
    return Flag(args[1], args[2], args[3], args.size() == 5 ? args[4] : "", timeout);
  }
  return Usage("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  // The tool's own output says what happened; the library's informational lines would only
  // repeat it.
  rpcboot::SetLogSink([](rpcboot::LogLevel level, std::string_view message) {
    if (level != rpcboot::LogLevel::kInfo)
      Print(stderr, "rpcboot: %.*s\n", static_cast<int>(message.size()), message.data());
  });
  std::chrono::milliseconds timeout(3000);
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Print(stdout, "%s", kUsage);
      return 0;
    }
    if (a.rfind("--timeout_ms=", 0) == 0) {
      int ms = 0;
      if (!absl::SimpleAtoi(a.substr(13), &ms) || ms <= 0 || ms > 600000)
        return Usage("--timeout_ms: '" + a.substr(13) + "' is not a number of ms in 1..600000");
      timeout = std::chrono::milliseconds(ms);
      continue;
    }
    if (a.rfind("--token_file=", 0) == 0) {
      std::string text;
      if (std::string problem = ReadFlagFile(a.substr(13), kMaxTokenFileBytes, &text);
          !problem.empty() && problem != "is empty")
        return Usage("--token_file: '" + a.substr(13) + "' " + problem);
      g_token = text.substr(0, text.find('\n'));
      if (g_token.empty())
        return Usage("--token_file: '" + a.substr(13) + "' has no token on its first line");
      while (!g_token.empty() && (g_token.back() == ' ' || g_token.back() == '\r'))
        g_token.pop_back();
      continue;
    }
    if (a.rfind("--metadata=", 0) == 0) {
      std::string entry = a.substr(11);
      std::size_t equals = entry.find('=');
      if (equals == std::string::npos) return Usage("--metadata: '" + entry + "' is not KEY=VALUE");
      g_call_options.metadata.emplace_back(entry.substr(0, equals), entry.substr(equals + 1));
      if (absl::Status s = rpcboot::internal::CheckCallMetadata(g_call_options.metadata); !s.ok())
        return Usage("--metadata: " + std::string(s.message()));
      continue;
    }
    if (a.rfind("--protocol=", 0) == 0) {
      g_protocol = a.substr(11);
      if (g_protocol != "grpc" && g_protocol != "thrift")
        return Usage("--protocol: '" + g_protocol + "' is neither grpc nor thrift");
      continue;
    }
    if (a.rfind("--compression=", 0) == 0) {
      g_compression = a.substr(14);
      if (g_compression != "gzip" && g_compression != "zlib")
        return Usage("--compression: '" + g_compression +
                     "' is neither gzip (gRPC) nor zlib (Thrift)");
      continue;
    }
    if (a.rfind("--schema=", 0) == 0) {
      g_schema_file = a.substr(9);
      if (g_schema_file.empty()) return Usage("--schema needs a file (<stem>.thrift.json)");
      continue;
    }
    bool tls_flag = false;
    for (auto [flag, into, path] : {std::tuple<const char*, std::string*, std::string*>{
                                        "--tls_ca=", &g_tls.root_certs, &g_tls.ca_file},
                                    {"--tls_cert=", &g_tls.cert_chain, &g_tls.cert_file},
                                    {"--tls_key=", &g_tls.private_key, &g_tls.key_file}}) {
      std::string prefix = flag;
      if (a.rfind(prefix, 0) != 0) continue;
      tls_flag = true;
      *path = a.substr(prefix.size());
      if (std::string problem = ReadFlagFile(*path, kMaxFlagFileBytes, into); !problem.empty())
        return Usage(prefix.substr(0, prefix.size() - 1) + ": '" + *path + "' " + problem);
    }
    if (a.rfind("--tls_server_name=", 0) == 0) {
      g_tls.server_name = a.substr(18);
      continue;
    }
    if (tls_flag) continue;
    if (a.rfind("--", 0) == 0) return Usage("unknown flag '" + a + "'");
    args.push_back(a);
  }
  if (g_tls.cert_chain.empty() != g_tls.private_key.empty())
    return Usage("--tls_cert and --tls_key go together (a client certificate and its key)");
  if (g_tls.root_certs.empty() && (!g_tls.cert_chain.empty() || !g_tls.server_name.empty()))
    return Usage("--tls_cert, --tls_key and --tls_server_name need --tls_ca (the CA to trust)");
  if (g_protocol == "grpc" && !g_schema_file.empty())
    return Usage("--schema is a Thrift schema: it goes with --protocol=thrift, not grpc");
  const bool thrift = g_protocol == "thrift" || !g_schema_file.empty();
  if (g_compression == "zlib" && !thrift)
    return Usage(
        "--compression=zlib is Thrift's (THeader): it goes with --protocol=thrift or "
        "--schema; gRPC takes gzip");
  if (g_compression == "gzip" && thrift)
    return Usage("--compression=gzip is gRPC's: Thrift takes zlib");
  if (args.empty()) return Usage("no command");
  const std::string& command = args[0];
  // A flag's file that does not hold what it should (a CA that is not PEM) is found when the
  // first channel is made: named, never a crash.
  try {
    return Run(command, args, timeout);
  } catch (const rpcboot::RpcError& e) {
    Print(stderr, "rpcboot: %s\n", e.message().c_str());
    return e.code() == rpcboot::StatusCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    Print(stderr, "rpcboot: %s\n", e.what());
    return 1;
  }
}
