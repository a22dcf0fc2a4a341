// Serves the rich test interface over gRPC and Thrift for interop tests with other languages'
// clients. Prints "ports grpc=<port> thrift=<port>" once both are bound, then serves until
// SIGTERM or SIGINT, and exits 0 after a graceful stop. Arguments: "grpc_max_unsent_bytes=N"
// (and the other grpc_ and thrift_ options below, max_message_bytes) sets that server option;
// "tls_dir=DIR" serves TLS on both ports with DIR/server.crt and server.key
// (scripts/make-test-certs.sh), verifying client certificates against DIR/ca.crt and requiring one
// ("require_client_cert=false": optional); "tokens_file=F" accepts those tokens;
// "require_identity=true" refuses anonymous callers. With RPCBOOT_TEST_GRPC_SERVER=native in its
// environment it serves gRPC with the native server.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/server.h"
#include "thrift_io_testing.h"

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
  options.grpc_server = rpcboot::testing::TestGrpcServer();  // RPCBOOT_TEST_GRPC_SERVER=native
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::size_t eq = arg.find('=');
    std::string key = arg.substr(0, eq), value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (key == "grpc_max_unsent_bytes") {
      options.grpc_max_unsent_bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "grpc_max_connection_age_ms") {
      options.grpc_max_connection_age =
          std::chrono::milliseconds(std::strtoll(value.c_str(), nullptr, 10));
    } else if (key == "grpc_max_connection_age_grace_ms") {
      options.grpc_max_connection_age_grace =
          std::chrono::milliseconds(std::strtoll(value.c_str(), nullptr, 10));
    } else if (key == "grpc_max_concurrent_streams") {
      options.grpc_max_concurrent_streams = std::atoi(value.c_str());
    } else if (key == "grpc_memory_quota") {
      options.grpc_memory_quota = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "grpc_compression") {
      if (value != "off" && value != "accept" && value != "gzip") {
        std::cerr << "rich_server: grpc_compression takes off, accept or gzip\n";
        return 2;
      }
      options.grpc_compression = value == "off" ? rpcboot::ServerOptions::GrpcCompression::kOff
                                 : value == "accept"
                                     ? rpcboot::ServerOptions::GrpcCompression::kAccept
                                     : rpcboot::ServerOptions::GrpcCompression::kGzip;
    } else if (key == "thrift_compression") {
      if (value != "off" && value != "zlib") {
        std::cerr << "rich_server: thrift_compression takes off or zlib\n";
        return 2;
      }
      options.thrift_compression = value == "zlib"
                                       ? rpcboot::ServerOptions::ThriftCompression::kZlib
                                       : rpcboot::ServerOptions::ThriftCompression::kOff;
    } else if (key == "thrift_inflated_quota") {
      options.thrift_inflated_quota = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "max_message_bytes") {
      options.max_message_bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "tls_dir") {
      options.tls.cert_file = value + "/server.crt";
      options.tls.key_file = value + "/server.key";
      options.tls.ca_file = value + "/ca.crt";
      options.tls.require_client_cert = true;
    } else if (key == "require_client_cert") {
      options.tls.require_client_cert = value == "true";
    } else if (key == "tokens_file") {
      options.auth.tokens_file = value;
    } else if (key == "require_identity") {
      options.auth.require_identity = value == "true";
    } else {
      std::cerr << "rich_server: unknown argument '" << arg << "'\n";
      return 2;
    }
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
