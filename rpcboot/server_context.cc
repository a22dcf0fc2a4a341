#include "rpcboot/server_context.h"

namespace rpcboot {

namespace {
thread_local const ServerContext* current_context = nullptr;
}  // namespace

const ServerContext* ServerContext::Current() { return current_context; }

std::chrono::milliseconds ServerContext::remaining() const {
  if (!deadline_) return std::chrono::hours(24 * 365);
  return std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now());
}

ServerContext::Scope::Scope(const ServerContext* context) : previous_(current_context) {
  current_context = context;
}

ServerContext::Scope::~Scope() { current_context = previous_; }

}  // namespace rpcboot
