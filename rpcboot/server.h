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
// Threading: at most options.handler_threads handlers run at once, both protocols together, and
// a handler may block without stalling anything but its own call. A call runs on the thread
// that read it when a handler slot is free (no hop): on gRPC once another thread polls in its
// place, on Thrift with its event loop handed to another thread if the handler blocks. Other
// calls queue for the handler pool. An implementation is called from many threads at once and
// must be thread-safe. Start, Shutdown and the destructor are called from one thread; the port
// accessors from any.
#ifndef RPCBOOT_SERVER_H_
#define RPCBOOT_SERVER_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/security.h"

namespace rpcboot {

class ServerContext;

// Code of yours around the handler of every call, on both protocols: logging, a per-tenant
// quota, a thread-local the handler reads. It runs on the handler's thread once the call is
// admitted and its caller authorized (ServerOptions::auth), with the call's context (metadata,
// identity, deadline) and its method ("/shop.ShopService/GetShop"). `proceed()` runs the
// interceptors after it and then the handler (the request's decoding and the reply's encoding
// included), and throws what they throw: an interceptor sees the handler's RpcError and may
// catch it, throw another or let it pass. Throwing RpcError before or after proceed fails the
// call with that code and message (any other exception: INTERNAL). A failed handler leaves no
// reply to send, so its error stands even when an interceptor catches it and returns. Returning
// without calling proceed fails the call with INTERNAL naming the method; a second call of
// proceed throws.
using ServerInterceptor = std::function<void(const ServerContext& call, std::string_view method,
                                             const std::function<void()>& proceed)>;

struct ServerOptions {
  std::string host = "0.0.0.0";
  int grpc_port = -1;    // -1: no gRPC; 0: pick a free port
  int thrift_port = -1;  // -1: no Thrift; 0: pick a free port
  // Largest request or reply, in bytes (a Thrift frame, a gRPC message). A larger request is
  // answered RESOURCE_EXHAUSTED on both protocols.
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  // Handlers that may run at once, both protocols (the handler pool's threads; a Thrift call
  // run in place on its loop takes a slot too); handlers may block. 0: max(8, 2 x cores).
  int handler_threads = 0;
  // Calls queued and running at once, both protocols together; one more is answered
  // RESOURCE_EXHAUSTED at once. 0: 64 x handler threads.
  int max_concurrent_calls = 0;
  // Thrift: I/O threads (event loops). 0: max(8, cores). The native gRPC server's loops too
  // (0: one per core).
  int io_threads = 0;
  // Which HTTP/2 server carries gRPC. kNative: rpcboot's own (HTTP/2 framing by nghttp2 on
  // event loops of its own, run as the Thrift loops are: a call runs on the loop that read it,
  // and a loop whose call blocks goes to another thread). kGrpcpp: gRPC's C++ library, its
  // completion queue polled by rpcboot's threads.
  enum class GrpcServer { kGrpcpp, kNative };
  GrpcServer grpc_server = GrpcServer::kNative;
  // Thrift: how the event loops wait on their sockets. kEpoll everywhere. kUring: io_uring (Linux
  // 6.0 or later), one system call per message where epoll makes three (wait, read, write);
  // plaintext only (a server with TLS stays on epoll), and a kernel or container that refuses
  // io_uring (Docker's default seccomp profile does) gets epoll, said in the log.
  enum class ThriftIo { kEpoll, kUring };
  ThriftIo thrift_io = ThriftIo::kEpoll;
  // Open connections at most, per protocol. Thrift: at the cap, a new connection replaces the
  // oldest idle one, or is closed at once when none is idle. gRPC: a new one is closed at once.
  int max_connections = 10000;
  // Thrift: a frame must arrive whole within this of its first byte, and a reply must be read
  // within it; otherwise the connection closes. gRPC: a connection's handshake (TLS, HTTP/2
  // preface and settings) must finish within it.
  std::chrono::milliseconds frame_timeout{std::chrono::seconds(10)};
  // A Thrift connection with nothing in progress for this long is closed; a gRPC connection
  // without a call for this long is sent GOAWAY (gRPC clients reconnect on their next call).
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // gRPC: concurrent streams (calls) one HTTP/2 connection may open.
  int grpc_max_concurrent_streams = 100;
  // gRPC: a connection is sent GOAWAY once it is this old, whatever it carries (gRPC spreads the
  // moment by +-10%), and closed once its calls are over, or grpc_max_connection_age_grace
  // later. A peer that opens calls and never finishes sending their requests holds a connection
  // (and its place under max_connections) no longer than age + grace; clients reconnect on their
  // next call and spread over the instances registered since. 0: no limit (gRPC's own default).
  std::chrono::milliseconds grpc_max_connection_age{std::chrono::minutes(10)};
  // gRPC: how long the calls of a connection past its age may still take; a call still running
  // then fails UNAVAILABLE on the client.
  std::chrono::milliseconds grpc_max_connection_age_grace{std::chrono::minutes(5)};
  // gRPC: reply bytes one connection may have waiting to be read by its peer. A reply that would
  // pass it is replaced by RESOURCE_EXHAUSTED, so a peer that never reads cannot make the server
  // hold its replies: memory per connection stays near this plus the calls still running.
  std::size_t grpc_max_unsent_bytes = 64 * 1024 * 1024;
  // gRPC: the memory gRPC itself may use for connections and calls (its ResourceQuota); under
  // pressure gRPC shrinks its flow-control windows and refuses new streams. 0: no quota.
  std::size_t grpc_memory_quota = std::size_t{1} << 30;
  // gRPC: compressed messages (native server only). kOff: a compressed request is refused
  // (UNIMPLEMENTED, grpc-accept-encoding: identity) before any of it is kept. kAccept: gzip and
  // deflate requests are inflated, the output bounded by max_message_bytes (inflating stops
  // there: RESOURCE_EXHAUSTED) and counted in grpc_memory_quota; replies are not compressed.
  // kGzip: kAccept, and replies of 1 KiB or more go gzip-compressed (zlib level 1) to callers
  // whose grpc-accept-encoding lists gzip, when that makes them smaller. gRPC's library
  // (grpc_server kGrpcpp) inflates a message whole before its size is checked: Start() refuses
  // anything but kOff with it.
  enum class GrpcCompression { kOff, kAccept, kGzip };
  GrpcCompression grpc_compression = GrpcCompression::kOff;
  // Thrift: THeader frames compressed with the zlib transform (THeaderTransport's
  // ZLIB_TRANSFORM). kOff: such a call is answered UNIMPLEMENTED naming this setting, without
  // running (its first 64 KiB are inflated to read whom to answer), and the connection serves
  // on. kZlib: the request is inflated on the loop that read it, the output bounded by
  // max_message_bytes (inflating stops there: RESOURCE_EXHAUSTED) and, with every other call's,
  // by thrift_inflated_quota; the reply goes back zlib-compressed, as THeaderTransport answers.
  // Other transforms (snappy, zstd: fbthrift's) close the connection with the reason logged.
  enum class ThriftCompression { kOff, kZlib };
  ThriftCompression thrift_compression = ThriftCompression::kOff;
  // Thrift (kZlib): inflated request bytes all calls may hold at once, from inflating until the
  // handler returns; a call that would pass it is answered RESOURCE_EXHAUSTED naming the setting.
  std::size_t thrift_inflated_quota = std::size_t{256} << 20;
  // Methods whose handlers never block (no I/O, no locks held long), as
  // "<package>.<Service>/<Method>" or "<package>.<Service>/*": they run on the I/O thread that
  // read the call, with no hop to the handler pool (the fastest path for cheap methods). A
  // listed handler that blocks stalls every connection of its I/O thread: list only what is
  // known not to. Empty by default: every handler runs on the pool.
  std::vector<std::string> inline_methods;
  // Shutdown: how long in-flight calls may take to finish.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(5)};
  // TLS on both ports when tls.cert_file is set (OpenSSL; with grpc_server kGrpcpp, gRPC's SSL
  // credentials); mutual TLS with tls.ca_file (and require_client_cert).
  TlsOptions tls;
  // Who may call what: tokens, required identity, an allow list, your own check.
  AuthOptions auth;
  // Run around every handler, the first listed outermost (see ServerInterceptor). Health
  // checks and reflection do not pass through them.
  std::vector<ServerInterceptor> interceptors;
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
    internal::RequireGenerated<S>();
    AddBinding(internal::BindingOf<S>(), std::shared_ptr<void>(impl, static_cast<S*>(impl.get())));
  }

  // Adds an interceptor after those of ServerOptions::interceptors. Before Start().
  void AddInterceptor(ServerInterceptor interceptor);

  // Binds every configured port and starts serving. Errors name the port that failed.
  absl::Status Start();
  int grpc_port() const;    // the bound port, -1 when off
  int thrift_port() const;  // the bound port, -1 when off
  // Stops taking calls on both protocols (new ones are refused with UNAVAILABLE before any
  // handler runs), lets the calls already taken finish within options.shutdown_grace and
  // writes their replies, then closes. A call still queued at the end of the grace period is
  // answered UNAVAILABLE without running. Idempotent.
  void Shutdown();

 private:
  void AddBinding(const internal::ServiceBinding& binding, std::shared_ptr<void> impl);

  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rpcboot

#endif  // RPCBOOT_SERVER_H_
