// Resilience on lists of instances, with three real servers on 127.0.0.1 per test and both
// protocols: a slow instance and a failing one are ejected and come back, a service that fails
// entirely opens the circuit and costs no more attempts than the retry budget allows (counted on
// the servers), a fallback answers what the service cannot, a concurrency limit fails the call
// past it at once. Outcomes are counted, never timed.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "count_calls.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"

namespace rpcboot {
namespace {

using std::chrono::milliseconds;

// Count() as the chaos wants it: late, failing half the time, or failing always.
class ChaosImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override {
    int64_t n = received.fetch_add(1) + 1;
    if (int delay = delay_ms.load(); delay > 0) {
      std::this_thread::sleep_for(milliseconds(delay));
    }
    if (fail_all.load() || (fail_half.load() && n % 2 == 0)) {
      throw RpcError(StatusCode::kUnavailable, "chaos: this instance fails");
    }
    ServerContext::AddReplyMetadata("x-instance", std::to_string(index)).IgnoreError();
    return n;
  }
  int index = 0;  // its place in the list, in its replies' metadata
  std::atomic<int64_t> received{0};
  std::atomic<int> delay_ms{0};
  std::atomic<bool> fail_half{false};
  std::atomic<bool> fail_all{false};
};

// Answers Count from "a cache".
class CachedImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override { return -42; }
};

class Resilience : public ::testing::TestWithParam<Protocol> {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      impls_.push_back(std::make_shared<ChaosImpl>());
      impls_.back()->index = i;
      ServerOptions options;
      options.host = "127.0.0.1";
      (GetParam() == Protocol::kGrpc ? options.grpc_port : options.thrift_port) = 0;
      options.handler_threads = 32;
      servers_.push_back(std::make_unique<Server>(options));
      servers_.back()->AddService<rich::RichService>(impls_.back());
      ASSERT_TRUE(servers_.back()->Start().ok());
      int port = GetParam() == Protocol::kGrpc ? servers_.back()->grpc_port()
                                               : servers_.back()->thrift_port();
      addresses_.push_back("127.0.0.1:" + std::to_string(port));
      list_ += (i == 0 ? "static://" : ",") + addresses_.back();
    }
  }

  // Options for quick tests: short intervals and ejections.
  static ChannelOptions Quick() {
    ChannelOptions o;
    o.default_timeout = std::chrono::seconds(5);
    o.outlier.interval = milliseconds(100);
    o.outlier.min_calls = 3;
    o.outlier.base_ejection = milliseconds(300);
    o.outlier.max_ejection = milliseconds(600);
    return o;
  }

  static int64_t Run(rich::RichService& client, int threads, int64_t calls,
                     std::atomic<int64_t>* slow = nullptr,
                     milliseconds slow_after = milliseconds(100)) {
    return testing::CountCalls(client, threads, calls, slow, slow_after);
  }

  int64_t Received() const {
    int64_t n = 0;
    for (const auto& impl : impls_) n += impl->received.load();
    return n;
  }

  // Keeps calling until `done` (at most 20 s): the number of calls that failed.
  static bool CallUntil(rich::RichService& client, const std::function<bool()>& done) {
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      Run(client, 4, 40);
    }
    return true;
  }

  std::vector<std::shared_ptr<ChaosImpl>> impls_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::string> addresses_;
  std::string list_;
};

bool Ejected(const Channel& channel, const std::string& address) {
  for (const ChannelState::Instance& i : channel.State().instances) {
    if (i.address == address) return i.ejected;
  }
  return false;
}

TEST_P(Resilience, ASlowInstanceIsEjectedGetsOnlyProbesAndComesBackWhenItRecovers) {
  auto channel = MakeChannel(list_, GetParam(), Quick());
  auto client = MakeClient<rich::RichService>(channel);
  impls_[2]->delay_ms = 300;
  ASSERT_TRUE(CallUntil(*client, [&] { return Ejected(*channel, addresses_[2]); }))
      << "the instance answering 300 ms late was never ejected";
  int64_t before = impls_[2]->received.load();
  std::atomic<int64_t> slow{0};
  const int64_t calls = 1200;
  // Slow: as long as the ejected instance's answer takes, nearly (a loaded machine, a
  // sanitizer build, may hold a call 100 ms without it).
  EXPECT_EQ(Run(*client, 8, calls, &slow, milliseconds(250)), 0);
  int64_t probes = impls_[2]->received.load() - before;
  // While ejected it sees only probes, one at a time, one per ejection period (300-600 ms).
  EXPECT_LE(probes, 8) << "calls reached the ejected instance";
  EXPECT_LE(slow.load(), probes + 8) << "calls slower than 250 ms beyond the probes";
  EXPECT_GE(channel->State().instances.size(), 3u);
  // It recovers: a probe finds it fast, and it takes calls again.
  impls_[2]->delay_ms = 0;
  ASSERT_TRUE(CallUntil(*client, [&] { return !Ejected(*channel, addresses_[2]); }))
      << "the recovered instance never came back";
  // Its share then is the balancer's to choose (p2c sends fewer calls to an instance that
  // answers slower, and a method that blocked goes to the handler pool for a second): counted
  // is that it takes calls again.
  before = impls_[2]->received.load();
  EXPECT_EQ(Run(*client, 8, 600), 0);
  ASSERT_TRUE(CallUntil(*client, [&] { return impls_[2]->received.load() - before > 60; }))
      << "the recovered instance took " << impls_[2]->received.load() - before
      << " calls in 20 s of calling";
}

TEST_P(Resilience, AnInstanceFailingHalfItsCallsIsEjectedAndIdempotentCallsNeverFail) {
  ChannelOptions options = Quick();
  // A budget that covers one instance of three failing half its calls until it is ejected.
  options.retry_budget.ratio = 0.5;
  auto channel = MakeChannel(list_, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  impls_[1]->fail_half = true;
  auto ejections = [&] {
    for (const auto& i : channel->State().instances) {
      if (i.address == addresses_[1]) return i.ejections;
    }
    return 0;
  };
  int64_t failed = 0;
  ASSERT_TRUE(CallUntil(*client, [&] {
    failed += Run(*client, 8, 500);
    return ejections() >= 1;
  })) << "the failing instance was never ejected";
  EXPECT_EQ(failed, 0) << "an idempotent call failed";
  EXPECT_EQ(Run(*client, 8, 1000), 0) << "an idempotent call failed";
}

TEST_P(Resilience, EveryInstanceFailingOpensTheCircuitWithinTheRetryBudget) {
  ChannelOptions options = Quick();
  options.circuit.open_for = milliseconds(200);
  auto channel = MakeChannel(list_, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  auto start = std::chrono::steady_clock::now();
  // Every instance reached once first: an attempt handed to a connection still being set up can
  // fail in the client and never reach a server, which would make the count below inexact.
  ASSERT_TRUE(CallUntil(*client, [&] {
    for (const auto& impl : impls_) {
      if (impl->received.load() == 0) return false;
    }
    return true;
  }));
  const int64_t warm = Received();  // calls that succeeded: no retries, no fast failures
  for (auto& impl : impls_) impl->fail_all = true;
  const int64_t calls = 2000;
  int64_t failed = Run(*client, 4, calls);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(failed, calls) << "every instance fails: so does every call";
  ChannelState state = channel->State();
  EXPECT_GT(state.fast_failures, calls / 2) << "most calls should fail fast, circuit open";
  // Attempts the servers saw: the calls that were sent plus the retries the budget allowed
  // (10% of calls, 10 a second, and its initial 110).
  int64_t sent_calls = calls - state.fast_failures;
  int64_t budget =
      static_cast<int64_t>(0.1 * static_cast<double>(calls + warm) + 10 * seconds) + 110;
  EXPECT_LE(Received() - warm, sent_calls + budget)
      << "attempts beyond the retry budget; retries " << state.retries << ", refused "
      << state.retries_refused << ", over " << seconds << " s";
  EXPECT_EQ(state.retries + sent_calls, Received() - warm);

  // With a fallback, every call is answered.
  auto fallen_back = MakeClient<rich::RichService>(
      WithFallback<rich::RichService>(channel, std::make_shared<CachedImpl>()));
  std::atomic<int64_t> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        try {
          if (fallen_back->Count() != -42) wrong.fetch_add(1);
        } catch (const RpcError&) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0) << "a call was not answered by the fallback";

  // The service recovers: a probe closes the circuit.
  for (auto& impl : impls_) impl->fail_all = false;
  ASSERT_TRUE(CallUntil(*client, [&] { return !channel->State().circuit_open; }));
  EXPECT_EQ(Run(*client, 4, 200), 0);
}

TEST_P(Resilience, ACallPastMaxInFlightFailsAtOnce) {
  ChannelOptions options = Quick();
  options.max_in_flight = 3;
  auto channel = MakeChannel(list_, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  std::vector<std::thread> held;
  for (int i = 0; i < 3; ++i) {
    held.emplace_back([&] { client->Notify(testing::RichServiceImpl::kHeld, "held", {}); });
  }
  // The three are in flight once the channel counts them on their instances.
  auto in_flight = [&] {
    int n = 0;
    for (const auto& i : channel->State().instances) n += i.in_flight;
    return n;
  };
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (in_flight() < 3 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(in_flight(), 3);
  try {
    client->Count();
    ADD_FAILURE() << "a fourth call went out";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_in_flight"), std::string::npos) << e.what();
  }
  for (auto& impl : impls_) impl->Release();
  for (std::thread& t : held) t.join();
  EXPECT_NO_THROW(client->Count()) << "the limit frees as calls end";
}

TEST_P(Resilience, HedgedCallsNeverWaitForAStalledInstanceAndTheLosersAreCancelled) {
  ChannelOptions options = Quick();
  options.outlier.enabled = false;  // hedging alone
  options.hedge_delay = milliseconds(30);
  options.retry_budget.ratio = 1;  // a backup for every call if need be
  // Two instances, one of which stalls every call for 3 s.
  std::string list = "static://" + addresses_[0] + "," + addresses_[1];
  impls_[1]->delay_ms = 3000;
  auto channel = MakeChannel(list, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  std::atomic<int64_t> slow{0};
  const int64_t calls = 120;
  EXPECT_EQ(Run(*client, 4, calls, &slow, milliseconds(1000)), 0)
      << "a hedged idempotent call failed";
  ChannelState state = channel->State();
  int64_t stalled = impls_[1]->received.load();
  EXPECT_GT(stalled, 0) << "no call went to the stalled instance first";
  EXPECT_GE(state.hedges, stalled) << "a call to the stalled instance got no backup";
  // No call failed (above) or waited for the 3 s stall (below): each call sent to the stalled
  // instance first was answered by its backup on the fast one. The stalled instance's count is
  // not compared with the backups that won: it may also hold backups, which lose (calls the fast
  // instance took longer than the hedge delay to answer, as in a loaded sanitizer run).
  EXPECT_GT(state.hedges_won, 0) << "no backup answered first";
  EXPECT_GE(state.cancelled, stalled) << "the stalled instance's attempts were not cancelled";
  EXPECT_EQ(slow.load(), 0) << "calls waited for the stalled instance";
}

// A hedged call's reply metadata is its winner's: the backup's when the first attempt went to
// the stalled instance (whose attempt is cancelled), never a mix and never the loser's.
TEST_P(Resilience, AHedgedCallGivesItsWinnersReplyMetadata) {
  ChannelOptions options = Quick();
  options.outlier.enabled = false;
  options.hedge_delay = milliseconds(30);
  options.retry_budget.ratio = 1;
  options.thrift_header = true;  // plain framed Thrift replies have no place for metadata
  impls_[0]->delay_ms = 3000;
  auto channel =
      MakeChannel("static://" + addresses_[0] + "," + addresses_[1], GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  const std::vector<std::pair<std::string, std::string>> fast = {{"x-instance", "1"}};
  for (int i = 0; i < 12; ++i) {
    std::vector<std::pair<std::string, std::string>> got;
    CallOptions call;
    call.reply_metadata = &got;
    ScopedCallOptions scope(call);
    client->Count();
    EXPECT_EQ(got, fast) << "call " << i;
  }
  EXPECT_GT(impls_[0]->received.load(), 0) << "no call went to the stalled instance first";
  EXPECT_GT(channel->State().hedges_won, 0) << "no backup answered first";
}

TEST_P(Resilience, WithQueueWhenFullACallPastMaxInFlightWaitsForASlot) {
  ChannelOptions options = Quick();
  options.max_in_flight = 1;
  options.queue_when_full = true;
  auto channel = MakeChannel(list_, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  std::thread held([&] { client->Notify(testing::RichServiceImpl::kHeld, "held", {}); });
  auto in_flight = [&] {
    int n = 0;
    for (const auto& i : channel->State().instances) n += i.in_flight;
    return n;
  };
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (in_flight() < 1 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(in_flight(), 1);
  // A call whose deadline comes first fails, saying it waited.
  try {
    ScopedCallOptions short_deadline({milliseconds(50)});
    client->Count();
    ADD_FAILURE() << "a second call went out past max_in_flight";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("until the deadline"), std::string::npos) << e.what();
  }
  // One with time to wait gets the slot once the held call ends.
  std::atomic<bool> answered{false};
  std::thread waiting([&] {
    client->Count();
    answered = true;
  });
  for (auto& impl : impls_) impl->Release();
  held.join();
  waiting.join();
  EXPECT_TRUE(answered.load());
}

TEST_P(Resilience, HedgeAtP95FollowsTheObservedLatency) {
  ChannelOptions options = Quick();
  options.hedge_at_p95 = true;
  auto channel = MakeChannel(list_, GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  EXPECT_EQ(channel->State().hedge_delay_us, 1000) << "before any call: the 1 ms floor";
  // Calls for a little over a second give the channel a p95 of its fast instances.
  auto until = std::chrono::steady_clock::now() + milliseconds(1200);
  while (std::chrono::steady_clock::now() < until) EXPECT_EQ(Run(*client, 4, 100), 0);
  int64_t delay_us = channel->State().hedge_delay_us;
  EXPECT_GE(delay_us, 1000);
  EXPECT_LT(delay_us, 1000000) << "a p95 of fast calls is far under a second";
}

INSTANTIATE_TEST_SUITE_P(Protocols, Resilience,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) {
                           return param_info.param == Protocol::kGrpc ? "Grpc" : "Thrift";
                         });

}  // namespace
}  // namespace rpcboot
