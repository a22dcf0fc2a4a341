#include "rpcboot/metrics.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "rpcboot/internal/app_metrics.h"

namespace rpcboot {

struct GaugeRegistration::Entry {
  std::string name, help;
  MetricLabels labels;
  std::function<double()> read;
  std::mutex mu;      // held while `read` runs; the destructor takes it to wait for a read
  bool alive = true;  // guarded by mu
};

namespace {

std::atomic<unsigned> g_next_shard{0};

bool NameChar(char c, bool first, bool colon) {
  bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
  return letter || (!first && c >= '0' && c <= '9');
}

bool ValidName(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!NameChar(name[i], i == 0, colon)) return false;
  return true;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, std::pair<bool, std::string>> families;  // name -> (counter?, help)
  std::map<std::pair<std::string, MetricLabels>, std::unique_ptr<Counter>> counters;
  std::map<std::pair<std::string, MetricLabels>, std::shared_ptr<GaugeRegistration::Entry>> gauges;
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: counters live for the process
  return *registry;
}

// Checks a metric and its labels; returns the labels sorted by name. Requires Registry::mu.
absl::StatusOr<MetricLabels> Check(Registry& r, const std::string& name, const MetricLabels& labels,
                                   bool counter) {
  if (!ValidName(name, true)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name '", name, "' is not a Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)"));
  }
  for (const char* reserved : {"rpcboot_", "process_"}) {
    if (name.rfind(reserved, 0) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("metric name '", name, "' starts with ",
                                                     reserved, ", which is rpcboot's own"));
    }
  }
  MetricLabels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const std::string& label = sorted[i].first;
    if (!ValidName(label, false) || label.rfind("__", 0) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("label name '", label, "' of metric ", name,
                       " is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not __...)"));
    }
    if (i > 0 && sorted[i - 1].first == label) {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", label, "' is given twice for metric ", name));
    }
  }
  if (auto it = r.families.find(name); it != r.families.end() && it->second.first != counter) {
    return absl::InvalidArgumentError(absl::StrCat("metric ", name, " is a ",
                                                   it->second.first ? "counter" : "gauge",
                                                   ", not a ", counter ? "counter" : "gauge"));
  }
  if (r.counters.size() + r.gauges.size() >= kMaxAppSeries) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "metric ", name, ": the application has ", kMaxAppSeries,
        " metric series already (one per name and label values): a label per user or order "
        "grows without end"));
  }
  return sorted;
}

}  // namespace

void Counter::Add(int64_t n) {
  if (n <= 0) return;
  thread_local const unsigned shard = g_next_shard.fetch_add(1, std::memory_order_relaxed);
  shards_[shard % kShards].value.fetch_add(n, std::memory_order_relaxed);
}

int64_t Counter::Value() const {
  int64_t total = 0;
  for (const Shard& s : shards_) total += s.value.load(std::memory_order_relaxed);
  return total;
}

absl::StatusOr<Counter*> GetCounter(std::string_view name, std::string_view help,
                                    const MetricLabels& labels) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  MetricLabels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  auto key = std::make_pair(std::string(name), sorted);
  if (auto it = r.counters.find(key); it != r.counters.end()) return it->second.get();
  absl::StatusOr<MetricLabels> checked = Check(r, key.first, labels, true);
  if (!checked.ok()) return checked.status();
  r.families.emplace(std::string(name), std::make_pair(true, std::string(help)));
  return r.counters.emplace(std::move(key), std::make_unique<Counter>()).first->second.get();
}

absl::StatusOr<std::unique_ptr<GaugeRegistration>> AddGauge(std::string_view name,
                                                            std::string_view help,
                                                            const MetricLabels& labels,
                                                            std::function<double()> read) {
  Registry& r = TheRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  const std::string gauge(name);
  absl::StatusOr<MetricLabels> checked = Check(r, gauge, labels, false);
  if (!checked.ok()) return checked.status();
  if (!read) return absl::InvalidArgumentError(absl::StrCat("gauge ", gauge, " has no function"));
  auto key = std::make_pair(gauge, *checked);
  if (r.gauges.count(key) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("gauge ", gauge, " with these labels is registered already"));
  }
  auto entry = std::make_shared<GaugeRegistration::Entry>();
  entry->name = std::string(name);
  entry->labels = *checked;
  entry->read = std::move(read);
  auto family = r.families.emplace(std::string(name), std::make_pair(false, std::string(help)));
  entry->help = family.first->second.second;
  r.gauges.emplace(std::move(key), entry);
  return std::make_unique<GaugeRegistration>(std::move(entry));
}

GaugeRegistration::~GaugeRegistration() {
  Registry& r = TheRegistry();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.gauges.find(std::make_pair(entry_->name, entry_->labels));
    if (it != r.gauges.end() && it->second == entry_) {
      r.gauges.erase(it);
      // The family goes with its last series: the name may then be used again, by either type.
      bool more = false;
      for (auto g = r.gauges.lower_bound({entry_->name, {}});
           g != r.gauges.end() && g->first.first == entry_->name; ++g)
        more = true;
      if (!more) r.families.erase(entry_->name);
    }
  }
  std::lock_guard<std::mutex> wait_for_read(entry_->mu);
  entry_->alive = false;
}

namespace internal {

std::vector<AppSample> ReadAppMetrics() {
  Registry& r = TheRegistry();
  std::vector<AppSample> samples;
  std::vector<std::shared_ptr<GaugeRegistration::Entry>> gauges;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& [key, counter] : r.counters) {
      samples.push_back({key.first, r.families[key.first].second, true, key.second,
                         static_cast<double>(counter->Value())});
    }
    for (const auto& [key, entry] : r.gauges) gauges.push_back(entry);
  }
  for (const auto& entry : gauges) {
    std::lock_guard<std::mutex> lock(entry->mu);
    if (!entry->alive) continue;
    try {
      samples.push_back({entry->name, entry->help, false, entry->labels, entry->read()});
    } catch (...) {  // the application's function failed: no sample this time
    }
  }
  std::sort(samples.begin(), samples.end(), [](const AppSample& a, const AppSample& b) {
    return std::tie(a.name, a.labels) < std::tie(b.name, b.labels);
  });
  return samples;
}

}  // namespace internal
}  // namespace rpcboot
