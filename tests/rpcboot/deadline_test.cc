// Deadlines across hops: a call made while serving another inherits what is left of the served
// call's deadline (unless it sets its own), and a call whose inherited deadline has passed is not
// sent, on every kind of channel.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

using std::chrono::milliseconds;

TEST(Deadlines, ACallWhileServingInheritsWhatIsLeft) {
  ChannelOptions options;  // default_timeout 5 s
  EXPECT_EQ(options.TimeoutFor({}), milliseconds(5000)) << "outside a handler: the default";
  ServerContext served("grpc", "peer", ServerContext::Clock::now() + milliseconds(800));
  ServerContext::Scope scope(&served);
  milliseconds inherited = options.TimeoutFor({});
  EXPECT_GT(inherited.count(), 0);
  EXPECT_LE(inherited, milliseconds(800));
  EXPECT_EQ(options.TimeoutFor({milliseconds(3000)}), milliseconds(3000)) << "its own wins";
  ServerContext long_served("grpc", "peer", ServerContext::Clock::now() + std::chrono::hours(1));
  ServerContext::Scope inner(&long_served);
  EXPECT_EQ(options.TimeoutFor({}), milliseconds(5000)) << "at most the default";
  ServerContext no_deadline("thrift", "peer", std::nullopt);
  ServerContext::Scope none(&no_deadline);
  EXPECT_EQ(options.TimeoutFor({}), milliseconds(5000)) << "a caller without one: the default";
}

TEST(Deadlines, ACallWhoseInheritedDeadlineHasPassedIsNotSent) {
  ServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.grpc_port = 0;
  server_options.grpc_server = rpcboot::testing::TestGrpcServer();
  server_options.thrift_port = 0;
  auto impl = std::make_shared<testing::RichServiceImpl>();
  Server server(server_options);
  server.AddService<rich::RichService>(impl);
  ASSERT_TRUE(server.Start().ok());
  const std::string grpc = "127.0.0.1:" + std::to_string(server.grpc_port());
  const std::string thrift = "127.0.0.1:" + std::to_string(server.thrift_port());
  std::vector<std::pair<std::string, std::shared_ptr<rich::RichService>>> clients = {
      {"gRPC", MakeClient<rich::RichService>(MakeChannel(grpc, Protocol::kGrpc))},
      {"Thrift", MakeClient<rich::RichService>(MakeChannel(thrift, Protocol::kThrift))},
      {"static:// gRPC",
       MakeClient<rich::RichService>(MakeChannel("static://" + grpc, Protocol::kGrpc))},
      {"static:// Thrift",
       MakeClient<rich::RichService>(MakeChannel("static://" + thrift, Protocol::kThrift))},
  };
  for (auto& [name, client] : clients) EXPECT_GE(client->Count(), 1) << name;
  int64_t before = impl->count.load();
  {
    ServerContext served("thrift", "peer", ServerContext::Clock::now() - milliseconds(1));
    ServerContext::Scope scope(&served);
    for (auto& [name, client] : clients) {
      try {
        client->Count();
        ADD_FAILURE() << name << ": a call past its inherited deadline was made";
      } catch (const RpcError& e) {
        EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << name << ": " << e.what();
        EXPECT_NE(e.message().find("not sent"), std::string::npos) << e.message();
      }
    }
  }
  EXPECT_EQ(impl->count.load(), before) << "no call reached the server";
}

// Count() on A calls B, on B calls C; C holds until released and notes the deadline it got.
class HopImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override {
    if (next != nullptr) return next->Count();
    seen_remaining_ms = ServerContext::Current()->remaining().count();
    entered.fetch_add(1);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return released; });
    return 1;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
  std::shared_ptr<rich::RichService> next;
  std::atomic<int> entered{0};
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
};

class ThreeHops : public ::testing::TestWithParam<Protocol> {};

TEST_P(ThreeHops, ADeadlineSetAtTheFirstHopReachesTheThirdAndEndsTheCallThere) {
  std::vector<std::shared_ptr<HopImpl>> impls;
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<std::string> addresses;
  for (int i = 0; i < 3; ++i) {
    impls.push_back(std::make_shared<HopImpl>());
    ServerOptions options;
    options.host = "127.0.0.1";
    (GetParam() == Protocol::kGrpc ? options.grpc_port : options.thrift_port) = 0;
    servers.push_back(std::make_unique<Server>(options));
    servers.back()->AddService<rich::RichService>(impls.back());
    ASSERT_TRUE(servers.back()->Start().ok());
    int port =
        GetParam() == Protocol::kGrpc ? servers.back()->grpc_port() : servers.back()->thrift_port();
    addresses.push_back("static://127.0.0.1:" + std::to_string(port));
  }
  ChannelOptions options;  // default_timeout 5 s; the THeader carries deadlines on Thrift
  options.thrift_header = true;
  impls[0]->next = MakeClient<rich::RichService>(MakeChannel(addresses[1], GetParam(), options));
  impls[1]->next = MakeClient<rich::RichService>(MakeChannel(addresses[2], GetParam(), options));
  auto a = MakeClient<rich::RichService>(MakeChannel(addresses[0], GetParam(), options));
  try {
    ScopedCallOptions deadline({milliseconds(200)});
    a->Count();
    ADD_FAILURE() << "the call outlived its deadline";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
  }
  // The caller had its answer while C was still held: it did not wait for C's handler.
  EXPECT_EQ(impls[2]->entered.load(), 1) << "the call never reached C";
  EXPECT_FALSE(impls[2]->released);
  EXPECT_GT(impls[2]->seen_remaining_ms.load(), 0);
  EXPECT_LT(impls[2]->seen_remaining_ms.load(), 200) << "C saw more than A's deadline left";
  impls[2]->Release();
}

INSTANTIATE_TEST_SUITE_P(Protocols, ThreeHops,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) {
                           return param_info.param == Protocol::kGrpc ? "Grpc" : "Thrift";
                         });

}  // namespace
}  // namespace rpcboot
