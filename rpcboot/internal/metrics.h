// Call metrics, counted on the call path without a lock: each served method (per protocol) and
// each called method has a CallStats whose counters are spread over cache-line-sized shards,
// a thread adding to its own shard with relaxed atomic increments; a scrape adds the shards up.
// The registry also keeps the most recent failed calls.
//
// Everything here lives for the whole process: CallStats are never freed, so the pointers that
// servers and client proxies keep stay valid. Thread-safe.
#ifndef RPCBOOT_INTERNAL_METRICS_H_
#define RPCBOOT_INTERNAL_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rpcboot/status.h"

namespace rpcboot::internal {

struct MethodBinding;

// Whether calls are counted (metrics.enabled; on by default). Off, Start returns 0 and nothing
// is counted.
bool MetricsOn();
void SetMetricsOn(bool on);

// Latency histogram bucket bounds, in microseconds; the last bucket is +Inf.
inline constexpr int64_t kLatencyBoundsUs[] = {100,     250,     500,     1000,    2500,   5000,
                                               10000,   25000,   50000,   100000,  250000, 500000,
                                               1000000, 2500000, 5000000, 10000000};
inline constexpr int kLatencyBuckets = sizeof(kLatencyBoundsUs) / sizeof(kLatencyBoundsUs[0]) + 1;
inline constexpr int kStatusCodes = 17;

// What a CallStats has counted, added up over its shards.
struct CallCounts {
  int64_t started = 0;
  int64_t by_code[kStatusCodes] = {};
  int64_t buckets[kLatencyBuckets] = {};  // calls per bucket (not cumulative)
  int64_t latency_sum_us = 0;
  int64_t shed = 0;  // answered without running the handler (refused, deadline, draining)

  int64_t finished() const;
  int64_t failed() const { return finished() - by_code[0]; }
  int64_t in_flight() const;
  // The q-quantile of the latencies, in seconds, interpolated within its bucket; 0 with no
  // calls.
  double Quantile(double q) const;
  // These counts minus `earlier` ones of the same stats: what happened in between.
  CallCounts Since(const CallCounts& earlier) const;
};

class CallStats {
 public:
  // `side`: "server" or "client"; `protocol`: "grpc", "thrift", or "" (client side).
  CallStats(std::string side, std::string service, std::string method, std::string protocol);

  const std::string& side() const { return side_; }
  const std::string& service() const { return service_; }
  const std::string& method() const { return method_; }
  const std::string& protocol() const { return protocol_; }

  // A call began: returns its start (steady clock ns, never 0), or 0 when metrics are off.
  int64_t Start();
  // The call that Start returned `started` for ended with `code` (nothing when `started` is 0).
  // A failure is also kept among the recent failed calls, with `peer` and `message`. `shed`:
  // it was answered without running (a refusal before the handler).
  void Finish(int64_t started, StatusCode code, std::string_view peer = {},
              std::string_view message = {}, bool shed = false);
  CallCounts Read() const;

 private:
  static constexpr int kShards = 8;
  struct alignas(64) Shard {
    std::atomic<int64_t> started{0};
    std::atomic<int64_t> by_code[kStatusCodes] = {};
    std::atomic<int64_t> buckets[kLatencyBuckets] = {};
    std::atomic<int64_t> latency_sum_us{0};
    std::atomic<int64_t> shed{0};
  };
  Shard& Mine();

  const std::string side_, service_, method_, protocol_;
  Shard shards_[kShards];
};

// One failed call, as the status page lists it.
struct FailedCall {
  int64_t unix_ms = 0;
  std::string side, service, method, protocol, peer;
  StatusCode code = StatusCode::kOk;
  std::string message;
};

// Builds a Prometheus text exposition (format 0.0.4): each family's HELP and TYPE once, then
// its samples together, whatever order they were added in.
class MetricWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  enum class Type { kCounter, kGauge, kHistogram };
  // Declares `family` (once; later calls ignore type and help) and adds one sample named
  // family + suffix ("_bucket", "_sum", "_count" for histograms; "" otherwise).
  void Add(const std::string& family, Type type, std::string_view help, const Labels& labels,
           double value, std::string_view suffix = {});
  // A CallStats as rpcboot_<side>_* families.
  void AddCalls(const CallStats& stats, const CallCounts& counts);
  std::string Text() const;

 private:
  struct Family {
    std::string name;
    Type type;
    std::string help;
    std::string samples;
  };
  std::vector<Family> families_;
};

// Escapes a label value (backslash, double quote, newline) as the exposition format wants.
std::string EscapeLabel(std::string_view value);

class MetricsRegistry {
 public:
  static MetricsRegistry& Get();

  // Finds or makes the stats of one method; never freed.
  CallStats* Server(const std::string& service, const std::string& method,
                    const std::string& protocol);
  // Counts that no page shows (a protocol a server does not speak).
  CallStats* Unlisted();
  // Of a called method, by its binding (grpc_path names service and method). Cached per thread:
  // no lock once a thread has seen the method.
  CallStats* Client(const MethodBinding& method);
  std::vector<const CallStats*> All() const;

  // Adds every CallStats, the transport counters and the process figures to `out`.
  void Collect(MetricWriter& out) const;
  // Collect, as text.
  std::string Exposition() const;

  // Failed calls, newest last (at most kRecentFailures; at most a few hundred a second are
  // kept, so a storm of failures costs no lock per call).
  static constexpr std::size_t kRecentFailures = 50;
  void RecordFailure(const CallStats& stats, StatusCode code, std::string_view peer,
                     std::string_view message);
  std::vector<FailedCall> RecentFailures() const;

 private:
  MetricsRegistry() = default;
  struct State;
  State& state() const;
};

// Process-wide transport figures, added up over every server in the process.
struct TransportCounters {
  std::atomic<int64_t> thrift_connections{0};           // open now
  std::atomic<int64_t> thrift_connections_accepted{0};  // since start
  std::atomic<int64_t> thrift_connections_refused{0};   // at server.max_connections
  std::atomic<int64_t> grpc_connections_refused{0};     // at server.max_connections
  std::atomic<int64_t> grpc_floods_refused{0};          // closed: http2_guard.h
  std::atomic<int64_t> unknown_methods{0};              // calls of a method no service has
  std::atomic<int64_t> queued_calls{0};                 // waiting for a handler thread, all servers
};
TransportCounters& Transports();

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_METRICS_H_
