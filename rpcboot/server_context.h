// What a handler can learn about the call it is serving.
//
//   shop::Shop ShopServiceImpl::GetShop(const shop::GetShopRequest& request) {
//     if (auto* call = rpcboot::ServerContext::Current(); call && call->remaining() < 5ms) {
//       throw rpcboot::RpcError(rpcboot::StatusCode::kDeadlineExceeded, "no time left");
//     }
//     ...
//   }
#ifndef RPCBOOT_SERVER_CONTEXT_H_
#define RPCBOOT_SERVER_CONTEXT_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/security.h"
#include "rpcboot/tracing.h"

namespace rpcboot {

// Lives for one call, on the thread that runs its handler; not thread-safe, not to be kept.
class ServerContext {
 public:
  using Clock = std::chrono::system_clock;

  // The context of the call this thread is serving, or nullptr outside a handler.
  static const ServerContext* Current();

  // The caller's deadline, when it sent one.
  const std::optional<Clock::time_point>& deadline() const { return deadline_; }
  // Time left before the deadline (negative when past; hours when there is none).
  std::chrono::milliseconds remaining() const;
  // "grpc" or "thrift".
  const std::string& protocol() const { return protocol_; }
  const std::string& peer() const { return peer_; }
  // Who is calling: the verified client certificate (mutual TLS) or the principal of an
  // accepted bearer token; an empty principal when the caller is anonymous.
  const PeerIdentity& identity() const { return identity_; }
  // Used by transports, before the handler runs.
  PeerIdentity* mutable_identity() { return &identity_; }

  // The trace this call belongs to (rpcboot/tracing.h): its trace id, and the span id of this
  // call's server span (calls made from the handler are its children). Invalid when tracing
  // is off.
  const TraceContext& trace() const { return trace_; }
  std::string trace_id() const { return trace_.trace_id(); }
  std::string span_id() const { return trace_.span_id_hex(); }
  // The caller's span (0: the call started the trace).
  uint64_t parent_span_id() const { return parent_span_id_; }
  // Used by transports, before the handler runs (and before a Scope is made).
  void set_trace(const TraceContext& trace, uint64_t parent_span_id, int64_t start_unix_ns) {
    trace_ = trace;
    parent_span_id_ = parent_span_id;
    trace_start_unix_ns_ = start_unix_ns;
  }
  int64_t trace_start_unix_ns() const { return trace_start_unix_ns_; }

  // True for a shadow call (rpcboot/migration.h): a copy of a call another side answered,
  // sent only to compare answers. A handler may skip side effects it must not repeat. Carried
  // in gRPC metadata and THeader headers ("rpcboot-shadow: 1"); a plain framed Thrift call
  // cannot carry it.
  bool shadow() const { return shadow_; }
  void set_shadow(bool shadow) { shadow_ = shadow; }  // used by transports

  // The caller's own metadata: what an rpcboot caller set in CallOptions::metadata, a gRPC
  // client's custom metadata, a THeader client's headers. Values under one key keep the order
  // they were sent in; different keys may come sorted (THeader, gRPC's library). Keys are
  // lowercase; the value of a key ending in "-bin" is bytes (base64 on gRPC's wire, decoded
  // here). What the protocol or rpcboot reads itself is not in it: pseudo-headers, grpc-*,
  // rpcboot-*, content-type, te, user-agent, authorization (see identity()), traceparent and
  // tracestate (see trace()). Plain framed Thrift carries none.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // The first value sent under `key` (lowercase), or nullptr.
  const std::string* FindMetadata(std::string_view key) const;
  // Used by transports, before the handler runs.
  std::vector<std::pair<std::string, std::string>>* mutable_metadata() { return &metadata_; }

  // Adds an entry to the reply's metadata of the call this thread serves: gRPC trailing
  // metadata (sent with the status, success or error), THeader headers of the reply on Thrift
  // when the call came in THeader (plain framed Thrift carries none). The caller reads it
  // through CallOptions::reply_metadata. The rules of CallOptions::metadata hold (keys, values,
  // 8 KiB in all): an entry that breaks them is not added (INVALID_ARGUMENT naming it,
  // RESOURCE_EXHAUSTED over the size); FAILED_PRECONDITION on a thread serving no call.
  static absl::Status AddReplyMetadata(std::string key, std::string value);
  // Used by transports, once the handler returned.
  std::vector<std::pair<std::string, std::string>> TakeReplyMetadata() {
    return std::move(reply_metadata_);
  }

  // Used by transports: makes `context` Current() for this thread until destroyed.
  class Scope {
   public:
    explicit Scope(const ServerContext* context);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const ServerContext* previous_;
  };

  ServerContext(std::string protocol, std::string peer, std::optional<Clock::time_point> deadline)
      : protocol_(std::move(protocol)), peer_(std::move(peer)), deadline_(deadline) {}

 private:
  std::string protocol_;
  std::string peer_;
  std::optional<Clock::time_point> deadline_;
  PeerIdentity identity_;
  TraceContext trace_;
  uint64_t parent_span_id_ = 0;
  int64_t trace_start_unix_ns_ = 0;
  bool shadow_ = false;
  std::vector<std::pair<std::string, std::string>> metadata_;
  // The handler's output, added through the const context Current() gives it.
  mutable std::vector<std::pair<std::string, std::string>> reply_metadata_;
};

}  // namespace rpcboot

#endif  // RPCBOOT_SERVER_CONTEXT_H_
