// rpcboot::Server serves any number of annotated interfaces, each bound to an implementation
// object, over Thrift, gRPC or both at once.
//
//   rpcboot::ServerOptions options;
//   options.grpc_port = 0;    // 0: pick a free port; -1: off
//   options.thrift_port = 0;
//   rpcboot::Server server(options);
//   server.AddService<shop::ShopService>(std::make_shared<ShopServiceImpl>());
//   if (absl::Status s = server.Start(); !s.ok()) { ... }   // every port is bound on return
//   std::cout << server.grpc_port() << " " << server.thrift_port();
//   ...
//   server.Shutdown();   // stop accepting, finish in-flight calls within options.shutdown_grace
//
// Threading: handlers run concurrently on a pool of options.handler_threads threads (gRPC) and
// on one thread per connection (Thrift); an implementation must be thread-safe. Start,
// Shutdown and the destructor are called from one thread; the port accessors from any.
#ifndef RPCBOOT_SERVER_H_
#define RPCBOOT_SERVER_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int grpc_port = -1;    // -1: no gRPC; 0: pick a free port
  int thrift_port = -1;  // -1: no Thrift; 0: pick a free port
  // Largest request or reply, in bytes (a Thrift frame, a gRPC message).
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  // gRPC handler threads; 0: twice the number of cores, at least 8.
  int handler_threads = 0;
  // Thrift: a connection that sends nothing for this long is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // Shutdown: how long in-flight calls may take to finish.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(5)};
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Shutdown() if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `impl` to service S (include S's generated <stem>.rpcboot.h). Before Start().
  template <class S>
  void AddService(std::shared_ptr<S> impl) {
    AddBinding(internal::BindingOf<S>(), std::shared_ptr<void>(impl, static_cast<S*>(impl.get())));
  }

  // Binds every configured port and starts serving. Errors name the port that failed.
  absl::Status Start();
  int grpc_port() const;    // the bound port, -1 when off
  int thrift_port() const;  // the bound port, -1 when off
  // Stops accepting, lets in-flight calls finish within the grace period, closes. Idempotent.
  void Shutdown();

 private:
  void AddBinding(const internal::ServiceBinding& binding, std::shared_ptr<void> impl);

  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rpcboot

#endif  // RPCBOOT_SERVER_H_
