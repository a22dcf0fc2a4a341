#include "rpcboot/internal/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace rpcboot::internal {

bool RecvSome(int fd, char* out, std::size_t n, std::size_t* got, IoError* error) {
  for (;;) {
    ssize_t read = ::recv(fd, out, n, 0);
    if (read > 0) {
      *got = static_cast<std::size_t>(read);
      return true;
    }
    if (read == 0) {
      *error = IoError::kClosed;
      return false;
    }
    if (errno == EINTR) continue;
    *error = errno == EAGAIN || errno == EWOULDBLOCK ? IoError::kTimeout
             : errno == ECONNRESET                   ? IoError::kClosed
                                                     : IoError::kFailed;
    return false;
  }
}

bool RecvFull(int fd, char* out, std::size_t n, IoError* error) {
  for (std::size_t done = 0; done < n;) {
    std::size_t got = 0;
    if (!RecvSome(fd, out + done, n - done, &got, error)) return false;
    done += got;
  }
  return true;
}

bool SendFull(int fd, std::string_view data, IoError* error) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *error = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? IoError::kTimeout
             : n < 0 && (errno == EPIPE || errno == ECONNRESET) ? IoError::kClosed
                                                                : IoError::kFailed;
    return false;
  }
  return true;
}

void SetSocketTimeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  auto ms = std::max<int64_t>(timeout.count(), 1);
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

absl::StatusOr<int> Listen(const std::string& host, int port, int* bound_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  std::string port_text = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &result); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad host '", host, "': ", gai_strerror(rc)));
  }
  int fd = ::socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool ok =
      fd >= 0 && ::bind(fd, result->ai_addr, result->ai_addrlen) == 0 && ::listen(fd, 1024) == 0;
  int err = errno;
  freeaddrinfo(result);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", std::strerror(err)));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  *bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

int Connect(const std::string& host, const std::string& port,
            std::chrono::steady_clock::time_point deadline, ConnectError* error) {
  std::string endpoint = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result); rc != 0) {
    *error = {ConnectError::Kind::kUnreachable,
              absl::StrCat("cannot resolve ", endpoint, ": ", gai_strerror(rc))};
    return -1;
  }
  int fd = ::socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    int err = errno;
    freeaddrinfo(result);
    *error = {ConnectError::Kind::kUnreachable,
              absl::StrCat("cannot connect to ", endpoint, ": ", std::strerror(err))};
    return -1;
  }
  int rc = ::connect(fd, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) {
      ::close(fd);
      *error = {ConnectError::Kind::kTimeout, "connecting to " + endpoint + " timed out"};
      return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    rc = err == 0 ? 0 : -1;
    errno = err;
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    *error = {ConnectError::Kind::kUnreachable,
              absl::StrCat("cannot connect to ", endpoint, ": ", std::strerror(err))};
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // blocking, bounded by timeouts
  return fd;
}

std::string PeerName(const sockaddr_storage& addr) {
  char host[NI_MAXHOST], port[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), sizeof addr, host, sizeof host, port,
                  sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "unknown peer";
  }
  return std::string(host) + ":" + port;
}

}  // namespace rpcboot::internal
