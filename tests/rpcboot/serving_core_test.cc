// The serving core under pressure, on real loopback sockets: blocking handlers on the shared
// pool, admission control, deadlines of queued calls, memory that follows bytes received,
// per-frame deadlines and the connection cap. Every wait is on a latch or a condition; nothing
// asserts a duration.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/internal/binding_impl.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/server.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/thrift_wire.h"
#include "socket_testing.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

using testing::ConnectTo;
using testing::Http2Frame;
using testing::RichServiceImpl;

// A number /proc/self/status gives this process (`field` with its colon); -1 when absent.
long ProcStatus(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}

// Resident memory of this process, in KiB.
long RssKb() { return ProcStatus("VmRSS:"); }

// AddressSanitizer keeps freed memory resident (its quarantine): a test whose server frees what
// it read checks RSS only without it (the Python tests' RPCBOOT_SANITIZED).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kQuarantine = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kQuarantine = true;
#else
constexpr bool kQuarantine = false;
#endif
#else
constexpr bool kQuarantine = false;
#endif

// Threads of this process.
long Threads() { return ProcStatus("Threads:"); }

// True when the peer closes `fd` within `limit` (EOF or reset), whatever it sends before; a
// bound, not a measurement.
bool ClosedWithin(int fd, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  char buf[256];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) return true;
  }
  return false;
}

class ServingCoreTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options) {
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.grpc_server = rpcboot::testing::TestGrpcServer();
    options.thrift_port = 0;
    options.thrift_io = testing::TestThriftIo();
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    impl_->Release();
    if (server_) server_->Shutdown();
  }
  std::shared_ptr<rich::RichService> Client(Protocol protocol, ChannelOptions options = {}) {
    int port = protocol == Protocol::kGrpc ? server_->grpc_port() : server_->thrift_port();
    return MakeClient<rich::RichService>(
        MakeChannel("127.0.0.1:" + std::to_string(port), protocol, options));
  }
  // Starts `n` calls that block in their handler until Release; returns their futures.
  std::vector<std::future<void>> Hold(int n, Protocol protocol) {
    std::vector<std::future<void>> held;
    for (int i = 0; i < n; ++i) {
      auto client = Client(protocol);  // a connection each: Thrift serves one call per connection
      held.push_back(std::async(std::launch::async, [client] {
        client->Notify(RichServiceImpl::kHeld, "held", rich::Color::kRed);
      }));
    }
    return held;
  }

  std::shared_ptr<RichServiceImpl> impl_ = std::make_shared<RichServiceImpl>();
  std::unique_ptr<Server> server_;
};

TEST_F(ServingCoreTest, BlockedHandlersDoNotDelayACheapCall) {
  ServerOptions options;
  options.handler_threads = 8;
  StartServer(options);
  auto grpc_held = Hold(3, Protocol::kGrpc);
  auto thrift_held = Hold(3, Protocol::kThrift);
  ASSERT_TRUE(impl_->WaitEntered(6)) << "six handlers blocked on the latch";
  // Both protocols still answer while six of eight handler threads are blocked.
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 1);
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 2);
  EXPECT_EQ(impl_->notified.load(), 0) << "the held calls are still held";
  impl_->Release();
  for (auto& f : grpc_held) f.get();
  for (auto& f : thrift_held) f.get();
  EXPECT_EQ(impl_->notified.load(), 6);
}

// A Thrift loop runs a call where it read it; when the handler blocks, the loop goes to another
// thread. With one loop, a cheap call on another connection is served while the first blocks.
TEST_F(ServingCoreTest, ALoopWhoseCallBlocksIsHandedToAnotherThread) {
  ServerOptions options;
  options.io_threads = 1;
  options.handler_threads = 4;
  StartServer(options);
  auto held = Hold(1, Protocol::kThrift);
  ASSERT_TRUE(impl_->WaitEntered(1));
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1);
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 2);
  EXPECT_EQ(impl_->notified.load(), 0) << "the held call is still held";
  impl_->Release();
  held.front().get();
  EXPECT_EQ(impl_->notified.load(), 1);
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 3) << "and the loop serves on";
}

// A method listed in server.inline_methods runs on the gRPC polling thread that took it, with no
// handler slot. One that blocks anyway (the listing was wrong) has polling handed to another
// thread by the monitor, within the transport's threads (handler_threads + 2): three of them
// held at once, more than gRPC ever has polling, and a cheap call is still read and served.
TEST_F(ServingCoreTest, GrpcInlineCallsThatBlockHandPollingOn) {
  ServerOptions options;
  options.handler_threads = 2;
  options.inline_methods = {"rich.RichService/Notify"};
  StartServer(options);
  auto held = Hold(3, Protocol::kGrpc);
  ASSERT_TRUE(impl_->WaitEntered(3)) << "each held call was read while the others blocked";
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 1);
  EXPECT_EQ(impl_->notified.load(), 0) << "the held calls are still held";
  impl_->Release();
  for (auto& f : held) f.get();
  EXPECT_EQ(impl_->notified.load(), 3);
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 2) << "and the server serves on";
}

// A gRPC call runs on the polling thread that took it, once another thread polls in its place.
// Forty calls blocked against four handler slots: four run (their threads replaced as pollers),
// the rest queue, and the server has added at most those four threads.
TEST_F(ServingCoreTest, BlockedGrpcCallsPastTheHandlerSlotsAddNoThreads) {
  ServerOptions options;
  options.handler_threads = 4;
  StartServer(options);
  // One channel and a completion queue: the calls cost this process no thread of their own.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  auto call = [&](grpc::ClientContext* context, const std::string& path, const std::string& request,
                  grpc::ByteBuffer* reply, grpc::Status* status, void* tag) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto rpc = stub.PrepareUnaryCall(context, path, internal::ToByteBuffer(request), &cq);
    rpc->StartCall();
    rpc->Finish(reply, status, tag);
  };
  auto next = [&cq] {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok) && ok);
  };
  {  // the channel connected and both sides' threads started
    grpc::ClientContext context;
    grpc::ByteBuffer reply;
    grpc::Status status;
    call(&context, "/rich.RichService/Count", "", &reply, &status, nullptr);
    next();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const long before = Threads();
  constexpr int kCalls = 40;
  std::vector<grpc::ClientContext> contexts(kCalls);
  std::vector<grpc::ByteBuffer> replies(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  // NotifyRequest{id = kHeld, message = "held"}.
  const std::string held = std::string("\x08", 1) + static_cast<char>(RichServiceImpl::kHeld) +
                           std::string("\x12\x04held", 6);
  for (int i = 0; i < kCalls; ++i) {
    call(&contexts[i], "/rich.RichService/Notify", held, &replies[i], &statuses[i],
         reinterpret_cast<void*>(static_cast<std::intptr_t>(i + 1)));
  }
  ASSERT_TRUE(impl_->WaitEntered(4)) << "four handlers run";
  for (int i = 0; i < 2000 && internal::Transports().queued_calls.load() < kCalls - 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(internal::Transports().queued_calls.load(), kCalls - 4) << "the rest wait for a slot";
  EXPECT_LE(Threads(), before + 4) << "no thread beyond one per handler slot in use";
  impl_->Release();
  for (int i = 0; i < kCalls; ++i) next();
  for (const grpc::Status& status : statuses) EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(impl_->notified.load(), kCalls);
}

TEST_F(ServingCoreTest, CallsOverMaxConcurrentCallsAreResourceExhausted) {
  ServerOptions options;
  options.handler_threads = 4;
  options.max_concurrent_calls = 4;
  StartServer(options);
  auto held = Hold(2, Protocol::kGrpc);
  auto more = Hold(2, Protocol::kThrift);
  ASSERT_TRUE(impl_->WaitEntered(4));
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    try {
      Client(protocol)->Count();
      ADD_FAILURE() << "a fifth call was taken";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
      EXPECT_NE(e.message().find("server.max_concurrent_calls"), std::string::npos) << e.message();
    }
  }
  EXPECT_EQ(impl_->count.load(), 0) << "the refused calls never ran";
  impl_->Release();
  for (auto& f : held) f.get();
  for (auto& f : more) f.get();
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1) << "served again once calls finished";
}

TEST_F(ServingCoreTest, AQueuedCallWhoseDeadlinePassedNeverRuns) {
  ServerOptions options;
  options.handler_threads = 1;
  StartServer(options);
  auto held = Hold(1, Protocol::kThrift);
  ASSERT_TRUE(impl_->WaitEntered(1)) << "the only handler thread is busy";
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    ChannelOptions channel;
    channel.thrift_header = true;  // carries the deadline to the server
    ScopedCallOptions quick({std::chrono::milliseconds(200)});
    try {
      Client(protocol, channel)->Notify(5, "queued", rich::Color::kGreen);
      ADD_FAILURE() << "the queued call returned";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
    }
  }
  // A queued call's deadline runs from when the server read it, which on a busy machine can be
  // after its caller gave up: wait until the server holds both, then past their deadlines.
  for (int i = 0; i < 2000 && internal::Transports().queued_calls.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(internal::Transports().queued_calls.load(), 2) << "both calls wait for the thread";
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  impl_->Release();
  held.front().get();
  // The pool runs calls in order: once this one is back, the expired ones have been dealt with.
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1);
  EXPECT_EQ(impl_->notified.load(), 1) << "only the held call ran; the expired ones did not";
}

TEST_F(ServingCoreTest, DeclaredFrameLengthsCostNoMemory) {
  StartServer(ServerOptions{});
  long before = RssKb();
  std::vector<int> fds;
  for (int i = 0; i < 24; ++i) {
    int fd = ConnectTo(server_->thrift_port());
    ASSERT_GE(fd, 0);
    char prefix[5];
    internal::EncodeFrameLength(16 * 1024 * 1024, prefix);  // the limit itself: accepted
    prefix[4] = static_cast<char>(0x82);                    // and one byte of it
    ASSERT_EQ(::send(fd, prefix, 5, 0), 5);
    fds.push_back(fd);
  }
  // The server has read them all once a call on a fresh connection comes back.
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1);
  long after = RssKb();
  // 24 x 16 MiB would be 384 MiB; memory follows the bytes received (a few each).
  EXPECT_LT(after - before, 32 * 1024) << before << " KiB -> " << after << " KiB";
  for (int fd : fds) ::close(fd);
}

// A THeader's info headers, up to 256 KiB of them, cost a held call its frame and no more: the
// server copies out only the few it reads (deadline, token, trace context, shadow, metadata),
// each of its own once;
// copying all of them cost 64 bytes per header, 5 MiB for a frame of 160 KiB.
TEST_F(ServingCoreTest, THeaderInfoHeadersCostNoMemoryWhileTheirCallIsHeld) {
  ServerOptions options;
  options.handler_threads = 48;
  StartServer(options);
  constexpr int kCalls = 40;
  internal::THeaderFrame theader;
  // As many one-byte-named empty headers as the header section holds (its size is counted in
  // words of 4 bytes, up to 65,535). "!" is no metadata key: the handler is not given them
  // (metadata keys are kept up to 16 KiB, past which the call is refused: bad_input_test).
  for (int i = 0; i < 80000; ++i) theader.headers.emplace_back(std::string(1, '!'), "");
  // Notify(id = kHeld, message = "h", color = kRed), compact.
  const std::string args = {0x16, 0x06, 0x18, 0x01, 'h', 0x15, 0x00, 0x00};
  long before = RssKb();
  std::vector<int> fds;
  for (int i = 0; i < kCalls; ++i) {
    theader.seqid = i + 1;
    std::string body =
        internal::WrapTHeader(theader, internal::ThriftMessage(WireFormat::kThriftCompact, "Notify",
                                                               internal::kThriftCall, i + 1, args));
    ASSERT_LT(body.size(), 300u * 1024);
    std::string frame(4, '\0');
    internal::EncodeFrameLength(static_cast<uint32_t>(body.size()), frame.data());
    frame += body;
    int fd = ConnectTo(server_->thrift_port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(frame.size()));
    fds.push_back(fd);
  }
  ASSERT_TRUE(impl_->WaitEntered(kCalls)) << "the held calls did not all start";
  long after = RssKb();
  impl_->Release();
  for (int fd : fds) ::close(fd);
  std::printf("%d held calls with 80,000 headers each: RSS %ld -> %ld KiB\n", kCalls, before,
              after);
  // 40 frames of about 160 KiB are 6 MiB; every call's headers copied out took 290 MiB more.
  if (!kQuarantine) {
    EXPECT_LT(after - before, 48 * 1024) << before << " KiB -> " << after << " KiB";
  }
}

// Whether every TCP connection of this process to 127.0.0.1:`port` has read all it was sent
// (its receive queue, from /proc/self/net/tcp, is empty), and there are `count` of them.
bool AllReadTo(int port, int count) {
  std::ifstream in("/proc/self/net/tcp");
  std::string line;
  std::getline(in, line);  // the titles
  int found = 0;
  while (std::getline(in, line)) {
    char remote[64] = {};
    unsigned state = 0, tx = 0, rx = 0;
    if (std::sscanf(line.c_str(), "%*d: %*s %63s %x %x:%x", remote, &state, &tx, &rx) != 4) {
      continue;
    }
    const char* colon = std::strchr(remote, ':');
    if (colon == nullptr || std::strtol(colon + 1, nullptr, 16) != port || state != 1) continue;
    if (rx != 0) return false;
    ++found;
  }
  return found == count;
}

TEST(ThriftClientMemory, AReplysDeclaredLengthCostsTheCallerNoMemory) {
  // A server that answers every call with the prefix of a reply at the limit (16 MiB) and one
  // byte of it, then holds the connection.
  constexpr int kCalls = 24;
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, kCalls), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  std::vector<int> held;
  std::thread server([&] {
    for (int i = 0; i < kCalls; ++i) {
      int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      char prefix[4];
      std::string request;
      if (::recv(fd, prefix, 4, MSG_WAITALL) == 4) {
        request.resize(internal::DecodeFrameLength(prefix));
        ::recv(fd, request.data(), request.size(), MSG_WAITALL);
      }
      char reply[5];
      internal::EncodeFrameLength(16 * 1024 * 1024, reply);
      reply[4] = static_cast<char>(0x82);
      ::send(fd, reply, sizeof reply, MSG_NOSIGNAL);
      held.push_back(fd);
    }
  });
  const long before = RssKb();
  std::vector<std::future<std::string>> calls;
  for (int i = 0; i < kCalls; ++i) {
    calls.push_back(std::async(std::launch::async, [port] {
      auto client =
          MakeClient<rich::RichService>(MakeThriftChannel("127.0.0.1:" + std::to_string(port)));
      try {
        ScopedCallOptions patient({std::chrono::seconds(60)});
        client->Count();
        return std::string("answered");
      } catch (const RpcError& e) {
        return std::string(e.what());
      }
    }));
  }
  server.join();
  // Every caller has taken the prefix and the byte, and waits for the rest.
  bool read = false;
  for (int i = 0; i < 3000 && !(read = AllReadTo(port, kCalls)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(read) << "the callers did not read what the server sent";
  const long after = RssKb();
  // 24 x 16 MiB would be 384 MiB; a reply's buffer follows the bytes received.
  EXPECT_LT(after - before, 48 * 1024) << before << " KiB -> " << after << " KiB";
  for (int fd : held) ::close(fd);
  for (auto& call : calls) EXPECT_NE(call.get(), "answered");
  ::close(listener);
}

TEST_F(ServingCoreTest, ATrickledFrameIsClosedAtItsDeadline) {
  ServerOptions options;
  options.frame_timeout = std::chrono::milliseconds(400);
  StartServer(options);
  int fd = ConnectTo(server_->thrift_port());
  ASSERT_GE(fd, 0);
  char prefix[4];
  internal::EncodeFrameLength(1000, prefix);
  ASSERT_EQ(::send(fd, prefix, 4, 0), 4);
  // One byte every 50 ms keeps the connection from ever being idle, never completes the frame.
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    char byte = static_cast<char>(0x82);
    if (::send(fd, &byte, 1, MSG_NOSIGNAL) != 1) break;
    closed = ClosedWithin(fd, std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(closed || ClosedWithin(fd, std::chrono::seconds(5)))
      << "a frame that never completes holds its connection forever";
  ::close(fd);
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1);
}

// Once 64 KiB of a larger frame are in, the server reads the rest straight into that frame's
// own buffer: large frames sent in small writes, back to back with small ones (a frame's end in
// the same write as the next one's start) each come back whole, in order.
TEST_F(ServingCoreTest, LargeFramesInPiecesAreEachServedWhole) {
  StartServer(ServerOptions{});
  const std::size_t sizes[] = {600 * 1024, 5, 70 * 1024, 3 * 1024 * 1024, 64 * 1024 + 1, 17};
  const auto format = WireFormat::kThriftCompact;
  std::vector<rich::Scalars> sent;
  std::string bytes;
  for (std::size_t i = 0; i < std::size(sizes); ++i) {
    rich::Scalars scalars;
    scalars.i32 = static_cast<int32_t>(i);
    scalars.text.assign(sizes[i], static_cast<char>('a' + i));
    scalars.blob.assign(i * 1000, static_cast<uint8_t>(i));
    std::string message = internal::ThriftMessage(format, "EchoScalars", internal::kThriftCall,
                                                  static_cast<int32_t>(i + 1),
                                                  ThriftEncode(std::make_tuple(scalars), format));
    char prefix[4];
    internal::EncodeFrameLength(static_cast<uint32_t>(message.size()), prefix);
    bytes.append(prefix, 4);
    bytes += message;
    sent.push_back(std::move(scalars));
  }
  int fd = ConnectTo(server_->thrift_port());
  ASSERT_GE(fd, 0);
  std::thread writer([fd, &bytes] {
    for (std::size_t at = 0; at < bytes.size(); at += 4099) {
      const std::size_t n = std::min<std::size_t>(4099, bytes.size() - at);
      if (::send(fd, bytes.data() + at, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return;
    }
  });
  auto read_replies = [&] {
    for (std::size_t i = 0; i < sent.size(); ++i) {
      internal::IoError error;
      char prefix[4];
      ASSERT_TRUE(internal::RecvFull(fd, prefix, 4, &error)) << "reply " << i + 1;
      std::string body(internal::DecodeFrameLength(prefix), '\0');
      ASSERT_TRUE(internal::RecvFull(fd, body.data(), body.size(), &error)) << "reply " << i + 1;
      internal::ThriftMessageHeader header;
      ASSERT_TRUE(internal::ParseThriftHeader(body, &header).ok());
      EXPECT_EQ(header.seqid, static_cast<int32_t>(i + 1)) << "replies in the order of the calls";
      EXPECT_EQ(header.type, internal::kThriftReply);
      rich::Scalars echoed = internal::ThriftDecodeResult<rich::Scalars>(
          std::string_view(body).substr(header.body_offset), format);
      EXPECT_EQ(echoed.i32, sent[i].i32);
      EXPECT_TRUE(echoed.text == sent[i].text)
          << "reply " << i + 1 << ": text of " << echoed.text.size() << " bytes";
      EXPECT_TRUE(echoed.blob == sent[i].blob) << "reply " << i + 1;
    }
  };
  read_replies();
  ::shutdown(fd, SHUT_RDWR);  // the writer stops too, should the server have closed early
  writer.join();
  ::close(fd);
}

// While a large frame is coming the epoll loop waits for its whole rest (the socket's low-water
// mark), and takes the mark down once the frame is in. Calls one after another, each waiting for
// its reply, with pauses that let the server read a part and wait on the rest: a mark left up
// would keep the small call after a large one (or a frame's last bytes) from ever being read.
TEST_F(ServingCoreTest, AfterALargeFrameWaitedForWholeTheNextSmallCallIsRead) {
  StartServer(ServerOptions{});
  int fd = ConnectTo(server_->thrift_port());
  ASSERT_GE(fd, 0);
  // A mark left up shows as a reply that never comes: fail then rather than hang.
  timeval limit{60, 0};
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
  struct Call {
    std::size_t text;               // the call's size, about
    std::vector<std::size_t> cuts;  // where the sender pauses, in bytes from the frame's start
  };
  const Call calls[] = {
      {600 * 1024, {70 * 1024}},                     // part read, rest waited for
      {5, {}},                                       // small after large
      {600 * 1024, {10 * 1024}},                     // less than 64 KiB in when the wait starts
      {17, {}},                                      //
      {3 * 1024 * 1024, {}},                         // whole, past one event's read budget
      {9, {}},                                       //
      {2 * 1024 * 1024, {100 * 1024, 1024 * 1024}},  // three parts: the mark holds
      {3, {}},                                       //
      {200 * 1024, {200 * 1024 - 50 * 1024}},        // under the size worth waiting for
      {1, {}},
  };
  const auto format = WireFormat::kThriftCompact;
  for (std::size_t i = 0; i < std::size(calls); ++i) {
    rich::Scalars scalars;
    scalars.i32 = static_cast<int32_t>(i);
    scalars.text.assign(calls[i].text, static_cast<char>('a' + i));
    std::string message = internal::ThriftMessage(format, "EchoScalars", internal::kThriftCall,
                                                  static_cast<int32_t>(i + 1),
                                                  ThriftEncode(std::make_tuple(scalars), format));
    std::string bytes(4, '\0');
    internal::EncodeFrameLength(static_cast<uint32_t>(message.size()), bytes.data());
    bytes += message;
    std::size_t at = 0;
    std::vector<std::size_t> cuts = calls[i].cuts;
    cuts.push_back(bytes.size());
    for (std::size_t cut : cuts) {
      if (at > 0) std::this_thread::sleep_for(std::chrono::milliseconds(30));  // shape, not time
      internal::IoError sent;
      ASSERT_TRUE(internal::SendFull(fd, std::string_view(bytes).substr(at, cut - at), &sent))
          << "call " << i + 1;
      at = cut;
    }
    internal::IoError error;
    char prefix[4];
    ASSERT_TRUE(internal::RecvFull(fd, prefix, 4, &error))
        << "call " << i + 1 << " of " << bytes.size() << " bytes: no reply";
    std::string body(internal::DecodeFrameLength(prefix), '\0');
    ASSERT_TRUE(internal::RecvFull(fd, body.data(), body.size(), &error)) << "call " << i + 1;
    internal::ThriftMessageHeader header;
    ASSERT_TRUE(internal::ParseThriftHeader(body, &header).ok());
    EXPECT_EQ(header.seqid, static_cast<int32_t>(i + 1));
    ASSERT_EQ(header.type, internal::kThriftReply);
    rich::Scalars echoed = internal::ThriftDecodeResult<rich::Scalars>(
        std::string_view(body).substr(header.body_offset), format);
    EXPECT_EQ(echoed.i32, scalars.i32);
    EXPECT_TRUE(echoed.text == scalars.text) << "call " << i + 1;
  }
  ::close(fd);
}

// The same when the large call blocks where it runs and its loop goes on on another thread: the
// mark comes down as the frame is taken, not when the loop next looks at the connection.
TEST_F(ServingCoreTest, AfterALargeCallThatBlockedTheNextSmallCallIsRead) {
  ServerOptions options;
  options.io_threads = 1;
  StartServer(options);
  int fd = ConnectTo(server_->thrift_port());
  ASSERT_GE(fd, 0);
  timeval limit{60, 0};
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
  const auto format = WireFormat::kThriftCompact;
  auto notify = [&](int32_t seqid, int64_t id, std::size_t size) {
    std::string message = internal::ThriftMessage(
        format, "Notify", internal::kThriftCall, seqid,
        ThriftEncode(std::make_tuple(id, std::string(size, 'n'), rich::Color::kBlue), format));
    std::string bytes(4, '\0');
    internal::EncodeFrameLength(static_cast<uint32_t>(message.size()), bytes.data());
    return bytes + message;
  };
  auto reply_to = [&](int32_t seqid) {
    internal::IoError error;
    char prefix[4];
    if (!internal::RecvFull(fd, prefix, 4, &error)) return false;
    std::string body(internal::DecodeFrameLength(prefix), '\0');
    internal::ThriftMessageHeader header;
    return internal::RecvFull(fd, body.data(), body.size(), &error) &&
           internal::ParseThriftHeader(body, &header).ok() && header.seqid == seqid &&
           header.type == internal::kThriftReply;
  };
  const std::string large = notify(1, RichServiceImpl::kHeld, 700 * 1024);
  internal::IoError sent;
  ASSERT_TRUE(internal::SendFull(fd, std::string_view(large).substr(0, 80 * 1024), &sent));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // read, the rest waited for
  ASSERT_TRUE(internal::SendFull(fd, std::string_view(large).substr(80 * 1024), &sent));
  ASSERT_TRUE(impl_->WaitEntered(1));
  // The loop's one thread is held by the call: another connection served shows the loop moved.
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1);
  impl_->Release();
  ASSERT_TRUE(reply_to(1)) << "the held call's reply";
  ASSERT_TRUE(internal::SendFull(fd, notify(2, 1, 3), &sent));
  EXPECT_TRUE(reply_to(2)) << "the small call after the large one was never read";
  ::close(fd);
}

TEST_F(ServingCoreTest, IdleSocketsAtTheCapDoNotLockOutAWorkingClient) {
  ServerOptions options;
  options.max_connections = 40;
  StartServer(options);
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    int fd = ConnectTo(server_->thrift_port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // The cap is reached by sockets that send nothing; working clients still get in.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Client(Protocol::kThrift)->Mix(rich::Color::kRed, rich::Color::kRed),
              rich::Color::kRed);
  }
  int closed = 0;
  for (int fd : idle) {
    pollfd p{fd, POLLIN, 0};
    char buf[8];
    if (::poll(&p, 1, 0) > 0 && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) ++closed;
    ::close(fd);
  }
  EXPECT_GT(closed, 0) << "the oldest idle connections made room";
}

TEST_F(ServingCoreTest, AGrpcConnectionThatNeverFinishesItsHandshakeIsClosed) {
  ServerOptions options;
  options.frame_timeout = std::chrono::milliseconds(400);
  StartServer(options);
  int silent = ConnectTo(server_->grpc_port());
  ASSERT_GE(silent, 0);
  // Half a preface, then nothing: the handshake never completes.
  ASSERT_EQ(::send(silent, "PRI * HTTP/2.0", 14, MSG_NOSIGNAL), 14);
  // The server's settings come first; then, at the deadline, the end of the connection.
  EXPECT_TRUE(ClosedWithin(silent, std::chrono::seconds(20)))
      << "a connection that never finishes its handshake holds its descriptor";
  ::close(silent);
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 1);
}

TEST_F(ServingCoreTest, AnIdleGrpcConnectionIsToldToGoAway) {
  ServerOptions options;
  options.idle_timeout = std::chrono::milliseconds(300);
  StartServer(options);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(20); };
  ASSERT_TRUE(channel->WaitForConnected(deadline()));
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // No call: the server sends GOAWAY and the channel leaves READY (to IDLE, as after any GOAWAY).
  ASSERT_TRUE(channel->WaitForStateChange(GRPC_CHANNEL_READY, deadline()))
      << "an idle connection stays open for good";
  EXPECT_NE(channel->GetState(false), GRPC_CHANNEL_READY);
  // A client reconnects on its next call.
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 1);
}

TEST_F(ServingCoreTest, GrpcConnectionsPastMaxConnectionsAreRefused) {
  ServerOptions options;
  options.max_connections = 4;
  StartServer(options);
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    int fd = ConnectTo(server_->grpc_port());
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  // The four are taken before the next connection (accept takes the backlog in order); the
  // fifth is closed at once, so its call fails, and is counted.
  const int64_t refused = internal::Transports().grpc_connections_refused.load();
  ChannelOptions fast;
  fast.default_timeout = std::chrono::seconds(2);
  EXPECT_THROW(Client(Protocol::kGrpc, fast)->Count(), RpcError);
  EXPECT_GE(internal::Transports().grpc_connections_refused.load() - refused, 1);
  for (int fd : held) ::close(fd);
  // Once they are gone (the server sees them close, and looks again within 100 ms), connections
  // are taken again.
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    try {
      Client(Protocol::kGrpc, fast)->Count();
      served = true;
    } catch (const RpcError&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(served) << "the cap counts connections that have closed";
}

// An HPACK integer of a 7-bit prefix (RFC 7541, 5.1).
std::string HpackLength(std::size_t n) {
  if (n < 127) return std::string(1, static_cast<char>(n));
  std::string out(1, '\x7f');
  for (n -= 127; n >= 128; n >>= 7) out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  return out + static_cast<char>(n);
}

// gRPC 1.51 keeps a header block until it ends, outside its limits: rpcboot closes a connection
// whose block passes 64 KiB (rpcboot/internal/http2_guard.h) and counts it. (Over TLS and
// against a server process: tests/interop/http2_flood_test.py.)
TEST_F(ServingCoreTest, AGrpcHeaderBlockThatNeverEndsClosesItsConnection) {
  StartServer({});
  const int64_t before = internal::Transports().grpc_floods_refused.load();
  int fd = ConnectTo(server_->grpc_port());
  ASSERT_GE(fd, 0);
  timeval bound{20, 0};  // a server that neither reads nor closes fails the test, not hangs it
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
  std::string out = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + Http2Frame(0x4, 0, "") +
                    Http2Frame(0x1, 0, "");  // HEADERS without END_HEADERS
  std::size_t sent = 0;
  bool refused = false;
  for (int i = 0; !refused && sent < (64u << 20); ++i) {
    // A literal header field, its name new, never indexed: a 16 KB value per CONTINUATION.
    std::string name = "x-flood-" + std::to_string(i);
    out += Http2Frame(
        0x9, 0,
        '\x00' + HpackLength(name.size()) + name + HpackLength(16000) + std::string(16000, 'v'));
    for (std::size_t at = 0; at < out.size();) {
      ssize_t n = ::send(fd, out.data() + at, out.size() - at, MSG_NOSIGNAL);
      if (n <= 0) {
        refused = true;
        break;
      }
      at += static_cast<std::size_t>(n);
    }
    sent += out.size();
    out.clear();
  }
  EXPECT_TRUE(refused) << "the server took " << (sent >> 20) << " MiB of one header block";
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(20)));
  ::close(fd);
  EXPECT_EQ(internal::Transports().grpc_floods_refused.load() - before, 1);
  EXPECT_EQ(Client(Protocol::kGrpc)->Count(), 1);
}

// One loop, 300 connections whose calls arrive together: more than an io_uring loop has receive
// buffers (64), so some receives find none and are armed again; every call is answered, each on
// its own connection.
TEST_F(ServingCoreTest, CallsArrivingTogetherOnManyConnectionsAreAllAnswered) {
  ServerOptions options;
  options.io_threads = 1;
  StartServer(options);
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    int fd = ConnectTo(server_->thrift_port());
    ASSERT_GE(fd, 0) << "connection " << i;
    fds.push_back(fd);
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    std::string call =
        internal::ThriftMessage(WireFormat::kThriftCompact, "Nope", internal::kThriftCall,
                                static_cast<int32_t>(i), std::string(1, '\0'));
    char prefix[4];
    internal::EncodeFrameLength(static_cast<uint32_t>(call.size()), prefix);
    call.insert(0, prefix, 4);
    ASSERT_EQ(::send(fds[i], call.data(), call.size(), 0), static_cast<ssize_t>(call.size()));
  }
  int answered = 0;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    char reply[512];
    ssize_t got = ::recv(fds[i], reply, sizeof reply, 0);  // a 30 s bound (ConnectTo)
    if (got > 4) {
      std::string text(reply, static_cast<std::size_t>(got));
      if (text.find("unknown method 'Nope'") != std::string::npos) ++answered;
    }
    ::close(fds[i]);
  }
  EXPECT_EQ(answered, 300);
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1) << "and the loop still serves";
}

// A Thrift peer that sends calls back to back and never reads a reply: once 1 MiB of its replies
// is unsent the server stops reading it (its next calls wait in the socket), so what it makes
// the server hold is bounded; it is closed when its reply has waited frame_timeout; other
// clients are served meanwhile.
TEST_F(ServingCoreTest, AThriftPeerThatNeverReadsItsRepliesIsHeldToABound) {
  ServerOptions options;
  options.frame_timeout = std::chrono::seconds(3);
  StartServer(options);
  rich::EchoRequest request;
  request.value.end = std::string(64 * 1024, 'x');
  std::string frame(4, '\0');
  frame +=
      internal::ThriftMessage(WireFormat::kThriftCompact, "Echo", internal::kThriftCall, 1,
                              ThriftEncode(std::make_tuple(request), WireFormat::kThriftCompact));
  internal::EncodeFrameLength(static_cast<uint32_t>(frame.size() - 4), frame.data());
  int fd = ConnectTo(server_->thrift_port());
  ASSERT_GE(fd, 0);
  const long rss_before = RssKb();
  // Sends until the socket stays full for a second (the server no longer reads) or 256 MiB went.
  constexpr std::size_t kCap = std::size_t{256} << 20;
  std::size_t sent = 0, offset = 0;
  while (sent < kCap) {
    pollfd writable{fd, POLLOUT, 0};
    if (::poll(&writable, 1, 1000) != 1 || (writable.revents & POLLOUT) == 0) break;
    ssize_t n =
        ::send(fd, frame.data() + offset, frame.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
    offset = (offset + static_cast<std::size_t>(n)) % frame.size();
  }
  const long rss_held = RssKb();
  std::printf(
      "a peer that never reads sent %zu KiB before the server stopped reading; RSS %ld -> "
      "%ld KiB\n",
      sent >> 10, rss_before, rss_held);
  EXPECT_LT(sent, kCap) << "the server kept reading a peer that read none of its replies";
  if (!kQuarantine) {
    EXPECT_LT(rss_held - rss_before, 64 * 1024) << "replies held for a peer that never reads";
  }
  EXPECT_EQ(Client(Protocol::kThrift)->Count(), 1) << "other clients are served meanwhile";
  // Still reading nothing: the server's close resets the connection (its calls unread).
  pollfd reset{fd, 0, 0};
  EXPECT_EQ(::poll(&reset, 1, 30000), 1) << "closed once its reply waited frame_timeout";
  EXPECT_NE(reset.revents & (POLLERR | POLLHUP), 0);
  ::close(fd);
}

TEST_F(ServingCoreTest, InlineMethodsNeedNoHandlerThread) {
  ServerOptions options;
  options.handler_threads = 1;
  options.inline_methods = {"rich.RichService/Mix"};
  StartServer(options);
  auto held = Hold(1, Protocol::kThrift);
  ASSERT_TRUE(impl_->WaitEntered(1)) << "the only handler thread is blocked";
  // Mix is listed as never blocking: it runs on the I/O threads, so it is served anyway.
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    EXPECT_EQ(Client(protocol)->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  }
  impl_->Release();
  held.front().get();
}

TEST(ServingCoreConfig, AnInlineMethodThatIsNotServedIsAnError) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  options.inline_methods = {"rich.RichService/Mixx"};
  Server server(options);
  server.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  absl::Status status = server.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("'rich.RichService/Mixx' names no served method"),
            std::string::npos)
      << status;
}

// server.thrift_io: uring puts the Thrift loops on io_uring where the kernel allows it (probed
// here as the server probes it: Debian 12's kernel does, a container's seccomp profile may not)
// and says so when it starts; where the kernel refuses, the server says why and serves on epoll.
// Either way it answers calls.
TEST(ThriftIo, UringLoopsServeOrTheServerSaysWhyItUsesEpoll) {
  std::string log;
  {
    testing::CapturedLog captured;
    ServerOptions options;
    options.host = "127.0.0.1";
    options.thrift_port = 0;
    options.thrift_io = ServerOptions::ThriftIo::kUring;
    Server server(options);
    server.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
    ASSERT_TRUE(server.Start().ok());
    auto client = MakeClient<rich::RichService>(
        MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
    EXPECT_EQ(client->Count(), 1);
    EXPECT_EQ(client->Count(), 2);
    server.Shutdown();
    log = captured.text();
  }
  io_uring probe;
  const int refused = io_uring_queue_init(8, &probe, 0);
  if (refused == 0) io_uring_queue_exit(&probe);
  if (refused == 0) {
    EXPECT_NE(log.find(" on io_uring)"), std::string::npos)
        << "this kernel allows io_uring (Linux 6.0 or later needed for the loops):\n"
        << log;
  } else {
    EXPECT_NE(log.find("server.thrift_io uring: io_uring refused"), std::string::npos) << log;
    EXPECT_NE(log.find(" on epoll)"), std::string::npos) << log;
  }
}

// In a process of its own: a server of `loops` event loops started with room for a few threads'
// stacks only (RLIMIT_AS), 300 idle connections, then one call per loop on connections of their
// own. Exits 0 when every call was answered.
[[noreturn]] void ServeWithRoomForFewThreads(int loops) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  options.handler_threads = 1;
  options.io_threads = loops;
  Server server(options);
  server.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  pthread_attr_t attr;
  std::size_t stack = 0;
  pthread_getattr_default_np(&attr);
  pthread_attr_getstacksize(&attr, &stack);
  pthread_attr_destroy(&attr);
  const rlim_t room =
      static_cast<rlim_t>(ProcStatus("VmSize:")) * 1024 + 4 * stack + (rlim_t{16} << 20);
  rlimit limit{room, room};
  if (::setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(3);
  absl::Status status = server.Start();
  if (!status.ok()) {
    std::fprintf(stderr, "Start: %s\n", std::string(status.message()).c_str());
    std::_Exit(1);
  }
  // A flood of connections that send nothing costs no thread and little memory: it is held.
  std::vector<int> flood;
  for (int i = 0; i < 300; ++i) {
    int fd = ConnectTo(server.thrift_port());
    if (fd < 0) {
      std::fprintf(stderr, "flood: connection %d refused\n", i);
      std::_Exit(4);
    }
    flood.push_back(fd);
  }
  // Connections go to the loops in turn: each loop that kept a thread answers one.
  for (int i = 0; i < loops; ++i) {
    int fd = ConnectTo(server.thrift_port());
    std::string call = internal::ThriftMessage(WireFormat::kThriftCompact, "Nope",
                                               internal::kThriftCall, i, std::string(1, '\0'));
    char prefix[4];
    internal::EncodeFrameLength(static_cast<uint32_t>(call.size()), prefix);
    call.insert(0, prefix, 4);
    pollfd ready{fd, POLLIN, 0};
    char reply[256];
    if (fd < 0 || ::send(fd, call.data(), call.size(), 0) != static_cast<ssize_t>(call.size()) ||
        ::poll(&ready, 1, 10000) != 1 || ::recv(fd, reply, sizeof reply, 0) <= 4) {
      std::fprintf(stderr, "connection %d: no answer\n", i);
      std::_Exit(2);
    }
    ::close(fd);
  }
  std::_Exit(0);
}

// When the system refuses threads (here: no address space left for their stacks), the Thrift
// server starts with the event loops that got one, says so in its log, holds a flood of idle
// connections within that address space, and serves on each loop.
TEST(ServingCoreLimits, AServerGivenFewerThreadsThanLoopsServesOnThoseItGot) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ServeWithRoomForFewThreads(16), ::testing::ExitedWithCode(0),
              "started [0-9]+ of 16 I/O threads; the system refused more");
}

}  // namespace
}  // namespace rpcboot
