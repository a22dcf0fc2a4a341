// Load balancers: how a client picks one instance of a service for each call.
//
// rpcboot ships four, picked by name (ChannelOptions::load_balancer, or `load_balancer:` in a
// client's config):
//   "p2c"              power of two choices: two instances at random, the one with fewer calls
//                      in flight (the default; brpc's and Finagle's choice for uneven servers)
//   "round_robin"      each instance in turn
//   "weighted_random"  at random, in proportion to the instance's weight (rpcboot.weight)
//   "consistent_hash"  by CallOptions::request_key on a hash ring, so that equal keys reach the
//                      same instance while the list stays the same (for key-sharded services)
//
// Your own: implement LoadBalancer (a factory of immutable Pickers, one per instance list) and
// register it by name before the first channel is made:
//
//   rpcboot::RegisterLoadBalancer("least_latency", [] { return std::make_unique<MyBalancer>(); });
//
// Pickers are called on every call, from any thread, and must not block: they see an immutable
// snapshot of the list plus each backend's live counters.
#ifndef RPCBOOT_LB_LOAD_BALANCER_H_
#define RPCBOOT_LB_LOAD_BALANCER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rpcboot {

class Channel;

// One instance a balancer can pick: its address, weight and live counters. Owned by the client
// channel; a Picker that holds one keeps it alive. Thread-safe.
class Backend {
 public:
  Backend(std::string id, std::string address, int weight, std::shared_ptr<Channel> channel)
      : id_(std::move(id)),
        address_(std::move(address)),
        weight_(weight),
        channel_(std::move(channel)) {}

  const std::string& id() const { return id_; }            // the registry's instance id
  const std::string& address() const { return address_; }  // "host:port"
  // rpcboot.weight: >= 0; "weighted_random" treats 0 as 1 (an instance listed is callable).
  int weight() const { return weight_; }
  int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  // False for a while after a connection to it failed (backing off, doubling up to 5 s), while
  // it is ejected as an outlier, and once its ejection is over while a probe call is in flight.
  bool healthy() const;
  // Taken out of rotation as an outlier (ChannelOptions::outlier), until a probe succeeds.
  bool ejected() const { return outlier_.ejected_until_ns.load(std::memory_order_relaxed) != 0; }
  // How many times it has been ejected.
  int ejections() const { return ejections_.load(std::memory_order_relaxed); }

  // For the client channel.
  Channel& channel() const { return *channel_; }
  void CallStarted() {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    picks_.fetch_add(1, std::memory_order_relaxed);
  }
  // Calls (attempts) sent to it so far.
  int64_t picks() const { return picks_.load(std::memory_order_relaxed); }
  void CallEnded() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  void ConnectionFailed();
  void Succeeded();

  // Outlier state, kept by the client channel (rpcboot/internal/cluster_channel.cc).
  struct Outlier {
    std::atomic<int64_t> ejected_until_ns{0};  // 0: in rotation
    std::atomic<bool> probe_in_flight{false};
    std::atomic<int> consecutive_failures{0};
    std::atomic<int64_t> last_ejected_ns{0};
    std::atomic<int64_t> slow_us{0};  // ejected as slow: a probe must be faster than this
    // This interval's calls.
    std::atomic<int64_t> calls{0}, failures{0}, latency_us{0};
  };
  Outlier& outlier() { return outlier_; }
  std::atomic<int>& ejection_count() { return ejections_; }

 private:
  const std::string id_;
  const std::string address_;
  const int weight_;
  const std::shared_ptr<Channel> channel_;
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> picks_{0};
  std::atomic<int64_t> unhealthy_until_ns_{0};
  std::atomic<int64_t> backoff_ms_{0};
  Outlier outlier_;
  std::atomic<int> ejections_{0};
};

struct PickArgs {
  // CallOptions::request_key: consistent hashing routes equal keys alike. May be empty.
  std::string_view request_key;
  // Backends to pass over when any other will do: those already tried by this call.
  absl::Span<const Backend* const> tried;
  // Pass over unhealthy backends too (the first round); the client asks again without this
  // when every backend is unhealthy.
  bool skip_unhealthy = true;

  bool Avoid(const Backend& b) const;
};

// An immutable picker over one list of backends.
class Picker {
 public:
  virtual ~Picker() = default;
  // A backend for one call, or nullptr when every backend is to be avoided.
  virtual Backend* Pick(const PickArgs& args) const = 0;
};

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // Called whenever the instance list changes (never with an empty list).
  virtual std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) = 0;
};

using LoadBalancerFactory = std::function<std::unique_ptr<LoadBalancer>()>;

// Adds a balancer under `name`. Call before the first client channel exists: the registry is
// frozen then. Returns FailedPrecondition after that, AlreadyExists for a taken name.
absl::Status RegisterLoadBalancer(const std::string& name, LoadBalancerFactory factory);

// A new balancer of that name (freezes the registry); InvalidArgument naming the known ones.
absl::StatusOr<std::unique_ptr<LoadBalancer>> MakeLoadBalancer(const std::string& name);

namespace internal {
// Whether a balancer of that name exists, without freezing the registry (for checking a
// configuration before balancers are made); *known: the names, comma-separated.
bool LoadBalancerExists(const std::string& name, std::string* known);

// A fast per-thread random number.
uint64_t RandomU64();
}  // namespace internal

}  // namespace rpcboot

#endif  // RPCBOOT_LB_LOAD_BALANCER_H_
