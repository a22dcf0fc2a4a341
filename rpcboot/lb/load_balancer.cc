#include "rpcboot/lb/load_balancer.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rpcboot/base/internal/clock.h"
#include "rpcboot/lb/consistent_hash.h"
#include "rpcboot/lb/p2c.h"
#include "rpcboot/lb/round_robin.h"
#include "rpcboot/lb/weighted_random.h"

namespace rpcboot {
namespace {

struct Registry {
  std::mutex mu;
  bool frozen = false;
  std::map<std::string, LoadBalancerFactory> factories;

  Registry() {
    // The built-in balancers, registered explicitly (no static self-registration).
    factories.emplace("p2c", &MakeP2cBalancer);
    factories.emplace("round_robin", &MakeRoundRobinBalancer);
    factories.emplace("weighted_random", &MakeWeightedRandomBalancer);
    factories.emplace("consistent_hash", &MakeConsistentHashBalancer);
  }
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace

bool Backend::healthy() const {
  int64_t until = unhealthy_until_ns_.load(std::memory_order_relaxed);
  int64_t ejected = outlier_.ejected_until_ns.load(std::memory_order_relaxed);
  if (until == 0 && ejected == 0) return true;  // the common case: one clock read less
  int64_t now = internal::SteadyNanos();
  if (until != 0 && now < until) return false;
  if (ejected == 0) return true;
  // Ejected: out until its time is over, then open to one probe call at a time.
  return now >= ejected && !outlier_.probe_in_flight.load(std::memory_order_relaxed);
}

void Backend::ConnectionFailed() {
  int64_t backoff = backoff_ms_.load(std::memory_order_relaxed);
  backoff = std::clamp<int64_t>(backoff * 2, 100, 5000);
  backoff_ms_.store(backoff, std::memory_order_relaxed);
  unhealthy_until_ns_.store(internal::SteadyNanos() + backoff * 1000000, std::memory_order_relaxed);
}

void Backend::Succeeded() {
  if (unhealthy_until_ns_.load(std::memory_order_relaxed) != 0) {
    unhealthy_until_ns_.store(0, std::memory_order_relaxed);
    backoff_ms_.store(0, std::memory_order_relaxed);
  }
}

bool PickArgs::Avoid(const Backend& b) const {
  if (skip_unhealthy && !b.healthy()) return true;
  return std::find(tried.begin(), tried.end(), &b) != tried.end();
}

absl::Status RegisterLoadBalancer(const std::string& name, LoadBalancerFactory factory) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  if (registry.frozen) {
    return absl::FailedPreconditionError(absl::StrCat(
        "load balancer '", name, "' registered after the first client channel was made"));
  }
  if (!registry.factories.emplace(name, std::move(factory)).second) {
    return absl::AlreadyExistsError(absl::StrCat("load balancer '", name, "' already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoadBalancer>> MakeLoadBalancer(const std::string& name) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  registry.frozen = true;
  auto it = registry.factories.find(name);
  if (it == registry.factories.end()) {
    std::vector<std::string> names;
    for (const auto& [known, factory] : registry.factories) names.push_back(known);
    return absl::InvalidArgumentError(absl::StrCat("unknown load balancer '", name,
                                                   "' (known: ", absl::StrJoin(names, ", "), ")"));
  }
  return it->second();
}

namespace internal {

bool LoadBalancerExists(const std::string& name, std::string* known) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  std::vector<std::string> names;
  for (const auto& [each, factory] : registry.factories) names.push_back(each);
  *known = absl::StrJoin(names, ", ");
  return registry.factories.count(name) > 0;
}

uint64_t RandomU64() {
  // splitmix64 over a per-thread counter seeded from the thread's address and the clock.
  thread_local uint64_t state =
      static_cast<uint64_t>(internal::SteadyNanos()) ^ reinterpret_cast<uintptr_t>(&state);
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace internal
}  // namespace rpcboot
