// Thrift client channel: framed messages over a pool of TCP connections to one endpoint. A call
// takes an idle connection (or opens one), writes its frame, waits for the reply until the
// call's deadline, and returns the connection to the pool; a connection that failed or timed out
// is closed instead, because a late reply would confuse the next call. With options.tls, each
// connection is a TLS session (OpenSSL), the server's certificate verified for the host called.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/client_connection.h"
#include "rpcboot/internal/grpc_compression.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/transport/thrift_wire.h"

namespace rpcboot {
namespace {

using internal::IoError;
using internal::TlsContext;

// A reply is read this much at a time, its buffer grown as the bytes arrive.
constexpr std::size_t kReplyChunk = 64 * 1024;

class ThriftChannel final : public Channel {
 public:
  ThriftChannel(internal::ClientEndpoint endpoint, ChannelOptions options, TlsContext tls)
      : endpoint_(std::move(endpoint)),
        options_(std::move(options)),
        tls_(std::move(tls)),
        multiplexed_(options_.thrift_multiplexed) {}

  ~ThriftChannel() override {
    for (Connection& conn : idle_) CloseConnection(conn);
  }

  WireFormat format() const override { return options_.thrift_format; }

  // The plain message name first ("GetShop": what a stock server with one processor knows). A
  // server whose services share the name (or that knows only multiplexed names) answers
  // "unknown method" without running anything; the call then goes again by its multiplexed name
  // ("shop.ShopService:GetShop"), which this channel uses from then on.
  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& call_options) override {
    if (call_options.reply_metadata != nullptr) call_options.reply_metadata->clear();
    const auto timeout = internal::CallTimeout(options_, call_options, method.name);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const bool multiplexed = multiplexed_.load(std::memory_order_relaxed);
    std::string unknown;
    std::optional<std::string> reply = Exchange(multiplexed ? MultiplexedName(method) : method.name,
                                                request, call_options, timeout, &unknown);
    if (!reply && !multiplexed) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        throw RpcError(StatusCode::kDeadlineExceeded,
                       "Thrift: " + Endpoint() + " does not know '" + method.name +
                           "' by its plain name, and the deadline passed before it was sent by "
                           "its multiplexed name");
      }
      reply = Exchange(MultiplexedName(method), request, call_options, left, &unknown);
      if (reply) multiplexed_.store(true, std::memory_order_relaxed);
    }
    if (!reply) throw RpcError(StatusCode::kUnimplemented, unknown);
    return *std::move(reply);
  }

 private:
  // "/shop.ShopService/GetShop" -> "shop.ShopService:GetShop".
  static std::string MultiplexedName(const internal::MethodBinding& method) {
    std::string name = method.grpc_path.substr(1);
    std::size_t slash = name.rfind('/');
    if (slash != std::string::npos) name[slash] = ':';
    return name;
  }

  // A reply's message in THeader's zlib transform, inflated into *out up to max_message_bytes;
  // another transform, or bytes that do not inflate, fail the call (and close the connection).
  void InflateReply(internal::ClientConnection& conn, const internal::THeaderFrame& theader,
                    std::string_view payload, std::string* out) {
    if (theader.transforms.size() != 1 || theader.transforms.front() != internal::kTHeaderZlib) {
      CloseConnection(conn);
      throw RpcError(StatusCode::kInternal,
                     absl::StrCat("Thrift: reply from ", Endpoint(), " has THeader transform(s) ",
                                  absl::StrJoin(theader.transforms, ","),
                                  ", which this client cannot read (it reads zlib, 1)"));
    }
    internal::InflateError error = internal::InflateMessage(
        internal::GrpcCodec::kDeflate, payload, options_.max_message_bytes,
        [](std::size_t) { return true; }, "", out);
    if (!error.ok()) {
      CloseConnection(conn);
      throw RpcError(error.code, "Thrift: reply from " + Endpoint() + ": " + error.message);
    }
  }

  // One call by message `name`. nullopt: the server answered "unknown method" (nothing ran
  // there), saying `unknown`.
  std::optional<std::string> Exchange(const std::string& name, std::string_view request,
                                      const CallOptions& call_options,
                                      std::chrono::milliseconds timeout, std::string* unknown) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int32_t seqid = next_seqid_.fetch_add(1);
    std::string message = internal::ThriftMessage(options_.thrift_format, name,
                                                  internal::kThriftCall, seqid, request);
    std::string frame(4, '\0');
    const bool compress = options_.thrift_compression == ThriftCompression::kZlib &&
                          message.size() >= internal::kCompressRequestsFrom;
    if (options_.thrift_header || !options_.bearer_token.empty() ||
        !call_options.metadata.empty() || compress) {
      internal::THeaderFrame header;
      header.seqid = seqid;
      header.format = options_.thrift_format;
      if (compress) header.transforms = {internal::kTHeaderZlib};
      header.headers.emplace_back(std::string(internal::kTimeoutHeader),
                                  std::to_string(timeout.count()));
      if (!options_.bearer_token.empty()) {
        header.headers.emplace_back(std::string(internal::kAuthorizationHeader),
                                    "Bearer " + options_.bearer_token);
      }
      // Trace context travels only in THeader frames: a plain framed server has nowhere to
      // read it from.
      if (!call_options.traceparent.empty()) {
        header.headers.emplace_back(std::string(internal::kTraceparentHeader),
                                    call_options.traceparent);
        if (!call_options.tracestate.empty())
          header.headers.emplace_back(std::string(internal::kTracestateHeader),
                                      call_options.tracestate);
      }
      if (call_options.shadow)
        header.headers.emplace_back(std::string(internal::kShadowHeader), "1");
      header.headers.insert(header.headers.end(), call_options.metadata.begin(),
                            call_options.metadata.end());
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
    internal::SetClientTimeout(conn, timeout);
    // Cancelled from another thread (hedging): the socket is shut down; the connection is then
    // closed, never reused.
    internal::CancelScope cancel_scope(call_options.cancellation.get(), conn.fd);
    IoError error = IoError::kNone;
    if (!Send(conn, frame, &error)) {
      CloseConnection(conn);
      // Not every byte went out: the server cannot have read a whole request.
      throw internal::UnsentError(absl::StrCat("Thrift: cannot send to ", Endpoint()));
    }
    char reply_prefix[4];
    if (!Recv(conn, reply_prefix, 4, &error)) Fail(conn, error, timeout);
    uint32_t length = internal::DecodeFrameLength(reply_prefix);
    if (length > options_.max_message_bytes &&
        internal::LooksLikeTls(std::string_view(reply_prefix, 4))) {
      CloseConnection(conn);
      throw RpcError(StatusCode::kUnavailable,
                     "Thrift: " + Endpoint() +
                         " answered in TLS: its port requires TLS, and this client has TLS off "
                         "(ChannelOptions::tls, clients.<service>.tls.*)");
    }
    if (length == 0 || length > options_.max_message_bytes) {
      CloseConnection(conn);
      throw RpcError(StatusCode::kResourceExhausted,
                     absl::StrCat("Thrift: reply of ", length, " bytes exceeds the limit of ",
                                  options_.max_message_bytes));
    }
    // The reply grows as its bytes arrive: the length the server declared is only a limit, so a
    // server that declares the limit and sends a byte costs the caller a chunk, not the limit.
    std::string reply;
    for (std::size_t got = 0; got < length;) {
      const std::size_t chunk = std::min<std::size_t>(length - got, kReplyChunk);
      reply.resize(got + chunk);
      if (!Recv(conn, reply.data() + got, chunk, &error)) Fail(conn, error, timeout);
      got += chunk;
    }
    std::size_t message_offset = 0;
    std::string inflated;  // a compressed reply's message
    if (internal::IsTHeaderFrame(reply)) {
      internal::THeaderFrame theader;
      internal::THeaderMetadata metadata;  // what the handler added to the reply
      if (absl::Status s =
              internal::ParseTHeader(reply, &theader, &internal::NoInfoHeaders,
                                     call_options.reply_metadata != nullptr ? &metadata : nullptr);
          !s.ok()) {
        CloseConnection(conn);
        throw RpcError(StatusCode::kInternal,
                       "Thrift: bad reply from " + Endpoint() + ": " + std::string(s.message()));
      }
      message_offset = theader.payload_offset;
      if (!theader.transforms.empty()) {
        InflateReply(conn, theader, std::string_view(reply).substr(message_offset), &inflated);
        reply = std::move(inflated);
        message_offset = 0;
      }
      if (call_options.reply_metadata != nullptr) {
        *call_options.reply_metadata = std::move(metadata.entries);
      }
    }
    std::string_view reply_message = std::string_view(reply).substr(message_offset);
    internal::ThriftMessageHeader header;
    if (absl::Status s = internal::ParseThriftHeader(reply_message, &header); !s.ok()) {
      CloseConnection(conn);
      throw RpcError(StatusCode::kInternal,
                     "Thrift: bad reply from " + Endpoint() + ": " + std::string(s.message()));
    }
    if (header.seqid != seqid) {
      CloseConnection(conn);
      throw RpcError(StatusCode::kInternal, "Thrift: reply out of sequence from " + Endpoint());
    }
    if (cancel_scope.Finish()) {
      CloseConnection(conn);  // cancelled as it ended: its socket may be shut down
    } else {
      GiveBack(conn);  // nothing can cancel it any more
    }
    std::string_view body = reply_message.substr(header.body_offset);
    if (header.type == internal::kThriftException) {
      auto [type, what] = internal::ReadThriftApplicationException(header.format, body);
      if (type == internal::kThriftUnknownMethod) {  // the server does not have it by this name
        *unknown = what;
        return std::nullopt;
      }
      throw RpcError(type == internal::kThriftWrongMethodName ? StatusCode::kUnimplemented
                                                              : StatusCode::kInternal,
                     what);
    }
    // An error the server answered inside the result struct: thrown here, so that channels
    // above (outlier detection, circuit, retries) see the call's status as on gRPC.
    StatusCode error_code;
    std::string error_message;
    if (internal::ThriftResultError(header.format, body, &error_code, &error_message)) {
      throw RpcError(error_code, std::move(error_message));
    }
    return std::string(body);
  }

  using Connection = internal::ClientConnection;

  std::string Endpoint() const { return endpoint_.Name(); }

  static void CloseConnection(Connection& conn) { internal::CloseClientConnection(conn); }
  static bool Send(Connection& conn, std::string_view data, IoError* error) {
    return internal::SendAll(conn, data, error);
  }
  static bool Recv(Connection& conn, char* out, std::size_t n, IoError* error) {
    return internal::RecvAll(conn, out, n, error);
  }

  [[noreturn]] void Fail(Connection& conn, IoError error, std::chrono::milliseconds timeout) {
    std::string tls_error = std::move(conn.tls_error);
    CloseConnection(conn);
    if (!tls_error.empty()) {
      throw RpcError(StatusCode::kUnavailable,
                     "Thrift: TLS with " + Endpoint() + " failed during the call: " + tls_error);
    }
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
        if (internal::LooksIdle(conn)) return conn;
        CloseConnection(conn);
      }
    }
    return Connect(deadline);
  }

  void GiveBack(Connection conn) {
    conn.last_used = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < 64) {
      idle_.push_back(conn);
    } else {
      CloseConnection(conn);
    }
  }

  Connection Connect(std::chrono::steady_clock::time_point deadline) {
    return internal::ConnectClient(endpoint_, deadline);
  }

  internal::ClientEndpoint endpoint_;
  ChannelOptions options_;
  TlsContext tls_;  // null: plaintext
  std::atomic<int32_t> next_seqid_{1};
  // The server knows this channel's methods only by their multiplexed names (see Call).
  std::atomic<bool> multiplexed_{false};
  std::mutex mu_;
  std::vector<Connection> idle_;
};

}  // namespace

std::shared_ptr<Channel> MakeThriftChannel(const std::string& host_port, ChannelOptions options) {
  internal::TlsContext tls;
  internal::ClientEndpoint endpoint =
      internal::MakeClientEndpoint("Thrift", host_port, options.tls, &tls);
  return std::make_shared<ThriftChannel>(std::move(endpoint), std::move(options), std::move(tls));
}

}  // namespace rpcboot
