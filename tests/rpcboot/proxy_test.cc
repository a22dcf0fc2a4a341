// Generated client proxies and bindings without a network: in-process (the proto path gRPC
// uses) and through Thrift args/result structs (what the Thrift transport carries). Every
// method shape of the rich interface, and the error contract.
#include <gtest/gtest.h>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/binding_impl.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

using testing::AdminServiceImpl;
using testing::DeepEqual;
using testing::RichServiceImpl;

// Carries Thrift-encoded calls to the binding the way the Thrift server does: handler errors
// become the result struct's RpcError field.
class ThriftLoopbackChannel : public Channel {
 public:
  ThriftLoopbackChannel(WireFormat format, std::shared_ptr<void> impl)
      : format_(format), impl_(std::move(impl)) {}
  WireFormat format() const override { return format_; }
  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions&) override {
    try {
      return method.serve_thrift(impl_.get(), format_, request);
    } catch (const RpcError& e) {
      return internal::ThriftErrorResult(format_, e.code(), e.message());
    } catch (const std::exception& e) {
      return internal::ThriftErrorResult(format_, StatusCode::kInternal, e.what());
    }
  }

 private:
  WireFormat format_;
  std::shared_ptr<void> impl_;
};

class ProxyTest : public ::testing::TestWithParam<WireFormat> {
 protected:
  void SetUp() override {
    impl_ = std::make_shared<RichServiceImpl>();
    admin_impl_ = std::make_shared<AdminServiceImpl>();
    if (GetParam() == WireFormat::kProto) {
      rich_ = BindInProcess<rich::RichService>(impl_);
      admin_ = BindInProcess<rich::AdminService>(admin_impl_);
    } else {
      rich_ =
          MakeClient<rich::RichService>(std::make_shared<ThriftLoopbackChannel>(GetParam(), impl_));
      admin_ = MakeClient<rich::AdminService>(
          std::make_shared<ThriftLoopbackChannel>(GetParam(), admin_impl_));
    }
  }
  std::shared_ptr<RichServiceImpl> impl_;
  std::shared_ptr<AdminServiceImpl> admin_impl_;
  std::shared_ptr<rich::RichService> rich_;
  std::shared_ptr<rich::AdminService> admin_;
};

TEST_P(ProxyTest, EveryMethodShape) {
  EXPECT_EQ(rich_->Count(), 1);
  EXPECT_EQ(rich_->Count(), 2);
  rich_->Notify(5, "hello", rich::Color::kGreen);
  EXPECT_EQ(impl_->notified, 1);
  EXPECT_EQ(impl_->last_color, rich::Color::kGreen);
  std::vector<rich::Point> path = rich_->Path({{1, 2}, {3, 4}}, true);
  ASSERT_EQ(path.size(), 2u);
  EXPECT_EQ(path[0].x, 3);
  auto histogram = rich_->Histogram({"a", "b", "a"});
  EXPECT_EQ(histogram.at("a"), 2);
  EXPECT_EQ(histogram.at("b"), 1);
  EXPECT_EQ(rich_->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
  EXPECT_EQ(rich_->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  auto t = rich_->Transpose({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(t, (std::vector<std::vector<int32_t>>{{1, 4}, {2, 5}, {3, 6}}));
  EXPECT_EQ(rich_->Now().zone, "UTC");
  EXPECT_EQ(rich_->PlaceOrder(rich::Order{{{1, 2}, {3, 4}}, {}}), 6);
  admin_->Reset();
  EXPECT_EQ(admin_impl_->resets, 1);
  EXPECT_EQ(admin_->Version(), "1.2.3");
  EXPECT_EQ(admin_->SetLevel(rich::LEVEL_HIGH), rich::LEVEL_HIGH);
}

TEST_P(ProxyTest, EveryMappedTypeRoundTrips) {
  testing::Randomizer random(31);
  for (int i = 0; i < 50; ++i) {
    rich::EchoRequest request{random.Make<rich::Everything>()};
    ASSERT_TRUE(DeepEqual(rich_->Echo(request), request.value));
    rich::Scalars scalars = random.Make<rich::Scalars>();
    ASSERT_TRUE(DeepEqual(rich_->EchoScalars(scalars), scalars));
  }
}

TEST_P(ProxyTest, HandlerRpcErrorReachesTheCallerUnchanged) {
  try {
    rich_->Notify(-7, "x", rich::Color::kRed);
    FAIL() << "expected RpcError";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -7");
  }
}

TEST_P(ProxyTest, OtherExceptionsBecomeInternal) {
  try {
    rich_->Notify(0, "details", rich::Color::kRed);
    FAIL() << "expected RpcError";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_EQ(e.message(), "boom: details");
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, ProxyTest,
                         ::testing::Values(WireFormat::kProto, WireFormat::kThriftCompact,
                                           WireFormat::kThriftBinary),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case WireFormat::kProto:
                               return std::string("InProcessProto");
                             case WireFormat::kThriftCompact:
                               return std::string("ThriftCompact");
                             default:
                               return std::string("ThriftBinary");
                           }
                         });

TEST(Binding, DescribesMethodsForTransports) {
  const internal::ServiceBinding& b = internal::BindingOf<rich::RichService>();
  EXPECT_EQ(b.full_name, "rich.RichService");
  ASSERT_NE(b.Find("Echo"), nullptr);
  EXPECT_EQ(b.Find("Echo")->grpc_path, "/rich.RichService/Echo");
  EXPECT_TRUE(b.Find("Echo")->idempotent);
  EXPECT_FALSE(b.Find("Notify")->idempotent);
  EXPECT_EQ(b.Find("Nope"), nullptr);
}

TEST(Binding, UndecodableRequestIsInvalidArgument) {
  auto impl = std::make_shared<RichServiceImpl>();
  const internal::MethodBinding* echo = internal::BindingOf<rich::RichService>().Find("Echo");
  try {
    echo->serve_proto(impl.get(), std::string("\x0a\x05\x01", 3));
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("length prefix runs past the end"), std::string::npos)
        << e.message();
  }
}

}  // namespace
}  // namespace rpcboot
