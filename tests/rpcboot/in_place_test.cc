// InPlaceMonitor: who checks the calls run in place (the monitor thread, or an owner thread that
// pokes between its calls), one check at a time, and none after Stop.
#include "rpcboot/internal/in_place.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rpcboot::internal {
namespace {

// Counts the checks, the threads that ran them, and any two that overlapped.
class CountingClient : public InPlaceMonitor::Client {
 public:
  bool CheckInPlace() override {
    if (in_check_.exchange(true)) overlaps_.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads_.insert(std::this_thread::get_id());
    }
    checks_.fetch_add(1);
    // Long enough for another thread to come in if the monitor let it.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    in_check_ = false;
    return active_.load();
  }
  bool AnyInPlace() const override { return active_.load(); }

  bool CheckedOn(std::thread::id id) {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_.count(id) != 0;
  }
  int checks() const { return checks_.load(); }
  int overlaps() const { return overlaps_.load(); }

 private:
  std::atomic<bool> active_{true};  // a call always runs in place: the monitor never sleeps
  std::atomic<bool> in_check_{false};
  std::atomic<int> checks_{0};
  std::atomic<int> overlaps_{0};
  std::mutex mu_;
  std::set<std::thread::id> threads_;
};

// Pokes from this thread, 100 us apart, until one of its pokes ran a check (at most `limit`).
bool PokeUntilChecked(InPlaceMonitor& monitor, CountingClient& client, int limit) {
  for (int i = 0; i < limit; ++i) {
    monitor.Poke();
    if (client.CheckedOn(std::this_thread::get_id())) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return false;
}

TEST(InPlaceMonitor, AnOwnerThatPokesRunsTheCheckItself) {
  CountingClient client;
  InPlaceMonitor monitor(&client);
  std::string error;
  ASSERT_TRUE(monitor.Start(&error)) << error;
  EXPECT_TRUE(PokeUntilChecked(monitor, client, 20000))
      << "no poke ran a check in 20,000 tries, a check being due every "
      << InPlaceMonitor::kInterval.count() << " us";
  monitor.Stop();
}

TEST(InPlaceMonitor, ChecksNeverOverlapWhateverThreadRunsThem) {
  CountingClient client;
  InPlaceMonitor monitor(&client);
  std::string error;
  ASSERT_TRUE(monitor.Start(&error)) << error;
  std::vector<std::thread> owners;
  for (int t = 0; t < 4; ++t) {
    owners.emplace_back([&] {
      for (int i = 0; i < 4000; ++i) {
        monitor.Poke();
        if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    });
  }
  for (std::thread& t : owners) t.join();
  monitor.Stop();
  EXPECT_GT(client.checks(), 0);
  EXPECT_EQ(client.overlaps(), 0) << "two checks ran at once, of " << client.checks();
}

TEST(InPlaceMonitor, NoPokeChecksAfterStop) {
  CountingClient client;
  InPlaceMonitor monitor(&client);
  std::string error;
  ASSERT_TRUE(monitor.Start(&error)) << error;
  ASSERT_TRUE(PokeUntilChecked(monitor, client, 20000));
  monitor.Stop();
  EXPECT_FALSE(monitor.running());
  const int checks = client.checks();
  for (int i = 0; i < 200; ++i) {
    monitor.Poke();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  EXPECT_EQ(client.checks(), checks) << "a poke ran a check after Stop";
}

TEST(InPlaceMonitor, APokeWithoutAMonitorChecksNothing) {
  CountingClient client;
  InPlaceMonitor monitor(&client);  // never started: no call may run in place
  for (int i = 0; i < 50; ++i) {
    monitor.Poke();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  EXPECT_EQ(client.checks(), 0);
}

}  // namespace
}  // namespace rpcboot::internal
