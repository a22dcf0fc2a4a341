// Subsetting (ChannelOptions::subset_size): every instance is in some client's subset, clients
// spread evenly over instances (counted), and a change to the list moves subsets little.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/hash.h"
#include "rpcboot/internal/cluster_channel.h"

namespace rpcboot::internal {
namespace {

std::vector<EndpointSpec> Instances(int n) {
  std::vector<EndpointSpec> list;
  for (int i = 0; i < n; ++i) {
    list.push_back({absl::StrCat("instance-", i * 7919 % 100003),
                    absl::StrCat("10.0.", i / 250, ".", i % 250, ":9090")});
  }
  return list;
}

std::map<std::string, int> ClientsPerInstance(const std::vector<EndpointSpec>& instances,
                                              const std::vector<double>& positions,
                                              std::size_t size) {
  std::map<std::string, int> count;
  for (const EndpointSpec& e : instances) count[e.id] = 0;
  for (double position : positions) {
    std::vector<EndpointSpec> subset = SubsetOf(instances, position, size);
    EXPECT_EQ(subset.size(), size);
    std::set<std::string> distinct;
    for (const EndpointSpec& e : subset) distinct.insert(e.id);
    EXPECT_EQ(distinct.size(), size) << "a subset names an instance twice";
    for (const std::string& id : distinct) ++count[id];
  }
  return count;
}

TEST(Subset, ClientsThatKnowTheirIndexSpreadExactlyEvenly) {
  // 1,000 clients at index / 1000 over 10,000 instances, 20 each: every instance has exactly
  // 2 clients (1,000 x 20 / 10,000).
  std::vector<EndpointSpec> instances = Instances(10000);
  std::vector<double> positions;
  for (int i = 0; i < 1000; ++i) positions.push_back(i / 1000.0);
  std::map<std::string, int> count = ClientsPerInstance(instances, positions, 20);
  for (const auto& [id, clients] : count) EXPECT_EQ(clients, 2) << id;
}

TEST(Subset, HashedPositionsCoverEveryInstanceAndSpreadEvenly) {
  // 2,000 clients at hashed positions over 500 instances, 25 each: 100 clients per instance
  // on average; every instance is covered and none is far from the mean.
  std::vector<EndpointSpec> instances = Instances(500);
  std::vector<double> positions;
  for (int i = 0; i < 2000; ++i) {
    uint64_t h = StableHash(absl::StrCat("client-host-", i, "/", 4000 + i));
    positions.push_back(static_cast<double>(h >> 11) / static_cast<double>(uint64_t{1} << 53));
  }
  std::map<std::string, int> count = ClientsPerInstance(instances, positions, 25);
  int low = 1 << 30, high = 0;
  for (const auto& [id, clients] : count) {
    low = std::min(low, clients);
    high = std::max(high, clients);
  }
  std::printf("clients per instance: min %d, max %d, mean 100\n", low, high);
  EXPECT_GE(low, 50);
  EXPECT_LE(high, 150);
}

TEST(Subset, AChangeToTheListMovesASubsetByAboutOne) {
  std::vector<EndpointSpec> instances = Instances(1000);
  std::vector<EndpointSpec> fewer(instances.begin() + 1, instances.end());  // one gone
  int moved_most = 0;
  for (int i = 0; i < 200; ++i) {
    double position = i / 200.0;
    std::set<std::string> before, after;
    for (const EndpointSpec& e : SubsetOf(instances, position, 10)) before.insert(e.id);
    for (const EndpointSpec& e : SubsetOf(fewer, position, 10)) after.insert(e.id);
    int moved = 0;
    for (const std::string& id : after) moved += before.count(id) ? 0 : 1;
    moved_most = std::max(moved_most, moved);
  }
  EXPECT_LE(moved_most, 2);
}

TEST(Subset, NoSubsetOrOneAsLargeAsTheListIsTheList) {
  std::vector<EndpointSpec> instances = Instances(5);
  EXPECT_EQ(SubsetOf(instances, 0.3, 0).size(), 5u);
  EXPECT_EQ(SubsetOf(instances, 0.3, 9).size(), 5u);
  EXPECT_EQ(SubsetOf(instances, 0.999999, 2).size(), 2u);
  EXPECT_EQ(SubsetOf(instances, 1.0, 2).size(), 2u);  // clamped into [0, 1)
  EXPECT_EQ(SubsetOf(instances, 0.5, 3)[0].id, SubsetOf(instances, 0.5, 3)[0].id);
}

TEST(Subset, AClusterChannelKeepsOnlyItsSubset) {
  ChannelOptions options;
  options.subset_size = 3;
  options.subset_position = 0.25;
  ClusterChannel channel("static://test", Protocol::kThrift, options);
  channel.Update(Instances(40));
  EXPECT_EQ(channel.size(), 3u);
}

}  // namespace
}  // namespace rpcboot::internal
