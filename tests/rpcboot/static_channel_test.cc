// "host:port" and "static://" addresses: calls spread over the list, idempotent calls fail over
// past a dead endpoint, others fail fast, bad addresses are clear errors.
#include <gtest/gtest.h>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"

namespace rpcboot {
namespace {

struct Instance {
  std::shared_ptr<testing::RichServiceImpl> impl = std::make_shared<testing::RichServiceImpl>();
  std::unique_ptr<Server> server;
  Instance() {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.thrift_port = 0;
    server = std::make_unique<Server>(options);
    server->AddService<rich::RichService>(impl);
    EXPECT_TRUE(server->Start().ok());
  }
  std::string Endpoint(Protocol p) const {
    return "127.0.0.1:" +
           std::to_string(p == Protocol::kGrpc ? server->grpc_port() : server->thrift_port());
  }
};

class StaticChannelTest : public ::testing::TestWithParam<Protocol> {};

TEST_P(StaticChannelTest, CallsSpreadOverTheList) {
  Instance a, b;
  auto rich = MakeClient<rich::RichService>(
      MakeChannel("static://" + a.Endpoint(GetParam()) + "," + b.Endpoint(GetParam()), GetParam()));
  for (int i = 0; i < 10; ++i) rich->Notify(1, "x", rich::Color::kRed);
  EXPECT_EQ(a.impl->notified, 5);
  EXPECT_EQ(b.impl->notified, 5);
}

TEST_P(StaticChannelTest, IdempotentCallsFailOverNonIdempotentFailFast) {
  Instance a;
  std::string dead = "127.0.0.1:1";
  ChannelOptions options;
  options.default_timeout = std::chrono::seconds(2);
  auto rich = MakeClient<rich::RichService>(
      MakeChannel("static://" + dead + "," + a.Endpoint(GetParam()), GetParam(), options));
  for (int i = 0; i < 6; ++i) {
    rich::EchoRequest request;
    request.value.id = i;
    EXPECT_EQ(rich->Echo(request).id, i)
        << "Echo is RPCBOOT_IDEMPOTENT: it moves past the dead endpoint";
  }
  int unavailable = 0;
  for (int i = 0; i < 6; ++i) {
    try {
      rich->Notify(1, "x", rich::Color::kRed);  // not idempotent
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnavailable) << e.what();
      ++unavailable;
    }
  }
  EXPECT_EQ(unavailable, 3)
      << "every other non-idempotent call lands on the dead endpoint and fails fast";
  EXPECT_EQ(a.impl->notified, 3);
}

INSTANTIATE_TEST_SUITE_P(Protocols, StaticChannelTest,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) {
                           return std::string(param_info.param == Protocol::kGrpc ? "Grpc"
                                                                                  : "Thrift");
                         });

TEST(StaticChannel, BadAddressesNameWhatIsWrong) {
  auto message = [](const std::string& address) {
    try {
      MakeChannel(address, Protocol::kThrift);
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
      return e.message();
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("localhost"),
            "address 'localhost': endpoint 'localhost' is not host:port (port 0-65535)");
  EXPECT_EQ(message("static://a:1,b"),
            "address 'static://a:1,b': endpoint 'b' is not host:port (port 0-65535)");
  EXPECT_EQ(message("static://a:99999"),
            "address 'static://a:99999': endpoint 'a:99999' is not host:port (port 0-65535)");
  EXPECT_EQ(message("static://"),
            "address 'static://': endpoint '' is not host:port (port 0-65535)");
  EXPECT_EQ(message("zk://h:2181/services"),
            "address 'zk://h:2181/services': unknown scheme (use host:port or "
            "static://host:port,host:port)");
}

}  // namespace
}  // namespace rpcboot
