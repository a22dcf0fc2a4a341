// Native gRPC client channel: gRPC's HTTP/2 wire (framed by nghttp2) over a pool of rpcboot's own
// connections, each call on the caller's thread. A call takes an idle connection (or opens one),
// sends its stream on it, reads until the stream closes, and returns the connection to the pool:
// no other thread takes part, so a reply never waits for a wake-up on another CPU, which is what
// a blocking call through gRPC's C++ library pays twice (its I/O runs on gRPC's own threads).
// A connection carries one call at a time; concurrent callers use as many connections.
//
// What the reply carries decides the status, as gRPC's own clients read it: grpc-status and
// grpc-message (percent-decoded) in the trailers, or in the headers of a trailers-only reply;
// without them, the HTTP status by gRPC's mapping. A stream the server refused (REFUSED_STREAM,
// or above a GOAWAY's last stream) never ran, and may be retried elsewhere whatever the method.
// When that happens on a pooled connection (the server went away while it sat idle, and its GOAWAY
// or its close crossed the new stream), the call is sent once more on a new connection, as gRPC's
// transparent retry does; on a new connection it is the caller's to retry.
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/client_connection.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/internal/unsent_error.h"

namespace rpcboot {
namespace {

using internal::IoError;

// A read's buffer, on the calling thread's stack (handler threads call through channels too).
constexpr std::size_t kReadChunk = 16 * 1024;
// Reply headers and trailers together; gRPC's own default hard limit is 16 KiB.
constexpr std::size_t kMaxReplyHeaderBytes = 64 * 1024;
constexpr std::size_t kMaxIdleConnections = 64;

// "%E2%82%AC" -> the bytes; anything that is not a well-formed escape stays as it is.
std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int high = hex(in[i + 1]), low = hex(in[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// gRPC's mapping of an HTTP status, for a reply that carries no grpc-status.
StatusCode FromHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
      return StatusCode::kInternal;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kUnknown;
  }
}

// "100m": a grpc-timeout value (at most 8 digits, in the finest unit that fits).
std::string GrpcTimeout(std::chrono::milliseconds timeout) {
  int64_t ms = std::max<int64_t>(timeout.count(), 1);
  if (ms < 100000000) return absl::StrCat(ms, "m");
  int64_t s = (ms + 999) / 1000;
  if (s < 100000000) return absl::StrCat(s, "S");
  return absl::StrCat(std::min<int64_t>((s + 59) / 60, 99999999), "M");
}

// What one call's stream sent and received.
struct Stream {
  int32_t id = 0;
  // The request: the 5-byte gRPC message prefix, then the message, fed to nghttp2 as its window
  // allows.
  char prefix[5] = {};
  std::string_view request;
  std::size_t sent = 0;
  // The reply.
  int http_status = 0;
  bool has_grpc_status = false;
  int grpc_status = 0;
  std::string grpc_message;
  std::string grpc_encoding;
  std::string content_type;
  std::size_t header_bytes = 0;
  char reply_prefix[5] = {};
  std::size_t reply_prefix_got = 0;
  std::size_t reply_length = 0;
  bool reply_compressed = false;
  bool in_message = false;  // its prefix read, its bytes still coming
  std::string reply;
  int replies = 0;  // messages complete
  bool closed = false;
  uint32_t reset_code = 0;  // the HTTP/2 error code it closed with (0: none)
  // A reply this client refuses (too large, malformed): the call fails with it.
  StatusCode refused_code = StatusCode::kOk;
  std::string refused;
};

struct Connection {
  internal::ClientConnection io;
  nghttp2_session* session = nullptr;
  Stream* stream = nullptr;  // the call in progress
  bool goaway = false;       // the server will take no new stream on it
  bool heard = false;        // the server has sent something on it
  bool used = false;         // a stream has been started on it
  // What nghttp2 found against HTTP/2 in what the server sent (it then reset the stream or ended
  // the connection); empty while all is well.
  std::string broken;
  std::size_t max_message_bytes = 0;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (session != nullptr) nghttp2_session_del(session);
    internal::CloseClientConnection(io);
  }
};

int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
             const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  Stream* stream = conn->stream;
  if (stream == nullptr || frame->hd.stream_id != stream->id) return 0;
  stream->header_bytes += namelen + valuelen + 32;
  if (stream->header_bytes > kMaxReplyHeaderBytes) {
    stream->refused_code = StatusCode::kResourceExhausted;
    stream->refused = absl::StrCat("gRPC: reply headers over ", kMaxReplyHeaderBytes, " bytes");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  std::string_view key(reinterpret_cast<const char*>(name), namelen);
  std::string_view text(reinterpret_cast<const char*>(value), valuelen);
  absl::string_view number(text.data(), text.size());
  if (key == ":status") {
    int status = 0;
    if (absl::SimpleAtoi(number, &status)) stream->http_status = status;
  } else if (key == "grpc-status") {
    int status = 0;
    if (!absl::SimpleAtoi(number, &status) || status < 0 || status > 16) {
      stream->refused_code = StatusCode::kInternal;
      stream->refused = absl::StrCat("gRPC: reply with a bad grpc-status '", number, "'");
      return 0;
    }
    stream->has_grpc_status = true;
    stream->grpc_status = status;
  } else if (key == "grpc-message") {
    stream->grpc_message = PercentDecode(text);
  } else if (key == "grpc-encoding") {
    stream->grpc_encoding = std::string(text);
  } else if (key == "content-type") {
    stream->content_type = std::string(text);
  }
  return 0;
}

int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
           void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  Stream* stream = conn->stream;
  if (stream == nullptr || stream_id != stream->id) return 0;
  const char* bytes = reinterpret_cast<const char*>(data);
  while (len > 0) {
    if (!stream->in_message) {
      std::size_t take = std::min(len, 5 - stream->reply_prefix_got);
      std::memcpy(stream->reply_prefix + stream->reply_prefix_got, bytes, take);
      stream->reply_prefix_got += take;
      bytes += take;
      len -= take;
      if (stream->reply_prefix_got < 5) return 0;
      if (stream->replies > 0) {
        stream->refused_code = StatusCode::kInternal;
        stream->refused = "gRPC: more than one reply message to a unary call";
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      const auto* p = reinterpret_cast<const unsigned char*>(stream->reply_prefix);
      stream->reply_compressed = (p[0] & 1) != 0;
      stream->reply_length = (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) |
                             (std::size_t{p[3]} << 8) | std::size_t{p[4]};
      stream->reply_prefix_got = 0;
      // The declared length is a limit, checked before any of the message is kept; the message
      // then grows as its bytes arrive.
      if (stream->reply_length > conn->max_message_bytes) {
        stream->refused_code = StatusCode::kResourceExhausted;
        stream->refused =
            absl::StrCat("gRPC: reply of ", stream->reply_length, " bytes exceeds the limit of ",
                         conn->max_message_bytes, " (max_message_bytes)");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      stream->in_message = stream->reply_length > 0;
      if (!stream->in_message) ++stream->replies;  // an empty message
      continue;
    }
    std::size_t take = std::min(len, stream->reply_length - stream->reply.size());
    stream->reply.append(bytes, take);
    bytes += take;
    len -= take;
    if (stream->reply.size() == stream->reply_length) {
      stream->in_message = false;
      ++stream->replies;
    }
  }
  return 0;
}

int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  if (conn->stream != nullptr && stream_id == conn->stream->id) {
    conn->stream->closed = true;
    conn->stream->reset_code = error_code;
  }
  return 0;
}

int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<Connection*>(user_data)->goaway = true;
  return 0;
}

int OnInvalidFrame(nghttp2_session*, const nghttp2_frame*, int lib_error, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  if (conn->broken.empty()) conn->broken = nghttp2_strerror(lib_error);
  return 0;
}

// A GOAWAY with an error, or a RST_STREAM of the call's stream, that nghttp2 sends: what the
// server sent broke HTTP/2.
int OnFrameSent(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  if (!conn->broken.empty()) return 0;
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    conn->broken = frame->goaway.opaque_data_len > 0
                       ? std::string(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                                     frame->goaway.opaque_data_len)
                       : nghttp2_http2_strerror(frame->goaway.error_code);
  } else if (frame->hd.type == NGHTTP2_RST_STREAM && conn->stream != nullptr &&
             frame->hd.stream_id == conn->stream->id &&
             conn->stream->refused_code == StatusCode::kOk) {
    conn->broken = nghttp2_http2_strerror(frame->rst_stream.error_code);
  }
  return 0;
}

ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                    nghttp2_data_source* source, void*) {
  auto* stream = static_cast<Stream*>(source->ptr);
  const std::size_t total = 5 + stream->request.size();
  std::size_t n = std::min(length, total - stream->sent);
  std::size_t done = 0;
  if (stream->sent < 5) {
    std::size_t take = std::min(n, 5 - stream->sent);
    std::memcpy(buf, stream->prefix + stream->sent, take);
    done = take;
  }
  if (done < n) {
    std::size_t from = stream->sent + done - 5;
    std::memcpy(buf + done, stream->request.data() + from, n - done);
  }
  stream->sent += n;
  if (stream->sent == total) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

class Callbacks {
 public:
  Callbacks() {
    nghttp2_session_callbacks_new(&callbacks_);
    nghttp2_session_callbacks_set_on_header_callback(callbacks_, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_, OnStreamClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks_, OnFrame);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks_, OnInvalidFrame);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks_, OnFrameSent);
  }
  ~Callbacks() { nghttp2_session_callbacks_del(callbacks_); }
  const nghttp2_session_callbacks* get() const { return callbacks_; }

 private:
  nghttp2_session_callbacks* callbacks_ = nullptr;
};

class NativeGrpcChannel final : public Channel {
 public:
  NativeGrpcChannel(std::string authority, internal::ClientEndpoint endpoint,
                    ChannelOptions options, internal::TlsContext tls)
      : authority_(std::move(authority)),
        options_(std::move(options)),
        tls_(std::move(tls)),
        endpoint_(std::move(endpoint)),
        // The windows let a whole message of the largest size come in one go.
        window_(static_cast<int32_t>(
            std::clamp<std::size_t>(options_.max_message_bytes + 1024, 65535, (1u << 31) - 1))) {}

  ~NativeGrpcChannel() override = default;

  WireFormat format() const override { return WireFormat::kProto; }

  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& call_options) override {
    const auto timeout = internal::CallTimeout(options_, call_options, method.name);
    // The same limit, and the same answer, as a Thrift channel's: nothing is sent.
    if (request.size() > options_.max_message_bytes) {
      throw RpcError(
          StatusCode::kResourceExhausted,
          absl::StrCat("gRPC: request of ", request.size(), " bytes exceeds the limit of ",
                       options_.max_message_bytes, " (max_message_bytes)"));
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string timeout_value = GrpcTimeout(timeout);
    std::vector<nghttp2_nv> headers;
    headers.reserve(12);
    auto add = [&headers](std::string_view name, std::string_view value) {
      headers.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                         reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                         value.size(), NGHTTP2_NV_FLAG_NONE});
    };
    add(":method", "POST");
    add(":scheme", tls_ != nullptr ? "https" : "http");
    add(":path", method.grpc_path);
    add(":authority", authority_);
    add("te", "trailers");
    add("content-type", "application/grpc");
    add("user-agent", "rpcboot-grpc");
    add("grpc-timeout", timeout_value);
    if (!bearer_.empty()) add("authorization", bearer_);
    if (!call_options.traceparent.empty()) {
      add(internal::kTraceparentHeader, call_options.traceparent);
      if (!call_options.tracestate.empty())
        add(internal::kTracestateHeader, call_options.tracestate);
    }
    if (call_options.shadow) add(internal::kShadowHeader, "1");

    // A pooled connection the server has left may take the stream before its GOAWAY or close
    // arrives: nothing ran, and the call goes once more, on a new connection.
    std::optional<std::string> reply =
        Attempt(headers, request, call_options, timeout, deadline, /*fresh=*/false);
    if (!reply) reply = Attempt(headers, request, call_options, timeout, deadline, /*fresh=*/true);
    return *std::move(reply);
  }

 private:
  // One try of a call: its stream on a pooled connection, or on a new one when `fresh`. Nothing
  // when the stream was refused, or could not be sent, on a pooled connection: it did not run.
  std::optional<std::string> Attempt(const std::vector<nghttp2_nv>& headers,
                                     std::string_view request, const CallOptions& call_options,
                                     std::chrono::milliseconds timeout,
                                     std::chrono::steady_clock::time_point deadline, bool fresh) {
    Stream stream;
    stream.request = request;
    stream.prefix[0] = 0;
    for (int i = 0; i < 4; ++i)
      stream.prefix[1 + i] = static_cast<char>((request.size() >> (24 - 8 * i)) & 0xff);
    nghttp2_data_provider body;
    body.source.ptr = &stream;
    body.read_callback = ReadRequest;

    std::unique_ptr<Connection> conn;
    // A connection that can take no new stream (its stream ids are used up, or the server sent
    // GOAWAY) is replaced by a new one; nothing was sent on it.
    for (int attempt = 0;; ++attempt) {
      conn = TakeConnection(deadline, fresh);
      stream.id = nghttp2_submit_request(conn->session, nullptr, headers.data(), headers.size(),
                                         &body, nullptr);
      if (stream.id > 0) break;
      if (attempt > 0) {
        throw internal::UnsentError(absl::StrCat("gRPC: cannot start a stream to ",
                                                 endpoint_.Name(), ": ",
                                                 nghttp2_strerror(stream.id)));
      }
    }
    conn->stream = &stream;
    const bool may_resend = conn->used && !fresh;
    conn->used = true;
    // Reads and writes block with the call's timeout as SO_RCVTIMEO/SO_SNDTIMEO; the deadline is
    // checked after each read too, so a reply that trickles in cannot outlast it.
    internal::SetClientTimeout(conn->io, timeout);
    internal::CancelScope cancel_scope(call_options.cancellation.get(), conn->io.fd);
    // The connection is closed on any failure: a late reply would confuse the next call.
    auto drop = [&] {
      bool cancelled = cancel_scope.Finish();
      conn->stream = nullptr;
      conn.reset();
      return cancelled;
    };
    auto fail = [&](StatusCode code, std::string message) -> RpcError {
      if (drop()) return RpcError(StatusCode::kCancelled, "gRPC: call cancelled");
      return RpcError(code, std::move(message));
    };

    std::string out;
    char in[kReadChunk];
    bool sent_all = false;
    auto broken = [&](const std::string& why) {
      return fail(StatusCode::kInternal,
                  absl::StrCat("gRPC: bad HTTP/2 from ", endpoint_.Name(), ": ", why));
    };
    for (;;) {
      if (!Flush(*conn, &out)) {
        std::string tls_error = std::move(conn->io.tls_error);
        if (!sent_all) {
          const bool cancelled = drop();
          // Not every byte went out: the server cannot have read a whole request.
          if (may_resend && !cancelled) return std::nullopt;
          throw internal::UnsentError(absl::StrCat("gRPC: cannot send to ", endpoint_.Name(),
                                                   tls_error.empty() ? "" : ": ", tls_error));
        }
        throw fail(StatusCode::kUnavailable,
                   "gRPC: connection to " + endpoint_.Name() + " lost during the call");
      }
      if (!conn->broken.empty()) throw broken(conn->broken);
      if (stream.sent == 5 + request.size()) sent_all = true;
      if (stream.closed) break;
      if (nghttp2_session_want_read(conn->session) == 0) throw broken("the session ended");
      std::size_t got = 0;
      IoError error = IoError::kNone;
      if (!internal::RecvSome(conn->io, in, sizeof in, &got, &error)) {
        std::string tls_error = std::move(conn->io.tls_error);
        if (error == IoError::kTimeout) {
          throw fail(StatusCode::kDeadlineExceeded,
                     absl::StrCat("gRPC: no reply from ", endpoint_.Name(), " within ",
                                  timeout.count(), " ms"));
        }
        if (!tls_error.empty()) {
          throw fail(StatusCode::kUnavailable, "gRPC: TLS with " + endpoint_.Name() +
                                                   " failed during the call: " + tls_error);
        }
        if (!conn->heard) {
          // Closed before a byte came: what a TLS port does to a plaintext client, and a
          // server that requires a client certificate to a client without one.
          throw fail(
              StatusCode::kUnavailable,
              "gRPC: " + endpoint_.Name() + " closed the connection before answering" +
                  (tls_ == nullptr ? " (is its port TLS? this client has TLS off: "
                                     "ChannelOptions::tls, clients.<service>.tls.*)"
                                   : " (does it require a client certificate? tls.cert_file)"));
        }
        throw fail(StatusCode::kUnavailable,
                   "gRPC: connection to " + endpoint_.Name() + " lost during the call");
      }
      if (!conn->heard && tls_ == nullptr &&
          internal::LooksLikeTls(std::string_view(in, std::min<std::size_t>(got, 4)))) {
        throw fail(StatusCode::kUnavailable,
                   "gRPC: " + endpoint_.Name() +
                       " answered in TLS: its port requires TLS, and this client has TLS off "
                       "(ChannelOptions::tls, clients.<service>.tls.*)");
      }
      conn->heard = true;
      ssize_t used =
          nghttp2_session_mem_recv(conn->session, reinterpret_cast<const uint8_t*>(in), got);
      if (used < 0) {
        if (stream.refused_code != StatusCode::kOk)
          throw fail(stream.refused_code, std::move(stream.refused));
        throw broken(nghttp2_strerror(static_cast<int>(used)));
      }
      if (!stream.closed && std::chrono::steady_clock::now() >= deadline) {
        throw fail(StatusCode::kDeadlineExceeded,
                   absl::StrCat("gRPC: reply from ", endpoint_.Name(), " not complete within ",
                                timeout.count(), " ms"));
      }
    }
    conn->stream = nullptr;
    const bool cancelled = cancel_scope.Finish();
    if (cancelled) {
      conn.reset();  // cancelled as it ended: its socket may be shut down
    } else if (stream.refused_code == StatusCode::kOk) {
      GiveBack(std::move(conn), &out);
    } else {
      conn.reset();
    }
    if (may_resend && !cancelled && !stream.has_grpc_status &&
        stream.reset_code == NGHTTP2_REFUSED_STREAM) {
      return std::nullopt;
    }
    return Reply(std::move(stream));
  }

  // The call's result from what its closed stream received.
  std::string Reply(Stream stream) const {
    if (stream.refused_code != StatusCode::kOk) throw RpcError(stream.refused_code, stream.refused);
    if (!stream.has_grpc_status) {
      if (stream.reset_code == NGHTTP2_REFUSED_STREAM) {
        throw internal::UnsentError("gRPC: " + endpoint_.Name() + " refused the stream");
      }
      if (stream.reset_code != NGHTTP2_NO_ERROR) {
        StatusCode code =
            stream.reset_code == NGHTTP2_CANCEL                ? StatusCode::kCancelled
            : stream.reset_code == NGHTTP2_ENHANCE_YOUR_CALM   ? StatusCode::kResourceExhausted
            : stream.reset_code == NGHTTP2_INADEQUATE_SECURITY ? StatusCode::kPermissionDenied
                                                               : StatusCode::kInternal;
        throw RpcError(code, absl::StrCat("gRPC: ", endpoint_.Name(), " reset the stream (",
                                          nghttp2_http2_strerror(stream.reset_code), ")"));
      }
      if (stream.http_status != 200) {
        throw RpcError(FromHttpStatus(stream.http_status),
                       absl::StrCat("gRPC: ", endpoint_.Name(), " answered HTTP status ",
                                    stream.http_status, " without a grpc-status"));
      }
      throw RpcError(StatusCode::kInternal,
                     "gRPC: reply from " + endpoint_.Name() + " ended without a grpc-status");
    }
    if (stream.grpc_status != 0) {
      throw RpcError(StatusCodeFromInt(stream.grpc_status), std::move(stream.grpc_message));
    }
    if (stream.content_type.rfind("application/grpc", 0) != 0) {
      throw RpcError(StatusCode::kInternal, "gRPC: reply from " + endpoint_.Name() +
                                                " has content-type '" + stream.content_type +
                                                "', not application/grpc");
    }
    if (stream.replies != 1 || stream.in_message || stream.reply_prefix_got != 0) {
      throw RpcError(StatusCode::kInternal,
                     "gRPC: reply from " + endpoint_.Name() + " has no complete message");
    }
    if (stream.reply_compressed) {
      throw RpcError(StatusCode::kInternal,
                     "gRPC: reply compressed with '" + stream.grpc_encoding +
                         "', which this client did not accept (it accepts identity only)");
    }
    return std::move(stream.reply);
  }

  // Hands nghttp2's pending frames to the socket in one write. False when the write failed.
  static bool Flush(Connection& conn, std::string* out) {
    out->clear();
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(conn.session, &data);
      if (n < 0) return false;
      if (n == 0) break;
      out->append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out->empty()) return true;
    IoError error = IoError::kNone;
    return internal::SendAll(conn.io, *out, &error);
  }

  // An idle connection from the pool, or a new one (always when `fresh`).
  std::unique_ptr<Connection> TakeConnection(std::chrono::steady_clock::time_point deadline,
                                             bool fresh) {
    while (!fresh) {
      std::unique_ptr<Connection> conn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (idle_.empty()) break;
        conn = std::move(idle_.back());
        idle_.pop_back();
      }
      if (internal::LooksIdle(conn->io)) return conn;
      // Something came while it was idle: a PING, SETTINGS, or the server going (GOAWAY, or the
      // connection closed). Read it; keep the connection only if it can take a new stream.
      if (Absorb(*conn)) return conn;
    }
    auto conn = std::make_unique<Connection>();
    conn->io = internal::ConnectClient(endpoint_, deadline);
    conn->max_message_bytes = options_.max_message_bytes;
    if (nghttp2_session_client_new(&conn->session, callbacks_.get(), conn.get()) != 0) {
      throw internal::UnsentError("gRPC: out of memory for a connection to " + endpoint_.Name());
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(window_)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxReplyHeaderBytes},
    };
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 3);
    nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, window_);
    return conn;
  }

  // Reads what is waiting on an idle connection. True when it can still take a stream.
  bool Absorb(Connection& conn) {
    internal::SetClientTimeout(conn.io, std::chrono::milliseconds(100));
    char in[4096];
    std::size_t got = 0;
    IoError error = IoError::kNone;
    if (!internal::RecvSome(conn.io, in, sizeof in, &got, &error)) return false;
    if (nghttp2_session_mem_recv(conn.session, reinterpret_cast<const uint8_t*>(in), got) < 0)
      return false;
    return !conn.goaway && nghttp2_session_want_read(conn.session) != 0 &&
           internal::LooksIdle(conn.io);
  }

  void GiveBack(std::unique_ptr<Connection> conn, std::string* out) {
    // What nghttp2 has to say after the stream (window updates) goes now, not with the next call.
    if (conn->goaway || !Flush(*conn, out) || nghttp2_session_want_read(conn->session) == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
  }

  const std::string authority_;
  const ChannelOptions options_;
  const internal::TlsContext tls_;
  const internal::ClientEndpoint endpoint_;
  const std::string bearer_ =
      options_.bearer_token.empty() ? std::string() : "Bearer " + options_.bearer_token;
  const int32_t window_;
  Callbacks callbacks_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace

std::shared_ptr<Channel> MakeNativeGrpcChannel(const std::string& host_port,
                                               ChannelOptions options) {
  internal::TlsContext tls;
  internal::ClientEndpoint endpoint =
      internal::MakeClientEndpoint("gRPC", host_port, options.tls, &tls);
  endpoint.alpn = "\x02h2";
  return std::make_shared<NativeGrpcChannel>(host_port, std::move(endpoint), std::move(options),
                                             std::move(tls));
}

}  // namespace rpcboot
