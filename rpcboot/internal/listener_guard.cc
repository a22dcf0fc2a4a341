#include "rpcboot/internal/listener_guard.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/http2_guard.h"
#include "rpcboot/internal/metrics.h"

namespace rpcboot::internal {
namespace {

using Accept4 = int (*)(int, sockaddr*, socklen_t*, int);

int SystemAccept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  return static_cast<int>(::syscall(SYS_accept4, fd, addr, len, flags));
}

// The C library's accept4 (or the sanitizer's in front of it), past the one defined below.
Accept4 NextAccept4() {
  static const Accept4 next = [] {
    void* found = ::dlsym(RTLD_NEXT, "accept4");
    return found != nullptr ? reinterpret_cast<Accept4>(found) : &SystemAccept4;
  }();
  return next;
}

bool OutOfResources(int error) {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

// A guarded listening socket and the connections accepted on it that may still be open: a
// descriptor counts while it still refers to the socket it was accepted as (the same inode),
// which is checked only at the cap (gRPC closes connections without telling anyone).
struct Listener {
  int fd = -1;
  int port = 0;
  int max_connections = 0;
  bool tls = false;
  std::unordered_map<int, ino_t> accepted;
  std::chrono::steady_clock::time_point checked{};
};

// The guarded listeners. Never destroyed: accept4 may run on gRPC's threads during exit.
struct Guard {
  std::mutex mu;
  std::vector<Listener> listeners;
  std::unique_ptr<SpareDescriptor> spare;  // while any listener is guarded
  LogLimiter log;
};

Guard& TheGuard() {
  static Guard* guard = new Guard;
  return *guard;
}

Listener* FindLocked(Guard& guard, int fd) {
  for (Listener& l : guard.listeners) {
    if (l.fd == fd) return &l;
  }
  return nullptr;
}

// A connection `conn` accepted on `fd`: false when `fd` is guarded and already has
// max_connections open (the caller closes `conn`).
bool Admit(int fd, int conn) {
  Guard& guard = TheGuard();
  std::lock_guard<std::mutex> lock(guard.mu);
  Listener* listener = FindLocked(guard, fd);
  if (listener == nullptr) return true;
  struct stat st {};
  if (::fstat(conn, &st) != 0) return true;
  if (!listener->tls) InspectAccepted(conn);
  listener->accepted[conn] = st.st_ino;
  if (static_cast<int>(listener->accepted.size()) <= listener->max_connections) return true;
  // At the cap: forget the connections gRPC has closed since (at most every 100 ms, so a flood
  // at the cap costs a close per connection, not a pass over all of them).
  auto now = std::chrono::steady_clock::now();
  if (now - listener->checked >= std::chrono::milliseconds(100)) {
    listener->checked = now;
    for (auto it = listener->accepted.begin(); it != listener->accepted.end();) {
      struct stat now_st {};
      bool same = ::fstat(it->first, &now_st) == 0 && now_st.st_ino == it->second;
      it = same ? std::next(it) : listener->accepted.erase(it);
    }
  }
  if (static_cast<int>(listener->accepted.size()) <= listener->max_connections) return true;
  listener->accepted.erase(conn);
  Transports().grpc_connections_refused.fetch_add(1, std::memory_order_relaxed);
  if (guard.log.Allow()) {
    Log(LogLevel::kWarning, absl::StrCat("gRPC: refusing a connection: ", listener->max_connections,
                                         " connections open (server.max_connections)"));
  }
  return false;
}

// A failed accept4 on `fd` (errno `error`): false when `fd` is not guarded. Otherwise true,
// with *retry when the call should accept again (a connection was shed; its peer sees it
// closed) and otherwise gives gRPC EAGAIN.
bool OnGuardedFailure(int fd, int error, bool* retry) {
  Guard& guard = TheGuard();
  std::lock_guard<std::mutex> lock(guard.mu);
  if (FindLocked(guard, fd) == nullptr) return false;
  if (guard.log.Allow()) {
    Log(LogLevel::kWarning, error == EMFILE || error == ENFILE
                                ? absl::StrCat("gRPC: out of file descriptors (",
                                               std::strerror(error), "); refusing connections")
                                : absl::StrCat("gRPC: accept failed (", std::strerror(error),
                                               "); refusing the connection"));
  }
  *retry = OutOfResources(error) && guard.spare != nullptr && guard.spare->Shed(fd);
  return true;
}

bool IsListenerOn(int fd, int port) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) {
    return false;
  }
  sockaddr_storage addr{};
  len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port) == port;
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port) == port;
  }
  return false;
}

}  // namespace

SpareDescriptor::SpareDescriptor() : fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

SpareDescriptor::~SpareDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

bool SpareDescriptor::Shed(int listen_fd) {
  if (fd_ >= 0) ::close(fd_);
  int fd = NextAccept4()(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) ::close(fd);
  fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

void GuardGrpcListeners(int port, int max_connections, bool tls) {
  std::vector<int> found;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir)) {
      char* end = nullptr;
      long fd = std::strtol(entry->d_name, &end, 10);
      if (end == entry->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
      if (IsListenerOn(static_cast<int>(fd), port)) found.push_back(static_cast<int>(fd));
    }
    ::closedir(dir);
  }
  if (found.empty()) {
    Log(LogLevel::kWarning, absl::StrCat("gRPC: no listening socket found on port ", port,
                                         "; running out of file descriptors would stop it"));
    return;
  }
  Guard& guard = TheGuard();
  std::lock_guard<std::mutex> lock(guard.mu);
  for (int fd : found) {
    Listener listener;
    listener.fd = fd;
    listener.port = port;
    listener.max_connections = max_connections;
    listener.tls = tls;
    guard.listeners.push_back(std::move(listener));
  }
  if (tls) InspectTlsServers(+1);
  if (guard.spare == nullptr) guard.spare = std::make_unique<SpareDescriptor>();
}

void UnguardGrpcListeners(int port) {
  Guard& guard = TheGuard();
  std::lock_guard<std::mutex> lock(guard.mu);
  auto on_port = [port](const Listener& l) { return l.port == port; };
  auto first = std::find_if(guard.listeners.begin(), guard.listeners.end(), on_port);
  if (first != guard.listeners.end() && first->tls) InspectTlsServers(-1);
  guard.listeners.erase(std::remove_if(guard.listeners.begin(), guard.listeners.end(), on_port),
                        guard.listeners.end());
  if (guard.listeners.empty()) guard.spare.reset();
}

}  // namespace rpcboot::internal

// The process's accept4 (see listener_guard.h): the C library's, except on guarded listeners.
extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  using namespace rpcboot::internal;
  for (int attempt = 0;; ++attempt) {
    int got = NextAccept4()(fd, addr, len, flags);
    if (got >= 0) {
      if (Admit(fd, got)) return got;
      ::close(got);  // over max_connections: this one is refused; the next may be taken
      if (attempt >= 1024) break;
      continue;
    }
    int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ECONNABORTED) {
      return -1;
    }
    bool retry = false;
    if (!OnGuardedFailure(fd, error, &retry)) {
      errno = error;
      return -1;
    }
    if (!retry || attempt >= 1024) break;
  }
  errno = EAGAIN;  // gRPC keeps listening and tries again on the next connection
  return -1;
}
