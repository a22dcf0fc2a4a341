// One connection of a client channel that does its I/O on the calling thread (the Thrift channel,
// the native gRPC channel): a blocking TCP socket, TLS on it when the channel has TLS, reads and
// writes bounded by SO_RCVTIMEO/SO_SNDTIMEO. A call owns its connection while it runs; the
// channel pools idle ones.
#ifndef RPCBOOT_INTERNAL_CLIENT_CONNECTION_H_
#define RPCBOOT_INTERNAL_CLIENT_CONNECTION_H_

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "rpcboot/internal/socket.h"
#include "rpcboot/internal/tls.h"

namespace rpcboot {
class Cancellation;
struct CallOptions;
struct ChannelOptions;
struct TlsOptions;
}  // namespace rpcboot

namespace rpcboot::internal {

struct ClientConnection {
  int fd = -1;
  SSL* ssl = nullptr;                    // TLS: the session on fd
  std::string tls_error;                 // why TLS failed a read or write
  std::chrono::milliseconds timeout{0};  // the SO_RCVTIMEO last set
  std::chrono::steady_clock::time_point last_used;
};

// Where a channel connects, and how its errors name it.
struct ClientEndpoint {
  std::string protocol;  // "Thrift", "gRPC": the first word of every error
  std::string host;
  std::string port;
  SSL_CTX* tls = nullptr;   // null: plaintext
  std::string server_name;  // the name the server's certificate must carry; empty: host
  std::string alpn;         // TLS ALPN protocols in wire format ("\x02h2"); empty: none
  std::string Name() const { return host + ":" + port; }
};

// A call's time budget (ChannelOptions::TimeoutFor); throws RpcError(kDeadlineExceeded), naming
// `method` as not sent, when the deadline of the call being served has already passed.
std::chrono::milliseconds CallTimeout(const ChannelOptions& options, const CallOptions& call,
                                      const std::string& method);

// The endpoint of "host:port" ("[::1]:port" too) for `protocol`, with its TLS context in *context
// when tls.enabled (null otherwise). Throws RpcError(kInvalidArgument) naming what is wrong: not
// host:port, or a TLS file that cannot be used.
ClientEndpoint MakeClientEndpoint(const std::string& protocol, const std::string& host_port,
                                  const TlsOptions& tls, TlsContext* context);

// Connects and, with TLS, handshakes within the deadline. Throws UnsentError when nothing of a
// call can have left, RpcError(kDeadlineExceeded) when the deadline passed first.
ClientConnection ConnectClient(const ClientEndpoint& endpoint,
                               std::chrono::steady_clock::time_point deadline);
void CloseClientConnection(ClientConnection& conn);

// Sets the per-read and per-write timeout when it differs from the one set last.
void SetClientTimeout(ClientConnection& conn, std::chrono::milliseconds timeout);

// The whole of `data` written / exactly n bytes read / between 1 and n bytes read (*got), through
// TLS when the connection has it; false with *error set otherwise (and conn.tls_error when TLS
// itself failed).
bool SendAll(ClientConnection& conn, std::string_view data, IoError* error);
bool RecvAll(ClientConnection& conn, char* out, std::size_t n, IoError* error);
bool RecvSome(ClientConnection& conn, char* out, std::size_t n, std::size_t* got, IoError* error);

// True when a pooled connection idle since conn.last_used has nothing waiting to be read: a
// connection the server closed (idle timeout, restart) reads as readable.
bool LooksIdle(const ClientConnection& conn);

// Waits until the socket has something to read (or was closed, or failed): true; false when
// `deadline` passed first. Bytes TLS has read from the socket already (read-ahead) are not seen:
// check SSL_has_pending first.
bool WaitReadable(const ClientConnection& conn, std::chrono::steady_clock::time_point deadline);

// Lets a call be cancelled from another thread (hedging) while it blocks on its connection: the
// cancel shuts the socket down, which ends a blocked read or write at once. It shuts down a
// duplicate descriptor, closed only once the window ends, because the connection's own may be
// closed (and its number reused) before then.
class CancelScope {
 public:
  CancelScope(Cancellation* cancellation, int fd);
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  ~CancelScope() { Finish(); }
  // Ends the window for a cancel; true when one came (the socket may then be shut down, and the
  // connection must be closed, never reused).
  bool Finish();

 private:
  Cancellation* cancellation_ = nullptr;
  int fd_ = -1;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_CLIENT_CONNECTION_H_
