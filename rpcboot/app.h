// rpcboot::App: a service process in a few lines. It loads the configuration (rpcboot/config.h),
// serves the bound interfaces over Thrift and/or gRPC, registers in ZooKeeper once every port
// listens, and on SIGTERM or SIGINT deregisters, drains, stops and returns 0.
//
//   int main(int argc, char** argv) {
//     auto app = rpcboot::App::FromCommandLine(argc, argv);  // --config=shop.yaml, env, --k=v
//     app->Serve<shop::ShopService>(std::make_shared<ShopServiceImpl>());
//     return app->Run();
//   }
//
//   // A proxy for another service, resolved through the registry (or clients.<svc>.address),
//   // balanced, retried when safe:
//   std::shared_ptr<shop::ShopService> shops = app->Client<shop::ShopService>();
//
// Lifecycle (Run): bind every port, then connect to ZooKeeper and register (ZooKeeper
// unreachable: serve anyway and register when it is back, unless registry.fail_fast); serve,
// keeping the registration through session expiry, long outages and deletions; on a signal,
// delete the node, wait registry.drain_ms for clients to see it, stop accepting, let in-flight
// calls finish within server.shutdown_grace_ms, close.
//
// Serve before Start/Run. Client any time, from any thread. One App per process is the usual
// shape (it installs the signal handlers while Run runs). Not copyable; Stop is thread-safe.
#ifndef RPCBOOT_APP_H_
#define RPCBOOT_APP_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/client.h"
#include "rpcboot/config.h"
#include "rpcboot/migration.h"
#include "rpcboot/server.h"

namespace rpcboot {

namespace discovery {
class Session;
class Registrar;
class Resolver;
}  // namespace discovery
class MigrationFlag;
namespace internal {
class AdminServer;
struct AdminInfo;
}  // namespace internal

class App {
 public:
  // From the command line (see LoadConfig); an error names the key, value and source. Does not
  // know --help: check WantsHelp (rpcboot/config.h) first, or use FromCommandLine.
  static absl::StatusOr<std::unique_ptr<App>> Create(int argc, const char* const* argv);
  // Create for main(): for --help (or -h) prints ConfigHelp() on stdout and exits 0; for a bad
  // configuration prints "<program>: <reason>" on stderr and exits 2.
  static std::unique_ptr<App> FromCommandLine(int argc, const char* const* argv);
  static absl::StatusOr<std::unique_ptr<App>> FromConfig(AppConfig config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  const AppConfig& config() const { return config_; }

  template <class S>
  void Serve(std::shared_ptr<S> impl) {
    internal::RequireGenerated<S>();
    services_.push_back(internal::BindingOf<S>().full_name);
    server_->AddService<S>(std::move(impl));
  }

  // An in-process implementation of S that Client<S>() proxies may call instead of the service,
  // as clients.<S>.mode and the flag node in ZooKeeper say (rpcboot/migration.h,
  // docs/migration.md): local (the default once one is registered), remote, shadow, percent:N.
  // Call before the first Client<S>().
  template <class S>
  void Local(std::shared_ptr<S> impl) {
    internal::RequireGenerated<S>();
    AddLocal(internal::BindingOf<S>(), std::shared_ptr<void>(impl, static_cast<S*>(impl.get())));
  }
  // Switches the migration mode of the client of `service` ("shop.ShopService") for the calls
  // that start from now on; `source` names who did it in the log. FailedPrecondition when the
  // client has no migration (no App::Local and no mode configured) or the mode needs a side it
  // lacks; NotFound before the first Client of that service.
  absl::Status SetMigrationMode(const std::string& service, MigrationMode mode, std::string source);
  // What the client of `service` knows now: its instances, resilience state and migration
  // (empty before its first Client).
  ChannelState ClientState(const std::string& service);
  // The migration of the client of `service`: its mode and counts; nullopt when it has none.
  std::optional<MigrationStats> Migration(const std::string& service);

  // A proxy for S, configured by clients.<S's full name> (see ClientConfig): by default the
  // instances of S's package name in this app's registry. Every proxy of S shares one channel
  // (its connections, balancing and resilience state). Throws RpcError(kInvalidArgument) when
  // there is nothing to resolve S with (no registry and no address).
  template <class S>
  std::shared_ptr<S> Client() {
    return MakeClient<S>(ChannelFor(internal::BindingOf<S>()));
  }
  // The same, with a fallback implementation of S that answers the calls the service fails
  // (UNAVAILABLE, DEADLINE_EXCEEDED, an open circuit): see WithFallback in rpcboot/client.h.
  template <class S>
  std::shared_ptr<S> Client(std::shared_ptr<S> fallback, FallbackOptions options = {}) {
    return MakeClient<S>(WithFallback<S>(ChannelFor(internal::BindingOf<S>()), std::move(fallback),
                                         std::move(options)));
  }

  // Code of yours around calls: every call this app serves, on both protocols (ServerInterceptor
  // in rpcboot/server.h; after config().server.interceptors; before Start), and every call of
  // the proxies Client makes (ClientInterceptor in rpcboot/client.h; a service's proxies keep
  // the interceptors added before its first Client). The first added is outermost.
  void AddServerInterceptor(ServerInterceptor interceptor);
  void AddClientInterceptor(ClientInterceptor interceptor);

  // Start, wait for SIGTERM/SIGINT (or Stop()), Shutdown. Returns the exit code: 0 after a clean
  // stop, 1 when Start failed (the error is logged).
  int Run();

  // The parts of Run, for tests and for programs with a loop of their own.
  absl::Status Start();
  void Stop();      // makes Run return; safe from any thread and from signal handlers
  void Shutdown();  // deregister, drain, stop serving; idempotent

  int grpc_port() const { return server_->grpc_port(); }
  int thrift_port() const { return server_->thrift_port(); }
  // The admin HTTP port (admin.port) once started; -1 when off.
  int admin_port() const;
  // The registry path of this instance ("" without a registry).
  std::string registry_path() const;
  bool registered() const;

 private:
  explicit App(AppConfig config);
  std::shared_ptr<Channel> ChannelFor(const internal::ServiceBinding& binding);
  std::shared_ptr<Channel> RemoteChannelFor(const std::string& service, const ClientConfig& client,
                                            std::string* target);
  void AddLocal(const internal::ServiceBinding& binding, std::shared_ptr<void> impl);
  void EnsureSession();
  internal::AdminInfo Info();

  AppConfig config_;
  std::unique_ptr<Server> server_;
  std::vector<std::string> services_;
  std::mutex session_mu_;  // Client may be called from several threads
  std::shared_ptr<discovery::Session> session_;
  std::shared_ptr<discovery::Resolver> resolver_;
  std::unique_ptr<discovery::Registrar> registrar_;
  // The channel of each service this app calls, shared by its proxies.
  struct ClientChannel {
    std::string target;
    Protocol protocol;
    std::shared_ptr<Channel> channel;
    std::shared_ptr<MigrationChannel> migration;  // when it has one
    std::shared_ptr<MigrationFlag> flag;          // the flag node it watches
  };
  struct LocalImpl {
    const internal::ServiceBinding* binding;
    std::shared_ptr<void> impl;
  };
  std::map<std::string, LocalImpl> locals_;             // by service; under session_mu_
  std::map<std::string, ClientChannel> channels_;       // by service; under session_mu_
  std::vector<ClientInterceptor> client_interceptors_;  // under session_mu_
  std::unique_ptr<internal::AdminServer> admin_;
  std::atomic<bool> serving_{false};
  std::vector<std::pair<std::string, std::string>> effective_config_;  // for the status page
  int stop_pipe_[2] = {-1, -1};
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace rpcboot

#endif  // RPCBOOT_APP_H_
