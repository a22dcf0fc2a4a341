// Apache Curator's own JsonInstanceSerializer (Debian's curator jars) reads the instance JSON
// rpcboot writes, with Spring's payload class, and rpcboot reads what Curator writes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "discovery/instance.h"
#include "discovery/registrar.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "tests/discovery/java_testing.h"
#include "tests/discovery/process_testing.h"
#include "tests/discovery/zookeeper_testing.h"

namespace rpcboot::discovery {
namespace {

using rpcboot::testing::RunShell;

std::string ClassPath(const std::string& classes) {
  return rpcboot::testing::JavaClassPath(classes);
}

class CuratorJson : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("rpcboot_curator_" + std::to_string(getpid())));
    setup_error_ = rpcboot::testing::CompileJavaChecks(RPCBOOT_JAVA_SOURCES, *dir_ + "/classes");
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  std::pair<int, std::string> Java(const std::string& args,
                                   const std::string& main = "CuratorJsonCheck") {
    return RunShell("java -cp " + ClassPath(*dir_ + "/classes") + " " + main + " " + args);
  }

  static std::string* dir_;
  static std::string setup_error_;
};
std::string* CuratorJson::dir_ = nullptr;
std::string CuratorJson::setup_error_;

TEST_F(CuratorJson, CuratorReadsWhatRpcbootWrites) {
  Instance i;
  i.name = "shop";
  i.id = NewInstanceId();
  i.address = "10.1.2.3";
  i.port = 9091;
  i.registration_time_ms = 1795422103964;
  i.metadata = {{"instance_status", "UP"},
                {"rpcboot.protocols", "grpc,thrift"},
                {"rpcboot.grpc.port", "9091"}};
  std::string file = *dir_ + "/rpcboot.json";
  std::ofstream(file) << ToJson(i);
  auto [rc, out] = Java("read " + file);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("name=shop\n"), std::string::npos) << out;
  EXPECT_NE(out.find("id=" + i.id + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("address=10.1.2.3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("port=9091\n"), std::string::npos) << out;
  EXPECT_NE(out.find("sslPort=null\n"), std::string::npos) << out;
  EXPECT_NE(out.find("type=DYNAMIC\n"), std::string::npos) << out;
  EXPECT_NE(out.find("uri=http://10.1.2.3:9091\n"), std::string::npos) << out;
  EXPECT_NE(out.find("payload.id=shop-" + i.id + "\n"), std::string::npos) << out;
  EXPECT_NE(
      out.find(
          "metadata={instance_status=UP, rpcboot.grpc.port=9091, rpcboot.protocols=grpc,thrift}"),
      std::string::npos)
      << out;
}

TEST_F(CuratorJson, RpcbootReadsWhatCuratorWrites) {
  std::string file = *dir_ + "/curator.json";
  auto [rc, out] = Java("write " + file);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream in(file);
  std::stringstream json;
  json << in.rdbuf();
  absl::StatusOr<Instance> i = ParseInstance(json.str());
  ASSERT_TRUE(i.ok()) << i.status() << "\n" << json.str();
  EXPECT_EQ(i->name, "shop");
  EXPECT_EQ(i->id, "java-1");
  EXPECT_EQ(i->address, "127.0.0.7");
  EXPECT_EQ(i->port, 8080);
  EXPECT_TRUE(i->IsUp());
  EXPECT_EQ(i->metadata.at("instance_status"), "UP");
  EXPECT_EQ(i->PortFor("grpc"), std::nullopt) << "a Java instance without rpcboot metadata";
  // Byte for byte the same layout as rpcboot's own writer (apart from values).
  Instance same = *i;
  EXPECT_EQ(ToJson(same), json.str());
}

TEST_F(CuratorJson, CuratorServiceDiscoveryListsRpcbootInstances) {
  rpcboot::testing::ZooKeeperServer zk("curator-list");
  auto session = std::make_shared<Session>(SessionOptions{zk.connect()});
  session->Start();
  ASSERT_TRUE(session->WaitConnected(std::chrono::seconds(10)));
  std::vector<std::unique_ptr<Registrar>> registrars;
  std::vector<std::string> ids;
  for (int port : {9091, 9092}) {
    Instance i;
    i.name = "shop";
    i.id = NewInstanceId();
    i.address = "127.0.0.1";
    i.port = port;
    i.metadata = {{"instance_status", "UP"},
                  {"rpcboot.protocols", "grpc"},
                  {"rpcboot.grpc.port", std::to_string(port)},
                  {"rpcboot.services", "shop.ShopService"}};
    ids.push_back(i.id);
    registrars.push_back(std::make_unique<Registrar>(session, "/services", i));
    ASSERT_TRUE(registrars.back()->Register().ok());
  }
  auto [rc, out] = Java("list " + zk.connect() + " /services shop", "CuratorRegistryCheck");
  ASSERT_EQ(rc, 0) << out;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    std::string port = std::to_string(9091 + k);
    EXPECT_NE(out.find(ids[k] + " 127.0.0.1 " + port + " {instance_status=UP, rpcboot.grpc.port=" +
                       port + ", rpcboot.protocols=grpc, rpcboot.services=shop.ShopService}"),
              std::string::npos)
        << out;
  }
}

TEST_F(CuratorJson, RpcbootListsAnInstanceCuratorRegistered) {
  rpcboot::testing::ZooKeeperServer zk("curator-register");
  auto session = std::make_shared<Session>(SessionOptions{zk.connect()});
  session->Start();
  ASSERT_TRUE(session->WaitConnected(std::chrono::seconds(10)));
  Resolver resolver(session, "/services");
  resolver.Watch("shop", [](const InstanceList&) {});
  // The Java process stays registered while its stdin is open.
  std::string command = "java -cp " + ClassPath(*dir_ + "/classes") +
                        " CuratorRegistryCheck register " + zk.connect() +
                        " /services shop java-7 7070";
  FILE* java = popen(command.c_str(), "w");
  ASSERT_NE(java, nullptr);
  bool listed = rpcboot::testing::Eventually([&] { return resolver.Current("shop")->size() == 1; },
                                             std::chrono::seconds(30));
  InstanceList list = resolver.Current("shop");
  pclose(java);  // closes its stdin: it unregisters and exits
  ASSERT_TRUE(listed) << "Curator's instance never reached rpcboot's view";
  const Instance& i = list->front();
  EXPECT_EQ(i.id, "java-7");
  EXPECT_EQ(i.address, "127.0.0.1");
  EXPECT_EQ(i.port, 7070);
  EXPECT_EQ(i.PortFor("grpc"), 7070);
  EXPECT_TRUE(i.IsUp());
  EXPECT_TRUE(rpcboot::testing::Eventually([&] { return resolver.Current("shop")->empty(); }));
}

// Curator's ServiceCache and ServiceProvider (curator-x-discovery over curator-recipes) follow
// rpcboot's registrations: instances appear as they register and go as they deregister, and the
// provider picks only registered ones.
TEST_F(CuratorJson, CuratorServiceCacheAndProviderSeeRpcbootInstancesComeAndGo) {
  rpcboot::testing::ZooKeeperServer zk("curator-cache");
  auto session = std::make_shared<Session>(SessionOptions{zk.connect()});
  session->Start();
  ASSERT_TRUE(session->WaitConnected(std::chrono::seconds(10)));
  std::string out_file = *dir_ + "/cache.txt";
  std::filesystem::remove(out_file);
  rpcboot::testing::ChildProcess java(
      {"/usr/bin/java", "-cp", ClassPath(*dir_ + "/classes"), "CuratorRegistryCheck", "watch",
       zk.connect(), "/services", "shop", out_file},
      *dir_ + "/java_watch.log");
  auto lines = [&] {
    std::ifstream in(out_file);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  auto register_one = [&](int port) {
    Instance i;
    i.name = "shop";
    i.id = "rpcboot-" + std::to_string(port);
    i.address = "127.0.0.1";
    i.port = port;
    i.metadata = {{"instance_status", "UP"},
                  {"rpcboot.protocols", "grpc"},
                  {"rpcboot.grpc.port", std::to_string(port)}};
    auto registrar = std::make_unique<Registrar>(session, "/services", i);
    EXPECT_TRUE(registrar->Register().ok());
    return registrar;
  };
  // The Java side is up once it reports its empty view.
  ASSERT_TRUE(rpcboot::testing::Eventually(
      [&] { return lines().find("cache= provider= pick=none\n") != std::string::npos; },
      std::chrono::seconds(60)))
      << lines();
  auto a = register_one(9101);
  auto b = register_one(9102);
  const std::string both =
      "cache=rpcboot-9101,rpcboot-9102 provider=rpcboot-9101,rpcboot-9102 pick=rpcboot-910";
  EXPECT_TRUE(rpcboot::testing::Eventually([&] { return lines().find(both) != std::string::npos; },
                                           std::chrono::seconds(30)))
      << lines();
  ASSERT_TRUE(a->Deregister().ok());
  const std::string one = "cache=rpcboot-9102 provider=rpcboot-9102 pick=rpcboot-9102\n";
  EXPECT_TRUE(rpcboot::testing::Eventually([&] { return lines().find(one) != std::string::npos; },
                                           std::chrono::seconds(30)))
      << lines();
  ASSERT_TRUE(b->Deregister().ok());
  EXPECT_TRUE(rpcboot::testing::Eventually(
      [&] {
        std::string text = lines();
        const std::string empty = "cache= provider= pick=none\n";
        return text.size() > empty.size() &&
               text.compare(text.size() - empty.size(), empty.size(), empty) == 0;
      },
      std::chrono::seconds(30)))
      << lines();
}  // the Java process is killed and reaped here

}  // namespace
}  // namespace rpcboot::discovery
