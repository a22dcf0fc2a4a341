// gRPC server transport: one callback generic service serves every bound interface (no
// generated gRPC code). Handlers run on gRPC's callback thread while few are running, and on a
// handler thread pool beyond that, so slow handlers never block all of gRPC's own threads.
// grpc.health.v1.Health answers on the same port.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "rpcboot/base/log.h"
#include "rpcboot/internal/thread_pool.h"
#include "rpcboot/server_context.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot::internal {
namespace {

class GrpcServerTransport;

// One unary call: read the request, run the handler on the pool, write the reply and finish.
class UnaryReactor final : public grpc::ServerGenericBidiReactor {
 public:
  UnaryReactor(grpc::GenericCallbackServerContext* context, const MethodTable* table,
               ThreadPool* pool, std::atomic<int>* inline_active, int inline_limit)
      : context_(context),
        table_(table),
        pool_(pool),
        inline_active_(inline_active),
        inline_limit_(inline_limit) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "rpcboot: no request message"));
      return;
    }
    // Up to `inline_limit` handlers run right here on gRPC's callback thread (no thread hop: a
    // cross-CPU wake-up costs ~100 us on small VMs); beyond that they go to the handler pool, so
    // that blocking handlers never hold all of gRPC's threads.
    std::atomic<int>* active =
        inline_active_;  // `this` may be deleted once Handle() finishes the call
    if (active->fetch_add(1) < inline_limit_) {
      Handle();
      active->fetch_sub(1);
      return;
    }
    active->fetch_sub(1);
    pool_->Submit([this] { Handle(); });
  }

  void OnWriteDone(bool) override {}
  void OnDone() override { delete this; }

 private:
  void Handle() {
    const Route* route = table_->FindGrpc(context_->method());
    if (route == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                          "rpcboot: unknown method " + context_->method()));
      return;
    }
    std::optional<ServerContext::Clock::time_point> deadline;
    if (context_->raw_deadline().tv_sec != gpr_inf_future(GPR_CLOCK_REALTIME).tv_sec) {
      deadline = context_->deadline();
      if (*deadline <= ServerContext::Clock::now()) {
        Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "rpcboot: deadline passed before the handler ran"));
        return;
      }
    }
    ServerContext call("grpc", context_->peer(), deadline);
    ServerContext::Scope scope(&call);
    std::string request = ToBytes(request_);
    HandlerOutcome outcome =
        RunHandler([&] { return route->method->serve_proto(route->impl, request); });
    if (outcome.code != StatusCode::kOk) {
      Finish(grpc::Status(static_cast<grpc::StatusCode>(outcome.code), outcome.message));
      return;
    }
    reply_ = ToByteBuffer(outcome.reply);
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }

  grpc::GenericCallbackServerContext* context_;
  const MethodTable* table_;
  ThreadPool* pool_;
  std::atomic<int>* inline_active_;
  int inline_limit_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class Service final : public grpc::CallbackGenericService {
 public:
  Service(const MethodTable* table, ThreadPool* pool)
      : table_(table),
        pool_(pool),
        inline_limit_(std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new UnaryReactor(context, table_, pool_, &inline_active_, inline_limit_);
  }

 private:
  const MethodTable* table_;
  ThreadPool* pool_;
  std::atomic<int> inline_active_{0};
  int inline_limit_;
};

class GrpcServerTransport final : public ServerTransport {
 public:
  explicit GrpcServerTransport(const ServerOptions& options) : options_(options) {}
  ~GrpcServerTransport() override { Shutdown(); }

  absl::Status Start(const MethodTable& table) override {
    int threads = options_.handler_threads > 0
                      ? options_.handler_threads
                      : std::max(8, 2 * static_cast<int>(std::thread::hardware_concurrency()));
    pool_ = std::make_unique<ThreadPool>(threads);
    service_ = std::make_unique<Service>(&table, pool_.get());
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    std::string address = options_.host + ":" + std::to_string(options_.grpc_port);
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    builder.RegisterCallbackGenericService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      return absl::UnavailableError("gRPC: cannot listen on " + address +
                                    " (port in use or bad host)");
    }
    if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(true);
    Log(LogLevel::kInfo, "gRPC listening on " + options_.host + ":" + std::to_string(port_));
    return absl::OkStatus();
  }

  int port() const override { return port_; }

  void Shutdown() override {
    if (server_ == nullptr) return;
    if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
    // Stops accepting; in-flight calls may finish until the deadline, then are cancelled.
    server_->Shutdown(std::chrono::system_clock::now() + options_.shutdown_grace);
    server_->Wait();
    pool_.reset();  // runs what is queued, joins
    server_.reset();
  }

 private:
  ServerOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace

std::unique_ptr<ServerTransport> MakeGrpcServerTransport(const ServerOptions& options) {
  return std::make_unique<GrpcServerTransport>(options);
}

}  // namespace rpcboot::internal
