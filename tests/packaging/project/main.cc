// Serves Greeter over gRPC and Thrift and calls it through both; prints the replies.
#include <iostream>
#include <memory>

#include "greeter.rpcboot.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"

class GreeterImpl final : public greeter::Greeter {
 public:
  greeter::HelloReply SayHello(const greeter::HelloRequest& request) override {
    greeter::HelloReply reply;
    for (int i = 0; i < request.times; ++i) reply.text += "hello " + request.name + "; ";
    return reply;
  }
};

int main() {
  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.thrift_port = 0;
  rpcboot::Server server(options);
  server.AddService<greeter::Greeter>(std::make_shared<GreeterImpl>());
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  auto grpc = rpcboot::MakeClient<greeter::Greeter>(
      rpcboot::MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port())));
  auto thrift = rpcboot::MakeClient<greeter::Greeter>(
      rpcboot::MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  std::cout << "grpc: " << grpc->SayHello({"packaging", 2}).text << "\n";
  std::cout << "thrift: " << thrift->SayHello({"packaging", 1}).text << "\n";
  server.Shutdown();
  return 0;
}
