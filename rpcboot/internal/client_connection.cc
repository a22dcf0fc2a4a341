#include "rpcboot/internal/client_connection.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "rpcboot/base/internal/host_port.h"
#include "rpcboot/channel.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {
namespace {

// On a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO, "want read/write" is the timeout.
IoError TlsIoError(ClientConnection& conn, int result) {
  switch (SSL_get_error(conn.ssl, result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return IoError::kTimeout;
    case SSL_ERROR_ZERO_RETURN:
      return IoError::kClosed;
    case SSL_ERROR_SYSCALL:
      return errno == 0 ? IoError::kClosed : IoError::kFailed;
    default:
      // An alert from the server (it refused this client's certificate) or a bad record.
      conn.tls_error = TlsError(conn.ssl);
      return IoError::kFailed;
  }
}

// TLS: the handshake within the call's deadline, the server's certificate verified against the
// CAs for the endpoint's server name (default: the host called). Nothing of a call has left.
void Handshake(const ClientEndpoint& endpoint, ClientConnection& conn,
               std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  SetSocketTimeouts(conn.fd, std::max(left, std::chrono::milliseconds(1)));
  conn.ssl = NewSsl(endpoint.tls, conn.fd);
  if (conn.ssl == nullptr) {
    CloseClientConnection(conn);
    throw UnsentError(endpoint.protocol + ": TLS to " + endpoint.Name() + ": out of memory");
  }
  ExpectPeerName(conn.ssl, endpoint.server_name.empty() ? endpoint.host : endpoint.server_name);
  if (!endpoint.alpn.empty()) {
    SSL_set_alpn_protos(conn.ssl, reinterpret_cast<const unsigned char*>(endpoint.alpn.data()),
                        static_cast<unsigned>(endpoint.alpn.size()));
  }
  ERR_clear_error();
  errno = 0;
  int result = SSL_connect(conn.ssl);
  if (result == 1) return;
  IoError error = TlsIoError(conn, result);
  std::string why = error == IoError::kClosed
                        ? "the server closed the connection (is its port TLS?)"
                        : TlsError(conn.ssl);
  CloseClientConnection(conn);
  if (error == IoError::kTimeout) {
    throw RpcError(StatusCode::kDeadlineExceeded, endpoint.protocol + ": TLS handshake with " +
                                                      endpoint.Name() +
                                                      " not done within the deadline");
  }
  throw UnsentError(endpoint.protocol + ": TLS handshake with " + endpoint.Name() +
                    " failed: " + why);
}

}  // namespace

std::chrono::milliseconds CallTimeout(const ChannelOptions& options, const CallOptions& call,
                                      const std::string& method) {
  std::chrono::milliseconds timeout = options.TimeoutFor(call);
  if (timeout.count() <= 0) {
    throw RpcError(StatusCode::kDeadlineExceeded,
                   "deadline of the call being served has passed; " + method + " not sent");
  }
  return timeout;
}

ClientEndpoint MakeClientEndpoint(const std::string& protocol, const std::string& host_port,
                                  const TlsOptions& tls, TlsContext* context) {
  if (!IsHostPort(host_port)) {
    throw RpcError(StatusCode::kInvalidArgument,
                   protocol + " endpoint '" + host_port + "' is not host:port");
  }
  std::size_t colon = host_port.rfind(':');
  ClientEndpoint endpoint;
  endpoint.protocol = protocol;
  endpoint.host = host_port.substr(0, colon);
  if (endpoint.host.front() == '[') endpoint.host = endpoint.host.substr(1, colon - 2);
  endpoint.port = host_port.substr(colon + 1);
  endpoint.server_name = tls.server_name;
  context->reset();
  if (tls.enabled) {
    absl::StatusOr<TlsContext> made = MakeClientTlsContext(tls, "tls");
    if (!made.ok())
      throw RpcError(StatusCode::kInvalidArgument, std::string(made.status().message()));
    *context = *std::move(made);
    endpoint.tls = context->get();
  }
  return endpoint;
}

ClientConnection ConnectClient(const ClientEndpoint& endpoint,
                               std::chrono::steady_clock::time_point deadline) {
  ConnectError error;
  int fd = Connect(endpoint.host, endpoint.port, deadline, &error);
  if (fd < 0) {
    if (error.kind == ConnectError::Kind::kTimeout) {
      throw RpcError(StatusCode::kDeadlineExceeded, endpoint.protocol + ": " + error.message);
    }
    throw UnsentError(endpoint.protocol + ": " + error.message);
  }
  ClientConnection conn;
  conn.fd = fd;
  if (endpoint.tls != nullptr) Handshake(endpoint, conn, deadline);
  return conn;
}

void CloseClientConnection(ClientConnection& conn) {
  if (conn.ssl != nullptr) SSL_free(conn.ssl);
  conn.ssl = nullptr;
  if (conn.fd >= 0) ::close(conn.fd);
  conn.fd = -1;
}

void SetClientTimeout(ClientConnection& conn, std::chrono::milliseconds timeout) {
  if (conn.timeout == timeout) return;
  SetSocketTimeouts(conn.fd, timeout);
  conn.timeout = timeout;
}

bool SendAll(ClientConnection& conn, std::string_view data, IoError* error) {
  if (conn.ssl == nullptr) return SendFull(conn.fd, data, error);
  while (!data.empty()) {
    ERR_clear_error();
    int n = SSL_write(conn.ssl, data.data(),
                      static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
    if (n <= 0) {
      *error = TlsIoError(conn, n);
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool RecvAll(ClientConnection& conn, char* out, std::size_t n, IoError* error) {
  if (conn.ssl == nullptr) return RecvFull(conn.fd, out, n, error);
  while (n > 0) {
    std::size_t got = 0;
    if (!RecvSome(conn, out, n, &got, error)) return false;
    out += got;
    n -= got;
  }
  return true;
}

bool RecvSome(ClientConnection& conn, char* out, std::size_t n, std::size_t* got, IoError* error) {
  if (conn.ssl != nullptr) {
    ERR_clear_error();
    int read = SSL_read(conn.ssl, out, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (read <= 0) {
      *error = TlsIoError(conn, read);
      return false;
    }
    *got = static_cast<std::size_t>(read);
    return true;
  }
  return RecvSome(conn.fd, out, n, got, error);
}

bool LooksIdle(const ClientConnection& conn) {
  if (conn.ssl != nullptr && SSL_has_pending(conn.ssl) != 0) return false;
  pollfd p{conn.fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

bool WaitReadable(const ClientConnection& conn, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{conn.fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // the read that follows says what failed
  }
}

CancelScope::CancelScope(Cancellation* cancellation, int fd) {
  if (cancellation == nullptr) return;
  fd_ = ::dup(fd);
  if (fd_ < 0) return;  // out of descriptors: the call goes on, not cancellable
  cancellation_ = cancellation;
  int shut = fd_;
  cancellation->OnCancel([shut] { ::shutdown(shut, SHUT_RDWR); });
}

bool CancelScope::Finish() {
  bool cancelled = false;
  if (cancellation_ != nullptr) {
    cancellation_->Clear();
    cancelled = cancellation_->cancelled();
    cancellation_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return cancelled;
}

}  // namespace rpcboot::internal
