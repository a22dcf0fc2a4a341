// rpcboot's native gRPC server (server.grpc_server: native) where it works unlike the server on
// gRPC's library: calls run in place on its event loops, and a loop whose call blocks goes to
// another thread; the memory quota counts the request bytes it holds; streams past its limit are
// refused by the server itself. The suites that run a second time with
// RPCBOOT_TEST_GRPC_SERVER=native (native_grpc.* in ctest: call paths, bad input, the serving
// core, deadlines, tracing, TLS, stock clients of five languages, hostile peers) check the rest.
// Every wait is on a latch, a count or a read; nothing asserts a duration.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
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
  // A server and a client (on a channel of its own) that take messages of up to 8 MiB, the
  // server holding up to `quota` bytes of requests.
  std::shared_ptr<rich::RichService> LargeMessages(std::size_t quota) {
    ServerOptions options;
    options.max_message_bytes = 8 << 20;
    options.grpc_memory_quota = quota;
    if (!server_) StartServer(options);
    ChannelOptions large;
    large.max_message_bytes = 8 << 20;
    return MakeClient<rich::RichService>(GrpcChannel(large));
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
  auto client = LargeMessages(1 << 20);
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

// A connection reuses the strings of its last large request and reply for the next ones: calls
// of different sizes in a row, and several at once on one connection, each come back whole
// (nothing of an earlier, longer message shows through). The strings kept are bounded apart
// from the memory quota: right after them, a request the quota allows is served.
TEST_F(NativeGrpcServerTest, LargeCallsInARowEachComeBackWholeAndWhatTheyLeaveTakesNoQuota) {
  auto client = LargeMessages(5 << 20);
  const std::size_t sizes[] = {600 << 10, 5, 3 << 20, 70 << 10, 1 << 20, 64 << 10, 17};
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    rich::Scalars sent;
    sent.i32 = static_cast<int32_t>(i);
    sent.text.assign(sizes[i], static_cast<char>('a' + i));
    sent.blob.assign(i * 1000, static_cast<uint8_t>(i));
    rich::Scalars echoed = client->EchoScalars(sent);
    EXPECT_EQ(echoed.i32, sent.i32);
    EXPECT_TRUE(echoed.text == sent.text) << "call " << i << ": " << echoed.text.size() << " bytes";
    EXPECT_TRUE(echoed.blob == sent.blob) << "call " << i;
  }
  std::vector<std::future<int>> callers;
  for (int t = 0; t < 4; ++t) {
    callers.push_back(std::async(std::launch::async, [client, t] {
      int whole = 0;
      for (int k = 0; k < 5; ++k) {
        rich::Scalars sent;
        sent.text.assign(static_cast<std::size_t>((t * 5 + k) * 50000 + 1),
                         static_cast<char>('A' + t));
        whole += client->EchoScalars(sent).text == sent.text ? 1 : 0;
      }
      return whole;
    }));
  }
  for (auto& caller : callers) EXPECT_EQ(caller.get(), 5);
  rich::Scalars within;
  within.text.assign((9 << 20) / 2, 'q');  // 4.5 MiB of the 5 MiB quota
  auto other = LargeMessages(5 << 20);     // the same server, another connection
  EXPECT_EQ(other->EchoScalars(within).text.size(), within.text.size());
}

// A call's metadata is held in the memory quota with its request until the call is handled
// (HPACK lets a peer name a long header again in a byte or two): past the quota the call is
// refused naming the setting, and the bytes are given back.
TEST_F(NativeGrpcServerTest, TheMemoryQuotaHoldsTheMetadataOfCallsNotYetHandled) {
  ServerOptions options;
  options.grpc_memory_quota = 4096;
  StartServer(options);
  auto client = MakeClient<rich::RichService>(GrpcChannel(ChannelOptions()));
  CallOptions large;
  large.metadata = {{"x-large", std::string(6000, 'm')}};
  try {
    ScopedCallOptions scope(large);
    client->Count();
    ADD_FAILURE() << "6 KB of metadata were held under a quota of 4 KiB";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("server.grpc_memory_quota"), std::string::npos)
        << e.what();
  }
  CallOptions small;
  small.metadata = {{"x-small", std::string(2000, 's')}};
  for (int i = 0; i < 4; ++i) {
    ScopedCallOptions scope(small);
    EXPECT_EQ(client->Histogram({}).size(), 1u) << "the refused call's bytes were given back";
  }
  EXPECT_EQ(impl_->Count(), 1) << "the refused call did not run";
}

// server.grpc_compression with rpcboot's own channels (grpc_compression gzip): off, the server
// refuses a compressed request (UNIMPLEMENTED, naming the setting) and takes one under 1 KiB, which
// the native channel leaves plain; accept and gzip take gzip requests from both channels, and in
// gzip the replies come back compressed and are inflated.
TEST_F(NativeGrpcServerTest, CompressedRequestsFromRpcbootChannels) {
  rich::Scalars large;
  large.text.assign(300000, 'c');
  rich::Scalars small;
  small.text = "under a KiB";
  ChannelOptions gzip;
  gzip.grpc_compression = GrpcCompression::kGzip;
  {
    StartServer(ServerOptions());
    auto client = MakeClient<rich::RichService>(GrpcChannel(gzip));
    EXPECT_EQ(client->EchoScalars(small).text, small.text) << "a small request goes plain";
    try {
      client->EchoScalars(large);
      ADD_FAILURE() << "a compressed request was served with compression off";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnimplemented) << e.what();
      EXPECT_NE(std::string(e.what()).find("server.grpc_compression"), std::string::npos)
          << e.what();
    }
    server_->Shutdown();
  }
  for (auto mode :
       {ServerOptions::GrpcCompression::kAccept, ServerOptions::GrpcCompression::kGzip}) {
    ServerOptions options;
    options.grpc_compression = mode;
    StartServer(options);
    for (GrpcClient kind : {GrpcClient::kNative, GrpcClient::kGrpcpp}) {
      ChannelOptions channel = gzip;
      channel.grpc_client = kind;
      auto client = MakeClient<rich::RichService>(GrpcChannel(channel));
      EXPECT_EQ(client->EchoScalars(large).text, large.text);
      EXPECT_EQ(client->EchoScalars(small).text, small.text);
    }
    server_->Shutdown();
  }
}

// Descriptors open in this process.
int OpenDescriptors() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
    ::closedir(dir);
  }
  return count - 1;  // the directory's own
}

// A connection the native channel keeps idle in its pool is still read (once a second, by one
// thread of the process): when the server lets it go (here its idle_timeout: GOAWAY, then the
// server waits for the client to close), the channel closes it too, without a call to find it.
// Before, an idle connection was read only by the next call: a stock gRPC server shutting down
// gracefully waited 20 s for the PING it sends with its GOAWAY to be answered.
TEST_F(NativeGrpcServerTest, AnIdleConnectionTheServerLetsGoIsClosed) {
  ServerOptions options;
  options.idle_timeout = std::chrono::milliseconds(50);
  StartServer(options);
  auto channel = GrpcChannel();
  auto client = MakeClient<rich::RichService>(channel);
  const int before = OpenDescriptors();
  EXPECT_EQ(client->Count(), 1);
  EXPECT_GE(OpenDescriptors(), before + 1) << "the call's connection, client and server side";
  // Both ends close once the channel has read the GOAWAY: the count comes back. (Without the
  // sweep the client's end stays open until a call comes; a generous bound ends the wait.)
  int open = 0;
  for (int i = 0; i < 3000 && (open = OpenDescriptors()) > before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(open, before) << "the idle connection was left open after the server's GOAWAY";
  EXPECT_EQ(client->Count(), 2) << "and the next call takes a new connection";
}

// An HPACK literal header field without indexing, new name (names and values under 127 bytes).
std::string Literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

// The request headers of a call of `path`.
std::string RequestHeaders(const std::string& path) {
  return Literal(":method", "POST") + Literal(":scheme", "http") + Literal(":path", path) +
         Literal(":authority", "localhost") + Literal("content-type", "application/grpc") +
         Literal("te", "trailers");
}

// One HTTP/2 frame as it came: its header's fields and its payload.
struct Frame {
  unsigned char type = 0;
  unsigned char flags = 0;
  uint32_t stream = 0;
  std::string payload;
  // RST_STREAM's and GOAWAY's error code.
  uint32_t Code() const {
    const auto* p = reinterpret_cast<const unsigned char*>(payload.data()) + (type == 7 ? 4 : 0);
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  }
};

// A raw HTTP/2 client's side of a connection: the bytes it sends, the frames it reads.
class RawHttp2 {
 public:
  explicit RawHttp2(int port) : fd_(ConnectTo(port)) {}
  ~RawHttp2() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return fd_ >= 0; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // The next frame from the server; nullopt once it closed the connection (or after 30 s).
  std::optional<Frame> Next() {
    while (true) {
      if (in_.size() >= 9) {
        const auto* h = reinterpret_cast<const unsigned char*>(in_.data());
        std::size_t length = (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
        if (in_.size() >= 9 + length) {
          Frame frame;
          frame.type = h[3];
          frame.flags = h[4];
          frame.stream = ((uint32_t{h[5]} & 0x7f) << 24) | (uint32_t{h[6]} << 16) |
                         (uint32_t{h[7]} << 8) | h[8];
          frame.payload = in_.substr(9, length);
          in_.erase(0, 9 + length);
          return frame;
        }
      }
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return std::nullopt;
      in_.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads until `stream` ends with its trailers (HEADERS with END_STREAM); false if the server
  // closed the connection first.
  bool WaitEnded(uint32_t stream) {
    while (std::optional<Frame> frame = Next()) {
      if (frame->stream == stream && frame->type == 1 && (frame->flags & 0x1) != 0) return true;
    }
    return false;
  }

 private:
  int fd_;
  std::string in_;
};

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A peer that opens more streams than the server's SETTINGS allow, without waiting for them: the
// server refuses the streams past grpc_max_concurrent_streams itself (REFUSED_STREAM: they never
// ran, so a client may send them again) and keeps the connection and the streams it took.
TEST_F(NativeGrpcServerTest, StreamsPastTheLimitAreRefusedEvenBeforeTheSettingsAreAcknowledged) {
  ServerOptions options;
  options.grpc_max_concurrent_streams = 2;
  StartServer(options);
  RawHttp2 peer(server_->grpc_port());
  ASSERT_TRUE(peer.connected());
  std::string out = kPreface + Http2Frame(4, 0, "");
  // Three calls opened, their requests not sent yet (no END_STREAM): all three are open at once.
  for (unsigned stream : {1u, 3u, 5u}) {
    out += Http2Frame(1, 0x4, RequestHeaders("/rich.RichService/Count"), stream);
  }
  ASSERT_TRUE(peer.Send(out));
  std::optional<Frame> frame;
  while ((frame = peer.Next()) && frame->type != 3 && frame->type != 7) {
  }
  ASSERT_TRUE(frame) << "the server closed the connection";
  ASSERT_EQ(frame->type, 3) << "the connection was ended (GOAWAY), not the stream";
  EXPECT_EQ(frame->stream, 5u);
  EXPECT_EQ(frame->Code(), 7u) << "REFUSED_STREAM";
  // The two streams taken are still served: their empty requests end them.
  const std::string request("\0\0\0\0\0", 5);
  ASSERT_TRUE(peer.Send(Http2Frame(0, 0x1, request, 1) + Http2Frame(0, 0x1, request, 3)));
  int ended = 0;
  while (ended < 2 && (frame = peer.Next())) {
    if (frame->type == 1 && (frame->flags & 0x1) != 0) ++ended;  // the trailers
  }
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(impl_->Count(), 3) << "both calls taken ran (and this one)";
}

// A request refused before it is whole (its prefix declares more than max_message_bytes) is
// answered at once, and the stream is then reset with NO_ERROR, so the client stops sending a
// message nobody will read; the connection goes on.
TEST_F(NativeGrpcServerTest, ARequestRefusedBeforeItIsWholeEndsItsStreamWithoutError) {
  StartServer(ServerOptions());
  RawHttp2 peer(server_->grpc_port());
  ASSERT_TRUE(peer.connected());
  const std::string declared("\0\x7f\xff\xff\xff", 5);  // 2 GB to come
  ASSERT_TRUE(peer.Send(kPreface + Http2Frame(4, 0, "") +
                        Http2Frame(1, 0x4, RequestHeaders("/rich.RichService/Count"), 1) +
                        Http2Frame(0, 0, declared, 1)));
  bool answered = false, reset = false;
  std::optional<Frame> frame;
  while (!reset && (frame = peer.Next())) {
    if (frame->stream != 1) continue;
    if (frame->type == 1 && (frame->flags & 0x1) != 0) answered = true;
    if (frame->type == 3) {
      EXPECT_TRUE(answered) << "the reset came before the answer";
      EXPECT_EQ(frame->Code(), 0u) << "NO_ERROR";
      reset = true;
    }
  }
  EXPECT_TRUE(answered);
  EXPECT_TRUE(reset) << "the stream was left open to a message nobody reads";
  // The connection goes on: the next call on it is answered.
  const std::string request("\0\0\0\0\0", 5);
  ASSERT_TRUE(peer.Send(Http2Frame(1, 0x4, RequestHeaders("/rich.RichService/Count"), 3) +
                        Http2Frame(0, 0x1, request, 3)));
  EXPECT_TRUE(peer.WaitEnded(3));
  EXPECT_EQ(impl_->Count(), 2) << "the second call ran";
}

// A "-bin" metadata value that is not base64 ends its call (INTERNAL) before the handler runs;
// the connection serves the next call.
TEST_F(NativeGrpcServerTest, BinaryMetadataThatIsNotBase64EndsItsCall) {
  StartServer(ServerOptions());
  RawHttp2 peer(server_->grpc_port());
  ASSERT_TRUE(peer.connected());
  const std::string request("\0\0\0\0\0", 5);
  const std::string headers = RequestHeaders("/rich.RichService/Count");
  ASSERT_TRUE(peer.Send(kPreface + Http2Frame(4, 0, "") +
                        Http2Frame(1, 0x4, headers + Literal("x-blob-bin", "not*base64!"), 1) +
                        Http2Frame(0, 0x1, request, 1)));
  ASSERT_TRUE(peer.WaitEnded(1));
  EXPECT_EQ(impl_->count.load(), 0) << "the handler did not run";
  ASSERT_TRUE(peer.Send(Http2Frame(1, 0x4, headers + Literal("x-blob-bin", "AP8K"), 3) +
                        Http2Frame(0, 0x1, request, 3)));
  EXPECT_TRUE(peer.WaitEnded(3));
  EXPECT_EQ(impl_->count.load(), 1) << "the next call on the connection ran";
}

// grpc-timeout's largest values (99,999,999 hours: more nanoseconds than a clock holds) and its
// smallest are read without overflow: the first call runs with a deadline far away, the second,
// whose deadline passed on arrival, is answered DEADLINE_EXCEEDED without running.
TEST_F(NativeGrpcServerTest, TheLargestAndSmallestTimeoutsAreRead) {
  StartServer(ServerOptions());
  RawHttp2 peer(server_->grpc_port());
  ASSERT_TRUE(peer.connected());
  const std::string request("\0\0\0\0\0", 5);
  const std::string headers = RequestHeaders("/rich.RichService/Count");
  ASSERT_TRUE(peer.Send(kPreface + Http2Frame(4, 0, "") +
                        Http2Frame(1, 0x4, headers + Literal("grpc-timeout", "99999999H"), 1) +
                        Http2Frame(0, 0x1, request, 1) +
                        Http2Frame(1, 0x4, headers + Literal("grpc-timeout", "1n"), 3) +
                        Http2Frame(0, 0x1, request, 3)));
  int ended = 0;
  std::optional<Frame> frame;
  while (ended < 2 && (frame = peer.Next())) {
    if (frame->type == 1 && (frame->flags & 0x1) != 0) ++ended;
  }
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(impl_->Count(), 2) << "the first call ran, the second did not";
}

}  // namespace
}  // namespace rpcboot
