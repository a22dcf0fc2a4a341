// The error a transport throws when a call's request surely never reached a server: no
// connection could be made, or its bytes could not all be written. The client channel may then
// retry it on another instance whatever the method; callers see a plain RpcError(kUnavailable).
#ifndef RPCBOOT_INTERNAL_UNSENT_ERROR_H_
#define RPCBOOT_INTERNAL_UNSENT_ERROR_H_

#include <string>

#include "rpcboot/status.h"

namespace rpcboot::internal {

class UnsentError : public RpcError {
 public:
  explicit UnsentError(std::string message)
      : RpcError(StatusCode::kUnavailable, std::move(message)) {}
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_UNSENT_ERROR_H_
