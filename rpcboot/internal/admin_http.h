// The admin port's HTTP server: GET and HEAD of a few pages, answered on one thread, for
// operators, health probes and scrapers. Every limit is enforced before the resource is spent, so
// that no peer can keep a probe from its answer:
//
//   - at most kMaxConnections open: a newcomer over it closes the connection that has waited
//     longest for its request (or lingers after its answer), and is itself closed when all of
//     them are being answered;
//   - a request's head (request line and headers) is at most kMaxHead bytes (431 otherwise) and
//     must have arrived within kRequestDeadline of the connection's accept, however slowly it
//     trickles (closed otherwise);
//   - the peer must take the answer within kWriteDeadline (closed otherwise);
//   - one request per connection: the answer says `Connection: close`, and what the peer sent
//     after its head is read and dropped for at most kLinger before the connection closes.
//
// A request is read as soon as its connection is accepted, so a client that sends it at once (a
// probe, a scraper) is answered before a flood of slow ones can push it out. Running out of file
// descriptors fails one connection (taken with a spare descriptor and closed), never the process.
#ifndef RPCBOOT_INTERNAL_ADMIN_HTTP_H_
#define RPCBOOT_INTERNAL_ADMIN_HTTP_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/base/log.h"

namespace rpcboot::internal {

class SpareDescriptor;

class AdminHttp {
 public:
  struct Reply {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  // Answers a GET (or HEAD) of `path`: the request target without its query. May throw: the
  // peer then gets 500 with the exception's message.
  using Handler = std::function<Reply(std::string_view path)>;

  static constexpr std::size_t kMaxConnections = 64;
  static constexpr std::size_t kMaxHead = 16 * 1024;
  static constexpr std::chrono::milliseconds kRequestDeadline{5000};
  static constexpr std::chrono::milliseconds kWriteDeadline{5000};
  static constexpr std::chrono::milliseconds kLinger{1000};

  explicit AdminHttp(Handler handler);
  ~AdminHttp();  // Stop
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  // Binds host:port (0: a free port) and serves on a thread of its own. The error names the
  // address, or says the thread could not start.
  absl::Status Start(const std::string& host, int port);
  int port() const { return port_; }
  // Closes the port and every connection; joins the thread.
  void Stop();

 private:
  struct Connection;
  void Serve();
  void Accept(std::chrono::steady_clock::time_point now);
  void Read(Connection& c);
  void Answer(Connection& c, std::string_view head);
  void Write(Connection& c);
  void Linger(Connection& c);
  void Close(Connection& c);

  const Handler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stopping_{false};
  std::vector<Connection> connections_;  // the serving thread's
  std::unique_ptr<SpareDescriptor> spare_;
  std::chrono::steady_clock::time_point accept_paused_until_{};
  LogLimiter flood_log_;
  std::thread thread_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_ADMIN_HTTP_H_
