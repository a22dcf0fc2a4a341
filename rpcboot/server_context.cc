#include "rpcboot/server_context.h"

#include "rpcboot/base/log.h"
#include "rpcboot/internal/call_metadata.h"

namespace rpcboot {

namespace {
thread_local const ServerContext* current_context = nullptr;
}  // namespace

const ServerContext* ServerContext::Current() { return current_context; }

std::chrono::milliseconds ServerContext::remaining() const {
  if (!deadline_) return std::chrono::hours(24 * 365);
  return std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now());
}

const std::string* ServerContext::FindMetadata(std::string_view key) const {
  for (const auto& [name, value] : metadata_) {
    if (name == key) return &value;
  }
  return nullptr;
}

absl::Status ServerContext::AddReplyMetadata(std::string key, std::string value) {
  const ServerContext* call = Current();
  if (call == nullptr) {
    return absl::FailedPreconditionError("reply metadata: this thread serves no call");
  }
  call->reply_metadata_.emplace_back(std::move(key), std::move(value));
  if (absl::Status s = internal::CheckCallMetadata(call->reply_metadata_); !s.ok()) {
    call->reply_metadata_.pop_back();
    return absl::Status(s.code(), "reply metadata: " + std::string(s.message()));
  }
  return absl::OkStatus();
}

namespace {
// rpcboot's log lines on this thread carry the served call's trace id.
void LogTraceOf(const ServerContext* context) {
  if (context != nullptr && context->trace().valid()) {
    internal::SetLogTraceId(context->trace().trace_hi, context->trace().trace_lo);
  } else {
    internal::SetLogTraceId(0, 0);
  }
}
}  // namespace

ServerContext::Scope::Scope(const ServerContext* context) : previous_(current_context) {
  current_context = context;
  LogTraceOf(context);
}

ServerContext::Scope::~Scope() {
  current_context = previous_;
  LogTraceOf(previous_);
}

}  // namespace rpcboot
