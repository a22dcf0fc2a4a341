// Transport security and caller identity, shared by servers and channels.
//
//   rpcboot::ServerOptions server;
//   server.tls.cert_file = "shop.crt";          // TLS on both of the server's ports
//   server.tls.key_file = "shop.key";
//   server.tls.ca_file = "ca.crt";              // client certificates signed by this CA...
//   server.tls.require_client_cert = true;      // ...and required (mutual TLS)
//   server.auth.allow = {"order shop.ShopService/*"};  // only "order" calls ShopService
//
//   rpcboot::ChannelOptions client;
//   client.tls.enabled = true;
//   client.tls.ca_file = "ca.crt";              // the server's certificate must chain to it
//   client.tls.cert_file = "order.crt";         // mutual TLS: this client's certificate
//   client.tls.key_file = "order.key";
//   client.bearer_token = "...";                // or: a per-call credential
//
// A handler reads who called from ServerContext::Current()->identity().
#ifndef RPCBOOT_SECURITY_H_
#define RPCBOOT_SECURITY_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rpcboot {

// TLS 1.2 or 1.3 with forward-secret AEAD ciphers only; certificates and keys in PEM files.
struct TlsOptions {
  // Server: TLS is on when cert_file is set. Client: TLS is on when `enabled` is set (any
  // client tls key sets it), or when the registry says an instance serves TLS.
  bool enabled = false;
  // Server: its certificate chain and key (required for TLS). Client: its certificate for
  // mutual TLS (optional).
  std::string cert_file;
  std::string key_file;
  // Server: the CAs that sign client certificates (a client certificate is verified against
  // them when one is sent). Client: the CAs that sign server certificates; empty: the system's.
  std::string ca_file;
  // Server: a client without a certificate signed by ca_file is refused at the handshake.
  bool require_client_cert = false;
  // Client: the name the server's certificate must carry (a DNS name or IP address in its
  // subjectAltName); empty: the host of the address called.
  std::string server_name;
};

// Who is calling, as far as the server could verify it.
struct PeerIdentity {
  // The caller's name: a bearer token's principal when the call carried an accepted token,
  // else the client certificate's first URI or DNS subjectAltName, else its common name.
  // Empty: anonymous.
  std::string principal;
  // "token", "certificate", or "" (anonymous).
  std::string source;
  // Of a verified client certificate: its subject ("CN=order,O=acme") and subjectAltNames
  // ("DNS:order.internal", "URI:spiffe://acme/order", "IP:10.0.0.7").
  std::string subject;
  std::vector<std::string> alt_names;
};

// Who may call what. Checked for every call before its handler runs, on both protocols.
struct AuthOptions {
  // Bearer tokens (gRPC metadata "authorization: Bearer <token>", THeader header
  // "authorization"): returns the principal a token stands for, or nothing to refuse it
  // (UNAUTHENTICATED). Unset: tokens are checked against `tokens_file` when set, else ignored.
  std::function<std::optional<std::string>(std::string_view token)> verify_token;
  // A file of "<principal> <token>" lines (server.auth.tokens_file).
  std::string tokens_file;
  // Calls without a verified identity (no client certificate, no accepted token) are refused
  // UNAUTHENTICATED.
  bool require_identity = false;
  // "<principal> <package.Service>/<Method>" entries; "*" matches any principal (also an
  // anonymous one), "<package.Service>/*" any method, "*/*" everything. Empty: no list (every
  // call passes this check). A call no entry allows is refused PERMISSION_DENIED.
  std::vector<std::string> allow;
  // Your own decision, after the checks above: `method` is "/package.Service/Method". Return
  // an empty string to allow, or the reason to refuse (PERMISSION_DENIED). Runs on a handler
  // thread, like the handler, under the call's ServerContext (its metadata, deadline, peer).
  std::function<std::string(std::string_view method, const PeerIdentity& caller)> authorize;
};

}  // namespace rpcboot

#endif  // RPCBOOT_SECURITY_H_
