// The Thrift I/O a suite's servers use: epoll, or io_uring when ctest runs the suite a second time
// with RPCBOOT_TEST_THRIFT_IO=uring (rpcboot_test(... URING) in tests/CMakeLists.txt).
#ifndef RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_
#define RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_

#include <cstdlib>
#include <string>

#include "rpcboot/server.h"

namespace rpcboot::testing {

inline ServerOptions::ThriftIo TestThriftIo() {
  const char* io = std::getenv("RPCBOOT_TEST_THRIFT_IO");
  return io != nullptr && std::string(io) == "uring" ? ServerOptions::ThriftIo::kUring
                                                     : ServerOptions::ThriftIo::kEpoll;
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_THRIFT_IO_TESTING_H_
