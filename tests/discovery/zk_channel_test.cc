// zk:// channels against a real ZooKeeper server and a real rpcboot server: only UP instances
// are called (the last one too; a vanished last node after a grace period), a call waits for a
// large application's first view, and a call that finds no instance says why.
#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "discovery/registrar.h"
#include "discovery/session.h"
#include "gtest/gtest.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "tests/discovery/pipelined_writes.h"
#include "tests/discovery/zookeeper_testing.h"

namespace rpcboot {
namespace {

using discovery::Instance;
using discovery::Registrar;
using discovery::Session;
using rpcboot::testing::Eventually;
using rpcboot::testing::ZooKeeperServer;

std::shared_ptr<Session> Connect(const std::string& connect) {
  auto session = std::make_shared<Session>(
      discovery::SessionOptions{connect, std::chrono::milliseconds(10000), ""});
  session->Start();
  EXPECT_TRUE(session->WaitConnected(std::chrono::seconds(10)));
  return session;
}

struct RichServer {
  std::unique_ptr<Server> server;
  RichServer() {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.thrift_port = 0;
    server = std::make_unique<Server>(options);
    server->AddService<rich::RichService>(std::make_shared<testing::RichServiceImpl>());
    EXPECT_TRUE(server->Start().ok());
  }
  Instance Registration() const {
    discovery::Serving serving;
    serving.app = "rich";
    serving.address = "127.0.0.1";
    serving.grpc_port = server->grpc_port();
    serving.thrift_port = server->thrift_port();
    serving.services = {"rich.RichService"};
    return discovery::MakeServingInstance(serving);
  }
};

std::string FailureOf(const std::function<void()>& call) {
  try {
    call();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnavailable) << e.what();
    return e.message();
  }
  return "";
}

TEST(ZkChannel, OnlyUpInstancesAreCalledTheLastOneToo) {
  ZooKeeperServer zk("zk-channel-status");
  RichServer backend;
  auto session = Connect(zk.connect());
  Instance self = backend.Registration();
  Registrar registrar(session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    auto client = MakeClient<rich::RichService>(
        MakeChannel("zk://" + zk.connect() + "/services/rich", protocol));
    EXPECT_GE(client->Count(), 1);
  }
  ChannelOptions options;
  options.empty_registry_grace = std::chrono::milliseconds(300);
  auto client = MakeClient<rich::RichService>(
      MakeChannel("zk://" + zk.connect() + "/services/rich", Protocol::kGrpc, options));
  ASSERT_GE(client->Count(), 1);
  // An operator takes the only instance out of service: no call reaches it.
  Instance out = self;
  out.metadata[std::string(discovery::kStatusKey)] = "OUT_OF_SERVICE";
  ASSERT_TRUE(session->Set(registrar.path(), discovery::ToJson(out)).ok());
  std::string message;
  ASSERT_TRUE(Eventually([&] {
    message = FailureOf([&] { client->Count(); });
    return message.find("0 UP") != std::string::npos;
  })) << "the OUT_OF_SERVICE instance kept receiving calls: "
      << message;
  EXPECT_NE(message.find("lists 1 node(s), 1 readable instance(s), 0 UP"), std::string::npos)
      << message;
  // Back in service: called again.
  ASSERT_TRUE(session->Set(registrar.path(), discovery::ToJson(self)).ok());
  ASSERT_TRUE(Eventually([&] { return FailureOf([&] { client->Count(); }).empty(); }));
  // Deregistered, the last node gone: called for the grace period (registry churn can empty
  // a list for a moment), then no more.
  ASSERT_TRUE(registrar.Deregister().ok());
  ASSERT_TRUE(Eventually([&] {
    message = FailureOf([&] { client->Count(); });
    return !message.empty();
  }));
  EXPECT_NE(message.find("the registry has listed none for"), std::string::npos) << message;
}

TEST(ZkChannel, ACallWithNoRegistryToAskSaysSo) {
  ZooKeeperServer zk("zk-channel-down");
  std::string connect = zk.connect();
  zk.Stop();
  auto client = MakeClient<rich::RichService>(
      MakeChannel("zk://" + connect + "/services/rich", Protocol::kGrpc));
  ScopedCallOptions quick({std::chrono::milliseconds(300)});
  std::string message = FailureOf([&] { client->Count(); });
  EXPECT_NE(message.find("no instance known yet (ZooKeeper " + connect + " not reachable for "),
            std::string::npos)
      << message;
}

// Creates (or, with `remove`, deletes) nodes under `parent` with pipelined requests, as a fleet
// of registrations would; returns the number that failed.
int Pipelined(const std::string& connect, const std::vector<std::string>& names,
              const std::string& parent, const std::string& data, bool remove) {
  zhandle_t* zh = zookeeper_init(connect.c_str(), nullptr, 10000, nullptr, nullptr, 0);
  if (zh == nullptr || !Eventually([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; })) {
    return static_cast<int>(names.size());
  }
  std::vector<std::pair<std::string, std::string>> nodes;
  for (const std::string& name : names) nodes.emplace_back(parent + "/" + name, data);
  int failed = rpcboot::testing::PipelinedWrite(zh, nodes, !remove).failed;
  zookeeper_close(zh);
  return failed;
}

std::vector<std::string> NewIds(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(discovery::NewInstanceId());
  return ids;
}

// 10,000 registrations, then a client's first call: it waits for the first complete view and
// is served.
TEST(ZkChannel, AFirstCallWaitsForTenThousandInstancesToLoad) {
  ZooKeeperServer zk("zk-channel-fleet");
  RichServer backend;
  ASSERT_TRUE(Connect(zk.connect())->CreateParents("/services/rich/x").ok());
  // Every node points at the one real server (the data names no id: the node name is the id).
  std::string data = discovery::ToJson(backend.Registration());
  ASSERT_EQ(Pipelined(zk.connect(), NewIds(10000), "/services/rich", data, false), 0);
  auto start = std::chrono::steady_clock::now();
  auto client = MakeClient<rich::RichService>(
      MakeChannel("zk://" + zk.connect() + "/services/rich", Protocol::kThrift));
  ScopedCallOptions patient({std::chrono::seconds(60)});
  EXPECT_GE(client->Count(), 1);
  std::printf(
      "first call through 10000 instances: %.0f ms\n",
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
}

// 10% of 10,000 nodes replaced while a caller calls without pause: no call fails.
TEST(ZkChannel, ChurnOfATenthOfTenThousandNodesFailsNoCall) {
  ZooKeeperServer zk("zk-channel-churn");
  RichServer backend;
  ASSERT_TRUE(Connect(zk.connect())->CreateParents("/services/rich/x").ok());
  std::string data = discovery::ToJson(backend.Registration());
  std::vector<std::string> ids = NewIds(10000);
  ASSERT_EQ(Pipelined(zk.connect(), ids, "/services/rich", data, false), 0);
  auto client = MakeClient<rich::RichService>(
      MakeChannel("zk://" + zk.connect() + "/services/rich", Protocol::kGrpc));
  ScopedCallOptions patient({std::chrono::seconds(30)});
  ASSERT_GE(client->Count(), 1);  // loaded

  std::atomic<bool> churned{false};
  std::atomic<int64_t> ok{0}, failed{0}, after_churn{0};
  std::string first_failure;
  std::thread caller([&] {
    ScopedCallOptions per_call({std::chrono::seconds(5)});
    while (!churned.load() || after_churn.load() < 200) {
      try {
        client->Count();
        ++ok;
        if (churned.load()) ++after_churn;
      } catch (const RpcError& e) {
        if (failed++ == 0) first_failure = e.what();
      }
    }
  });
  std::vector<std::string> gone(ids.begin(), ids.begin() + 1000);
  for (int round = 0; round < 10; ++round) {  // a rolling restart, 100 at a time
    std::vector<std::string> batch(gone.begin() + round * 100, gone.begin() + (round + 1) * 100);
    EXPECT_EQ(Pipelined(zk.connect(), batch, "/services/rich", "", true), 0);
    EXPECT_EQ(Pipelined(zk.connect(), NewIds(100), "/services/rich", data, false), 0);
  }
  churned = true;
  caller.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  std::printf("%lld calls during and after the churn, %lld failed\n",
              static_cast<long long>(ok.load()), static_cast<long long>(failed.load()));
}

}  // namespace
}  // namespace rpcboot
