// The interface each protocol's server side implements; rpcboot::Server holds one per
// configured protocol and knows nothing else about them.
#ifndef RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_
#define RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rpcboot/base/internal/clock.h"
#include "rpcboot/internal/auth.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/dispatch.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"

namespace rpcboot::internal {

struct BoundService {
  const ServiceBinding* binding;
  std::shared_ptr<void> impl;
};

// One served method: its binding and the object that implements it.
// What the server learns about a method while it serves (shared by the method's routes).
struct MethodRuntime {
  // After one of its calls blocked where it ran in place (on an I/O thread), a method's calls
  // go to the handler pool for this long; then one runs in place again, to learn whether the
  // method still blocks.
  static constexpr std::chrono::seconds kPoolAfterBlocking{1};

  // Whether a call of the method may run in place now.
  bool MayRunInPlace() const {
    const int64_t until = pool_until_ns.load(std::memory_order_relaxed);
    return until == 0 || until <= SteadyNanos();  // no clock for a method that never blocked
  }
  // A call of the method blocked in place.
  void BlockedInPlace() {
    pool_until_ns.store(SteadyNanos() + std::chrono::nanoseconds(kPoolAfterBlocking).count(),
                        std::memory_order_relaxed);
  }

  // Until this steady-clock time (ns since its epoch), calls of the method go straight to the
  // handler pool.
  std::atomic<int64_t> pool_until_ns{0};
  // Its calls, counted per protocol (rpcboot/internal/metrics.h); never null.
  CallStats* grpc_stats = nullptr;
  CallStats* thrift_stats = nullptr;
};

struct Route {
  const MethodBinding* method;
  void* impl;
  // Listed in ServerOptions::inline_methods: the handler never blocks, so it runs on the I/O
  // thread that read the call, with no hop to the handler pool.
  bool run_inline = false;
  MethodRuntime* runtime = nullptr;  // owned by the table
};

// Every method of every bound service, found by Thrift message name or gRPC path: the one
// method table both transports serve from. Built before Start; read-only afterwards, so any
// number of threads may look up at once. Does not own the services (Server does).
class MethodTable {
 public:
  // `inline_methods` as ServerOptions::inline_methods says; Make fails (InvalidArgument) on an
  // entry that names no bound method. `grpc`, `thrift`: the protocols served (their calls are
  // counted in the metrics).
  static absl::StatusOr<std::unique_ptr<MethodTable>> Make(
      const std::vector<BoundService>& services, const std::vector<std::string>& inline_methods,
      bool grpc, bool thrift);
  // "shop.ShopService:GetShop" (the multiplexed protocol's name), or a plain "GetShop" when
  // exactly one bound service has that method. nullptr: unknown or ambiguous.
  const Route* FindThrift(std::string_view message_name) const;
  // Why FindThrift found nothing when the plain name is ambiguous (naming the services that
  // have it); "" when the name is simply unknown.
  std::string ThriftUnknownReason(std::string_view message_name) const;
  // "/shop.ShopService/GetShop". nullptr: unknown.
  const Route* FindGrpc(std::string_view path) const;
  // Calls `fn` with every route by gRPC path, in path order.
  template <class Fn>
  void ForEachGrpc(Fn&& fn) const {
    for (const auto& [path, route] : grpc_) fn(route);
  }
  // The full names of the bound services ("shop.ShopService"), in the order they were added.
  const std::vector<std::string>& services() const { return services_; }
  // Their bindings, in the same order.
  const std::vector<const ServiceBinding*>& bindings() const { return bindings_; }
  // Who may call: checked by both transports before every handler (set by Server before
  // Start; never null once set).
  const CallGuard& guard() const { return *guard_; }
  void set_guard(std::shared_ptr<const CallGuard> guard) { guard_ = std::move(guard); }
  void set_interceptors(std::vector<ServerInterceptor> interceptors) {
    interceptors_ = std::move(interceptors);
  }

  // What every transport runs for a call of `route`, inside RunHandler: checks the caller
  // (guard: throws RpcError when refused), then runs `serve` (decode, handler, encode) inside
  // ServerOptions::interceptors.
  template <class Fn>
  void Serve(const Route& route, std::string_view token, ServerContext& context, Fn&& serve) const {
    if (Refusal refusal = guard().Check(route.method->grpc_path, token, context.mutable_identity());
        refusal.refused()) {
      throw RpcError(refusal.code, refusal.message);
    }
    if (interceptors_.empty()) {
      serve();
    } else {
      Intercept(context, route.method->grpc_path, serve);
    }
  }

 private:
  MethodTable() = default;
  std::vector<std::string> services_;
  std::vector<const ServiceBinding*> bindings_;
  void Intercept(const ServerContext& context, std::string_view method,
                 absl::FunctionRef<void()> serve) const;

  std::shared_ptr<const CallGuard> guard_;
  std::vector<ServerInterceptor> interceptors_;
  std::deque<MethodRuntime> runtimes_;  // one per method; never moves
  // Looked up on every Thrift call: hashed (read-only once made, so a Route never moves).
  absl::flat_hash_map<std::string, Route> thrift_qualified_;
  absl::flat_hash_map<std::string, std::vector<Route>> thrift_plain_;
  std::map<std::string, Route, std::less<>> grpc_;
};

class CallScheduler;

// A protocol's server side. Transports move bytes: they decode framing, count each call in
// with the scheduler (and run it on the thread that read it, or hand it to the scheduler's
// pool) and write what comes back; user code never runs where it could stall their I/O.
class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  // Binds the port and starts serving the methods of `table` through `scheduler` (both outlive
  // the transport).
  virtual absl::Status Start(const MethodTable& table, CallScheduler* scheduler) = 0;
  virtual int port() const = 0;
  // Takes no new connections or calls; calls already taken go on. Returns at once.
  virtual void StopAccepting() = 0;
  // Writes the replies of finished calls (until `deadline`), then closes everything. Called
  // after the scheduler has drained. Idempotent.
  virtual void Shutdown(std::chrono::steady_clock::time_point deadline) = 0;
};

// ServerOptions::grpc_server picks one of these two.
std::unique_ptr<ServerTransport> MakeGrpcServerTransport(const ServerOptions& options);
std::unique_ptr<ServerTransport> MakeNativeGrpcServerTransport(const ServerOptions& options);
std::unique_ptr<ServerTransport> MakeThriftServerTransport(const ServerOptions& options);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_
