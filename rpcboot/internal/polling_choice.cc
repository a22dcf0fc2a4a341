#include "rpcboot/internal/polling_choice.h"

#include <algorithm>

namespace rpcboot::internal {

PollingChoice::Way PollingChoice::Next(const Window& window) {
  if (window.wall_ns <= 0) return way_;
  const bool heavy =
      way_ == Way::kQuiet ? window.demand >= kBusyDemand : window.demand > kQuietDemand;
  if (!heavy) {
    Light(window.demand);
    return way_;
  }
  if (trial_) {
    if (settle_ > 0) {
      --settle_;
      return way_;
    }
    trial_calls_ += window.calls;
    trial_ns_ += window.wall_ns;
    if (++counted_ < kTrialWindows) return way_;
    // Rates in calls per ns, compared by cross-multiplying (no division by a zero count).
    const double trial = static_cast<double>(trial_calls_) * static_cast<double>(before_ns_);
    const double before = static_cast<double>(before_calls_) * static_cast<double>(trial_ns_);
    const bool keep =
        way_ == Way::kBusy ? trial >= kKeepBusy * before : trial >= kKeepQuiet * before;
    if (!keep) way_ = Other(way_);
    trial_ = false;
    heavy_ = 0;
    wait_ = next_wait_;  // the way that lost waits, longer each time
    next_wait_ = std::min(2 * next_wait_, kLongestWait);
    return way_;
  }
  ring_calls_[next_slot_] = window.calls;
  ring_ns_[next_slot_] = window.wall_ns;
  next_slot_ = (next_slot_ + 1) % kBaseWindows;
  heavy_ = std::min(heavy_ + 1, kBaseWindows);
  if (wait_ > 0) --wait_;
  if (heavy_ < kBaseWindows || wait_ > 0) return way_;
  before_calls_ = 0;
  before_ns_ = 0;
  for (int i = 0; i < kBaseWindows; ++i) {
    before_calls_ += ring_calls_[i];
    before_ns_ += ring_ns_[i];
  }
  trial_ = true;
  way_ = Other(way_);
  settle_ = kSettleWindows;
  counted_ = 0;
  trial_calls_ = 0;
  trial_ns_ = 0;
  return way_;
}

void PollingChoice::Light(double demand) {
  heavy_ = 0;
  trial_ = false;  // a trial of quiet that the one thread keeps up with: quiet stays
  if (way_ == Way::kBusy || demand <= kQuietDemand) {
    way_ = Way::kQuiet;  // light load: the one thread, and the next heavy load tried afresh
    wait_ = 0;
    next_wait_ = kFirstWait;
  }
}

}  // namespace rpcboot::internal
