// The client side's shared pieces: call options in scope, the async executor, in-process
// channels, and MakeChannel over rpcboot's address grammar. The protocol channels live in
// rpcboot/transport/ (MakeGrpcChannel, MakeThriftChannel), lists in internal/cluster_channel.
#include "rpcboot/client.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "rpcboot/base/log.h"
#include "rpcboot/internal/address.h"
#include "rpcboot/internal/call_metadata.h"
#include "rpcboot/internal/cluster_channel.h"
#include "rpcboot/internal/discovery_channel.h"
#include "rpcboot/internal/dispatch.h"
#include "rpcboot/internal/interceptors.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/internal/thread_pool.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/server_context.h"

namespace rpcboot::internal {
namespace {

// Serves calls in the caller's thread through the same proto encode/decode path as gRPC, so a
// call site behaves the same before and after it moves to RPC. Error mapping follows contract 4.
class InProcessChannel final : public Channel {
 public:
  explicit InProcessChannel(std::shared_ptr<void> impl) : impl_(std::move(impl)) {}

  WireFormat format() const override { return WireFormat::kProto; }

  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    HandlerOutcome outcome;
    {
      InProcessCallScope call(options);
      outcome = RunHandler(
          [&] { return ServeToString(method, impl_.get(), WireFormat::kProto, request); });
    }
    if (outcome.code != StatusCode::kOk) throw RpcError(outcome.code, std::move(outcome.message));
    return std::move(outcome.reply);
  }

 private:
  std::shared_ptr<void> impl_;
};

// The primary channel, and a local implementation for the calls it fails.
class FallbackChannel final : public Channel {
 public:
  FallbackChannel(std::shared_ptr<Channel> primary, std::shared_ptr<void> fallback,
                  FallbackOptions options)
      : primary_(std::move(primary)),
        fallback_(std::move(fallback)),
        options_(std::move(options)) {}

  WireFormat format() const override { return primary_->format(); }

  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    try {
      return primary_->Call(method, request, options);
    } catch (const RpcError& e) {
      if (!Applies(e.code(), method.name)) throw;
      uses_.fetch_add(1, std::memory_order_relaxed);
      if (log_.Allow()) {
        Log(LogLevel::kWarning, method.name + " answered by its fallback: " + e.what() + " (" +
                                    std::to_string(uses_.load()) + " fallback answers so far)");
      }
      // The request is in the primary's encoding; the fallback answers in it too.
      WireFormat wire = primary_->format();
      HandlerOutcome outcome;
      {
        InProcessCallScope call(options);
        outcome = RunHandler([&] { return ServeToString(method, fallback_.get(), wire, request); });
      }
      if (outcome.code != StatusCode::kOk) {
        throw RpcError(outcome.code, outcome.message + " (from the fallback, after: " +
                                         std::string(e.what()) + ")");
      }
      return std::move(outcome.reply);
    }
  }

  ChannelState State() const override {
    ChannelState state = primary_->State();
    state.fallbacks = uses_.load();
    return state;
  }

 private:
  bool Applies(StatusCode code, const std::string& name) const {
    if (std::find(options_.codes.begin(), options_.codes.end(), code) == options_.codes.end())
      return false;
    return options_.methods.empty() || std::find(options_.methods.begin(), options_.methods.end(),
                                                 name) != options_.methods.end();
  }

  std::shared_ptr<Channel> primary_;
  std::shared_ptr<void> fallback_;
  FallbackOptions options_;
  std::atomic<int64_t> uses_{0};
  LogLimiter log_;
};

// Runs each call through the interceptors, then through the channel it wraps.
class InterceptedChannel final : public Channel {
 public:
  InterceptedChannel(std::shared_ptr<Channel> inner, std::vector<ClientInterceptor> interceptors)
      : inner_(std::move(inner)), interceptors_(std::move(interceptors)) {}

  WireFormat format() const override { return inner_->format(); }

  std::string Call(const MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    CallOptions call = options;
    std::string reply;
    RunIntercepted(
        interceptors_.size(),
        [&](std::size_t i, const std::function<void()>& proceed) {
          interceptors_[i](method.grpc_path, call, proceed);
        },
        [&] { reply = inner_->Call(method, request, call); }, "client", method.grpc_path);
    return reply;
  }

  ChannelState State() const override { return inner_->State(); }

 private:
  std::shared_ptr<Channel> inner_;
  std::vector<ClientInterceptor> interceptors_;
};

}  // namespace
}  // namespace rpcboot::internal

namespace rpcboot {

std::shared_ptr<Channel> WithInterceptors(std::shared_ptr<Channel> channel,
                                          std::vector<ClientInterceptor> interceptors) {
  if (interceptors.empty()) return channel;
  return std::make_shared<internal::InterceptedChannel>(std::move(channel),
                                                        std::move(interceptors));
}

std::shared_ptr<Channel> MakeFallbackChannel(std::shared_ptr<Channel> primary,
                                             std::shared_ptr<void> fallback,
                                             FallbackOptions options) {
  return std::make_shared<internal::FallbackChannel>(std::move(primary), std::move(fallback),
                                                     std::move(options));
}

std::chrono::milliseconds ChannelOptions::TimeoutFor(const CallOptions& call) const {
  if (call.timeout.count() > 0) return call.timeout;
  const ServerContext* served = ServerContext::Current();
  if (served != nullptr && served->deadline().has_value()) {
    return std::min(default_timeout, served->remaining());
  }
  return default_timeout;
}

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
std::string CallThrough(Channel& channel, const MethodBinding& method, std::string_view request) {
  if (const CallMetadata& metadata = ScopedCallOptions::Current().metadata; !metadata.empty()) {
    // Checked once, here, before any channel (a list's, a retry's) sends it anywhere.
    if (absl::Status s = CheckCallMetadata(metadata); !s.ok()) {
      throw RpcError(static_cast<StatusCode>(s.code()), std::string(s.message()));
    }
  }
  std::optional<ClientSpan> span = BeginClientSpan();
  CallStats* stats = MetricsOn() ? MetricsRegistry::Get().Client(method) : nullptr;
  if (!span && stats == nullptr) return channel.Call(method, request, ScopedCallOptions::Current());
  const int64_t started = stats != nullptr ? stats->Start() : 0;
  auto end = [&](StatusCode code, std::string_view message) {
    if (stats != nullptr) stats->Finish(started, code, {}, message);
    if (span) {
      std::string_view name = method.grpc_path;
      if (!name.empty() && name.front() == '/') name.remove_prefix(1);
      EndClientSpan(*span, name, channel.format() == WireFormat::kProto ? "grpc" : "thrift", code,
                    message);
    }
  };
  try {
    std::string reply;
    if (span) {
      CallOptions options = ScopedCallOptions::Current();
      options.traceparent = span->context.traceparent();
      options.tracestate = span->context.tracestate;
      reply = channel.Call(method, request, options);
    } else {
      reply = channel.Call(method, request, ScopedCallOptions::Current());
    }
    end(StatusCode::kOk, {});
    return reply;
  } catch (const RpcError& e) {
    end(e.code(), e.message());
    throw;
  } catch (...) {
    end(StatusCode::kUnknown, "a channel threw a non-RpcError");
    throw;
  }
}

void RunOnClientExecutor(std::function<void()> task) {
  // Never destroyed: outstanding calls may still be running when static destructors run.
  static ThreadPool* executor =
      new ThreadPool(std::max(8, 4 * static_cast<int>(std::thread::hardware_concurrency())));
  executor->Submit(std::move(task));
}
}  // namespace internal

std::shared_ptr<Channel> MakeInProcessChannel(const internal::ServiceBinding& /*binding*/,
                                              std::shared_ptr<void> impl) {
  return std::make_shared<internal::InProcessChannel>(std::move(impl));
}

std::shared_ptr<Channel> MakeChannel(const std::string& address, Protocol protocol,
                                     ChannelOptions options) {
  absl::StatusOr<internal::Address> parsed = internal::ParseAddress(address);
  if (!parsed.ok()) {
    throw RpcError(StatusCode::kInvalidArgument, std::string(parsed.status().message()));
  }
  // TLS files are read now, so that a wrong one fails here and not at some later instance.
  if (options.tls.enabled) {
    absl::StatusOr<internal::TlsContext> tls = internal::MakeClientTlsContext(options.tls, "tls");
    if (!tls.ok())
      throw RpcError(StatusCode::kInvalidArgument, std::string(tls.status().message()));
  }
  switch (parsed->kind) {
    case internal::Address::Kind::kZooKeeper:
      return internal::MakeZooKeeperChannel(parsed->zookeeper, protocol, std::move(options));
    case internal::Address::Kind::kEndpoint:
      return protocol == Protocol::kGrpc ? MakeGrpcChannel(address, options)
                                         : MakeThriftChannel(address, options);
    case internal::Address::Kind::kStatic:
      break;
  }
  std::vector<internal::EndpointSpec> endpoints;
  for (const std::string& endpoint : parsed->endpoints) endpoints.push_back({endpoint, endpoint});
  auto channel = std::make_shared<internal::ClusterChannel>(address, protocol, options);
  channel->Update(endpoints);
  return channel;
}

}  // namespace rpcboot
