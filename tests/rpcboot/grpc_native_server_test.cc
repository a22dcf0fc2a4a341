// rpcboot's native gRPC server (server.grpc_server: native) where it works unlike the server on
// gRPC's library: calls run in place on its event loops, and a loop whose call blocks goes to
// another thread; the memory quota counts the request bytes it holds; streams past its limit are
// refused by the server itself; it serves no TLS. The suites that run a second time with
// RPCBOOT_TEST_GRPC_SERVER=native (native_grpc.* in ctest: call paths, bad input, the serving
// core, deadlines, tracing, stock clients of five languages, hostile peers) check the rest.
// Every wait is on a latch, a count or a read; nothing asserts a duration.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "socket_testing.h"

namespace rpcboot {
namespace {

using testing::ConnectTo;
using testing::Http2Frame;
using testing::RichServiceImpl;

class NativeGrpcServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options) {
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.grpc_server = ServerOptions::GrpcServer::kNative;
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override {
    impl_->Release();
    if (server_) server_->Shutdown();
  }
  std::shared_ptr<Channel> GrpcChannel(ChannelOptions options = {}) {
    return MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()), options);
  }

  std::shared_ptr<RichServiceImpl> impl_ = std::make_shared<RichServiceImpl>();
  std::unique_ptr<Server> server_;
};

// Threads of this process.
long Threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stol(line.substr(8));
  }
  return -1;
}

// One loop: the held call runs in place on it and blocks; the loop goes to another thread (one
// more thread in the process: rpcboot's native channel, the client here, has none of its own),
// and the cheap calls behind it are read and answered while it is still held.
TEST_F(NativeGrpcServerTest, ALoopWhoseCallBlocksIsHandedToAnotherThread) {
  ServerOptions options;
  options.io_threads = 1;
  options.handler_threads = 4;
  StartServer(options);
  auto client = MakeClient<rich::RichService>(GrpcChannel());
  EXPECT_EQ(client->Count(), 1);
  const long threads = Threads();
  auto held = std::async(std::launch::async, [client] {
    client->Notify(RichServiceImpl::kHeld, "held", rich::Color::kRed);
  });
  ASSERT_TRUE(impl_->WaitEntered(1));
  EXPECT_EQ(client->Count(), 2);
  EXPECT_EQ(client->Count(), 3);
  EXPECT_EQ(impl_->notified.load(), 0) << "the held call is still held";
  // The held call's own thread (std::async), and a spare that took the loop from the held call.
  EXPECT_EQ(Threads(), threads + 2) << "no spare thread took the loop from the held call";
  impl_->Release();
  held.get();
  EXPECT_EQ(impl_->notified.load(), 1);
  EXPECT_EQ(client->Count(), 4) << "and the loop serves on";
}

// server.grpc_memory_quota bounds the request bytes the server holds for calls not yet handled,
// whatever max_message_bytes allows: a request past it is answered RESOURCE_EXHAUSTED naming the
// setting, and the bytes it held are free again for the next call.
TEST_F(NativeGrpcServerTest, TheMemoryQuotaBoundsTheRequestBytesHeld) {
  ServerOptions options;
  options.max_message_bytes = 8 << 20;
  options.grpc_memory_quota = 1 << 20;
  StartServer(options);
  ChannelOptions large;
  large.max_message_bytes = 8 << 20;
  auto client = MakeClient<rich::RichService>(GrpcChannel(large));
  rich::Scalars big;
  big.text.assign(2 << 20, 'a');
  try {
    client->EchoScalars(big);
    ADD_FAILURE() << "a request of 2 MiB was served under a quota of 1 MiB";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("server.grpc_memory_quota"), std::string::npos)
        << e.what();
  }
  rich::Scalars small;
  small.text.assign(512 << 10, 'b');
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(client->EchoScalars(small).text.size(), small.text.size())
        << "the refused request's bytes were given back";
  }
}

// An HPACK literal header field without indexing, new name (names and values under 127 bytes).
std::string Literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

// A peer that opens more streams than the server's SETTINGS allow, without waiting for them: the
// server refuses the streams past grpc_max_concurrent_streams itself (REFUSED_STREAM: they never
// ran, so a client may send them again) and keeps the connection and the streams it took.
TEST_F(NativeGrpcServerTest, StreamsPastTheLimitAreRefusedEvenBeforeTheSettingsAreAcknowledged) {
  ServerOptions options;
  options.grpc_max_concurrent_streams = 2;
  StartServer(options);
  int fd = ConnectTo(server_->grpc_port());
  ASSERT_GE(fd, 0);
  const std::string block = Literal(":method", "POST") + Literal(":scheme", "http") +
                            Literal(":path", "/rich.RichService/Count") +
                            Literal(":authority", "localhost") +
                            Literal("content-type", "application/grpc") + Literal("te", "trailers");
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Http2Frame(4, 0, "");
  // Three calls opened, their requests not sent yet (no END_STREAM): all three are open at once.
  for (unsigned stream : {1u, 3u, 5u}) out += Http2Frame(1, 0x4, block, stream);
  ASSERT_EQ(::send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
  // Frames from the server until the third stream's RST_STREAM.
  std::string in;
  uint32_t refused_stream = 0, code = 0;
  bool goaway = false;
  char buf[4096];
  while (refused_stream == 0 && !goaway) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "the server closed the connection";
    in.append(buf, static_cast<std::size_t>(n));
    while (in.size() >= 9) {
      const auto* h = reinterpret_cast<const unsigned char*>(in.data());
      std::size_t length = (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
      if (in.size() < 9 + length) break;
      const uint32_t stream =
          ((uint32_t{h[5]} & 0x7f) << 24) | (uint32_t{h[6]} << 16) | (uint32_t{h[7]} << 8) | h[8];
      if (h[3] == 3 && length == 4) {  // RST_STREAM
        const auto* p = h + 9;
        refused_stream = stream;
        code = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      }
      if (h[3] == 7) goaway = true;
      in.erase(0, 9 + length);
    }
  }
  EXPECT_FALSE(goaway) << "the connection was ended, not the stream";
  EXPECT_EQ(refused_stream, 5u);
  EXPECT_EQ(code, 7u) << "REFUSED_STREAM";
  // The two streams taken are still served: their empty requests end them.
  const std::string request("\0\0\0\0\0", 5);
  std::string finish = Http2Frame(0, 0x1, request, 1) + Http2Frame(0, 0x1, request, 3);
  ASSERT_EQ(::send(fd, finish.data(), finish.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(finish.size()));
  int ended = 0;
  while (ended < 2) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "the server closed the connection";
    in.append(buf, static_cast<std::size_t>(n));
    while (in.size() >= 9) {
      const auto* h = reinterpret_cast<const unsigned char*>(in.data());
      std::size_t length = (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
      if (in.size() < 9 + length) break;
      if (h[3] == 1 && (h[4] & 0x1) != 0) ++ended;  // HEADERS that end a stream: the trailers
      in.erase(0, 9 + length);
    }
  }
  EXPECT_EQ(impl_->Count(), 3) << "both calls taken ran (and this one)";
  ::close(fd);
}

// The native server serves plaintext only: a server configured with TLS does not start with it,
// and says which setting to change.
TEST(NativeGrpcServer, TlsIsRefusedAtStartNamingTheSetting) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = ServerOptions::GrpcServer::kNative;
  options.tls.cert_file = "/nonexistent/server.crt";
  options.tls.key_file = "/nonexistent/server.key";
  Server server(options);
  server.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  absl::Status started = server.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kInvalidArgument) << started;
  EXPECT_NE(started.message().find("server.grpc_server: grpcpp"), std::string::npos) << started;
}

}  // namespace
}  // namespace rpcboot
