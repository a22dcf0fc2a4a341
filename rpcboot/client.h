// Client proxies: objects that implement a service interface by calling a server.
//
//   std::shared_ptr<shop::ShopService> shop = rpcboot::MakeClient<shop::ShopService>(channel);
//   shop::Shop s = shop->GetShop({42});  // throws rpcboot::RpcError on failure
//
//   // The same interface bound to a local object, through the same encode/decode path: for
//   // tests, and for moving a call site from in-process to RPC behind a flag.
//   std::shared_ptr<shop::ShopService> local = rpcboot::BindInProcess<shop::ShopService>(impl);
//
// Proxies are thread-safe and cheap to copy (shared_ptr). Include the generated
// <stem>.rpcboot.h of the service's header before calling these.
#ifndef RPCBOOT_CLIENT_H_
#define RPCBOOT_CLIENT_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rpcboot/channel.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/security.h"
#include "rpcboot/status.h"

namespace rpcboot {

// Resilience for lists of instances ("static://", "zk://", App clients); docs/resilience.md
// says in which order they apply to a call.

// An instance that fails or is slow while the others are not is taken out of rotation for a
// while (ejected), then gets one probe call at a time until a probe succeeds.
struct OutlierDetection {
  bool enabled = true;
  // This many failures in a row (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, DATA_LOSS,
  // or a connection refused) eject at once.
  int consecutive_failures = 5;
  // Every `interval`, an instance with at least `min_calls` calls in it is ejected when at least
  // this share of them failed...
  double failure_rate = 0.5;
  // ...or when its mean latency is over `latency_factor` x the median of the instances' means and
  // over `min_latency` (0 turns latency ejection off).
  double latency_factor = 4.0;
  std::chrono::milliseconds min_latency{20};
  int min_calls = 5;
  std::chrono::milliseconds interval{std::chrono::seconds(1)};
  // The first ejection lasts base_ejection; each repeat doubles it, up to max_ejection. A probe
  // that fails (or is as slow as what got the instance ejected) ejects it again.
  std::chrono::milliseconds base_ejection{std::chrono::seconds(1)};
  std::chrono::milliseconds max_ejection{std::chrono::seconds(30)};
  // At most this share of the instances is ejected at once (at least one of two or more), so
  // a bad deploy cannot eject everything.
  int max_ejected_percent = 50;
};

// When most calls to the service fail, calls fail fast (UNAVAILABLE, "circuit open") instead
// of waiting for their timeouts; after open_for, one call at a time probes, and the first that
// succeeds closes the circuit.
struct CircuitBreaker {
  bool enabled = true;
  double failure_rate = 0.5;  // of the calls in `window`, with at least min_calls of them
  int min_calls = 20;
  std::chrono::milliseconds window{std::chrono::seconds(2)};
  std::chrono::milliseconds open_for{std::chrono::seconds(2)};
};

// Retries and failovers together: at most `ratio` of the calls, plus `min_per_second`, so a
// service that fails entirely gets little extra traffic. A retry after a call that had left
// waits a random time up to backoff x 2^(retry - 1) (jitter), within the call's deadline.
struct RetryBudget {
  double ratio = 0.1;
  int min_per_second = 10;
  std::chrono::milliseconds backoff{25};
};

// The HTTP/2 client under a gRPC channel.
enum class GrpcClient {
  // gRPC's C++ library: its own I/O threads (a blocking call waits for one of them), any gRPC
  // target string, gRPC's own connection management.
  kGrpcpp,
  // rpcboot's own (nghttp2): each call's I/O on the calling thread over a pooled connection of its
  // own up to 32 calls in flight (no thread hop), past that as an HTTP/2 stream on one of those
  // (one caller reads for the others). "host:port" targets only.
  kNative,
};

// gRPC channels: how requests go (replies compressed with gzip or deflate are inflated either way,
// up to max_message_bytes).
enum class GrpcCompression {
  kOff,   // requests go uncompressed
  kGzip,  // native client: requests of 1 KiB or more go gzip-compressed (zlib level 1) when that
          // makes them smaller; gRPC's library compresses every request with gzip
};

// Thrift channels: how requests go (replies in THeader's zlib transform are inflated either way,
// up to max_message_bytes).
enum class ThriftCompression {
  kOff,   // requests go uncompressed
  kZlib,  // requests of 1 KiB or more go in THeader frames with the zlib transform (zlib level
          // 1) when that makes them smaller, as THeaderTransport's ZLIB_TRANSFORM writes them
};

struct ChannelOptions {
  // Deadline of a call that sets none (see ScopedCallOptions).
  std::chrono::milliseconds default_timeout{std::chrono::seconds(5)};
  std::size_t max_message_bytes = 16 * 1024 * 1024;
  // gRPC channels: which HTTP/2 client carries the calls (see GrpcClient).
  GrpcClient grpc_client = GrpcClient::kNative;
  // gRPC channels: compressed requests (see GrpcCompression). The server must take them: an
  // rpcboot server with server.grpc_compression accept or gzip, or a stock gRPC server.
  GrpcCompression grpc_compression = GrpcCompression::kOff;
  // gRPC channels, native client: a connection idle in the pool this long is sent an HTTP/2
  // PING, and closed when the answer takes longer than grpc_keepalive_timeout, so that no call
  // lands on a connection a middlebox or a dead host dropped without a word (and a NAT keeps its
  // mapping). Checked once a second. 0 (the default): no PINGs. gRPC's servers take PINGs on a
  // connection without calls only when allowed (GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, and a
  // GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS below this); otherwise they end the
  // connection (GOAWAY too_many_pings) and the next call opens a new one.
  std::chrono::milliseconds grpc_keepalive_time{0};
  std::chrono::milliseconds grpc_keepalive_timeout{std::chrono::seconds(20)};
  // Thrift channels: compact (default) or binary.
  WireFormat thrift_format = WireFormat::kThriftCompact;
  // Thrift channels: compressed requests (see ThriftCompression). The server must take them: an
  // rpcboot server with server.thrift_compression zlib, or Python's THeader server (Thrift's C++
  // THeaderTransport cannot read the zlib transform: docs/interop.md).
  ThriftCompression thrift_compression = ThriftCompression::kOff;
  // Thrift channels: wrap calls in THeader frames, which carry the call's deadline to the
  // server (rpcboot servers and Thrift's THeader servers read them; plain framed servers,
  // such as a stock TThreadedServer with TFramedTransport, do not).
  bool thrift_header = false;
  // Thrift channels: send every call by its multiplexed name ("shop.ShopService:GetShop"), as
  // TMultiplexedProtocol does, from the first call: what a stock server built on
  // TMultiplexedProcessor needs (it closes the connection on a plain name). Off, a call goes by
  // its plain name, and by the multiplexed one from then on when the server answers that it does
  // not know the plain one (an rpcboot server whose services share the method name).
  bool thrift_multiplexed = false;
  // "zk://" and App clients: instances registered without rpcboot metadata (a plain Spring or
  // Curator service) are called too, over this channel's protocol at their `port` (gRPC: at
  // their gRPC_port when they publish one, which is called even without this); plain framed
  // on Thrift. Off: such instances are listed, never called (the call's error counts them).
  bool call_foreign_instances = false;
  // Lists of several instances ("static://", "zk://"): the load balancer by name, see
  // rpcboot/lb/load_balancer.h ("p2c", "round_robin", "weighted_random", "consistent_hash").
  std::string load_balancer = "p2c";
  // Lists: how many instances one call may try when an attempt fails in a way that allows
  // another (the request never left, or the method is RPCBOOT_IDEMPOTENT).
  int max_attempts = 3;
  // Lists: talk to at most this many instances (a subset; 0: all). Each client takes a window
  // of the instances in a fixed order (by a hash of their ids) at its subset_position, so with
  // clients spread over positions every instance is in some clients' subsets and each carries
  // about the same number of clients; a change to the list moves a window by about one
  // instance. 1,000 clients x 10,000 instances with subset_size 20 make 20,000 connections,
  // not 10 million.
  int subset_size = 0;
  // This client's place in [0, 1): give index / count when the clients know their index among
  // count (the best spread: exactly even); -1 (the default): from a hash of the host name and
  // process id (even on average).
  double subset_position = -1;
  // zk:// lists: when the registry suddenly lists no node at all for the application (not
  // even one that is not UP), the instances known before keep being called for this long, as
  // registry churn (a session replaced after an outage) can empty a list for a moment; then
  // calls fail UNAVAILABLE. Instances the registry lists as not UP are never called.
  std::chrono::milliseconds empty_registry_grace{std::chrono::seconds(10)};
  // Lists: see the structs above (on by default, except max_in_flight).
  OutlierDetection outlier;
  CircuitBreaker circuit;
  RetryBudget retry_budget;
  // Lists: calls this channel may have in flight at once; one more fails RESOURCE_EXHAUSTED at
  // once (0: no limit).
  int max_in_flight = 0;
  // Lists: a call past max_in_flight waits for a slot, within its deadline, instead of failing
  // at once (it fails RESOURCE_EXHAUSTED when the deadline comes first).
  bool queue_when_full = false;
  // Lists, RPCBOOT_IDEMPOTENT methods only: a call with no answer after hedge_delay is sent
  // again to another instance (a backup request); the first answer wins and the other attempt
  // is cancelled. Backups come out of the retry budget. 0: off (the default).
  std::chrono::milliseconds hedge_delay{0};
  // Lists: the delay is the observed p95 latency of this channel's calls (over the last second
  // or so, once a hundred calls have been seen; hedge_delay until then, and at least 1 ms).
  bool hedge_at_p95 = false;
  // The methods ("GetShop") that hedge; empty: every idempotent method.
  std::vector<std::string> hedge_methods;

  // TLS to the server (both protocols); see rpcboot/security.h. zk:// lists also use TLS for
  // every instance whose registration says it serves TLS (rpcboot.tls).
  TlsOptions tls;
  // Sent with every call as the caller's credential (gRPC "authorization: Bearer <token>",
  // THeader header "authorization"; Thrift channels then use THeader). Empty: none.
  std::string bearer_token;

  // A call's time budget from now: its own CallOptions::timeout; else, inside a handler whose
  // caller sent a deadline, what is left of it (at most default_timeout): deadlines carry
  // across hops; else default_timeout. Zero or less: the deadline has passed and the call is not
  // sent (DEADLINE_EXCEEDED). Every channel computes deadlines through this one function.
  std::chrono::milliseconds TimeoutFor(const CallOptions& call) const;
};

// A channel to one gRPC endpoint: "host:port", or with options.grpc_client == kGrpcpp any gRPC
// target string.
std::shared_ptr<Channel> MakeGrpcChannel(const std::string& target, ChannelOptions options = {});
// The native gRPC client to one "host:port" (what MakeGrpcChannel makes with kNative).
std::shared_ptr<Channel> MakeNativeGrpcChannel(const std::string& host_port,
                                               ChannelOptions options = {});

// A channel to one Thrift endpoint ("host:port"): framed transport, a pool of connections.
std::shared_ptr<Channel> MakeThriftChannel(const std::string& host_port,
                                           ChannelOptions options = {});

enum class Protocol { kGrpc, kThrift };

// A channel for an address in rpcboot's grammar:
//   "host:port"                        one endpoint
//   "static://host:port,host:port,..." a fixed list
//   "zk://host:port,host:port/services/shop"
//                                      the instances of application "shop" registered under
//                                      /services in that ZooKeeper (docs/registry.md), watched
//                                      and cached: no ZooKeeper round trip per call
// Lists spread calls with options.load_balancer. A call whose instance refuses the connection
// (the request never left) moves on to another instance; one whose connection drops after the
// request left moves on only when its method is RPCBOOT_IDEMPOTENT, and fails fast with
// UNAVAILABLE otherwise. An instance that refused is avoided for a while (100 ms, doubling up
// to 5 s). Throws RpcError(kInvalidArgument) for an address it cannot parse, naming the part
// that is wrong.
std::shared_ptr<Channel> MakeChannel(const std::string& address, Protocol protocol,
                                     ChannelOptions options = {});

// Sets call options (a deadline) for the proxy calls this thread makes while it lives:
//   { rpcboot::ScopedCallOptions o({std::chrono::milliseconds(50)}); shop->GetShop(request); }
class ScopedCallOptions {
 public:
  explicit ScopedCallOptions(CallOptions options);
  ~ScopedCallOptions();
  ScopedCallOptions(const ScopedCallOptions&) = delete;
  ScopedCallOptions& operator=(const ScopedCallOptions&) = delete;
  // The options in force on this thread.
  static const CallOptions& Current();

 private:
  const CallOptions* previous_;
  CallOptions options_;
};

namespace internal {
// Runs `task` on rpcboot's shared client executor (a fixed pool, created on first use).
void RunOnClientExecutor(std::function<void()> task);
}  // namespace internal

// The async form: runs a proxy call on rpcboot's client executor and returns a future. The
// future holds the result, or rethrows the call's RpcError from get(). The call sees the
// ScopedCallOptions of the thread that called CallAsync.
//
//   std::future<shop::Shop> f = rpcboot::CallAsync([&] { return shop->GetShop({42}); });
//   ... other work ...
//   shop::Shop s = f.get();
//
// The executor has max(8, 4 x cores) threads; a call waiting for its reply holds one of them,
// so keep the number of outstanding async calls in proportion (or use more threads of your own).
template <class Fn>
auto CallAsync(Fn&& fn) -> std::future<std::invoke_result_t<Fn>> {
  using R = std::invoke_result_t<Fn>;
  auto promise = std::make_shared<std::promise<R>>();
  std::future<R> future = promise->get_future();
  CallOptions options = ScopedCallOptions::Current();
  internal::RunOnClientExecutor([promise, options, fn = std::forward<Fn>(fn)]() mutable {
    ScopedCallOptions scope(options);
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        promise->set_value();
      } else {
        promise->set_value(fn());
      }
    } catch (...) {
      promise->set_exception(std::current_exception());
    }
  });
  return future;
}

template <class S>
std::shared_ptr<S> MakeClient(std::shared_ptr<Channel> channel) {
  if constexpr (internal::HasServiceInfo<S>::value) {
    return std::make_shared<internal::Proxy<S>>(std::move(channel));
  } else {
    internal::RequireGenerated<S>();  // the one error the build reports
    return nullptr;
  }
}

// A fallback: when a call through `primary` fails with one of `codes` (by default UNAVAILABLE,
// which an open circuit and an empty instance list also give, and DEADLINE_EXCEEDED), the same
// call is answered by `fallback`, a local implementation of the same interface (a cache, a
// default), through the same codec. Each use is counted (Channel::State().fallbacks) and logged
// (once a second at most); the fallback's own error, if any, reaches the caller with the
// primary's error beside it.
//
//   auto shops = rpcboot::MakeClient<shop::ShopService>(rpcboot::WithFallback<shop::ShopService>(
//       rpcboot::MakeChannel("zk://zk:2181/services/shop", rpcboot::Protocol::kGrpc),
//       std::make_shared<CachedShops>(cache)));
struct FallbackOptions {
  std::vector<StatusCode> codes = {StatusCode::kUnavailable, StatusCode::kDeadlineExceeded};
  // Method names ("GetShop") that fall back; empty: every method.
  std::vector<std::string> methods;
};

std::shared_ptr<Channel> MakeFallbackChannel(std::shared_ptr<Channel> primary,
                                             std::shared_ptr<void> fallback,
                                             FallbackOptions options = {});

template <class S>
std::shared_ptr<Channel> WithFallback(std::shared_ptr<Channel> primary, std::shared_ptr<S> fallback,
                                      FallbackOptions options = {}) {
  return MakeFallbackChannel(std::move(primary),
                             std::shared_ptr<void>(fallback, static_cast<S*>(fallback.get())),
                             std::move(options));
}

// Your code around every call through a channel: metadata every call carries (a tenant, a
// request id), a log line per call, a timeout by method. It runs on the calling thread with the
// method ("/shop.ShopService/GetShop") and the call's options, which it may change before it
// calls `proceed()`; proceed sends the call (with the retries, failover and hedging of the
// channel it wraps) and throws its RpcError, which the interceptor may catch and replace. As on
// the server (ServerInterceptor): the first listed is outermost; throwing RpcError fails the
// call with it; a failed call's error stands even if an interceptor catches it and returns (there
// is no reply to give); returning without calling proceed is INTERNAL naming the method.
//
//   auto shops = rpcboot::MakeClient<shop::ShopService>(rpcboot::WithInterceptors(
//       rpcboot::MakeGrpcChannel("127.0.0.1:9091"),
//       {[](std::string_view, rpcboot::CallOptions& call, const std::function<void()>& proceed) {
//         call.metadata.emplace_back("x-tenant", "eu-1");
//         proceed();
//       }}));
using ClientInterceptor = std::function<void(std::string_view method, CallOptions& call,
                                             const std::function<void()>& proceed)>;
std::shared_ptr<Channel> WithInterceptors(std::shared_ptr<Channel> channel,
                                          std::vector<ClientInterceptor> interceptors);

// A channel that serves calls with `impl` in the calling thread, encoding and decoding them as
// gRPC would (so copies, errors and limits behave as over the network).
std::shared_ptr<Channel> MakeInProcessChannel(const internal::ServiceBinding& binding,
                                              std::shared_ptr<void> impl);

template <class S>
std::shared_ptr<S> BindInProcess(std::shared_ptr<S> impl) {
  return MakeClient<S>(MakeInProcessChannel(internal::BindingOf<S>(), std::move(impl)));
}

}  // namespace rpcboot

#endif  // RPCBOOT_CLIENT_H_
