#include "rpcboot/internal/interceptors.h"

#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

void RunIntercepted(std::size_t count,
                    absl::FunctionRef<void(std::size_t, const std::function<void()>&)> run,
                    absl::FunctionRef<void()> last, std::string_view side,
                    std::string_view method) {
  std::exception_ptr failed;
  std::function<void(std::size_t)> from = [&](std::size_t i) {
    if (i == count) {
      try {
        last();
      } catch (...) {
        failed = std::current_exception();
        throw;
      }
      return;
    }
    bool proceeded = false;
    const std::function<void()> proceed = [&] {
      if (proceeded) {
        throw RpcError(StatusCode::kInternal,
                       absl::StrCat("rpcboot: ", std::string(side), " interceptor ", i + 1,
                                    " called proceed twice"));
      }
      proceeded = true;
      from(i + 1);
    };
    run(i, proceed);
    if (!proceeded) {
      throw RpcError(StatusCode::kInternal,
                     absl::StrCat("rpcboot: ", std::string(side), " interceptor ", i + 1,
                                  " returned without calling proceed for ", std::string(method)));
    }
  };
  from(0);
  if (failed) std::rethrow_exception(failed);
}

}  // namespace rpcboot::internal
