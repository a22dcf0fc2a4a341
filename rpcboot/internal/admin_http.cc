#include "rpcboot/internal/admin_http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rpcboot/internal/listener_guard.h"
#include "rpcboot/internal/socket.h"

namespace rpcboot::internal {
namespace {

using Clock = std::chrono::steady_clock;

// After a failed accept for want of descriptors or memory, the listening socket is left alone
// this long (it stays readable: polling it at once would spin).
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

// Where a request's head ends (just past its empty line), or npos. Bare LF lines are accepted,
// as most servers do.
std::size_t HeadEnd(std::string_view in) {
  std::size_t crlf = in.find("\r\n\r\n");
  std::size_t lf = in.find("\n\n");
  std::size_t end = std::string_view::npos;
  if (crlf != std::string_view::npos) end = crlf + 4;
  if (lf != std::string_view::npos) end = std::min(end, lf + 2);
  return end;
}

// Reads what has arrived on `fd`: the number of bytes read, 0 when nothing more has arrived, -1
// when the peer has closed or the connection failed.
ssize_t Receive(int fd, char* buffer, std::size_t size) {
  while (true) {
    ssize_t n = ::recv(fd, buffer, size, 0);
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
  }
}

std::string Response(const AdminHttp::Reply& reply, bool head_only, const std::string& extra) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", reply.status, " ", ReasonPhrase(reply.status),
      "\r\nContent-Type: ", reply.content_type, "\r\nContent-Length: ", reply.body.size(),
      "\r\nCache-Control: no-store\r\nConnection: close\r\n", extra, "\r\n");
  if (!head_only) out += reply.body;
  return out;
}

}  // namespace

struct AdminHttp::Connection {
  enum class State { kReading, kWriting, kLingering, kClosed };
  int fd = -1;
  State state = State::kReading;
  Clock::time_point since;     // accepted; once answered, when the answer was out
  Clock::time_point deadline;  // of the state it is in
  std::string in;              // the head so far
  std::string out;             // the answer
  std::size_t sent = 0;
};

AdminHttp::AdminHttp(Handler handler) : handler_(std::move(handler)) {}

AdminHttp::~AdminHttp() { Stop(); }

absl::Status AdminHttp::Start(const std::string& host, int port) {
  int bound = 0;
  absl::StatusOr<int> fd = Listen(host, port, &bound);
  if (!fd.ok()) {
    const bool bad_host = fd.status().code() == absl::StatusCode::kInvalidArgument;
    return absl::Status(fd.status().code(), absl::StrCat(bad_host ? "admin.host: " : "admin.port: ",
                                                         fd.status().message()));
  }
  listen_fd_ = *fd;
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0 || ::fcntl(listen_fd_, F_SETFL, O_NONBLOCK) != 0) {
    Stop();
    return absl::UnavailableError(
        absl::StrCat("admin.port: cannot serve ", host, ":", port, ": ", std::strerror(errno)));
  }
  spare_ = std::make_unique<SpareDescriptor>();
  try {
    thread_ = std::thread([this] { Serve(); });
  } catch (const std::system_error& e) {
    Stop();
    return absl::ResourceExhaustedError(
        absl::StrCat("admin.port: cannot start its thread: ", e.what()));
  }
  port_ = bound;
  return absl::OkStatus();
}

void AdminHttp::Stop() {
  stopping_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (Connection& c : connections_) Close(c);
  connections_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void AdminHttp::Serve() {
  std::vector<pollfd> fds;
  while (!stopping_) {
    Clock::time_point now = Clock::now();
    Clock::time_point wake_at = now + std::chrono::seconds(1);
    for (Connection& c : connections_) {
      if (c.deadline <= now) {
        Close(c);  // too slow: to send its request, to take its answer, or done lingering
      } else {
        wake_at = std::min(wake_at, c.deadline);
      }
    }
    connections_.erase(
        std::remove_if(connections_.begin(), connections_.end(),
                       [](const Connection& c) { return c.state == Connection::State::kClosed; }),
        connections_.end());
    const bool accepting = now >= accept_paused_until_;
    if (!accepting) wake_at = std::min(wake_at, accept_paused_until_);
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // poll skips a negative fd
    for (const Connection& c : connections_) {
      fds.push_back(
          {c.fd, static_cast<short>(c.state == Connection::State::kWriting ? POLLOUT : POLLIN), 0});
    }
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait, 0))) < 0) {
      if (errno != EINTR) {
        if (flood_log_.Allow()) {
          Log(LogLevel::kError, absl::StrCat("admin: poll: ", std::strerror(errno)));
        }
        std::this_thread::sleep_for(kAcceptPause);  // out of memory: not a busy loop
      }
      continue;
    }
    if (fds[0].revents != 0) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    // The connections polled are the first fds.size() - 2 of connections_ (Accept appends).
    const std::size_t polled = fds.size() - 2;
    for (std::size_t i = 0; i < polled; ++i) {
      const short revents = fds[i + 2].revents;
      if (revents == 0) continue;
      Connection& c = connections_[i];
      if (c.state == Connection::State::kWriting) {
        if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
          Close(c);
        } else {
          Write(c);
        }
      } else if (c.state == Connection::State::kReading) {
        Read(c);
      } else if (c.state == Connection::State::kLingering) {
        Linger(c);
      }
    }
    if (fds[1].revents != 0) Accept(Clock::now());
  }
}

void AdminHttp::Accept(Clock::time_point now) {
  while (!stopping_) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors or memory: the pending connection fails, the server goes on.
      const int error = errno;
      if (error == EMFILE || error == ENFILE) spare_->Shed(listen_fd_);
      if (flood_log_.Allow()) {
        Log(LogLevel::kWarning, absl::StrCat("admin: cannot accept a connection: ",
                                             std::strerror(error), " (one connection refused)"));
      }
      accept_paused_until_ = now + kAcceptPause;
      return;
    }
    if (connections_.size() >= kMaxConnections) {
      // Make room by closing the connection that lingers longest after its answer, else the one
      // that has waited longest for its request; when every one is being answered, refuse.
      auto victim = connections_.end();
      auto rank = [](const Connection& c) {
        return std::pair{c.state == Connection::State::kLingering ? 0 : 1, c.since};
      };
      for (auto it = connections_.begin(); it != connections_.end(); ++it) {
        if (it->state == Connection::State::kWriting || it->state == Connection::State::kClosed) {
          continue;
        }
        if (victim == connections_.end() || rank(*it) < rank(*victim)) victim = it;
      }
      if (victim == connections_.end()) {
        ::close(fd);
        if (flood_log_.Allow()) {
          Log(LogLevel::kWarning, absl::StrCat("admin: refusing a connection: ", kMaxConnections,
                                               " open, all being answered"));
        }
        continue;
      }
      Close(*victim);
      connections_.erase(victim);
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.since = now;
    c.deadline = now + kRequestDeadline;
    Read(c);  // a request sent along with the connection is answered now
    if (c.state == Connection::State::kClosed) connections_.pop_back();
  }
}

void AdminHttp::Read(Connection& c) {
  char buffer[4096];
  while (true) {
    ssize_t n = Receive(c.fd, buffer, sizeof buffer);
    if (n == 0) return;
    if (n < 0) {
      Close(c);  // gone before its request was complete
      return;
    }
    const std::size_t scan_from = c.in.size() >= 3 ? c.in.size() - 3 : 0;
    c.in.append(buffer, static_cast<std::size_t>(n));
    std::size_t end = HeadEnd(std::string_view(c.in).substr(scan_from));
    if (end != std::string_view::npos) end += scan_from;
    if (end != std::string_view::npos && end <= kMaxHead) {
      Answer(c, std::string_view(c.in).substr(0, end));
      return;
    }
    if (c.in.size() > kMaxHead) {
      Answer(c, {});  // too long: refused
      return;
    }
  }
}

void AdminHttp::Answer(Connection& c, std::string_view head) {
  Reply reply;
  bool head_only = false;
  std::string extra;
  if (head.empty()) {
    reply = {431, "text/plain; charset=utf-8",
             absl::StrCat("rpcboot admin: request head over ", kMaxHead, " bytes\n")};
  } else {
    std::string_view line = head.substr(0, head.find('\n'));
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t first = line.find(' ');
    std::size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    std::string_view method = line.substr(0, first);
    std::string_view target = second == std::string_view::npos
                                  ? std::string_view()
                                  : line.substr(first + 1, second - first - 1);
    std::string_view version =
        second == std::string_view::npos ? std::string_view() : line.substr(second + 1);
    if (target.empty() || target[0] != '/' || version.substr(0, 7) != "HTTP/1.") {
      reply = {400, "text/plain; charset=utf-8",
               "rpcboot admin: not an HTTP/1 request line (want: GET /path HTTP/1.1)\n"};
    } else if (method != "GET" && method != "HEAD") {
      reply = {405, "text/plain; charset=utf-8",
               "rpcboot admin: only GET and HEAD are served here\n"};
      extra = "Allow: GET, HEAD\r\n";
    } else {
      head_only = method == "HEAD";
      try {
        reply = handler_(target.substr(0, target.find_first_of("?#")));
      } catch (const std::exception& e) {
        reply = {500, "text/plain; charset=utf-8", absl::StrCat("rpcboot admin: ", e.what(), "\n")};
      } catch (...) {
        reply = {500, "text/plain; charset=utf-8", "rpcboot admin: unknown error\n"};
      }
    }
  }
  c.in.clear();
  c.in.shrink_to_fit();
  c.out = Response(reply, head_only, extra);
  c.sent = 0;
  c.state = Connection::State::kWriting;
  c.deadline = Clock::now() + kWriteDeadline;
  Write(c);
}

void AdminHttp::Write(Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // POLLOUT brings it back
    if (n <= 0) {
      Close(c);
      return;
    }
    c.sent += static_cast<std::size_t>(n);
  }
  // All out. Close our side, then read what the peer still sends until it closes too (closing
  // with unread bytes would reset the connection, and the peer could lose the answer).
  c.out.clear();
  c.out.shrink_to_fit();
  ::shutdown(c.fd, SHUT_WR);
  c.state = Connection::State::kLingering;
  c.since = Clock::now();
  c.deadline = c.since + kLinger;
  Linger(c);
}

void AdminHttp::Linger(Connection& c) {
  char buffer[4096];
  for (ssize_t n; (n = Receive(c.fd, buffer, sizeof buffer)) != 0;) {
    if (n < 0) {
      Close(c);  // the peer closed too
      return;
    }
  }
}

void AdminHttp::Close(Connection& c) {
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.state = Connection::State::kClosed;
}

}  // namespace rpcboot::internal
