// PollingChoice: the way gRPC's polling threads serve, picked by load and by trials.
#include "rpcboot/internal/polling_choice.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

namespace rpcboot::internal {
namespace {

using Way = PollingChoice::Way;

constexpr int64_t kWindowNs = 16'000'000;

// A window of the given demand in which `calls` calls started.
PollingChoice::Window Window(double demand, int64_t calls) {
  PollingChoice::Window window;
  window.demand = demand;
  window.calls = calls;
  window.wall_ns = kWindowNs;
  return window;
}

// Feeds windows until a trial starts (at most `limit`); the way it tries.
Way UntilTrial(PollingChoice& choice, double demand, int64_t calls, int limit = 1000) {
  for (int i = 0; i < limit && !choice.trying(); ++i) choice.Next(Window(demand, calls));
  EXPECT_TRUE(choice.trying()) << "no trial within " << limit << " windows";
  return choice.way();
}

// Feeds a trial's windows (settling and counted) at `calls` per window; the way kept.
Way FinishTrial(PollingChoice& choice, double demand, int64_t calls) {
  for (int i = 0; i < PollingChoice::kSettleWindows + PollingChoice::kTrialWindows; ++i) {
    EXPECT_TRUE(choice.trying());
    choice.Next(Window(demand, calls));
  }
  EXPECT_FALSE(choice.trying());
  return choice.way();
}

TEST(PollingChoiceTest, LightLoadStaysQuiet) {
  PollingChoice choice;
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(choice.Next(Window(0.6, 1000)), Way::kQuiet);
    EXPECT_FALSE(choice.trying());
  }
}

TEST(PollingChoiceTest, HeavyLoadTriesBusyAfterTheBaseWindows) {
  PollingChoice choice;
  for (int i = 0; i < PollingChoice::kBaseWindows - 1; ++i) {
    EXPECT_EQ(choice.Next(Window(1.0, 1000)), Way::kQuiet);
  }
  EXPECT_EQ(choice.Next(Window(1.0, 1000)), Way::kBusy);
  EXPECT_TRUE(choice.trying());
}

TEST(PollingChoiceTest, BusyThatServesFasterIsKept) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.4, 1200), Way::kBusy);
}

TEST(PollingChoiceTest, BusyThatServesAsFastIsKept) {
  // Level within kKeepBusy: busy is kept (two threads answer a burst more evenly).
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.2, 980), Way::kBusy);
}

TEST(PollingChoiceTest, BusyThatServesSlowerLosesAndWaitsLongerEachTime) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.2, 800), Way::kQuiet);
  // The next trial of busy comes only after the wait; each loss doubles it, up to the longest.
  int expected_wait = PollingChoice::kFirstWait;
  for (int loss = 0; loss < 6; ++loss) {
    int windows = 0;
    while (!choice.trying()) {
      EXPECT_EQ(choice.way(), Way::kQuiet);
      choice.Next(Window(1.0, 1000));
      ++windows;
      ASSERT_LE(windows, PollingChoice::kLongestWait + PollingChoice::kBaseWindows);
    }
    EXPECT_EQ(windows, std::max(expected_wait, PollingChoice::kBaseWindows));
    EXPECT_EQ(choice.way(), Way::kBusy);
    EXPECT_EQ(FinishTrial(choice, 1.2, 800), Way::kQuiet);
    expected_wait = std::min(2 * expected_wait, PollingChoice::kLongestWait);
  }
}

TEST(PollingChoiceTest, BusyTriesQuietAndKeepsItOnlyWhenClearlyFaster) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.4, 1200), Way::kBusy);
  // After the wait, quiet is tried against busy's rate (1200): 1210 is not enough...
  EXPECT_EQ(UntilTrial(choice, 1.4, 1200), Way::kQuiet);
  EXPECT_EQ(FinishTrial(choice, 1.0, 1210), Way::kBusy);
  // ...1300 is.
  EXPECT_EQ(UntilTrial(choice, 1.4, 1200), Way::kQuiet);
  EXPECT_EQ(FinishTrial(choice, 1.0, 1300), Way::kQuiet);
}

TEST(PollingChoiceTest, LightLoadEndsBusyAtOnceAndForgetsTheWait) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.4, 1200), Way::kBusy);
  EXPECT_EQ(choice.Next(Window(0.4, 300)), Way::kQuiet);
  EXPECT_FALSE(choice.trying());
  // Heavy again: busy is tried after the base windows, with no wait left from before.
  for (int i = 0; i < PollingChoice::kBaseWindows - 1; ++i) {
    EXPECT_EQ(choice.Next(Window(1.0, 1000)), Way::kQuiet);
  }
  EXPECT_EQ(choice.Next(Window(1.0, 1000)), Way::kBusy);
}

TEST(PollingChoiceTest, LightLoadDuringATrialOfBusyEndsIt) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(choice.Next(Window(0.3, 200)), Way::kQuiet);
  EXPECT_FALSE(choice.trying());
}

TEST(PollingChoiceTest, ATrialIsHeldAgainstTheWindowsJustBeforeIt) {
  // The rate quiet had long ago does not count: only the last kBaseWindows before the trial.
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  EXPECT_EQ(FinishTrial(choice, 1.2, 800), Way::kQuiet);       // busy lost: it waits
  for (int i = 0; i < 10; ++i) choice.Next(Window(1.0, 100));  // quiet slow for a while...
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);        // ...then fast
  EXPECT_EQ(FinishTrial(choice, 1.2, 900), Way::kQuiet);       // 0.9x the fast windows, 9x the slow
}

TEST(PollingChoiceTest, ResetForgetsEverything) {
  PollingChoice choice;
  EXPECT_EQ(UntilTrial(choice, 1.0, 1000), Way::kBusy);
  choice.Reset();
  EXPECT_EQ(choice.way(), Way::kQuiet);
  EXPECT_FALSE(choice.trying());
}

TEST(PollingChoiceTest, AWindowOfNoLengthChangesNothing) {
  PollingChoice choice;
  PollingChoice::Window empty;
  empty.demand = 5;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(choice.Next(empty), Way::kQuiet);
  EXPECT_FALSE(choice.trying());
}

}  // namespace
}  // namespace rpcboot::internal
