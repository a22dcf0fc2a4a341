#include "rpcboot/internal/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "rpcboot/internal/app_metrics.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot::internal {
namespace {

std::atomic<bool> g_metrics_on{true};

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Threads take shards round robin as they first count something.
std::atomic<unsigned> g_next_shard{0};

int BucketOf(int64_t latency_us) {
  int i = 0;
  while (i < kLatencyBuckets - 1 && latency_us > kLatencyBoundsUs[i]) ++i;
  return i;
}

// Numbers as the exposition format writes them: integers without a fraction, +Inf as such.
std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  char text[32];
  std::snprintf(text, sizeof text, "%.15g", v);
  return text;
}

}  // namespace

bool MetricsOn() { return g_metrics_on.load(std::memory_order_relaxed); }
void SetMetricsOn(bool on) { g_metrics_on.store(on, std::memory_order_relaxed); }

int64_t CallCounts::finished() const {
  int64_t n = 0;
  for (int64_t c : by_code) n += c;
  return n;
}

int64_t CallCounts::in_flight() const { return std::max<int64_t>(0, started - finished()); }

double CallCounts::Quantile(double q) const {
  int64_t total = 0;
  for (int64_t b : buckets) total += b;
  if (total == 0) return 0;
  double rank = q * static_cast<double>(total);
  int64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; ++i) {
    if (buckets[i] == 0 || static_cast<double>(seen + buckets[i]) < rank) {
      seen += buckets[i];
      continue;
    }
    double low = i == 0 ? 0 : static_cast<double>(kLatencyBoundsUs[i - 1]);
    // The last bucket has no upper bound: report its lower one.
    if (i == kLatencyBuckets - 1) return low / 1e6;
    double high = static_cast<double>(kLatencyBoundsUs[i]);
    double within = (rank - static_cast<double>(seen)) / static_cast<double>(buckets[i]);
    return (low + (high - low) * std::clamp(within, 0.0, 1.0)) / 1e6;
  }
  return static_cast<double>(kLatencyBoundsUs[kLatencyBuckets - 2]) / 1e6;
}

CallCounts CallCounts::Since(const CallCounts& earlier) const {
  CallCounts d = *this;
  d.started -= earlier.started;
  for (int i = 0; i < kStatusCodes; ++i) d.by_code[i] -= earlier.by_code[i];
  for (int i = 0; i < kLatencyBuckets; ++i) d.buckets[i] -= earlier.buckets[i];
  d.latency_sum_us -= earlier.latency_sum_us;
  d.shed -= earlier.shed;
  return d;
}

CallStats::CallStats(std::string side, std::string service, std::string method,
                     std::string protocol)
    : side_(std::move(side)),
      service_(std::move(service)),
      method_(std::move(method)),
      protocol_(std::move(protocol)) {}

CallStats::Shard& CallStats::Mine() {
  thread_local const unsigned shard = g_next_shard.fetch_add(1, std::memory_order_relaxed);
  return shards_[shard % kShards];
}

int64_t CallStats::Start() {
  if (!MetricsOn()) return 0;
  Mine().started.fetch_add(1, std::memory_order_relaxed);
  return std::max<int64_t>(SteadyNs(), 1);
}

void CallStats::Finish(int64_t started, StatusCode code, std::string_view peer,
                       std::string_view message, bool shed) {
  if (started == 0) return;
  int64_t latency_us = std::max<int64_t>(0, (SteadyNs() - started) / 1000);
  int c = static_cast<int>(code);
  if (c < 0 || c >= kStatusCodes) c = static_cast<int>(StatusCode::kUnknown);
  Shard& s = Mine();
  s.by_code[c].fetch_add(1, std::memory_order_relaxed);
  s.buckets[BucketOf(latency_us)].fetch_add(1, std::memory_order_relaxed);
  s.latency_sum_us.fetch_add(latency_us, std::memory_order_relaxed);
  if (shed) s.shed.fetch_add(1, std::memory_order_relaxed);
  if (code != StatusCode::kOk) {
    MetricsRegistry::Get().RecordFailure(*this, code, peer, message);
  }
}

CallCounts CallStats::Read() const {
  CallCounts out;
  for (const Shard& s : shards_) {
    out.started += s.started.load(std::memory_order_relaxed);
    for (int i = 0; i < kStatusCodes; ++i) out.by_code[i] += s.by_code[i].load();
    for (int i = 0; i < kLatencyBuckets; ++i) out.buckets[i] += s.buckets[i].load();
    out.latency_sum_us += s.latency_sum_us.load(std::memory_order_relaxed);
    out.shed += s.shed.load(std::memory_order_relaxed);
  }
  return out;
}

std::string EscapeLabel(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricWriter::Add(const std::string& family, Type type, std::string_view help,
                       const Labels& labels, double value, std::string_view suffix) {
  auto it = std::find_if(families_.begin(), families_.end(),
                         [&](const Family& f) { return f.name == family; });
  if (it == families_.end()) {
    families_.push_back({family, type, std::string(help), ""});
    it = families_.end() - 1;
  }
  std::string& out = it->samples;
  out += family;
  out += suffix;
  if (!labels.empty()) {
    out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"",
                      EscapeLabel(labels[i].second), "\"");
    }
    out += '}';
  }
  absl::StrAppend(&out, " ", Number(value), "\n");
}

void MetricWriter::AddCalls(const CallStats& stats, const CallCounts& counts) {
  const std::string prefix = "rpcboot_" + stats.side() + "_";
  const bool server = stats.side() == "server";
  Labels labels{{"service", stats.service()}, {"method", stats.method()}};
  if (!stats.protocol().empty()) labels.push_back({"protocol", stats.protocol()});
  Add(prefix + "started_total", Type::kCounter,
      server ? "Calls the server began to handle (their method was found)."
             : "Calls this process began to make.",
      labels, static_cast<double>(counts.started));
  for (int c = 0; c < kStatusCodes; ++c) {
    if (counts.by_code[c] == 0 && c != 0) continue;
    Labels with_code = labels;
    with_code.push_back({"code", std::string(StatusCodeName(static_cast<StatusCode>(c)))});
    Add(prefix + "handled_total", Type::kCounter,
        server ? "Calls the server answered, by status code."
               : "Calls this process made that ended, by status code.",
        with_code, static_cast<double>(counts.by_code[c]));
  }
  Add(prefix + "in_flight", Type::kGauge,
      server ? "Calls being handled or queued now." : "Calls being made now.", labels,
      static_cast<double>(counts.in_flight()));
  if (server) {
    Add(prefix + "shed_total", Type::kCounter,
        "Calls answered without running their handler (server busy, deadline passed, "
        "shutting down).",
        labels, static_cast<double>(counts.shed));
  }
  const std::string histogram = prefix + "handling_seconds";
  const std::string help = server ? "Time from reading a call to its answer."
                                  : "Time from making a call to its answer or error.";
  int64_t cumulative = 0;
  for (int i = 0; i < kLatencyBuckets; ++i) {
    cumulative += counts.buckets[i];
    Labels with_le = labels;
    with_le.push_back({"le", i < kLatencyBuckets - 1
                                 ? Number(static_cast<double>(kLatencyBoundsUs[i]) / 1e6)
                                 : std::string("+Inf")});
    Add(histogram, Type::kHistogram, help, with_le, static_cast<double>(cumulative), "_bucket");
  }
  Add(histogram, Type::kHistogram, help, labels, static_cast<double>(counts.latency_sum_us) / 1e6,
      "_sum");
  Add(histogram, Type::kHistogram, help, labels, static_cast<double>(cumulative), "_count");
}

std::string MetricWriter::Text() const {
  std::string out;
  for (const Family& f : families_) {
    std::string help;
    for (char c : f.help) {
      if (c == '\\') {
        help += "\\\\";
      } else if (c == '\n') {
        help += "\\n";
      } else {
        help += c;
      }
    }
    absl::StrAppend(&out, "# HELP ", f.name, " ", help, "\n# TYPE ", f.name, " ",
                    f.type == Type::kCounter ? "counter"
                    : f.type == Type::kGauge ? "gauge"
                                             : "histogram",
                    "\n", f.samples);
  }
  return out;
}

struct MetricsRegistry::State {
  mutable std::mutex mu;  // stats, by_name
  std::deque<CallStats> stats;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, CallStats*> by_name;

  mutable std::mutex failures_mu;
  std::deque<FailedCall> failures;
  std::atomic<int64_t> failure_second{0};
  std::atomic<int> failures_this_second{0};

  const int64_t start_unix_ms = UnixMs();
};

MetricsRegistry& MetricsRegistry::Get() {
  // Never destroyed: servers and proxies may count while static destructors run.
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

MetricsRegistry::State& MetricsRegistry::state() const {
  static State* state = new State();
  return *state;
}

CallStats* MetricsRegistry::Server(const std::string& service, const std::string& method,
                                   const std::string& protocol) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  CallStats*& found = s.by_name[{"server", service, method, protocol}];
  if (found == nullptr) found = &s.stats.emplace_back("server", service, method, protocol);
  return found;
}

CallStats* MetricsRegistry::Unlisted() {
  static CallStats* unlisted = new CallStats("server", "", "", "");
  return unlisted;
}

CallStats* MetricsRegistry::Client(const MethodBinding& binding) {
  thread_local std::unordered_map<const MethodBinding*, CallStats*> cache;
  // (A binding's address could be reused by another one: the name check catches that.)
  if (auto it = cache.find(&binding); it != cache.end() && it->second->method() == binding.name)
    return it->second;
  // "/shop.ShopService/GetShop"
  std::string_view path = binding.grpc_path;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::string service(path.substr(0, path.find('/')));
  const std::string& method = binding.name;
  State& s = state();
  CallStats* stats;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    CallStats*& found = s.by_name[{"client", service, method, ""}];
    if (found == nullptr) found = &s.stats.emplace_back("client", service, method, "");
    stats = found;
  }
  cache[&binding] = stats;
  return stats;
}

std::vector<const CallStats*> MetricsRegistry::All() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<const CallStats*> out;
  for (const auto& [key, stats] : s.by_name) out.push_back(stats);
  return out;
}

std::string MetricsRegistry::Exposition() const {
  MetricWriter out;
  Collect(out);
  return out.Text();
}

void MetricsRegistry::Collect(MetricWriter& out) const {
  using Type = MetricWriter::Type;
  for (const CallStats* stats : All()) out.AddCalls(*stats, stats->Read());
  TransportCounters& t = Transports();
  MetricWriter::Labels thrift{{"protocol", "thrift"}};
  out.Add("rpcboot_server_connections", Type::kGauge, "Open server connections.", thrift,
          static_cast<double>(t.thrift_connections.load()));
  out.Add("rpcboot_server_connections_accepted_total", Type::kCounter,
          "Server connections accepted.", thrift,
          static_cast<double>(t.thrift_connections_accepted.load()));
  MetricWriter::Labels grpc{{"protocol", "grpc"}};
  out.Add("rpcboot_server_connections_refused_total", Type::kCounter,
          "Server connections closed at once at server.max_connections.", thrift,
          static_cast<double>(t.thrift_connections_refused.load()));
  out.Add("rpcboot_server_connections_refused_total", Type::kCounter,
          "Server connections closed at once at server.max_connections.", grpc,
          static_cast<double>(t.grpc_connections_refused.load()));
  out.Add("rpcboot_server_floods_refused_total", Type::kCounter,
          "Server connections closed for a flood of frames (rpcboot/internal/http2_guard.h).", grpc,
          static_cast<double>(t.grpc_floods_refused.load()));
  out.Add("rpcboot_server_unknown_method_total", Type::kCounter,
          "Calls of a method no served service has.", {},
          static_cast<double>(t.unknown_methods.load()));
  out.Add("rpcboot_server_queued_calls", Type::kGauge,
          "Calls waiting for a handler thread (server.handler_threads).", {},
          static_cast<double>(t.queued_calls.load()));
  // Process figures, as Prometheus client libraries name them.
  out.Add("process_start_time_seconds", Type::kGauge,
          "Start time of the process since the Unix epoch, in seconds.", {},
          static_cast<double>(state().start_unix_ms) / 1000);
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                 static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    out.Add("process_cpu_seconds_total", Type::kCounter, "User and system CPU time, in seconds.",
            {}, cpu);
  }
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  if (statm >> pages >> resident) {
    out.Add("process_resident_memory_bytes", Type::kGauge, "Resident memory size, in bytes.", {},
            static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)));
  }
  if (DIR* fds = ::opendir("/proc/self/fd")) {
    int open = 0;
    while (dirent* e = ::readdir(fds)) {
      if (e->d_name[0] != '.') ++open;
    }
    ::closedir(fds);
    out.Add("process_open_fds", Type::kGauge, "Open file descriptors.", {}, open - 1);
  }
  // The application's own (rpcboot/metrics.h), after rpcboot's.
  for (const AppSample& sample : ReadAppMetrics()) {
    out.Add(sample.name, sample.counter ? Type::kCounter : Type::kGauge, sample.help, sample.labels,
            sample.value);
  }
}

void MetricsRegistry::RecordFailure(const CallStats& stats, StatusCode code, std::string_view peer,
                                    std::string_view message) {
  State& s = state();
  // At most 200 a second are kept: the list shows examples, the counters count them all. The
  // check comes first, so that a storm of failures costs no copies and no lock.
  const int64_t now = UnixMs();
  const int64_t second = now / 1000;
  if (s.failure_second.exchange(second, std::memory_order_relaxed) != second) {
    s.failures_this_second.store(0, std::memory_order_relaxed);
  }
  if (s.failures_this_second.fetch_add(1, std::memory_order_relaxed) >= 200) return;
  FailedCall call{now,
                  stats.side(),
                  stats.service(),
                  stats.method(),
                  stats.protocol(),
                  std::string(peer),
                  code,
                  std::string(message.substr(0, 300))};
  if (message.size() > 300) call.message += "...";
  std::lock_guard<std::mutex> lock(s.failures_mu);
  s.failures.push_back(std::move(call));
  while (s.failures.size() > kRecentFailures) s.failures.pop_front();
}

std::vector<FailedCall> MetricsRegistry::RecentFailures() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.failures_mu);
  return {s.failures.begin(), s.failures.end()};
}

TransportCounters& Transports() {
  static TransportCounters* counters = new TransportCounters();
  return *counters;
}

}  // namespace rpcboot::internal
