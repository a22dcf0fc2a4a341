// Raw TCP connections for tests that speak to a server byte by byte.
#ifndef RPCBOOT_TESTS_RPCBOOT_SOCKET_TESTING_H_
#define RPCBOOT_TESTS_RPCBOOT_SOCKET_TESTING_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace rpcboot::testing {

// A blocking connection to 127.0.0.1:`port`, or -1. Its reads give up after 30 s, so that a
// server that never answers or closes fails the test instead of hanging it.
inline int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval limit{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  return fd;
}

// A socket listening on 127.0.0.1 at a port the system chose (in *port), or -1.
inline int ListenOnLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// An HTTP/2 frame on `stream`, its length and header written by hand.
inline std::string Http2Frame(unsigned char type, unsigned char flags, const std::string& payload,
                              std::uint32_t stream) {
  std::string out;
  for (int shift = 16; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(payload.size() >> shift));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(stream >> shift));
  return out + payload;
}

// The same on stream 1 (0 for SETTINGS).
inline std::string Http2Frame(unsigned char type, unsigned char flags, const std::string& payload) {
  return Http2Frame(type, flags, payload, type == 0x4 ? 0 : 1);
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_SOCKET_TESTING_H_
