// A Channel carries encoded calls from a generated client proxy to a server (or to an in-process
// implementation) and brings back encoded replies. Proxies are what users hold; channels are
// what rpcboot's transports implement.
//
//   std::shared_ptr<shop::ShopService> shop =
//       rpcboot::MakeClient<shop::ShopService>(rpcboot::MakeGrpcChannel("127.0.0.1:9091"));
//
// Channels are thread-safe: any number of threads may call through one at once. A channel lives
// as long as the proxies that share it.
#ifndef RPCBOOT_CHANNEL_H_
#define RPCBOOT_CHANNEL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rpcboot/wire_format.h"

namespace rpcboot {

// Lets one thread cancel a call another thread is making through a channel (a hedged call
// cancels the attempt that lost). Thread-safe.
class Cancellation {
 public:
  // Cancels the attempt in progress (now, or as soon as one registers); the attempt fails.
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (action_) action_();
  }
  bool cancelled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }
  // For channels: `action` cancels the attempt in progress until Clear() (it runs under a lock,
  // so what it touches lives until Clear returns). Runs at once if already cancelled.
  void OnCancel(std::function<void()> action) {
    std::lock_guard<std::mutex> lock(mu_);
    action_ = std::move(action);
    if (cancelled_) action_();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    action_ = nullptr;
  }

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::function<void()> action_;
};

// Per-call settings.
struct CallOptions {
  // The call's deadline, from now; zero: the channel's default.
  std::chrono::milliseconds timeout{0};
  // For the "consistent_hash" load balancer: calls with equal keys go to the same instance
  // (while the instance list stays the same). Empty: any instance.
  std::string request_key;
  // Set by hedging: lets the call be cancelled from another thread. Null for most calls.
  std::shared_ptr<Cancellation> cancellation;
  // Set by rpcboot's call path (rpcboot/tracing.h): the W3C trace context the channel sends
  // (gRPC metadata, THeader headers). Empty: none.
  std::string traceparent;
  std::string tracestate;
  // Set by a migration channel (rpcboot/migration.h) on the copy it sends to the shadow side:
  // the server sees ServerContext::shadow().
  bool shadow = false;
  // The call's own metadata, for the handler (ServerContext::metadata): gRPC custom metadata,
  // THeader headers on Thrift (a Thrift channel sends THeader frames for a call that has any;
  // plain framed Thrift has no place for it). Keys: lowercase letters, digits, '-', '_', '.',
  // not one the protocol or rpcboot uses (grpc-*, rpcboot-*, authorization, ...). Values:
  // printable ASCII without spaces at either end, or any bytes under a key ending in "-bin".
  // At most 8 KiB in all (each entry counts its key, its value and 32, as HTTP/2 does). A call
  // with metadata that breaks these rules fails before it is sent: INVALID_ARGUMENT naming the
  // entry, RESOURCE_EXHAUSTED over the size.
  std::vector<std::pair<std::string, std::string>> metadata;
  // Where the reply's metadata goes (ServerContext::AddReplyMetadata; gRPC initial and trailing
  // metadata of any server, THeader headers of the reply), when set: the call's last attempt
  // fills it, on success and on error, with the entries under metadata keys (the rules above;
  // "-bin" values decoded); a hedged call, its winner's. The vector must outlive the call (with
  // CallAsync, until its future is ready). Null: not read.
  std::vector<std::pair<std::string, std::string>>* reply_metadata = nullptr;
};

namespace internal {
struct MethodBinding;
}  // namespace internal
struct MigrationStats;  // rpcboot/migration.h

// What a channel to a list of instances knows about them now (Channel::State).
struct ChannelState {
  struct Instance {
    std::string address;
    bool ejected = false;  // out of rotation as an outlier (or probing to come back)
    int ejections = 0;     // times ejected so far
    int in_flight = 0;
    int64_t picks = 0;    // attempts sent to it so far
    bool healthy = true;  // false while backing off after a failed connection, or ejected
  };
  std::vector<Instance> instances;
  bool circuit_open = false;    // calls fail fast (or one probes)
  int64_t retries = 0;          // retries and failovers sent
  int64_t retries_refused = 0;  // not sent: the retry budget was spent
  int64_t fast_failures = 0;    // calls refused by the open circuit or max_in_flight
  int64_t fallbacks = 0;        // calls answered by a fallback (WithFallback)
  int64_t hedges = 0;           // backup requests sent (ChannelOptions::hedge_delay)
  int64_t hedges_won = 0;       // of them, answered first
  int64_t cancelled = 0;        // attempts cancelled because the other one answered first
  int64_t hedge_delay_us = 0;   // the delay before a backup request now (0: no hedging)
  // A migration channel's mode and counts (rpcboot/migration.h); null for other channels.
  std::shared_ptr<const MigrationStats> migration;
};

class Channel {
 public:
  virtual ~Channel() = default;

  virtual WireFormat format() const = 0;

  // Sends one request body for `method` and returns the reply body. Throws RpcError (with
  // kUnavailable, kDeadlineExceeded, ... for transport failures).
  virtual std::string Call(const internal::MethodBinding& method, std::string_view request,
                           const CallOptions& options) = 0;

  // The instances and the resilience state of a channel to a list; empty for one endpoint.
  virtual ChannelState State() const { return {}; }
};

}  // namespace rpcboot

#endif  // RPCBOOT_CHANNEL_H_
