// Distributed tracing: a W3C trace context (`traceparent`, `tracestate`) carried by every call,
// in gRPC metadata and in THeader headers, so that one request keeps one trace id across
// services (rpcboot, or anything that speaks W3C trace context).
//
// A server continues the caller's trace (or starts one) and opens a server span for the call;
// the handler sees it through ServerContext::Current()->trace(). A call made from inside a
// handler continues that trace with a client span of its own, whose id the next server gets as
// its parent. rpcboot's log lines written while a call is served carry its trace id.
//
// Recorded ("sampled") spans go to the exporters: one that keeps the recent spans for the
// status page (always there), one that posts OTLP/JSON to a collector when an endpoint is set,
// and any you add:
//
//   rpcboot::TracingOptions tracing;
//   tracing.sample_rate = 0.01;                                  // 1% of new traces
//   tracing.otlp_endpoint = "http://otel-collector:4318/v1/traces";
//   tracing.service_name = "shop";
//   rpcboot::ConfigureTracing(tracing);                          // App does this from tracing.*
//
// A trace whose caller sent `sampled` is recorded whatever the rate, so one decision at the
// edge holds for the whole request. Process-wide; thread-safe.
#ifndef RPCBOOT_TRACING_H_
#define RPCBOOT_TRACING_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/status.h"

namespace rpcboot {

// One span's place in a trace: W3C trace-context fields.
struct TraceContext {
  uint64_t trace_hi = 0, trace_lo = 0;  // the 128-bit trace id; all zero: no trace
  uint64_t span_id = 0;
  bool sampled = false;  // recorded and exported
  std::string tracestate;

  bool valid() const { return (trace_hi | trace_lo) != 0 && span_id != 0; }
  std::string trace_id() const;     // 32 lowercase hex digits; "" without a trace
  std::string span_id_hex() const;  // 16 lowercase hex digits
  // "00-<trace id>-<span id>-<01|00>"
  std::string traceparent() const;
  // A `traceparent` header value; nullopt when it is not one (wrong length or version, bad
  // hex, an all-zero id): the call then starts a trace of its own.
  static std::optional<TraceContext> Parse(std::string_view traceparent);
};

// A finished, recorded span.
struct Span {
  std::string trace_id, span_id, parent_span_id;  // hex; parent "" for a trace's root
  std::string name;                               // "shop.ShopService/GetShop"
  bool server = false;                            // a served call; false: a call made
  std::string protocol;                           // "grpc" or "thrift" (a client's "" when
                                                  // the channel is in-process)
  std::string peer;
  int64_t start_unix_ns = 0, end_unix_ns = 0;
  StatusCode code = StatusCode::kOk;
  std::string message;  // the error's message
};

// Receives recorded spans. Export is called on the thread that finished the span (a handler's
// or a caller's): queue the span and return; never block.
class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  virtual void Export(const Span& span) = 0;
};

struct TracingOptions {
  // Off: no trace context is read, sent or recorded (and log lines carry none).
  bool enabled = true;
  // The share of new traces (a call with no sampled caller) that are recorded, 0..1.
  double sample_rate = 0.01;
  // OTLP/HTTP with JSON bodies ("http://host:4318/v1/traces"); empty: no OTLP export.
  std::string otlp_endpoint;
  // The resource's service.name in OTLP.
  std::string service_name = "rpcboot";
};

// Applies `options` to the process; replaces the OTLP exporter (its queued spans are sent
// first). Returns an error naming a bad endpoint or rate, and then changes nothing.
absl::Status ConfigureTracing(const TracingOptions& options);
// Sends every recorded span to `exporter` as well, from now on.
void AddSpanExporter(std::shared_ptr<SpanExporter> exporter);
// The most recent recorded spans, oldest first (at most 100), as the status page shows them.
std::vector<Span> RecentSpans();

}  // namespace rpcboot

#endif  // RPCBOOT_TRACING_H_
