// The serving core against the stock servers and the physical bound, with the load generator
// and the server in separate processes (this binary starts itself as the server, by pid, and
// stops it). Ten parts, all on 127.0.0.1, each bounded in time:
//
//  1. throughput: Mix(Color, Color) at 1, 8, 64 and 512 callers, each caller its own connection
//     and a stock client (thrift-compiler's, framed compact; grpc_cpp_plugin's stub), against
//     rpcboot, the stock server (TThreadedServer; a grpc sync service), a raw TCP ping-pong
//     server echoing a message of the same size (a thread per connection; on as many epoll
//     loops as rpcboot has: the bound of an event-driven server; and on as many io_uring loops,
//     one system call per message), and a canned Thrift server
//     answering with a reply made once (the bound of any Thrift server under the stock
//     client): ratios rpcboot/stock, rpcboot/raw, rpcboot/canned and rpcboot/epoll; rpcboot
//     again with server.thrift_io: uring (row `uring`; `uring(e)` where io_uring is refused
//     and that server runs on epoll). gRPC's rows: rpcboot (its native HTTP/2 server, the
//     default) against the stock sync service and against rpcboot on gRPC's library
//     (server.grpc_server: grpcpp, rows `grpcpp`, `grpcpp-inline`).
//     replay: the same Thrift servers under a caller as cheap per call as the raw loop's (a
//     Mix call made once by the stock library, sent as is; the reply checked byte for byte
//     against the stock library's), so that the ratio to the raw echo measures the server alone.
//     Each row of both (gRPC's too) ends with the server's CPU and context switches per call,
//     read from /proc over the measured loops: the work per call, less noisy than calls/s.
//  2. mixed load: p50/p99 of Mix while 50 callers keep a 200 ms blocking handler busy, on
//     Thrift and on gRPC.
//  3. connection scale: 10,000 idle Thrift connections held open; the server's threads and RSS,
//     and 8 callers' calls/s with them against without them.
//  4. tls: Mix at 8 and 64 callers over TLS (certificates from scripts/make-test-certs.sh)
//     against the same server in plaintext, and against the stock servers over TLS
//     (TThreadedServer on TSSLServerSocket; a grpc sync service with SslServerCredentials),
//     with stock clients (TSSLSocket; grpc SslCredentials). Each caller its own connection.
//
//  5. observability: Mix with metrics and tracing (1% sampling) on and off, server side (one
//     server switched by signal, stock clients) and client side (rpcboot proxies, switched in
//     the load process), at the callers in 2..64; medians of alternating rounds; and the
//     direct cost of counting and of tracing one call. BENCH_OBSERVE=metrics (or tracing)
//     switches only that one.
//
//  6. clients: the gRPC clients against one rpcboot gRPC server: the generated stub's call,
//     rpcboot's proxy on gRPC's C++ channel and on its native channel, and the raw echo, with
//     the load process's own CPU and context switches per call.
//
//  7. h2load (not in the default parts): gRPC's Mix driven by nghttp2's h2load, a load generator
//     neither rpcboot nor gRPC wrote (one thread, in C, cheaper per call than gRPC's client), at
//     the given connections with one stream each and at 8 connections with 8 streams each,
//     against rpcboot (its native server, and on gRPC's library) and the sync service: ratios.
//     h2load counts HTTP statuses only; the throughput part checks every reply with gRPC's client.
//     Needs nghttp2-client.
//
//  8. compression (not in the default parts): EchoScalars with a 16 KiB order list (text as a
//     JSON array would carry it) through the stock stub, against rpcboot's native server with
//     server.grpc_compression off (plain requests) and gzip (gzip requests from the stub, gzip
//     replies), and against the grpc sync service compressing its replies (gzip requests too):
//     calls/s, the server's CPU per call and the bytes through the loopback interface per call
//     (both ways, headers and all), with ratios.
//
//  9. metadata (not in the default parts): Mix through rpcboot's proxies with no call metadata
//     and with two entries (a tenant, a 16-byte `-bin` request id), on the native gRPC channel
//     and on Thrift (THeader with and without; plain framed for reference), with the client's
//     and the server's CPU per call.
//
// 10. payload (not in the default parts): EchoScalars with a text of each --sizes (64 B to
//     1 MiB by default), echoed back, through the stock clients, each caller on its own
//     connection: Thrift against rpcboot and TThreadedServer, gRPC against rpcboot's native
//     server and the sync service, each protocol on server processes of its own; MB/s both
//     ways and each server's CPU per call.
//
//   build/bench/serving_bench [--seconds=1.5] [--callers=1,8,64,512] [--idle=10000]
//                             [--parts=throughput,replay,clients,mixed,scale,tls,observability,
//                                      h2load,compression,metadata,payload]
//                             [--sizes=64,4096,65536,1048576]
//                             [--rounds=1]
//   --rounds=N: throughput runs each server N times per caller count (the order turned each
//   round) and prints the median round, with the range of calls/s.
#include <arpa/inet.h>
#include <dirent.h>
#include <grpc/compression.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSSLServerSocket.h>
#include <thrift/transport/TSSLSocket.h>
#include <thrift/transport/TSocket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "RichService.h"
#include "bench/flags.h"
#include "bench/load_testing.h"
#include "common_types.rpcboot.h"
#include "rich_service.grpc.pb.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"
#include "rpcboot/tracing.h"
#include "rpcboot/transport/thrift_wire.h"
#include "stock_services.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using apache::thrift::protocol::TCompactProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;

// ---- Server side (a child process) ----

// The certificates of the tls part (made by main; children find them through the environment).
std::string CertDir() {
  const char* dir = std::getenv("BENCH_CERTS");
  return dir != nullptr ? dir : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// About the bytes of one framed compact Mix call or reply: the raw loop's message size.
constexpr std::size_t kRawMessage = 20;

// A listening socket on 127.0.0.1, its port printed as "ports raw=<port>".
int ListenForRaw() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(fd, 4096);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("ports raw=%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  return fd;
}

// A thread per connection running `serve(fd)`, on ListenForRaw's socket.
void ServeThreadPerConnection(void (*serve)(int fd)) {
  int fd = ListenForRaw();
  int one = 1;
  while (true) {
    int c = ::accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread([c, serve] {
      serve(c);
      ::close(c);
    }).detach();
  }
}

// Reads exactly `size` bytes; false when the peer is gone.
bool RecvAll(int fd, char* out, std::size_t size) {
  for (std::size_t got = 0; got < size;) {
    ssize_t n = ::recv(fd, out + got, size - got, 0);
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// The physical bound of a ping-pong: fixed-size messages echoed.
void EchoConnection(int fd) {
  char buf[kRawMessage];
  while (RecvAll(fd, buf, sizeof buf) &&
         ::send(fd, buf, sizeof buf, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof buf)) {
  }
}

// The raw echo on event loops instead of a thread per connection: as many loops as rpcboot's
// Thrift server has by default (one per core, at least 8; BENCH_IO_THREADS too), connections
// dealt round robin, each loop waiting in epoll_wait (level-triggered, with rpcboot's 100 ms
// timeout) and answering with one recv and one send per message. The bound of any server
// whose I/O is epoll's, as the raw echo is the bound of any at all.
void ServeEpollEcho() {
  int loops = std::max(8, static_cast<int>(std::thread::hardware_concurrency()));
  if (const char* io = std::getenv("BENCH_IO_THREADS")) loops = std::max(1, std::atoi(io));
  std::vector<int> epolls;
  for (int i = 0; i < loops; ++i) {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) std::abort();
    epolls.push_back(ep);
    std::thread([ep] {
      struct Message {
        char bytes[kRawMessage];
        std::size_t have = 0;
      };
      std::unordered_map<int, Message> got;  // per connection: its message so far
      epoll_event events[256];
      while (true) {
        // No timeout: a wait with one arms a kernel timer every time the loop sleeps, which a
        // paravirtualized machine charges for (0.7 us of a call here); the echo needs none.
        int n = ::epoll_wait(ep, events, 256, -1);
        for (int e = 0; e < n; ++e) {
          int fd = events[e].data.fd;
          Message& message = got[fd];
          std::size_t& have = message.have;
          char* buf = message.bytes;
          ssize_t r = ::recv(fd, buf + have, kRawMessage - have, 0);
          if (r > 0) have += static_cast<std::size_t>(r);
          if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            ::close(fd);  // also leaves the epoll set
            got.erase(fd);
            continue;
          }
          if (have == kRawMessage) {
            have = 0;
            // One small reply on an idle connection: the socket takes it whole.
            if (::send(fd, buf, kRawMessage, MSG_NOSIGNAL) != static_cast<ssize_t>(kRawMessage)) {
              ::close(fd);
              got.erase(fd);
            }
          }
        }
      }
    }).detach();
  }
  int fd = ListenForRaw();
  int one = 1;
  for (std::size_t next = 0;; ++next) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) continue;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = c;
    if (::epoll_ctl(epolls[next % epolls.size()], EPOLL_CTL_ADD, c, &ev) != 0) ::close(c);
  }
}

// The raw echo on io_uring loops, as many as the epoll echo's, connections dealt round robin: a
// receive stays armed on each connection, and one io_uring_enter both hands the kernel a reply
// (and the next receive) and waits for what comes next: one system call per message where epoll
// needs three. Exits with a message if this kernel (or a seccomp profile) refuses io_uring.
void ServeUringEcho() {
  int loops = std::max(8, static_cast<int>(std::thread::hardware_concurrency()));
  if (const char* io = std::getenv("BENCH_IO_THREADS")) loops = std::max(1, std::atoi(io));
  struct Inbox {
    int wake = ::eventfd(0, EFD_CLOEXEC);
    std::mutex mu;
    std::vector<int> fds;
  };
  io_uring probe;
  if (int rc = io_uring_queue_init(8, &probe, 0); rc < 0) {
    // Its row says so, and the other servers are measured as ever.
    std::printf("ports raw=0 (io_uring refused: %s)\n", std::strerror(-rc));
    std::fflush(stdout);
    return;
  }
  io_uring_queue_exit(&probe);
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (int i = 0; i < loops; ++i) {
    inboxes.push_back(std::make_unique<Inbox>());
    std::thread([inbox = inboxes.back().get()] {
      io_uring ring;
      io_uring_params params{};
      params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
      if (std::getenv("BENCH_URING_PLAIN")) params.flags = 0;
      int rc = io_uring_queue_init_params(1024, &ring, &params);
      if (rc < 0) {  // a kernel before 6.1 has neither flag
        params = io_uring_params{};
        rc = io_uring_queue_init_params(1024, &ring, &params);
      }
      if (rc < 0) {
        std::fprintf(stderr, "io_uring: %s\n", std::strerror(-rc));
        std::exit(1);
      }
      struct Connection {
        int fd;
        std::size_t have = 0;
        char in[kRawMessage];
        char out[kRawMessage];
      };
      auto sqe = [&ring] {
        io_uring_sqe* e = io_uring_get_sqe(&ring);
        while (e == nullptr) {
          io_uring_submit(&ring);
          e = io_uring_get_sqe(&ring);
        }
        return e;
      };
      auto receive = [&](Connection* c) {
        io_uring_sqe* e = sqe();
        io_uring_prep_recv(e, c->fd, c->in + c->have, kRawMessage - c->have, 0);
        io_uring_sqe_set_data(e, c);
      };
      uint64_t woken = 0;
      auto arm_wake = [&] {
        io_uring_sqe* e = sqe();
        io_uring_prep_read(e, inbox->wake, &woken, sizeof woken, 0);
        io_uring_sqe_set_data(e, nullptr);
      };
      arm_wake();
      while (true) {
        io_uring_submit_and_wait(&ring, 1);
        io_uring_cqe* cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
          ++seen;
          auto* c = static_cast<Connection*>(io_uring_cqe_get_data(cqe));
          if (c == nullptr) {
            std::vector<int> fds;
            {
              std::lock_guard<std::mutex> lock(inbox->mu);
              fds.swap(inbox->fds);
            }
            for (int fd : fds) receive(new Connection{fd});
            arm_wake();
            continue;
          }
          if (reinterpret_cast<uintptr_t>(c) & 1) {  // a failed send: end the connection
            ::shutdown(reinterpret_cast<Connection*>(reinterpret_cast<uintptr_t>(c) - 1)->fd,
                       SHUT_RDWR);
            continue;
          }
          if (cqe->res <= 0) {
            ::close(c->fd);
            delete c;
            continue;
          }
          c->have += static_cast<std::size_t>(cqe->res);
          if (c->have == kRawMessage) {
            c->have = 0;
            std::memcpy(c->out, c->in, kRawMessage);
            io_uring_sqe* e = sqe();
            io_uring_prep_send(e, c->fd, c->out, kRawMessage, MSG_NOSIGNAL);
            io_uring_sqe_set_data(e, reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(c) + 1));
            e->flags |= IOSQE_CQE_SKIP_SUCCESS;
          }
          receive(c);
        }
        io_uring_cq_advance(&ring, seen);
      }
    }).detach();
  }
  int fd = ListenForRaw();
  int one = 1;
  for (std::size_t next = 0;; ++next) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Inbox& inbox = *inboxes[next % inboxes.size()];
    {
      std::lock_guard<std::mutex> lock(inbox.mu);
      inbox.fds.push_back(c);
    }
    uint64_t add = 1;
    if (::write(inbox.wake, &add, sizeof add) < 0) std::abort();
  }
}

// Mix's result kBlue as the stock Thrift library encodes it (compact): a reply's body.
std::string MixResult() {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TCompactProtocol protocol(buffer);
  rich_thrift::RichService_Mix_result mix;
  mix.success = rich_thrift::Color::kBlue;
  mix.__isset.success = true;
  mix.write(&protocol);
  return buffer->getBufferAsString();
}

// The least a Thrift server can do for the stock client's Mix call: read the frame, take its
// sequence id, and answer a reply made once, decoding and running nothing. What it reaches is
// the bound of any Thrift server driven by the stock client on these cores, whose own work per
// call the raw echo does not have.
void CannedMixConnection(int fd) {
  static const std::string result = MixResult();
  std::string frame;
  std::string reply;
  while (true) {
    char prefix[4];
    if (!RecvAll(fd, prefix, 4)) return;
    uint32_t length = rpcboot::internal::DecodeFrameLength(prefix);
    if (length < 3 || length > 4096) return;
    frame.resize(length);
    if (!RecvAll(fd, frame.data(), length)) return;
    // Compact message header: 0x82, version and type, then the sequence id as a varint.
    std::size_t end = 2;
    while (end < frame.size() && (static_cast<unsigned char>(frame[end]) & 0x80) != 0) ++end;
    if (end >= frame.size()) return;
    reply.assign(4, '\0');
    reply += '\x82';
    reply += '\x41';  // version 1, type REPLY
    reply.append(frame, 2, end - 1);
    reply += '\x03';
    reply += "Mix";
    reply += result;
    rpcboot::internal::EncodeFrameLength(static_cast<uint32_t>(reply.size() - 4), reply.data());
    if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(reply.size())) {
      return;
    }
  }
}

// A stock Thrift handler whose Notify blocks like rpcboot's test service (id >= 1000: sleep).
class BlockingStockHandler : public rpcboot::testing::StockThriftHandler {
 public:
  void Notify(const int64_t id, const std::string& message,
              const rich_thrift::Color::type color) override {
    if (id >= 1000) std::this_thread::sleep_for(std::chrono::milliseconds(id - 1000));
    StockThriftHandler::Notify(id, message, color);
  }
};

class BlockingStockGrpc final : public rpcboot::testing::StockGrpcService {
 public:
  grpc::Status Notify(grpc::ServerContext* context, const rich_pb::NotifyRequest* request,
                      rich_pb::NotifyResponse* reply) override {
    if (request->id() >= 1000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(request->id() - 1000));
      return grpc::Status::OK;
    }
    return StockGrpcService::Notify(context, request, reply);
  }
};

// Call counting and tracing (1% of new traces recorded) on, or both off.
void Observe(bool on) {
  const char* only = std::getenv("BENCH_OBSERVE");
  rpcboot::internal::SetMetricsOn(on && (!only || std::string(only) == "metrics"));
  rpcboot::TracingOptions tracing;
  tracing.enabled = on && (!only || std::string(only) == "tracing");
  tracing.sample_rate = 0.01;
  (void)rpcboot::ConfigureTracing(tracing);
}

int Serve(const std::string& kind) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // metrics and tracing off (the observability part)
  sigaddset(&signals, SIGUSR2);  // and on again
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (kind == "raw") {
    std::thread(ServeThreadPerConnection, EchoConnection).detach();
  } else if (kind == "epoll") {
    std::thread(ServeEpollEcho).detach();
  } else if (kind == "uring") {
    std::thread(ServeUringEcho).detach();
  } else if (kind == "canned") {
    std::thread(ServeThreadPerConnection, CannedMixConnection).detach();
  } else if (kind == "rpcboot" || kind == "rpcboot-inline" || kind == "rpcboot-tls" ||
             kind == "rpcboot-uring" || kind == "rpcboot-grpcpp" ||
             kind == "rpcboot-grpcpp-inline" || kind == "rpcboot-gzip") {
    static rpcboot::ServerOptions options;
    if (kind == "rpcboot-tls") {
      options.tls.cert_file = CertDir() + "/server.crt";
      options.tls.key_file = CertDir() + "/server.key";
    }
    // "rpcboot-inline": Mix marked as never blocking (server.inline_methods): no hop.
    if (kind == "rpcboot-inline" || kind == "rpcboot-grpcpp-inline") {
      options.inline_methods = {"rich.RichService/Mix"};
    }
    // "rpcboot-grpcpp": gRPC on gRPC's C++ library (server.grpc_server: grpcpp); the others on
    // rpcboot's native HTTP/2 server, the default.
    if (kind.rfind("rpcboot-grpcpp", 0) == 0) {
      options.grpc_server = rpcboot::ServerOptions::GrpcServer::kGrpcpp;
    }
    // "rpcboot-gzip": gzip requests taken, gzip replies (server.grpc_compression: gzip).
    if (kind == "rpcboot-gzip") {
      options.grpc_compression = rpcboot::ServerOptions::GrpcCompression::kGzip;
    }
    // "rpcboot-uring": the Thrift loops on io_uring (server.thrift_io: uring).
    if (kind == "rpcboot-uring") options.thrift_io = rpcboot::ServerOptions::ThriftIo::kUring;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.thrift_port = 0;
    options.handler_threads = 96;  // room for the mixed load's 50 blocked handlers
    if (const char* io = std::getenv("BENCH_IO_THREADS")) options.io_threads = std::atoi(io);
    if (std::getenv("BENCH_NO_QUOTA")) options.grpc_memory_quota = 0;
    options.max_connections = 30000;
    static rpcboot::Server server(options);
    server.AddService<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
    if (!server.Start().ok()) return 1;
    std::printf("ports grpc=%d thrift=%d\n", server.grpc_port(), server.thrift_port());
  } else if (kind == "stock") {
    using namespace apache::thrift;
    // TThreadedServer: a thread per connection, the stock server the issue measures.
    static auto socket = std::make_shared<transport::TServerSocket>("127.0.0.1", 0);
    static server::TThreadedServer thrift(std::make_shared<rich_thrift::RichServiceProcessor>(
                                              std::make_shared<BlockingStockHandler>()),
                                          socket,
                                          std::make_shared<transport::TFramedTransportFactory>(),
                                          std::make_shared<protocol::TCompactProtocolFactory>());
    std::thread([] { thrift.serve(); }).detach();
    while (socket->getPort() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    static BlockingStockGrpc service;
    int grpc_port = 0;
    static auto grpc = rpcboot::testing::StartStockGrpcServer(&service, &grpc_port);
    std::printf("ports grpc=%d thrift=%d\n", grpc_port, socket->getPort());
  } else if (kind == "stock-gzip") {
    // The grpc sync service compressing its replies with gzip (and taking gzip requests).
    static BlockingStockGrpc service;
    grpc::ServerBuilder builder;
    int grpc_port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port);
    builder.RegisterService(&service);
    builder.SetDefaultCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    static auto grpc = builder.BuildAndStart();
    std::printf("ports grpc=%d thrift=0\n", grpc_port);
  } else if (kind == "stock-tls") {
    using namespace apache::thrift;
    static auto factory = std::make_shared<transport::TSSLSocketFactory>();
    factory->server(true);
    factory->loadCertificate((CertDir() + "/server.crt").c_str());
    factory->loadPrivateKey((CertDir() + "/server.key").c_str());
    static auto socket = std::make_shared<transport::TSSLServerSocket>("127.0.0.1", 0, factory);
    static server::TThreadedServer thrift(std::make_shared<rich_thrift::RichServiceProcessor>(
                                              std::make_shared<BlockingStockHandler>()),
                                          socket,
                                          std::make_shared<transport::TFramedTransportFactory>(),
                                          std::make_shared<protocol::TCompactProtocolFactory>());
    std::thread([] { thrift.serve(); }).detach();
    while (socket->getPort() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    static BlockingStockGrpc service;
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back(
        {ReadFile(CertDir() + "/server.key"), ReadFile(CertDir() + "/server.crt")});
    grpc::ServerBuilder builder;
    int grpc_port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &grpc_port);
    builder.RegisterService(&service);
    static auto grpc = builder.BuildAndStart();
    std::printf("ports grpc=%d thrift=%d\n", grpc_port, socket->getPort());
  } else {
    return 2;
  }
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig != SIGTERM) {
    Observe(sig == SIGUSR2);
    std::printf("observability %s\n", sig == SIGUSR2 ? "on" : "off");
    std::fflush(stdout);
  }
  std::_Exit(0);  // the stock servers have no clean stop from another thread worth waiting for
}

// ---- Load side ----

struct ServerProcess {
  rpcboot::bench::SelfProcess process;
  pid_t pid;
  int grpc_port = 0, thrift_port = 0, raw_port = 0;

  ServerProcess(const char* self, const std::string& kind)
      : process(self, kind, "warning"), pid(process.pid()) {
    const char* line = process.first_line().c_str();
    std::sscanf(line, "ports grpc=%d thrift=%d", &grpc_port, &thrift_port);
    std::sscanf(line, "ports raw=%d", &raw_port);
  }
  // What the process has spent so far: CPU (every thread's, ended ones too) and context
  // switches by thread (the threads alive now).
  struct Usage {
    double cpu_seconds = 0;
    double user_seconds = 0;               // of cpu_seconds, in user space (the rest in the kernel)
    long page_faults = 0;                  // minor: fresh pages mapped in
    std::map<std::string, long> switches;  // by thread id
  };
  Usage Used() const {
    Usage used;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the command's closing parenthesis: state is field 3, minflt 10, utime 14,
    // stime 15.
    std::size_t command_end = text.rfind(')');
    if (command_end == std::string::npos) return used;  // the process is gone
    std::istringstream fields(text.substr(command_end + 1));
    std::string field;
    long ticks[2] = {0, 0};  // utime, stime
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 10) used.page_faults = std::stol(field);
      if (i >= 14) ticks[i - 14] = std::stol(field);
    }
    const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
    used.user_seconds = static_cast<double>(ticks[0]) * tick;
    used.cpu_seconds = static_cast<double>(ticks[0] + ticks[1]) * tick;
    if (DIR* tasks = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str())) {
      while (dirent* task = ::readdir(tasks)) {
        if (task->d_name[0] == '.') continue;
        std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + task->d_name + "/status");
        std::string line;
        while (std::getline(status, line)) {
          if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
              line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
            used.switches[task->d_name] += std::stol(line.substr(line.find(':') + 1));
          }
        }
      }
      ::closedir(tasks);
    }
    return used;
  }
  long Rss() const { return StatusField("VmRSS:"); }
  long Threads() const { return StatusField("Threads:"); }
  long StatusField(const char* field) const {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
    }
    return -1;
  }
};

using rpcboot::bench::Load;
using rpcboot::bench::Result;

// A thrift-compiler client on its own framed compact connection, calling `call(client)`.
std::function<bool()> ThriftCaller(int port, bool tls,
                                   std::function<void(rich_thrift::RichServiceClient&)> call) {
  std::shared_ptr<TSocket> socket;
  if (tls) {
    static auto factory = [] {
      auto f = std::make_shared<apache::thrift::transport::TSSLSocketFactory>();
      f->loadTrustedCertificates((CertDir() + "/ca.crt").c_str());
      f->authenticate(true);
      return f;
    }();
    socket = factory->createSocket("127.0.0.1", port);
  } else {
    socket = std::make_shared<TSocket>("127.0.0.1", port);
  }
  socket->setRecvTimeout(10000);
  auto framed = std::make_shared<TFramedTransport>(socket);
  auto client =
      std::make_shared<rich_thrift::RichServiceClient>(std::make_shared<TCompactProtocol>(framed));
  framed->open();
  return [client, framed, call] {
    try {
      call(*client);
      return true;
    } catch (const apache::thrift::TException&) {
      return false;
    }
  };
}

std::function<bool()> ThriftMixCaller(int port, bool tls = false) {
  return ThriftCaller(port, tls, [](rich_thrift::RichServiceClient& client) {
    if (client.Mix(rich_thrift::Color::kRed, rich_thrift::Color::kGreen) !=
        rich_thrift::Color::kBlue) {
      throw apache::thrift::TException("wrong reply");
    }
  });
}

std::function<bool()> ThriftNotifyCaller(int port, int64_t id) {
  return ThriftCaller(port, false, [id](rich_thrift::RichServiceClient& client) {
    client.Notify(id, "blocking", rich_thrift::Color::kRed);
  });
}

// EchoScalars(text) through thrift-compiler's client, on its own connection (framed compact).
std::function<bool()> ThriftEchoCaller(int port, const std::string& text) {
  auto request = std::make_shared<rich_thrift::Scalars>();
  request->text = text;
  return ThriftCaller(port, false, [request](rich_thrift::RichServiceClient& client) {
    rich_thrift::Scalars reply;
    client.EchoScalars(reply, *request);
    if (reply.text.size() != request->text.size()) {
      throw apache::thrift::TException("wrong reply");
    }
  });
}

// The gRPC channels of one kind of caller, each its own HTTP/2 connection (`key` keeps them
// apart from other kinds'), for one server port at a time.
class GrpcChannels {
 public:
  explicit GrpcChannels(const char* key) : key_(key) {}

  std::shared_ptr<grpc::Channel> For(int port, int index, bool tls) {
    if (port_ != port) {
      channels_.clear();
      port_ = port;
    }
    while (static_cast<int>(channels_.size()) <= index) {
      grpc::ChannelArguments args;
      args.SetInt(key_, static_cast<int>(channels_.size()));  // own connection
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
      if (tls) {
        grpc::SslCredentialsOptions ssl;
        ssl.pem_root_certs = ReadFile(CertDir() + "/ca.crt");
        credentials = grpc::SslCredentials(ssl);
      }
      channels_.push_back(
          grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), credentials, args));
    }
    return channels_[static_cast<std::size_t>(index)];
  }

 private:
  const char* key_;
  int port_ = 0;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

// The generated stub's own call, on `path`: the stock service is registered under the renamed
// package rich_pb, rpcboot's under rich; the client code is the same for both. One channel (one
// HTTP/2 connection) per 32 callers.
std::function<bool()> GrpcMixCaller(int port, int caller, const char* path, bool tls = false,
                                    int per_channel = 32) {
  static GrpcChannels channels("rpcboot.bench.channel");
  auto channel = channels.For(port, caller / per_channel, tls);
  auto method = std::make_shared<grpc::internal::RpcMethod>(
      path, grpc::internal::RpcMethod::NORMAL_RPC, channel);
  return [channel, method] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rich_pb::MixRequest request;
    request.set_a(rich_pb::COLOR_RED);
    request.set_b(rich_pb::COLOR_GREEN);
    rich_pb::MixResponse reply;
    grpc::Status status =
        grpc::internal::BlockingUnaryCall<rich_pb::MixRequest, rich_pb::MixResponse>(
            channel.get(), *method, &context, request, &reply);
    return status.ok() && reply.value() == rich_pb::COLOR_BLUE;
  };
}

// Notify(id) through the generated stub's call, on its own channel (one HTTP/2 connection per
// 32 callers, as GrpcMixCaller).
std::function<bool()> GrpcNotifyCaller(int port, int caller, const char* path, int64_t id) {
  static GrpcChannels channels("rpcboot.bench.blocking_channel");
  auto channel = channels.For(port, caller / 32, false);
  auto method = std::make_shared<grpc::internal::RpcMethod>(
      path, grpc::internal::RpcMethod::NORMAL_RPC, channel);
  return [channel, method, id] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rich_pb::NotifyRequest request;
    request.set_id(id);
    request.set_message("blocking");
    rich_pb::NotifyResponse reply;
    return grpc::internal::BlockingUnaryCall<rich_pb::NotifyRequest, rich_pb::NotifyResponse>(
               channel.get(), *method, &context, request, &reply)
        .ok();
  };
}

// EchoScalars(text) through the generated stub's call, each caller on its own connection; the
// request gzip-compressed when `gzip` (the reply as the server chooses: the stub takes gzip).
std::function<bool()> GrpcEchoCaller(int port, int caller, const char* path,
                                     const std::string& text, bool gzip) {
  static GrpcChannels channels("rpcboot.bench.echo_channel");
  auto channel = channels.For(port, caller, false);
  auto method = std::make_shared<grpc::internal::RpcMethod>(
      path, grpc::internal::RpcMethod::NORMAL_RPC, channel);
  auto request = std::make_shared<rich_pb::Scalars>();
  request->set_text(text);
  return [channel, method, request, gzip] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (gzip) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    rich_pb::Scalars reply;
    grpc::Status status = grpc::internal::BlockingUnaryCall<rich_pb::Scalars, rich_pb::Scalars>(
        channel.get(), *method, &context, *request, &reply);
    return status.ok() && reply.text().size() == request->text().size();
  };
}

// A TCP connection to 127.0.0.1:port with TCP_NODELAY, closed with the last holder.
std::shared_ptr<int> Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::abort();
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
}

std::function<bool()> RawCaller(int port) {
  return [holder = Connect(port)] {
    char buf[kRawMessage] = {};
    return ::send(*holder, buf, sizeof buf, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof buf) &&
           RecvAll(*holder, buf, sizeof buf);
  };
}

// A framed compact message made by the stock Thrift library, sequence id 1: the call
// Mix(kRed, kGreen), or its reply kBlue.
std::string MixFrame(bool reply) {
  using apache::thrift::protocol::TMessageType;
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  apache::thrift::protocol::TCompactProtocol protocol(buffer);
  protocol.writeMessageBegin("Mix", reply ? TMessageType::T_REPLY : TMessageType::T_CALL, 1);
  if (!reply) {
    const rich_thrift::Color::type a = rich_thrift::Color::kRed, b = rich_thrift::Color::kGreen;
    rich_thrift::RichService_Mix_pargs mix;
    mix.a = &a;
    mix.b = &b;
    mix.write(&protocol);
  }
  protocol.writeMessageEnd();
  std::string frame(4, '\0');
  frame += buffer->getBufferAsString();
  if (reply) frame += MixResult();
  rpcboot::internal::EncodeFrameLength(static_cast<uint32_t>(frame.size() - 4), frame.data());
  return frame;
}

// A Thrift caller as cheap per call as the raw loop's: it sends a Mix call made once and
// checks the reply against the one the stock library writes, byte for byte. Under it the
// servers compete with the raw echo on equal terms (the stock client's own CPU per call,
// taken from the same cores, is not in the figure).
std::function<bool()> ThriftReplayCaller(int port) {
  static const std::string call = MixFrame(false);
  static const std::string reply = MixFrame(true);
  return [holder = Connect(port)] {
    char buf[64];
    if (::send(*holder, call.data(), call.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(call.size())) {
      return false;
    }
    // The frame's length first, then the rest of it: one read, mostly.
    std::size_t got = 0, need = 4;
    while (got < need) {
      ssize_t n = ::recv(*holder, buf + got, sizeof buf - got, 0);
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
      if (need == 4 && got >= 4) {
        need = 4 + rpcboot::internal::DecodeFrameLength(buf);
        if (need != reply.size()) return false;  // not the reply expected
      }
    }
    return got == need && std::memcmp(buf, reply.data(), got) == 0;
  };
}

void Print(const char* part, const char* protocol, int callers, const char* impl, const Result& r,
           const std::string& ratio) {
  std::printf("%-10s %-7s %7d %-8s %11.0f %9.1f %9.1f %6ld  %s\n", part, protocol, callers, impl,
              r.calls_per_second, r.p50_us, r.p99_us, r.errors, ratio.c_str());
  std::fflush(stdout);
}

std::string Ratio(const char* name, double a, double b) {
  char text[64];
  std::snprintf(text, sizeof text, "%s %.2f", name, b > 0 ? a / b : 0.0);
  return text;
}

void RaiseDescriptorLimit(rlim_t want) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < want) limit.rlim_max = want;  // root may; others keep their hard limit
  limit.rlim_cur = std::min(want, limit.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    ::getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Each of `loads` run `rounds` times, the order turned by one each round (no server always
// first); per load, the round of median calls/s, and "(N rounds: lo-hi)" to print beside it.
struct Measured {
  Result median;
  std::string spread;
};
std::vector<Measured> MeasureRounds(int rounds, const std::vector<std::function<Result()>>& loads) {
  std::vector<std::vector<Result>> runs(loads.size());
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t k = 0; k < loads.size(); ++k) {
      std::size_t which = (k + static_cast<std::size_t>(r)) % loads.size();
      runs[which].push_back(loads[which]());
    }
  }
  std::vector<Measured> out;
  for (std::vector<Result>& results : runs) {
    std::sort(results.begin(), results.end(), [](const Result& a, const Result& b) {
      return a.calls_per_second < b.calls_per_second;
    });
    Measured m{results[results.size() / 2], ""};
    if (results.size() > 1) {
      char text[96];
      std::snprintf(text, sizeof text, "  (%zu rounds: %.0f-%.0f)", results.size(),
                    results.front().calls_per_second, results.back().calls_per_second);
      m.spread = text;
    }
    out.push_back(std::move(m));
  }
  return out;
}

// The servers a throughput part compares, each its own process.
struct ThroughputServers {
  explicit ThroughputServers(const char* self)
      : ours(self, "rpcboot"),
        inlined(self, "rpcboot-inline"),
        stock(self, "stock"),
        raw(self, "raw"),
        canned(self, "canned"),
        epoll(self, "epoll"),
        uring(self, "uring"),
        ringed(self, "rpcboot-uring"),
        grpcpp(self, "rpcboot-grpcpp"),
        grpcpp_inline(self, "rpcboot-grpcpp-inline") {}
  ServerProcess ours, inlined, stock, raw, canned, epoll, uring, ringed, grpcpp, grpcpp_inline;
};

// A server's own cost per call over the rounds of one caller count, from /proc: CPU and context
// switches over the measured loop of each round (the callers connected before it, and still
// connected after: a thread per connection is counted before it ends; a thread that ends
// within the loop, as a pool's may, loses its switches, so they are a floor there). The
// kernel's share of loopback is counted where it ran. Less noisy than calls/s on a shared
// machine: the work per call, not how the CPUs were shared out.
struct ServerCost {
  double cpu_seconds = 0;
  double user_seconds = 0;
  long switches = 0;
  long page_faults = 0;
  long calls = 0;
  ServerProcess::Usage before;

  // What Load calls at the ends of its measured loop, for `server`.
  std::function<void(bool)> Mark(const ServerProcess& server) {
    return [this, &server](bool end) {
      ServerProcess::Usage now = server.Used();
      if (!end) {
        before = now;
        return;
      }
      cpu_seconds += now.cpu_seconds - before.cpu_seconds;
      user_seconds += now.user_seconds - before.user_seconds;
      page_faults += now.page_faults - before.page_faults;
      for (const auto& [thread, count] : now.switches) {
        auto then = before.switches.find(thread);
        switches += count - (then != before.switches.end() ? then->second : 0);
      }
    };
  }
  std::string Text() const {
    if (calls == 0) return "";
    char text[160];
    std::snprintf(
        text, sizeof text,
        "  [server %.1f us (%.1f in user space), %.2f switches, %.1f page faults per call]",
        cpu_seconds * 1e6 / static_cast<double>(calls),
        user_seconds * 1e6 / static_cast<double>(calls),
        static_cast<double>(switches) / static_cast<double>(calls),
        static_cast<double>(page_faults) / static_cast<double>(calls));
    return text;
  }
};

// One round's load: `n` callers made by `make_caller` against `server` for `seconds`, counted
// into `cost`.
std::function<Result()> CountedLoad(const ServerProcess& server, ServerCost* cost, int n,
                                    double seconds,
                                    std::function<std::function<bool()>(int)> make_caller) {
  return [&server, cost, n, seconds, make_caller = std::move(make_caller)] {
    Result r = Load(n, seconds, make_caller, cost->Mark(server));
    cost->calls += r.calls;
    return r;
  };
}

// Thrift's rows of a throughput part: the raw echo (a thread per connection, and on event
// loops), then the canned, stock and rpcboot servers (default path and `inline`) driven by
// `caller(port)`, each `rounds` times per caller count, with each server's cost per call.
void ThriftRounds(const char* part, std::function<bool()> (*caller)(int port),
                  const ThroughputServers& servers, double seconds, const std::vector<int>& callers,
                  int rounds) {
  const int raw_port = servers.raw.raw_port, canned_port = servers.canned.raw_port;
  const int stock_port = servers.stock.thrift_port, ours_port = servers.ours.thrift_port;
  const int inlined_port = servers.inlined.thrift_port, epoll_port = servers.epoll.raw_port;
  const int uring_port = servers.uring.raw_port, ringed_port = servers.ringed.thrift_port;
  for (int n : callers) {
    ServerCost cost[8];
    auto load = [&](const ServerProcess& server, ServerCost* counted,
                    std::function<std::function<bool()>(int)> make_caller) {
      return CountedLoad(server, counted, n, seconds, std::move(make_caller));
    };
    auto thrift = [&](int port) { return [caller, port](int) { return caller(port); }; };
    std::vector<Measured> m = MeasureRounds(
        rounds, {load(servers.raw, &cost[0], [raw_port](int) { return RawCaller(raw_port); }),
                 load(servers.canned, &cost[1], thrift(canned_port)),
                 load(servers.stock, &cost[2], thrift(stock_port)),
                 load(servers.ours, &cost[3], thrift(ours_port)),
                 load(servers.inlined, &cost[4], thrift(inlined_port)),
                 load(servers.epoll, &cost[5], [epoll_port](int) { return RawCaller(epoll_port); }),
                 uring_port == 0 ? std::function<Result()>([] { return Result{}; })
                                 : load(servers.uring, &cost[6],
                                        [uring_port](int) { return RawCaller(uring_port); }),
                 load(servers.ringed, &cost[7], thrift(ringed_port))});
    const Result &r_raw = m[0].median, &r_canned = m[1].median, &r_stock = m[2].median;
    const Result& r_epoll = m[5].median;
    auto ratios = [&](const Result& r) {
      return Ratio("vs stock", r.calls_per_second, r_stock.calls_per_second) + "  " +
             Ratio("vs raw", r.calls_per_second, r_raw.calls_per_second) + "  " +
             Ratio("vs canned", r.calls_per_second, r_canned.calls_per_second) + "  " +
             Ratio("vs epoll", r.calls_per_second, r_epoll.calls_per_second);
    };
    Print(part, "raw", n, "tcp", r_raw, m[0].spread + cost[0].Text());
    Print(part, "raw", n, "epoll", r_epoll,
          Ratio("vs raw", r_epoll.calls_per_second, r_raw.calls_per_second) + m[5].spread +
              cost[5].Text());
    if (uring_port == 0) {
      std::printf("%-10s %-7s %7d %-8s io_uring refused here (kernel or seccomp): not measured\n",
                  part, "raw", n, "uring");
    } else {
      Print(part, "raw", n, "uring", m[6].median,
            Ratio("vs raw", m[6].median.calls_per_second, r_raw.calls_per_second) + "  " +
                Ratio("vs epoll", m[6].median.calls_per_second, r_epoll.calls_per_second) +
                m[6].spread + cost[6].Text());
    }
    Print(part, "thrift", n, "canned", r_canned,
          Ratio("vs raw", r_canned.calls_per_second, r_raw.calls_per_second) + m[1].spread +
              cost[1].Text());
    Print(part, "thrift", n, "stock", r_stock,
          Ratio("vs raw", r_stock.calls_per_second, r_raw.calls_per_second) + "  " +
              Ratio("vs canned", r_stock.calls_per_second, r_canned.calls_per_second) +
              m[2].spread + cost[2].Text());
    Print(part, "thrift", n, "rpcboot", m[3].median,
          ratios(m[3].median) + m[3].spread + cost[3].Text());
    Print(part, "thrift", n, "inline", m[4].median,
          ratios(m[4].median) + m[4].spread + cost[4].Text());
    // rpcboot's default path with server.thrift_io: uring (on epoll where io_uring is refused).
    Print(part, "thrift", n, uring_port == 0 ? "uring(e)" : "uring", m[7].median,
          ratios(m[7].median) + "  " +
              Ratio("vs rpcboot", m[7].median.calls_per_second, m[3].median.calls_per_second) +
              m[7].spread + cost[7].Text());
  }
}

void Throughput(const char* self, double seconds, const std::vector<int>& callers, int rounds) {
  ThroughputServers servers(self);
  ThriftRounds(
      "throughput", [](int port) { return ThriftMixCaller(port); }, servers, seconds, callers,
      rounds);
  const ServerProcess &stock = servers.stock, &ours = servers.ours, &inlined = servers.inlined;
  for (int n : callers) {
    ServerCost cost[5];
    auto grpc = [&](const ServerProcess& server, ServerCost* counted, const char* path) {
      const int port = server.grpc_port;
      return CountedLoad(server, counted, n, seconds,
                         [port, path](int i) { return GrpcMixCaller(port, i, path); });
    };
    std::vector<Measured> m =
        MeasureRounds(rounds, {grpc(stock, &cost[0], "/rich_pb.RichService/Mix"),
                               grpc(ours, &cost[1], "/rich.RichService/Mix"),
                               grpc(inlined, &cost[2], "/rich.RichService/Mix"),
                               grpc(servers.grpcpp, &cost[3], "/rich.RichService/Mix"),
                               grpc(servers.grpcpp_inline, &cost[4], "/rich.RichService/Mix")});
    const Result& r_stock = m[0].median;
    Print("throughput", "grpc", n, "stock", r_stock, m[0].spread + cost[0].Text());
    Print("throughput", "grpc", n, "rpcboot", m[1].median,
          Ratio("vs stock", m[1].median.calls_per_second, r_stock.calls_per_second) + "  " +
              Ratio("vs grpcpp", m[1].median.calls_per_second, m[3].median.calls_per_second) +
              m[1].spread + cost[1].Text());
    Print(
        "throughput", "grpc", n, "inline", m[2].median,
        Ratio("vs stock", m[2].median.calls_per_second, r_stock.calls_per_second) + "  " +
            Ratio("vs grpcpp-inline", m[2].median.calls_per_second, m[4].median.calls_per_second) +
            m[2].spread + cost[2].Text());
    // server.grpc_server: grpcpp (gRPC's library under rpcboot), by default and with Mix in
    // server.inline_methods.
    for (int k : {3, 4}) {
      Print("throughput", "grpc", n, k == 3 ? "grpcpp" : "grpcpp-inline", m[k].median,
            Ratio("vs stock", m[k].median.calls_per_second, r_stock.calls_per_second) +
                m[k].spread + cost[k].Text());
    }
  }
}

// The cost of metrics and tracing (metrics.enabled, tracing.enabled at the default 1%
// sampling), server side and client side, in one run: Mix at each count of callers against one
// rpcboot server whose metrics and tracing are switched off and on by signal between rounds
// (stock clients), and through rpcboot proxies with both on and off in this process. Rounds
// alternate on and off; the medians are printed.
void Observability(const char* self, double seconds, const std::vector<int>& callers) {
  ServerProcess server(self, "rpcboot");
  ServerProcess raw(self, "raw");
  auto server_counting = [&](bool on) {
    ::kill(server.pid, on ? SIGUSR2 : SIGUSR1);
    std::string line = server.process.NextLine();  // "observability on|off": switched
    (void)line;
  };
  // What counting one call costs, measured directly: a Start and a Finish on one CallStats,
  // from one thread and from two at once (each thread on its own shard).
  for (int threads : {1, 2}) {
    rpcboot::internal::CallStats stats("server", "bench.Bench", "Cost", "thrift");
    constexpr int kCalls = 2000000;
    auto t0 = Clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&stats] {
        for (int i = 0; i < kCalls; ++i) {
          stats.Finish(stats.Start(), rpcboot::StatusCode::kOk);
        }
      });
    }
    for (std::thread& w : workers) w.join();
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kCalls;
    std::printf("observe    counting one call (Start + Finish), %d thread(s): %.0f ns\n", threads,
                ns);
  }
  // What tracing adds to one call, unsampled (the 99%): the client span with its traceparent,
  // and the server span continuing it.
  {
    Observe(true);
    constexpr int kCalls = 1000000;
    auto t0 = Clock::now();
    rpcboot::ServerContext served("thrift", "peer", std::nullopt);
    for (int i = 0; i < kCalls; ++i) {
      std::optional<rpcboot::internal::ClientSpan> client = rpcboot::internal::BeginClientSpan();
      std::string traceparent = client->context.traceparent();
      rpcboot::internal::BeginServerSpan(&served, traceparent, "");
      rpcboot::ServerContext::Scope scope(&served);  // log lines carry the trace id
      rpcboot::internal::EndServerSpan(served, "bench.Bench/Cost", rpcboot::StatusCode::kOk, "");
      rpcboot::internal::EndClientSpan(*client, "bench.Bench/Cost", "thrift",
                                       rpcboot::StatusCode::kOk, "");
    }
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kCalls;
    std::printf("observe    tracing one call (client + server span, 1%% sampled): %.0f ns\n", ns);
  }
  constexpr int kRounds = 5;
  auto median = [](std::vector<Result> runs) {
    std::sort(runs.begin(), runs.end(), [](const Result& a, const Result& b) {
      return a.calls_per_second < b.calls_per_second;
    });
    return runs[runs.size() / 2];
  };
  for (int n : callers) {
    Result r_raw = Load(n, seconds, [&](int) { return RawCaller(raw.raw_port); });
    Print("observe", "raw", n, "tcp", r_raw, "");
    for (const char* proto : {"thrift", "grpc"}) {
      bool thrift = std::string(proto) == "thrift";
      auto stock_client = [&](const ServerProcess& target) {
        return [&target, thrift](int i) {
          return thrift ? ThriftMixCaller(target.thrift_port)
                        : GrpcMixCaller(target.grpc_port, i, "/rich.RichService/Mix");
        };
      };
      // rpcboot's own proxy, one channel shared by the callers, counting as the process says.
      auto proxy_client = [&](const ServerProcess& target) {
        auto channel = rpcboot::MakeChannel(
            "127.0.0.1:" + std::to_string(thrift ? target.thrift_port : target.grpc_port),
            thrift ? rpcboot::Protocol::kThrift : rpcboot::Protocol::kGrpc);
        auto proxy = rpcboot::MakeClient<rich::RichService>(channel);
        return [proxy](int) {
          return std::function<bool()>([proxy] {
            try {
              return proxy->Mix(rich::Color::kRed, rich::Color::kGreen) == rich::Color::kBlue;
            } catch (const rpcboot::RpcError&) {
              return false;
            }
          });
        };
      };
      std::vector<Result> s_on, s_off, c_on, c_off;
      for (int round = 0; round < kRounds; ++round) {
        server_counting(true);
        s_on.push_back(Load(n, seconds, stock_client(server)));
        server_counting(false);
        s_off.push_back(Load(n, seconds, stock_client(server)));
        // The client side, against the server with both off.
        Observe(true);
        c_on.push_back(Load(n, seconds, proxy_client(server)));
        Observe(false);
        c_off.push_back(Load(n, seconds, proxy_client(server)));
        Observe(true);
      }
      Result so = median(s_on), sf = median(s_off), co = median(c_on), cf = median(c_off);
      Print("observe", proto, n, "srv-off", sf,
            Ratio("vs raw", sf.calls_per_second, r_raw.calls_per_second));
      Print("observe", proto, n, "srv-on", so,
            Ratio("on/off", so.calls_per_second, sf.calls_per_second));
      Print("observe", proto, n, "cli-off", cf, "");
      Print("observe", proto, n, "cli-on", co,
            Ratio("on/off", co.calls_per_second, cf.calls_per_second));
    }
  }
}

// What this process (the load generator) spends per call over the measured loop: CPU of all its
// threads and context switches (getrusage).
struct ClientCost {
  double cpu_seconds = 0;
  long switches = 0;
  long calls = 0;
  rusage before{};

  std::function<void(bool)> Mark() {
    return [this](bool end) {
      rusage now{};
      ::getrusage(RUSAGE_SELF, &now);
      if (!end) {
        before = now;
        return;
      }
      auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
      };
      cpu_seconds += seconds(now.ru_utime) + seconds(now.ru_stime) - seconds(before.ru_utime) -
                     seconds(before.ru_stime);
      switches += now.ru_nvcsw + now.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw;
    };
  }
  std::string Text() const {
    if (calls == 0) return "";
    char text[96];
    std::snprintf(text, sizeof text, "  [client %.1f us, %.2f switches per call]",
                  cpu_seconds * 1e6 / static_cast<double>(calls),
                  static_cast<double>(switches) / static_cast<double>(calls));
    return text;
  }
};

// The gRPC clients side by side against one rpcboot gRPC server (its own process): the
// generated stub's call (stock: gRPC's C++ library, one HTTP/2 connection per 32 callers),
// rpcboot's proxy on a channel of gRPC's C++ library (grpcpp) and on its native channel
// (native: I/O on the calling thread, a connection per concurrent caller), one channel shared
// by the callers as an application holds it; and the raw TCP echo (the bound). Each row ends
// with the load process's own CPU and context switches per call.
void Clients(const char* self, double seconds, const std::vector<int>& callers, int rounds) {
  ServerProcess ours(self, "rpcboot");
  ServerProcess raw(self, "raw");
  const int port = ours.grpc_port, raw_port = raw.raw_port;
  auto proxy = [port](rpcboot::GrpcClient client) {
    rpcboot::ChannelOptions options;
    options.grpc_client = client;
    auto channel = rpcboot::MakeChannel("127.0.0.1:" + std::to_string(port),
                                        rpcboot::Protocol::kGrpc, options);
    return rpcboot::MakeClient<rich::RichService>(channel);
  };
  for (int n : callers) {
    ClientCost cost[4];
    auto load = [&](ClientCost* counted, std::function<std::function<bool()>(int)> make_caller) {
      return std::function<Result()>([counted, n, seconds, make_caller] {
        Result r = Load(n, seconds, make_caller, counted->Mark());
        counted->calls += r.calls;
        return r;
      });
    };
    auto proxied = [&](rpcboot::GrpcClient client) {
      auto made = proxy(client);
      return [made](int) {
        return std::function<bool()>([made] {
          try {
            return made->Mix(rich::Color::kRed, rich::Color::kGreen) == rich::Color::kBlue;
          } catch (const rpcboot::RpcError&) {
            return false;
          }
        });
      };
    };
    std::vector<Measured> m = MeasureRounds(
        rounds,
        {load(&cost[0], [raw_port](int) { return RawCaller(raw_port); }),
         load(&cost[1], [port](int i) { return GrpcMixCaller(port, i, "/rich.RichService/Mix"); }),
         load(&cost[2], proxied(rpcboot::GrpcClient::kGrpcpp)),
         load(&cost[3], proxied(rpcboot::GrpcClient::kNative))});
    const Result &r_raw = m[0].median, &r_stock = m[1].median, &r_grpcpp = m[2].median;
    Print("clients", "raw", n, "tcp", r_raw, m[0].spread + cost[0].Text());
    Print("clients", "grpc", n, "stock", r_stock,
          Ratio("vs raw", r_stock.calls_per_second, r_raw.calls_per_second) + m[1].spread +
              cost[1].Text());
    Print("clients", "grpc", n, "grpcpp", r_grpcpp,
          Ratio("vs stock", r_grpcpp.calls_per_second, r_stock.calls_per_second) + "  " +
              Ratio("vs raw", r_grpcpp.calls_per_second, r_raw.calls_per_second) + m[2].spread +
              cost[2].Text());
    Print("clients", "grpc", n, "native", m[3].median,
          Ratio("vs stock", m[3].median.calls_per_second, r_stock.calls_per_second) + "  " +
              Ratio("vs grpcpp", m[3].median.calls_per_second, r_grpcpp.calls_per_second) + "  " +
              Ratio("vs raw", m[3].median.calls_per_second, r_raw.calls_per_second) + m[3].spread +
              cost[3].Text());
  }
}

// What call metadata costs: rpcboot's proxies against one rpcboot server, each call without
// metadata and with two entries as a routing or tracing layer adds them (a tenant name and a
// 16-byte request id, `-bin`: base64 on gRPC's wire), on the native gRPC channel and on Thrift
// (THeader frames with and without the entries; plain framed frames, which cannot carry them,
// for reference). Every caller sets its options per call through ScopedCallOptions, as an
// application would. With the client's and the server's CPU per call.
void Metadata(const char* self, double seconds, const std::vector<int>& callers, int rounds) {
  ServerProcess ours(self, "rpcboot");
  const int grpc_port = ours.grpc_port, thrift_port = ours.thrift_port;
  rpcboot::CallOptions with;
  with.metadata = {{"tenant", "acme-foods"},
                   {"request-id-bin", std::string("\x8f\x03\x5a\x00\x91\xee\x17\x42"
                                                  "\xc0\x0b\x7d\x26\x00\xfa\x31\x9c",
                                                  16)}};
  auto proxy = [&](rpcboot::Protocol protocol, bool thrift_header) {
    rpcboot::ChannelOptions options;
    options.grpc_client = rpcboot::GrpcClient::kNative;
    options.thrift_header = thrift_header;
    const int port = protocol == rpcboot::Protocol::kGrpc ? grpc_port : thrift_port;
    return rpcboot::MakeClient<rich::RichService>(
        rpcboot::MakeChannel("127.0.0.1:" + std::to_string(port), protocol, options));
  };
  auto caller = [](std::shared_ptr<rich::RichService> client, rpcboot::CallOptions options) {
    return [client, options](int) {
      return std::function<bool()>([client, options] {
        rpcboot::ScopedCallOptions scope(options);
        try {
          return client->Mix(rich::Color::kRed, rich::Color::kGreen) == rich::Color::kBlue;
        } catch (const rpcboot::RpcError&) {
          return false;
        }
      });
    };
  };
  auto grpc = proxy(rpcboot::Protocol::kGrpc, false);
  auto framed = proxy(rpcboot::Protocol::kThrift, false);
  auto header = proxy(rpcboot::Protocol::kThrift, true);
  struct Row {
    const char* protocol;
    const char* impl;
    std::function<std::function<bool()>(int)> make_caller;
  };
  const std::vector<Row> rows = {
      {"grpc", "none", caller(grpc, {})},       {"grpc", "two", caller(grpc, with)},
      {"thrift", "framed", caller(framed, {})}, {"thrift", "theader", caller(header, {})},
      {"thrift", "two", caller(header, with)},
  };
  for (int n : callers) {
    std::vector<ClientCost> client(rows.size());
    std::vector<ServerCost> server(rows.size());
    std::vector<std::function<Result()>> loads;
    for (std::size_t k = 0; k < rows.size(); ++k) {
      loads.push_back([&, k, n] {
        std::function<void(bool)> client_mark = client[k].Mark();
        std::function<void(bool)> server_mark = server[k].Mark(ours);
        Result r = Load(n, seconds, rows[k].make_caller, [&](bool end) {
          client_mark(end);
          server_mark(end);
        });
        client[k].calls += r.calls;
        server[k].calls += r.calls;
        return r;
      });
    }
    std::vector<Measured> m = MeasureRounds(rounds, loads);
    auto per_call = [](double cpu_seconds, long calls) {
      return calls > 0 ? cpu_seconds * 1e6 / static_cast<double>(calls) : 0.0;
    };
    for (std::size_t k = 0; k < rows.size(); ++k) {
      // Each row with entries against the same protocol's row without them just above it.
      std::string ratio;
      if (std::string_view(rows[k].impl) == "two") {
        const std::size_t base = k - 1;
        char text[160];
        std::snprintf(
            text, sizeof text, "%s  (client %+.1f us, server %+.1f us a call)",
            Ratio("vs none", m[k].median.calls_per_second, m[base].median.calls_per_second).c_str(),
            per_call(client[k].cpu_seconds, client[k].calls) -
                per_call(client[base].cpu_seconds, client[base].calls),
            per_call(server[k].cpu_seconds, server[k].calls) -
                per_call(server[base].cpu_seconds, server[base].calls));
        ratio = text;
      } else if (std::string_view(rows[k].impl) == "theader") {
        ratio = Ratio("vs framed", m[k].median.calls_per_second, m[k - 1].median.calls_per_second);
      }
      Print("metadata", rows[k].protocol, n, rows[k].impl, m[k].median,
            ratio + m[k].spread + client[k].Text() + server[k].Text());
    }
  }
}

// The same Thrift servers under the replay caller, whose cost per call is the raw loop's: what
// each server reaches against the physical bound when the load generator takes no more CPU
// than the raw loop's does.
void Replay(const char* self, double seconds, const std::vector<int>& callers, int rounds) {
  ThriftRounds("replay", ThriftReplayCaller, ThroughputServers(self), seconds, callers, rounds);
}

void Mixed(const char* self, double seconds) {
  for (const char* proto : {"thrift", "grpc"}) {
    bool grpc = std::string(proto) == "grpc";
    for (const char* kind : {"stock", "rpcboot"}) {
      ServerProcess server(self, kind);
      bool stock = std::string(kind) == "stock";
      // 50 callers keep 200 ms handlers busy; 2 callers measure the cheap method beside them.
      std::atomic<bool> stop{false};
      std::vector<std::thread> blockers;
      for (int i = 0; i < 50; ++i) {
        std::function<bool()> call = grpc ? GrpcNotifyCaller(server.grpc_port, i,
                                                             stock ? "/rich_pb.RichService/Notify"
                                                                   : "/rich.RichService/Notify",
                                                             1000 + 200)
                                          : ThriftNotifyCaller(server.thrift_port, 1000 + 200);
        blockers.emplace_back([&stop, call] {
          while (!stop) call();
        });
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let them take their threads
      Result cheap = Load(2, seconds, [&](int i) {
        return grpc ? GrpcMixCaller(server.grpc_port, i,
                                    stock ? "/rich_pb.RichService/Mix" : "/rich.RichService/Mix")
                    : ThriftMixCaller(server.thrift_port);
      });
      stop = true;
      for (auto& t : blockers) t.join();
      Print("mixed", proto, 2, kind, cheap, "(50 handlers blocked 200 ms each)");
    }
  }
}

void Scale(const char* self, double seconds, int idle_count) {
  RaiseDescriptorLimit(static_cast<rlim_t>(idle_count) + 1024);
  // rpcboot on epoll, then on io_uring (server.thrift_io: uring): a receive armed on each idle
  // connection, the buffers shared by the loop.
  for (const char* kind : {"rpcboot", "rpcboot-uring"}) {
    ServerProcess ours(self, kind);
    const char* io = std::string(kind) == "rpcboot" ? "epoll" : "uring";
    Result without = Load(8, seconds, [&](int) { return ThriftMixCaller(ours.thrift_port); });
    long threads_before = ours.Threads(), rss_before = ours.Rss();
    std::vector<int> idle;
    for (int i = 0; i < idle_count; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(ours.thrift_port));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        if (fd >= 0) ::close(fd);
        break;
      }
      idle.push_back(fd);
    }
    Result with = Load(8, seconds, [&](int) { return ThriftMixCaller(ours.thrift_port); });
    std::printf(
        "scale      %s: %zu idle connections held: server threads %ld -> %ld, RSS %ld -> %ld "
        "KiB\n",
        io, idle.size(), threads_before, ours.Threads(), rss_before, ours.Rss());
    Print("scale", "thrift", 8, (std::string(io) + "-").c_str(), without, "without the idle ones");
    Print("scale", "thrift", 8, (std::string(io) + "+").c_str(), with,
          Ratio("with/without", with.calls_per_second, without.calls_per_second));
    for (int fd : idle) ::close(fd);
  }
}

// TLS against plaintext, and against the stock servers over TLS; every caller its own
// connection (its own handshake, its own record stream).
void Tls(const char* self, double seconds, const std::vector<int>& callers) {
  ServerProcess plain(self, "rpcboot");
  ServerProcess ours(self, "rpcboot-tls");
  ServerProcess stock(self, "stock-tls");
  for (int n : callers) {
    Result r_plain = Load(n, seconds, [&](int) { return ThriftMixCaller(plain.thrift_port); });
    Result r_stock =
        Load(n, seconds, [&](int) { return ThriftMixCaller(stock.thrift_port, true); });
    Result r_ours = Load(n, seconds, [&](int) { return ThriftMixCaller(ours.thrift_port, true); });
    Print("tls", "thrift", n, "plain", r_plain, "");
    Print("tls", "thrift", n, "stock", r_stock, "");
    Print("tls", "thrift", n, "rpcboot", r_ours,
          Ratio("vs plain", r_ours.calls_per_second, r_plain.calls_per_second) + "  " +
              Ratio("vs stock", r_ours.calls_per_second, r_stock.calls_per_second));
  }
  // gRPC's rows also say what each call cost the server and the (stock) client, from /proc and
  // getrusage: less noisy than calls/s when load and server share two cores.
  for (int n : callers) {
    const ServerProcess* servers[3] = {&plain, &stock, &ours};
    const char* paths[3] = {"/rich.RichService/Mix", "/rich_pb.RichService/Mix",
                            "/rich.RichService/Mix"};
    Result r[3];
    ServerCost server_cost[3];
    ClientCost client_cost[3];
    for (int k = 0; k < 3; ++k) {
      auto client_mark = client_cost[k].Mark();
      auto server_mark = server_cost[k].Mark(*servers[k]);
      r[k] = Load(
          n, seconds,
          [&](int i) { return GrpcMixCaller(servers[k]->grpc_port, i, paths[k], k > 0, 1); },
          [&](bool end) {
            client_mark(end);
            server_mark(end);
          });
      server_cost[k].calls = client_cost[k].calls = r[k].calls;
    }
    auto costs = [&](int k) { return server_cost[k].Text() + client_cost[k].Text(); };
    Print("tls", "grpc", n, "plain", r[0], costs(0));
    Print("tls", "grpc", n, "stock", r[1], costs(1));
    Print("tls", "grpc", n, "rpcboot", r[2],
          Ratio("vs plain", r[2].calls_per_second, r[0].calls_per_second) + "  " +
              Ratio("vs stock", r[2].calls_per_second, r[1].calls_per_second) + costs(2));
  }
}

// Bytes the loopback interface has carried so far (what is sent on it is received on it).
long LoopbackBytes() {
  std::ifstream dev("/proc/net/dev");
  std::string line;
  while (std::getline(dev, line)) {
    std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != "lo") continue;
    return std::stol(line.substr(colon + 1));  // its first field: bytes received
  }
  return 0;
}

// gRPC compression off and on (server.grpc_compression gzip, gzip requests) for a 16 KiB order
// list: calls/s, server CPU per call, loopback bytes per call.
void Compression(const char* self, double seconds, const std::vector<int>& callers) {
  ServerProcess plain(self, "rpcboot");
  ServerProcess gzip(self, "rpcboot-gzip");
  ServerProcess stock(self, "stock-gzip");
  std::string text = "[";
  for (int i = 0; text.size() < 16 * 1024; ++i) {
    text += "{\"item\":" + std::to_string(4700 + i * 37 % 1000) +
            ",\"name\":\"Margherita pizza, large\",\"price_cents\":" +
            std::to_string(1190 + i % 7 * 50) + ",\"quantity\":" + std::to_string(1 + i % 3) +
            ",\"notes\":\"no basil\"},";
  }
  text.back() = ']';
  for (int n : callers) {
    Result r[3];
    ServerCost cost[3];
    double bytes[3];
    const ServerProcess* servers[3] = {&plain, &gzip, &stock};
    for (int k = 0; k < 3; ++k) {
      const long before = LoopbackBytes();
      const int port = servers[k]->grpc_port;
      const char* path =
          k == 2 ? "/rich_pb.RichService/EchoScalars" : "/rich.RichService/EchoScalars";
      r[k] = Load(
          n, seconds, [&](int i) { return GrpcEchoCaller(port, i, path, text, k > 0); },
          cost[k].Mark(*servers[k]));
      cost[k].calls = r[k].calls;
      bytes[k] = static_cast<double>(LoopbackBytes() - before) /
                 static_cast<double>(std::max<long>(r[k].calls + n, 1));
    }
    auto volume = [&](int k) {
      char shown[64];
      std::snprintf(shown, sizeof shown, "%.0f bytes/call (%.2f)  ", bytes[k], bytes[k] / bytes[0]);
      return std::string(shown);
    };
    Print("compress", "grpc", n, "off", r[0], volume(0) + cost[0].Text());
    Print("compress", "grpc", n, "stock", r[2], volume(2) + cost[2].Text());
    Print("compress", "grpc", n, "gzip", r[1],
          volume(1) + Ratio("vs off", r[1].calls_per_second, r[0].calls_per_second) + "  " +
              Ratio("vs stock", r[1].calls_per_second, r[2].calls_per_second) + cost[1].Text());
  }
}

// Messages of each size in `sizes` (a text field of that many bytes, echoed back) through the
// stock clients, each caller on its own connection: Thrift against rpcboot and TThreadedServer,
// gRPC against rpcboot's native server and the sync service; megabytes a second both ways, and
// each server's CPU per call. Each protocol has server processes of its own: a large message's
// buffers left in a process by one protocol's run would otherwise serve the other's (a stock
// server's 1 MiB gRPC calls took 69-160 page faults each after its Thrift run, 300 without).
void Payload(const char* self, double seconds, const std::vector<int>& callers, int rounds,
             const std::vector<int>& sizes) {
  ServerProcess ours_thrift(self, "rpcboot");
  ServerProcess stock_thrift(self, "stock");
  ServerProcess ours_grpc(self, "rpcboot");
  ServerProcess stock_grpc(self, "stock");
  for (int size : sizes) {
    const std::string text(static_cast<std::size_t>(size), 'p');
    for (int n : callers) {
      ServerCost cost[4];
      auto thrift = [&text](int port) {
        return [port, &text](int) { return ThriftEchoCaller(port, text); };
      };
      auto grpc = [&text](int port, const char* path) {
        return [port, path, &text](int i) { return GrpcEchoCaller(port, i, path, text, false); };
      };
      std::vector<Measured> m = MeasureRounds(
          rounds,
          {CountedLoad(stock_thrift, &cost[0], n, seconds, thrift(stock_thrift.thrift_port)),
           CountedLoad(ours_thrift, &cost[1], n, seconds, thrift(ours_thrift.thrift_port)),
           CountedLoad(stock_grpc, &cost[2], n, seconds,
                       grpc(stock_grpc.grpc_port, "/rich_pb.RichService/EchoScalars")),
           CountedLoad(ours_grpc, &cost[3], n, seconds,
                       grpc(ours_grpc.grpc_port, "/rich.RichService/EchoScalars"))});
      auto rate = [size](const Result& r) {
        char shown[64];
        std::snprintf(shown, sizeof shown, "%d B: %.1f MB/s  ", size,
                      r.calls_per_second * 2.0 * size / 1e6);
        return std::string(shown);
      };
      for (int k = 0; k < 4; ++k) {
        const bool ours_row = k % 2 == 1;
        std::string ratio = rate(m[k].median);
        if (ours_row) {
          ratio +=
              Ratio("vs stock", m[k].median.calls_per_second, m[k - 1].median.calls_per_second);
        }
        Print("payload", k < 2 ? "thrift" : "grpc", n, ours_row ? "rpcboot" : "stock", m[k].median,
              ratio + m[k].spread + cost[k].Text());
      }
    }
  }
}

// One run of h2load against 127.0.0.1:`port` for `seconds`: `connections` connections with
// `streams` calls in flight on each, every call Mix(RED, GREEN) to `path`. Calls that got an
// HTTP status other than 200, or none, are errors; the mean time of a call goes in p50_us (h2load
// prints no percentiles). calls_per_second is 0 when h2load did not run.
Result H2load(int port, const char* path, int connections, int streams, double seconds,
              const std::string& body) {
  std::string command = "h2load -D " + std::to_string(static_cast<int>(seconds + 0.5)) + " -c " +
                        std::to_string(connections) + " -m " + std::to_string(streams) +
                        " -t 1 -d " + body +
                        " -H 'content-type: application/grpc' -H 'te: trailers' "
                        "http://127.0.0.1:" +
                        std::to_string(port) + path + " 2>&1";
  Result result;
  FILE* out = ::popen(command.c_str(), "r");
  if (out == nullptr) return result;
  char line[512];
  double rate = 0;
  long done = 0, succeeded = 0, ok = 0;
  while (std::fgets(line, sizeof line, out) != nullptr) {
    double secs = 0, mean = 0;
    char unit[8] = {};
    if (std::sscanf(line, "finished in %lfs, %lf req/s", &secs, &rate) == 2) continue;
    long total = 0, started = 0;
    if (std::sscanf(line, "requests: %ld total, %ld started, %ld done, %ld succeeded", &total,
                    &started, &done, &succeeded) == 4) {
      continue;
    }
    if (std::sscanf(line, "status codes: %ld 2xx", &ok) == 1) continue;
    if (std::sscanf(line, "time for request: %*f%*s %*f%*s %lf%7s", &mean, unit) == 2) {
      result.p50_us = std::strcmp(unit, "ms") == 0 ? mean * 1000 : mean;
    }
  }
  if (::pclose(out) != 0) return result;
  result.calls_per_second = rate;
  result.errors = done - std::min(succeeded, ok);
  return result;
}

void H2loadPart(const char* self, double seconds, const std::vector<int>& callers) {
  if (std::system("command -v h2load >/dev/null 2>&1") != 0) {
    std::fprintf(stderr,
                 "serving_bench: h2load is missing: apt-get install nghttp2-client "
                 "(./scripts/setup.sh)\n");
    return;
  }
  char dir[] = "/tmp/rpcboot-bench-h2load-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return;
  const std::string body = std::string(dir) + "/mix.bin";
  {
    // The gRPC message: uncompressed, 2 bytes long, MixRequest{a: RED (0, omitted), b: GREEN}.
    const unsigned char message[] = {0, 0, 0, 0, 2, 0x10, 0x01};
    std::ofstream file(body, std::ios::binary);
    file.write(reinterpret_cast<const char*>(message), sizeof message);
  }
  ServerProcess ours(self, "rpcboot");
  ServerProcess grpcpp(self, "rpcboot-grpcpp");
  ServerProcess stock(self, "stock");
  std::printf(
      "h2load: the p50 column holds the mean time of a call (h2load prints no "
      "percentiles); xN: N calls in flight on each connection\n");
  std::vector<std::pair<int, int>> loads;  // connections, streams on each
  for (int n : callers) loads.emplace_back(n, 1);
  loads.emplace_back(8, 8);
  for (auto [connections, streams] : loads) {
    Result r_stock =
        H2load(stock.grpc_port, "/rich_pb.RichService/Mix", connections, streams, seconds, body);
    Result r_ours =
        H2load(ours.grpc_port, "/rich.RichService/Mix", connections, streams, seconds, body);
    Result r_grpcpp =
        H2load(grpcpp.grpc_port, "/rich.RichService/Mix", connections, streams, seconds, body);
    if (r_stock.calls_per_second == 0 || r_ours.calls_per_second == 0 ||
        r_grpcpp.calls_per_second == 0) {
      std::fprintf(stderr, "serving_bench: h2load failed at %d connections\n", connections);
      break;
    }
    std::string impl = streams == 1 ? "" : "x" + std::to_string(streams);
    Print("h2load", "grpc", connections, ("stock" + impl).c_str(), r_stock, "");
    Print("h2load", "grpc", connections, ("grpcpp" + impl).c_str(), r_grpcpp,
          Ratio("vs stock", r_grpcpp.calls_per_second, r_stock.calls_per_second));
    Print("h2load", "grpc", connections, ("rpcboot" + impl).c_str(), r_ours,
          Ratio("vs stock", r_ours.calls_per_second, r_stock.calls_per_second) + "  " +
              Ratio("vs grpcpp", r_ours.calls_per_second, r_grpcpp.calls_per_second));
  }
  std::system((std::string("rm -rf ") + dir).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.5;
  std::vector<int> callers = {1, 8, 64, 512};
  int idle = 10000;
  std::vector<std::string> parts = {"throughput", "replay", "clients",      "mixed",
                                    "scale",      "tls",    "observability"};
  int rounds = 1;
  std::vector<int> sizes = {64, 4096, 65536, 1 << 20};
  const rpcboot::bench::Flags flags(
      "serving_bench",
      "[--seconds=S] [--callers=1,8,64,512] [--idle=N] "
      "[--parts=throughput,replay,clients,mixed,scale,tls,observability,h2load,compression,"
      "metadata,payload] [--sizes=64,4096,65536,1048576] "
      "[--rounds=N]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a.substr(0, 8) == "--serve=") return Serve(std::string(a.substr(8)));
    if (flags.Number(a, "seconds", 0.01, 30, &seconds) ||
        flags.List(a, "callers", 1, 4096, &callers) || flags.Int(a, "idle", 0, 100000, &idle) ||
        flags.Words(a, "parts",
                    "throughput replay clients mixed scale tls observability h2load compression "
                    "metadata payload",
                    &parts) ||
        flags.Int(a, "rounds", 1, 15, &rounds) || flags.List(a, "sizes", 1, 8 << 20, &sizes)) {
      continue;
    }
    flags.Unknown(a);
  }
  auto part = [&](const char* name) {
    return std::find(parts.begin(), parts.end(), name) != parts.end();
  };
  std::signal(SIGPIPE, SIG_IGN);
  RaiseDescriptorLimit(4096);  // 512 callers' connections, twice (client and server sides)
  std::printf("%-10s %-7s %7s %-8s %11s %9s %9s %6s  %s\n", "part", "proto", "callers", "impl",
              "calls/s", "p50 us", "p99 us", "errors", "ratio");
  if (part("throughput")) Throughput(argv[0], seconds, callers, rounds);
  if (part("replay")) Replay(argv[0], seconds, callers, rounds);
  if (part("clients")) Clients(argv[0], seconds, callers, rounds);
  if (part("mixed")) Mixed(argv[0], seconds);
  if (part("scale")) Scale(argv[0], seconds, idle);
  if (part("observability")) {
    std::vector<int> observed_callers;
    for (int n : callers)
      if (n >= 2 && n <= 64) observed_callers.push_back(n);
    if (observed_callers.empty()) observed_callers = {8};
    Observability(argv[0], seconds, observed_callers);
  }
  if (part("tls")) {
    char dir[] = "/tmp/rpcboot-bench-certs-XXXXXX";
    if (::mkdtemp(dir) == nullptr ||
        std::system((std::string(RPCBOOT_CERTS_SCRIPT) + " " + dir + " >/dev/null").c_str()) != 0) {
      std::fprintf(stderr, "serving_bench: cannot make certificates (is openssl installed?)\n");
      return 1;
    }
    setenv("BENCH_CERTS", dir, 1);
    std::vector<int> tls_callers;
    for (int n : callers)
      if (n >= 8 && n <= 64) tls_callers.push_back(n);
    if (tls_callers.empty()) tls_callers = {8, 64};
    Tls(argv[0], seconds, tls_callers);
    std::system((std::string("rm -rf ") + dir).c_str());
  }
  if (part("h2load")) H2loadPart(argv[0], seconds, callers);
  if (part("compression")) Compression(argv[0], seconds, callers);
  if (part("metadata")) Metadata(argv[0], seconds, callers, rounds);
  if (part("payload")) Payload(argv[0], seconds, callers, rounds, sizes);
  return 0;
}
