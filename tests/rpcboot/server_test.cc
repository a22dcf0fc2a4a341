// One implementation served over gRPC and Thrift (compact and binary) on real loopback sockets,
// called through generated proxies: every method shape and mapped type, the error contract,
// deadlines, concurrency, health, and a graceful stop.
#include "rpcboot/server.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server_context.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

using testing::DeepEqual;
using testing::RichServiceImpl;

enum class Wire { kGrpc, kThriftCompact, kThriftBinary };

class ServerTest : public ::testing::TestWithParam<Wire> {
 protected:
  void SetUp() override {
    impl_ = std::make_shared<RichServiceImpl>();
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.thrift_port = 0;
    options.shutdown_grace = std::chrono::seconds(3);
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->grpc_port(), 0);
    ASSERT_GT(server_->thrift_port(), 0);
    channel_ = MakeChannel();
    rich_ = MakeClient<rich::RichService>(channel_);
  }
  void TearDown() override { server_->Shutdown(); }

  std::shared_ptr<Channel> MakeChannel() {
    ChannelOptions options;
    switch (GetParam()) {
      case Wire::kGrpc:
        return MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()), options);
      case Wire::kThriftCompact:
        return MakeThriftChannel("127.0.0.1:" + std::to_string(server_->thrift_port()), options);
      case Wire::kThriftBinary:
        options.thrift_format = WireFormat::kThriftBinary;
        return MakeThriftChannel("127.0.0.1:" + std::to_string(server_->thrift_port()), options);
    }
    return nullptr;
  }

  std::shared_ptr<RichServiceImpl> impl_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<Channel> channel_;
  std::shared_ptr<rich::RichService> rich_;
};

TEST_P(ServerTest, EveryMethodShape) {
  EXPECT_EQ(rich_->Count(), 1);
  rich_->Notify(5, "hello", rich::Color::kGreen);
  EXPECT_EQ(impl_->last_color, rich::Color::kGreen);
  EXPECT_EQ(rich_->Path({{1, 2}, {3, 4}}, true)[0].x, 3);
  EXPECT_EQ(rich_->Histogram({"a", "b", "a"}).at("a"), 2);
  EXPECT_EQ(rich_->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  EXPECT_EQ(rich_->Transpose({{1, 2}, {3, 4}}),
            (std::vector<std::vector<int32_t>>{{1, 3}, {2, 4}}));
  EXPECT_EQ(rich_->Now().seconds, 1795422103);
  EXPECT_EQ(rich_->PlaceOrder(rich::Order{{{1, 2}, {3, 4}}, {}}), 6);
}

TEST_P(ServerTest, EveryMappedTypeRoundTrips) {
  testing::Randomizer random(41);
  for (int i = 0; i < 30; ++i) {
    rich::EchoRequest request{random.Make<rich::Everything>()};
    ASSERT_TRUE(DeepEqual(rich_->Echo(request), request.value)) << i;
  }
}

TEST_P(ServerTest, ErrorsKeepCodeAndMessage) {
  try {
    rich_->Notify(-3, "x", rich::Color::kRed);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -3");
  }
  try {
    rich_->Notify(0, "why", rich::Color::kRed);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_EQ(e.message(), "boom: why");
  }
}

TEST_P(ServerTest, UnknownMethodIsUnimplemented) {
  auto admin = MakeClient<rich::AdminService>(channel_);  // not served here
  try {
    admin->Reset();
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnimplemented) << e.what();
  }
}

TEST_P(ServerTest, DeadlineExpiresAsDeadlineExceeded) {
  ScopedCallOptions options({std::chrono::milliseconds(100)});
  try {
    rich_->Notify(1000 + 600, "slow", rich::Color::kRed);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
  }
  EXPECT_EQ(rich_->Count(), 1) << "the channel still works after a deadline";
}

TEST_P(ServerTest, ConcurrentCallersGetTheirOwnAnswers) {
  constexpr int kCallers = 32, kCalls = 40;
  std::vector<std::future<int>> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.push_back(std::async(std::launch::async, [this, c] {
      int wrong = 0;
      for (int i = 0; i < kCalls; ++i) {
        std::vector<rich::Point> in{{c, i}, {i, c}};
        auto out = rich_->Path(in, true);
        if (out.size() != 2 || out[0].x != i || out[0].y != c || out[1].x != c) ++wrong;
      }
      return wrong;
    }));
  }
  for (auto& f : callers) EXPECT_EQ(f.get(), 0);
}

TEST_P(ServerTest, ShutdownLetsInFlightCallsFinish) {
  auto slow = std::async(std::launch::async, [this] {
    rich_->Notify(1000 + 300, "in flight", rich::Color::kGreen);
    return true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_->Shutdown();
  EXPECT_TRUE(slow.get());
  EXPECT_EQ(impl_->last_color, rich::Color::kGreen);
  EXPECT_THROW(rich_->Count(), RpcError) << "no new calls after shutdown";
}

TEST_P(ServerTest, AsyncCallsReturnFuturesWithResultsAndErrors) {
  std::vector<std::future<rich::Color>> mixes;
  for (int i = 0; i < 16; ++i) {
    mixes.push_back(
        CallAsync([this] { return rich_->Mix(rich::Color::kRed, rich::Color::kGreen); }));
  }
  auto failing = CallAsync([this] { rich_->Notify(-9, "async", rich::Color::kRed); });
  for (auto& f : mixes) EXPECT_EQ(f.get(), rich::Color::kBlue);
  try {
    failing.get();
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -9");
  }
  ScopedCallOptions short_deadline({std::chrono::milliseconds(50)});
  auto slow = CallAsync([this] { rich_->Notify(1000 + 400, "slow", rich::Color::kRed); });
  try {
    slow.get();
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded)
        << "the caller's options travel with the async call";
  }
}

INSTANTIATE_TEST_SUITE_P(Wires, ServerTest,
                         ::testing::Values(Wire::kGrpc, Wire::kThriftCompact, Wire::kThriftBinary),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case Wire::kGrpc:
                               return std::string("Grpc");
                             case Wire::kThriftCompact:
                               return std::string("ThriftCompact");
                             default:
                               return std::string("ThriftBinary");
                           }
                         });

TEST(Server, BothProtocolsServeTheSameObjectAtOnce) {
  auto impl = std::make_shared<RichServiceImpl>();
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.thrift_port = 0;
  Server server(options);
  server.AddService<rich::RichService>(impl);
  server.AddService<rich::AdminService>(std::make_shared<testing::AdminServiceImpl>());
  ASSERT_TRUE(server.Start().ok());
  auto over_grpc = MakeClient<rich::RichService>(
      MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port())));
  auto over_thrift = MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  EXPECT_EQ(over_grpc->Count(), 1);
  EXPECT_EQ(over_thrift->Count(), 2);
  EXPECT_EQ(over_grpc->Count(), 3);
  auto admin = MakeClient<rich::AdminService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  EXPECT_EQ(admin->Version(), "1.2.3") << "two services on one Thrift port";
}

// gRPC carries the caller's deadline; the handler sees the time left. (Thrift's framed
// transport has no place for it; THeader support is planned.)
TEST(Server, GrpcHandlerSeesTheRemainingTime) {
  auto impl = std::make_shared<RichServiceImpl>();
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  Server server(options);
  server.AddService<rich::RichService>(impl);
  ASSERT_TRUE(server.Start().ok());
  auto rich = MakeClient<rich::RichService>(
      MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port())));
  ScopedCallOptions deadline({std::chrono::milliseconds(1500)});
  rich->Notify(2, "context", rich::Color::kRed);
  // About the caller's 1.5 s, less transit; gRPC rounds deadlines, so allow a little over.
  EXPECT_GT(impl->seen_remaining_ms.load(), 500);
  EXPECT_LE(impl->seen_remaining_ms.load(), 1600);
}

TEST(Server, ThriftHeaderCarriesTheDeadlineToTheHandler) {
  auto impl = std::make_shared<RichServiceImpl>();
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  Server server(options);
  server.AddService<rich::RichService>(impl);
  ASSERT_TRUE(server.Start().ok());
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    ChannelOptions channel_options;
    channel_options.thrift_header = true;
    channel_options.thrift_format = format;
    auto rich = MakeClient<rich::RichService>(
        MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port()), channel_options));
    impl->seen_remaining_ms = -1;
    {
      ScopedCallOptions deadline({std::chrono::milliseconds(1500)});
      rich->Notify(2, "context", rich::Color::kRed);
    }
    EXPECT_GT(impl->seen_remaining_ms.load(), 500);
    EXPECT_LE(impl->seen_remaining_ms.load(), 1500);
    EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
    try {
      rich->Notify(-1, "x", rich::Color::kRed);
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    }
  }
  // Without THeader, plain framed Thrift has no place for a deadline: the handler sees none.
  auto plain = MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  plain->Notify(2, "context", rich::Color::kRed);
  EXPECT_GT(impl->seen_remaining_ms.load(), 1000LL * 3600) << "no deadline: hours remain";
}

TEST(Server, PortInUseIsAClearError) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  Server first(options);
  first.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  ASSERT_TRUE(first.Start().ok());
  options.thrift_port = first.thrift_port();
  Server second(options);
  second.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(
      status.message().find("cannot listen on 127.0.0.1:" + std::to_string(first.thrift_port())),
      std::string::npos)
      << status;
}

TEST(Server, NoReachableServerIsUnavailable) {
  for (auto channel : {MakeGrpcChannel("127.0.0.1:1", {std::chrono::milliseconds(500)}),
                       MakeThriftChannel("127.0.0.1:1", {std::chrono::milliseconds(500)})}) {
    auto rich = MakeClient<rich::RichService>(channel);
    try {
      rich->Count();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_TRUE(e.code() == StatusCode::kUnavailable || e.code() == StatusCode::kDeadlineExceeded)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace rpcboot
