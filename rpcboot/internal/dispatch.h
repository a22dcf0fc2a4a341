// The dispatch boundary (contract 4), in one place for every way a call is served: over gRPC,
// over Thrift and in-process. A handler's RpcError keeps its code and message; any other
// exception becomes INTERNAL with its what(); nothing else escapes.
#ifndef RPCBOOT_INTERNAL_DISPATCH_H_
#define RPCBOOT_INTERNAL_DISPATCH_H_

#include <exception>
#include <string>
#include <utility>

#include "rpcboot/status.h"

namespace rpcboot::internal {

// What a served call produced: an encoded reply (code kOk) or an error.
struct HandlerOutcome {
  StatusCode code = StatusCode::kOk;
  std::string message;
  std::string reply;
};

// Runs `fn` (which returns the encoded reply) and maps what it throws.
template <class Fn>
HandlerOutcome RunHandler(Fn&& fn) {
  HandlerOutcome out;
  try {
    out.reply = std::forward<Fn>(fn)();
  } catch (const RpcError& e) {
    out.code = e.code();
    out.message = e.message();
  } catch (const std::exception& e) {
    out.code = StatusCode::kInternal;
    out.message = e.what();
  } catch (...) {
    out.code = StatusCode::kInternal;
    out.message = "handler threw a non-standard exception";
  }
  return out;
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_DISPATCH_H_
