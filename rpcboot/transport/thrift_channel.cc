// Thrift client channel: framed messages over a pool of TCP connections to one endpoint. A call
// takes an idle connection (or opens one), writes its frame, waits for the reply until the
// call's deadline, and returns the connection to the pool; a connection that failed or timed out
// is closed instead, because a late reply would confuse the next call.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/socket.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/transport/thrift_wire.h"

namespace rpcboot {
namespace {

using internal::IoError;

class ThriftChannel final : public Channel {
 public:
  ThriftChannel(std::string host, std::string port, ChannelOptions options)
      : host_(std::move(host)), port_(std::move(port)), options_(options) {}

  ~ThriftChannel() override {
    for (const Connection& conn : idle_) ::close(conn.fd);
  }

  WireFormat format() const override { return options_.thrift_format; }

  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& call_options) override {
    auto timeout = options_.TimeoutFor(call_options);
    if (timeout.count() <= 0) {
      throw RpcError(StatusCode::kDeadlineExceeded,
                     "deadline of the call being served has passed; " + method.name + " not sent");
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int32_t seqid = next_seqid_.fetch_add(1);
    std::string message = internal::ThriftMessage(options_.thrift_format, method.name,
                                                  internal::kThriftCall, seqid, request);
    std::string frame(4, '\0');
    if (options_.thrift_header) {
      internal::THeaderFrame header;
      header.seqid = seqid;
      header.format = options_.thrift_format;
      header.headers.emplace_back(std::string(internal::kTimeoutHeader),
                                  std::to_string(timeout.count()));
      frame += internal::WrapTHeader(header, message);
    } else {
      frame += message;
    }
    internal::EncodeFrameLength(static_cast<uint32_t>(frame.size() - 4), frame.data());
    // The same limit, and the same answer, as a gRPC channel's: nothing is sent.
    if (frame.size() - 4 > options_.max_message_bytes) {
      throw RpcError(
          StatusCode::kResourceExhausted,
          absl::StrCat("Thrift: request of ", frame.size() - 4, " bytes exceeds the limit of ",
                       options_.max_message_bytes, " (max_message_bytes)"));
    }
    Connection conn = TakeConnection(deadline);
    // Reads and writes block with the call's timeout as SO_RCVTIMEO/SO_SNDTIMEO: one system
    // call per read in the common case. The timeout bounds each read, so a reply that trickles
    // in can take longer than the deadline; a silent server cannot.
    if (conn.timeout != timeout) {
      internal::SetSocketTimeouts(conn.fd, timeout);
      conn.timeout = timeout;
    }
    IoError error = IoError::kNone;
    if (!internal::SendFull(conn.fd, frame, &error)) {
      ::close(conn.fd);
      // Not every byte went out: the server cannot have read a whole request.
      throw internal::UnsentError(absl::StrCat("Thrift: cannot send to ", Endpoint()));
    }
    char reply_prefix[4];
    if (!internal::RecvFull(conn.fd, reply_prefix, 4, &error)) Fail(conn.fd, error, timeout);
    uint32_t length = internal::DecodeFrameLength(reply_prefix);
    if (length == 0 || length > options_.max_message_bytes) {
      ::close(conn.fd);
      throw RpcError(StatusCode::kResourceExhausted,
                     absl::StrCat("Thrift: reply of ", length, " bytes exceeds the limit of ",
                                  options_.max_message_bytes));
    }
    std::string reply(length, '\0');
    if (!internal::RecvFull(conn.fd, reply.data(), length, &error)) Fail(conn.fd, error, timeout);
    std::size_t message_offset = 0;
    if (internal::IsTHeaderFrame(reply)) {
      internal::THeaderFrame theader;
      if (absl::Status s = internal::ParseTHeader(reply, &theader); !s.ok()) {
        ::close(conn.fd);
        throw RpcError(StatusCode::kInternal,
                       "Thrift: bad reply from " + Endpoint() + ": " + std::string(s.message()));
      }
      message_offset = theader.payload_offset;
    }
    std::string_view reply_message = std::string_view(reply).substr(message_offset);
    internal::ThriftMessageHeader header;
    if (absl::Status s = internal::ParseThriftHeader(reply_message, &header); !s.ok()) {
      ::close(conn.fd);
      throw RpcError(StatusCode::kInternal,
                     "Thrift: bad reply from " + Endpoint() + ": " + std::string(s.message()));
    }
    if (header.seqid != seqid) {
      ::close(conn.fd);
      throw RpcError(StatusCode::kInternal, "Thrift: reply out of sequence from " + Endpoint());
    }
    GiveBack(conn);
    std::string_view body = reply_message.substr(header.body_offset);
    if (header.type == internal::kThriftException) {
      auto [type, what] = internal::ReadThriftApplicationException(header.format, body);
      // The server does not have the method.
      StatusCode code =
          (type == internal::kThriftUnknownMethod || type == internal::kThriftWrongMethodName)
              ? StatusCode::kUnimplemented
              : StatusCode::kInternal;
      throw RpcError(code, what);
    }
    return std::string(body);
  }

 private:
  struct Connection {
    int fd = -1;
    std::chrono::milliseconds timeout{0};  // the SO_RCVTIMEO last set
    std::chrono::steady_clock::time_point last_used;
  };

  std::string Endpoint() const { return host_ + ":" + port_; }

  [[noreturn]] void Fail(int fd, IoError error, std::chrono::milliseconds timeout) {
    ::close(fd);
    if (error == IoError::kTimeout) {
      throw RpcError(
          StatusCode::kDeadlineExceeded,
          absl::StrCat("Thrift: no reply from ", Endpoint(), " within ", timeout.count(), " ms"));
    }
    throw RpcError(StatusCode::kUnavailable,
                   "Thrift: connection to " + Endpoint() + " lost during the call");
  }

  Connection TakeConnection(std::chrono::steady_clock::time_point deadline) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (!idle_.empty()) {
        Connection conn = idle_.back();
        idle_.pop_back();
        // A connection idle for a while may have been closed by the server (idle timeout,
        // restart); it then reads as readable. Recently used ones skip the check.
        if (std::chrono::steady_clock::now() - conn.last_used < std::chrono::seconds(1))
          return conn;
        pollfd p{conn.fd, POLLIN, 0};
        if (::poll(&p, 1, 0) == 0) return conn;
        ::close(conn.fd);
      }
    }
    Connection conn;
    conn.fd = Connect(deadline);
    return conn;
  }

  void GiveBack(Connection conn) {
    conn.last_used = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < 64) {
      idle_.push_back(conn);
    } else {
      ::close(conn.fd);
    }
  }

  int Connect(std::chrono::steady_clock::time_point deadline) {
    internal::ConnectError error;
    int fd = internal::Connect(host_, port_, deadline, &error);
    if (fd >= 0) return fd;
    if (error.kind == internal::ConnectError::Kind::kTimeout) {
      throw RpcError(StatusCode::kDeadlineExceeded, "Thrift: " + error.message);
    }
    throw internal::UnsentError("Thrift: " + error.message);
  }

  std::string host_;
  std::string port_;
  ChannelOptions options_;
  std::atomic<int32_t> next_seqid_{1};
  std::mutex mu_;
  std::vector<Connection> idle_;
};

}  // namespace

std::shared_ptr<Channel> MakeThriftChannel(const std::string& host_port, ChannelOptions options) {
  std::size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 >= host_port.size()) {
    throw RpcError(StatusCode::kInvalidArgument,
                   "Thrift endpoint '" + host_port + "' is not host:port");
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return std::make_shared<ThriftChannel>(host, host_port.substr(colon + 1), options);
}

}  // namespace rpcboot
