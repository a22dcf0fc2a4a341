// TLS and caller identity over both protocols, with certificates made by the openssl command
// (scripts/make-test-certs.sh): TLS and mutual TLS calls, every wrong-certificate case failing
// with a clear error while the server keeps serving, plaintext against TLS both ways, bearer
// tokens, the allow list and the authorize hook.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

// Counts calls and remembers who made the last one, as the handler saw it.
class WhoImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override {
    const ServerContext* call = ServerContext::Current();
    std::lock_guard<std::mutex> lock(mu_);
    principal_ = call->identity().principal;
    source_ = call->identity().source;
    subject_ = call->identity().subject;
    return testing::RichServiceImpl::Count();
  }
  std::string principal() {
    std::lock_guard<std::mutex> lock(mu_);
    return principal_;
  }
  std::string source() {
    std::lock_guard<std::mutex> lock(mu_);
    return source_;
  }
  std::string subject() {
    std::lock_guard<std::mutex> lock(mu_);
    return subject_;
  }

 private:
  std::mutex mu_;
  std::string principal_, source_, subject_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/rpcboot-tls-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = new std::string(pattern);
    std::string command =
        std::string(RPCBOOT_SOURCE_DIR) + "/scripts/make-test-certs.sh " + *dir_ + " >/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0)
        << "making test certificates failed: is the openssl command installed? (apt-get "
           "install openssl)";
  }
  static void TearDownTestSuite() {
    std::system(("rm -rf " + *dir_).c_str());
    delete dir_;
  }

  static std::string File(const std::string& name) { return *dir_ + "/" + name; }

  // A server for the rich service on both protocols, TLS with `cert` (server, expired, ...).
  std::unique_ptr<Server> StartServer(std::shared_ptr<WhoImpl> impl, const std::string& cert,
                                      std::function<void(ServerOptions&)> more = nullptr) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.grpc_server = rpcboot::testing::TestGrpcServer();
    options.thrift_port = 0;
    if (!cert.empty()) {
      options.tls.cert_file = File(cert + ".crt");
      options.tls.key_file = File(cert + ".key");
    }
    if (more) more(options);
    auto server = std::make_unique<Server>(options);
    server->AddService<rich::RichService>(impl);
    absl::Status s = server->Start();
    EXPECT_TRUE(s.ok()) << s;
    return server;
  }

  static ChannelOptions Client(const std::string& ca, const std::string& cert = "") {
    ChannelOptions options;
    options.default_timeout = std::chrono::seconds(5);
    options.tls.enabled = true;
    options.tls.ca_file = File(ca + ".crt");
    if (!cert.empty()) {
      options.tls.cert_file = File(cert + ".crt");
      options.tls.key_file = File(cert + ".key");
    }
    return options;
  }

  struct Path {
    std::string name;
    Protocol protocol;
    bool header;
    GrpcClient grpc_client = GrpcClient::kNative;
    // rpcboot's own TLS code (Thrift, native gRPC): its errors say what TLS found.
    bool own_tls() const { return grpc_client == GrpcClient::kNative; }
  };
  static std::vector<Path> Paths() {
    return {{"gRPC", Protocol::kGrpc, false},
            {"gRPC (grpcpp)", Protocol::kGrpc, false, GrpcClient::kGrpcpp},
            {"Thrift", Protocol::kThrift, false},
            {"Thrift THeader", Protocol::kThrift, true}};
  }

  static std::shared_ptr<rich::RichService> Proxy(const Server& server, const Path& path,
                                                  ChannelOptions options) {
    options.thrift_header = path.header;
    options.grpc_client = path.grpc_client;
    int port = path.protocol == Protocol::kGrpc ? server.grpc_port() : server.thrift_port();
    return MakeClient<rich::RichService>(
        MakeChannel("127.0.0.1:" + std::to_string(port), path.protocol, options));
  }

  // The error of one Count() call, or "" when it succeeded.
  static std::string Fails(rich::RichService& client, StatusCode* code = nullptr) {
    try {
      client.Count();
      return "";
    } catch (const RpcError& e) {
      if (code != nullptr) *code = e.code();
      return std::string(e.what()).empty() ? "(empty message)" : e.what();
    }
  }

  static std::string* dir_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, CallsOverTlsOnBothProtocols) {
  auto impl = std::make_shared<WhoImpl>();
  auto server = StartServer(impl, "server");
  for (const Path& path : Paths()) {
    auto client = Proxy(*server, path, Client("ca"));
    EXPECT_EQ(Fails(*client), "") << path.name;
    EXPECT_EQ(impl->principal(), "") << path.name << ": no client certificate: anonymous";
    rich::EchoRequest request;
    request.value.end = std::string(200000, 'x');  // several TLS records each way
    EXPECT_EQ(client->Echo(request).end, request.value.end) << path.name;
  }
  // A name rather than an IP: the certificate says localhost too.
  ChannelOptions by_name = Client("ca");
  auto client = MakeClient<rich::RichService>(MakeChannel(
      "localhost:" + std::to_string(server->thrift_port()), Protocol::kThrift, by_name));
  EXPECT_EQ(Fails(*client), "");
}

// server.thrift_io: uring serves plaintext only: a server with TLS keeps its loops on epoll,
// says so, and serves over TLS.
TEST_F(TlsTest, AUringServerWithTlsSaysItUsesEpollAndServesOverTls) {
  testing::CapturedLog captured;
  auto impl = std::make_shared<WhoImpl>();
  auto server = StartServer(impl, "server", [](ServerOptions& options) {
    options.thrift_io = ServerOptions::ThriftIo::kUring;
  });
  auto client = MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server->thrift_port()), Client("ca")));
  EXPECT_EQ(client->Count(), 1);
  server->Shutdown();
  const std::string log = captured.text();
  EXPECT_NE(log.find("server.thrift_io uring serves plaintext only; with TLS the loops use epoll"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("(TLS; I/O threads: "), std::string::npos) << log;
  EXPECT_NE(log.find(" on epoll)"), std::string::npos) << log;
}

TEST_F(TlsTest, MutualTlsGivesTheHandlerTheCallersIdentity) {
  auto impl = std::make_shared<WhoImpl>();
  auto server = StartServer(impl, "server", [](ServerOptions& o) {
    o.tls.ca_file = File("ca.crt");
    o.tls.require_client_cert = true;
  });
  for (const Path& path : Paths()) {
    EXPECT_EQ(Fails(*Proxy(*server, path, Client("ca", "client"))), "") << path.name;
    EXPECT_EQ(impl->principal(), "order") << path.name << ": the certificate's CN";
    EXPECT_EQ(impl->source(), "certificate") << path.name;
    EXPECT_NE(impl->subject().find("CN=order"), std::string::npos) << impl->subject();
    EXPECT_EQ(Fails(*Proxy(*server, path, Client("ca", "ops"))), "") << path.name;
    EXPECT_EQ(impl->principal(), "spiffe://acme/ops") << path.name << ": a URI SAN first";
  }
}

TEST_F(TlsTest, EveryWrongCertificateFailsClearlyAndTheServerKeepsServing) {
  auto impl = std::make_shared<WhoImpl>();
  auto mtls = StartServer(impl, "server", [](ServerOptions& o) {
    o.tls.ca_file = File("ca.crt");
    o.tls.require_client_cert = true;
  });
  auto expired = StartServer(impl, "expired");
  auto wrong_host = StartServer(impl, "wronghost");
  struct Case {
    std::string name;
    Server* server;
    ChannelOptions options;
    std::string expect;  // in the error message
  };
  ChannelOptions renamed = Client("ca");
  std::vector<Case> cases = {
      {"no client certificate", mtls.get(), Client("ca"), ""},
      {"client certificate of another CA", mtls.get(), Client("ca", "rogue"), ""},
      {"server certificate of another CA", mtls.get(), Client("rogue-ca", "client"), "verif"},
      {"expired server certificate", expired.get(), Client("ca"), "expired"},
      {"server certificate for another host", wrong_host.get(), Client("ca"), ""},
  };
  for (const Path& path : Paths()) {
    for (Case& c : cases) {
      StatusCode code = StatusCode::kOk;
      std::string error = Fails(*Proxy(*c.server, path, c.options), &code);
      EXPECT_NE(error, "") << path.name << ", " << c.name << ": the call went through";
      std::cout << path.name << ", " << c.name << ": " << error << "\n";
      EXPECT_EQ(code, StatusCode::kUnavailable) << path.name << ", " << c.name << ": " << error;
      if (path.protocol == Protocol::kThrift) {
        EXPECT_NE(error.find("TLS"), std::string::npos) << c.name << ": " << error;
      }
      if (path.own_tls()) {
        EXPECT_NE(error.find(c.expect), std::string::npos) << c.name << ": " << error;
      }
    }
    // And the server still serves a good client.
    EXPECT_EQ(Fails(*Proxy(*mtls, path, Client("ca", "client"))), "") << path.name;
  }
  // The name the certificate carries, given: the same server is fine.
  renamed.tls.server_name = "other.example";
  for (const Path& path : Paths()) {
    EXPECT_EQ(Fails(*Proxy(*wrong_host, path, renamed)), "") << path.name;
  }
}

TEST_F(TlsTest, PlaintextAgainstTlsFailsClearlyBothWays) {
  auto impl = std::make_shared<WhoImpl>();
  auto tls = StartServer(impl, "server");
  auto plain = StartServer(impl, "");
  for (const Path& path : Paths()) {
    StatusCode code = StatusCode::kOk;
    std::string error = Fails(*Proxy(*tls, path, ChannelOptions{}), &code);
    std::cout << path.name << ", plaintext to TLS: " << error << "\n";
    EXPECT_EQ(code, StatusCode::kUnavailable) << path.name << ": " << error;
    if (path.protocol == Protocol::kThrift) {
      EXPECT_NE(error.find("answered in TLS"), std::string::npos) << error;
    } else if (path.own_tls()) {  // a gRPC TLS port closes at once, or answers with an alert
      EXPECT_TRUE(error.find("is its port TLS? this client has TLS off") != std::string::npos ||
                  error.find("answered in TLS") != std::string::npos)
          << error;
    }
    error = Fails(*Proxy(*plain, path, Client("ca")), &code);
    std::cout << path.name << ", TLS to plaintext: " << error << "\n";
    EXPECT_EQ(code, StatusCode::kUnavailable) << path.name << ": " << error;
    if (path.own_tls()) {
      EXPECT_NE(error.find("TLS handshake"), std::string::npos) << error;
    }
    EXPECT_EQ(Fails(*Proxy(*tls, path, Client("ca"))), "") << path.name << ": still serving";
    EXPECT_EQ(Fails(*Proxy(*plain, path, ChannelOptions{})), "") << path.name;
  }
}

TEST_F(TlsTest, BadTlsFilesAreNamedAtStart) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  options.tls.cert_file = File("server.crt");
  options.tls.key_file = File("client.key");  // another certificate's key
  Server mismatched(options);
  mismatched.AddService<rich::RichService>(std::make_shared<WhoImpl>());
  absl::Status s = mismatched.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("server.tls.key_file"), std::string::npos) << s;
  EXPECT_NE(s.message().find("cannot be used with"), std::string::npos) << s;

  options.tls.key_file = File("missing.key");
  options.thrift_port = -1;
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  Server missing(options);
  missing.AddService<rich::RichService>(std::make_shared<WhoImpl>());
  s = missing.Start();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing.key cannot be read"), std::string::npos) << s;

  // A device named as a certificate is read up to a bound, not until memory runs out.
  for (bool grpc : {false, true}) {
    options.tls.cert_file = "/dev/zero";
    options.tls.key_file = File("server.key");
    options.thrift_port = grpc ? -1 : 0;
    options.grpc_port = grpc ? 0 : -1;
    Server endless(options);
    endless.AddService<rich::RichService>(std::make_shared<WhoImpl>());
    s = endless.Start();
    EXPECT_FALSE(s.ok()) << (grpc ? "gRPC" : "Thrift");
    EXPECT_NE(s.message().find("server.tls.cert_file: /dev/zero is larger than 16 MiB"),
              std::string::npos)
        << s;
  }

  ChannelOptions client = Client("ca");
  client.tls.ca_file = File("server.key");  // not a certificate
  try {
    MakeChannel("127.0.0.1:1", Protocol::kGrpc, client);
    ADD_FAILURE() << "a channel with a CA file holding no certificate was made";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("tls.ca_file"), std::string::npos) << e.what();
  }
  client.tls.ca_file = "/dev/zero";
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    try {
      MakeChannel("127.0.0.1:1", protocol, client);
      ADD_FAILURE() << "a channel with /dev/zero as its CA file was made";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("/dev/zero is larger than 16 MiB"), std::string::npos)
          << e.what();
    }
  }
}

TEST_F(TlsTest, BearerTokensNameTheCallerOnBothProtocols) {
  std::string tokens = File("tokens.txt");
  std::ofstream(tokens) << "# principal token\norder s3cret-order\nops s3cret-ops\n";
  auto impl = std::make_shared<WhoImpl>();
  auto server = StartServer(impl, "", [&](ServerOptions& o) {
    o.auth.tokens_file = tokens;
    o.auth.require_identity = true;
  });
  for (const Path& path : Paths()) {
    ChannelOptions none;
    StatusCode code = StatusCode::kOk;
    std::string error = Fails(*Proxy(*server, path, none), &code);
    EXPECT_EQ(code, StatusCode::kUnauthenticated) << path.name << ": " << error;
    EXPECT_NE(error.find("require_identity"), std::string::npos) << error;
    ChannelOptions wrong;
    wrong.bearer_token = "guess";
    error = Fails(*Proxy(*server, path, wrong), &code);
    EXPECT_EQ(code, StatusCode::kUnauthenticated) << path.name << ": " << error;
    EXPECT_NE(error.find("not accepted"), std::string::npos) << error;
    ChannelOptions right;
    right.bearer_token = "s3cret-ops";
    EXPECT_EQ(Fails(*Proxy(*server, path, right)), "") << path.name;
    EXPECT_EQ(impl->principal(), "ops") << path.name;
    EXPECT_EQ(impl->source(), "token") << path.name;
  }
}

TEST_F(TlsTest, TheAllowListAndTheAuthorizeHookDecidePerMethod) {
  auto impl = std::make_shared<WhoImpl>();
  std::vector<std::string> asked;
  std::mutex asked_mu;
  auto server = StartServer(impl, "server", [&](ServerOptions& o) {
    o.tls.ca_file = File("ca.crt");
    o.auth.allow = {"order rich.RichService/Count", "* rich.RichService/Now",
                    "spiffe://acme/ops rich.RichService/*"};
    o.auth.authorize = [&](std::string_view method, const PeerIdentity& caller) -> std::string {
      std::lock_guard<std::mutex> lock(asked_mu);
      asked.push_back(std::string(method) + " " + caller.principal);
      return method == "/rich.RichService/Mix" ? "no mixing today" : "";
    };
  });
  for (const Path& path : Paths()) {
    auto order = Proxy(*server, path, Client("ca", "client"));
    auto ops = Proxy(*server, path, Client("ca", "ops"));
    auto anonymous = Proxy(*server, path, Client("ca"));
    EXPECT_EQ(Fails(*order), "") << path.name << ": allowed by name";
    EXPECT_EQ(Fails(*ops), "") << path.name << ": allowed by service";
    StatusCode code = StatusCode::kOk;
    std::string error = Fails(*anonymous, &code);
    EXPECT_EQ(code, StatusCode::kPermissionDenied) << path.name << ": " << error;
    EXPECT_NE(error.find("an anonymous caller may not call /rich.RichService/Count"),
              std::string::npos)
        << error;
    EXPECT_NO_THROW(anonymous->Now()) << path.name << ": '*' allows anyone";
    try {
      order->Mix(rich::Color::kRed, rich::Color::kRed);
      ADD_FAILURE() << path.name << ": Mix is not on order's list";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kPermissionDenied) << e.what();
      EXPECT_NE(std::string(e.what()).find("'order' may not call"), std::string::npos);
    }
    try {
      ops->Mix(rich::Color::kRed, rich::Color::kRed);
      ADD_FAILURE() << path.name << ": the hook refuses Mix";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kPermissionDenied) << e.what();
      EXPECT_NE(std::string(e.what()).find("no mixing today"), std::string::npos) << e.what();
    }
  }
  std::lock_guard<std::mutex> lock(asked_mu);
  EXPECT_NE(std::find(asked.begin(), asked.end(), "/rich.RichService/Mix spiffe://acme/ops"),
            asked.end())
      << "the hook sees the method and the caller";
}

// The authorize hook runs under the call's ServerContext: it can decide by the call's own
// metadata (a tenant here), on every path.
TEST_F(TlsTest, TheAuthorizeHookSeesTheCallsMetadata) {
  auto impl = std::make_shared<WhoImpl>();
  auto server = StartServer(impl, "", [&](ServerOptions& o) {
    o.auth.authorize = [](std::string_view, const PeerIdentity&) -> std::string {
      const ServerContext* call = ServerContext::Current();
      const std::string* tenant = call != nullptr ? call->FindMetadata("x-tenant") : nullptr;
      return tenant != nullptr && *tenant == "acme" ? "" : "no such tenant";
    };
  });
  for (const Path& path : Paths()) {
    auto proxy = Proxy(*server, path, ChannelOptions());
    StatusCode code = StatusCode::kOk;
    std::string error = Fails(*proxy, &code);
    EXPECT_EQ(code, StatusCode::kPermissionDenied) << path.name << ": " << error;
    EXPECT_NE(error.find("no such tenant"), std::string::npos) << error;
    CallOptions call;
    call.metadata = {{"x-tenant", "acme"}};
    ScopedCallOptions scope(call);
    EXPECT_EQ(Fails(*proxy), "") << path.name;
  }
}

}  // namespace
}  // namespace rpcboot
