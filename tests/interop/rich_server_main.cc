// Serves the rich test interface over gRPC and Thrift for interop tests with other languages'
// clients. Prints "ports grpc=<port> thrift=<port>" once both are bound, then serves until
// SIGTERM or SIGINT, and exits 0 after a graceful stop. An argument "grpc_max_unsent_bytes=N"
// sets that server option.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/server.h"

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread inherits the mask

  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.thrift_port = 0;
  const std::string unsent_flag = "grpc_max_unsent_bytes=";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind(unsent_flag, 0) != 0) {
      std::cerr << "rich_server: unknown argument '" << arg << "'\n";
      return 2;
    }
    options.grpc_max_unsent_bytes = std::strtoull(arg.c_str() + unsent_flag.size(), nullptr, 10);
  }
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
