// OpenSSL for rpcboot's own Thrift transport (gRPC brings its own TLS): contexts built from
// TlsOptions, the verified peer's identity, and readable errors.
#ifndef RPCBOOT_INTERNAL_TLS_H_
#define RPCBOOT_INTERNAL_TLS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rpcboot/security.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace rpcboot::internal {

using TlsContext = std::shared_ptr<SSL_CTX>;

// A server context: certificate, key, client verification as `options` says. Errors name the
// `key` prefix ("server.tls") and the file that is wrong.
absl::StatusOr<TlsContext> MakeServerTlsContext(const TlsOptions& options, const std::string& key);
// A client context: server verification against ca_file (or the system's CAs), and this
// client's certificate when cert_file is set.
absl::StatusOr<TlsContext> MakeClientTlsContext(const TlsOptions& options, const std::string& key);

// A session on socket `fd` (not owned: the caller closes it after SSL_free). Its reads and
// writes never raise SIGPIPE (send with MSG_NOSIGNAL), on blocking and non-blocking sockets
// alike. nullptr when OpenSSL is out of memory.
SSL* NewSsl(SSL_CTX* ctx, int fd);

// Sets the name `ssl`'s peer certificate must carry (a DNS name or an IP address) and SNI.
void ExpectPeerName(SSL* ssl, const std::string& name);

// The verified client certificate of `ssl` as an identity (empty when it sent none).
PeerIdentity CertificateIdentity(SSL* ssl);

// The reason for the last failure on this thread (OpenSSL's error queue, emptied), with what
// certificate verification said when it failed: "certificate verify failed: unable to get
// local issuer certificate".
std::string TlsError(SSL* ssl);

// A server's TLS session on a non-blocking socket, as an event loop drives it (the Thrift loops,
// the native gRPC server's).
struct ServerTlsSession {
  SSL* ssl = nullptr;        // freed with the session
  bool ready = false;        // its handshake is done
  bool wants_write = false;  // a read waits for the socket to take bytes (a handshake message)
  std::string error;         // why TLS refused the peer
  std::optional<PeerIdentity> certificate;  // the client's certificate, once verified

  ServerTlsSession() = default;
  ServerTlsSession(const ServerTlsSession&) = delete;
  ServerTlsSession& operator=(const ServerTlsSession&) = delete;
  ~ServerTlsSession();
};

// Reads from `tls` on socket `fd`, driving its handshake: bytes read, 0 at the end, or -1 with
// errno: EAGAIN (wait for more; with tls.wants_write, for the socket to be writable), EPROTO (TLS
// refused the peer; tls.error says why). A plaintext client is told so with a TLS alert.
ssize_t ServerTlsRecv(ServerTlsSession& tls, int fd, char* out, std::size_t n);
// Writes through `tls` without blocking: bytes taken, or -1 with errno (EAGAIN: try when the
// socket is writable).
ssize_t ServerTlsSend(ServerTlsSession& tls, const char* data, std::size_t n);

// A PEM file read whole, or an error naming `key` and the file.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& key);

// True when `bytes` (the first bytes a peer sent) start a TLS record: a plaintext port uses it
// to say "TLS on a plaintext port" instead of reading a handshake as a frame length.
bool LooksLikeTls(std::string_view bytes);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_TLS_H_
