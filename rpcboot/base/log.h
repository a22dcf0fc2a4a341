// rpcboot's log lines, and where they go.
//
// By default each line goes to stderr with a level and a UTC timestamp:
//   W 2026-11-29T10:00:00.123Z rpcboot: Thrift: closing 10.0.0.7:4412: frame not completed in time
// one line per event: a control character in a message is written as \xNN. A sink gets the
// message as it is.
// RPCBOOT_LOG_LEVEL=info (default), warning or error sets the least severe level written; another
// value writes from info and is named in the first line written.
//
// A program with a logging library of its own installs a sink, and every line rpcboot writes
// (library, discovery, transports) goes there instead, already filtered by level:
//
//   rpcboot::SetLogSink([](rpcboot::LogLevel level, std::string_view message) {
//     spdlog::log(level == rpcboot::LogLevel::kError ? spdlog::level::err : ..., message);
//   });
//
// Thread-safety: a sink is called from any rpcboot thread, concurrently; it must be thread-safe
// and must not call back into rpcboot. SetLogSink may be called at any time; lines being written
// while it runs go to the old or the new sink. The sink is copied and kept until replaced.
#ifndef RPCBOOT_BASE_LOG_H_
#define RPCBOOT_BASE_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace rpcboot {

enum class LogLevel { kInfo, kWarning, kError };

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

// Sends rpcboot's log lines to `sink`; an empty sink restores the stderr default.
void SetLogSink(LogSink sink);

namespace internal {

// Writes one line at `level` (dropped below RPCBOOT_LOG_LEVEL).
void Log(LogLevel level, std::string_view message);

// The trace id the lines this thread writes carry ("[trace <32 hex digits>] " before the
// message) while it serves a call (ServerContext::Scope sets it); 0, 0 for none. Formatted only
// when a line is written.
void SetLogTraceId(uint64_t trace_hi, uint64_t trace_lo);

// Text from the network (a method name, a path), made safe for one log line or message: control
// and non-ASCII bytes escaped (\xNN), at most 128 bytes shown ("..." after).
std::string Printable(std::string_view text);

// For log lines a flood could repeat (refused connections, refused replies): Allow() is true at
// most once a second. Thread-safe.
class LogLimiter {
 public:
  bool Allow();

 private:
  std::atomic<int64_t> last_ns_{INT64_MIN};
};

}  // namespace internal
}  // namespace rpcboot

#endif  // RPCBOOT_BASE_LOG_H_
