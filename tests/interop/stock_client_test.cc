// thrift-compiler's C++ clients, generated from rpcboot's emitted IDL, call an rpcboot server:
// plain and multiplexed (TMultiplexedProtocol), compact and binary. The generated client checks
// the reply's message name and, when it differs, skips the frame and waits for the next one, so
// a server that answers under the multiplexed name would hang it; a receive timeout turns that
// into a failure here instead of a hung test.
#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <memory>
#include <string>

#include "AdminService.h"
#include "RichService.h"
#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/server.h"

namespace rpcboot {
namespace {

using apache::thrift::protocol::TProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;

enum class Shape { kPlain, kMultiplexed };

class StockThriftClientTest : public ::testing::TestWithParam<std::tuple<Shape, bool>> {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.thrift_port = 0;
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(rich_);
    if (multiplexed()) server_->AddService<rich::AdminService>(admin_);
    ASSERT_TRUE(server_->Start().ok());

    auto socket = std::make_shared<TSocket>("127.0.0.1", server_->thrift_port());
    socket->setRecvTimeout(5000);  // a skipped reply fails the call instead of hanging
    transport_ = std::make_shared<TFramedTransport>(socket);
    if (compact()) {
      protocol_ = std::make_shared<apache::thrift::protocol::TCompactProtocol>(transport_);
    } else {
      protocol_ = std::make_shared<apache::thrift::protocol::TBinaryProtocol>(transport_);
    }
    transport_->open();
  }
  void TearDown() override {
    if (transport_) transport_->close();
  }

  bool multiplexed() const { return std::get<0>(GetParam()) == Shape::kMultiplexed; }
  bool compact() const { return std::get<1>(GetParam()); }

  std::shared_ptr<TProtocol> For(const std::string& service) {
    if (!multiplexed()) return protocol_;
    return std::make_shared<apache::thrift::protocol::TMultiplexedProtocol>(protocol_, service);
  }

  std::shared_ptr<testing::RichServiceImpl> rich_ = std::make_shared<testing::RichServiceImpl>();
  std::shared_ptr<testing::AdminServiceImpl> admin_ = std::make_shared<testing::AdminServiceImpl>();
  std::unique_ptr<Server> server_;
  std::shared_ptr<TFramedTransport> transport_;
  std::shared_ptr<TProtocol> protocol_;
};

TEST_P(StockThriftClientTest, CallsValuesAndErrors) {
  rich_thrift::RichServiceClient client(For("rich.RichService"));
  EXPECT_EQ(client.Mix(rich_thrift::Color::kRed, rich_thrift::Color::kGreen),
            rich_thrift::Color::kBlue);
  EXPECT_EQ(client.Count(), 1);
  EXPECT_EQ(client.Count(), 2);
  std::vector<rich_thrift::Point> points(2);
  points[0].x = 1;
  points[1].x = 3;
  std::vector<rich_thrift::Point> path;
  client.Path(path, points, true);
  ASSERT_EQ(path.size(), 2u);
  EXPECT_EQ(path[0].x, 3);
  std::map<std::string, int32_t> histogram;
  client.Histogram(histogram, {"a", "b", "a"});
  EXPECT_EQ(histogram.at("a"), 2);
  client.Notify(7, "hello", rich_thrift::Color::kGreen);
  EXPECT_EQ(rich_->notified.load(), 1);
  try {
    client.Notify(-3, "x", rich_thrift::Color::kRed);
    FAIL() << "expected the declared RpcError exception";
  } catch (const rich_thrift::RpcError& e) {
    EXPECT_EQ(e.code, static_cast<int32_t>(StatusCode::kFailedPrecondition));
    EXPECT_EQ(e.message, "negative id -3");
  }
  // The connection is still in step after an error: the next call gets its own reply.
  EXPECT_EQ(client.Count(), 3);
}

// Two services on one port, one connection: only the multiplexed protocol can say which.
class StockThriftMultiplexedTest : public StockThriftClientTest {};

TEST_P(StockThriftMultiplexedTest, SecondServiceOnTheSameConnection) {
  rich_thrift::RichServiceClient rich(For("rich.RichService"));
  rich_thrift::AdminServiceClient admin(For("rich.AdminService"));
  std::string version;
  admin.Version(version);
  EXPECT_EQ(version, "1.2.3");
  admin.Reset();
  EXPECT_EQ(admin_->resets.load(), 1);
  EXPECT_EQ(rich.Count(), 1);
  EXPECT_EQ(admin.SetLevel(rich_thrift::Level::LEVEL_HIGH), rich_thrift::Level::LEVEL_HIGH);
}

INSTANTIATE_TEST_SUITE_P(
    PlainAndMultiplexed, StockThriftClientTest,
    ::testing::Combine(::testing::Values(Shape::kPlain, Shape::kMultiplexed), ::testing::Bool()),
    [](const auto& param_info) {
      return std::string(std::get<0>(param_info.param) == Shape::kPlain ? "Plain" : "Multiplexed") +
             (std::get<1>(param_info.param) ? "Compact" : "Binary");
    });

INSTANTIATE_TEST_SUITE_P(CompactAndBinary, StockThriftMultiplexedTest,
                         ::testing::Combine(::testing::Values(Shape::kMultiplexed),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::string(std::get<1>(param_info.param) ? "Compact" : "Binary");
                         });

}  // namespace
}  // namespace rpcboot
