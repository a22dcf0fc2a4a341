// Native gRPC client channel: gRPC's HTTP/2 wire (framed by nghttp2) over a pool of rpcboot's own
// connections, each call's I/O on the caller's thread; the channel has no thread of its own. Up
// to kSoloConnections calls in flight, each has a connection to itself: it sends its stream,
// reads until the stream closes, and returns the connection to the pool, so a reply never waits
// for a wake-up on another CPU (what a blocking call through gRPC's C++ library pays twice: its
// I/O runs on gRPC's own threads). Past that, calls share connections as HTTP/2 streams: one of
// the callers on a connection reads it for all of them (leader and followers), so a thousand
// callers do not mean a thousand connections for the server to poll.
//
// What the reply carries decides the status, as gRPC's own clients read it: grpc-status and
// grpc-message (percent-decoded) in the trailers, or in the headers of a trailers-only reply;
// without them, the HTTP status by gRPC's mapping. A stream the server refused (REFUSED_STREAM,
// or above a GOAWAY's last stream) never ran, and may be retried elsewhere whatever the method.
// When that happens on a pooled connection (the server went away while it sat idle, and its GOAWAY
// or its close crossed the new stream), the call is sent once more on a new connection, as gRPC's
// transparent retry does; on a new connection it is the caller's to retry.
//
// Idle connections. A pooled connection nobody uses is read by no call, so once a second one
// thread of the process (IdleSweeper) looks for idle connections with bytes waiting and reads
// them: a PING is answered (gRPC's servers wait up to 20 s for that answer when they shut down
// gracefully, and close a connection that leaves their keepalive PINGs unanswered), a GOAWAY or a
// close drops the connection from the pool before a call picks it. The path of a call is the same
// with or without it.
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/client_connection.h"
#include "rpcboot/internal/grpc_compression.h"
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
// How often IdleSweeper reads the idle connections that have bytes waiting.
constexpr std::chrono::seconds kSweepEvery{1};
// Up to this many connections in use, each call has one to itself; past it, a call joins the
// connection carrying the fewest (below the server's SETTINGS_MAX_CONCURRENT_STREAMS and this
// client's own cap per connection), and a new one opens only when all are full.
constexpr std::size_t kSoloConnections = 32;
constexpr uint32_t kMaxStreamsPerConnection = 100;

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
  char prefix[5] = {};  // its first byte says whether the message is compressed
  std::string_view request;
  std::size_t sent = 0;
  // The reply.
  int http_status = 0;
  bool has_grpc_status = false;
  int grpc_status = 0;
  std::string grpc_message;
  std::string grpc_encoding;
  std::string content_type;
  internal::CallMetadata metadata;  // the reply's (headers and trailers), "-bin" values decoded
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
  // A reply this client refuses (too large, malformed, against HTTP/2), or a stream it leaves
  // (its deadline passed): the call fails with it, and the stream is reset.
  StatusCode refused_code = StatusCode::kOk;
  std::string refused;
  // Its caller waits on it while another caller reads the connection.
  std::condition_variable wake;
};

// One HTTP/2 connection and the calls on it. No thread of its own: one of the callers waiting on
// it reads the socket (the reader) and wakes the others as their streams close; when the reader's
// own stream closes it hands the role to one still waiting. A call alone on its connection (every
// call, up to kSoloConnections in flight) is its own reader and never waits for a wake-up.
struct Connection {
  internal::ClientConnection io;
  nghttp2_session* session = nullptr;
  std::string name;  // host:port, for the messages of callbacks
  std::size_t max_message_bytes = 0;

  // Guarded by mu: the session, the socket, and the fields up to the next comment.
  std::mutex mu;
  std::vector<Stream*> streams;  // the calls on it
  bool reading = false;          // a caller waits for the socket to be readable
  bool heard = false;            // the server has sent something on it
  bool used = false;             // a stream has been started on it
  bool write_failed = false;     // it failed on a write
  // What nghttp2 found against HTTP/2 in what the server sent, outside any one stream (it then
  // ended the connection); empty while all is well.
  std::string broken;
  // Why the connection failed; every call still on it fails with this.
  StatusCode dead_code = StatusCode::kOk;
  std::string dead_message;

  // Read by the channel under its own lock.
  std::atomic<bool> dead{false};
  std::atomic<bool> goaway{false};  // the server will take no new stream on it
  std::atomic<uint32_t> max_streams{kMaxStreamsPerConnection};

  // Guarded by the channel's lock.
  int calls = 0;        // calls that took it and have not given it back
  bool shared = false;  // in the channel's list of connections others may join
  // ChannelOptions::grpc_keepalive_time: since when it has been quiet (back in the pool, or its
  // last PING answered), and when its PING went out (zero: none unanswered). Written by its
  // holder (a call, or the sweeper with the connection out of the pool) and read under the
  // channel's lock while it is idle.
  std::chrono::steady_clock::time_point quiet_since{};
  std::chrono::steady_clock::time_point ping_sent{};

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (session != nullptr) nghttp2_session_del(session);
    internal::CloseClientConnection(io);
  }

  Stream* StreamOf(int32_t stream_id) const {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  }

  // Fails every call still on the connection with `message` (the first failure is the one kept).
  // The socket is shut down, so a reader waiting on it wakes at once; the descriptor stays open
  // until the connection is gone.
  void Fail(StatusCode code, std::string message) {
    if (dead) return;
    dead_code = code;
    dead_message = std::move(message);
    dead = true;
    if (io.fd >= 0) ::shutdown(io.fd, SHUT_RDWR);
    for (Stream* stream : streams) stream->wake.notify_one();
  }
};

// The stream's reply is refused (`code`, `message`) and the stream reset; the connection and its
// other streams go on.
void Refuse(nghttp2_session* session, Stream* stream, StatusCode code, std::string message) {
  if (stream->refused_code != StatusCode::kOk) return;
  stream->refused_code = code;
  stream->refused = std::move(message);
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream->id, NGHTTP2_CANCEL);
}

int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
             size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user_data) {
  Stream* stream = static_cast<Connection*>(user_data)->StreamOf(frame->hd.stream_id);
  if (stream == nullptr || stream->refused_code != StatusCode::kOk) return 0;
  stream->header_bytes += namelen + valuelen + 32;
  if (stream->header_bytes > kMaxReplyHeaderBytes) {
    Refuse(session, stream, StatusCode::kResourceExhausted,
           absl::StrCat("gRPC: reply headers over ", kMaxReplyHeaderBytes, " bytes"));
    return 0;
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
      Refuse(session, stream, StatusCode::kInternal,
             absl::StrCat("gRPC: reply with a bad grpc-status '", number, "'"));
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
  } else if (internal::IsCallMetadataKey(key)) {
    std::string kept;
    if (!internal::IsBinaryMetadataKey(key)) {
      kept = std::string(text);
    } else if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &kept)) {
      Refuse(session, stream, StatusCode::kInternal,
             "gRPC: reply metadata '" + std::string(key) + "' is not base64");
      return 0;
    }
    stream->metadata.emplace_back(std::string(key), std::move(kept));
  }
  return 0;
}

int OnData(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
           void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  Stream* stream = conn->StreamOf(stream_id);
  if (stream == nullptr || stream->refused_code != StatusCode::kOk) return 0;
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
        Refuse(session, stream, StatusCode::kInternal,
               "gRPC: more than one reply message to a unary call");
        return 0;
      }
      const auto* p = reinterpret_cast<const unsigned char*>(stream->reply_prefix);
      stream->reply_compressed = (p[0] & 1) != 0;
      stream->reply_length = (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) |
                             (std::size_t{p[3]} << 8) | std::size_t{p[4]};
      stream->reply_prefix_got = 0;
      // The declared length is a limit, checked before any of the message is kept; the message
      // then grows as its bytes arrive.
      if (stream->reply_length > conn->max_message_bytes) {
        Refuse(session, stream, StatusCode::kResourceExhausted,
               absl::StrCat("gRPC: reply of ", stream->reply_length, " bytes exceeds the limit of ",
                            conn->max_message_bytes, " (max_message_bytes)"));
        return 0;
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
  Stream* stream = static_cast<Connection*>(user_data)->StreamOf(stream_id);
  if (stream != nullptr) {
    stream->closed = true;
    stream->reset_code = error_code;
  }
  return 0;
}

int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  if (frame->hd.type == NGHTTP2_GOAWAY) conn->goaway = true;
  if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
    conn->ping_sent = {};  // answered: the connection is alive
    conn->quiet_since = std::chrono::steady_clock::now();
  }
  return 0;
}

// What the server sent broke HTTP/2: within a stream, that stream fails (nothing, for a stream its
// call has left); otherwise the connection does.
void Broken(Connection* conn, int32_t stream_id, std::string why) {
  if (stream_id == 0) {
    if (conn->broken.empty()) conn->broken = std::move(why);
    return;
  }
  Stream* stream = conn->StreamOf(stream_id);
  if (stream != nullptr && stream->refused_code == StatusCode::kOk) {
    stream->refused_code = StatusCode::kInternal;
    stream->refused = absl::StrCat("gRPC: bad HTTP/2 from ", conn->name, ": ", why);
  }
}

int OnInvalidFrame(nghttp2_session*, const nghttp2_frame* frame, int lib_error, void* user_data) {
  Broken(static_cast<Connection*>(user_data), frame->hd.stream_id, nghttp2_strerror(lib_error));
  return 0;
}

// A GOAWAY with an error, or a RST_STREAM this client did not ask for, that nghttp2 sends: what
// the server sent broke HTTP/2.
int OnFrameSent(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* conn = static_cast<Connection*>(user_data);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    Broken(conn, 0,
           frame->goaway.opaque_data_len > 0
               ? std::string(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                             frame->goaway.opaque_data_len)
               : nghttp2_http2_strerror(frame->goaway.error_code));
  } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
    Broken(conn, frame->hd.stream_id, nghttp2_http2_strerror(frame->rst_stream.error_code));
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
    if (call_options.reply_metadata != nullptr) call_options.reply_metadata->clear();
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
    headers.reserve(12 + call_options.metadata.size());
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
    add("grpc-accept-encoding", internal::kGrpcAcceptedEncodings);
    std::optional<std::string> gzip;
    if (options_.grpc_compression == GrpcCompression::kGzip &&
        request.size() >= internal::kCompressRequestsFrom) {
      gzip = internal::GzipMessage(request);
      if (gzip) add("grpc-encoding", "gzip");
    }
    const std::string_view message = gzip ? std::string_view(*gzip) : request;
    if (!bearer_.empty()) add("authorization", bearer_);
    if (!call_options.traceparent.empty()) {
      add(internal::kTraceparentHeader, call_options.traceparent);
      if (!call_options.tracestate.empty())
        add(internal::kTracestateHeader, call_options.tracestate);
    }
    if (call_options.shadow) add(internal::kShadowHeader, "1");
    // The caller's own metadata; bytes ("-bin" keys) go base64, as gRPC sends them.
    std::vector<std::string> encoded;
    encoded.reserve(call_options.metadata.size());
    for (const auto& [key, value] : call_options.metadata) {
      if (internal::IsBinaryMetadataKey(key)) {
        add(key, encoded.emplace_back(absl::Base64Escape(absl::string_view(value))));
      } else {
        add(key, value);
      }
    }

    // A pooled connection the server has left may take the stream before its GOAWAY or close
    // arrives: nothing ran, and the call goes once more, on a new connection.
    std::optional<std::string> reply =
        Attempt(headers, message, gzip.has_value(), call_options, timeout, deadline,
                /*fresh=*/false);
    if (!reply) {
      reply = Attempt(headers, message, gzip.has_value(), call_options, timeout, deadline,
                      /*fresh=*/true);
    }
    return *std::move(reply);
  }

  // Idle connections, once a second (IdleSweeper): each with bytes waiting leaves the pool while
  // they are read (PINGs answered) and returns unless the server has left it (GOAWAY, closed);
  // with grpc_keepalive_time, one quiet that long is sent a PING, and one whose PING went
  // unanswered past grpc_keepalive_timeout is closed. A call that wants one meanwhile takes
  // another, or a new one.
  void SweepIdle() {
    using Clock = std::chrono::steady_clock;
    const bool keepalive = options_.grpc_keepalive_time.count() > 0;
    std::vector<std::shared_ptr<Connection>> idle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle = idle_;
    }
    if (idle.empty()) return;
    std::vector<pollfd> fds(idle.size());
    for (std::size_t i = 0; i < idle.size(); ++i) fds[i] = pollfd{idle[i]->io.fd, POLLIN, 0};
    const int ready = ::poll(fds.data(), fds.size(), 0);
    if (ready <= 0 && !keepalive) return;
    if (ready < 0) {
      for (pollfd& fd : fds) fd.revents = 0;
    }
    const Clock::time_point now = Clock::now();
    // What each connection taken out needs: its bytes read, a PING, or closing.
    enum class Due { kRead, kPing, kClose };
    std::vector<std::pair<std::shared_ptr<Connection>, Due>> taken;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t i = 0; i < idle.size(); ++i) {
        if (fds[i].revents == 0 && !keepalive) continue;
        auto it = std::find(idle_.begin(), idle_.end(), idle[i]);
        if (it == idle_.end()) continue;  // a call took it meanwhile: the call reads it
        // In the pool, so no one else touches it: its fields are read here under the lock.
        const Connection& conn = **it;
        Due due;
        if (fds[i].revents != 0) {
          due = Due::kRead;
        } else if (conn.ping_sent != Clock::time_point{}) {  // keepalive on (see above)
          if (now - conn.ping_sent < options_.grpc_keepalive_timeout) continue;
          due = Due::kClose;
        } else if (now - conn.quiet_since >= options_.grpc_keepalive_time) {
          due = Due::kPing;
        } else {
          continue;
        }
        taken.emplace_back(std::move(*it), due);
        idle_.erase(it);
      }
    }
    for (auto& [conn, due] : taken) {
      if (due == Due::kClose) {
        internal::Log(LogLevel::kWarning,
                      absl::StrCat("gRPC: ", endpoint_.Name(), " left a keepalive PING unanswered ",
                                   options_.grpc_keepalive_timeout.count(),
                                   " ms: its idle connection is closed"));
        continue;
      }
      if (due == Due::kPing) {
        std::string out;
        nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, nullptr);
        if (!Flush(*conn, &out)) continue;  // the write failed: the connection is gone
        conn->ping_sent = now;
      } else if (!Absorb(*conn)) {
        continue;  // the server left it: it closes here
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
    }
  }

 private:
  // One try of a call: its stream on a connection of the pool, or on a new one when `fresh`.
  // Nothing when the stream was refused, or could not be sent, on a connection used before: it
  // did not run.
  std::optional<std::string> Attempt(const std::vector<nghttp2_nv>& headers,
                                     std::string_view request, bool compressed,
                                     const CallOptions& call_options,
                                     std::chrono::milliseconds timeout,
                                     std::chrono::steady_clock::time_point deadline, bool fresh) {
    Stream stream;
    stream.request = request;
    stream.prefix[0] = compressed ? 1 : 0;
    for (int i = 0; i < 4; ++i)
      stream.prefix[1 + i] = static_cast<char>((request.size() >> (24 - 8 * i)) & 0xff);
    nghttp2_data_provider body;
    body.source.ptr = &stream;
    body.read_callback = ReadRequest;

    // A call that may be cancelled (a hedged attempt) has a connection to itself: the cancel
    // shuts its socket down, which ends a blocked read or write at once.
    const bool exclusive = call_options.cancellation != nullptr;
    std::shared_ptr<Connection> conn;
    std::unique_lock<std::mutex> lock;
    // A connection that can take no new stream (its stream ids are used up, the server sent
    // GOAWAY, or it failed) is left for another, or a new one; nothing was sent on it. Nor is a
    // stream started above the server's SETTINGS_MAX_CONCURRENT_STREAMS: nghttp2 would hold its
    // request back, unsent, past the call.
    for (int attempt = 0;; ++attempt) {
      conn = TakeConnection(deadline, fresh, exclusive);
      lock = std::unique_lock<std::mutex>(conn->mu);
      std::string why = conn->dead_message;
      if (!conn->dead &&
          conn->streams.size() >= nghttp2_session_get_remote_settings(
                                      conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)) {
        why = absl::StrCat("it takes ", conn->streams.size(), " streams at once");
        fresh = true;
      } else if (!conn->dead) {
        stream.id = nghttp2_submit_request(conn->session, nullptr, headers.data(), headers.size(),
                                           &body, &stream);
        if (stream.id > 0) break;
        why = nghttp2_strerror(stream.id);
        conn->goaway = true;  // no stream more on it (its stream ids are used up)
      }
      lock.unlock();
      GiveBack(conn);
      if (attempt > 0) {
        throw internal::UnsentError(
            absl::StrCat("gRPC: cannot start a stream to ", endpoint_.Name(), ": ", why));
      }
    }
    conn->streams.push_back(&stream);
    const bool may_resend = conn->used && !fresh;
    conn->used = true;
    // Reads and writes of the socket block at most this long (a TLS record coming in parts, a
    // write the server does not read); a call alone on the connection sets its own timeout, one
    // that joins others only lengthens it.
    internal::SetClientTimeout(
        conn->io, conn->streams.size() == 1 ? timeout : std::max(timeout, conn->io.timeout));
    internal::CancelScope cancel_scope(call_options.cancellation.get(), conn->io.fd);

    std::string out;
    if (!Flush(*conn, &out)) Lost(*conn);
    bool timed_out = false;
    while (!stream.closed && !conn->dead) {
      if (!conn->reading) {
        timed_out = !Read(*conn, lock, deadline);
        if (timed_out) break;
        // The deadline is checked after each read too, so a reply that trickles in cannot
        // outlast it.
        timed_out = !stream.closed && std::chrono::steady_clock::now() >= deadline;
        if (timed_out) break;
        continue;
      }
      timed_out = !stream.wake.wait_until(
          lock, deadline, [&] { return stream.closed || conn->dead || !conn->reading; });
      if (timed_out) break;
    }
    const bool sent_all = stream.sent == 5 + request.size();
    if (timed_out) {
      // The call leaves its stream: the server is told (RST_STREAM CANCEL), and the connection
      // goes on with the others.
      Refuse(conn->session, &stream, StatusCode::kDeadlineExceeded,
             stream.http_status == 0
                 ? absl::StrCat("gRPC: no reply from ", endpoint_.Name(), " within ",
                                timeout.count(), " ms")
                 : absl::StrCat("gRPC: reply from ", endpoint_.Name(), " not complete within ",
                                timeout.count(), " ms"));
      if (!Flush(*conn, &out)) Lost(*conn);
    }
    // Nothing of nghttp2's may reach this stream (on this thread's stack) once the call returns:
    // a stream still open on a connection that goes on would be a fault of this code.
    if (!stream.closed && !conn->dead) {
      conn->Fail(StatusCode::kInternal, "gRPC: a stream to " + endpoint_.Name() + " left open");
    }
    conn->streams.erase(std::find(conn->streams.begin(), conn->streams.end(), &stream));
    // The reader role goes to a call still waiting.
    if (!conn->reading && !conn->streams.empty()) conn->streams.front()->wake.notify_one();
    const bool dead = conn->dead && !stream.closed;
    const bool write_failed = conn->write_failed;
    const StatusCode dead_code = conn->dead_code;
    std::string dead_message = conn->dead_message;
    std::string tls_error = conn->io.tls_error;
    lock.unlock();
    const bool cancelled = cancel_scope.Finish();
    if (cancelled) {
      // Cancelled as it ended: its socket may be shut down.
      std::lock_guard<std::mutex> conn_lock(conn->mu);
      conn->Fail(StatusCode::kCancelled, "gRPC: call cancelled");
    }
    GiveBack(conn);
    if (cancelled) throw RpcError(StatusCode::kCancelled, "gRPC: call cancelled");
    if (dead) {
      // A write failed before every byte of the request went out: the server cannot have read a
      // whole request.
      if (write_failed && !sent_all) {
        if (may_resend) return std::nullopt;
        throw internal::UnsentError(absl::StrCat("gRPC: cannot send to ", endpoint_.Name(),
                                                 tls_error.empty() ? "" : ": ", tls_error));
      }
      throw RpcError(dead_code, std::move(dead_message));
    }
    if (may_resend && !stream.has_grpc_status && stream.refused_code == StatusCode::kOk &&
        stream.reset_code == NGHTTP2_REFUSED_STREAM) {
      return std::nullopt;
    }
    if (call_options.reply_metadata != nullptr) {
      *call_options.reply_metadata = std::move(stream.metadata);
    }
    return Reply(stream);
  }

  // The reader's turn, entered and left with `lock` held: waits (without the lock) until the
  // socket has something or `deadline` passes (false), then reads once, hands the bytes to
  // nghttp2, sends what it answers, and wakes the calls whose streams closed. A failure fails the
  // connection.
  bool Read(Connection& conn, std::unique_lock<std::mutex>& lock,
            std::chrono::steady_clock::time_point deadline) {
    if (conn.io.ssl == nullptr || SSL_has_pending(conn.io.ssl) == 0) {
      conn.reading = true;
      lock.unlock();
      const bool ready = internal::WaitReadable(conn.io, deadline);
      lock.lock();
      conn.reading = false;
      if (!ready) return false;
      if (conn.dead) return true;
    }
    char in[kReadChunk];
    std::size_t got = 0;
    IoError error = IoError::kNone;
    if (!internal::RecvSome(conn.io, in, sizeof in, &got, &error)) {
      if (error == IoError::kTimeout) {
        conn.Fail(StatusCode::kDeadlineExceeded,
                  absl::StrCat("gRPC: no reply from ", endpoint_.Name(), " within ",
                               conn.io.timeout.count(), " ms"));
      } else if (!conn.io.tls_error.empty()) {
        conn.Fail(StatusCode::kUnavailable, "gRPC: TLS with " + endpoint_.Name() +
                                                " failed during the call: " + conn.io.tls_error);
      } else if (!conn.heard) {
        // Closed before a byte came: what a TLS port does to a plaintext client, and a server
        // that requires a client certificate to a client without one.
        conn.Fail(StatusCode::kUnavailable,
                  "gRPC: " + endpoint_.Name() + " closed the connection before answering" +
                      (tls_ == nullptr ? " (is its port TLS? this client has TLS off: "
                                         "ChannelOptions::tls, clients.<service>.tls.*)"
                                       : " (does it require a client certificate? tls.cert_file)"));
      } else {
        conn.Fail(StatusCode::kUnavailable,
                  "gRPC: connection to " + endpoint_.Name() + " lost during the call");
      }
      return true;
    }
    if (!conn.heard && tls_ == nullptr &&
        internal::LooksLikeTls(std::string_view(in, std::min<std::size_t>(got, 4)))) {
      conn.Fail(StatusCode::kUnavailable,
                "gRPC: " + endpoint_.Name() +
                    " answered in TLS: its port requires TLS, and this client has TLS off "
                    "(ChannelOptions::tls, clients.<service>.tls.*)");
      return true;
    }
    conn.heard = true;
    ssize_t used =
        nghttp2_session_mem_recv(conn.session, reinterpret_cast<const uint8_t*>(in), got);
    if (used >= 0) {
      std::string out;
      if (!Flush(conn, &out)) Lost(conn);
    }
    for (Stream* stream : conn.streams) {
      if (stream->closed) stream->wake.notify_one();
    }
    if (conn.dead) return true;
    auto broken = [&](const std::string& why) {
      conn.Fail(StatusCode::kInternal,
                absl::StrCat("gRPC: bad HTTP/2 from ", endpoint_.Name(), ": ", why));
    };
    if (used < 0) {
      broken(nghttp2_strerror(static_cast<int>(used)));
    } else if (!conn.broken.empty()) {
      broken(conn.broken);
    } else if (nghttp2_session_want_read(conn.session) == 0) {
      broken("the session ended");
    } else {
      conn.max_streams = std::min(kMaxStreamsPerConnection,
                                  nghttp2_session_get_remote_settings(
                                      conn.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
    }
    return true;
  }

  // A write to the connection failed: every call on it fails.
  void Lost(Connection& conn) {
    if (conn.dead) return;
    conn.write_failed = true;
    conn.Fail(StatusCode::kUnavailable,
              "gRPC: connection to " + endpoint_.Name() + " lost during the call");
  }

  // The call's result from what its closed stream received.
  std::string Reply(Stream& stream) const {
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
      const std::optional<internal::GrpcCodec> codec =
          internal::GrpcCodecNamed(stream.grpc_encoding);
      if (!codec || *codec == internal::GrpcCodec::kIdentity) {
        throw RpcError(StatusCode::kInternal,
                       "gRPC: reply from " + endpoint_.Name() + " compressed with '" +
                           stream.grpc_encoding + "', which this client does not take (" +
                           std::string(internal::kGrpcAcceptedEncodings) + ")");
      }
      std::string inflated;
      internal::InflateError error = internal::InflateMessage(
          *codec, stream.reply, options_.max_message_bytes, [](std::size_t) { return true; }, "",
          &inflated);
      if (!error.ok()) {
        throw RpcError(error.code, "gRPC: reply from " + endpoint_.Name() + ": " + error.message);
      }
      return inflated;
    }
    return std::move(stream.reply);
  }

  // Hands nghttp2's pending frames to the socket in one write. False when the write failed, or
  // the connection had failed already.
  static bool Flush(Connection& conn, std::string* out) {
    if (conn.dead) return false;
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

  // A connection for a call: an idle one from the pool; past kSoloConnections in use, a shared
  // one with room; otherwise (and always when `fresh`) a new one. `exclusive`: one no other call
  // joins.
  std::shared_ptr<Connection> TakeConnection(std::chrono::steady_clock::time_point deadline,
                                             bool fresh, bool exclusive) {
    while (!fresh) {
      std::shared_ptr<Connection> conn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!idle_.empty()) {
          conn = std::move(idle_.back());
          idle_.pop_back();
        } else if (!exclusive && shared_.size() >= kSoloConnections) {
          const std::shared_ptr<Connection>* best = nullptr;
          for (const auto& candidate : shared_) {
            if (candidate->dead || candidate->goaway ||
                static_cast<uint32_t>(candidate->calls) >= candidate->max_streams) {
              continue;
            }
            if (best == nullptr || candidate->calls < (*best)->calls) best = &candidate;
          }
          if (best == nullptr) break;
          ++(*best)->calls;
          return *best;
        } else {
          break;
        }
      }
      // An idle connection is this call's alone until it is published below.
      if (internal::LooksIdle(conn->io) || Absorb(*conn)) {
        Publish(conn, exclusive);
        return conn;
      }
    }
    auto conn = std::make_shared<Connection>();
    conn->io = internal::ConnectClient(endpoint_, deadline);
    conn->name = endpoint_.Name();
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
    Publish(conn, exclusive);
    return conn;
  }

  // The connection carries one call now; others may join it unless `exclusive`.
  void Publish(const std::shared_ptr<Connection>& conn, bool exclusive) {
    std::lock_guard<std::mutex> lock(mu_);
    conn->calls = 1;
    conn->shared = !exclusive;
    if (conn->shared) shared_.push_back(conn);
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
    std::string out;
    const bool sent = Flush(conn, &out);  // a PING's answer, before anything else is decided
    return sent && !conn.goaway && nghttp2_session_want_read(conn.session) != 0 &&
           internal::LooksIdle(conn.io);
  }

  // A call is done with the connection; the last one returns it to the pool, if it can still
  // take a stream.
  void GiveBack(const std::shared_ptr<Connection>& conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (--conn->calls > 0) return;
    if (conn->shared) {
      shared_.erase(std::find(shared_.begin(), shared_.end(), conn));
      conn->shared = false;
    }
    if (!conn->dead && !conn->goaway && idle_.size() < kMaxIdleConnections) {
      // Its calls were answered: quiet from now, no PING owed.
      conn->quiet_since = std::chrono::steady_clock::now();
      conn->ping_sent = {};
      idle_.push_back(conn);
    }
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
  std::vector<std::shared_ptr<Connection>> idle_;    // no call on them
  std::vector<std::shared_ptr<Connection>> shared_;  // calls on them, and room for more
};

// One thread for the process, started with the first native channel: once a second it has every
// native channel still alive read its idle connections that have bytes waiting (SweepIdle).
class IdleSweeper {
 public:
  static IdleSweeper& Get() {
    static IdleSweeper* sweeper = new IdleSweeper();  // never destroyed: its thread outlives main
    return *sweeper;
  }

  IdleSweeper() {
    // fork() copies no thread: a child's first channel starts its own sweeper.
    pthread_atfork([] { Get().mu_.lock(); }, [] { Get().mu_.unlock(); },
                   [] {
                     IdleSweeper& sweeper = Get();
                     sweeper.channels_.clear();
                     sweeper.started_ = false;
                     sweeper.mu_.unlock();
                   });
  }

  void Add(const std::shared_ptr<NativeGrpcChannel>& channel) {
    std::lock_guard<std::mutex> lock(mu_);
    channels_.push_back(channel);
    if (started_) return;
    started_ = true;
    try {
      std::thread([this] { Run(); }).detach();
    } catch (const std::system_error& e) {
      // Idle connections are then read only when a call takes them.
      internal::Log(LogLevel::kWarning,
                    std::string("gRPC: no thread to read idle connections (") + e.what() + ")");
    }
  }

 private:
  void Run() {
    for (;;) {
      std::this_thread::sleep_for(kSweepEvery);
      std::vector<std::shared_ptr<NativeGrpcChannel>> alive;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (auto it = channels_.begin(); it != channels_.end();) {
          if (std::shared_ptr<NativeGrpcChannel> channel = it->lock()) {
            alive.push_back(std::move(channel));
            ++it;
          } else {
            it = channels_.erase(it);
          }
        }
      }
      for (const auto& channel : alive) channel->SweepIdle();
    }
  }

  std::mutex mu_;
  std::vector<std::weak_ptr<NativeGrpcChannel>> channels_;
  bool started_ = false;
};

}  // namespace

std::shared_ptr<Channel> MakeNativeGrpcChannel(const std::string& host_port,
                                               ChannelOptions options) {
  internal::TlsContext tls;
  internal::ClientEndpoint endpoint =
      internal::MakeClientEndpoint("gRPC", host_port, options.tls, &tls);
  endpoint.alpn = "\x02h2";
  auto channel = std::make_shared<NativeGrpcChannel>(host_port, std::move(endpoint),
                                                     std::move(options), std::move(tls));
  IdleSweeper::Get().Add(channel);
  return channel;
}

}  // namespace rpcboot
