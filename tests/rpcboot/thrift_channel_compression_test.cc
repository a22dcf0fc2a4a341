// A Thrift channel with thrift_compression zlib (THeader's zlib transform) against rpcboot's server
// with server.thrift_compression zlib and off, and against a server whose replies it cannot read.
// tests/interop/thrift_compression_test.py calls a stock Python THeader server the same way.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/transport/thrift_wire.h"
#include "socket_testing.h"

namespace rpcboot {
namespace {

std::unique_ptr<Server> StartServer(ServerOptions::ThriftCompression compression) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  options.thrift_compression = compression;
  options.max_message_bytes = 64 << 20;
  auto server = std::make_unique<Server>(options);
  server->AddService<rich::RichService>(std::make_shared<testing::RichServiceImpl>());
  EXPECT_TRUE(server->Start().ok());
  return server;
}

std::shared_ptr<rich::RichService> Client(int port, std::size_t max_message_bytes = 16 << 20) {
  ChannelOptions options;
  options.thrift_compression = ThriftCompression::kZlib;
  options.max_message_bytes = max_message_bytes;
  return MakeClient<rich::RichService>(
      MakeChannel("127.0.0.1:" + std::to_string(port), Protocol::kThrift, options));
}

TEST(ThriftChannelCompression, LargeRequestsGoCompressedAndCompressedRepliesAreRead) {
  auto server = StartServer(ServerOptions::ThriftCompression::kZlib);
  auto rich = Client(server->thrift_port());
  rich::Scalars large;
  large.text.assign(200000, 'l');
  EXPECT_EQ(rich->EchoScalars(large).text, large.text);
  rich::Scalars small;
  small.text = "short";
  EXPECT_EQ(rich->EchoScalars(small).text, "short");
}

// A server with compression off refuses a compressed call, naming its setting: the large
// request went compressed. The small one, and one that zlib cannot shrink, went plain.
TEST(ThriftChannelCompression, OnlyRequestsOfAKilobyteThatShrinkGoCompressed) {
  auto server = StartServer(ServerOptions::ThriftCompression::kOff);
  auto rich = Client(server->thrift_port());
  rich::Scalars large;
  large.text.assign(200000, 'l');
  try {
    rich->EchoScalars(large);
    ADD_FAILURE() << "a server with compression off took the large request";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnimplemented) << e.what();
    EXPECT_NE(e.message().find("server.thrift_compression"), std::string::npos) << e.what();
  }
  rich::Scalars small;
  small.text = "short";
  EXPECT_EQ(rich->EchoScalars(small).text, "short");
  rich::Scalars noise;
  std::mt19937 rng(3);
  for (int i = 0; i < 8192; ++i) noise.blob.push_back(static_cast<uint8_t>(rng()));
  EXPECT_EQ(rich->EchoScalars(noise).blob, noise.blob) << "incompressible: sent plain";
}

// 2 MiB of one letter compress to a few KiB both ways: the request passes the channel's limit of
// 1 MiB on the wire, and only inflating the reply finds it too large, and stops there.
TEST(ThriftChannelCompression, AReplyIsInflatedOnlyUpToTheChannelsLimit) {
  auto server = StartServer(ServerOptions::ThriftCompression::kZlib);
  auto rich = Client(server->thrift_port(), 1 << 20);
  rich::Scalars huge;
  huge.text.assign(2 << 20, 'z');
  try {
    rich->EchoScalars(huge);
    ADD_FAILURE() << "a reply inflating to 2 MiB was taken under a limit of 1 MiB";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(e.message().find("inflates past the limit of 1048576"), std::string::npos)
        << e.what();
  }
  rich::Scalars fits;
  fits.text.assign(512 << 10, 'z');
  EXPECT_EQ(rich->EchoScalars(fits).text.size(), fits.text.size()) << "the channel serves on";
}

// Answers every request on one connection with `reply` (a frame body), however it was asked.
class CannedServer {
 public:
  explicit CannedServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = testing::ListenOnLoopback(&port_);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int conn = ::accept(fd_, nullptr, nullptr);
        if (conn < 0) continue;
        char buffer[65536];
        pollfd c{conn, POLLIN, 0};
        if (::poll(&c, 1, 2000) > 0 && ::read(conn, buffer, sizeof buffer) > 0) {
          char length[4];
          internal::EncodeFrameLength(static_cast<uint32_t>(reply_.size()), length);
          std::string frame = std::string(length, 4) + reply_;
          (void)::write(conn, frame.data(), frame.size());
        }
        ::close(conn);
      }
    });
  }
  ~CannedServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  std::string reply_;
  int fd_;
  int port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(ThriftChannelCompression, RepliesItCannotReadFailTheCallWithTheReason) {
  internal::THeaderFrame zlib;
  zlib.transforms = {internal::kTHeaderZlib};
  const std::string compressed = internal::WrapTHeader(zlib, std::string(4000, 'q'));
  internal::THeaderFrame parsed;
  ASSERT_TRUE(internal::ParseTHeader(compressed, &parsed).ok());
  ASSERT_EQ(parsed.transforms, std::vector<uint32_t>{internal::kTHeaderZlib});
  // The same frame listing transform 3 (fbthrift's snappy): at 12, after the protocol id and
  // the transform count.
  std::string snappy = compressed;
  ASSERT_EQ(snappy[12], 1);
  snappy[12] = 3;
  // The zlib transform over bytes that are not zlib's.
  std::string garbage = compressed.substr(0, parsed.payload_offset) + std::string(64, '\x7f');
  const struct {
    std::string reply;
    const char* says;
  } cases[] = {{snappy, "THeader transform(s) 3, which this client cannot read"},
               {garbage, "Thrift: reply from 127.0.0.1:"}};
  for (const auto& c : cases) {
    CannedServer server(c.reply);
    auto rich = Client(server.port());
    try {
      rich->Mix(rich::Color::kRed, rich::Color::kGreen);
      ADD_FAILURE() << "a reply it cannot read was taken: " << c.says;
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInternal) << e.what();
      EXPECT_NE(e.message().find(c.says), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace rpcboot
