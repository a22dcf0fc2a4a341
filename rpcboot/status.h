// rpcboot's error contract: the 17 gRPC canonical status codes and the exception that carries
// one through a plain C++ interface.
//
//   // in a handler
//   throw rpcboot::RpcError(rpcboot::StatusCode::kNotFound, "no shop 42");
//   // in the caller, over Thrift or gRPC alike
//   try { shop->GetShop({42}); } catch (const rpcboot::RpcError& e) { e.code(); e.message(); }
//
// A handler's other exceptions reach callers as kInternal, an unknown method as
// kUnimplemented, an expired deadline as kDeadlineExceeded, no reachable instance as
// kUnavailable. Thrift's TApplicationException and gRPC's Status never reach user code.
#ifndef RPCBOOT_STATUS_H_
#define RPCBOOT_STATUS_H_

#include <stdexcept>
#include <string>
#include <string_view>

namespace rpcboot {

// Same numbers as gRPC's and absl's canonical codes; they travel as these numbers.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "NOT_FOUND" for kNotFound; "UNKNOWN" for a number outside the 17 codes.
std::string_view StatusCodeName(StatusCode code);

// A code from the wire: numbers outside 0..16 become kUnknown.
StatusCode StatusCodeFromInt(int code);

// The exception proxies throw and handlers may throw. Copyable, immutable, thread-safe.
class RpcError : public std::runtime_error {
 public:
  RpcError(StatusCode code, std::string message);

  StatusCode code() const { return code_; }
  // The message as the handler gave it (what() adds the code's name in front).
  const std::string& message() const { return message_; }

 private:
  StatusCode code_;
  std::string message_;
};

}  // namespace rpcboot

#endif  // RPCBOOT_STATUS_H_
