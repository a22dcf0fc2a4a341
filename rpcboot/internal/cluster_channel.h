// The channel behind every list of instances ("static://", "zk://", App clients): one endpoint
// channel per instance, a load balancer's picker over an immutable snapshot of them, retries on
// another instance when that is safe, and a short back-off for instances that refused.
#ifndef RPCBOOT_INTERNAL_CLUSTER_CHANNEL_H_
#define RPCBOOT_INTERNAL_CLUSTER_CHANNEL_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rpcboot/base/log.h"
#include "rpcboot/channel.h"
#include "rpcboot/client.h"
#include "rpcboot/lb/load_balancer.h"

namespace rpcboot::internal {

struct EndpointSpec {
  std::string id;       // the registry's instance id (or the address, for static lists)
  std::string address;  // "host:port"
  int weight = 100;
  // Thrift: the instance says it reads THeader frames (which carry the call's deadline); other
  // endpoints get what ChannelOptions::thrift_header says (plain framed by default).
  bool thrift_header = false;
  // The instance says its ports serve TLS: the client uses TLS to it even when its own options
  // do not turn TLS on (with the system's CAs unless ChannelOptions::tls names some).
  bool tls = false;
};

// The subset of `endpoints` a client at `position` in [0, 1) talks to: `size` of them, a
// window at position x N of the list ordered by a hash of the endpoint ids (all when size is 0
// or covers the list). Deterministic: the same list and position give the same subset.
std::vector<EndpointSpec> SubsetOf(std::vector<EndpointSpec> endpoints, double position,
                                   std::size_t size);

// Thread-safe: Update from the resolver's thread, Call from any number of threads.
class ClusterChannel final : public Channel {
 public:
  // `target` names the list in errors and logs ("zk://.../services/shop"). Throws
  // RpcError(kInvalidArgument) when options.load_balancer names no balancer.
  ClusterChannel(std::string target, Protocol protocol, ChannelOptions options);
  ~ClusterChannel() override;

  // Replaces the list (its subset, when options.subset_size is set). Endpoint channels (and their
  // connections) of instances still listed are kept. An empty list empties the channel: the
  // registry's word (status, deregistration) is final; a registry that cannot be reached sends no
  // list at all (the resolver keeps its last).
  // `registry_empty`: the registry lists no node at all (ChannelOptions::empty_registry_grace).
  void Update(const std::vector<EndpointSpec>& all, bool registry_empty = false);
  // Keeps `owner` (the registry watch feeding Update) alive as long as this channel.
  void Hold(std::shared_ptr<void> owner);
  // Says why no instance is known, for the error of a call that found none (the registry's
  // state: unreachable, still reading, what it lists). Before the first call.
  void SetDescriber(std::function<std::string()> describe);
  // Says whether the registry is reading a change now (a new instance's node): a call that
  // finds no instance waits for that read, within its deadline, instead of failing at once.
  // Before the first call.
  void SetReading(std::function<bool()> reading);
  std::size_t size() const;

  WireFormat format() const override;
  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions& options) override;
  ChannelState State() const override;

 private:
  using BackendList = std::vector<std::shared_ptr<Backend>>;

  std::shared_ptr<const Picker> CurrentPicker(std::chrono::steady_clock::time_point deadline);
  std::string CallList(const MethodBinding& method, std::string_view request,
                       const CallOptions& options, std::chrono::steady_clock::time_point deadline,
                       const Picker& picker);

  // Outlier detection: an attempt's outcome on `backend` (`probe`: the call that tests an
  // instance whose ejection is over); the periodic evaluation of the list; an ejection, within
  // max_ejected_percent (false when the cap forbids it).
  void RecordAttempt(Backend& backend, bool failed, int64_t latency_us, bool probe);
  void EvaluateOutliers(int64_t now);
  bool Eject(Backend& backend, int64_t now, int64_t slow_us, const std::string& why);
  // Circuit breaking: "" when the call may go (*probe: it is the half-open probe), else why it
  // fails fast; and a call's final outcome.
  std::string CircuitRefusal(int64_t now, bool* probe);
  void RecordCall(bool failed, bool probe, int64_t now);
  // Retry budget: a call deposits, a retry withdraws (false: spent).
  bool TakeRetry(int64_t now);
  // Hedging: the call on this thread, and a backup on the client executor after hedge_delay
  // (or at once when the first attempt fails in a way that allows another).
  struct Race;
  std::string HedgedCall(const MethodBinding& method, std::string_view request,
                         const CallOptions& options, std::chrono::steady_clock::time_point deadline,
                         std::shared_ptr<const Picker> picker);
  void LaunchBackup(const std::shared_ptr<Race>& race);
  bool Hedges(const MethodBinding& method) const;
  // The observed latencies behind hedge_at_p95, and the delay they give.
  void NoteLatency(int64_t latency_us);
  int64_t HedgeDelayNs() const;
  class HedgeTimer;
  std::unique_ptr<HedgeTimer> hedge_timer_;  // made with the channel when hedging is on

  const std::string target_;
  const Protocol protocol_;
  const ChannelOptions options_;
  const std::unique_ptr<LoadBalancer> balancer_;
  mutable std::mutex mu_;
  std::condition_variable resolved_cv_;
  bool resolved_ = false;
  std::map<std::string, std::shared_ptr<Backend>> backends_;  // by address
  std::shared_ptr<const Picker> picker_;                      // read with std::atomic_load
  std::vector<std::shared_ptr<void>> held_;
  std::function<std::string()> describe_;
  std::function<bool()> reading_;
  // When the registry began to list no node (steady ns; 0: it lists some), the known instances
  // being kept for empty_registry_grace.
  std::atomic<int64_t> empty_since_ns_{0};

  std::shared_ptr<const BackendList> list_;  // the picker's backends; std::atomic_load
  std::atomic<int64_t> next_evaluation_ns_{0};
  std::atomic<int64_t> circuit_window_start_ns_{0};
  std::atomic<int64_t> circuit_calls_{0};
  std::atomic<int64_t> circuit_failures_{0};
  std::atomic<int64_t> circuit_open_until_ns_{0};  // 0: closed
  std::atomic<bool> circuit_probe_in_flight_{false};
  std::atomic<int64_t> retry_tokens_milli_{0};  // a thousandth of a retry each
  std::atomic<int64_t> retry_refilled_ns_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> retries_{0};
  std::atomic<int64_t> retries_refused_{0};
  std::atomic<int64_t> fast_failures_{0};
  std::atomic<int64_t> hedges_{0};
  std::atomic<int64_t> hedges_won_{0};
  std::atomic<int64_t> cancelled_{0};
  std::atomic<int64_t> latency_buckets_[96] = {};
  std::atomic<int64_t> next_p95_ns_{0};
  std::atomic<int64_t> p95_ns_{0};
  // queue_when_full: calls waiting for a slot under max_in_flight.
  std::mutex slot_mu_;
  std::condition_variable slot_cv_;
  int slot_waiters_ = 0;
  std::mutex eject_mu_;  // one ejection decision at a time (the share cap)
  LogLimiter log_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_CLUSTER_CHANNEL_H_
