// rpcboot proxies call stock servers generated from rpcboot's own emitted IDL: a thrift-compiler
// C++ server (TThreadedServer, framed, compact and binary) and a protoc + grpc_cpp_plugin gRPC
// server. Values and errors arrive as the interface promises.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

#include <thread>

#include "RichService.h"
#include "common_types.rpcboot.h"
#include "rich_service.grpc.pb.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/client.h"

namespace rpcboot {
namespace {

// A stock Thrift handler, written against thrift-compiler's interface (namespace rich_thrift).
class StockThriftHandler : public rich_thrift::RichServiceIf {
 public:
  void Echo(rich_thrift::Everything& out, const rich_thrift::EchoRequest& request) override {
    out = request.value;
  }
  void EchoScalars(rich_thrift::Scalars& out, const rich_thrift::Scalars& scalars) override {
    out = scalars;
  }
  void Notify(const int64_t id, const std::string& message,
              const rich_thrift::Color::type) override {
    if (id < 0) {
      rich_thrift::RpcError e;
      e.code = static_cast<int32_t>(StatusCode::kNotFound);
      e.message = "stock thrift: no " + message;
      throw e;
    }
  }
  int64_t Count() override { return ++count_; }
  void Path(std::vector<rich_thrift::Point>& out, const std::vector<rich_thrift::Point>& points,
            const bool reversed) override {
    out = points;
    if (reversed) std::reverse(out.begin(), out.end());
  }
  void Histogram(std::map<std::string, int32_t>& out,
                 const std::vector<std::string>& words) override {
    for (const auto& w : words) out[w]++;
  }
  rich_thrift::Color::type Mix(const rich_thrift::Color::type a,
                               const rich_thrift::Color::type b) override {
    return a == b ? a : rich_thrift::Color::kBlue;
  }
  void Transpose(std::vector<std::vector<int32_t>>& out,
                 const std::vector<std::vector<int32_t>>& m) override {
    for (std::size_t r = 0; r < m.size(); ++r) {
      for (std::size_t c = 0; c < m[r].size(); ++c) {
        if (out.size() <= c) out.resize(c + 1);
        out[c].push_back(m[r][c]);
      }
    }
  }
  void Now(rich_thrift::Stamp& out) override {
    out.seconds = 42;
    out.zone = "stock";
  }
  int64_t PlaceOrder(const rich_thrift::Order& order) override {
    return static_cast<int64_t>(order.lines.size());
  }

 private:
  std::atomic<int64_t> count_{0};
};

template <class ProtocolFactory>
class StockThriftServer {
 public:
  StockThriftServer() {
    auto socket = std::make_shared<apache::thrift::transport::TServerSocket>("127.0.0.1", 0);
    server_ = std::make_unique<apache::thrift::server::TThreadedServer>(
        std::make_shared<rich_thrift::RichServiceProcessor>(std::make_shared<StockThriftHandler>()),
        socket, std::make_shared<apache::thrift::transport::TFramedTransportFactory>(),
        std::make_shared<ProtocolFactory>());
    thread_ = std::thread([this] { server_->serve(); });
    for (int i = 0; i < 500 && socket->getPort() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    port_ = socket->getPort();
  }
  ~StockThriftServer() {
    server_->stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::unique_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
  int port_ = 0;
};

void CheckAgainstStockThrift(const std::shared_ptr<rich::RichService>& rich) {
  EXPECT_EQ(rich->Count(), 1);
  EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  EXPECT_EQ(rich->Path({{1, 2}, {3, 4}}, true)[0].x, 3);
  EXPECT_EQ(rich->Histogram({"x", "x"}).at("x"), 2);
  EXPECT_EQ(rich->Transpose({{1, 2}, {3, 4}}), (std::vector<std::vector<int32_t>>{{1, 3}, {2, 4}}));
  EXPECT_EQ(rich->Now().zone, "stock");
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

// A stock gRPC service, written against protoc + grpc_cpp_plugin's code (package rich_pb is the
// emitted package renamed; the test serves it under the original path by a generic stub below).
class StockGrpcService final : public rich_pb::RichService::Service {
 public:
  grpc::Status Mix(grpc::ServerContext*, const rich_pb::MixRequest* request,
                   rich_pb::MixResponse* reply) override {
    reply->set_value(request->a() == request->b() ? request->a() : rich_pb::COLOR_BLUE);
    return grpc::Status::OK;
  }
  grpc::Status Path(grpc::ServerContext*, const rich_pb::PathRequest* request,
                    rich_pb::PathResponse* reply) override {
    for (int i = request->points_size() - 1; i >= 0; --i) *reply->add_value() = request->points(i);
    return grpc::Status::OK;
  }
  grpc::Status EchoScalars(grpc::ServerContext*, const rich_pb::Scalars* request,
                           rich_pb::Scalars* reply) override {
    *reply = *request;
    return grpc::Status::OK;
  }
  grpc::Status Now(grpc::ServerContext*, const rich_pb::NowRequest*,
                   rich_pb::Stamp* reply) override {
    reply->set_seconds(7);
    reply->set_zone("stock grpc");
    return grpc::Status::OK;
  }
  grpc::Status Notify(grpc::ServerContext*, const rich_pb::NotifyRequest* request,
                      rich_pb::NotifyResponse*) override {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "stock grpc: no " + request->message());
  }
};

TEST(StockServers, RpcbootProxyCallsGrpcCppPluginServer) {
  StockGrpcService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_GT(port, 0);
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
  auto rich = MakeClient<rich::RichService>(
      std::make_shared<Renaming>(MakeGrpcChannel("127.0.0.1:" + std::to_string(port))));
  EXPECT_EQ(rich->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  auto path = rich->Path({{1, 2}, {3, 4}}, false);
  ASSERT_EQ(path.size(), 2u);
  EXPECT_EQ(path[0].x, 3);
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

}  // namespace
}  // namespace rpcboot
