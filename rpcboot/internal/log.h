// rpcboot's log lines: one line each on stderr, with a level and a UTC timestamp. Thread-safe.
#ifndef RPCBOOT_INTERNAL_LOG_H_
#define RPCBOOT_INTERNAL_LOG_H_

#include <string_view>

namespace rpcboot::internal {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, std::string_view message);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_LOG_H_
