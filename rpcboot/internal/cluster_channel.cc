#include "rpcboot/internal/cluster_channel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/hash.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/unsent_error.h"

namespace rpcboot::internal {

namespace {

// `options` with its subset position settled: when subsetting without a given position, this
// process's place from a hash of the host name and process id, in [0, 1). Once per channel.
ChannelOptions WithSubsetPosition(ChannelOptions options) {
  if (options.subset_size > 0 && options.subset_position < 0) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    uint64_t h = StableHash(absl::StrCat(host, "/", ::getpid()));
    options.subset_position = static_cast<double>(h >> 11) / static_cast<double>(uint64_t{1} << 53);
  }
  return options;
}

std::unique_ptr<LoadBalancer> BalancerFor(const std::string& target, const std::string& name) {
  absl::StatusOr<std::unique_ptr<LoadBalancer>> balancer = MakeLoadBalancer(name);
  if (!balancer.ok()) {
    throw RpcError(StatusCode::kInvalidArgument,
                   absl::StrCat("address '", target, "': ", balancer.status().message()));
  }
  return std::move(*balancer);
}

}  // namespace

std::vector<EndpointSpec> SubsetOf(std::vector<EndpointSpec> endpoints, double position,
                                   std::size_t size) {
  if (size == 0 || size >= endpoints.size()) return endpoints;
  // The ring: endpoints ordered by a hash of their ids (each hashed once).
  std::vector<std::pair<uint64_t, std::size_t>> ring;
  ring.reserve(endpoints.size());
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    ring.emplace_back(StableHash(endpoints[i].id), i);
  }
  std::sort(ring.begin(), ring.end(), [&](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : endpoints[a.second].id < endpoints[b.second].id;
  });
  const std::size_t n = endpoints.size();
  position = std::clamp(position, 0.0, std::nextafter(1.0, 0.0));
  // index / count positions land on whole windows despite rounding (0.003 x 10000 = 29.99...).
  std::size_t start = static_cast<std::size_t>(position * static_cast<double>(n) + 1e-6) % n;
  std::vector<EndpointSpec> subset;
  subset.reserve(size);
  for (std::size_t i = 0; i < size; ++i) {
    subset.push_back(std::move(endpoints[ring[(start + i) % n].second]));
  }
  return subset;
}

ClusterChannel::ClusterChannel(std::string target, Protocol protocol, ChannelOptions options)
    : target_(std::move(target)),
      protocol_(protocol),
      options_(WithSubsetPosition(std::move(options))),
      balancer_(BalancerFor(target_, options_.load_balancer)) {}

WireFormat ClusterChannel::format() const {
  return protocol_ == Protocol::kGrpc ? WireFormat::kProto : options_.thrift_format;
}

void ClusterChannel::SetDescriber(std::function<std::string()> describe) {
  std::lock_guard<std::mutex> lock(mu_);
  describe_ = std::move(describe);
}

void ClusterChannel::Hold(std::shared_ptr<void> owner) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.push_back(std::move(owner));
}

std::size_t ClusterChannel::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return backends_.size();
}

namespace {
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void ClusterChannel::Update(const std::vector<EndpointSpec>& all, bool registry_empty) {
  std::vector<EndpointSpec> subset;
  if (options_.subset_size > 0) {
    subset =
        SubsetOf(all, options_.subset_position, static_cast<std::size_t>(options_.subset_size));
  }
  const std::vector<EndpointSpec>& endpoints = options_.subset_size > 0 ? subset : all;
  std::unique_lock<std::mutex> lock(mu_);
  // The list is what the registry says now (while ZooKeeper is unreachable the resolver keeps
  // its last list and sends nothing): an instance set OUT_OF_SERVICE gets no call, even when it
  // was the last one. A registry that lists no node at all keeps the known instances for a
  // grace period (registry churn empties a list for a moment); Call enforces its end.
  if (endpoints.empty() && registry_empty && !backends_.empty()) {
    if (empty_since_ns_.load() == 0) {
      empty_since_ns_ = NowNs();
      Log(LogLevel::kWarning,
          absl::StrCat(target_, ": the registry lists no instance node; the ", backends_.size(),
                       " known keep being called for up to ", options_.empty_registry_grace.count(),
                       " ms (ChannelOptions::empty_registry_grace)"));
    }
    return;
  }
  empty_since_ns_ = 0;
  if (endpoints.empty() && !backends_.empty()) {
    Log(LogLevel::kWarning, absl::StrCat(target_,
                                         ": the registry lists no instance to call; "
                                         "calls fail UNAVAILABLE until it lists one"));
  }
  std::map<std::string, std::shared_ptr<Backend>> next;
  for (const EndpointSpec& e : endpoints) {
    auto old = backends_.find(e.address);
    if (old != backends_.end() && old->second->id() == e.id && old->second->weight() == e.weight) {
      next.emplace(e.address, old->second);
      continue;
    }
    // A new instance, or one that restarted on the same address: its own counters, but the
    // endpoint channel (connections) can be shared.
    std::shared_ptr<Channel> channel;
    if (old != backends_.end()) {
      channel = std::shared_ptr<Channel>(old->second, &old->second->channel());
    } else {
      ChannelOptions options = options_;
      options.tls.enabled = options.tls.enabled || e.tls;
      options.thrift_header = options.thrift_header || e.thrift_header;
      try {
        channel = protocol_ == Protocol::kGrpc ? MakeGrpcChannel(e.address, options)
                                               : MakeThriftChannel(e.address, options);
      } catch (const RpcError& error) {
        // The TLS files were checked when the channel was made; one that went bad since
        // costs this instance, not the process.
        Log(LogLevel::kWarning, target_ + ": instance " + e.address + " skipped: " + error.what());
        continue;
      }
    }
    next.emplace(e.address, std::make_shared<Backend>(e.id, e.address, e.weight, channel));
  }
  backends_ = std::move(next);
  std::shared_ptr<const Picker> picker;
  if (!backends_.empty()) {
    std::vector<std::shared_ptr<Backend>> list;
    for (const auto& [address, backend] : backends_) list.push_back(backend);
    picker = balancer_->Build(std::move(list));
  }
  std::atomic_store(&picker_, picker);
  resolved_ = true;
  lock.unlock();
  resolved_cv_.notify_all();
}

std::shared_ptr<const Picker> ClusterChannel::CurrentPicker(
    std::chrono::steady_clock::time_point deadline) {
  std::shared_ptr<const Picker> picker = std::atomic_load(&picker_);
  if (picker != nullptr) return picker;
  // Before the registry's first answer, a call waits for it (within its deadline).
  std::unique_lock<std::mutex> lock(mu_);
  resolved_cv_.wait_until(lock, deadline, [this] { return resolved_; });
  return std::atomic_load(&picker_);
}

std::string ClusterChannel::Call(const MethodBinding& method, std::string_view request,
                                 const CallOptions& options) {
  auto timeout = options_.TimeoutFor(options);
  if (timeout.count() <= 0) {
    throw RpcError(StatusCode::kDeadlineExceeded,
                   absl::StrCat(target_, ": deadline of the call being served has passed; ",
                                method.name, " not sent"));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::shared_ptr<const Picker> picker = CurrentPicker(deadline);
  if (int64_t since = empty_since_ns_.load(std::memory_order_relaxed); since != 0) {
    int64_t empty_for = NowNs() - since;
    if (empty_for > std::chrono::nanoseconds(options_.empty_registry_grace).count()) {
      throw RpcError(
          StatusCode::kUnavailable,
          absl::StrCat(target_, ": no instance to call (the registry has listed none for ",
                       empty_for / 1000000, " ms)"));
    }
  }
  if (picker == nullptr) {
    bool resolved;
    std::function<std::string()> describe;
    {
      std::lock_guard<std::mutex> lock(mu_);
      resolved = resolved_;
      describe = describe_;
    }
    std::string why = describe ? describe() : "";
    throw RpcError(StatusCode::kUnavailable,
                   absl::StrCat(target_, ": no instance ", resolved ? "to call" : "known yet",
                                why.empty() ? "" : " (", why, why.empty() ? "" : ")"));
  }
  absl::InlinedVector<const Backend*, 4> tried;  // no allocation on the call path
  std::string last_error;
  for (int attempt = 0; attempt < std::max(options_.max_attempts, 1); ++attempt) {
    PickArgs args;
    args.request_key = options.request_key;
    args.tried = tried;
    Backend* backend = picker->Pick(args);
    if (backend == nullptr) {
      args.skip_unhealthy = false;  // all backing off: try one anyway, it may be back
      backend = picker->Pick(args);
    }
    if (backend == nullptr) break;
    CallOptions attempt_options = options;
    attempt_options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (attempt_options.timeout.count() <= 0) {
      throw RpcError(StatusCode::kDeadlineExceeded,
                     absl::StrCat(target_, ": deadline exceeded after ", attempt, " attempt(s)"));
    }
    tried.push_back(backend);
    backend->CallStarted();
    try {
      std::string reply = backend->channel().Call(method, request, attempt_options);
      backend->CallEnded();
      backend->Succeeded();
      return reply;
    } catch (const UnsentError& e) {
      backend->CallEnded();
      backend->ConnectionFailed();
      last_error = e.message();
    } catch (const RpcError& e) {
      backend->CallEnded();
      if (e.code() != StatusCode::kUnavailable) throw;
      backend->ConnectionFailed();
      if (!method.idempotent) {
        throw RpcError(StatusCode::kUnavailable,
                       absl::StrCat(e.message(), " (not retried: ", method.name,
                                    " is not idempotent and its request had left)"));
      }
      last_error = e.message();
    }
  }
  throw RpcError(StatusCode::kUnavailable,
                 absl::StrCat(target_, ": no instance could take the call after ", tried.size(),
                              " attempt(s)", last_error.empty() ? "" : "; last: " + last_error));
}

}  // namespace rpcboot::internal
