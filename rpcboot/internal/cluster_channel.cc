#include "rpcboot/internal/cluster_channel.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <map>
#include <system_error>
#include <thread>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/hash.h"
#include "rpcboot/base/internal/clock.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/lb/load_balancer.h"

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
      balancer_(BalancerFor(target_, options_.load_balancer)),
      retry_tokens_milli_(int64_t{1000} * std::max(options_.retry_budget.min_per_second, 0)) {
  if (options_.hedge_delay.count() > 0 || options_.hedge_at_p95) {
    hedge_timer_ = std::make_unique<HedgeTimer>();
  }
}

// The timer goes first: the members its tasks use are still whole while it stops.
ClusterChannel::~ClusterChannel() { hedge_timer_.reset(); }

WireFormat ClusterChannel::format() const {
  return protocol_ == Protocol::kGrpc ? WireFormat::kProto : options_.thrift_format;
}

void ClusterChannel::SetDescriber(std::function<std::string()> describe) {
  std::lock_guard<std::mutex> lock(mu_);
  describe_ = std::move(describe);
}

void ClusterChannel::SetReading(std::function<bool()> reading) {
  std::lock_guard<std::mutex> lock(mu_);
  reading_ = std::move(reading);
}

void ClusterChannel::Hold(std::shared_ptr<void> owner) {
  std::lock_guard<std::mutex> lock(mu_);
  held_.push_back(std::move(owner));
}

std::size_t ClusterChannel::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return backends_.size();
}

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
      empty_since_ns_ = SteadyNanos();
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
    std::atomic_store(&list_, std::make_shared<const BackendList>(list));
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
  std::function<bool()> reading;
  {
    std::unique_lock<std::mutex> lock(mu_);
    resolved_cv_.wait_until(lock, deadline, [this] { return resolved_; });
    reading = reading_;
  }
  picker = std::atomic_load(&picker_);
  // None to call, but the registry is reading a change (an instance registering): the call
  // waits for that read too. Checked every few ms, since a read that finds nothing to call
  // publishes nothing; `reading` is asked without mu_ held (it takes the resolver's lock).
  constexpr auto kRecheck = std::chrono::milliseconds(10);
  while (picker == nullptr && reading && reading() && std::chrono::steady_clock::now() < deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    resolved_cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + kRecheck));
    picker = std::atomic_load(&picker_);
  }
  return picker;
}

namespace {

// A failure of the instance rather than of the request: what outlier detection and the circuit
// count. (NOT_FOUND, INVALID_ARGUMENT and the like are answers.)
bool InstanceFailure(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded ||
         code == StatusCode::kInternal || code == StatusCode::kUnknown ||
         code == StatusCode::kDataLoss;
}

int64_t Ns(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

}  // namespace

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
    int64_t empty_for = SteadyNanos() - since;
    if (empty_for > std::chrono::nanoseconds(options_.empty_registry_grace).count()) {
      throw UnsentError(absl::StrCat(target_,
                                     ": no instance to call (the registry has listed none for ",
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
    throw UnsentError(absl::StrCat(target_, ": no instance ", resolved ? "to call" : "known yet",
                                   why.empty() ? "" : " (", why, why.empty() ? "" : ")"));
  }
  // The client's own limit first: a call over it costs nothing downstream.
  if (options_.max_in_flight > 0) {
    while (in_flight_.fetch_add(1) >= options_.max_in_flight) {
      in_flight_.fetch_sub(1);
      std::unique_lock<std::mutex> lock(slot_mu_);
      bool freed = false;
      if (options_.queue_when_full) {
        ++slot_waiters_;
        freed = slot_cv_.wait_until(lock, deadline,
                                    [&] { return in_flight_.load() < options_.max_in_flight; });
        --slot_waiters_;
      }
      if (!freed) {
        fast_failures_.fetch_add(1, std::memory_order_relaxed);
        throw RpcError(StatusCode::kResourceExhausted,
                       absl::StrCat(target_, ": ", options_.max_in_flight,
                                    " calls already in flight (max_in_flight)",
                                    options_.queue_when_full ? " until the deadline" : "", "; ",
                                    method.name, " not sent"));
      }
    }
  }
  struct InFlight {
    ClusterChannel* channel;
    ~InFlight() {
      if (channel == nullptr) return;
      channel->in_flight_.fetch_sub(1);
      if (channel->options_.queue_when_full) {
        std::lock_guard<std::mutex> lock(channel->slot_mu_);
        if (channel->slot_waiters_ > 0) channel->slot_cv_.notify_one();
      }
    }
  } in_flight{options_.max_in_flight > 0 ? this : nullptr};
  bool probe = false;
  if (options_.circuit.enabled) {
    std::string refusal = CircuitRefusal(SteadyNanos(), &probe);
    if (!refusal.empty()) {
      fast_failures_.fetch_add(1, std::memory_order_relaxed);
      throw UnsentError(refusal + "; " + method.name + " not sent");
    }
  }
  // Each call earns a share of a retry (RetryBudget::ratio), up to the budget's cap.
  const int64_t cap = int64_t{1000} * (10 * std::max(options_.retry_budget.min_per_second, 0) + 10);
  if (retry_tokens_milli_.load(std::memory_order_relaxed) < cap) {
    retry_tokens_milli_.fetch_add(static_cast<int64_t>(options_.retry_budget.ratio * 1000),
                                  std::memory_order_relaxed);
  }
  try {
    std::string reply = Hedges(method)
                            ? HedgedCall(method, request, options, deadline, std::move(picker))
                            : CallList(method, request, options, deadline, *picker);
    if (options_.circuit.enabled) RecordCall(false, probe, SteadyNanos());
    return reply;
  } catch (const RpcError& e) {
    if (options_.circuit.enabled) RecordCall(InstanceFailure(e.code()), probe, SteadyNanos());
    throw;
  }
}

std::string ClusterChannel::CallList(const MethodBinding& method, std::string_view request,
                                     const CallOptions& options,
                                     std::chrono::steady_clock::time_point deadline,
                                     const Picker& picker) {
  absl::InlinedVector<const Backend*, 4> tried;  // no allocation on the call path
  std::string last_error;
  bool last_left = false;  // the last attempt's request had left (a retry then backs off)
  for (int attempt = 0; attempt < std::max(options_.max_attempts, 1); ++attempt) {
    PickArgs args;
    args.request_key = options.request_key;
    args.tried = tried;
    Backend* backend = picker.Pick(args);
    if (backend == nullptr) {
      args.skip_unhealthy = false;  // all backing off or ejected: try one anyway
      backend = picker.Pick(args);
    }
    if (backend == nullptr) break;
    if (attempt > 0) {
      if (!TakeRetry(SteadyNanos())) {
        retries_refused_.fetch_add(1, std::memory_order_relaxed);
        throw RpcError(
            StatusCode::kUnavailable,
            absl::StrCat(target_, ": ", last_error, " (not retried: the retry budget is spent, ",
                         options_.retry_budget.ratio * 100, "% of calls + ",
                         options_.retry_budget.min_per_second, "/s)"));
      }
      retries_.fetch_add(1, std::memory_order_relaxed);
      if (last_left && options_.retry_budget.backoff.count() > 0) {
        // Jittered exponential backoff, within half of what is left of the deadline.
        int64_t bound_us = options_.retry_budget.backoff.count() * 1000 *
                           (int64_t{1} << std::min(attempt - 1, 10));
        int64_t left_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count() /
                          2;
        bound_us = std::min(bound_us, left_us);
        if (bound_us > 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(
              static_cast<int64_t>(RandomU64() % static_cast<uint64_t>(bound_us))));
        }
      }
    }
    CallOptions attempt_options = options;
    attempt_options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (attempt_options.timeout.count() <= 0) {
      throw RpcError(StatusCode::kDeadlineExceeded,
                     absl::StrCat(target_, ": deadline exceeded after ", attempt, " attempt(s)"));
    }
    // The first call to an instance whose ejection is over is its probe.
    bool probe = false;
    if (backend->ejected()) {
      Backend::Outlier& o = backend->outlier();
      bool expected = false;
      probe = SteadyNanos() >= o.ejected_until_ns.load(std::memory_order_relaxed) &&
              o.probe_in_flight.compare_exchange_strong(expected, true);
    }
    tried.push_back(backend);
    backend->CallStarted();
    const int64_t started = SteadyNanos();
    try {
      std::string reply = backend->channel().Call(method, request, attempt_options);
      backend->CallEnded();
      backend->Succeeded();
      RecordAttempt(*backend, false, (SteadyNanos() - started) / 1000, probe);
      return reply;
    } catch (const UnsentError& e) {
      backend->CallEnded();
      backend->ConnectionFailed();
      RecordAttempt(*backend, true, (SteadyNanos() - started) / 1000, probe);
      last_error = e.message();
      last_left = false;
    } catch (const RpcError& e) {
      backend->CallEnded();
      RecordAttempt(*backend, InstanceFailure(e.code()), (SteadyNanos() - started) / 1000, probe);
      if (e.code() != StatusCode::kUnavailable) throw;
      backend->ConnectionFailed();
      if (!method.idempotent) {
        throw RpcError(StatusCode::kUnavailable,
                       absl::StrCat(e.message(), " (not retried: ", method.name,
                                    " is not idempotent and its request had left)"));
      }
      last_error = e.message();
      last_left = true;
    }
  }
  // Whether the request may have reached a server decides what a caller may do next (a
  // migration channel serves a call that was never sent locally).
  std::string message =
      absl::StrCat(target_, ": no instance could take the call after ", tried.size(), " attempt(s)",
                   last_error.empty() ? "" : "; last: " + last_error);
  if (!last_left) throw UnsentError(std::move(message));
  throw RpcError(StatusCode::kUnavailable, std::move(message));
}

void ClusterChannel::RecordAttempt(Backend& backend, bool failed, int64_t latency_us, bool probe) {
  if (options_.hedge_at_p95 && !failed) NoteLatency(latency_us);
  const OutlierDetection& config = options_.outlier;
  if (!config.enabled) return;
  Backend::Outlier& o = backend.outlier();
  int64_t now = SteadyNanos();
  if (probe) {
    o.probe_in_flight.store(false);
    int64_t slow_us = o.slow_us.load(std::memory_order_relaxed);
    if (!failed && (slow_us == 0 || latency_us < slow_us)) {
      o.consecutive_failures.store(0, std::memory_order_relaxed);
      o.slow_us.store(0, std::memory_order_relaxed);
      o.calls.store(0, std::memory_order_relaxed);
      o.failures.store(0, std::memory_order_relaxed);
      o.latency_us.store(0, std::memory_order_relaxed);
      o.ejected_until_ns.store(0);
      Log(LogLevel::kInfo, absl::StrCat(target_, ": instance ", backend.address(),
                                        " back in rotation: its probe call succeeded in ",
                                        latency_us / 1000, " ms"));
    } else {
      Eject(backend, now, slow_us,
            failed ? std::string("its probe call failed")
                   : absl::StrCat("its probe call took ", latency_us / 1000, " ms"));
    }
    return;
  }
  if (backend.ejected()) return;  // a call sent before the ejection
  o.calls.fetch_add(1, std::memory_order_relaxed);
  o.latency_us.fetch_add(latency_us, std::memory_order_relaxed);
  if (failed) {
    o.failures.fetch_add(1, std::memory_order_relaxed);
    int in_a_row = o.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    if (config.consecutive_failures > 0 && in_a_row >= config.consecutive_failures) {
      Eject(backend, now, 0, absl::StrCat(in_a_row, " calls in a row failed"));
    }
  } else if (o.consecutive_failures.load(std::memory_order_relaxed) != 0) {
    o.consecutive_failures.store(0, std::memory_order_relaxed);
  }
  int64_t next = next_evaluation_ns_.load(std::memory_order_relaxed);
  if (now >= next && next_evaluation_ns_.compare_exchange_strong(next, now + Ns(config.interval))) {
    EvaluateOutliers(now);
  }
}

void ClusterChannel::EvaluateOutliers(int64_t now) {
  const OutlierDetection& config = options_.outlier;
  std::shared_ptr<const BackendList> list = std::atomic_load(&list_);
  if (list == nullptr || list->size() < 2) return;
  struct Seen {
    Backend* backend;
    int64_t calls, failures, mean_us;
  };
  std::vector<Seen> seen;
  std::vector<int64_t> means;
  for (const std::shared_ptr<Backend>& b : *list) {
    Backend::Outlier& o = b->outlier();
    if (b->ejected() || o.calls.load(std::memory_order_relaxed) < config.min_calls) continue;
    int64_t calls = o.calls.exchange(0);
    int64_t failures = o.failures.exchange(0);
    int64_t latency = o.latency_us.exchange(0);
    if (calls <= 0) continue;
    seen.push_back({b.get(), calls, failures, latency / calls});
    means.push_back(latency / calls);
  }
  if (seen.empty()) return;
  std::sort(means.begin(), means.end());
  const int64_t median_us = means[(means.size() - 1) / 2];
  const int64_t min_latency_us = config.min_latency.count() * 1000;
  for (const Seen& s : seen) {
    if (config.failure_rate > 0 &&
        static_cast<double>(s.failures) >= config.failure_rate * static_cast<double>(s.calls)) {
      Eject(*s.backend, now, 0,
            absl::StrCat(s.failures, " of its last ", s.calls, " calls failed"));
    } else if (config.latency_factor > 0 && means.size() >= 2 &&
               static_cast<double>(s.mean_us) >
                   config.latency_factor * static_cast<double>(median_us) &&
               s.mean_us > min_latency_us) {
      int64_t slow_us = std::max<int64_t>(
          min_latency_us,
          static_cast<int64_t>(config.latency_factor * static_cast<double>(median_us)));
      Eject(*s.backend, now, slow_us,
            absl::StrCat("its mean latency of ", s.mean_us / 1000, " ms over ", s.calls,
                         " calls is over ", config.latency_factor, "x the median of ",
                         median_us / 1000.0, " ms"));
    }
  }
}

bool ClusterChannel::Eject(Backend& backend, int64_t now, int64_t slow_us, const std::string& why) {
  const OutlierDetection& config = options_.outlier;
  std::lock_guard<std::mutex> lock(eject_mu_);
  std::shared_ptr<const BackendList> list = std::atomic_load(&list_);
  std::size_t n = list != nullptr ? list->size() : 1;
  std::size_t others = 0;
  if (list != nullptr) {
    for (const std::shared_ptr<Backend>& b : *list) others += b.get() != &backend && b->ejected();
  }
  std::size_t allowed = std::max<std::size_t>(
      n >= 2 ? 1 : 0, n * static_cast<std::size_t>(std::max(config.max_ejected_percent, 0)) / 100);
  Backend::Outlier& o = backend.outlier();
  if (others + 1 > allowed) {
    if (log_.Allow()) {
      Log(LogLevel::kWarning,
          absl::StrCat(target_, ": instance ", backend.address(), " not ejected although ", why,
                       ": ", others, " of ", n, " are ejected already (max_ejected_percent ",
                       config.max_ejected_percent, ")"));
    }
    o.consecutive_failures.store(0, std::memory_order_relaxed);
    return false;
  }
  // Ejections long ago do not lengthen this one.
  int64_t last = o.last_ejected_ns.load(std::memory_order_relaxed);
  if (last != 0 && now - last > 2 * Ns(config.max_ejection)) backend.ejection_count().store(0);
  int count = backend.ejection_count().fetch_add(1) + 1;
  int64_t duration =
      std::min(Ns(config.base_ejection) << std::min(count - 1, 20), Ns(config.max_ejection));
  o.slow_us.store(slow_us, std::memory_order_relaxed);
  o.consecutive_failures.store(0, std::memory_order_relaxed);
  o.calls.store(0, std::memory_order_relaxed);
  o.failures.store(0, std::memory_order_relaxed);
  o.latency_us.store(0, std::memory_order_relaxed);
  o.last_ejected_ns.store(now, std::memory_order_relaxed);
  o.ejected_until_ns.store(now + duration);
  Log(LogLevel::kWarning, absl::StrCat(target_, ": instance ", backend.address(), " ejected for ",
                                       duration / 1000000, " ms (ejection ", count, "): ", why));
  return true;
}

std::string ClusterChannel::CircuitRefusal(int64_t now, bool* probe) {
  int64_t open_until = circuit_open_until_ns_.load(std::memory_order_relaxed);
  if (open_until == 0) return "";
  if (now >= open_until) {
    bool expected = false;
    if (circuit_probe_in_flight_.compare_exchange_strong(expected, true)) {
      *probe = true;
      return "";
    }
    return absl::StrCat(target_,
                        ": circuit open: most calls failed; a probe call is testing the service");
  }
  return absl::StrCat(
      target_, ": circuit open: most calls failed (", options_.circuit.failure_rate * 100,
      "% or more of at least ", options_.circuit.min_calls, " in ", options_.circuit.window.count(),
      " ms); calls fail fast, the next probe in ", (open_until - now) / 1000000, " ms");
}

void ClusterChannel::RecordCall(bool failed, bool probe, int64_t now) {
  const CircuitBreaker& config = options_.circuit;
  if (probe) {
    circuit_probe_in_flight_.store(false);
    if (!failed) {
      circuit_calls_.store(0);
      circuit_failures_.store(0);
      circuit_window_start_ns_.store(now);
      circuit_open_until_ns_.store(0);
      Log(LogLevel::kInfo, target_ + ": circuit closed: a probe call succeeded");
    } else {
      circuit_open_until_ns_.store(now + Ns(config.open_for));
    }
    return;
  }
  if (circuit_open_until_ns_.load(std::memory_order_relaxed) != 0) return;
  int64_t start = circuit_window_start_ns_.load(std::memory_order_relaxed);
  if (now - start > Ns(config.window) &&
      circuit_window_start_ns_.compare_exchange_strong(start, now)) {
    circuit_calls_.store(0, std::memory_order_relaxed);
    circuit_failures_.store(0, std::memory_order_relaxed);
  }
  int64_t calls = circuit_calls_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!failed) return;
  int64_t failures = circuit_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (calls >= config.min_calls &&
      static_cast<double>(failures) >= config.failure_rate * static_cast<double>(calls)) {
    int64_t closed = 0;
    if (circuit_open_until_ns_.compare_exchange_strong(closed, now + Ns(config.open_for))) {
      Log(LogLevel::kWarning, absl::StrCat(target_, ": circuit open: ", failures, " of the last ",
                                           calls, " calls failed; calls fail fast for ",
                                           config.open_for.count(), " ms, then one probes"));
    }
  }
}

bool ClusterChannel::TakeRetry(int64_t now) {
  const RetryBudget& config = options_.retry_budget;
  const int64_t cap = int64_t{1000} * (10 * std::max(config.min_per_second, 0) + 10);
  // The floor: min_per_second retries a second, accrued since the last look.
  int64_t last = retry_refilled_ns_.load(std::memory_order_relaxed);
  if (now - last >= 10000000 && retry_refilled_ns_.compare_exchange_strong(last, now)) {
    int64_t elapsed = last == 0 ? 0 : now - last;
    int64_t add = std::max(config.min_per_second, 0) * elapsed / 1000000;
    int64_t have = retry_tokens_milli_.load(std::memory_order_relaxed);
    if (add > 0) retry_tokens_milli_.fetch_add(std::min(add, std::max<int64_t>(cap - have, 0)));
  }
  int64_t tokens = retry_tokens_milli_.load(std::memory_order_relaxed);
  while (tokens >= 1000) {
    if (retry_tokens_milli_.compare_exchange_weak(tokens, tokens - 1000)) return true;
  }
  return false;
}

// ---- Hedging ----

// Runs callbacks at their time on one thread of the channel's own (started with the channel
// when hedging is on).
class ClusterChannel::HedgeTimer {
 public:
  HedgeTimer() {
    try {
      thread_ = std::thread([this] { Main(); });
    } catch (const std::system_error& e) {
      Log(LogLevel::kWarning,
          std::string("no hedging thread (") + e.what() + "); calls are not hedged");
    }
  }
  ~HedgeTimer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool running() const { return thread_.joinable(); }
  void Schedule(int64_t when_ns, std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      due_.emplace(when_ns, std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Main() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      if (due_.empty()) {
        cv_.wait(lock);
        continue;
      }
      int64_t now = SteadyNanos();
      auto first = due_.begin();
      if (first->first > now) {
        cv_.wait_for(lock, std::chrono::nanoseconds(first->first - now));
        continue;
      }
      std::function<void()> task = std::move(first->second);
      due_.erase(first);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<int64_t, std::function<void()>> due_;
  bool stop_ = false;
  std::thread thread_;
};

// One hedged call: the first attempt (on the caller's thread) and the backup.
struct ClusterChannel::Race {
  const MethodBinding* method = nullptr;
  std::string request;  // a copy: the backup may start after the caller's view of it is gone
  CallOptions options;
  std::chrono::steady_clock::time_point deadline;
  std::shared_ptr<const Picker> picker;  // keeps the backends alive
  Backend* first = nullptr;
  std::shared_ptr<Cancellation> cancel_first = std::make_shared<Cancellation>();
  std::shared_ptr<Cancellation> cancel_backup;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // no backup may start any more
  bool backup_launched = false;
  bool backup_running = false;
  bool won = false;  // an attempt answered
  bool backup_won = false;
  std::string reply;  // the backup's answer, when it won
  std::vector<std::pair<std::string, std::string>> reply_metadata;  // and its metadata
  std::exception_ptr backup_error;                                  // the backup's failure
};

bool ClusterChannel::Hedges(const MethodBinding& method) const {
  if (!method.idempotent || hedge_timer_ == nullptr || !hedge_timer_->running()) return false;
  const auto& only = options_.hedge_methods;
  return only.empty() || std::find(only.begin(), only.end(), method.name) != only.end();
}

namespace {
// Latency buckets for the p95: bucket i holds calls of [2^(i/4), 2^((i+1)/4)) microseconds.
int LatencyBucket(int64_t us) {
  if (us <= 1) return 0;
  int b = static_cast<int>(std::log2(static_cast<double>(us)) * 4);
  return std::min(b, 95);
}
}  // namespace

void ClusterChannel::NoteLatency(int64_t latency_us) {
  latency_buckets_[LatencyBucket(latency_us)].fetch_add(1, std::memory_order_relaxed);
  int64_t now = SteadyNanos();
  int64_t next = next_p95_ns_.load(std::memory_order_relaxed);
  if (now < next || !next_p95_ns_.compare_exchange_strong(next, now + 1000000000)) return;
  // Once a second: the p95 of the calls since, when there were enough of them.
  int64_t counts[96];
  int64_t total = 0;
  for (int i = 0; i < 96; ++i) total += counts[i] = latency_buckets_[i].exchange(0);
  if (total < 100) {
    for (int i = 0; i < 96; ++i) latency_buckets_[i].fetch_add(counts[i]);  // keep gathering
    return;
  }
  int64_t seen = 0;
  for (int i = 0; i < 96; ++i) {
    seen += counts[i];
    if (seen * 100 >= total * 95) {
      double upper_us = std::exp2(static_cast<double>(i + 1) / 4);
      p95_ns_.store(std::max<int64_t>(1000000, static_cast<int64_t>(upper_us * 1000)));
      return;
    }
  }
}

int64_t ClusterChannel::HedgeDelayNs() const {
  int64_t p95 = options_.hedge_at_p95 ? p95_ns_.load(std::memory_order_relaxed) : 0;
  if (p95 > 0) return p95;
  return std::max<int64_t>(Ns(options_.hedge_delay), options_.hedge_at_p95 ? 1000000 : 0);
}

void ClusterChannel::LaunchBackup(const std::shared_ptr<Race>& race) {
  Backend* backup = nullptr;
  {
    std::lock_guard<std::mutex> lock(race->mu);
    if (race->done || race->backup_launched) return;
    const Backend* tried[] = {race->first};
    PickArgs args;
    args.request_key = race->options.request_key;
    args.tried = tried;
    backup = race->picker->Pick(args);
    if (backup == nullptr || backup == race->first) return;
    if (!TakeRetry(SteadyNanos())) {
      retries_refused_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    race->backup_launched = true;
    race->backup_running = true;
    race->cancel_backup = std::make_shared<Cancellation>();
  }
  hedges_.fetch_add(1, std::memory_order_relaxed);
  RunOnClientExecutor([this, race, backup] {
    CallOptions options = race->options;
    options.cancellation = race->cancel_backup;
    // Its own: the caller's vector is the first attempt's while both run.
    std::vector<std::pair<std::string, std::string>> reply_metadata;
    if (options.reply_metadata != nullptr) options.reply_metadata = &reply_metadata;
    options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        race->deadline - std::chrono::steady_clock::now());
    std::string reply;
    std::exception_ptr error;
    bool ok = false;
    bool failure = true;
    backup->CallStarted();
    const int64_t started = SteadyNanos();
    try {
      if (options.timeout.count() <= 0) {
        throw RpcError(StatusCode::kDeadlineExceeded, target_ + ": no time left for a backup");
      }
      reply = backup->channel().Call(*race->method, race->request, options);
      ok = true;
      failure = false;
    } catch (const RpcError& e) {
      error = std::current_exception();
      failure = InstanceFailure(e.code());
    }
    backup->CallEnded();
    // A cancelled attempt lost the race: not a failure, but at least this slow (which outlier
    // detection must see, or a slow instance would hide behind its backups).
    bool lost = race->cancel_backup->cancelled();
    if (lost) cancelled_.fetch_add(1, std::memory_order_relaxed);
    if (ok) backup->Succeeded();
    RecordAttempt(*backup, failure && !lost, (SteadyNanos() - started) / 1000, false);
    std::lock_guard<std::mutex> lock(race->mu);
    race->backup_running = false;
    if (ok && !race->won) {
      race->won = true;
      race->backup_won = true;
      race->reply = std::move(reply);
      race->reply_metadata = std::move(reply_metadata);
      hedges_won_.fetch_add(1, std::memory_order_relaxed);
      race->cancel_first->Cancel();  // the first attempt ends now
    } else if (!ok) {
      race->backup_error = error;
    }
    race->cv.notify_all();
  });
}

std::string ClusterChannel::HedgedCall(const MethodBinding& method, std::string_view request,
                                       const CallOptions& options,
                                       std::chrono::steady_clock::time_point deadline,
                                       std::shared_ptr<const Picker> picker) {
  auto race = std::make_shared<Race>();
  PickArgs args;
  args.request_key = options.request_key;
  Backend* first = picker->Pick(args);
  if (first == nullptr) {
    args.skip_unhealthy = false;
    first = picker->Pick(args);
  }
  if (first == nullptr) throw UnsentError(target_ + ": no instance to call");
  race->method = &method;
  race->request = std::string(request);
  race->options = options;
  race->deadline = deadline;
  race->picker = std::move(picker);
  race->first = first;
  hedge_timer_->Schedule(SteadyNanos() + HedgeDelayNs(), [this, race] { LaunchBackup(race); });

  CallOptions first_options = options;
  first_options.cancellation = race->cancel_first;
  first_options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  std::string reply;
  std::exception_ptr error;
  bool ok = false;
  bool failure = true;
  bool may_retry = false;  // a backup may go at once
  first->CallStarted();
  const int64_t started = SteadyNanos();
  try {
    reply = first->channel().Call(method, request, first_options);
    ok = true;
    failure = false;
  } catch (const UnsentError&) {
    error = std::current_exception();
    may_retry = true;
  } catch (const RpcError& e) {
    error = std::current_exception();
    failure = InstanceFailure(e.code());
    may_retry = e.code() == StatusCode::kUnavailable;
  }
  first->CallEnded();
  bool lost = race->cancel_first->cancelled();
  if (lost) cancelled_.fetch_add(1, std::memory_order_relaxed);
  if (ok) first->Succeeded();
  RecordAttempt(*first, failure && !lost, (SteadyNanos() - started) / 1000, false);
  if (!ok && may_retry) LaunchBackup(race);  // fail over now rather than after the delay
  std::unique_lock<std::mutex> lock(race->mu);
  race->done = true;  // no backup from here on
  if (ok && !race->won) {
    race->won = true;
    if (race->cancel_backup) race->cancel_backup->Cancel();
  }
  // The backup, if any, ends before this call returns (it uses this channel).
  race->cv.wait(lock, [&] { return !race->backup_running; });
  if (race->backup_won) {
    if (options.reply_metadata != nullptr)
      *options.reply_metadata = std::move(race->reply_metadata);
    return std::move(race->reply);
  }
  if (ok) return reply;
  std::rethrow_exception(race->cancel_first->cancelled() && race->backup_error ? race->backup_error
                                                                               : error);
}

ChannelState ClusterChannel::State() const {
  ChannelState state;
  std::shared_ptr<const BackendList> list = std::atomic_load(&list_);
  if (list != nullptr) {
    for (const std::shared_ptr<Backend>& b : *list) {
      state.instances.push_back(
          {b->address(), b->ejected(), b->ejections(), b->in_flight(), b->picks(), b->healthy()});
    }
  }
  state.circuit_open = circuit_open_until_ns_.load() != 0;
  state.retries = retries_.load();
  state.retries_refused = retries_refused_.load();
  state.fast_failures = fast_failures_.load();
  state.hedges = hedges_.load();
  state.hedges_won = hedges_won_.load();
  state.cancelled = cancelled_.load();
  if (hedge_timer_ != nullptr) state.hedge_delay_us = HedgeDelayNs() / 1000;
  return state;
}

}  // namespace rpcboot::internal
