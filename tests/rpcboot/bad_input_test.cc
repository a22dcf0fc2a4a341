// Bad input from the network: each case gets a clear error or a closed connection plus a log
// line, and the server keeps serving everyone else.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/internal/binding_impl.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/server.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/thrift_wire.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.grpc_server = rpcboot::testing::TestGrpcServer();
    options.thrift_port = 0;
    options.max_message_bytes = 64 * 1024;
    options.idle_timeout = std::chrono::milliseconds(300);
    options.thrift_io = testing::TestThriftIo();
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    ASSERT_TRUE(server_->Start().ok());
    thrift_ = MakeClient<rich::RichService>(
        MakeThriftChannel("127.0.0.1:" + std::to_string(server_->thrift_port())));
    grpc_ = MakeClient<rich::RichService>(
        MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port())));
  }

  int Connect() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->thrift_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }

  // True when the server closes the connection within `timeout` (reads EOF or a reset).
  static bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char buf[256];
    return ::recv(fd, buf, sizeof buf, 0) <= 0;
  }

  static std::string Frame(std::string_view message) {
    char prefix[4];
    internal::EncodeFrameLength(static_cast<uint32_t>(message.size()), prefix);
    return std::string(prefix, 4) + std::string(message);
  }

  // Sends a frame and returns the reply frame's body.
  static std::string RoundTrip(int fd, std::string_view message) {
    std::string frame = Frame(message);
    EXPECT_EQ(::send(fd, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
    internal::SetSocketTimeouts(fd, std::chrono::seconds(5));
    internal::IoError error;
    char prefix[4];
    if (!internal::RecvFull(fd, prefix, 4, &error)) return "";
    std::string body(internal::DecodeFrameLength(prefix), '\0');
    if (!internal::RecvFull(fd, body.data(), body.size(), &error)) return "";
    return body;
  }

  void ExpectStillServing() {
    EXPECT_EQ(thrift_->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
    EXPECT_EQ(grpc_->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
  }

  std::shared_ptr<testing::RichServiceImpl> impl_ = std::make_shared<testing::RichServiceImpl>();
  std::unique_ptr<Server> server_;
  std::shared_ptr<rich::RichService> thrift_;
  std::shared_ptr<rich::RichService> grpc_;
};

TEST_F(BadInputTest, BytesThatAreNotThrift) {
  int fd = Connect();
  std::string http = Frame("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ::send(fd, http.data(), http.size(), 0);
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(5)));
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, UnframedHttpRequestLooksLikeAHugeFrame) {
  int fd = Connect();
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";  // "GET " = a 1.2 GB frame length
  ::send(fd, http.data(), http.size(), 0);
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(5)));
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, FrameBeyondTheLimit) {
  int fd = Connect();
  char prefix[4];
  internal::EncodeFrameLength(64 * 1024 + 1, prefix);
  ::send(fd, prefix, 4, 0);
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(5))) << "closed without reading the body";
  ::close(fd);
  ExpectStillServing();
}

// The server serves a frame that came whole in one read from where it was read, and gathers one
// that did not: frames back to back in one write, a frame in two writes, a frame's end in the
// same write as the next one's first bytes, and a call that fails to decode between good ones
// are each answered, in order, with the right result.
TEST_F(BadInputTest, FramesBackToBackOrInPiecesAreEachAnsweredInOrder) {
  const rich::Color colors[] = {rich::Color::kRed,  rich::Color::kBlue, rich::Color::kRed,
                                rich::Color::kBlue, rich::Color::kRed,  rich::Color::kRed,
                                rich::Color::kBlue};
  auto call = [&](int32_t seqid) {
    return Frame(
        internal::ThriftMessage(WireFormat::kThriftCompact, "Mix", internal::kThriftCall, seqid,
                                ThriftEncode(std::make_tuple(colors[seqid - 1], rich::Color::kRed),
                                             WireFormat::kThriftCompact)));
  };
  const std::string bad =
      Frame(internal::ThriftMessage(WireFormat::kThriftCompact, "Mix", internal::kThriftCall, 6,
                                    std::string("\x1c\xff\xff\xff\xff\x0f", 6)));
  const std::string four = call(4), five = call(5);
  const std::vector<std::string> writes = {
      call(1) + call(2) + call(3),         // three whole frames in one write
      four.substr(0, 7),                   // a frame in two writes
      four.substr(7) + five.substr(0, 3),  // its end, and the next one's first bytes
      five.substr(3),                      // (not even its length prefix whole)
      bad + call(7),                       // a call that does not decode, then one that does
  };
  int fd = Connect();
  for (const std::string& bytes : writes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // separate reads, most likely
  }
  internal::SetSocketTimeouts(fd, std::chrono::seconds(5));
  for (int32_t seqid = 1; seqid <= 7; ++seqid) {
    internal::IoError error;
    char prefix[4];
    ASSERT_TRUE(internal::RecvFull(fd, prefix, 4, &error)) << "reply " << seqid;
    std::string body(internal::DecodeFrameLength(prefix), '\0');
    ASSERT_TRUE(internal::RecvFull(fd, body.data(), body.size(), &error)) << "reply " << seqid;
    internal::ThriftMessageHeader header;
    ASSERT_TRUE(internal::ParseThriftHeader(body, &header).ok());
    EXPECT_EQ(header.seqid, seqid) << "replies in the order of the calls";
    EXPECT_EQ(header.type, internal::kThriftReply);
    std::string_view result = std::string_view(body).substr(header.body_offset);
    if (seqid == 6) {
      EXPECT_THROW(internal::ThriftDecodeResult<rich::Color>(result, WireFormat::kThriftCompact),
                   RpcError);
      continue;
    }
    EXPECT_EQ(internal::ThriftDecodeResult<rich::Color>(result, WireFormat::kThriftCompact),
              impl_->Mix(colors[seqid - 1], rich::Color::kRed))
        << "reply " << seqid;
  }
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, MalformedFrameAfterAValidHeader) {
  int fd = Connect();
  // A valid call header for Echo, then garbage where the args struct should be.
  std::string message =
      internal::ThriftMessage(WireFormat::kThriftCompact, "Echo", internal::kThriftCall, 7,
                              std::string("\x1c\xff\xff\xff\xff\x0f", 6));
  std::string reply = RoundTrip(fd, message);
  internal::ThriftMessageHeader header;
  ASSERT_TRUE(internal::ParseThriftHeader(reply, &header).ok());
  EXPECT_EQ(header.seqid, 7);
  EXPECT_EQ(header.type, internal::kThriftReply)
      << "a result struct with RpcError, not a dropped connection";
  try {
    internal::ThriftDecodeResult<rich::Everything>(
        std::string_view(reply).substr(header.body_offset), WireFormat::kThriftCompact);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("bad request"), std::string::npos) << e.message();
  }
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, WrongArgumentTypes) {
  int fd = Connect();
  // Mix(a: Color, b: Color) called with strings.
  std::string args =
      ThriftEncode(std::tuple<std::string, std::string>("red", "blue"), WireFormat::kThriftBinary);
  std::string reply = RoundTrip(fd, internal::ThriftMessage(WireFormat::kThriftBinary, "Mix",
                                                            internal::kThriftCall, 3, args));
  internal::ThriftMessageHeader header;
  ASSERT_TRUE(internal::ParseThriftHeader(reply, &header).ok());
  try {
    internal::ThriftDecodeResult<rich::Color>(std::string_view(reply).substr(header.body_offset),
                                              WireFormat::kThriftBinary);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("wire type string, expected i32"), std::string::npos) << e.message();
  }
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, UnknownMethodGetsAnApplicationException) {
  int fd = Connect();
  std::string reply =
      RoundTrip(fd, internal::ThriftMessage(WireFormat::kThriftCompact, "DropTables",
                                            internal::kThriftCall, 9, ""));
  internal::ThriftMessageHeader header;
  ASSERT_TRUE(internal::ParseThriftHeader(reply, &header).ok());
  EXPECT_EQ(header.type, internal::kThriftException);
  auto [type, message] = internal::ReadThriftApplicationException(
      WireFormat::kThriftCompact, std::string_view(reply).substr(header.body_offset));
  EXPECT_EQ(type, 1) << "UNKNOWN_METHOD";
  EXPECT_NE(message.find("DropTables"), std::string::npos);
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, ClientThatSendsNothingIsClosedAfterTheIdleTimeout) {
  int fd = Connect();
  EXPECT_FALSE(ClosedWithin(fd, std::chrono::milliseconds(50)));
  EXPECT_TRUE(ClosedWithin(fd, std::chrono::seconds(5)));
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, ClientDisconnectsMidFrame) {
  int fd = Connect();
  std::string frame = Frame(internal::ThriftMessage(
      WireFormat::kThriftCompact, "Count", internal::kThriftCall, 1, std::string("\x00", 1)));
  ::send(fd, frame.data(), frame.size() / 2, 0);
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, ClientDisconnectsDuringACall) {
  int fd = Connect();
  std::string args = ThriftEncode(
      std::tuple<int64_t, std::string, rich::Color>(1000 + 200, "slow", rich::Color::kRed),
      WireFormat::kThriftCompact);
  std::string frame = Frame(internal::ThriftMessage(WireFormat::kThriftCompact, "Notify",
                                                    internal::kThriftCall, 1, args));
  ::send(fd, frame.data(), frame.size(), 0);
  ::close(fd);  // the handler finishes; the reply has nowhere to go
  ASSERT_TRUE(impl_->WaitNotified(1)) << "the handler ran to its end";
  ExpectStillServing();
}

TEST_F(BadInputTest, GrpcMessageBeyondTheLimit) {
  rich::EchoRequest big;
  big.value.stamp.zone.assign(100 * 1024, 'x');
  try {
    grpc_->Echo(big);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
  }
  ExpectStillServing();
}

TEST_F(BadInputTest, ThriftMessageBeyondTheLimitFromAProxy) {
  rich::EchoRequest big;
  big.value.stamp.zone.assign(100 * 1024, 'x');
  EXPECT_THROW(thrift_->Echo(big), RpcError);
  ExpectStillServing();
}

TEST_F(BadInputTest, GrpcHealthServiceAnswersServing) {
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest; SERVING is field 1 = 1.
  internal::MethodBinding check;
  check.name = "Check";
  check.grpc_path = "/grpc.health.v1.Health/Check";
  auto channel = MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()));
  EXPECT_EQ(channel->Call(check, "", CallOptions{}), std::string("\x08\x01", 2));
}

TEST_F(BadInputTest, GrpcHealthAnswersByServiceName) {
  internal::MethodBinding check;
  check.name = "Check";
  check.grpc_path = "/grpc.health.v1.Health/Check";
  auto channel = MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()));
  // HealthCheckRequest{service = "rich.RichService"} (field 1, a string).
  std::string served = "rich.RichService";
  EXPECT_EQ(channel->Call(check, "\x0a" + std::string(1, static_cast<char>(served.size())) + served,
                          CallOptions{}),
            std::string("\x08\x01", 2))
      << "SERVING by the service's full name, as Kubernetes and Envoy probes ask";
  std::string unknown = "rich.Nope";
  try {
    channel->Call(check, "\x0a" + std::string(1, static_cast<char>(unknown.size())) + unknown,
                  CallOptions{});
    FAIL() << "a service this server does not serve is reported";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kNotFound) << e.what();
  }
}

TEST_F(BadInputTest, GrpcHealthCheckThatDoesNotDecodeIsInvalidArgument) {
  internal::MethodBinding check;
  check.name = "Check";
  check.grpc_path = "/grpc.health.v1.Health/Check";
  auto channel = MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()));
  // Field 1 claims 100 bytes and has 3; then a field with wire type 7 (none such).
  for (std::string bad : {std::string("\x0a\x64"
                                      "abc",
                                      5),
                          std::string("\x0f\x01", 2)}) {
    try {
      channel->Call(check, bad, CallOptions{});
      FAIL() << "a HealthCheckRequest that does not decode is answered";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.what();
    }
  }
  EXPECT_EQ(channel->Call(check, "", CallOptions{}), std::string("\x08\x01", 2));
  ExpectStillServing();
}

// An application that turned on gRPC's own health service for its other servers: rpcboot's
// server still starts (its health service is its own) and answers by service name.
TEST_F(BadInputTest, GrpcHealthIsRpcbootsEvenWithGrpcsDefaultServiceOn) {
  grpc::EnableDefaultHealthCheckService(true);
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  Server other(options);
  other.AddService<rich::RichService>(impl_);
  absl::Status started = other.Start();
  grpc::EnableDefaultHealthCheckService(false);
  ASSERT_TRUE(started.ok()) << started;
  internal::MethodBinding check;
  check.name = "Check";
  check.grpc_path = "/grpc.health.v1.Health/Check";
  auto channel = MakeGrpcChannel("127.0.0.1:" + std::to_string(other.grpc_port()));
  std::string served = "rich.RichService";
  EXPECT_EQ(channel->Call(check, "\x0a" + std::string(1, static_cast<char>(served.size())) + served,
                          CallOptions{}),
            std::string("\x08\x01", 2));
}

// grpc.health.v1.Health/Watch: the status at once, NOT_SERVING when the server stops, and then
// the end of the stream (a stopping server does not wait for its watchers).
TEST_F(BadInputTest, GrpcHealthWatchSaysNotServingAndEndsWhenTheServerStops) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::internal::RpcMethod watch("/grpc.health.v1.Health/Watch",
                                  grpc::internal::RpcMethod::SERVER_STREAMING, channel);
  auto open = [&](grpc::ClientContext* context, const std::string& service) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    std::string request =
        service.empty() ? "" : "\x0a" + std::string(1, static_cast<char>(service.size())) + service;
    return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
            channel.get(), watch, context, internal::ToByteBuffer(request)));
  };
  grpc::ClientContext server_context, served_context, unknown_context;
  auto server = open(&server_context, "");
  auto served = open(&served_context, "rich.RichService");
  auto unknown = open(&unknown_context, "rich.Nope");
  grpc::ByteBuffer reply;
  ASSERT_TRUE(server->Read(&reply));
  EXPECT_EQ(internal::ToBytes(reply), std::string("\x08\x01", 2)) << "SERVING";
  ASSERT_TRUE(served->Read(&reply));
  EXPECT_EQ(internal::ToBytes(reply), std::string("\x08\x01", 2)) << "SERVING";
  ASSERT_TRUE(unknown->Read(&reply));
  EXPECT_EQ(internal::ToBytes(reply), std::string("\x08\x03", 2)) << "SERVICE_UNKNOWN";

  std::thread stop([this] { server_->Shutdown(); });
  for (auto* stream : {server.get(), served.get()}) {
    ASSERT_TRUE(stream->Read(&reply));
    EXPECT_EQ(internal::ToBytes(reply), std::string("\x08\x02", 2)) << "NOT_SERVING";
    EXPECT_FALSE(stream->Read(&reply)) << "then the stream ends";
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_FALSE(unknown->Read(&reply)) << "still unknown: nothing more, and the end";
  EXPECT_EQ(unknown->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stop.join();
}

// A call that ends its side without sending the request message: gRPC's own answer, and the
// server serves on.
TEST_F(BadInputTest, GrpcCallWithoutARequestMessageIsRefused) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  for (const char* path : {"/rich.RichService/Count", "/grpc.health.v1.Health/Check"}) {
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto next = [&cq] {
      void* tag = nullptr;
      bool ok = false;
      EXPECT_TRUE(cq.Next(&tag, &ok));
      return ok;
    };
    auto call = stub.PrepareCall(&context, path, &cq);
    call->StartCall(nullptr);
    next();
    call->WritesDone(nullptr);
    next();
    grpc::ByteBuffer reply;
    call->Read(&reply, nullptr);
    EXPECT_FALSE(next()) << path << ": no reply to no request";
    grpc::Status status;
    call->Finish(&status, nullptr);
    next();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << path << status.error_message();
  }
  EXPECT_EQ(impl_->count.load(), 0) << "no handler ran";
  ExpectStillServing();
}

TEST_F(BadInputTest, GrpcUndecodableRequestIsInvalidArgument) {
  internal::MethodBinding echo = *internal::BindingOf<rich::RichService>().Find("Echo");
  auto channel = MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()));
  try {
    channel->Call(echo, std::string("\x0a\xff\xff\x03", 4), CallOptions{});
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
  }
  ExpectStillServing();
}

// One behaviour per protocol choice: switching a client from gRPC to Thrift changes no result.
class SameOnBothWiresTest : public BadInputTest, public ::testing::WithParamInterface<Protocol> {
 protected:
  std::shared_ptr<rich::RichService> Client(ChannelOptions options = {}) {
    int port = GetParam() == Protocol::kGrpc ? server_->grpc_port() : server_->thrift_port();
    return MakeClient<rich::RichService>(
        MakeChannel("127.0.0.1:" + std::to_string(port), GetParam(), options));
  }
};

TEST_P(SameOnBothWiresTest, InvalidUtf8InAStringIsInvalidArgument) {
  try {
    Client()->Notify(1, std::string("caf\xc3", 4), rich::Color::kRed);
    FAIL() << "a string that is not UTF-8 was accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument) << e.what();
    EXPECT_NE(e.message().find("rich.NotifyRequest.message: string field holds invalid UTF-8"),
              std::string::npos)
        << e.message();
  }
  ExpectStillServing();
}

TEST_P(SameOnBothWiresTest, DecodeErrorsNameTheRequestAsTheProtoDoes) {
  rich::Scalars scalars;
  scalars.text = std::string("\xff", 1);
  try {
    Client()->EchoScalars(scalars);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    // A declared struct as the request: named by the struct, on both wires.
    EXPECT_NE(e.message().find("rich.Scalars.text: string field holds invalid UTF-8"),
              std::string::npos)
        << e.message();
  }
}

TEST_P(SameOnBothWiresTest, RequestOverTheServersLimitIsResourceExhausted) {
  rich::EchoRequest big;  // the client allows 16 MiB; this server 64 KiB
  big.value.stamp.zone.assign(100 * 1024, 'x');
  try {
    Client()->Echo(big);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
  }
  ExpectStillServing();
  // The connection the oversized call used serves the next call too.
  EXPECT_EQ(Client()->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
}

TEST_P(SameOnBothWiresTest, RequestOverTheClientsLimitIsResourceExhaustedAndNotSent) {
  ChannelOptions options;
  options.max_message_bytes = 1024;
  rich::EchoRequest big;
  big.value.stamp.zone.assign(4096, 'x');
  auto client = Client(options);
  try {
    client->Echo(big);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
  }
  EXPECT_EQ(client->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
}

INSTANTIATE_TEST_SUITE_P(GrpcAndThrift, SameOnBothWiresTest,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) {
                           return std::string(param_info.param == Protocol::kGrpc ? "Grpc"
                                                                                  : "Thrift");
                         });

TEST_F(BadInputTest, OnewayMessageIsRefusedAndNotRun) {
  // rpcboot methods all answer; a ONEWAY message for one must not run it silently.
  int fd = Connect();
  std::string args = ThriftEncode(std::tuple<int64_t, std::string, rich::Color>(5, "x", {}),
                                  WireFormat::kThriftCompact);
  std::string reply = RoundTrip(fd, internal::ThriftMessage(WireFormat::kThriftCompact, "Notify",
                                                            internal::kThriftOneway, 9, args));
  internal::ThriftMessageHeader header;
  ASSERT_TRUE(internal::ParseThriftHeader(reply, &header).ok());
  EXPECT_EQ(header.type, internal::kThriftException);
  EXPECT_EQ(header.seqid, 9);
  auto [type, message] = internal::ReadThriftApplicationException(
      header.format, std::string_view(reply).substr(header.body_offset));
  EXPECT_EQ(type, internal::kThriftInvalidMessageType);
  EXPECT_EQ(message, "rpcboot: methods are not oneway");
  ::close(fd);
  EXPECT_EQ(impl_->notified.load(), 0) << "the handler did not run";
  ExpectStillServing();
}

TEST_F(BadInputTest, PeerMethodNamesAreEscapedAndBoundedInTheReply) {
  int fd = Connect();
  std::string name = "Forged\nI 2026 rpcboot: " + std::string(60000, 'x');
  std::string reply = RoundTrip(
      fd, internal::ThriftMessage(WireFormat::kThriftCompact, name, internal::kThriftCall, 4, ""));
  internal::ThriftMessageHeader header;
  ASSERT_TRUE(internal::ParseThriftHeader(reply, &header).ok());
  auto [type, message] = internal::ReadThriftApplicationException(
      header.format, std::string_view(reply).substr(header.body_offset));
  EXPECT_EQ(type, internal::kThriftUnknownMethod);
  EXPECT_EQ(message.find('\n'), std::string::npos) << "no raw newline from the peer";
  EXPECT_NE(message.find("Forged\\x0aI 2026"), std::string::npos) << message;
  EXPECT_LT(message.size(), 300u) << "the peer's 60 kB name is not echoed";
  ::close(fd);
  ExpectStillServing();
}

// THeader info headers that are call metadata are kept up to 16 KiB (the native gRPC server's
// bound on request headers); past it the call is answered RESOURCE_EXHAUSTED without running,
// and the connection serves on. Keys are lowercased; what is not a metadata key is left out.
TEST_F(BadInputTest, THeaderMetadataPastItsLimitIsRefusedAndTheRestReachesTheHandler) {
  int fd = Connect();
  internal::THeaderFrame theader;
  theader.seqid = 7;
  for (int i = 0; i < 20; ++i) {
    theader.headers.emplace_back("x-part-" + std::to_string(i), std::string(1000, 'p'));
  }
  std::string message = internal::ThriftMessage(WireFormat::kThriftCompact, "Count",
                                                internal::kThriftCall, 7, std::string(1, '\0'));
  std::string reply = RoundTrip(fd, internal::WrapTHeader(theader, message));
  ASSERT_TRUE(internal::IsTHeaderFrame(reply));
  EXPECT_NE(reply.find("THeader metadata of 20810 bytes exceeds 16384"), std::string::npos)
      << reply;
  EXPECT_EQ(impl_->count.load(), 0) << "the handler did not run";

  theader.headers = {{"X-Tenant", "acme"}, {"not a key", "x"}, {"grpc-timeout", "1S"}};
  std::string words;  // Histogram(list<string> words = []): field 1, an empty list
  words += '\x19';    // compact: field 1, type list
  words += '\x08';    // 0 elements of binary
  words += '\0';      // stop
  message = internal::ThriftMessage(WireFormat::kThriftCompact, "Histogram", internal::kThriftCall,
                                    8, words);
  theader.seqid = 8;
  reply = RoundTrip(fd, internal::WrapTHeader(theader, message));
  ASSERT_TRUE(internal::IsTHeaderFrame(reply));
  EXPECT_NE(reply.find("metadata:x-tenant=acme"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("not a key"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("grpc-timeout"), std::string::npos) << reply;
  ::close(fd);
  ExpectStillServing();
}

TEST_F(BadInputTest, AnAbsurdTHeaderDeadlineIsNoDeadline) {
  // 10^13 ms would overflow a time_point into the past: clamped, the call runs.
  int fd = Connect();
  internal::THeaderFrame theader;
  theader.seqid = 5;
  theader.headers.emplace_back(std::string(internal::kTimeoutHeader), "10000000000000");
  std::string message = internal::ThriftMessage(WireFormat::kThriftCompact, "Count",
                                                internal::kThriftCall, 5, std::string(1, '\0'));
  std::string reply = RoundTrip(fd, internal::WrapTHeader(theader, message));
  ASSERT_TRUE(internal::IsTHeaderFrame(reply));
  internal::THeaderFrame back;
  ASSERT_TRUE(internal::ParseTHeader(reply, &back).ok());
  internal::ThriftMessageHeader header;
  std::string_view inner = std::string_view(reply).substr(back.payload_offset);
  ASSERT_TRUE(internal::ParseThriftHeader(inner, &header).ok());
  EXPECT_EQ(header.type, internal::kThriftReply);
  EXPECT_EQ(impl_->count.load(), 1) << "the handler ran";
  ::close(fd);
}

}  // namespace
}  // namespace rpcboot
