// gRPC server transport: one callback generic service serves every bound interface (no
// generated gRPC code). gRPC's threads only read the request and write the reply: every handler
// runs on the server's CallScheduler, so handlers may block without stalling gRPC itself, and
// admission control (max_concurrent_calls) and deadlines apply as on Thrift.
// grpc.health.v1.Health answers on the same port.
#include <grpc/compression.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/call_scheduler.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server_context.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/grpc_reflection.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot::internal {
namespace {

// Reply bytes each connection (gRPC names it by its peer address) has handed to gRPC and its peer
// has not yet taken: gRPC completes a reply only once flow control let it out, so a peer that
// never reads would otherwise make the server hold every reply it asked for.
class UnsentLedger {
 public:
  explicit UnsentLedger(std::size_t limit) : limit_(limit) {}

  // Counts `bytes` for `peer` and returns 0, or returns what `peer` already holds when the
  // reply would pass the limit (and counts nothing).
  std::size_t Reserve(const std::string& peer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t& held = unsent_[peer];
    if (held > 0 && held + bytes > limit_) return held;
    held += bytes;
    return 0;
  }

  void Release(const std::string& peer, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = unsent_.find(peer);
    if (it == unsent_.end()) return;
    it->second -= std::min(it->second, bytes);
    if (it->second == 0) unsent_.erase(it);
  }

  std::size_t limit() const { return limit_; }

  // At most one warning a second, however many replies are refused.
  bool ShouldLog() { return log_.Allow(); }

 private:
  const std::size_t limit_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::size_t> unsent_;
  LogLimiter log_;
};

// The verified client certificate of a call over mutual TLS, as gRPC's auth context has it.
void CertificateIdentity(const grpc::ServerContextBase& context, PeerIdentity* identity) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return;
  auto text = [](const grpc::string_ref& ref) { return std::string(ref.data(), ref.size()); };
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_subject"))
    identity->subject = text(v);
  std::string first_name;
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_uri")) {
    identity->alt_names.push_back("URI:" + text(v));
    if (first_name.empty()) first_name = text(v);
  }
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_dns")) {
    identity->alt_names.push_back("DNS:" + text(v));
  }
  for (const grpc::string_ref& v : auth->FindPropertyValues("peer_ip")) {
    identity->alt_names.push_back("IP:" + text(v));
  }
  std::string common_name;
  for (const grpc::string_ref& v : auth->FindPropertyValues("x509_common_name"))
    common_name = text(v);
  identity->principal = !first_name.empty() ? first_name : common_name;
  if (!identity->principal.empty()) identity->source = "certificate";
}

// One unary call: read the request, hand it to the scheduler, write the reply and finish.
// gRPC deletes nothing: the reactor deletes itself in OnDone, after Finish.
class UnaryReactor final : public grpc::ServerGenericBidiReactor {
 public:
  UnaryReactor(grpc::GenericCallbackServerContext* context, const MethodTable* table,
               CallScheduler* scheduler, UnsentLedger* ledger)
      : context_(context), table_(table), scheduler_(scheduler), ledger_(ledger) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "rpcboot: no request message"));
      return;
    }
    route_ = table_->FindGrpc(context_->method());
    if (route_ == nullptr) {
      Transports().unknown_methods.fetch_add(1, std::memory_order_relaxed);
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "rpcboot: unknown method " + context_->method()));
      return;
    }
    started_ = route_->runtime->grpc_stats->Start();
    ScheduledCall call;
    if (context_->raw_deadline().tv_sec != gpr_inf_future(GPR_CLOCK_REALTIME).tv_sec) {
      call.deadline = context_->deadline();
    }
    deadline_ = call.deadline;
    if (route_->run_inline) {  // server.inline_methods: never blocks, no hop
      Handle();
      return;
    }
    // `this` lives until Finish: exactly one of run and refuse calls it.
    call.run = [this] { Handle(); };
    call.refuse = [this](StatusCode code, std::string message) {
      route_->runtime->grpc_stats->Finish(started_, code, context_->peer(), message, true);
      Finish(grpc::Status(static_cast<grpc::StatusCode>(code), "rpcboot: " + message));
    };
    scheduler_->Submit(std::move(call));
  }

  void OnWriteDone(bool) override {}
  void OnDone() override {
    if (reserved_ > 0) ledger_->Release(peer_, reserved_);
    delete this;
  }

 private:
  void Handle() {
    peer_ = context_->peer();
    ServerContext call("grpc", peer_, deadline_);
    CertificateIdentity(*context_, call.mutable_identity());
    std::string_view token;
    const auto& metadata = context_->client_metadata();
    auto header = [&metadata](std::string_view key) {
      auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
      return it == metadata.end() ? std::string_view()
                                  : std::string_view(it->second.data(), it->second.size());
    };
    token = BearerToken(header("authorization"));
    BeginServerSpan(&call, header(kTraceparentHeader), header(kTracestateHeader));
    call.set_shadow(header(kShadowHeader) == "1");
    ServerContext::Scope scope(&call);
    std::string request = ToBytes(request_);
    HandlerOutcome outcome = RunHandler([&] {
      if (Refusal refusal =
              table_->guard().Check(route_->method->grpc_path, token, call.mutable_identity());
          refusal.refused()) {
        throw RpcError(refusal.code, refusal.message);
      }
      return route_->method->serve_proto(route_->impl, request);
    });
    EndServerSpan(call, std::string_view(route_->method->grpc_path).substr(1), outcome.code,
                  outcome.message);
    CallStats* stats = route_->runtime->grpc_stats;
    if (outcome.code != StatusCode::kOk) {
      stats->Finish(started_, outcome.code, peer_, outcome.message);
      Finish(grpc::Status(static_cast<grpc::StatusCode>(outcome.code), outcome.message));
      return;
    }
    if (std::size_t held = ledger_->Reserve(peer_, outcome.reply.size()); held > 0) {
      std::string what =
          absl::StrCat("rpcboot: reply of ", outcome.reply.size(), " bytes not sent: ", held,
                       " bytes of earlier replies to this connection are still unread (limit ",
                       ledger_->limit(), ", server.grpc_max_unsent_bytes)");
      if (ledger_->ShouldLog()) Log(LogLevel::kWarning, "gRPC: " + peer_ + ": " + what);
      stats->Finish(started_, StatusCode::kResourceExhausted, peer_, what);
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, what));
      return;
    }
    reserved_ = outcome.reply.size();
    reply_ = ToByteBuffer(outcome.reply);
    stats->Finish(started_, StatusCode::kOk);
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }

  grpc::GenericCallbackServerContext* context_;
  const MethodTable* table_;
  CallScheduler* scheduler_;
  UnsentLedger* ledger_;
  std::string peer_;          // the connection, as gRPC names it
  std::size_t reserved_ = 0;  // counted in the ledger under peer_ until OnDone
  const Route* route_ = nullptr;
  int64_t started_ = 0;  // for the method's CallStats
  std::optional<ServerContext::Clock::time_point> deadline_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

// A stream refused before it starts.
class RefusedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit RefusedReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

class Service final : public grpc::CallbackGenericService {
 public:
  Service(const MethodTable* table, CallScheduler* scheduler, std::size_t max_unsent_bytes)
      : table_(table), scheduler_(scheduler), ledger_(max_unsent_bytes), reflection_(*table) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    // Server reflection is a stream of its own, answered here (it runs no user code), to the
    // callers server.auth lets through: the schema is the server's to show.
    if (GrpcReflection::IsReflectionPath(context->method())) {
      PeerIdentity identity;
      CertificateIdentity(*context, &identity);
      const auto& metadata = context->client_metadata();
      auto it = metadata.find("authorization");
      std::string_view token =
          it == metadata.end()
              ? std::string_view()
              : BearerToken(std::string_view(it->second.data(), it->second.size()));
      if (Refusal refusal = table_->guard().Check(context->method(), token, &identity);
          refusal.refused()) {
        return new RefusedReactor(
            grpc::Status(static_cast<grpc::StatusCode>(refusal.code), refusal.message));
      }
      return reflection_.NewReactor();
    }
    return new UnaryReactor(context, table_, scheduler_, &ledger_);
  }

 private:
  const MethodTable* table_;
  CallScheduler* scheduler_;
  UnsentLedger ledger_;
  const GrpcReflection reflection_;
};

class GrpcServerTransport final : public ServerTransport {
 public:
  explicit GrpcServerTransport(const ServerOptions& options) : options_(options) {}
  ~GrpcServerTransport() override { Shutdown(std::chrono::steady_clock::now()); }

  absl::Status Start(const MethodTable& table, CallScheduler* scheduler) override {
    service_ = std::make_unique<Service>(&table, scheduler, options_.grpc_max_unsent_bytes);
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    std::string address = options_.host + ":" + std::to_string(options_.grpc_port);
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (!options_.tls.cert_file.empty()) {
      absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls = TlsCredentials();
      if (!tls.ok()) return tls.status();
      credentials = *std::move(tls);
    }
    builder.AddListeningPort(address, credentials, &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.grpc_max_concurrent_streams);
    // gRPC binds with SO_REUSEPORT by default, so a second process would share a port in use
    // and register a second instance on it; a port in use must be an error, as on Thrift.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Compressed requests are refused before they are inflated (a small gzip bomb would
    // otherwise be inflated in full before the size limit applies).
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_GZIP, false);
    if (options_.grpc_memory_quota > 0) {
      grpc::ResourceQuota quota("rpcboot");
      quota.Resize(options_.grpc_memory_quota);
      builder.SetResourceQuota(quota);
    }
    builder.RegisterCallbackGenericService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      return absl::UnavailableError("gRPC: cannot listen on " + address +
                                    " (port in use or bad host)");
    }
    // grpc.health.v1.Health: SERVING for "" (the server) and for each service by its full name,
    // as Kubernetes and Envoy probes ask; NOT_SERVING from the moment the server stops taking
    // calls.
    if (auto* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(true);
      for (const std::string& service : table.services()) health->SetServingStatus(service, true);
    }
    Log(LogLevel::kInfo, absl::StrCat("gRPC listening on ", options_.host, ":", port_,
                                      options_.tls.cert_file.empty() ? " (plaintext)" : " (TLS)"));
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void StopAccepting() override {
    if (server_ == nullptr || stopping_.joinable()) return;
    if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);  // all
    // grpc::Server::Shutdown stops new calls at once and waits for those in flight, which the
    // scheduler finishes (or refuses) during its drain; it blocks, so it runs beside the drain.
    // Its own deadline is far: the drain, not gRPC, decides when a call is given up.
    stopping_ = std::thread([this] {
      server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace +
                        std::chrono::seconds(2));
    });
  }

  void Shutdown(std::chrono::steady_clock::time_point) override {
    if (server_ == nullptr) return;
    StopAccepting();
    stopping_.join();
    server_->Wait();
    server_.reset();
  }

 private:
  // The same checks and the same messages as the Thrift side's TLS (gRPC reads the PEM text).
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials() const {
    const TlsOptions& tls = options_.tls;
    // The Thrift side's context checks what gRPC would only log: key matches certificate, CA
    // file holds certificates.
    absl::StatusOr<TlsContext> check = MakeServerTlsContext(tls, "server.tls");
    if (!check.ok()) return check.status();
    absl::StatusOr<std::string> cert = ReadPemFile(tls.cert_file, "server.tls.cert_file");
    absl::StatusOr<std::string> key = ReadPemFile(tls.key_file, "server.tls.key_file");
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl(
        tls.ca_file.empty()       ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
        : tls.require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                  : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    if (!tls.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadPemFile(tls.ca_file, "server.tls.ca_file");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    return grpc::SslServerCredentials(ssl);
  }

  ServerOptions options_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread stopping_;
  int port_ = 0;
};

}  // namespace

std::unique_ptr<ServerTransport> MakeGrpcServerTransport(const ServerOptions& options) {
  return std::make_unique<GrpcServerTransport>(options);
}

}  // namespace rpcboot::internal
