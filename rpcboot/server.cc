#include "rpcboot/server.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rpcboot/internal/call_scheduler.h"
#include "rpcboot/internal/interceptors.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot {
namespace internal {

absl::StatusOr<std::unique_ptr<MethodTable>> MethodTable::Make(
    const std::vector<BoundService>& services, const std::vector<std::string>& inline_methods,
    bool grpc, bool thrift) {
  auto table = std::unique_ptr<MethodTable>(new MethodTable());
  std::vector<bool> used(inline_methods.size(), false);
  for (const BoundService& s : services) {
    table->services_.push_back(s.binding->full_name);
    table->bindings_.push_back(s.binding);
    for (const MethodBinding& m : s.binding->methods) {
      Route route{&m, s.impl.get()};
      route.runtime = &table->runtimes_.emplace_back();
      MetricsRegistry& metrics = MetricsRegistry::Get();
      // A protocol the server does not speak gets no series on the page or in /metrics.
      route.runtime->grpc_stats =
          grpc ? metrics.Server(s.binding->full_name, m.name, "grpc") : metrics.Unlisted();
      route.runtime->thrift_stats =
          thrift ? metrics.Server(s.binding->full_name, m.name, "thrift") : metrics.Unlisted();
      for (std::size_t i = 0; i < inline_methods.size(); ++i) {
        const std::string& entry = inline_methods[i];
        if (entry == s.binding->full_name + "/" + m.name || entry == s.binding->full_name + "/*") {
          route.run_inline = true;
          used[i] = true;
        }
      }
      table->thrift_qualified_[s.binding->full_name + ":" + m.name] = route;
      table->thrift_plain_[m.name].push_back(route);
      table->grpc_[m.grpc_path] = route;
    }
  }
  for (std::size_t i = 0; i < inline_methods.size(); ++i) {
    if (!used[i]) {
      return absl::InvalidArgumentError(
          "server.inline_methods: '" + inline_methods[i] +
          "' names no served method (write <package>.<Service>/<Method> or <package>.<Service>/*)");
    }
  }
  return table;
}

const Route* MethodTable::FindThrift(std::string_view message_name) const {
  // This absl's hash takes its own string_view, not std::string_view.
  const absl::string_view name(message_name.data(), message_name.size());
  if (auto it = thrift_qualified_.find(name); it != thrift_qualified_.end()) return &it->second;
  auto it = thrift_plain_.find(name);
  if (it != thrift_plain_.end() && it->second.size() == 1) return &it->second.front();
  return nullptr;  // unknown, or ambiguous without the service name
}

std::string MethodTable::ThriftUnknownReason(std::string_view message_name) const {
  const absl::string_view name(message_name.data(), message_name.size());
  auto it = thrift_plain_.find(name);
  if (it == thrift_plain_.end() || it->second.size() < 2) return "";
  std::string services;
  for (const Route& route : it->second) {
    const std::string& path = route.method->grpc_path;  // "/shop.ShopService/GetShop"
    std::size_t slash = path.find('/', 1);
    absl::StrAppend(&services, services.empty() ? "" : ", ", path.substr(1, slash - 1));
  }
  return absl::StrCat("several services on this port have a method '", name, "' (", services,
                      "): call it by its multiplexed name, '<service>:", name, "'");
}

void MethodTable::Intercept(const ServerContext& context, std::string_view method,
                            absl::FunctionRef<void()> serve) const {
  RunIntercepted(
      interceptors_.size(),
      [&](std::size_t i, const std::function<void()>& proceed) {
        interceptors_[i](context, method, proceed);
      },
      serve, "server", method);
}

const Route* MethodTable::FindGrpc(std::string_view path) const {
  auto it = grpc_.find(path);
  return it == grpc_.end() ? nullptr : &it->second;
}

}  // namespace internal

class Server::Impl {
 public:
  explicit Impl(ServerOptions options) : options_(std::move(options)) {}

  ServerOptions options_;
  std::vector<internal::BoundService> services_;
  std::unique_ptr<internal::MethodTable> table_;
  std::unique_ptr<internal::CallScheduler> scheduler_;
  std::unique_ptr<internal::ServerTransport> grpc_;
  std::unique_ptr<internal::ServerTransport> thrift_;
  bool started_ = false;
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { Shutdown(); }

void Server::AddBinding(const internal::ServiceBinding& binding, std::shared_ptr<void> impl) {
  impl_->services_.push_back({&binding, std::move(impl)});
}

void Server::AddInterceptor(ServerInterceptor interceptor) {
  impl_->options_.interceptors.push_back(std::move(interceptor));
}

absl::Status Server::Start() {
  if (impl_->started_) return absl::FailedPreconditionError("server already started");
  if (impl_->services_.empty())
    return absl::FailedPreconditionError("no service added before Start()");
  if (impl_->options_.grpc_port < 0 && impl_->options_.thrift_port < 0) {
    return absl::InvalidArgumentError(
        "neither grpc_port nor thrift_port is set (use 0 to pick a free port)");
  }
  if (impl_->options_.grpc_port >= 0 &&
      impl_->options_.grpc_server == ServerOptions::GrpcServer::kGrpcpp &&
      impl_->options_.grpc_compression != ServerOptions::GrpcCompression::kOff) {
    return absl::InvalidArgumentError(
        "server.grpc_compression: accept and gzip need server.grpc_server: native (gRPC's "
        "library inflates a compressed request whole before its size is checked)");
  }
  absl::StatusOr<std::unique_ptr<internal::MethodTable>> table =
      internal::MethodTable::Make(impl_->services_, impl_->options_.inline_methods,
                                  impl_->options_.grpc_port >= 0, impl_->options_.thrift_port >= 0);
  if (!table.ok()) return table.status();
  impl_->table_ = *std::move(table);
  absl::StatusOr<std::shared_ptr<const internal::CallGuard>> guard =
      internal::CallGuard::Make(impl_->options_.auth);
  if (!guard.ok()) return guard.status();
  impl_->table_->set_guard(*std::move(guard));
  impl_->table_->set_interceptors(impl_->options_.interceptors);
  const ServerOptions& options = impl_->options_;
  int threads = options.handler_threads > 0
                    ? options.handler_threads
                    : std::max(8, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  impl_->scheduler_ = std::make_unique<internal::CallScheduler>(
      threads, options.max_concurrent_calls > 0 ? options.max_concurrent_calls : 64 * threads);
  if (impl_->scheduler_->threads() == 0) {
    impl_->scheduler_.reset();
    return absl::ResourceExhaustedError("cannot start any handler thread");
  }
  // Bind every port before serving anything, so that a failure leaves nothing half-started.
  if (impl_->options_.grpc_port >= 0) {
    impl_->grpc_ = impl_->options_.grpc_server == ServerOptions::GrpcServer::kNative
                       ? internal::MakeNativeGrpcServerTransport(impl_->options_)
                       : internal::MakeGrpcServerTransport(impl_->options_);
    if (absl::Status s = impl_->grpc_->Start(*impl_->table_, impl_->scheduler_.get()); !s.ok()) {
      impl_->grpc_.reset();
      return s;
    }
  }
  if (impl_->options_.thrift_port >= 0) {
    impl_->thrift_ = internal::MakeThriftServerTransport(impl_->options_);
    if (absl::Status s = impl_->thrift_->Start(*impl_->table_, impl_->scheduler_.get()); !s.ok()) {
      impl_->thrift_.reset();
      if (impl_->grpc_) impl_->grpc_->Shutdown(std::chrono::steady_clock::now());
      impl_->grpc_.reset();
      return s;
    }
  }
  impl_->started_ = true;
  return absl::OkStatus();
}

int Server::grpc_port() const { return impl_->grpc_ ? impl_->grpc_->port() : -1; }
int Server::thrift_port() const { return impl_->thrift_ ? impl_->thrift_->port() : -1; }

void Server::Shutdown() {
  if (!impl_->started_) return;
  impl_->started_ = false;
  auto deadline = std::chrono::steady_clock::now() + impl_->options_.shutdown_grace;
  // Both protocols stop taking calls at once; the calls taken run out within the grace period
  // (what is still queued then is refused unrun); replies are written; then the ports close.
  if (impl_->thrift_) impl_->thrift_->StopAccepting();
  if (impl_->grpc_) impl_->grpc_->StopAccepting();
  impl_->scheduler_->Drain(deadline);
  // A moment past the grace period for the last replies to reach their callers.
  auto flush =
      std::max(deadline, std::chrono::steady_clock::now()) + std::chrono::milliseconds(500);
  if (impl_->thrift_) impl_->thrift_->Shutdown(flush);
  if (impl_->grpc_) impl_->grpc_->Shutdown(flush);
  // The pool goes first (joining a handler that outlived the grace period), then the
  // transports it may still have been writing through.
  impl_->scheduler_.reset();
  impl_->thrift_.reset();
  impl_->grpc_.reset();
}

}  // namespace rpcboot
