// Unary small-message calls over loopback: rpcboot against the same runtime with generated code,
// in the same run, at several caller counts. Prints calls/s, p50 and p99 latency, and the ratio
// rpcboot calls/s / stock calls/s (above 1.0: rpcboot faster).
//
//   build/bench/rpc_bench [--seconds=1.5] [--callers=1,8,64]
//
// Thrift: rpcboot's server (epoll loops, handler pool) and pooled channel, against
// thrift-compiler's processor on TThreadedServer (thread per connection) and its client, one
// connection per caller, framed compact on both sides. gRPC: rpcboot's callback generic server and
// channel, against a grpc_cpp_plugin sync service and stub; one HTTP/2 channel shared by the
// callers. Every call is Mix(Color, Color) -> Color. Traffic goes to 127.0.0.1 only; each run is
// bounded in time and stops by itself.
#include <grpcpp/grpcpp.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TSocket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string_view>
#include <thread>
#include <vector>

#include "RichService.h"
#include "bench/flags.h"
#include "bench/load_testing.h"
#include "common_types.rpcboot.h"
#include "rich_service.grpc.pb.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "stock_services.h"

namespace {

using Clock = std::chrono::steady_clock;

using rpcboot::bench::Load;
using rpcboot::bench::Result;

using rpcboot::testing::StockGrpcService;

Result StockThrift(int callers, double seconds) {
  using namespace apache::thrift;
  rpcboot::testing::StockThriftServer<protocol::TCompactProtocolFactory> server;
  int port = server.port();
  if (port == 0) std::abort();
  Result r = Load(callers, seconds, [port](int) {
    auto sock = std::make_shared<transport::TSocket>("127.0.0.1", port);
    auto framed = std::make_shared<transport::TFramedTransport>(sock);
    auto client = std::make_shared<rich_thrift::RichServiceClient>(
        std::make_shared<protocol::TCompactProtocol>(framed));
    framed->open();
    return std::function<bool()>([client, framed] {
      try {
        return client->Mix(rich_thrift::Color::kRed, rich_thrift::Color::kGreen) ==
               rich_thrift::Color::kBlue;
      } catch (const TException&) {
        return false;
      }
    });
  });
  return r;
}

Result RpcbootLoad(int callers, double seconds, bool grpc) {
  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  (grpc ? options.grpc_port : options.thrift_port) = 0;
  rpcboot::Server server(options);
  server.AddService<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
  if (!server.Start().ok()) std::abort();
  std::string target =
      "127.0.0.1:" + std::to_string(grpc ? server.grpc_port() : server.thrift_port());
  auto channel = grpc ? rpcboot::MakeGrpcChannel(target) : rpcboot::MakeThriftChannel(target);
  auto rich = rpcboot::MakeClient<rich::RichService>(channel);
  Result r = Load(callers, seconds, [rich](int) {
    return std::function<bool()>([rich] {
      try {
        return rich->Mix(rich::Color::kRed, rich::Color::kGreen) == rich::Color::kBlue;
      } catch (const rpcboot::RpcError&) {
        return false;
      }
    });
  });
  server.Shutdown();
  return r;
}

Result StockGrpc(int callers, double seconds) {
  StockGrpcService service;
  int port = 0;
  auto server = rpcboot::testing::StartStockGrpcServer(&service, &port);
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = std::shared_ptr<rich_pb::RichService::Stub>(rich_pb::RichService::NewStub(channel));
  Result r = Load(callers, seconds, [stub](int) {
    return std::function<bool()>([stub] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      rich_pb::MixRequest request;
      request.set_a(rich_pb::COLOR_RED);
      request.set_b(rich_pb::COLOR_GREEN);
      rich_pb::MixResponse reply;
      return stub->Mix(&context, request, &reply).ok() && reply.value() == rich_pb::COLOR_BLUE;
    });
  });
  server->Shutdown();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.5;
  std::vector<int> callers = {1, 8, 64};
  const rpcboot::bench::Flags flags("rpc_bench", "[--seconds=S] [--callers=1,8,64]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (flags.Number(a, "seconds", 0.01, 30, &seconds) ||
        flags.List(a, "callers", 1, 4096, &callers)) {
      continue;
    }
    flags.Unknown(a);
  }
  std::printf("%-8s %7s %-8s %12s %9s %9s %7s %7s\n", "protocol", "callers", "impl", "calls/s",
              "p50 us", "p99 us", "errors", "ratio");
  for (bool grpc : {false, true}) {
    for (int n : callers) {
      Result stock = grpc ? StockGrpc(n, seconds) : StockThrift(n, seconds);
      Result ours = RpcbootLoad(n, seconds, grpc);
      const char* name = grpc ? "grpc" : "thrift";
      std::printf("%-8s %7d %-8s %12.0f %9.1f %9.1f %7ld %7s\n", name, n, "stock",
                  stock.calls_per_second, stock.p50_us, stock.p99_us, stock.errors, "");
      std::printf("%-8s %7d %-8s %12.0f %9.1f %9.1f %7ld %7.2f\n", name, n, "rpcboot",
                  ours.calls_per_second, ours.p50_us, ours.p99_us, ours.errors,
                  ours.calls_per_second / stock.calls_per_second);
      std::fflush(stdout);
    }
  }
  return 0;
}
