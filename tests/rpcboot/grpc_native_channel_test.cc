// The native gRPC channel against servers that answer with what a stock gRPC server never would:
// a scripted HTTP/2 server (frames and HPACK written by hand) stands in for a hostile or broken
// peer, and a real rpcboot server beside it shows what is retried. Each reply is input from
// outside: every case ends in a clear status on the call, and the process goes on.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "socket_testing.h"

namespace rpcboot {
namespace {

using testing::Http2Frame;
using testing::RichServiceImpl;

constexpr unsigned char kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kPing = 0x6,
                        kGoaway = 0x7, kContinuation = 0x9;
constexpr unsigned char kEndStream = 0x1, kEndHeaders = 0x4, kAck = 0x1;

// An HPACK integer with an n-bit prefix whose high bits are `first`.
std::string HpackInt(std::size_t value, int prefix_bits, unsigned char first) {
  const std::size_t max = (std::size_t{1} << prefix_bits) - 1;
  std::string out;
  if (value < max) {
    out.push_back(static_cast<char>(first | value));
    return out;
  }
  out.push_back(static_cast<char>(first | max));
  value -= max;
  while (value >= 128) {
    out.push_back(static_cast<char>((value % 128) + 128));
    value /= 128;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

// A header block of literal fields without indexing, new names, no Huffman coding.
std::string HeaderBlock(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    out.push_back('\0');
    out += HpackInt(name.size(), 7, 0) + name + HpackInt(value.size(), 7, 0) + value;
  }
  return out;
}

std::string Uint32(uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  return out;
}

// A gRPC message: its 5-byte prefix (`compressed`, `declared` length) and the bytes.
std::string GrpcMessage(const std::string& bytes, bool compressed = false,
                        uint32_t declared = UINT32_MAX) {
  return std::string(1, compressed ? '\1' : '\0') +
         Uint32(declared == UINT32_MAX ? static_cast<uint32_t>(bytes.size()) : declared) + bytes;
}

std::string ResponseHeaders(uint32_t stream, const std::string& status = "200",
                            const std::string& content_type = "application/grpc") {
  return Http2Frame(kHeaders, kEndHeaders,
                    HeaderBlock({{":status", status}, {"content-type", content_type}}), stream);
}

std::string Trailers(uint32_t stream, const std::string& status, const std::string& message = "") {
  std::vector<std::pair<std::string, std::string>> fields = {{"grpc-status", status}};
  if (!message.empty()) fields.emplace_back("grpc-message", message);
  return Http2Frame(kHeaders, kEndHeaders | kEndStream, HeaderBlock(fields), stream);
}

// What Notify answers when all is well: an empty message, then grpc-status 0.
std::string GoodReply(uint32_t stream) {
  return ResponseHeaders(stream) + Http2Frame(kData, 0, GrpcMessage(""), stream) +
         Trailers(stream, "0");
}

// A server on 127.0.0.1 that reads HTTP/2 frames and, when a request stream ends, writes what
// `reply(stream)` gives. An empty reply closes the connection; kHang writes nothing.
class ScriptedServer {
 public:
  static inline const std::string kHang = "hang";

  // `settings`: the payload of the SETTINGS frame it opens each connection with.
  explicit ScriptedServer(std::function<std::string(uint32_t)> reply, std::string settings = "")
      : reply_(std::move(reply)), settings_(std::move(settings)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen";
      return;
    }
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~ScriptedServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    accept_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    for (std::thread& t : connections_) t.join();
    for (int fd : fds_) ::close(fd);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Writes `bytes` on every connection open now (between calls: a frame the client finds on its
  // idle connection; loopback delivers it before send returns).
  void SendToAll(const std::string& bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  // Sends GOAWAY (last stream 1) on every open connection and, as a server that sent it would,
  // takes no request above stream 1 on them: such a request is not counted and not answered.
  void GoAway() {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string goaway = Http2Frame(kGoaway, 0, Uint32(1) + Uint32(0), 0);
    for (int fd : fds_) {
      gone_.push_back(fd);
      ::send(fd, goaway.data(), goaway.size(), MSG_NOSIGNAL);
    }
  }
  // Answers every stream it left hanging (kHang) so far, with GoodReply.
  void AnswerHung() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto [fd, stream] : hung_) {
      const std::string reply = GoodReply(stream);
      ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    hung_.clear();
  }
  int connections() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }
  // RST_STREAM frames with CANCEL (8) the client sent: streams it left.
  int cancels() const { return cancels_.load(); }
  // SETTINGS acknowledged by the client: connections whose settings it has read.
  int settings_acks() const { return settings_acks_.load(); }
  // PINGs the client sent (not acknowledgements); answered only after AnswerPings().
  int pings() const { return pings_.load(); }
  void AnswerPings() { answer_pings_ = true; }
  // Connections the client closed.
  int closed() const { return closed_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string in;
    char buf[65536];
    bool preface = false;
    std::string settings = Http2Frame(kSettings, 0, settings_);
    if (::send(fd, settings.data(), settings.size(), MSG_NOSIGNAL) < 0) return;
    for (;;) {
      ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got == 0) ++closed_;
        return;
      }
      in.append(buf, static_cast<std::size_t>(got));
      if (!preface) {
        if (in.size() < 24) continue;
        in.erase(0, 24);
        preface = true;
      }
      while (in.size() >= 9) {
        std::size_t length = (std::size_t{static_cast<unsigned char>(in[0])} << 16) |
                             (std::size_t{static_cast<unsigned char>(in[1])} << 8) |
                             static_cast<unsigned char>(in[2]);
        if (in.size() < 9 + length) break;
        const unsigned char type = static_cast<unsigned char>(in[3]);
        const unsigned char flags = static_cast<unsigned char>(in[4]);
        const uint32_t stream = ((static_cast<unsigned char>(in[5]) & 0x7fu) << 24) |
                                (static_cast<uint32_t>(static_cast<unsigned char>(in[6])) << 16) |
                                (static_cast<uint32_t>(static_cast<unsigned char>(in[7])) << 8) |
                                static_cast<unsigned char>(in[8]);
        if (type == kRstStream && length == 4 && in.substr(9, 4) == std::string("\0\0\0\x08", 4))
          ++cancels_;
        const std::string payload = in.substr(9, length);
        in.erase(0, 9 + length);
        std::string out;
        if (type == kPing && (flags & kAck) == 0) {
          ++pings_;
          if (answer_pings_) out = Http2Frame(kPing, kAck, payload, 0);
        }
        if (type == kSettings && (flags & kAck) != 0) ++settings_acks_;
        if (type == kSettings && (flags & kAck) == 0) out = Http2Frame(kSettings, kAck, "");
        if (type == kData && (flags & kEndStream) != 0 && stream > 1 && Gone(fd)) continue;
        if (type == kData && (flags & kEndStream) != 0) {
          ++requests_;
          std::string reply = reply_(stream);
          if (reply.empty()) {  // the connection drops mid-call
            ::shutdown(fd, SHUT_RDWR);
            return;
          }
          if (reply != kHang) {
            out += reply;
          } else {
            std::lock_guard<std::mutex> lock(mu_);
            hung_.emplace_back(fd, stream);
          }
        }
        if (!out.empty() && ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) < 0) return;
      }
    }
  }

  bool Gone(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::find(gone_.begin(), gone_.end(), fd) != gone_.end();
  }

  std::function<std::string(uint32_t)> reply_;
  std::string settings_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_;
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> cancels_{0};
  std::atomic<int> settings_acks_{0};
  std::atomic<int> pings_{0};
  std::atomic<int> closed_{0};
  std::atomic<bool> answer_pings_{false};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<int> gone_;                       // connections it sent GOAWAY on
  std::vector<std::pair<int, uint32_t>> hung_;  // (connection, stream) of each kHang
  std::vector<std::thread> connections_;
};

// A real rpcboot server of `impl` on a free gRPC port of 127.0.0.1.
std::unique_ptr<Server> StartServer(std::shared_ptr<RichServiceImpl> impl) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  auto server = std::make_unique<Server>(options);
  server->AddService<rich::RichService>(std::move(impl));
  EXPECT_TRUE(server->Start().ok());
  return server;
}

std::shared_ptr<rich::RichService> NativeClient(
    const std::string& address, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  ChannelOptions options;
  options.grpc_client = GrpcClient::kNative;
  options.default_timeout = timeout;
  return MakeClient<rich::RichService>(MakeGrpcChannel(address, options));
}

// The status a Notify through `address` ends with, and its message.
std::pair<StatusCode, std::string> NotifyThrough(
    const std::string& address, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  try {
    NativeClient(address, timeout)->Notify(1, "hello", rich::Color::kRed);
    return {StatusCode::kOk, ""};
  } catch (const RpcError& e) {
    return {e.code(), e.message()};
  }
}

TEST(NativeGrpcChannel, AConnectionCarriesOneCallAfterAnother) {
  ScriptedServer server(GoodReply);
  auto client = NativeClient(server.address());
  for (int i = 0; i < 5; ++i) client->Notify(i, "hello", rich::Color::kRed);
  EXPECT_EQ(server.requests(), 5);
  EXPECT_EQ(server.connections(), 1);
}

TEST(NativeGrpcChannel, AnErrorStatusArrivesWithItsMessagePercentDecoded) {
  ScriptedServer server(
      [](uint32_t s) { return ResponseHeaders(s) + Trailers(s, "5", "caf%C3%A9 at 100%25%zz"); });
  auto [code, message] = NotifyThrough(server.address());
  EXPECT_EQ(code, StatusCode::kNotFound);
  EXPECT_EQ(message, "caf\xC3\xA9 at 100%%zz");
  // A trailers-only reply (one HEADERS frame that ends the stream) says the same.
  ScriptedServer only([](uint32_t s) {
    return Http2Frame(kHeaders, kEndHeaders | kEndStream,
                      HeaderBlock({{":status", "200"},
                                   {"content-type", "application/grpc"},
                                   {"grpc-status", "7"},
                                   {"grpc-message", "no"}}),
                      s);
  });
  EXPECT_EQ(NotifyThrough(only.address()),
            std::make_pair(StatusCode::kPermissionDenied, std::string("no")));
}

TEST(NativeGrpcChannel, AReplyDeclaredOverTheLimitIsRefusedBeforeItArrives) {
  ScriptedServer server([](uint32_t s) {
    // Declares 1 GiB and sends 3 bytes: nothing of the size is kept.
    return ResponseHeaders(s) + Http2Frame(kData, 0, GrpcMessage("abc", false, 1u << 30), s);
  });
  auto [code, message] = NotifyThrough(server.address());
  EXPECT_EQ(code, StatusCode::kResourceExhausted);
  EXPECT_NE(message.find("reply of 1073741824 bytes exceeds the limit of 16777216"),
            std::string::npos)
      << message;
}

TEST(NativeGrpcChannel, AReplyWithoutGrpcStatusTakesItsCodeFromTheHttpStatus) {
  ScriptedServer unavailable([](uint32_t s) {
    return Http2Frame(kHeaders, kEndHeaders | kEndStream,
                      HeaderBlock({{":status", "503"}, {"content-type", "text/html"}}), s);
  });
  auto [code, message] = NotifyThrough(unavailable.address());
  EXPECT_EQ(code, StatusCode::kUnavailable);
  EXPECT_NE(message.find("answered HTTP status 503 without a grpc-status"), std::string::npos)
      << message;
  ScriptedServer silent([](uint32_t s) {
    return ResponseHeaders(s) + Http2Frame(kData, kEndStream, GrpcMessage(""), s);
  });
  auto [code2, message2] = NotifyThrough(silent.address());
  EXPECT_EQ(code2, StatusCode::kInternal);
  EXPECT_NE(message2.find("ended without a grpc-status"), std::string::npos) << message2;
}

TEST(NativeGrpcChannel, MalformedRepliesAreInternalErrorsNamingWhatWasWrong) {
  struct Case {
    const char* name;
    std::function<std::string(uint32_t)> reply;
    std::string expected;
  };
  const Case cases[] = {
      {"bad grpc-status", [](uint32_t s) { return ResponseHeaders(s) + Trailers(s, "abc"); },
       "bad grpc-status 'abc'"},
      {"grpc-status out of range",
       [](uint32_t s) { return ResponseHeaders(s) + Trailers(s, "17"); }, "bad grpc-status '17'"},
      {"two messages",
       [](uint32_t s) {
         return ResponseHeaders(s) + Http2Frame(kData, 0, GrpcMessage("") + GrpcMessage(""), s) +
                Trailers(s, "0");
       },
       "more than one reply message"},
      {"no message", [](uint32_t s) { return ResponseHeaders(s) + Trailers(s, "0"); },
       "no complete message"},
      {"a message cut short",
       [](uint32_t s) {
         return ResponseHeaders(s) + Http2Frame(kData, 0, GrpcMessage("ab", false, 9), s) +
                Trailers(s, "0");
       },
       "no complete message"},
      {"marked gzip, not gzip",
       [](uint32_t s) {
         return Http2Frame(kHeaders, kEndHeaders,
                           HeaderBlock({{":status", "200"},
                                        {"content-type", "application/grpc"},
                                        {"grpc-encoding", "gzip"}}),
                           s) +
                Http2Frame(kData, 0, GrpcMessage("plainly not gzip", true), s) + Trailers(s, "0");
       },
       "a message marked gzip does not inflate"},
      {"compressed with an encoding this client does not take",
       [](uint32_t s) {
         return Http2Frame(kHeaders, kEndHeaders,
                           HeaderBlock({{":status", "200"},
                                        {"content-type", "application/grpc"},
                                        {"grpc-encoding", "snappy"}}),
                           s) +
                Http2Frame(kData, 0, GrpcMessage("x", true), s) + Trailers(s, "0");
       },
       "compressed with 'snappy', which this client does not take"},
      {"marked compressed without grpc-encoding",
       [](uint32_t s) {
         return ResponseHeaders(s) + Http2Frame(kData, 0, GrpcMessage("x", true), s) +
                Trailers(s, "0");
       },
       "compressed with '', which this client does not take"},
      {"not gRPC content",
       [](uint32_t s) {
         return ResponseHeaders(s, "200", "text/html") + Http2Frame(kData, 0, GrpcMessage(""), s) +
                Trailers(s, "0");
       },
       "content-type 'text/html'"},
      {"not HTTP/2", [](uint32_t) { return std::string("HTTP/1.1 400 Bad Request\r\n\r\n"); },
       "bad HTTP/2 from"},
      {"binary reply metadata that is not base64",
       [](uint32_t s) {
         return Http2Frame(kHeaders, kEndHeaders,
                           HeaderBlock({{":status", "200"},
                                        {"content-type", "application/grpc"},
                                        {"x-blob-bin", "not*base64!"}}),
                           s) +
                Http2Frame(kData, 0, GrpcMessage(""), s) + Trailers(s, "0");
       },
       "reply metadata 'x-blob-bin' is not base64"},
  };
  for (const Case& c : cases) {
    ScriptedServer server(c.reply);
    auto [code, message] = NotifyThrough(server.address());
    EXPECT_EQ(code, StatusCode::kInternal) << c.name << ": " << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.name << ": " << message;
  }
}

TEST(NativeGrpcChannel, ReplyHeadersOverTheirLimitAreRefused) {
  ScriptedServer server([](uint32_t s) {
    // 80 KB of headers in a HEADERS frame and CONTINUATION frames of 16 KB.
    std::string block = HeaderBlock({{":status", "200"},
                                     {"content-type", "application/grpc"},
                                     {"x-a", std::string(40000, 'a')},
                                     {"x-b", std::string(40000, 'b')}});
    std::string out;
    for (std::size_t at = 0; at < block.size(); at += 16384) {
      const bool last = at + 16384 >= block.size();
      out += Http2Frame(at == 0 ? kHeaders : kContinuation, last ? kEndHeaders : 0,
                        block.substr(at, 16384), s);
    }
    return out;
  });
  auto [code, message] = NotifyThrough(server.address());
  EXPECT_EQ(code, StatusCode::kResourceExhausted) << message;
  EXPECT_NE(message.find("reply headers over 65536 bytes"), std::string::npos) << message;
}

TEST(NativeGrpcChannel, AStreamResetByTheServerMapsAsGrpcDoes) {
  const std::pair<uint32_t, StatusCode> cases[] = {
      {0x8, StatusCode::kCancelled},          // CANCEL
      {0xb, StatusCode::kResourceExhausted},  // ENHANCE_YOUR_CALM
      {0x2, StatusCode::kInternal},           // INTERNAL_ERROR
      {0x7, StatusCode::kUnavailable},        // REFUSED_STREAM: never ran
  };
  for (auto [error, expected] : cases) {
    ScriptedServer server([error = error](uint32_t s) {
      return ResponseHeaders(s) + Http2Frame(kRstStream, 0, Uint32(error), s);
    });
    auto [code, message] = NotifyThrough(server.address());
    EXPECT_EQ(code, expected) << "RST_STREAM " << error << ": " << message;
  }
}

TEST(NativeGrpcChannel, ADroppedOrSilentServerFailsTheCallAndTheNextCallGoesOn) {
  ScriptedServer dropping([](uint32_t) { return std::string(); });
  auto [code, message] = NotifyThrough(dropping.address());
  EXPECT_EQ(code, StatusCode::kUnavailable);
  EXPECT_NE(message.find("lost during the call"), std::string::npos) << message;

  ScriptedServer silent([](uint32_t) { return ScriptedServer::kHang; });
  auto [code2, message2] = NotifyThrough(silent.address(), std::chrono::milliseconds(300));
  EXPECT_EQ(code2, StatusCode::kDeadlineExceeded) << message2;

  // A call that timed out resets its stream (CANCEL: the server learns the caller left), and its
  // connection carries the next call. The first call's reply, late (an error), comes before the
  // second's on that connection and is not taken for it.
  int calls = 0;
  ScriptedServer once_silent([&calls](uint32_t s) {
    if (++calls == 1) return ScriptedServer::kHang;
    return ResponseHeaders(1) + Trailers(1, "13", "late") + GoodReply(s);
  });
  auto client = NativeClient(once_silent.address(), std::chrono::milliseconds(300));
  EXPECT_THROW(client->Notify(1, "first", rich::Color::kRed), RpcError);
  client->Notify(2, "second", rich::Color::kRed);
  EXPECT_EQ(once_silent.connections(), 1);
  EXPECT_EQ(once_silent.cancels(), 1);
}

// Past the solo connections, calls share connections as HTTP/2 streams. 200 calls in flight at
// once (the server answers none until all have come) take the 32 connections the first 32 opened,
// and each gets its own reply, read for it by whichever caller reads its connection. A call on a
// shared connection whose deadline passes resets its stream (CANCEL) and leaves the others on the
// connection going; its late reply, when it comes, goes to nobody.
TEST(NativeGrpcChannel, CallsPastTheSoloConnectionsShareConnectionsAsStreams) {
  constexpr int kSolo = 32;  // kSoloConnections of grpc_native_channel.cc
  constexpr int kCalls = 200;
  constexpr int kShortCalls = 20;
  std::atomic<int> requests{0};
  ScriptedServer server([&requests](uint32_t s) {
    return ++requests <= kCalls ? ScriptedServer::kHang : GoodReply(s);
  });
  auto client = NativeClient(server.address(), std::chrono::seconds(60));
  std::atomic<int> ok{0};
  std::atomic<int> timed_out{0};
  std::vector<std::thread> callers;
  auto start = [&](int from, int to, std::chrono::milliseconds timeout) {
    for (int i = from; i < to; ++i) {
      callers.emplace_back([&, i, timeout] {
        CallOptions call;
        call.timeout = timeout;
        ScopedCallOptions scope(call);
        try {
          client->Notify(i, "hello", rich::Color::kRed);
          ++ok;
        } catch (const RpcError& e) {
          if (e.code() == StatusCode::kDeadlineExceeded) {
            ++timed_out;
          } else {
            ADD_FAILURE() << "call " << i << ": " << e.message();
          }
        }
      });
    }
  };
  // Bounded waits for counts, not for times.
  auto until = [](const std::function<bool()>& done) {
    for (int i = 0; i < 3000 && !done(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };
  start(0, kSolo, std::chrono::seconds(60));
  EXPECT_TRUE(until([&] { return server.requests() == kSolo; })) << server.requests();
  start(kSolo, kCalls - kShortCalls, std::chrono::seconds(60));
  EXPECT_TRUE(until([&] { return server.requests() == kCalls - kShortCalls; }))
      << server.requests();
  start(kCalls - kShortCalls, kCalls, std::chrono::milliseconds(200));
  EXPECT_TRUE(until([&] { return timed_out == kShortCalls; })) << timed_out;
  EXPECT_TRUE(until([&] { return server.cancels() == kShortCalls; })) << server.cancels();
  EXPECT_EQ(ok, 0);
  server.AnswerHung();
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(ok, kCalls - kShortCalls);
  EXPECT_EQ(server.connections(), kSolo);
  // The connections go on: the next calls find them.
  client->Notify(0, "after", rich::Color::kRed);
  EXPECT_EQ(server.connections(), kSolo);
}

// The server's SETTINGS_MAX_CONCURRENT_STREAMS bounds the calls on each shared connection: with 2,
// 64 calls fill the 32 connections, the next opens a 33rd, one more joins it, and the one after
// that opens a 34th. Every call gets its reply once the server answers.
TEST(NativeGrpcChannel, TheServersStreamLimitBoundsTheCallsOnEachConnection) {
  constexpr int kSolo = 32;  // kSoloConnections of grpc_native_channel.cc
  std::atomic<bool> answer{false};
  ScriptedServer server(
      [&answer](uint32_t s) { return answer ? GoodReply(s) : ScriptedServer::kHang; },
      /*settings=*/std::string("\0\3", 2) + Uint32(2));  // SETTINGS_MAX_CONCURRENT_STREAMS 2
  auto client = NativeClient(server.address(), std::chrono::seconds(60));
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  auto start = [&](int n) {
    for (int i = 0; i < n; ++i) {
      callers.emplace_back([&] {
        try {
          client->Notify(1, "hello", rich::Color::kRed);
          ++ok;
        } catch (const RpcError& e) {
          ADD_FAILURE() << e.message();
        }
      });
    }
  };
  auto until = [](const std::function<bool()>& done) {
    for (int i = 0; i < 3000 && !done(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };
  // Each step waits until the client has read the settings of every connection it opened.
  auto settled = [&](int requests, int connections) {
    return until([&] {
      return server.requests() == requests && server.connections() == connections &&
             server.settings_acks() == connections;
    });
  };
  start(kSolo);
  EXPECT_TRUE(settled(kSolo, kSolo)) << server.requests() << " " << server.connections();
  start(kSolo);
  EXPECT_TRUE(settled(2 * kSolo, kSolo)) << server.requests() << " " << server.connections();
  start(1);
  EXPECT_TRUE(settled(2 * kSolo + 1, kSolo + 1))
      << server.requests() << " " << server.connections();
  start(1);
  EXPECT_TRUE(settled(2 * kSolo + 2, kSolo + 1))
      << server.requests() << " " << server.connections();
  start(1);
  EXPECT_TRUE(settled(2 * kSolo + 3, kSolo + 2))
      << server.requests() << " " << server.connections();
  answer = true;
  server.AnswerHung();
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(ok, 2 * kSolo + 3);
}

// A server that takes no stream at all (SETTINGS_MAX_CONCURRENT_STREAMS 0, and REFUSED_STREAM to
// a stream sent before the client read that): each call fails at once as never sent, none waits
// for its deadline with its request held back, and a pooled connection whose server takes no
// more streams is not used for one.
TEST(NativeGrpcChannel, AServerThatTakesNoStreamFailsEachCallAsNeverSent) {
  ScriptedServer server([](uint32_t s) { return Http2Frame(kRstStream, 0, Uint32(0x7), s); },
                        /*settings=*/std::string("\0\3", 2) + Uint32(0));
  auto client = NativeClient(server.address(), std::chrono::seconds(60));
  for (int i = 0; i < 3; ++i) {
    try {
      client->Notify(1, "hello", rich::Color::kRed);
      ADD_FAILURE() << "a call went through a server that takes no stream";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnavailable) << e.message();
      EXPECT_NE(e.message().find("refused the stream"), std::string::npos) << e.message();
    }
  }
  // Each call's one stream went out on a new connection.
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 3);
}

// A server going away between calls (a GOAWAY on the idle connection, as one that drains sends):
// the pooled connection is read before reuse and left, and the next call opens a new one.
// The GOAWAY may reach the client before its next call (the connection is left) or after the call
// has sent its stream on it (refused, sent again on a new connection): the call succeeds either
// way, and the server that sent GOAWAY is never asked twice.
TEST(NativeGrpcChannel, AConnectionTheServerLeftWhileIdleIsNotReused) {
  ScriptedServer draining(GoodReply);
  auto client = NativeClient(draining.address());
  client->Notify(10, "first", rich::Color::kRed);
  draining.GoAway();
  client->Notify(11, "second", rich::Color::kRed);
  EXPECT_EQ(draining.requests(), 2);
  EXPECT_EQ(draining.connections(), 2);
  // A PING on the idle connection is answered and the connection stays in use.
  draining.SendToAll(Http2Frame(0x6, 0, std::string(8, 'p'), 0));
  client->Notify(12, "third", rich::Color::kRed);
  EXPECT_EQ(draining.requests(), 3);
  EXPECT_EQ(draining.connections(), 2);
}

// ChannelOptions::grpc_keepalive_time: an idle pooled connection is sent PINGs; while they are
// answered it stays in the pool (the next call takes it), and one whose PING goes unanswered
// past grpc_keepalive_timeout is closed, so the next call opens a new connection instead of
// waiting out its deadline on a dead one. Every wait is on a count; a generous bound ends it.
TEST(NativeGrpcChannel, KeepalivePingsIdleConnectionsAndClosesTheSilentOnes) {
  auto wait_for = [](const std::function<bool()>& done) {
    for (int i = 0; i < 3000 && !done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  };
  ChannelOptions options;
  options.grpc_client = GrpcClient::kNative;
  options.grpc_keepalive_time = std::chrono::milliseconds(1);
  options.grpc_keepalive_timeout = std::chrono::milliseconds(200);
  {
    ScriptedServer answering(GoodReply);
    answering.AnswerPings();
    auto client = MakeClient<rich::RichService>(MakeGrpcChannel(answering.address(), options));
    client->Notify(1, "first", rich::Color::kRed);
    EXPECT_TRUE(wait_for([&] { return answering.pings() >= 3; })) << answering.pings();
    client->Notify(2, "second", rich::Color::kRed);
    EXPECT_EQ(answering.connections(), 1) << "a connection whose PINGs are answered is kept";
    EXPECT_EQ(answering.closed(), 0);
  }
  {
    ScriptedServer silent(GoodReply);
    auto client = MakeClient<rich::RichService>(MakeGrpcChannel(silent.address(), options));
    client->Notify(1, "first", rich::Color::kRed);
    EXPECT_TRUE(wait_for([&] { return silent.closed() >= 1; })) << "the silent one stayed open";
    EXPECT_EQ(silent.pings(), 1);
    client->Notify(2, "second", rich::Color::kRed);
    EXPECT_EQ(silent.connections(), 2) << "the next call opens a new connection";
  }
  {
    // Off (the default): no PING at all.
    ScriptedServer quiet(GoodReply);
    auto client = NativeClient(quiet.address());
    client->Notify(1, "first", rich::Color::kRed);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // two sweeps, at least
    EXPECT_EQ(quiet.pings(), 0);
  }
}

// A stream refused on a pooled connection is sent once more on a new connection, whatever the
// method (it never ran); one refused on a new connection is the caller's to retry.
TEST(NativeGrpcChannel, AStreamRefusedOnAPooledConnectionIsSentOnceMoreOnANewOne) {
  // Answers the first stream of each connection and refuses every later one.
  ScriptedServer first_only(
      [](uint32_t s) { return s == 1 ? GoodReply(s) : Http2Frame(kRstStream, 0, Uint32(0x7), s); });
  auto client = NativeClient(first_only.address());
  for (int i = 0; i < 3; ++i) client->Notify(10 + i, "again", rich::Color::kRed);
  EXPECT_EQ(first_only.connections(), 3);
  EXPECT_EQ(first_only.requests(), 5);  // 1, then (refused, answered) twice

  ScriptedServer refusing([](uint32_t s) { return Http2Frame(kRstStream, 0, Uint32(0x7), s); });
  auto [code, message] = NotifyThrough(refusing.address());
  EXPECT_EQ(code, StatusCode::kUnavailable);
  EXPECT_NE(message.find("refused the stream"), std::string::npos) << message;
  EXPECT_EQ(refusing.requests(), 1);
  EXPECT_EQ(refusing.connections(), 1);
}

// A stream the server refused (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream) never
// ran: a list moves such a call to another instance even for a method that is not idempotent.
TEST(NativeGrpcChannel, AStreamTheServerRefusedMovesToAnotherInstanceWhateverTheMethod) {
  auto impl = std::make_shared<RichServiceImpl>();
  std::unique_ptr<Server> real = StartServer(impl);
  const std::string real_address = "127.0.0.1:" + std::to_string(real->grpc_port());
  ScriptedServer refusing([](uint32_t s) { return Http2Frame(kRstStream, 0, Uint32(0x7), s); });
  ScriptedServer going([](uint32_t) { return Http2Frame(kGoaway, 0, Uint32(0) + Uint32(0), 0); });
  for (const ScriptedServer* fake : {&refusing, &going}) {
    ChannelOptions list;
    list.grpc_client = GrpcClient::kNative;
    list.load_balancer = "round_robin";
    list.outlier.enabled = false;
    auto client = MakeClient<rich::RichService>(
        MakeChannel("static://" + fake->address() + "," + real_address, Protocol::kGrpc, list));
    const int64_t before = impl->notified.load();
    for (int i = 0; i < 10; ++i) client->Notify(10 + i, "moved", rich::Color::kRed);  // none fails
    EXPECT_GE(fake->requests(), 1);
    EXPECT_EQ(impl->notified.load() - before, 10);
  }
  real->Shutdown();
}

TEST(NativeGrpcChannel, TakesHostAndPortOnlyWhileGrpcChannelsTakeAnyTarget) {
  try {
    MakeNativeGrpcChannel("dns:///localhost");
    FAIL() << "a target that is not host:port was taken";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("is not host:port"), std::string::npos) << e.message();
  }
  // MakeGrpcChannel gives any other gRPC target to gRPC's own library.
  std::unique_ptr<Server> real = StartServer(std::make_shared<RichServiceImpl>());
  auto client = MakeClient<rich::RichService>(
      MakeGrpcChannel("dns:///127.0.0.1:" + std::to_string(real->grpc_port())));
  EXPECT_EQ(client->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  real->Shutdown();
}

}  // namespace
}  // namespace rpcboot
