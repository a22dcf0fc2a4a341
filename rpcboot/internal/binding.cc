#include "rpcboot/internal/binding.h"

#include <algorithm>
#include <exception>
#include <thread>
#include <utility>

#include "rpcboot/client.h"
#include "rpcboot/internal/binding_impl.h"
#include "rpcboot/internal/thread_pool.h"

namespace rpcboot::internal {

const MethodBinding* ServiceBinding::Find(std::string_view method_name) const {
  for (const MethodBinding& m : methods) {
    if (m.name == method_name) return &m;
  }
  return nullptr;
}

namespace {
struct ThriftErrorOnly {
  ThriftRpcError error;  // field 1 of the result struct
};
}  // namespace

std::string ThriftErrorResult(WireFormat format, StatusCode code, std::string_view message) {
  ThriftErrorOnly result{{static_cast<int32_t>(code), std::string(message)}};
  return ThriftEncode(result, ThriftProtocolOf(format));
}

void ThrowBadRequest(const absl::Status& status) {
  throw RpcError(StatusCode::kInvalidArgument, "bad request: " + std::string(status.message()));
}

void ThrowBadReply(std::string_view what) {
  throw RpcError(StatusCode::kInternal, "bad reply: " + std::string(what));
}

namespace {

// Serves calls in the caller's thread through the same proto encode/decode path as gRPC, so a
// call site behaves the same before and after it moves to RPC. Error mapping follows contract 4.
class InProcessChannel final : public Channel {
 public:
  InProcessChannel(const ServiceBinding& binding, std::shared_ptr<void> impl)
      : impl_(std::move(impl)) {
    (void)binding;
  }

  WireFormat format() const override { return WireFormat::kProto; }

  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions&) override {
    try {
      return method.serve_proto(impl_.get(), request);
    } catch (const RpcError&) {
      throw;
    } catch (const std::exception& e) {
      throw RpcError(StatusCode::kInternal, e.what());
    } catch (...) {
      throw RpcError(StatusCode::kInternal, "handler threw a non-standard exception");
    }
  }

 private:
  std::shared_ptr<void> impl_;
};

}  // namespace
}  // namespace rpcboot::internal

namespace rpcboot {

namespace {
const CallOptions kDefaultCallOptions{};
thread_local const CallOptions* current_call_options = &kDefaultCallOptions;
}  // namespace

ScopedCallOptions::ScopedCallOptions(CallOptions options)
    : previous_(current_call_options), options_(options) {
  current_call_options = &options_;
}

ScopedCallOptions::~ScopedCallOptions() { current_call_options = previous_; }

const CallOptions& ScopedCallOptions::Current() { return *current_call_options; }

namespace internal {
void RunOnClientExecutor(std::function<void()> task) {
  // Never destroyed: outstanding calls may still be running when static destructors run.
  static ThreadPool* executor =
      new ThreadPool(std::max(8, 4 * static_cast<int>(std::thread::hardware_concurrency())));
  executor->Submit(std::move(task));
}
}  // namespace internal

std::shared_ptr<Channel> MakeInProcessChannel(const internal::ServiceBinding& binding,
                                              std::shared_ptr<void> impl) {
  return std::make_shared<internal::InProcessChannel>(binding, std::move(impl));
}

}  // namespace rpcboot
