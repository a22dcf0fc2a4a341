// How a transport's polling threads serve under load, chosen by trying: one thread that polls
// and runs every call in place (quiet: no other thread wakes), or two, where the thread that
// takes a call first makes sure the other polls (busy: calls run side by side, each at the cost
// of a wake-up).
//
// Which one serves more depends on more than the load: a few callers that keep one connection
// each busy are served faster by the one thread (no wake-ups) even when it is never idle, many
// faster by two. The transport's monitor reports every window (a few tens of milliseconds) how
// much CPU the polling threads wanted (ran plus waited to run, in threads' worth) and how many
// calls started; PollingChoice answers the way to poll next:
//
//   PollingChoice choice;
//   PollingChoice::Way way = choice.Next({demand, calls, wall_ns});
//
// - Light load (the one thread wants less than kBusyDemand): quiet. Busy with light load
//   (kQuietDemand or less): back to quiet at once.
// - Heavy load: a trial. After kBaseWindows windows of heavy load one way, the other way is
//   tried for kTrialWindows windows (the first kSettleWindows after the switch not counted) and
//   kept when it started calls at least as fast (busy: kKeepBusy of the quiet rate; quiet: it
//   must be kKeepQuiet faster, since one thread answers a burst less evenly). A way that lost
//   is not tried again for a while, twice as long after each loss (kFirstWait to kLongestWait
//   windows): a steady load pays a short trial every few seconds at most.
//
// Not thread-safe: one monitor thread calls it.
#ifndef RPCBOOT_INTERNAL_POLLING_CHOICE_H_
#define RPCBOOT_INTERNAL_POLLING_CHOICE_H_

#include <cstdint>

namespace rpcboot::internal {

class PollingChoice {
 public:
  enum class Way { kQuiet, kBusy };

  // What the polling threads did in one window.
  struct Window {
    double demand = 0;    // CPU the polling threads wanted, in threads' worth
    int64_t calls = 0;    // calls that started
    int64_t wall_ns = 0;  // the window's length
  };

  static constexpr double kBusyDemand = 0.9;   // one thread at this is heavy load
  static constexpr double kQuietDemand = 0.5;  // busy at this or less is light load
  static constexpr int kBaseWindows = 4;
  static constexpr int kSettleWindows = 1;
  static constexpr int kTrialWindows = 4;
  static constexpr double kKeepBusy = 0.97;
  static constexpr double kKeepQuiet = 1.03;
  static constexpr int kFirstWait = 32;
  static constexpr int kLongestWait = 256;

  // The way for the next window, given the one just ended.
  Way Next(const Window& window);
  Way way() const { return way_; }
  bool trying() const { return trial_; }
  // Back to quiet with nothing learned (the transport went idle).
  void Reset() { *this = PollingChoice(); }

 private:
  void Light(double demand);
  static Way Other(Way way) { return way == Way::kQuiet ? Way::kBusy : Way::kQuiet; }

  Way way_ = Way::kQuiet;
  // The last heavy-load windows in a row the current way (settled; counted up to kBaseWindows):
  // what they started, how long they took (a ring, next_slot_ the next to fill).
  int heavy_ = 0;
  int next_slot_ = 0;
  int64_t ring_calls_[kBaseWindows] = {};
  int64_t ring_ns_[kBaseWindows] = {};
  // A trial of way_ against the other way.
  bool trial_ = false;
  int settle_ = 0, counted_ = 0;
  int64_t trial_calls_ = 0, trial_ns_ = 0;
  int64_t before_calls_ = 0, before_ns_ = 0;  // the base the trial is held against
  // Windows before the next trial, and the wait after the next loss.
  int wait_ = 0;
  int next_wait_ = kFirstWait;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_POLLING_CHOICE_H_
