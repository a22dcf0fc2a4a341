// What the admin server reads of the application's own metrics (rpcboot/metrics.h).
#ifndef RPCBOOT_INTERNAL_APP_METRICS_H_
#define RPCBOOT_INTERNAL_APP_METRICS_H_

#include <string>
#include <vector>

#include "rpcboot/metrics.h"

namespace rpcboot::internal {

struct AppSample {
  std::string name, help;
  bool counter = false;  // else a gauge
  MetricLabels labels;   // sorted by name
  double value = 0;
};

// Every counter and gauge now, ordered by name and labels; gauges are read here, outside any
// lock of the registry (a gauge that throws is left out).
std::vector<AppSample> ReadAppMetrics();

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_APP_METRICS_H_
