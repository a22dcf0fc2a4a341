// What a discovery channel makes of registry instances: which ones it calls, on which port, and
// whether it sends them THeader frames (only to instances that say they read them).
#include <gtest/gtest.h>

#include "discovery/instance.h"
#include "rpcboot/internal/discovery_channel.h"

namespace rpcboot::internal {
namespace {

discovery::Instance Registered(std::map<std::string, std::string> metadata) {
  discovery::Instance i;
  i.name = "shop";
  i.id = "id-" + std::to_string(metadata.size());
  i.address = "10.0.0.5";
  i.port = 8080;
  i.metadata = std::move(metadata);
  return i;
}

TEST(DiscoveryEndpoints, THeaderOnlyToInstancesThatSayTheyReadIt) {
  discovery::Serving serving;
  serving.app = "shop";
  serving.address = "10.0.0.5";
  serving.thrift_port = 9090;
  discovery::Instance rpcboot_server = discovery::MakeServingInstance(serving);
  // A stock Thrift server registered with rpcboot's protocol keys but no THeader support.
  discovery::Instance stock_server =
      Registered({{"rpcboot.protocols", "thrift"}, {"rpcboot.thrift.port", "9191"}});
  std::vector<EndpointSpec> endpoints =
      EndpointsFor({rpcboot_server, stock_server}, Protocol::kThrift);
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_EQ(endpoints[0].address, "10.0.0.5:9090");
  EXPECT_TRUE(endpoints[0].thrift_header);
  EXPECT_EQ(endpoints[1].address, "10.0.0.5:9191");
  EXPECT_FALSE(endpoints[1].thrift_header) << "plain framed toward a stock server";
}

TEST(DiscoveryEndpoints, SpringGrpcInstancesAreCalledOnTheirGrpcPort) {
  std::vector<EndpointSpec> endpoints =
      EndpointsFor({Registered({{"instance_status", "UP"}, {"gRPC_port", "9898"}}),
                    Registered({{"instance_status", "UP"}})},  // a plain Spring app: no gRPC
                   Protocol::kGrpc);
  ASSERT_EQ(endpoints.size(), 1u);
  EXPECT_EQ(endpoints[0].address, "10.0.0.5:9898");
}

// rpcboot.services is read: an instance of the application that lists other services is not
// called for this one; one that publishes no list (a plain Spring service) may serve it.
TEST(DiscoveryEndpoints, OnlyInstancesServingTheServiceAreCalledForIt) {
  discovery::Instance both =
      Registered({{"rpcboot.protocols", "grpc"},
                  {"rpcboot.grpc.port", "1"},
                  {"rpcboot.services", "shop.ShopService, shop.AdminService"}});
  both.id = "both";
  discovery::Instance admin_only = Registered({{"rpcboot.protocols", "grpc"},
                                               {"rpcboot.grpc.port", "2"},
                                               {"rpcboot.services", "shop.AdminService"}});
  admin_only.id = "admin-only";
  discovery::Instance unlisted = Registered({{"gRPC_port", "3"}});
  unlisted.id = "unlisted";
  auto ids = [](const std::vector<EndpointSpec>& endpoints) {
    std::vector<std::string> out;
    for (const EndpointSpec& e : endpoints) out.push_back(e.id);
    return out;
  };
  EXPECT_EQ(ids(EndpointsFor({both, admin_only, unlisted}, Protocol::kGrpc, "shop.ShopService")),
            (std::vector<std::string>{"both", "unlisted"}));
  // A list of instances is sorted by id.
  EXPECT_EQ(ids(EndpointsFor({both, admin_only, unlisted}, Protocol::kGrpc, "shop.AdminService")),
            (std::vector<std::string>{"admin-only", "both", "unlisted"}));
  EXPECT_EQ(ids(EndpointsFor({both, admin_only, unlisted}, Protocol::kGrpc)).size(), 3u)
      << "no service given (a zk:// address): every instance";
}

// Instances without rpcboot metadata (a plain Spring or Curator service) are called only when the
// client says so (foreign_instances), at their `port`, plain framed on Thrift; a gRPC_port wins
// on gRPC. Left out, they are counted, and the call's message says why and what to set.
TEST(DiscoveryEndpoints, ForeignInstancesAreCalledAtTheirPortOnlyWhenTheClientSaysSo) {
  discovery::Instance spring = Registered({{"instance_status", "UP"}});
  spring.id = "spring";
  discovery::Instance starter = Registered({{"instance_status", "UP"}, {"gRPC_port", "9898"}});
  starter.id = "starter";
  discovery::Instance rpcboot_grpc_only =
      Registered({{"rpcboot.protocols", "grpc"}, {"rpcboot.grpc.port", "7000"}});
  rpcboot_grpc_only.id = "grpc-only";

  EndpointSkips skips;
  std::vector<EndpointSpec> endpoints =
      EndpointsFor({spring, starter, rpcboot_grpc_only}, Protocol::kThrift, "", false, &skips);
  EXPECT_TRUE(endpoints.empty());
  EXPECT_EQ(skips.foreign, 2);
  EXPECT_EQ(skips.no_port, 1);
  std::string why = skips.Describe(Protocol::kThrift, "shop.ShopService");
  EXPECT_NE(why.find("3 UP instance(s) left out: 1 do not speak thrift, 2 carry no rpcboot "
                     "metadata (registered by Spring or Curator; set the client's "
                     "foreign_instances: true to call them over thrift at their port)"),
            std::string::npos)
      << why;

  endpoints = EndpointsFor({spring, starter, rpcboot_grpc_only}, Protocol::kThrift, "", true);
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_EQ(endpoints[0].address, "10.0.0.5:8080");
  EXPECT_FALSE(endpoints[0].thrift_header) << "plain framed toward a foreign server";
  EXPECT_EQ(endpoints[1].address, "10.0.0.5:8080");

  endpoints = EndpointsFor({spring, starter}, Protocol::kGrpc, "", true);
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_EQ(endpoints[0].address, "10.0.0.5:8080");
  EXPECT_EQ(endpoints[1].address, "10.0.0.5:9898") << "gRPC_port wins over port";
  EXPECT_EQ(EndpointSkips{}.Describe(Protocol::kGrpc, ""), "");
}

}  // namespace
}  // namespace rpcboot::internal
