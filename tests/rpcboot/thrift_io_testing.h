// The Thrift I/O a suite's servers use: epoll, or io_uring when ctest runs the suite a second time
// with RPCBOOT_TEST_THRIFT_IO=uring (rpcboot_test(... URING) in tests/CMakeLists.txt). Likewise
// their gRPC server: gRPC's library, or rpcboot's native one (the default of ServerOptions, which
// every other suite uses) with RPCBOOT_TEST_GRPC_SERVER=native (rpcboot_test(... NATIVE_GRPC)):
// these suites cover both.
#ifndef RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_
#define RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_

#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>

#include "rpcboot/base/log.h"
#include "rpcboot/server.h"

namespace rpcboot::testing {

inline ServerOptions::ThriftIo TestThriftIo() {
  const char* io = std::getenv("RPCBOOT_TEST_THRIFT_IO");
  return io != nullptr && std::string(io) == "uring" ? ServerOptions::ThriftIo::kUring
                                                     : ServerOptions::ThriftIo::kEpoll;
}

inline ServerOptions::GrpcServer TestGrpcServer() {
  const char* server = std::getenv("RPCBOOT_TEST_GRPC_SERVER");
  return server != nullptr && std::string(server) == "native" ? ServerOptions::GrpcServer::kNative
                                                              : ServerOptions::GrpcServer::kGrpcpp;
}

// The process's log lines while it lives, for tests that check what a server says about its
// I/O.
class CapturedLog {
 public:
  CapturedLog() {
    SetLogSink([this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      text_.append(line).append("\n");
    });
  }
  ~CapturedLog() { SetLogSink(nullptr); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  std::string text() const {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_
