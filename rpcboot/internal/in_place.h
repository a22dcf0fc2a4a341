// Calls that an I/O thread runs in place of its usual work (a Thrift event loop, a gRPC polling
// thread), and the monitor that hands that work to another thread when such a call blocks.
//
// Running a call on the thread that read it saves a hop to another thread (a wake-up each way)
// but holds up that thread's other work while the handler runs. The owner thread wraps the call
// in Begin/End; every kInterval while calls run in place, a check (on the monitor thread, or on
// a busy owner thread that pokes between its calls) looks whether the same call is still running
// at two checks in a row and has run long enough (its thread asleep in the kernel, or running
// longer than the client allows). Then the client takes the work away from that thread
// (Displace: End then returns false, and the thread finishes its call as a handler thread
// would), and gives it to another.
//
//   InPlaceCall here;                             // one per thread that may run calls in place
//   uint64_t token = here.Begin();  monitor.Note();
//   Handle(call);
//   if (!here.End(token)) { /* a check gave this thread's work to another thread */ }
//   monitor.Poke();                               // between calls: check the others if due
#ifndef RPCBOOT_INTERNAL_IN_PLACE_H_
#define RPCBOOT_INTERNAL_IN_PLACE_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "rpcboot/base/internal/clock.h"

namespace rpcboot::internal {

// The calling thread's id (gettid).
pid_t CurrentThreadId();
// The CPU time thread `tid` of this process has run plus the time it waited for a CPU (its
// /proc schedstat), in ns: how much CPU it wanted. -1 when unknown.
int64_t ThreadWantedNanos(pid_t tid);

// The call one thread runs in place, if any.
class InPlaceCall {
 public:
  // Owner thread: a call starts here. Returns its token for End.
  uint64_t Begin();
  // Owner thread: the call `token` is over. True when the thread still has its work; false when
  // the monitor took it away meanwhile (Displace).
  bool End(uint64_t token) {
    uint64_t expected = token;
    return state_.compare_exchange_strong(expected, (token & ~uint64_t{3}) | kIdle);
  }
  bool running() const { return (state_.load() & 3) == kRunning; }

  // Once per check (checks run one at a time, on the monitor's thread or a poking owner's):
  // true when a call ran in place since the previous check.
  // Returns in *blocked the token of a call seen running at this check and the one before it
  // that is asleep in the kernel (a lock, I/O, a sleep: then *asleep is true) or has run for
  // `busy_for`; else 0.
  bool Check(std::chrono::nanoseconds busy_for, uint64_t* blocked, bool* asleep);
  // The check: takes the work away from the call `token`'s thread. False when that call
  // ended meanwhile (the thread keeps its work).
  bool Displace(uint64_t token) {
    uint64_t expected = token;
    return state_.compare_exchange_strong(expected, (token & ~uint64_t{3}) | kDisplaced);
  }

 private:
  // (sequence << 2) | one of these: the sequence makes every call's token unique.
  static constexpr uint64_t kIdle = 0, kRunning = 1, kDisplaced = 2;
  std::atomic<uint64_t> state_{0};
  pid_t tid_ = 0;      // the owner thread; written before the state that publishes a call
  uint64_t seen_ = 0;  // the checks only: the state at the previous check
  std::chrono::steady_clock::time_point seen_at_;  // when it was first seen
};

// The thread that checks a transport's calls in place, every kInterval while calls run in place;
// after a quiet while it sleeps until a call runs in place again (Note).
//
// A busy owner thread may do the checking instead (Poke, between its calls): then the monitor
// thread wakes only every kFallbackInterval, to take over when every owner thread is idle or
// held by a call. Its wake-ups are context switches on the cores the owners use (2,000 a
// second at kInterval); a poke that is not due costs a clock read.
class InPlaceMonitor {
 public:
  static constexpr std::chrono::microseconds kInterval{500};
  static constexpr std::chrono::microseconds kFallbackInterval{4000};

  // What the monitor checks.
  class Client {
   public:
    virtual ~Client() = default;
    // Every kInterval: checks the calls in place (and hands work on). True when there was
    // something to check (a call ran in place since the previous check).
    virtual bool CheckInPlace() = 0;
    // Whether a call runs in place now (asked before the monitor sleeps).
    virtual bool AnyInPlace() const = 0;
    // The monitor goes to sleep: no call has run in place for a while.
    virtual void OnQuiet() {}
  };

  explicit InPlaceMonitor(Client* client) : client_(client) {}
  ~InPlaceMonitor() { Stop(); }
  InPlaceMonitor(const InPlaceMonitor&) = delete;
  InPlaceMonitor& operator=(const InPlaceMonitor&) = delete;

  // Starts the thread. False (with the reason in *error) when the system would not start it:
  // no call may then run in place.
  bool Start(std::string* error);
  // Stops and joins the thread; running() is false from then on.
  void Stop();
  // Whether calls may run in place (the monitor runs).
  bool running() const { return running_.load(std::memory_order_relaxed); }
  // A call started in place: wakes the monitor if it sleeps.
  void Note() {
    if (!asleep_.load()) return;
    std::lock_guard<std::mutex> lock(mu_);
    asleep_ = false;
    cv_.notify_one();
  }
  // An owner thread between its calls: runs the check when one is due (kInterval since the
  // last) and no other thread is checking. Never while the monitor sleeps or after Stop.
  void Poke() { Poke(SteadyNanos()); }
  // The same with `now`, SteadyNanos() of a moment just past (a loop's reading at its wake).
  void Poke(int64_t now) {
    if (asleep_.load(std::memory_order_relaxed) || !running()) return;
    if (now - last_check_.load(std::memory_order_relaxed) < kIntervalNanos) return;
    PokeDue(now);
  }

 private:
  static constexpr int64_t kIntervalNanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(kInterval).count();

  void Main();
  void PokeDue(int64_t now);
  // Runs the client's check; check_mu_ held. `by_owner`: an owner thread's Poke.
  void CheckLocked(bool by_owner);

  Client* const client_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> asleep_{false};
  std::atomic<bool> running_{false};
  // One check at a time, by the monitor thread or a poking owner: the client's check keeps
  // state from one check to the next (InPlaceCall::Check).
  std::mutex check_mu_;
  std::atomic<int64_t> last_check_{0};        // SteadyNanos of the last check
  std::atomic<int64_t> last_owner_check_{0};  // and of the last one an owner ran
  std::atomic<int> quiet_{0};                 // checks in a row that found no call in place
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_IN_PLACE_H_
