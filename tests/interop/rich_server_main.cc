// Serves the rich test interface over gRPC and Thrift for interop tests with other languages'
// clients. Prints "ports grpc=<port> thrift=<port>" once both are bound, then serves until
// SIGTERM or SIGINT, and exits 0 after a graceful stop.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/server.h"

int main() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread inherits the mask

  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.thrift_port = 0;
  rpcboot::Server server(options);
  server.AddService<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
  server.AddService<rich::AdminService>(std::make_shared<rpcboot::testing::AdminServiceImpl>());
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "rich_server: " << s << "\n";
    return 1;
  }
  std::cout << "ports grpc=" << server.grpc_port() << " thrift=" << server.thrift_port()
            << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  server.Shutdown();
  return 0;
}
