// zk:// channels against a real ZooKeeper server and a real rpcboot server: only UP instances
// are called (the last one too; a vanished last node after a grace period), a call waits for a
// large application's first view, and a call that finds no instance says why.
#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

#include "common_types.rpcboot.h"
#include "discovery/registrar.h"
#include "discovery/session.h"
#include "gtest/gtest.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
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
    return !message.empty();
  })) << "the OUT_OF_SERVICE instance kept receiving calls";
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

// 10,000 registrations (pipelined creates), then a client's first call: it waits for the first
// complete view and is served.
TEST(ZkChannel, AFirstCallWaitsForTenThousandInstancesToLoad) {
  constexpr int kInstances = 10000;
  ZooKeeperServer zk("zk-channel-fleet");
  RichServer backend;
  auto admin = Connect(zk.connect());
  ASSERT_TRUE(admin->CreateParents("/services/rich/x").ok());
  zhandle_t* zh = zookeeper_init(zk.connect().c_str(), nullptr, 10000, nullptr, nullptr, 0);
  ASSERT_NE(zh, nullptr);
  ASSERT_TRUE(Eventually([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }));
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    int failed = 0;
  } pending;
  auto done = [](int rc, const char*, const void* data) {
    auto* p = static_cast<Pending*>(const_cast<void*>(data));
    std::lock_guard<std::mutex> lock(p->mu);
    if (rc != ZOK) ++p->failed;
    --p->in_flight;
    p->cv.notify_all();
  };
  for (int i = 0; i < kInstances; ++i) {
    std::unique_lock<std::mutex> lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.in_flight < 500; });
    ++pending.in_flight;
    lock.unlock();
    Instance instance = backend.Registration();  // all pointing at the one real server
    std::string json = discovery::ToJson(instance);
    ASSERT_EQ(zoo_acreate(zh, ("/services/rich/" + instance.id).c_str(), json.data(),
                          static_cast<int>(json.size()), &ZOO_OPEN_ACL_UNSAFE, 0, done, &pending),
              ZOK);
  }
  {
    std::unique_lock<std::mutex> lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.in_flight == 0; });
    ASSERT_EQ(pending.failed, 0);
  }
  zookeeper_close(zh);
  auto start = std::chrono::steady_clock::now();
  auto client = MakeClient<rich::RichService>(
      MakeChannel("zk://" + zk.connect() + "/services/rich", Protocol::kThrift));
  ScopedCallOptions patient({std::chrono::seconds(60)});
  EXPECT_GE(client->Count(), 1);
  std::printf(
      "first call through %d instances: %.0f ms\n", kInstances,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace
}  // namespace rpcboot
