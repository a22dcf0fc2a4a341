// "host:port" and "static://" addresses: calls spread over the list, idempotent calls fail over
// past a dead endpoint, others fail fast, bad addresses are clear errors.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "socket_testing.h"

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

// Accepts connections, reads what arrives (the request has left the client) and closes them
// without a reply: a server that dies mid-call.
class Dropper {
 public:
  Dropper() {
    fd_ = testing::ListenOnLoopback(&port_);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int conn = ::accept(fd_, nullptr, nullptr);
        if (conn < 0) continue;
        ++accepted_;
        char buffer[4096];
        pollfd c{conn, POLLIN, 0};
        if (::poll(&c, 1, 2000) > 0) (void)::read(conn, buffer, sizeof buffer);
        ::close(conn);
      }
    });
  }
  ~Dropper() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string Endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

 private:
  int fd_;
  int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

TEST(StaticChannel, ADropAfterTheRequestLeftFailsFastUnlessIdempotent) {
  Instance a;
  Dropper dropper;
  std::string address = "static://" + dropper.Endpoint() + "," + a.Endpoint(Protocol::kThrift);
  ChannelOptions options;
  options.load_balancer = "round_robin";
  auto rich = MakeClient<rich::RichService>(MakeChannel(address, Protocol::kThrift, options));
  bool failed = false;
  for (int i = 0; i < 4 && !failed; ++i) {
    try {
      rich->Notify(1, "x", rich::Color::kRed);
    } catch (const RpcError& e) {
      failed = true;
      EXPECT_EQ(e.code(), StatusCode::kUnavailable);
      EXPECT_NE(e.message().find("not retried: Notify is not idempotent"), std::string::npos)
          << e.message();
    }
  }
  EXPECT_TRUE(failed) << "one Notify reached the dropping server and failed fast";
  // Echo is RPCBOOT_IDEMPOTENT: a fresh channel whose turn is at the dropping server moves on.
  // (Round robin goes in address order, starting with the first.)
  bool dropper_first = dropper.Endpoint() < a.Endpoint(Protocol::kThrift);
  int before = dropper.accepted();
  for (int i = 0; i < 4; ++i) {
    auto fresh = MakeClient<rich::RichService>(MakeChannel(address, Protocol::kThrift, options));
    if (!dropper_first) fresh->Notify(1, "x", rich::Color::kRed);  // to the live one
    rich::EchoRequest request;
    request.value.id = i;
    EXPECT_EQ(fresh->Echo(request).id, i);
  }
  EXPECT_EQ(dropper.accepted(), before + 4) << "each Echo went to the dropping server first";
}

class StaticChannelTest : public ::testing::TestWithParam<Protocol> {};

TEST_P(StaticChannelTest, RoundRobinTakesEachInTurn) {
  Instance a, b;
  ChannelOptions options;
  options.load_balancer = "round_robin";
  auto rich = MakeClient<rich::RichService>(MakeChannel(
      "static://" + a.Endpoint(GetParam()) + "," + b.Endpoint(GetParam()), GetParam(), options));
  for (int i = 0; i < 10; ++i) rich->Notify(1, "x", rich::Color::kRed);
  EXPECT_EQ(a.impl->notified, 5);
  EXPECT_EQ(b.impl->notified, 5);
}

TEST_P(StaticChannelTest, TheDefaultBalancerSpreadsCalls) {
  Instance a, b;
  auto rich = MakeClient<rich::RichService>(
      MakeChannel("static://" + a.Endpoint(GetParam()) + "," + b.Endpoint(GetParam()), GetParam()));
  for (int i = 0; i < 200; ++i) rich->Notify(1, "x", rich::Color::kRed);
  EXPECT_EQ(a.impl->notified + b.impl->notified, 200);
  EXPECT_GT(a.impl->notified, 40);
  EXPECT_GT(b.impl->notified, 40);
}

TEST_P(StaticChannelTest, ConsistentHashKeepsAKeyOnOneInstance) {
  Instance a, b;
  ChannelOptions options;
  options.load_balancer = "consistent_hash";
  auto rich = MakeClient<rich::RichService>(MakeChannel(
      "static://" + a.Endpoint(GetParam()) + "," + b.Endpoint(GetParam()), GetParam(), options));
  for (int key = 0; key < 20; ++key) {
    CallOptions call;
    call.request_key = "order-" + std::to_string(key);
    ScopedCallOptions scope(call);
    int a_before = a.impl->notified;
    for (int i = 0; i < 5; ++i) rich->Notify(1, "x", rich::Color::kRed);
    EXPECT_TRUE(a.impl->notified == a_before || a.impl->notified == a_before + 5) << key;
  }
  EXPECT_GT(a.impl->notified, 0);
  EXPECT_GT(b.impl->notified, 0);
}

TEST_P(StaticChannelTest, ARefusedConnectionMovesOnWhateverTheMethod) {
  Instance a;
  std::string dead = "127.0.0.1:1";  // nothing listens: the request never leaves
  ChannelOptions options;
  options.default_timeout = std::chrono::seconds(2);
  options.load_balancer = "round_robin";
  auto rich = MakeClient<rich::RichService>(
      MakeChannel("static://" + dead + "," + a.Endpoint(GetParam()), GetParam(), options));
  for (int i = 0; i < 6; ++i) {
    rich::EchoRequest request;
    request.value.id = i;
    EXPECT_EQ(rich->Echo(request).id, i);
    rich->Notify(1, "x", rich::Color::kRed);  // not idempotent, but never sent to the dead one
  }
  EXPECT_EQ(a.impl->notified, 6);
}

TEST_P(StaticChannelTest, NoLiveInstanceIsUnavailable) {
  ChannelOptions options;
  options.default_timeout = std::chrono::seconds(2);
  auto rich = MakeClient<rich::RichService>(
      MakeChannel("static://127.0.0.1:1,127.0.0.1:2", GetParam(), options));
  try {
    rich->Notify(1, "x", rich::Color::kRed);
    FAIL() << "no instance listens";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnavailable);
    EXPECT_NE(e.message().find("no instance could take the call after 2 attempt(s)"),
              std::string::npos)
        << e.message();
  }
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
  EXPECT_EQ(message("static://[::1:80"),
            "address 'static://[::1:80': endpoint '[::1:80' is not host:port (port 0-65535)");
  EXPECT_EQ(message("a/b:80"),
            "address 'a/b:80': endpoint 'a/b:80' is not host:port (port 0-65535)");
  EXPECT_EQ(message("static://"),
            "address 'static://': endpoint '' is not host:port (port 0-65535)");
  EXPECT_EQ(message("dns://h:2181"),
            "address 'dns://h:2181': unknown scheme (use host:port, static://host:port,host:port "
            "or zk://host:port/services/<app>)");
  EXPECT_EQ(message("zk://127.0.0.1:2181"),
            "address 'zk://127.0.0.1:2181': a zk:// address ends with the application's path, "
            "as in zk://127.0.0.1:2181/services/shop");
  EXPECT_EQ(message("zk://127.0.0.1:2181/services/"),
            "address 'zk://127.0.0.1:2181/services/': a zk:// address ends with the "
            "application's path, as in zk://127.0.0.1:2181/services/shop");
  EXPECT_EQ(message("zk://zk1/services/shop"),
            "address 'zk://zk1/services/shop': ZooKeeper connect string 'zk1': 'zk1' is not "
            "host:port (port 0-65535)");
  EXPECT_EQ(message("zk://127.0.0.1:2181//shop"),
            "address 'zk://127.0.0.1:2181//shop': empty path element");
  ChannelOptions options;
  options.load_balancer = "fastest";
  try {
    MakeChannel("static://a:1", Protocol::kGrpc, options);
    ADD_FAILURE() << "unknown balancer accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("unknown load balancer 'fastest' (known: "), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace rpcboot
