// Stock services written against the code thrift-compiler and protoc + grpc_cpp_plugin
// generate from rpcboot's emitted IDL (namespaces rich_thrift and rich_pb): the peers rpcboot
// is tested and measured against.
#ifndef RPCBOOT_TESTS_INTEROP_STOCK_SERVICES_H_
#define RPCBOOT_TESTS_INTEROP_STOCK_SERVICES_H_

#include <grpcpp/grpcpp.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "RichService.h"
#include "rich_service.grpc.pb.h"
#include "rpcboot/status.h"

namespace rpcboot::testing {

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
  // The optional result arrives in the emitted LookupResponse struct; a stock C++ client always
  // sends the key (thrift-compiler writes every argument).
  void Lookup(rich_thrift::LookupResponse& out, const int64_t key) override {
    if (key >= 0) out.__set_value("stock " + std::to_string(key));
  }
  void Nearest(rich_thrift::NearestResponse& out, const rich_thrift::Point& origin) override {
    rich_thrift::Point p = origin;
    p.x -= 1;
    out.__set_value(p);
  }

 private:
  std::atomic<int64_t> count_{0};
};

// A stock gRPC service, written against protoc + grpc_cpp_plugin's code (package rich_pb is the
// emitted package renamed; the test serves it under the original path by a generic stub below).
class StockGrpcService : public rich_pb::RichService::Service {
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
  grpc::Status Lookup(grpc::ServerContext*, const rich_pb::LookupRequest* request,
                      rich_pb::LookupResponse* reply) override {
    if (request->has_key()) reply->set_value("stock grpc " + std::to_string(request->key()));
    return grpc::Status::OK;
  }
  grpc::Status Notify(grpc::ServerContext*, const rich_pb::NotifyRequest* request,
                      rich_pb::NotifyResponse*) override {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "stock grpc: no " + request->message());
  }
};

// thrift-compiler's stock server for StockThriftHandler: TThreadedServer, framed transport, the
// protocol of ProtocolFactory, on 127.0.0.1 at a free port; stops when destroyed.
template <class ProtocolFactory>
class StockThriftServer {
 public:
  // multiplexed: RichService registered in a TMultiplexedProcessor as "rich.RichService", the
  // way a stock server offers several services on one port.
  explicit StockThriftServer(bool multiplexed = false) {
    auto socket = std::make_shared<apache::thrift::transport::TServerSocket>("127.0.0.1", 0);
    std::shared_ptr<apache::thrift::TProcessor> processor =
        std::make_shared<rich_thrift::RichServiceProcessor>(std::make_shared<StockThriftHandler>());
    if (multiplexed) {
      auto mux = std::make_shared<apache::thrift::TMultiplexedProcessor>();
      mux->registerProcessor("rich.RichService", processor);
      processor = mux;
    }
    server_ = std::make_unique<apache::thrift::server::TThreadedServer>(
        processor, socket, std::make_shared<apache::thrift::transport::TFramedTransportFactory>(),
        std::make_shared<ProtocolFactory>());
    thread_ = std::thread([this] { server_->serve(); });
    // TServerSocket publishes its port once it listens; serve() gets there within milliseconds.
    for (int i = 0; i < 5000 && socket->getPort() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    port_ = socket->getPort();
  }
  ~StockThriftServer() {
    server_->stop();
    thread_.join();
  }
  StockThriftServer(const StockThriftServer&) = delete;
  StockThriftServer& operator=(const StockThriftServer&) = delete;
  int port() const { return port_; }  // 0 when it could not listen

 private:
  std::unique_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// Starts `service` on 127.0.0.1 at a free port, written to *port.
inline std::unique_ptr<grpc::Server> StartStockGrpcServer(grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_INTEROP_STOCK_SERVICES_H_
