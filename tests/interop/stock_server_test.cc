// rpcboot proxies call stock servers generated from rpcboot's own emitted IDL: a thrift-compiler
// C++ server (TThreadedServer, framed, compact and binary) and a protoc + grpc_cpp_plugin gRPC
// server. Values and errors arrive as the interface promises.
#include <grpc/compression.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>

#include <mutex>
#include <string>
#include <vector>

#include "RichService.h"
#include "common_types.rpcboot.h"
#include "rich_service.grpc.pb.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/client.h"
#include "stock_services.h"

namespace rpcboot {
namespace {

using testing::StockGrpcService;
using testing::StockThriftHandler;
using testing::StockThriftServer;

void CheckAgainstStockThrift(const std::shared_ptr<rich::RichService>& rich) {
  EXPECT_EQ(rich->Count(), 1);
  EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  EXPECT_EQ(rich->Path({{1, 2}, {3, 4}}, true)[0].x, 3);
  EXPECT_EQ(rich->Histogram({"x", "x"}).at("x"), 2);
  EXPECT_EQ(rich->Transpose({{1, 2}, {3, 4}}), (std::vector<std::vector<int32_t>>{{1, 3}, {2, 4}}));
  EXPECT_EQ(rich->Now().zone, "stock");
  EXPECT_EQ(rich->Lookup(7), std::optional<std::string>("stock 7"));
  EXPECT_EQ(rich->Lookup(-1), std::nullopt);
  std::optional<rich::Point> near = rich->Nearest(rich::Point{5, 6});
  ASSERT_TRUE(near.has_value());
  EXPECT_EQ(near->x, 4);
  rich::Scalars s;
  s.u8 = 255;
  s.u64 = ~uint64_t{0};
  s.text = "日本";
  s.tier = rich::Tier::kGold;
  rich::Scalars back = rich->EchoScalars(s);
  EXPECT_EQ(back.u8, 255);
  EXPECT_EQ(back.u64, ~uint64_t{0});
  EXPECT_EQ(back.text, "日本");
  EXPECT_EQ(back.tier, rich::Tier::kGold);
  try {
    rich->Notify(-1, "shop 7", rich::Color::kRed);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kNotFound);
    EXPECT_EQ(e.message(), "stock thrift: no shop 7");
  }
}

TEST(StockServers, RpcbootProxyCallsThriftCompilerServerCompact) {
  StockThriftServer<apache::thrift::protocol::TCompactProtocolFactory> server;
  ASSERT_GT(server.port(), 0);
  CheckAgainstStockThrift(MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.port()))));
}

TEST(StockServers, RpcbootProxyCallsThriftCompilerServerBinary) {
  StockThriftServer<apache::thrift::protocol::TBinaryProtocolFactory> server;
  ASSERT_GT(server.port(), 0);
  ChannelOptions options;
  options.thrift_format = WireFormat::kThriftBinary;
  CheckAgainstStockThrift(MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.port()), options)));
}

// A stock server built on TMultiplexedProcessor knows only multiplexed names
// ("rich.RichService:Count"): ChannelOptions::thrift_multiplexed sends them from the first call.
TEST(StockServers, RpcbootProxyCallsAStockMultiplexedThriftServer) {
  StockThriftServer<apache::thrift::protocol::TCompactProtocolFactory> server(/*multiplexed=*/true);
  ASSERT_GT(server.port(), 0);
  ChannelOptions options;
  options.thrift_multiplexed = true;
  CheckAgainstStockThrift(MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.port()), options)));
}

TEST(StockServers, UnknownMethodOnAStockThriftServerIsUnimplemented) {
  StockThriftServer<apache::thrift::protocol::TCompactProtocolFactory> server;
  auto admin = MakeClient<rich::AdminService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.port())));
  try {
    admin->Reset();
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnimplemented) << e.what();
  }
}

// The stock service's full name is rich_pb.RichService (renamed package); a proxy addresses
// rich.RichService. A channel that rewrites the path tells the two apart honestly.
class Renaming : public Channel {
 public:
  explicit Renaming(std::shared_ptr<Channel> inner) : inner_(std::move(inner)) {}
  WireFormat format() const override { return WireFormat::kProto; }
  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    internal::MethodBinding renamed = method;
    renamed.grpc_path = "/rich_pb.RichService/" + method.name;
    return inner_->Call(renamed, request, options);
  }

 private:
  std::shared_ptr<Channel> inner_;
};

TEST(StockServers, RpcbootProxyCallsGrpcCppPluginServer) {
  StockGrpcService service;
  int port = 0;
  auto server = testing::StartStockGrpcServer(&service, &port);
  ASSERT_GT(port, 0);
  auto rich = MakeClient<rich::RichService>(
      std::make_shared<Renaming>(MakeGrpcChannel("127.0.0.1:" + std::to_string(port))));
  EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  auto path = rich->Path({{1, 2}, {3, 4}}, false);
  ASSERT_EQ(path.size(), 2u);
  EXPECT_EQ(path[0].x, 3);
  EXPECT_EQ(rich->Lookup(3), std::optional<std::string>("stock grpc 3"));
  EXPECT_EQ(rich->Lookup(std::nullopt), std::nullopt);  // the stock server sees has_key() false
  rich::Scalars s;
  s.u64 = ~uint64_t{0};
  s.light = rich::Light::kOff;
  s.text = "é";
  rich::Scalars back = rich->EchoScalars(s);
  EXPECT_EQ(back.u64, ~uint64_t{0});
  EXPECT_EQ(back.light, rich::Light::kOff);
  EXPECT_EQ(back.text, "é");
  EXPECT_EQ(rich->Now().zone, "stock grpc");
  try {
    rich->Notify(1, "entry", rich::Color::kRed);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(e.message(), "stock grpc: no entry");
  }
  try {
    rich->Count();  // not implemented by the stock service
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnimplemented);
  }
  server->Shutdown();
}

// The stock service, which also says what encoding each request came in, and whose Now() answers
// with a zone of zone_bytes (a reply far larger than its request).
class CompressingStockService : public StockGrpcService {
 public:
  grpc::Status EchoScalars(grpc::ServerContext* context, const rich_pb::Scalars* request,
                           rich_pb::Scalars* reply) override {
    auto encoding = context->client_metadata().find("grpc-encoding");
    std::lock_guard<std::mutex> lock(mu);
    encodings.emplace_back(encoding == context->client_metadata().end()
                               ? "identity"
                               : std::string(encoding->second.data(), encoding->second.size()));
    return StockGrpcService::EchoScalars(context, request, reply);
  }
  grpc::Status Now(grpc::ServerContext*, const rich_pb::NowRequest*,
                   rich_pb::Stamp* reply) override {
    reply->set_zone(std::string(zone_bytes, 'z'));
    return grpc::Status::OK;
  }
  std::mutex mu;
  std::vector<std::string> encodings;
  std::size_t zone_bytes = 0;
};

// rpcboot's native channel with grpc_compression gzip against gRPC's own server set to compress
// its replies (gzip): large requests go gzip and the stock server inflates them; small ones go
// plain; the stock server's gzip replies are inflated, up to the channel's max_message_bytes.
TEST(StockServers, TheNativeChannelSpeaksGzipWithAStockServer) {
  CompressingStockService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetDefaultCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  auto server = builder.BuildAndStart();
  ASSERT_GT(port, 0);
  ChannelOptions options;
  options.grpc_compression = GrpcCompression::kGzip;
  options.max_message_bytes = 1 << 20;
  auto rich = MakeClient<rich::RichService>(
      std::make_shared<Renaming>(MakeGrpcChannel("127.0.0.1:" + std::to_string(port), options)));
  rich::Scalars large;
  large.text.assign(200000, 'l');
  EXPECT_EQ(rich->EchoScalars(large).text, large.text);
  rich::Scalars small;
  small.text = "short";
  EXPECT_EQ(rich->EchoScalars(small).text, "short");
  {
    std::lock_guard<std::mutex> lock(service.mu);
    // gRPC's server may keep grpc-encoding out of the metadata it shows a handler: then the
    // refusal by rpcboot's own server (GrpcCompressionTest below) is what shows the request went
    // compressed.
    if (!service.encodings.empty() && service.encodings[0] != "identity") {
      EXPECT_EQ(service.encodings, (std::vector<std::string>{"gzip", "identity"}));
    }
  }
  service.zone_bytes = 512 << 10;
  EXPECT_EQ(rich->Now().zone.size(), std::size_t{512} << 10);
  // 2 MiB of 'z' compress to a few KiB, well under the channel's limit of 1 MiB: only inflating
  // finds it too large, and stops there.
  service.zone_bytes = 2 << 20;
  try {
    rich->Now();
    ADD_FAILURE() << "a reply inflating to 2 MiB was taken under a limit of 1 MiB";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("inflates past the limit of 1048576"), std::string::npos)
        << e.what();
  }
  server->Shutdown();
}

}  // namespace
}  // namespace rpcboot
