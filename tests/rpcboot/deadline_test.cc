// Deadlines across hops: a call made while serving another inherits what is left of the served
// call's deadline (unless it sets its own), and a call whose inherited deadline has passed is not
// sent, on every kind of channel.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"

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

}  // namespace
}  // namespace rpcboot
