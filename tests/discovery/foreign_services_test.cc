// Services rpcboot did not write, found through ZooKeeper and called by rpcboot's zk:// channels:
// a stock Python server (thrift-compiler's threaded framed compact server and grpcio, from the
// emitted rich IDL) registered by kazoo, and the same ports registered by Apache Curator in
// Java, each with and without rpcboot metadata.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "rich_service.rpcboot.h"
#include "rpcboot/client.h"
#include "tests/discovery/java_testing.h"
#include "tests/discovery/process_testing.h"
#include "tests/discovery/zookeeper_testing.h"

namespace rpcboot {
namespace {

using rpcboot::testing::Eventually;
using rpcboot::testing::RunShell;

class ForeignServices : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("rpcboot_foreign_" + std::to_string(getpid())));
    std::filesystem::remove_all(*dir_);
    setup_error_ = rpcboot::testing::CompileJavaChecks(RPCBOOT_JAVA_SOURCES, *dir_ + "/classes");
    if (!setup_error_.empty()) return;
    // Stock Python code from the emitted IDL, as run_python_interop.sh makes it.
    std::string idl = RPCBOOT_RICH_IDL_DIR;
    auto [rc, out] = RunShell(
        "mkdir -p " + *dir_ + "/gen/thrift " + *dir_ + "/gen/proto && for f in " + idl +
        "/*.thrift; do thrift --gen py -out " + *dir_ + "/gen/thrift $f || exit 1; done && " +
        "protoc -I" + idl + " --python_out=" + *dir_ + "/gen/proto --grpc_out=" + *dir_ +
        "/gen/proto --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin " + idl + "/*.proto");
    if (rc != 0) {
      setup_error_ =
          "generating Python code failed (apt-get install thrift-compiler protobuf-compiler "
          "protobuf-compiler-grpc): " +
          out;
    }
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static std::string* dir_;
  static std::string setup_error_;
};
std::string* ForeignServices::dir_ = nullptr;
std::string ForeignServices::setup_error_;

// Calls Mix through `channel` until it answers (registrations land asynchronously); returns the
// last error message, "" on success.
std::string CallUntilAnswered(const std::shared_ptr<Channel>& channel) {
  auto rich = MakeClient<rich::RichService>(channel);
  std::string error;
  Eventually(
      [&] {
        try {
          EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
          error.clear();
          return true;
        } catch (const RpcError& e) {
          error = e.what();
          return false;
        }
      },
      std::chrono::seconds(20));
  return error;
}

TEST_F(ForeignServices, StockServersRegisteredByKazooAndCuratorAreCalled) {
  rpcboot::testing::ZooKeeperServer zk("foreign");
  std::string ready = *dir_ + "/ready";
  std::filesystem::remove(ready);
  rpcboot::testing::ChildProcess python(
      {"/usr/bin/python3", std::string(RPCBOOT_INTEROP_DIR) + "/python_stock_server.py",
       *dir_ + "/gen", zk.connect(), ready},
      *dir_ + "/python.log");
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(ready); }, std::chrono::seconds(60)))
      << "the stock Python server never registered; its log: "
      << RunShell("cat " + *dir_ + "/python.log").second;
  int grpc_port = 0, thrift_port = 0;
  {
    std::ifstream in(ready);
    std::string grpc_field, thrift_field;
    in >> grpc_field >> thrift_field;
    grpc_port = std::stoi(grpc_field.substr(5));
    thrift_port = std::stoi(thrift_field.substr(7));
  }
  // The same two ports registered by Curator: with rpcboot's gRPC keys, and as a plain Spring
  // service (port = the Thrift port). Each Java process stays registered while its stdin is open.
  std::string java = "java -cp " + rpcboot::testing::JavaClassPath(*dir_ + "/classes") +
                     " CuratorRegistryCheck register " + zk.connect() + " /services ";
  FILE* curator = popen((java + "stock-curator java-1 " + std::to_string(grpc_port)).c_str(), "w");
  FILE* curator_plain = popen(
      (java + "stock-curator-plain java-2 " + std::to_string(thrift_port) + " plain").c_str(), "w");
  ASSERT_NE(curator, nullptr);
  ASSERT_NE(curator_plain, nullptr);
  std::string base = "zk://" + zk.connect() + "/services/";
  ChannelOptions foreign;
  foreign.call_foreign_instances = true;

  // rpcboot metadata from kazoo ("thrift, GRPC"), both protocols; plain framed on Thrift.
  EXPECT_EQ(CallUntilAnswered(MakeChannel(base + "stock-kazoo", Protocol::kThrift)), "");
  EXPECT_EQ(CallUntilAnswered(MakeChannel(base + "stock-kazoo", Protocol::kGrpc)), "");
  auto lookup = MakeClient<rich::RichService>(MakeChannel(base + "stock-kazoo", Protocol::kGrpc));
  EXPECT_EQ(lookup->Lookup(5), std::optional<std::string>("python grpc 5"));
  EXPECT_EQ(lookup->Lookup(std::nullopt), std::nullopt);
  // grpc-spring-boot-starter's gRPC_port: called over gRPC without any setting.
  EXPECT_EQ(CallUntilAnswered(MakeChannel(base + "stock-starter", Protocol::kGrpc)), "");
  // Curator with rpcboot's keys.
  EXPECT_EQ(CallUntilAnswered(MakeChannel(base + "stock-curator", Protocol::kGrpc)), "");
  // No rpcboot metadata (kazoo and Curator): not called by default, and the error says why and
  // what to set; called at their port with foreign_instances.
  for (const char* app : {"stock-plain", "stock-curator-plain"}) {
    auto plain = MakeClient<rich::RichService>(MakeChannel(base + app, Protocol::kThrift));
    std::string error;
    EXPECT_TRUE(Eventually(
        [&] {
          try {
            plain->Mix(rich::Color::kRed, rich::Color::kGreen);
            error = "called";
          } catch (const RpcError& e) {
            error = e.what();
          }
          return error.find("1 carry no rpcboot metadata") != std::string::npos;
        },
        std::chrono::seconds(20)))
        << app << ": " << error;
    EXPECT_NE(error.find("foreign_instances: true"), std::string::npos) << error;
    EXPECT_EQ(CallUntilAnswered(MakeChannel(base + app, Protocol::kThrift, foreign)), "") << app;
  }
  pclose(curator);  // closes their stdin: they unregister and exit
  pclose(curator_plain);
}  // the Python server is killed and reaped here; the ZooKeeper server stops

}  // namespace
}  // namespace rpcboot
