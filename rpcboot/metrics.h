// An application's own metrics, served beside rpcboot's: on /metrics (Prometheus text), in
// /status.json and on the status page of the admin port (docs/observability.md).
//
//   absl::StatusOr<rpcboot::Counter*> placed =
//       rpcboot::GetCounter("order_placed_total", "Orders placed.", {{"delivery", "pickup"}});
//   (*placed)->Add();
//
//   auto waiting = rpcboot::AddGauge("order_waiting", "Orders that wait for a courier.", {},
//                                    [this] { return static_cast<double>(waiting_.load()); });
//
// Names follow Prometheus: a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]* and may not start
// with rpcboot_ or process_ (rpcboot's own); a label name matches [a-zA-Z_][a-zA-Z0-9_]* and may
// not start with __; label values are any text. One name is one type, counter or gauge. At most
// kMaxAppSeries counters and gauges together: each label combination is one, and a metric per
// user id or order id would grow without end. Thread-safe.
#ifndef RPCBOOT_METRICS_H_
#define RPCBOOT_METRICS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace rpcboot {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

inline constexpr std::size_t kMaxAppSeries = 10000;

// A count that only goes up. Add is a relaxed atomic increment on one of a few cache-line
// shards (no lock, no contention between threads); Value adds the shards up.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Add(int64_t n = 1);  // n < 0 is ignored: a counter never goes down
  int64_t Value() const;

 private:
  static constexpr int kShards = 8;
  struct alignas(64) Shard {
    std::atomic<int64_t> value{0};
  };
  Shard shards_[kShards];
};

// The counter of `name` with these labels (their order does not matter), made on first use and
// kept for the life of the process; the same name and labels return the same counter. `help`
// is taken from the first call of a name. InvalidArgument naming what is wrong: a name or label
// name Prometheus does not take, a name of rpcboot's, a label given twice, a name that is a
// gauge. ResourceExhausted past kMaxAppSeries.
absl::StatusOr<Counter*> GetCounter(std::string_view name, std::string_view help,
                                    const MetricLabels& labels = {});

// A gauge: `read` is called when /metrics, /status.json or the status page is read, on the admin
// server's thread (keep it quick: read an atomic, take a short lock). Removed when the
// registration is destroyed, which waits for a read in progress, so `read` may use what it
// captures until then. A read that throws leaves its sample out of that scrape.
class GaugeRegistration {
 public:
  struct Entry;
  explicit GaugeRegistration(std::shared_ptr<Entry> entry) : entry_(std::move(entry)) {}
  ~GaugeRegistration();
  GaugeRegistration(const GaugeRegistration&) = delete;
  GaugeRegistration& operator=(const GaugeRegistration&) = delete;

 private:
  std::shared_ptr<Entry> entry_;
};

// Registers a gauge; errors as GetCounter's, and AlreadyExists for a name and labels that are
// registered now.
absl::StatusOr<std::unique_ptr<GaugeRegistration>> AddGauge(std::string_view name,
                                                            std::string_view help,
                                                            const MetricLabels& labels,
                                                            std::function<double()> read);

}  // namespace rpcboot

#endif  // RPCBOOT_METRICS_H_
