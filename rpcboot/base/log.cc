#include "rpcboot/base/log.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace rpcboot {
namespace {

// RPCBOOT_LOG_LEVEL=info (default), warning or error, in any case: the least severe level
// written. Any other value writes from info, and the first line written says what was wrong.
struct LevelSetting {
  LogLevel level = LogLevel::kInfo;
  std::string refused;  // a value that names no level, as given
};

const LevelSetting& MinimumLevel() {
  static const LevelSetting* setting = [] {
    auto* out = new LevelSetting();
    const char* v = std::getenv("RPCBOOT_LOG_LEVEL");
    if (v == nullptr || *v == '\0') return out;
    std::string name(v);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "warning") {
      out->level = LogLevel::kWarning;
    } else if (name == "error") {
      out->level = LogLevel::kError;
    } else if (name != "info") {
      out->refused = v;
    }
    return out;
  }();
  return *setting;
}

// `text` with each byte that `escape` picks written as \xNN.
template <typename Pick>
std::string EscapeBytes(std::string_view text, Pick escape) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (!escape(c)) {
      out += static_cast<char>(c);
      continue;
    }
    char code[5];
    std::snprintf(code, sizeof code, "\\x%02x", c);
    out += code;
  }
  return out;
}

void WriteToStderr(LogLevel level, std::string_view message) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  const char* tag = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  // One event, one line: a control character (a newline or an escape sequence in something a
  // peer or a registration sent) is written as \xNN, so no text can forge a line or reach the
  // terminal that shows the log.
  auto control = [](unsigned char c) { return c < 0x20 || c == 0x7f; };
  std::string escaped;
  if (std::any_of(message.begin(), message.end(), control)) {
    escaped = EscapeBytes(message, control);
    message = escaped;
  }
  // One fprintf per line: stdio locks the stream, so concurrent lines never interleave.
  std::fprintf(stderr, "%s %s.%03lldZ rpcboot: %.*s\n", tag, stamp, static_cast<long long>(ms),
               static_cast<int>(message.size()), message.data());
}

// The installed sink, swapped whole; never destroyed (threads may log during static exit).
std::mutex& SinkMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::shared_ptr<const LogSink>& SinkSlot() {
  static auto* slot = new std::shared_ptr<const LogSink>();
  return *slot;
}

}  // namespace

void SetLogSink(LogSink sink) {
  auto next = sink ? std::make_shared<const LogSink>(std::move(sink)) : nullptr;
  std::lock_guard<std::mutex> lock(SinkMutex());
  SinkSlot() = std::move(next);
}

namespace internal {

namespace {
thread_local uint64_t log_trace_hi = 0, log_trace_lo = 0;
}  // namespace

void SetLogTraceId(uint64_t trace_hi, uint64_t trace_lo) {
  log_trace_hi = trace_hi;
  log_trace_lo = trace_lo;
}

void Log(LogLevel level, std::string_view message) {
  const LevelSetting& minimum = MinimumLevel();
  if (!minimum.refused.empty()) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) {
      Log(LogLevel::kWarning, "RPCBOOT_LOG_LEVEL: '" + Printable(minimum.refused) +
                                  "' is not info, warning or error; writing info and above");
    }
  }
  if (static_cast<int>(level) < static_cast<int>(minimum.level)) return;
  std::string traced;
  if ((log_trace_hi | log_trace_lo) != 0) {
    char id[33];
    std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(log_trace_hi),
                  static_cast<unsigned long long>(log_trace_lo));
    traced.reserve(message.size() + 42);
    traced.append("[trace ").append(id).append("] ").append(message);
    message = traced;
  }
  std::shared_ptr<const LogSink> sink;
  {
    std::lock_guard<std::mutex> lock(SinkMutex());
    sink = SinkSlot();
  }
  if (sink != nullptr) {
    (*sink)(level, message);
  } else {
    WriteToStderr(level, message);
  }
}

std::string Printable(std::string_view text) {
  std::string out =
      EscapeBytes(text.substr(0, 128), [](unsigned char c) { return c < 0x20 || c >= 0x7f; });
  if (text.size() > 128) out += "...";
  return out;
}

bool LogLimiter::Allow() {
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ns_.load();
  if (last != INT64_MIN && now - last < int64_t{1000000000}) return false;
  return last_ns_.compare_exchange_strong(last, now);
}

}  // namespace internal
}  // namespace rpcboot
