// The chain of interceptors both sides run a call through (ServerOptions::interceptors,
// rpcboot::WithInterceptors), written once.
#ifndef RPCBOOT_INTERNAL_INTERCEPTORS_H_
#define RPCBOOT_INTERNAL_INTERCEPTORS_H_

#include <cstddef>
#include <functional>
#include <string_view>

#include "absl/functional/function_ref.h"

namespace rpcboot::internal {

// Runs interceptor 0 (`run(0, proceed)`) with a proceed that runs interceptor 1, and so on; the
// last one's proceed runs `last`. Throws what they throw. An interceptor that returns without
// calling proceed fails the call (RpcError INTERNAL naming `side`, its number and `method`), as
// does a second call of proceed. When `last` threw, its exception is rethrown even if an
// interceptor caught it and returned: there is no reply to give.
void RunIntercepted(std::size_t count,
                    absl::FunctionRef<void(std::size_t, const std::function<void()>&)> run,
                    absl::FunctionRef<void()> last, std::string_view side, std::string_view method);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_INTERCEPTORS_H_
