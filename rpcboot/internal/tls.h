// OpenSSL for rpcboot's own Thrift transport (gRPC brings its own TLS): contexts built from
// TlsOptions, the verified peer's identity, and readable errors.
#ifndef RPCBOOT_INTERNAL_TLS_H_
#define RPCBOOT_INTERNAL_TLS_H_

#include <memory>
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

// A PEM file read whole, or an error naming `key` and the file.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& key);

// True when `bytes` (the first bytes a peer sent) start a TLS record: a plaintext port uses it
// to say "TLS on a plaintext port" instead of reading a handshake as a frame length.
bool LooksLikeTls(std::string_view bytes);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_TLS_H_
