// MakeMigrationChannel (rpcboot/migration.h): one channel, two sides, a mode that can change
// under running calls. The mode is one atomic word, read once per call; shadow calls run on a
// small pool of their own, bounded per channel, and hold only what they need (never the channel).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <mutex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "rpcboot/base/hash.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/dispatch.h"
#include "rpcboot/internal/thread_pool.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/migration.h"
#include "rpcboot/server_context.h"

namespace rpcboot {

absl::StatusOr<MigrationMode> MigrationMode::Parse(std::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  MigrationMode mode;
  if (t == "local") {
    mode.kind = Kind::kLocal;
  } else if (t == "remote") {
    mode.kind = Kind::kRemote;
  } else if (t == "shadow" || t == "shadow:local") {
    mode.kind = Kind::kShadow;
  } else if (t == "shadow:remote") {
    mode.kind = Kind::kShadow;
    mode.primary_remote = true;
  } else if (absl::ConsumePrefix(&t, "percent:")) {
    double percent = 0;
    if (!absl::SimpleAtod(t, &percent) || !(percent >= 0 && percent <= 100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'percent:", std::string(t.substr(0, 20)),
                       "' needs a share of calls from 0 to 100 (percent:25)"));
    }
    mode.kind = Kind::kPercent;
    mode.percent = std::round(percent * 100) / 100;
  } else {
    std::string shown(t.substr(0, 40));
    for (char& c : shown)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return absl::InvalidArgumentError(
        absl::StrCat("'", shown, t.size() > 40 ? "...'" : "'",
                     " is not a mode: local, remote, shadow, shadow:local, shadow:remote or "
                     "percent:N (0 to 100)"));
  }
  return mode;
}

std::string MigrationMode::ToString() const {
  switch (kind) {
    case Kind::kLocal:
      return "local";
    case Kind::kRemote:
      return "remote";
    case Kind::kShadow:
      return primary_remote ? "shadow:remote" : "shadow:local";
    case Kind::kPercent: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "percent:%g", percent);
      return buf;
    }
  }
  return "remote";
}

namespace internal {
namespace {

// The mode in one word: kind (2 bits), primary_remote (1 bit), percent in hundredths (14 bits).
uint32_t Pack(const MigrationMode& m) {
  auto hundredths = static_cast<uint32_t>(std::lround(m.percent * 100));
  return static_cast<uint32_t>(m.kind) | (m.primary_remote ? 4u : 0u) | (hundredths << 3);
}
MigrationMode Unpack(uint32_t word) {
  MigrationMode m;
  m.kind = static_cast<MigrationMode::Kind>(word & 3u);
  m.primary_remote = (word & 4u) != 0;
  m.percent = static_cast<double>(word >> 3) / 100;
  return m;
}

bool NeedsRemote(const MigrationMode& m) { return m.kind != MigrationMode::Kind::kLocal; }
bool NeedsLocal(const MigrationMode& m) { return m.kind != MigrationMode::Kind::kRemote; }

// Codes that say the shadow side did not answer, rather than answered differently.
bool NoAnswer(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kDeadlineExceeded ||
         code == StatusCode::kResourceExhausted || code == StatusCode::kCancelled;
}

// Never destroyed: shadow calls may still run while static destructors do.
ThreadPool& ShadowPool() {
  static ThreadPool* pool = new ThreadPool(8);
  return *pool;
}

// A side's answer: the reply, or the error code and message it failed with.
using Outcome = HandlerOutcome;

std::string Describe(const Outcome& o) {
  return o.code == StatusCode::kOk ? "OK"
                                   : std::string(StatusCodeName(o.code)) + " (" + o.message + ")";
}

// What a shadow task needs after the call that started it has returned.
struct Sides {
  const ServiceBinding* binding;
  std::shared_ptr<void> local;
  std::shared_ptr<Channel> remote;
  MigrationOptions options;
  WireFormat format;

  std::atomic<int> shadow_in_flight{0};
  std::atomic<uint64_t> shadow_sampled{0};
  mutable std::mutex mu;  // guards what follows
  std::map<std::string, MigrationStats::Shadow> shadow_by_method;
  std::deque<std::string> recent_mismatches;
  int64_t log_window_start_ns = 0;
  int logged_in_window = 0;
  LogLimiter no_answer_log;

  std::string CallLocal(const MethodBinding& method, std::string_view request) const {
    HandlerOutcome outcome =
        RunHandler([&] { return ServeToString(method, local.get(), format, request); });
    if (outcome.code != StatusCode::kOk) throw RpcError(outcome.code, std::move(outcome.message));
    return std::move(outcome.reply);
  }

  // Runs the shadow side of a call whose primary answered `primary`, compares, records.
  // The shadow carries the call's own metadata, as the primary did: a handler that reads it
  // answers the same way on both sides.
  void Shadow(const MethodBinding& method, const std::string& request, bool primary_remote,
              const Outcome& primary, const CallMetadata& metadata) {
    Outcome shadow;
    if (primary_remote) {
      ServerContext context("local", "shadow",
                            ServerContext::Clock::now() + options.shadow.timeout);
      context.set_shadow(true);
      *context.mutable_metadata() = metadata;
      ServerContext::Scope scope(&context);
      shadow = RunHandler([&] { return CallLocal(method, request); });
    } else {
      CallOptions call;
      call.timeout = options.shadow.timeout;
      call.shadow = true;
      call.metadata = metadata;
      shadow = RunHandler([&] { return remote->Call(method, request, call); });
    }
    const Outcome& local_side = primary_remote ? shadow : primary;
    const Outcome& remote_side = primary_remote ? primary : shadow;
    enum { kMatch, kMismatch, kNoAnswer } result = kMatch;
    std::vector<std::string> differences;
    if (shadow.code != primary.code && NoAnswer(shadow.code)) {
      result = kNoAnswer;
      if (no_answer_log.Allow()) {
        Log(LogLevel::kWarning, absl::StrCat("shadow call ", binding->full_name, "/", method.name,
                                             " to the ", primary_remote ? "local" : "remote",
                                             " side got no answer: ", Describe(shadow),
                                             " (counted apart from mismatches)"));
      }
    } else if (local_side.code != remote_side.code) {
      result = kMismatch;
      differences.push_back("status: local " + Describe(local_side) + " vs remote " +
                            Describe(remote_side));
    } else if (local_side.code == StatusCode::kOk) {
      try {
        ReplyDiff diff = method.diff_replies(format, local_side.reply, remote_side.reply,
                                             options.shadow.ignore_fields, 5);
        if (diff.count > 0) {
          result = kMismatch;
          differences = std::move(diff.differences);
          if (diff.count > differences.size()) {
            differences.push_back(
                absl::StrCat("... ", diff.count - differences.size(), " more difference(s)"));
          }
        }
      } catch (const RpcError& e) {
        result = kMismatch;
        differences.push_back(absl::StrCat("a reply does not decode: ", e.message()));
      }
    }
    Record(method, result == kMatch, result == kMismatch, result == kNoAnswer, differences,
           primary_remote);
  }

  void Record(const MethodBinding& method, bool match, bool mismatch, bool no_answer,
              const std::vector<std::string>& differences, bool primary_remote) {
    std::string line;
    {
      std::lock_guard<std::mutex> lock(mu);
      MigrationStats::Shadow& s = shadow_by_method[method.name];
      ++s.calls;
      s.matches += match ? 1 : 0;
      s.mismatches += mismatch ? 1 : 0;
      s.errors += no_answer ? 1 : 0;
      if (!mismatch) return;
      std::string entry = absl::StrCat(binding->full_name, "/", method.name,
                                       " (local vs remote): ", absl::StrJoin(differences, "; "));
      recent_mismatches.push_back(entry);
      if (recent_mismatches.size() > 20) recent_mismatches.pop_front();
      int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
      if (now - log_window_start_ns >= int64_t{60} * 1000000000) {
        log_window_start_ns = now;
        logged_in_window = 0;
      }
      if (logged_in_window >= options.shadow.log_per_minute) return;
      ++logged_in_window;
      line = absl::StrCat("shadow mismatch #", s.mismatches, " in ", entry, " [primary ",
                          primary_remote ? "remote" : "local", "]");
    }
    Log(LogLevel::kWarning, line);
  }

  void Count(const MethodBinding& method, int64_t MigrationStats::Shadow::*field) {
    std::lock_guard<std::mutex> lock(mu);
    ++(shadow_by_method[method.name].*field);
  }
};

class MigrationChannelImpl final : public MigrationChannel {
 public:
  MigrationChannelImpl(const ServiceBinding& binding, std::shared_ptr<void> local,
                       std::shared_ptr<Channel> remote, MigrationOptions options)
      : sides_(std::make_shared<Sides>()) {
    sides_->binding = &binding;
    sides_->local = std::move(local);
    sides_->remote = std::move(remote);
    sides_->format = sides_->remote ? sides_->remote->format() : WireFormat::kProto;
    MigrationMode initial = options.mode;
    sides_->options = std::move(options);
    if (std::string why = Unfit(initial); !why.empty())
      throw RpcError(StatusCode::kInvalidArgument, binding.full_name + ": " + why);
    mode_.store(Pack(initial));
    mode_source_ = "config";
  }

  WireFormat format() const override { return sides_->format; }

  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    const MigrationMode mode = Unpack(mode_.load(std::memory_order_acquire));
    switch (mode.kind) {
      case MigrationMode::Kind::kLocal:
        return Local(method, request, options);
      case MigrationMode::Kind::kRemote:
        return Remote(method, request, options);
      case MigrationMode::Kind::kPercent:
        return GoesRemote(options.request_key, mode.percent) ? Remote(method, request, options)
                                                             : Local(method, request, options);
      case MigrationMode::Kind::kShadow:
        break;
    }
    bool fell_back = false;  // the remote primary was never sent and the local side answered
    Outcome primary = RunHandler([&] {
      return mode.primary_remote ? Remote(method, request, options, &fell_back)
                                 : Local(method, request, options);
    });
    if (!fell_back) MaybeShadow(method, request, options, mode.primary_remote, primary);
    if (primary.code != StatusCode::kOk) throw RpcError(primary.code, std::move(primary.message));
    return std::move(primary.reply);
  }

  ChannelState State() const override {
    ChannelState state = sides_->remote ? sides_->remote->State() : ChannelState{};
    state.migration = std::make_shared<MigrationStats>(Stats());
    return state;
  }

  absl::Status SetMode(MigrationMode mode, std::string source) override {
    const std::string& service = sides_->binding->full_name;
    if (std::string why = Unfit(mode); !why.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(service, ": mode ", mode.ToString(),
                                                        " from ", source, " refused: ", why,
                                                        "; keeping ", this->mode().ToString()));
    }
    std::string before;
    {
      std::lock_guard<std::mutex> lock(mu_);
      MigrationMode current = Unpack(mode_.load());
      mode_source_ = source;
      if (current == mode) return absl::OkStatus();
      before = current.ToString();
      mode_.store(Pack(mode), std::memory_order_release);
      ++switches_;
    }
    Log(LogLevel::kInfo, absl::StrCat(service, ": migration mode ", before, " -> ", mode.ToString(),
                                      " (", source, ")"));
    return absl::OkStatus();
  }

  MigrationMode mode() const override { return Unpack(mode_.load(std::memory_order_acquire)); }

  bool has_remote() const override { return sides_->remote != nullptr; }

  MigrationStats Stats() const override {
    MigrationStats stats;
    stats.mode = mode();
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats.mode_source = mode_source_;
      stats.switches = switches_;
    }
    stats.local_calls = local_calls_.load(std::memory_order_relaxed);
    stats.remote_calls = remote_calls_.load(std::memory_order_relaxed);
    stats.local_fallbacks = local_fallbacks_.load(std::memory_order_relaxed);
    stats.shadow_in_flight = sides_->shadow_in_flight.load();
    std::lock_guard<std::mutex> lock(sides_->mu);
    stats.shadow_by_method = sides_->shadow_by_method;
    for (const auto& [name, s] : sides_->shadow_by_method) {
      stats.shadow.calls += s.calls;
      stats.shadow.matches += s.matches;
      stats.shadow.mismatches += s.mismatches;
      stats.shadow.errors += s.errors;
      stats.shadow.skipped += s.skipped;
      stats.shadow.unsafe += s.unsafe;
    }
    stats.recent_mismatches.assign(sides_->recent_mismatches.begin(),
                                   sides_->recent_mismatches.end());
    return stats;
  }

 private:
  std::string Unfit(const MigrationMode& mode) const {
    if (NeedsRemote(mode) && !sides_->remote)
      return "it needs the remote side and there is none (no registry and no address)";
    if (NeedsLocal(mode) && !sides_->local)
      return "it needs the local side and none is registered (App::Local)";
    return "";
  }

  std::string Local(const MethodBinding& method, std::string_view request,
                    const CallOptions& options) {
    local_calls_.fetch_add(1, std::memory_order_relaxed);
    InProcessCallScope call(options);
    return sides_->CallLocal(method, request);
  }

  std::string Remote(const MethodBinding& method, std::string_view request,
                     const CallOptions& options, bool* fell_back = nullptr) {
    try {
      std::string reply = sides_->remote->Call(method, request, options);
      remote_calls_.fetch_add(1, std::memory_order_relaxed);
      return reply;
    } catch (const UnsentError& e) {
      if (!sides_->options.fallback_to_local || !sides_->local) {
        remote_calls_.fetch_add(1, std::memory_order_relaxed);
        throw;
      }
      int64_t n = local_fallbacks_.fetch_add(1, std::memory_order_relaxed) + 1;
      if (fallback_log_.Allow()) {
        Log(LogLevel::kWarning, absl::StrCat(sides_->binding->full_name, "/", method.name,
                                             " served locally: the remote call was not sent (",
                                             e.message(), "); ", n, " local fallback(s) so far"));
      }
      if (fell_back != nullptr) *fell_back = true;
      return Local(method, request, options);
    } catch (const RpcError&) {
      remote_calls_.fetch_add(1, std::memory_order_relaxed);
      throw;
    }
  }

  // Calls with equal keys take the same side while the share stays the same; calls without a
  // key are spread so that exactly the share goes remote.
  bool GoesRemote(const std::string& key, double percent) {
    const auto share = static_cast<uint64_t>(std::lround(percent * 100));  // of 10,000
    if (!key.empty()) return StableHash(key) % 10000 < share;
    uint64_t n = percent_counter_.fetch_add(1, std::memory_order_relaxed);
    return ((n + 1) * share) / 10000 > (n * share) / 10000;
  }

  void MaybeShadow(const MethodBinding& method, std::string_view request,
                   const CallOptions& options, bool primary_remote, const Outcome& primary) {
    const ShadowOptions& config = sides_->options.shadow;
    if (!method.idempotent && std::find(config.methods.begin(), config.methods.end(),
                                        method.name) == config.methods.end()) {
      sides_->Count(method, &MigrationStats::Shadow::unsafe);
      return;
    }
    const auto share = static_cast<uint64_t>(std::lround(config.percent * 100));
    uint64_t n = sides_->shadow_sampled.fetch_add(1, std::memory_order_relaxed);
    if (((n + 1) * share) / 10000 == (n * share) / 10000) return;
    if (sides_->shadow_in_flight.fetch_add(1) >= config.max_in_flight) {
      sides_->shadow_in_flight.fetch_sub(1);
      sides_->Count(method, &MigrationStats::Shadow::skipped);
      return;
    }
    ShadowPool().Submit([sides = sides_, method = &method, request = std::string(request),
                         primary_remote, primary, metadata = options.metadata] {
      sides->Shadow(*method, request, primary_remote, primary, metadata);
      sides->shadow_in_flight.fetch_sub(1);
    });
  }

  std::shared_ptr<Sides> sides_;
  std::atomic<uint32_t> mode_{0};
  std::atomic<uint64_t> percent_counter_{0};
  std::atomic<int64_t> local_calls_{0};
  std::atomic<int64_t> remote_calls_{0};
  std::atomic<int64_t> local_fallbacks_{0};
  LogLimiter fallback_log_;
  mutable std::mutex mu_;  // guards mode_source_, switches_ and mode changes
  std::string mode_source_;
  int64_t switches_ = 0;
};

}  // namespace
}  // namespace internal

std::shared_ptr<MigrationChannel> MakeMigrationChannel(const internal::ServiceBinding& binding,
                                                       std::shared_ptr<void> local,
                                                       std::shared_ptr<Channel> remote,
                                                       MigrationOptions options) {
  return std::make_shared<internal::MigrationChannelImpl>(binding, std::move(local),
                                                          std::move(remote), std::move(options));
}

}  // namespace rpcboot
