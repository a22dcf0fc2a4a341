// One suite over every way a generated proxy reaches an implementation: in-process (the proto
// path gRPC uses, no network), gRPC, and Thrift compact and binary, plain framed and THeader, on
// real loopback sockets. Every method shape and mapped type, the error contract, concurrency and
// async calls on all of them; unknown methods, deadlines and a graceful stop on the network
// ones. No test here maps errors itself: what a caller sees is what the server's one dispatch
// boundary (rpcboot/internal/dispatch.h) produced.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"
#include "thrift_io_testing.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

using testing::AdminServiceImpl;
using testing::DeepEqual;
using testing::RichServiceImpl;

enum class Path {
  kInProcess,
  kGrpc,    // the native gRPC channel (the default)
  kGrpcpp,  // a gRPC channel on gRPC's C++ library
  kThriftCompact,
  kThriftBinary,
  kTHeaderCompact,
  kTHeaderBinary,
};

std::string PathName(Path path) {
  switch (path) {
    case Path::kInProcess:
      return "InProcess";
    case Path::kGrpc:
      return "Grpc";
    case Path::kGrpcpp:
      return "Grpcpp";
    case Path::kThriftCompact:
      return "ThriftCompact";
    case Path::kThriftBinary:
      return "ThriftBinary";
    case Path::kTHeaderCompact:
      return "THeaderCompact";
    case Path::kTHeaderBinary:
      return "THeaderBinary";
  }
  return "?";
}

// Does the handler learn the caller's deadline on this path?
bool CarriesDeadline(Path path) {
  return path == Path::kGrpc || path == Path::kGrpcpp || path == Path::kTHeaderCompact ||
         path == Path::kTHeaderBinary;
}

class CallPathTest : public ::testing::TestWithParam<Path> {
 protected:
  void SetUp() override {
    if (GetParam() == Path::kInProcess) {
      rich_ = BindInProcess<rich::RichService>(impl_);
      admin_ = BindInProcess<rich::AdminService>(admin_impl_);
      return;
    }
    StartServer({});
  }
  // A server of both services on both protocols, with `interceptors`, and proxies calling it (a
  // server started before is shut down).
  void StartServer(std::vector<ServerInterceptor> interceptors) {
    if (server_) server_->Shutdown();
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.grpc_server = rpcboot::testing::TestGrpcServer();
    options.thrift_port = 0;
    options.shutdown_grace = std::chrono::seconds(5);
    options.interceptors = std::move(interceptors);
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(impl_);
    server_->AddService<rich::AdminService>(admin_impl_);
    ASSERT_TRUE(server_->Start().ok());
    channel_ = NetworkChannel();
    rich_ = MakeClient<rich::RichService>(channel_);
    admin_ = MakeClient<rich::AdminService>(channel_);
  }
  void TearDown() override {
    impl_->Release();
    if (server_) server_->Shutdown();
  }

  std::shared_ptr<Channel> NetworkChannel() {
    ChannelOptions options;
    options.thrift_header =
        GetParam() == Path::kTHeaderCompact || GetParam() == Path::kTHeaderBinary;
    if (GetParam() == Path::kThriftBinary || GetParam() == Path::kTHeaderBinary)
      options.thrift_format = WireFormat::kThriftBinary;
    options.grpc_client = GetParam() == Path::kGrpcpp ? GrpcClient::kGrpcpp : GrpcClient::kNative;
    if (GetParam() == Path::kGrpc || GetParam() == Path::kGrpcpp)
      return MakeGrpcChannel("127.0.0.1:" + std::to_string(server_->grpc_port()), options);
    return MakeThriftChannel("127.0.0.1:" + std::to_string(server_->thrift_port()), options);
  }

  std::shared_ptr<RichServiceImpl> impl_ = std::make_shared<RichServiceImpl>();
  std::shared_ptr<AdminServiceImpl> admin_impl_ = std::make_shared<AdminServiceImpl>();
  std::unique_ptr<Server> server_;
  std::shared_ptr<Channel> channel_;
  std::shared_ptr<rich::RichService> rich_;
  std::shared_ptr<rich::AdminService> admin_;
};

// Paths that cross a network: a server, a port, a deadline on the wire.
class NetworkCallPathTest : public CallPathTest {};

TEST_P(CallPathTest, EveryMethodShape) {
  EXPECT_EQ(rich_->Count(), 1);
  EXPECT_EQ(rich_->Count(), 2);
  rich_->Notify(5, "hello", rich::Color::kGreen);
  EXPECT_EQ(impl_->notified, 1);
  EXPECT_EQ(impl_->last_color, rich::Color::kGreen);
  std::vector<rich::Point> path = rich_->Path({{1, 2}, {3, 4}}, true);
  ASSERT_EQ(path.size(), 2u);
  EXPECT_EQ(path[0].x, 3);
  auto histogram = rich_->Histogram({"a", "b", "a"});
  EXPECT_EQ(histogram.at("a"), 2);
  EXPECT_EQ(histogram.at("b"), 1);
  EXPECT_EQ(rich_->Mix(rich::Color::kRed, rich::Color::kRed), rich::Color::kRed);
  EXPECT_EQ(rich_->Mix(rich::Color::kRed, rich::Color::kGreen), rich::Color::kBlue);
  EXPECT_EQ(rich_->Transpose({{1, 2, 3}, {4, 5, 6}}),
            (std::vector<std::vector<int32_t>>{{1, 4}, {2, 5}, {3, 6}}));
  EXPECT_EQ(rich_->Now().zone, "UTC");
  EXPECT_EQ(rich_->Now().seconds, 1795422103);
  EXPECT_EQ(rich_->PlaceOrder(rich::Order{{{1, 2}, {3, 4}}, {}}), 6);
  // Optional parameters and results, present and absent.
  EXPECT_EQ(rich_->Lookup(42), std::optional<std::string>("key 42"));
  EXPECT_EQ(rich_->Lookup(std::nullopt), std::nullopt);
  EXPECT_EQ(rich_->Lookup(-5), std::nullopt);
  std::optional<rich::Point> near = rich_->Nearest(rich::Point{1, 9});
  ASSERT_TRUE(near.has_value());
  EXPECT_EQ(near->x, 2);
  EXPECT_EQ(near->y, 9);
  EXPECT_EQ(rich_->Nearest(std::nullopt), std::nullopt);
  admin_->Reset();
  EXPECT_EQ(admin_impl_->resets, 1);
  EXPECT_EQ(admin_->Version(), "1.2.3");
  EXPECT_EQ(admin_->SetLevel(rich::LEVEL_HIGH), rich::LEVEL_HIGH);
}

TEST_P(CallPathTest, EveryMappedTypeRoundTrips) {
  testing::Randomizer random(31);
  for (int i = 0; i < 30; ++i) {
    rich::EchoRequest request{random.Make<rich::Everything>()};
    ASSERT_TRUE(DeepEqual(rich_->Echo(request), request.value)) << i;
    rich::Scalars scalars = random.Make<rich::Scalars>();
    ASSERT_TRUE(DeepEqual(rich_->EchoScalars(scalars), scalars)) << i;
  }
}

TEST_P(CallPathTest, HandlerRpcErrorReachesTheCallerUnchanged) {
  try {
    rich_->Notify(-7, "x", rich::Color::kRed);
    FAIL() << "expected RpcError";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -7");
  }
  EXPECT_EQ(rich_->Count(), 1) << "the path still works after an error";
}

TEST_P(CallPathTest, OtherExceptionsBecomeInternal) {
  try {
    rich_->Notify(0, "details", rich::Color::kRed);
    FAIL() << "expected RpcError";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_EQ(e.message(), "boom: details");
  }
}

TEST_P(CallPathTest, ConcurrentCallersGetTheirOwnAnswers) {
  constexpr int kCallers = 16, kCalls = 40;
  std::vector<std::future<int>> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.push_back(std::async(std::launch::async, [this, c] {
      int wrong = 0;
      for (int i = 0; i < kCalls; ++i) {
        std::vector<rich::Point> in{{c, i}, {i, c}};
        auto out = rich_->Path(in, true);
        if (out.size() != 2 || out[0].x != i || out[0].y != c || out[1].x != c) ++wrong;
      }
      return wrong;
    }));
  }
  for (auto& f : callers) EXPECT_EQ(f.get(), 0);
  EXPECT_EQ(rich_->Count(), 1);
}

TEST_P(CallPathTest, AsyncCallsReturnFuturesWithResultsAndErrors) {
  std::vector<std::future<rich::Color>> mixes;
  for (int i = 0; i < 16; ++i) {
    mixes.push_back(
        CallAsync([this] { return rich_->Mix(rich::Color::kRed, rich::Color::kGreen); }));
  }
  auto failing = CallAsync([this] { rich_->Notify(-9, "async", rich::Color::kRed); });
  for (auto& f : mixes) EXPECT_EQ(f.get(), rich::Color::kBlue);
  try {
    failing.get();
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -9");
  }
}

TEST_P(NetworkCallPathTest, UnknownMethodIsUnimplemented) {
  internal::MethodBinding missing;
  missing.name = "Missing";
  missing.grpc_path = "/rich.RichService/Missing";
  try {
    channel_->Call(missing, "", CallOptions{});
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnimplemented) << e.what();
  }
  EXPECT_EQ(rich_->Count(), 1) << "the connection still works";
}

TEST_P(NetworkCallPathTest, DeadlineExpiresAsDeadlineExceeded) {
  {
    ScopedCallOptions options({std::chrono::milliseconds(100)});
    try {
      rich_->Notify(1000 + 600, "slow", rich::Color::kRed);
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
    }
    auto slow = CallAsync([this] { rich_->Notify(1000 + 400, "slow", rich::Color::kRed); });
    try {
      slow.get();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded)
          << "the caller's options travel with the async call";
    }
  }
  EXPECT_EQ(rich_->Count(), 1) << "the channel still works after a deadline";
}

TEST_P(NetworkCallPathTest, HandlerSeesTheCallersDeadlineWhereTheWireCarriesIt) {
  {
    ScopedCallOptions deadline({std::chrono::milliseconds(1500)});
    rich_->Notify(2, "context", rich::Color::kRed);
  }
  if (CarriesDeadline(GetParam())) {
    // About the caller's 1.5 s, less transit; gRPC rounds deadlines, so allow a little over.
    EXPECT_GT(impl_->seen_remaining_ms.load(), 500);
    EXPECT_LE(impl_->seen_remaining_ms.load(), 1600);
  } else {
    // Plain framed Thrift has no place for a deadline: the handler sees none (hours remain).
    EXPECT_GT(impl_->seen_remaining_ms.load(), 1000LL * 3600);
  }
}

// Custom metadata reaches the handler as sent on every path (plain framed Thrift goes THeader for
// a call that has any; in process, the handler runs under a context that carries it), and
// nothing the protocol adds shows up beside it.
TEST_P(CallPathTest, HandlerSeesTheCallersMetadata) {
  CallOptions options;
  options.metadata = {{"x-tenant", "acme"},
                      {"x-tenant", "beta"},
                      {"x-request.id_2", "r-17 / 4"},
                      {"x-empty", ""},
                      {"x-blob-bin", std::string("\0\xff\n", 3)}};
  std::map<std::string, int32_t> seen;
  {
    ScopedCallOptions scope(options);
    seen = rich_->Histogram({"word"});
  }
  std::map<std::string, int32_t> expected = {{"word", 1},
                                             {"metadata:x-tenant=acme", 1},
                                             {"metadata:x-tenant=beta", 1},
                                             {"metadata:x-request.id_2=r-17 / 4", 1},
                                             {"metadata:x-empty=", 1},
                                             {"metadata:x-blob-bin=00ff0a", 1}};
  EXPECT_EQ(seen, expected);
  // A call without metadata carries none, on a connection that carried some.
  EXPECT_EQ(rich_->Histogram({"word"}), (std::map<std::string, int32_t>{{"word", 1}}));
}

// What a handler adds to the reply's metadata comes back to CallOptions::reply_metadata, with
// a success and with an error, wherever the reply has a place for it (plain framed Thrift has
// none: the caller gets none); an entry that breaks the rules is refused to the handler.
TEST_P(CallPathTest, CallerReadsTheRepliesMetadata) {
  using Metadata = std::vector<std::pair<std::string, std::string>>;
  const bool carried = GetParam() != Path::kThriftCompact && GetParam() != Path::kThriftBinary;
  Metadata got = {{"stale", "entry"}};
  CallOptions options;
  options.reply_metadata = &got;
  std::map<std::string, int32_t> seen;
  {
    ScopedCallOptions scope(options);
    seen = rich_->Histogram({"reply:x-served-by=one", "reply:x-blob-bin=00ff0a", "reply:X-Bad=1"});
  }
  EXPECT_EQ(seen["refused:reply metadata: call metadata key 'X-Bad' is not a metadata key "
                 "(lowercase letters, digits, '-', '_', '.')"],
            1);
  std::sort(got.begin(), got.end());
  const Metadata added = {{"x-blob-bin", std::string("\0\xff\n", 3)}, {"x-served-by", "one"}};
  EXPECT_EQ(got, carried ? added : Metadata());
  got = {{"stale", "entry"}};
  {
    ScopedCallOptions scope(options);
    EXPECT_THROW(rich_->Notify(-1, "reply:x-why=negative", rich::Color::kRed), RpcError);
  }
  const Metadata why = {{"x-why", "negative"}};
  EXPECT_EQ(got, carried ? why : Metadata());
  // Without reply metadata, the caller's vector is emptied.
  got = {{"stale", "entry"}};
  {
    ScopedCallOptions scope(options);
    rich_->Count();
  }
  EXPECT_EQ(got, Metadata());
}

TEST_P(CallPathTest, MetadataThatCannotBeSentFailsBeforeItIsSent) {
  struct Case {
    std::string key, value;
    StatusCode code;
    std::string named;  // in the message
  };
  const Case cases[] = {
      {"X-Tenant", "a", StatusCode::kInvalidArgument, "'X-Tenant' is not a metadata key"},
      {"x tenant", "a", StatusCode::kInvalidArgument, "'x tenant' is not a metadata key"},
      {"", "a", StatusCode::kInvalidArgument, "'' is not a metadata key"},
      {"grpc-timeout", "1S", StatusCode::kInvalidArgument, "'grpc-timeout' is the protocol's"},
      {"rpcboot-shadow", "1", StatusCode::kInvalidArgument, "'rpcboot-shadow' is the protocol's"},
      {"authorization", "Bearer x", StatusCode::kInvalidArgument, "'authorization' is the"},
      {"x-line", "a\nb", StatusCode::kInvalidArgument, "'x-line' has a value that is not"},
      {"x-pad", " a", StatusCode::kInvalidArgument, "'x-pad' has a value with a space"},
      {"x-big", std::string(9000, 'a'), StatusCode::kResourceExhausted,
       "call metadata of 9077 bytes exceeds the limit of 8192"},
  };
  for (const Case& c : cases) {
    CallOptions options;
    options.metadata = {{"x-fine", "ok"}, {c.key, c.value}};
    ScopedCallOptions scope(options);
    try {
      rich_->Count();
      ADD_FAILURE() << "sent: '" << c.key << "'";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), c.code) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.named), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(rich_->Count(), 1) << "none of them reached the server";
}

TEST_P(NetworkCallPathTest, ShutdownLetsInFlightCallsFinish) {
  auto held = std::async(std::launch::async, [this] {
    rich_->Notify(RichServiceImpl::kHeld, "in flight", rich::Color::kGreen);
    return true;
  });
  ASSERT_TRUE(impl_->WaitEntered(1)) << "the call reached its handler";
  auto stopping = std::async(std::launch::async, [this] { server_->Shutdown(); });
  // Shutdown waits for the held call; let it go only once new calls are no longer taken.
  auto fresh = NetworkChannel();
  auto late = MakeClient<rich::RichService>(fresh);
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) {
    ScopedCallOptions quick({std::chrono::milliseconds(200)});
    try {
      late->Count();
    } catch (const RpcError&) {
      refused = true;
    }
  }
  EXPECT_TRUE(refused) << "a new call was still served during shutdown";
  impl_->Release();
  EXPECT_TRUE(held.get());
  stopping.get();
  EXPECT_EQ(impl_->last_color, rich::Color::kGreen);
  EXPECT_THROW(rich_->Count(), RpcError) << "no new calls after shutdown";
}

// What the interceptors of the tests below saw, in order.
class InterceptorLog {
 public:
  void Add(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  std::vector<std::string> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(events_, {});
  }

 private:
  std::mutex mu_;
  std::vector<std::string> events_;
};

// An interceptor that logs `name>` and `name<` (or `name!<code>`) around the rest of the call.
ServerInterceptor Logging(std::shared_ptr<InterceptorLog> log, std::string name) {
  return [log, name](const ServerContext& call, std::string_view method,
                     const std::function<void()>& proceed) {
    log->Add(name + ">" + std::string(method) + (&call == ServerContext::Current() ? "" : " ?"));
    try {
      proceed();
    } catch (const RpcError& e) {
      log->Add(name + "!" + std::string(StatusCodeName(e.code())));
      throw;
    }
    log->Add(name + "<");
  };
}

TEST_P(NetworkCallPathTest, InterceptorsRunAroundEveryHandlerFirstListedOutermost) {
  auto log = std::make_shared<InterceptorLog>();
  // The inner one refuses AdminService/Reset before its handler runs.
  ServerInterceptor refuse_resets = [log](const ServerContext&, std::string_view method,
                                          const std::function<void()>& proceed) {
    if (method == "/rich.AdminService/Reset")
      throw RpcError(StatusCode::kPermissionDenied, "resets are off");
    proceed();
  };
  StartServer({Logging(log, "outer"), Logging(log, "inner"), refuse_resets});

  EXPECT_EQ(rich_->Count(), 1);
  EXPECT_EQ(log->Take(),
            (std::vector<std::string>{"outer>/rich.RichService/Count",
                                      "inner>/rich.RichService/Count", "inner<", "outer<"}));
  try {
    admin_->Reset();
    ADD_FAILURE() << "the interceptor's refusal did not reach the caller";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(e.message(), "resets are off");
  }
  EXPECT_EQ(admin_impl_->resets, 0) << "the handler of a refused call ran";
  EXPECT_EQ(log->Take(), (std::vector<std::string>{
                             "outer>/rich.AdminService/Reset", "inner>/rich.AdminService/Reset",
                             "inner!PERMISSION_DENIED", "outer!PERMISSION_DENIED"}));
  // The handler's own error passes through both, unchanged.
  try {
    rich_->Notify(-4, "x", rich::Color::kRed);
    ADD_FAILURE() << "the handler's error did not reach the caller";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ(e.message(), "negative id -4");
  }
  EXPECT_EQ(log->Take(), (std::vector<std::string>{
                             "outer>/rich.RichService/Notify", "inner>/rich.RichService/Notify",
                             "inner!FAILED_PRECONDITION", "outer!FAILED_PRECONDITION"}));
}

TEST_P(NetworkCallPathTest, InterceptorsCannotSendAReplyTheHandlerDidNotGive) {
  // Swallows every error; fails Count after its handler ran; skips the handler of Mix.
  ServerInterceptor odd = [](const ServerContext&, std::string_view method,
                             const std::function<void()>& proceed) {
    if (method == "/rich.RichService/Mix") return;
    try {
      proceed();
    } catch (const RpcError&) {
      return;
    }
    if (method == "/rich.RichService/Count") throw RpcError(StatusCode::kAborted, "counted");
  };
  StartServer({odd});
  try {
    rich_->Notify(-2, "x", rich::Color::kRed);
    ADD_FAILURE() << "a failed handler's call succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition) << e.message();
  }
  try {
    rich_->Count();
    ADD_FAILURE() << "the interceptor's error after the handler did not reach the caller";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kAborted);
    EXPECT_EQ(e.message(), "counted");
  }
  EXPECT_EQ(impl_->count, 1) << "Count's handler ran once";
  try {
    rich_->Mix(rich::Color::kRed, rich::Color::kGreen);
    ADD_FAILURE() << "a call whose handler never ran succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_EQ(e.message(),
              "rpcboot: server interceptor 1 returned without calling proceed for "
              "/rich.RichService/Mix");
  }
  // The server serves on.
  rich_->Notify(7, "fine", rich::Color::kBlue);
  EXPECT_EQ(impl_->last_color, rich::Color::kBlue);
}

TEST_P(CallPathTest, ClientInterceptorsRunAroundEveryCallAndMayChangeIt) {
  auto log = std::make_shared<InterceptorLog>();
  // Adds metadata the handler sees (Histogram counts it as a word).
  ClientInterceptor tenant = [log](std::string_view method, CallOptions& call,
                                   const std::function<void()>& proceed) {
    log->Add("tenant>" + std::string(method));
    call.metadata.emplace_back("x-tenant", "eu-1");
    proceed();
    log->Add("tenant<");
  };
  // Replaces the call's error with its own.
  ClientInterceptor translate = [log](std::string_view, CallOptions&,
                                      const std::function<void()>& proceed) {
    try {
      proceed();
    } catch (const RpcError& e) {
      log->Add("translate!" + std::string(StatusCodeName(e.code())));
      throw RpcError(StatusCode::kAborted, "translated: " + e.message());
    }
  };
  std::shared_ptr<Channel> channel =
      channel_ ? channel_ : MakeInProcessChannel(internal::BindingOf<rich::RichService>(), impl_);
  auto rich = MakeClient<rich::RichService>(WithInterceptors(channel, {tenant, translate}));

  auto histogram = rich->Histogram({"a"});
  EXPECT_EQ(histogram["a"], 1);
  EXPECT_EQ(histogram["metadata:x-tenant=eu-1"], 1) << "the handler did not get the metadata";
  EXPECT_EQ(log->Take(),
            (std::vector<std::string>{"tenant>/rich.RichService/Histogram", "tenant<"}));
  try {
    rich->Notify(-4, "x", rich::Color::kRed);
    ADD_FAILURE() << "a failed call succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kAborted);
    EXPECT_EQ(e.message(), "translated: negative id -4");
  }
  EXPECT_EQ(log->Take(), (std::vector<std::string>{"tenant>/rich.RichService/Notify",
                                                   "translate!FAILED_PRECONDITION"}));

  // One that swallows errors cannot make a reply; one that never proceeds fails the call.
  auto odd = MakeClient<rich::RichService>(WithInterceptors(
      channel, {[](std::string_view method, CallOptions&, const std::function<void()>& proceed) {
        if (method == "/rich.RichService/Mix") return;
        try {
          proceed();
        } catch (const RpcError&) {
        }
      }}));
  try {
    odd->Notify(-2, "x", rich::Color::kRed);
    ADD_FAILURE() << "a failed call succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kFailedPrecondition) << e.message();
  }
  try {
    odd->Mix(rich::Color::kRed, rich::Color::kGreen);
    ADD_FAILURE() << "a call never sent succeeded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInternal);
    EXPECT_EQ(e.message(),
              "rpcboot: client interceptor 1 returned without calling proceed for "
              "/rich.RichService/Mix");
  }
  EXPECT_EQ(odd->Count(), 1);
}

INSTANTIATE_TEST_SUITE_P(Paths, CallPathTest,
                         ::testing::Values(Path::kInProcess, Path::kGrpc, Path::kGrpcpp,
                                           Path::kThriftCompact, Path::kThriftBinary,
                                           Path::kTHeaderCompact, Path::kTHeaderBinary),
                         [](const auto& param_info) { return PathName(param_info.param); });

INSTANTIATE_TEST_SUITE_P(Paths, NetworkCallPathTest,
                         ::testing::Values(Path::kGrpc, Path::kGrpcpp, Path::kThriftCompact,
                                           Path::kThriftBinary, Path::kTHeaderCompact,
                                           Path::kTHeaderBinary),
                         [](const auto& param_info) { return PathName(param_info.param); });

TEST(Binding, DescribesMethodsForTransports) {
  const internal::ServiceBinding& b = internal::BindingOf<rich::RichService>();
  EXPECT_EQ(b.full_name, "rich.RichService");
  ASSERT_NE(b.Find("Echo"), nullptr);
  EXPECT_EQ(b.Find("Echo")->grpc_path, "/rich.RichService/Echo");
  EXPECT_TRUE(b.Find("Echo")->idempotent);
  EXPECT_FALSE(b.Find("Notify")->idempotent);
  EXPECT_EQ(b.Find("Nope"), nullptr);
}

TEST(Binding, UndecodableRequestIsInvalidArgument) {
  auto impl = std::make_shared<RichServiceImpl>();
  const internal::MethodBinding* echo = internal::BindingOf<rich::RichService>().Find("Echo");
  try {
    std::string reply;
    echo->serve_proto(impl.get(), std::string("\x0a\x05\x01", 3), &reply);
    FAIL();
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.message().find("length prefix runs past the end"), std::string::npos)
        << e.message();
  }
}

TEST(Server, BothProtocolsServeTheSameObjectAtOnce) {
  auto impl = std::make_shared<RichServiceImpl>();
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  options.thrift_port = 0;
  Server server(options);
  server.AddService<rich::RichService>(impl);
  server.AddService<rich::AdminService>(std::make_shared<AdminServiceImpl>());
  ASSERT_TRUE(server.Start().ok());
  auto over_grpc = MakeClient<rich::RichService>(
      MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port())));
  auto over_thrift = MakeClient<rich::RichService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  EXPECT_EQ(over_grpc->Count(), 1);
  EXPECT_EQ(over_thrift->Count(), 2);
  EXPECT_EQ(over_grpc->Count(), 3);
  auto admin = MakeClient<rich::AdminService>(
      MakeThriftChannel("127.0.0.1:" + std::to_string(server.thrift_port())));
  EXPECT_EQ(admin->Version(), "1.2.3") << "two services on one Thrift port";
}

TEST(Server, PortInUseIsAClearError) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  Server first(options);
  first.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  ASSERT_TRUE(first.Start().ok());
  options.thrift_port = first.thrift_port();
  Server second(options);
  second.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(
      status.message().find("cannot listen on 127.0.0.1:" + std::to_string(first.thrift_port())),
      std::string::npos)
      << status;
}

TEST(Server, GrpcPortInUseIsAClearErrorToo) {
  // gRPC binds with SO_REUSEPORT unless told not to: a second server must not share the port.
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  Server first(options);
  first.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  ASSERT_TRUE(first.Start().ok());
  options.grpc_port = first.grpc_port();
  Server second(options);
  second.AddService<rich::RichService>(std::make_shared<RichServiceImpl>());
  absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("gRPC: cannot listen on 127.0.0.1:" +
                                  std::to_string(first.grpc_port())),
            std::string::npos)
      << status;
}

TEST(Server, NoReachableServerIsUnavailable) {
  for (auto channel : {MakeGrpcChannel("127.0.0.1:1", {std::chrono::milliseconds(500)}),
                       MakeThriftChannel("127.0.0.1:1", {std::chrono::milliseconds(500)})}) {
    auto rich = MakeClient<rich::RichService>(channel);
    try {
      rich->Count();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_TRUE(e.code() == StatusCode::kUnavailable || e.code() == StatusCode::kDeadlineExceeded)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace rpcboot
