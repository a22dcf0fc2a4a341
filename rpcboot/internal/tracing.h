// The tracing hooks the transports and the proxies' call path use (rpcboot/tracing.h is the
// user's side): a served call's span begins from the trace context its caller sent and ends
// when its handler returns; a call made begins a child of the call being served on this thread.
#ifndef RPCBOOT_INTERNAL_TRACING_H_
#define RPCBOOT_INTERNAL_TRACING_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "rpcboot/server_context.h"
#include "rpcboot/status.h"
#include "rpcboot/tracing.h"

namespace rpcboot::internal {

// The header (gRPC metadata key, THeader header) names of W3C trace context.
inline constexpr std::string_view kTraceparentHeader = "traceparent";
// Marks a shadow call (ServerContext::shadow), value "1".
inline constexpr std::string_view kShadowHeader = "rpcboot-shadow";
inline constexpr std::string_view kTracestateHeader = "tracestate";

bool TracingOn();

// Gives `context` its trace: a child span of `traceparent` when that is one, else the root of a
// new trace (recorded at the configured rate). Nothing when tracing is off.
void BeginServerSpan(ServerContext* context, std::string_view traceparent,
                     std::string_view tracestate);
// Records the served call's span, when its trace is sampled. `name`: "pkg.Service/Method".
void EndServerSpan(const ServerContext& context, std::string_view name, StatusCode code,
                   std::string_view message);

// A call being made.
struct ClientSpan {
  TraceContext context;  // its span: the id the server gets as its parent
  uint64_t parent = 0;   // the served call's span, 0 for a new trace
  int64_t start_unix_ns = 0;
};
// A child of the call this thread serves, else a new trace; nullopt when tracing is off.
std::optional<ClientSpan> BeginClientSpan();
void EndClientSpan(const ClientSpan& span, std::string_view name, std::string_view protocol,
                   StatusCode code, std::string_view message);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_TRACING_H_
