// The server's caller checks (AuthOptions), the same for both protocols: a bearer token to a
// principal, then require_identity, the allow list and the user's authorize hook.
#ifndef RPCBOOT_INTERNAL_AUTH_H_
#define RPCBOOT_INTERNAL_AUTH_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/security.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

// What a refused call is answered.
struct Refusal {
  StatusCode code = StatusCode::kOk;
  std::string message;
  bool refused() const { return code != StatusCode::kOk; }
};

class CallGuard {
 public:
  // Reads tokens_file and parses the allow list; errors name the key and the entry or line.
  static absl::StatusOr<std::shared_ptr<const CallGuard>> Make(const AuthOptions& options);

  // Whether any check is configured (else Check always allows and costs nothing).
  bool active() const { return active_; }

  // Completes `identity` (the certificate's, or anonymous) with `token` when the call carried
  // one, and decides. `method` is "/package.Service/Method". Runs user code (verify_token,
  // authorize): call it on a handler thread.
  Refusal Check(std::string_view method, std::string_view token, PeerIdentity* identity) const;

 private:
  struct Rule {
    std::string principal;  // "*": anyone
    std::string service;    // "*": any
    std::string method;     // "*": any
  };

  AuthOptions options_;
  std::map<std::string, std::string, std::less<>> tokens_;  // token -> principal
  std::vector<Rule> allow_;
  bool active_ = false;
};

// "Bearer abc" -> "abc"; a value without the scheme is taken as the token itself.
std::string_view BearerToken(std::string_view authorization);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_AUTH_H_
