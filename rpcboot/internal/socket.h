// TCP sockets as rpcboot's own transports use them: listen, connect within a deadline, and
// blocking reads and writes bounded by SO_RCVTIMEO/SO_SNDTIMEO (one system call per read in the
// common case, as Thrift's TSocket does). Plain functions on file descriptors; the caller owns
// every descriptor they return and closes it.
#ifndef RPCBOOT_INTERNAL_SOCKET_H_
#define RPCBOOT_INTERNAL_SOCKET_H_

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rpcboot::internal {

// Why a read or write stopped short.
enum class IoError { kNone, kClosed, kTimeout, kFailed };

// Reads exactly n bytes / writes all of `data`; false with *error set otherwise.
bool RecvFull(int fd, char* out, std::size_t n, IoError* error);
bool SendFull(int fd, std::string_view data, IoError* error);
// Reads between 1 and n bytes (*got); false with *error set otherwise.
bool RecvSome(int fd, char* out, std::size_t n, std::size_t* got, IoError* error);
// Sets SO_RCVTIMEO and SO_SNDTIMEO (at least 1 ms).
void SetSocketTimeouts(int fd, std::chrono::milliseconds timeout);

// A listening socket on host:port (port 0: any free port), SO_REUSEADDR, close-on-exec.
// Unavailable naming the address and the reason when it cannot bind; InvalidArgument for a
// host that does not resolve. *bound_port receives the port actually bound.
absl::StatusOr<int> Listen(const std::string& host, int port, int* bound_port);

// The failures Connect tells apart: the request surely never left (kUnreachable) or the
// deadline passed while connecting (kTimeout).
struct ConnectError {
  enum class Kind { kUnreachable, kTimeout } kind;
  std::string message;  // "cannot connect to h:p: Connection refused"
};
// A blocking, connected TCP socket with TCP_NODELAY, or *error filled and -1.
int Connect(const std::string& host, const std::string& port,
            std::chrono::steady_clock::time_point deadline, ConnectError* error);

// "10.0.0.7:4412" ("unknown peer" when it cannot be printed).
std::string PeerName(const sockaddr_storage& addr);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_SOCKET_H_
