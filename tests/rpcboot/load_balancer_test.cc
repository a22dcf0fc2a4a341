// The four load balancers on pickers over plain backends, and the balancer registry.
#include "rpcboot/lb/load_balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "rpcboot/base/hash.h"

namespace rpcboot {
namespace {

std::vector<std::shared_ptr<Backend>> MakeBackends(int n, std::vector<int> weights = {}) {
  std::vector<std::shared_ptr<Backend>> backends;
  for (int i = 0; i < n; ++i) {
    int weight = weights.empty() ? 100 : weights[i];
    backends.push_back(std::make_shared<Backend>(
        "id" + std::to_string(i), "10.0.0." + std::to_string(i) + ":9090", weight, nullptr));
  }
  return backends;
}

std::shared_ptr<const Picker> Build(const std::string& name,
                                    const std::vector<std::shared_ptr<Backend>>& backends) {
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = MakeLoadBalancer(name);
  EXPECT_TRUE(lb.ok()) << lb.status();
  return (*lb)->Build(backends);
}

std::map<std::string, int> Spread(const Picker& picker, int picks, std::string_view key = "") {
  std::map<std::string, int> counts;
  for (int i = 0; i < picks; ++i) {
    PickArgs args;
    args.request_key = key;
    ++counts[picker.Pick(args)->id()];
  }
  return counts;
}

TEST(P2c, PrefersTheBackendWithFewerCallsInFlight) {
  auto backends = MakeBackends(2);
  for (int i = 0; i < 5; ++i) backends[0]->CallStarted();
  auto picker = Build("p2c", backends);
  std::map<std::string, int> counts = Spread(*picker, 1000);
  EXPECT_EQ(counts["id1"], 1000);
  for (int i = 0; i < 5; ++i) backends[0]->CallEnded();
  counts = Spread(*picker, 10000);
  EXPECT_GT(counts["id0"], 4000) << "equal load: an even split";
  EXPECT_GT(counts["id1"], 4000);
}

TEST(P2c, AmongManyTheBusiestIsNeverPicked) {
  auto backends = MakeBackends(5);
  for (int i = 0; i < 3; ++i) backends[2]->CallStarted();
  std::map<std::string, int> counts = Spread(*Build("p2c", backends), 10000);
  EXPECT_EQ(counts.count("id2"), 0u);
  EXPECT_EQ(counts.size(), 4u);
}

TEST(RoundRobin, EachInTurn) {
  auto picker = Build("round_robin", MakeBackends(3));
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) order.push_back(picker->Pick(PickArgs{})->id());
  EXPECT_EQ(order[0], order[3]);
  EXPECT_EQ(order[1], order[4]);
  EXPECT_EQ(std::set<std::string>(order.begin(), order.begin() + 3).size(), 3u);
}

TEST(WeightedRandom, InProportionToWeight) {
  std::map<std::string, int> counts =
      Spread(*Build("weighted_random", MakeBackends(2, {100, 300})), 20000);
  EXPECT_NEAR(counts["id0"], 5000, 600);
  EXPECT_NEAR(counts["id1"], 15000, 600);
}

TEST(ConsistentHash, EqualKeysGoToTheSameBackendAndFewMoveWhenOneLeaves) {
  auto backends = MakeBackends(4);
  auto picker = Build("consistent_hash", backends);
  std::map<std::string, std::string> owner;
  std::map<std::string, int> load;
  for (int k = 0; k < 4000; ++k) {
    std::string key = "order-" + std::to_string(k);
    PickArgs args;
    args.request_key = key;
    owner[key] = picker->Pick(args)->id();
    EXPECT_EQ(picker->Pick(args)->id(), owner[key]);
    ++load[owner[key]];
  }
  for (const auto& [id, n] : load) EXPECT_NEAR(n, 1000, 250) << id;

  // id3 leaves: only its keys move.
  auto smaller = Build("consistent_hash", {backends[0], backends[1], backends[2]});
  int moved = 0;
  for (const auto& [key, id] : owner) {
    PickArgs args;
    args.request_key = key;
    std::string now = smaller->Pick(args)->id();
    if (id != "id3") {
      EXPECT_EQ(now, id) << key;
    } else {
      ++moved;
    }
  }
  EXPECT_EQ(moved, load["id3"]);
}

TEST(ConsistentHash, TheHashIsStable) {
  // Clients in other processes and builds must agree on where a key goes: fixed values
  // (FNV-1a 64, then MurmurHash3's finalizer), computed independently.
  EXPECT_EQ(StableHash("order-42"), 0x8e47543c313c6386ull);
  EXPECT_EQ(StableHash(""), 0xefd01f60ba992926ull);
  EXPECT_NE(StableHash("a"), StableHash("b"));
}

TEST(Pickers, PassOverTriedAndUnhealthyBackends) {
  for (const char* name : {"p2c", "round_robin", "weighted_random", "consistent_hash"}) {
    auto backends = MakeBackends(3);
    auto picker = Build(name, backends);
    std::vector<const Backend*> tried = {backends[0].get()};
    backends[1]->ConnectionFailed();
    EXPECT_FALSE(backends[1]->healthy());
    for (int i = 0; i < 200; ++i) {
      std::string key = "k" + std::to_string(i);
      PickArgs args;
      args.tried = tried;
      args.request_key = key;
      EXPECT_EQ(picker->Pick(args), backends[2].get()) << name;
    }
    tried.push_back(backends[2].get());
    PickArgs args;
    args.tried = tried;
    EXPECT_EQ(picker->Pick(args), nullptr) << name << ": all tried or unhealthy";
    args.skip_unhealthy = false;
    EXPECT_EQ(picker->Pick(args), backends[1].get()) << name << ": an unhealthy one as last resort";
    backends[1]->Succeeded();
    EXPECT_TRUE(backends[1]->healthy());
  }
}

TEST(Registry, UnknownNamesAreErrorsListingTheKnownOnes) {
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = MakeLoadBalancer("fastest");
  ASSERT_FALSE(lb.ok());
  EXPECT_EQ(lb.status().message(),
            "unknown load balancer 'fastest' (known: consistent_hash, p2c, round_robin, "
            "weighted_random)");
}

}  // namespace
}  // namespace rpcboot
