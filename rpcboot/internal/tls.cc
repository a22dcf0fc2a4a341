#include "rpcboot/internal/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/internal/read_file.h"

namespace rpcboot::internal {
namespace {

// A certificate, key or CA bundle is read up to this size (a system CA bundle is about 200 KiB).
constexpr std::size_t kMaxPemFileBytes = 16 << 20;

// TLS 1.2's forward-secret AEAD suites (TLS 1.3 has only such suites).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string DrainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed" -> the reason only.
    std::string_view text = buf;
    std::size_t colon = text.rfind(':');
    if (colon != std::string_view::npos) text = text.substr(colon + 1);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

// A socket BIO whose writes use MSG_NOSIGNAL: OpenSSL's own socket BIO writes with write(), and a
// peer that reset its connection would raise SIGPIPE in the process.
int FdOf(BIO* bio) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))); }

bool Retryable(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

int BioWrite(BIO* bio, const char* data, int n) {
  BIO_clear_retry_flags(bio);
  ssize_t sent = ::send(FdOf(bio), data, static_cast<std::size_t>(n), MSG_NOSIGNAL);
  if (sent < 0 && Retryable(errno)) BIO_set_retry_write(bio);
  return static_cast<int>(sent);
}

int BioRead(BIO* bio, char* out, int n) {
  BIO_clear_retry_flags(bio);
  ssize_t got = ::recv(FdOf(bio), out, static_cast<std::size_t>(n), 0);
  if (got < 0 && Retryable(errno)) BIO_set_retry_read(bio);
  return static_cast<int>(got);
}

int BioPuts(BIO* bio, const char* text) {
  return BioWrite(bio, text, static_cast<int>(std::strlen(text)));
}

long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

int BioDestroy(BIO*) { return 1; }  // the descriptor belongs to the caller

BIO_METHOD* SocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rpcboot socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_puts(m, BioPuts);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    BIO_meth_set_destroy(m, BioDestroy);
    return m;
  }();
  return method;
}

TlsContext Wrap(SSL_CTX* ctx) { return TlsContext(ctx, SSL_CTX_free); }

absl::Status Base(SSL_CTX* ctx, const std::string& key) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A peer that closes without close_notify reads as an orderly end, as TCP's does.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes of a moving buffer: the event loop writes what the socket takes and
  // retries with the rest; idle connections give their buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // One recv takes what the socket holds, not a record header and then its body: half the
  // system calls. (A reader then asks SSL_has_pending, not the socket, whether bytes wait.)
  SSL_CTX_set_read_ahead(ctx, 1);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    return absl::InternalError(absl::StrCat(key, ": cipher list refused: ", DrainErrors()));
  }
  return absl::OkStatus();
}

absl::Status LoadCertificate(SSL_CTX* ctx, const TlsOptions& options, const std::string& key) {
  for (const auto& [file, name] :
       {std::pair{&options.cert_file, "cert_file"}, std::pair{&options.key_file, "key_file"}}) {
    if (absl::StatusOr<std::string> pem = ReadPemFile(*file, absl::StrCat(key, ".", name));
        !pem.ok())
      return pem.status();
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key, ".cert_file: ", options.cert_file,
                                                   " is not a PEM certificate: ", DrainErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key, ".key_file: ", options.key_file,
                                                   " cannot be used with ", options.cert_file, ": ",
                                                   DrainErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key, ".key_file: ", options.key_file,
                                                   " does not match ", options.cert_file, ": ",
                                                   DrainErrors()));
  }
  return absl::OkStatus();
}

absl::Status LoadCa(SSL_CTX* ctx, const std::string& ca_file, const std::string& key) {
  if (absl::StatusOr<std::string> pem = ReadPemFile(ca_file, absl::StrCat(key, ".ca_file"));
      !pem.ok())
    return pem.status();
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ".ca_file: ", ca_file, " holds no PEM certificate: ", DrainErrors()));
  }
  return absl::OkStatus();
}

std::string NameEntry(X509_NAME* name, int nid) {
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& key) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(key, " is not set"));
  std::string text;
  ReadFileResult read = ReadFileUpTo(path, kMaxPemFileBytes, &text);
  if (read != ReadFileResult::kOk) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": ", path, " ", ReadFileProblem(read, kMaxPemFileBytes)));
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": ", path, " is not a PEM file"));
  }
  return text;
}

absl::StatusOr<TlsContext> MakeServerTlsContext(const TlsOptions& options, const std::string& key) {
  TlsContext ctx = Wrap(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return absl::InternalError("TLS: " + DrainErrors());
  if (absl::Status s = Base(ctx.get(), key); !s.ok()) return s;
  if (absl::Status s = LoadCertificate(ctx.get(), options, key); !s.ok()) return s;
  if (!options.ca_file.empty()) {
    if (absl::Status s = LoadCa(ctx.get(), options.ca_file, key); !s.ok()) return s;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(
        ctx.get(),
        SSL_VERIFY_PEER | (options.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        nullptr);
  } else if (options.require_client_cert) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ".require_client_cert needs ", key,
                     ".ca_file: the CAs that sign the client certificates"));
  }
  // No session tickets: a ticket sent after the handshake would make an idle client
  // connection look readable (closed) to a pool that checks it.
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

absl::StatusOr<TlsContext> MakeClientTlsContext(const TlsOptions& options, const std::string& key) {
  TlsContext ctx = Wrap(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError("TLS: " + DrainErrors());
  if (absl::Status s = Base(ctx.get(), key); !s.ok()) return s;
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    if (absl::Status s = LoadCertificate(ctx.get(), options, key); !s.ok()) return s;
  }
  if (!options.ca_file.empty()) {
    if (absl::Status s = LoadCa(ctx.get(), options.ca_file, key); !s.ok()) return s;
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return absl::InternalError(
        absl::StrCat(key, ": the system's CAs cannot be loaded: ", DrainErrors()));
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

SSL* NewSsl(SSL_CTX* ctx, int fd) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  BIO* bio = BIO_new(SocketMethod());
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio);
  return ssl;
}

void ExpectPeerName(SSL* ssl, const std::string& name) {
  in6_addr addr6;
  in_addr addr4;
  bool is_ip = ::inet_pton(AF_INET, name.c_str(), &addr4) == 1 ||
               ::inet_pton(AF_INET6, name.c_str(), &addr6) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, name.c_str());
    SSL_set_tlsext_host_name(ssl, name.c_str());
  }
}

PeerIdentity CertificateIdentity(SSL* ssl) {
  PeerIdentity identity;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return identity;
  X509_NAME* subject = X509_get_subject_name(cert);
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) identity.subject.assign(data, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  std::string first_name;
  if (auto* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type == GEN_DNS || name->type == GEN_URI) {
        const ASN1_IA5STRING* text =
            name->type == GEN_DNS ? name->d.dNSName : name->d.uniformResourceIdentifier;
        std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                          static_cast<std::size_t>(ASN1_STRING_length(text)));
        identity.alt_names.push_back((name->type == GEN_DNS ? "DNS:" : "URI:") + value);
        if (first_name.empty()) first_name = value;
      } else if (name->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        int family = ASN1_STRING_length(ip) == 16 ? AF_INET6 : AF_INET;
        if (::inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) != nullptr)
          identity.alt_names.push_back(std::string("IP:") + text);
      }
    }
    GENERAL_NAMES_free(names);
  }
  identity.principal = !first_name.empty() ? first_name : NameEntry(subject, NID_commonName);
  if (!identity.principal.empty()) identity.source = "certificate";
  return identity;
}

std::string TlsError(SSL* ssl) {
  std::string errors = DrainErrors();
  if (ssl != nullptr) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      return absl::StrCat(errors.empty() ? "certificate verify failed" : errors, ": ",
                          X509_verify_cert_error_string(verify));
    }
  }
  return errors.empty() ? "connection closed during the TLS handshake" : errors;
}

bool LooksLikeTls(std::string_view bytes) {
  // A record header: content type (20..23: change_cipher_spec, alert, handshake,
  // application_data), then major version 3.
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) >= 20 &&
         static_cast<unsigned char>(bytes[0]) <= 23 && bytes[1] == 3;
}

ServerTlsSession::~ServerTlsSession() {
  if (ssl != nullptr) SSL_free(ssl);
}

ssize_t ServerTlsSend(ServerTlsSession& tls, const char* data, std::size_t n) {
  ERR_clear_error();
  int sent = SSL_write(tls.ssl, data, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
  if (sent > 0) return sent;
  int error = SSL_get_error(tls.ssl, sent);
  if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) {
    errno = EAGAIN;
  } else if (error != SSL_ERROR_SYSCALL || errno == 0) {
    errno = EPIPE;
  }
  return -1;
}

ssize_t ServerTlsRecv(ServerTlsSession& tls, int fd, char* out, std::size_t n) {
  if (SSL_in_before(tls.ssl)) {
    // A plaintext client on this port: say so, rather than what OpenSSL makes of its bytes.
    char first[1];
    ssize_t peeked = ::recv(fd, first, sizeof first, MSG_PEEK);
    if (peeked > 0 && static_cast<unsigned char>(first[0]) != 22) {  // not a handshake record
      // Answer with a TLS alert (unexpected_message), which an rpcboot client reads as "this
      // port speaks TLS". What the client sent is read first: closing a socket with unread
      // bytes resets the connection, and the reset would overtake the alert.
      static constexpr char kAlert[] = {21, 3, 3, 0, 2, 2, 10};
      char sink[4096];
      for (int i = 0; i < 16 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
      }
      [[maybe_unused]] ssize_t sent =
          ::send(fd, kAlert, sizeof kAlert, MSG_NOSIGNAL | MSG_DONTWAIT);
      tls.error = "not a TLS handshake: a plaintext client on a TLS port (the client needs TLS on)";
      errno = EPROTO;
      return -1;
    }
  }
  ERR_clear_error();
  errno = 0;
  int got = SSL_read(tls.ssl, out, static_cast<int>(n));
  if (!tls.ready && SSL_is_init_finished(tls.ssl)) {
    tls.ready = true;
    PeerIdentity identity = CertificateIdentity(tls.ssl);
    if (!identity.principal.empty()) tls.certificate = std::move(identity);
  }
  if (got > 0) return got;
  switch (SSL_get_error(tls.ssl, got)) {
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      tls.wants_write = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_SYSCALL:
      if (errno == 0) return 0;
      return -1;
    default:
      tls.error = (tls.ready ? "" : "handshake failed: ") + TlsError(tls.ssl);
      errno = EPROTO;
      return -1;
  }
}

}  // namespace rpcboot::internal
