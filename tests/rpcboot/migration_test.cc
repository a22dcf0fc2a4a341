// Migration channels (rpcboot/migration.h) with a real server on 127.0.0.1 as the remote side,
// over both protocols: each mode sends each call to the side it names, percent splits exactly
// and keeps a key on one side, shadow comparison names the differing fields and leaves out the
// ignored ones, non-idempotent methods are not shadowed, a hanging or dead shadow side changes
// nothing for the caller, a switch under load loses and repeats no call, and a remote call that
// was never sent can fall back to the local side. Outcomes are counted, never timed.
#include "rpcboot/migration.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "echo_load.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/base/log.h"
#include "rpcboot/client.h"
#include "rpcboot/codec/value_diff.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"

namespace rpcboot {
namespace {

using Kind = MigrationMode::Kind;

MigrationMode Mode(const std::string& text) {
  absl::StatusOr<MigrationMode> mode = MigrationMode::Parse(text);
  EXPECT_TRUE(mode.ok()) << text;
  return mode.ok() ? *mode : MigrationMode{};
}

// One side: counts Echo and Count calls, served and shadowed apart, and can answer differently
// or hold its calls.
class Side : public testing::RichServiceImpl {
 public:
  explicit Side(std::string name) : name_(std::move(name)) {}

  rich::Everything Echo(const rich::EchoRequest& request) override {
    const ServerContext* call = ServerContext::Current();
    bool shadow = call != nullptr && call->shadow();
    {
      std::lock_guard<std::mutex> lock(mu_);
      (shadow ? shadowed : served).push_back(request.value.id);
    }
    rich::Everything out = request.value;
    if (skew) {
      out.scalars.text = name_;
      if (out.containers.points.size() > 1) out.containers.points[1].y += 1;
    }
    return out;
  }
  int64_t Count() override {
    if (hold) {
      std::unique_lock<std::mutex> lock(mu_);
      ++holding;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(20), [&] { return !hold; });
    }
    return RichServiceImpl::Count();
  }
  int64_t PlaceOrder(const rich::Order& order) override {
    placed++;
    return RichServiceImpl::PlaceOrder(order);
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    hold = false;
    cv_.notify_all();
  }
  bool WaitHolding(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return holding >= n; });
  }
  std::vector<int64_t> Served() {
    std::lock_guard<std::mutex> lock(mu_);
    return served;
  }
  std::vector<int64_t> Shadowed() {
    std::lock_guard<std::mutex> lock(mu_);
    return shadowed;
  }

  std::atomic<bool> skew{false};
  std::atomic<int> placed{0};
  std::atomic<bool> hold{false};
  int holding = 0;

 private:
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> served, shadowed;
};

rich::EchoRequest EchoOf(int64_t id) {
  rich::EchoRequest r;
  r.value.id = id;
  r.value.scalars.text = "same";
  r.value.containers.points = {{1, 2}, {3, 4}};
  return r;
}

// Waits (bounded) until every shadow call sent has been compared.
MigrationStats Settled(MigrationChannel& channel) {
  for (int i = 0; i < 1000; ++i) {
    MigrationStats stats = channel.Stats();
    if (stats.shadow_in_flight == 0) return stats;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "shadow calls still in flight after 10 s";
  return channel.Stats();
}

// Log lines, for the tests that check what is said.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }
  std::vector<std::string> With(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const std::string& l : lines_)
      if (l.find(text) != std::string::npos) out.push_back(l);
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class Migration : public ::testing::TestWithParam<Protocol> {
 protected:
  void SetUp() override {
    local_ = std::make_shared<Side>("local");
    remote_ = std::make_shared<Side>("remote");
    ServerOptions options;
    options.host = "127.0.0.1";
    (GetParam() == Protocol::kGrpc ? options.grpc_port : options.thrift_port) = 0;
    options.handler_threads = 16;
    server_ = std::make_unique<Server>(options);
    server_->AddService<rich::RichService>(remote_);
    ASSERT_TRUE(server_->Start().ok());
    address_ =
        "127.0.0.1:" + std::to_string(GetParam() == Protocol::kGrpc ? server_->grpc_port()
                                                                    : server_->thrift_port());
  }
  void TearDown() override {
    remote_->Release();
    server_->Shutdown();
  }

  std::shared_ptr<Channel> Remote(const std::string& address) {
    ChannelOptions options;
    options.thrift_header = true;  // carries the shadow mark over Thrift
    return MakeChannel(address, GetParam(), options);
  }
  std::shared_ptr<MigrationChannel> Make(const std::string& mode, MigrationOptions options = {}) {
    options.mode = Mode(mode);
    return MakeMigrationChannel<rich::RichService>(local_, Remote(address_), options);
  }

  std::shared_ptr<Side> local_, remote_;
  std::unique_ptr<Server> server_;
  std::string address_;
};

TEST(MigrationMode, ParsesEveryModeAndNamesWhatIsWrong) {
  EXPECT_EQ(Mode("local").kind, Kind::kLocal);
  EXPECT_EQ(Mode(" remote\n").kind, Kind::kRemote);
  EXPECT_FALSE(Mode("shadow").primary_remote);
  EXPECT_TRUE(Mode("shadow:remote").primary_remote);
  EXPECT_EQ(Mode("percent:12.5").percent, 12.5);
  for (const char* text :
       {"local", "remote", "shadow:local", "shadow:remote", "percent:50", "percent:0.25"}) {
    EXPECT_EQ(Mode(text).ToString(), text);
  }
  for (const char* bad : {"", "Local", "percent", "percent:", "percent:101", "percent:-1",
                          "percent:x", "shadow:both", "remote;rm -rf"}) {
    absl::StatusOr<MigrationMode> mode = MigrationMode::Parse(bad);
    ASSERT_FALSE(mode.ok()) << bad;
    EXPECT_NE(mode.status().message().find("percent"), std::string::npos) << mode.status();
  }
  absl::StatusOr<MigrationMode> huge = MigrationMode::Parse(std::string(100000, 'x'));
  ASSERT_FALSE(huge.ok());
  EXPECT_LT(huge.status().message().size(), 200u);  // the value is cut, not echoed whole
}

TEST_P(Migration, EachModeSendsEachCallToItsSide) {
  auto channel = Make("local");
  auto client = MakeClient<rich::RichService>(channel);
  for (int i = 0; i < 10; ++i) client->Echo(EchoOf(i));
  EXPECT_EQ(local_->Served().size(), 10u);
  EXPECT_EQ(remote_->Served().size(), 0u);
  ASSERT_TRUE(channel->SetMode(Mode("remote"), "test").ok());
  for (int i = 10; i < 20; ++i) client->Echo(EchoOf(i));
  EXPECT_EQ(local_->Served().size(), 10u);
  EXPECT_EQ(remote_->Served().size(), 10u);
  MigrationStats stats = channel->Stats();
  EXPECT_EQ(stats.local_calls, 10);
  EXPECT_EQ(stats.remote_calls, 10);
  EXPECT_EQ(stats.switches, 1);
  EXPECT_EQ(stats.mode_source, "test");
  EXPECT_EQ(stats.shadow.calls, 0);
  // State() carries the same, for the status page and metrics.
  ASSERT_NE(channel->State().migration, nullptr);
  EXPECT_EQ(channel->State().migration->remote_calls, 10);
}

TEST_P(Migration, PercentSplitsExactlyAndAKeyStaysOnOneSide) {
  auto channel = Make("percent:25");
  auto client = MakeClient<rich::RichService>(channel);
  for (int i = 0; i < 400; ++i) client->Echo(EchoOf(i));
  EXPECT_EQ(remote_->Served().size(), 100u);
  EXPECT_EQ(local_->Served().size(), 300u);
  // With a key: every call of one key on the same side, whatever else runs.
  int remote_keys = 0;
  for (int key = 0; key < 100; ++key) {
    size_t before = remote_->Served().size();
    for (int repeat = 0; repeat < 4; ++repeat) {
      CallOptions options;
      options.request_key = "order-" + std::to_string(key);
      ScopedCallOptions scope(options);
      client->Echo(EchoOf(1000 + key));
    }
    size_t sent = remote_->Served().size() - before;
    EXPECT_TRUE(sent == 0 || sent == 4) << "key " << key << " split: " << sent << " of 4 remote";
    remote_keys += sent == 4 ? 1 : 0;
  }
  EXPECT_GT(remote_keys, 5);
  EXPECT_LT(remote_keys, 50);
}

TEST_P(Migration, ShadowReportsTheDifferingFieldsByName) {
  LogCapture log;
  remote_->skew = true;
  auto channel = Make("shadow");
  auto client = MakeClient<rich::RichService>(channel);
  for (int i = 0; i < 5; ++i) {
    rich::Everything got = client->Echo(EchoOf(i));
    EXPECT_EQ(got.scalars.text, "same");  // the primary (local) answer
  }
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.calls, 5);
  EXPECT_EQ(stats.shadow.mismatches, 5);
  EXPECT_EQ(stats.shadow_by_method["Echo"].mismatches, 5);
  EXPECT_EQ(remote_->Shadowed().size(), 5u);  // the server saw them marked as shadow calls
  EXPECT_EQ(remote_->Served().size(), 0u);
  ASSERT_FALSE(stats.recent_mismatches.empty());
  const std::string& report = stats.recent_mismatches.back();
  EXPECT_NE(report.find("scalars.text: \"same\" vs \"remote\""), std::string::npos) << report;
  EXPECT_NE(report.find("containers.points[1].y: 4 vs 5"), std::string::npos) << report;
  EXPECT_EQ(report.find("scalars.i32"), std::string::npos) << report;
  std::vector<std::string> lines = log.With("shadow mismatch");
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("rich.RichService/Echo"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("scalars.text"), std::string::npos) << lines[0];

  // The same replies agree when they are equal.
  remote_->skew = false;
  for (int i = 5; i < 10; ++i) client->Echo(EchoOf(i));
  stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.matches, 5);
  EXPECT_EQ(stats.shadow.mismatches, 5);
}

// The call's metadata reaches the handler on whichever side serves it, and on its shadow: a
// handler that answers by it answers alike on both sides (no mismatch), and the local side's
// reply metadata comes back as the remote side's does.
TEST_P(Migration, MetadataReachesEitherSideAndItsShadow) {
  using Metadata = std::vector<std::pair<std::string, std::string>>;
  for (const char* mode : {"local", "remote", "shadow", "shadow:remote"}) {
    MigrationOptions options;
    options.shadow.methods = {"Histogram"};  // safe to run twice
    auto channel = Make(mode, options);
    auto client = MakeClient<rich::RichService>(channel);
    Metadata got;
    CallOptions call;
    call.metadata = {{"x-tenant", "acme"}};
    call.reply_metadata = &got;
    std::map<std::string, int32_t> seen;
    {
      ScopedCallOptions scope(call);
      seen = client->Histogram({"reply:x-side=any"});
    }
    EXPECT_EQ(seen["metadata:x-tenant=acme"], 1) << mode;
    EXPECT_EQ(got, (Metadata{{"x-side", "any"}})) << mode;
    MigrationStats stats = Settled(*channel);
    EXPECT_EQ(stats.shadow.mismatches, 0) << mode << ": " << stats.recent_mismatches.size();
    if (std::string(mode).rfind("shadow", 0) == 0) {
      EXPECT_EQ(stats.shadow.matches, 1) << mode;
    }
  }
}

TEST_P(Migration, IgnoredFieldsAreLeftOutOfTheComparison) {
  remote_->skew = true;
  MigrationOptions options;
  options.shadow.ignore_fields = {"text", "Echo:containers.points.y"};
  auto channel = Make("shadow", options);
  auto client = MakeClient<rich::RichService>(channel);
  for (int i = 0; i < 5; ++i) client->Echo(EchoOf(i));
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.matches, 5);
  EXPECT_EQ(stats.shadow.mismatches, 0);
  // Scoped to another method, the entry leaves nothing out of Echo.
  options.shadow.ignore_fields = {"text", "Path:containers.points.y"};
  channel = Make("shadow", options);
  client = MakeClient<rich::RichService>(channel);
  client->Echo(EchoOf(9));
  stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.mismatches, 1);
  ASSERT_EQ(stats.recent_mismatches.size(), 1u);
  EXPECT_EQ(stats.recent_mismatches[0].find("scalars.text"), std::string::npos);
  EXPECT_NE(stats.recent_mismatches[0].find("containers.points[1].y"), std::string::npos);
}

TEST_P(Migration, ShadowErrorsAreComparedByCode) {
  auto channel = Make("shadow:remote");
  auto client = MakeClient<rich::RichService>(channel);
  // Both sides refuse a negative id the same way: a match, and the caller sees the error.
  EXPECT_THROW(client->Notify(-1, "x", rich::Color::kRed), RpcError);
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(stats.shadow_by_method["Notify"].unsafe, 1);  // Notify is not idempotent
  channel = Make("shadow:remote", [] {
    MigrationOptions o;
    o.shadow.methods = {"Notify"};
    return o;
  }());
  client = MakeClient<rich::RichService>(channel);
  EXPECT_THROW(client->Notify(-1, "x", rich::Color::kRed), RpcError);
  stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.matches, 1);
  EXPECT_EQ(stats.remote_calls, 1);
}

TEST_P(Migration, NonIdempotentMethodsAreNotShadowedUnlessListed) {
  auto channel = Make("shadow");
  auto client = MakeClient<rich::RichService>(channel);
  rich::Order order;
  order.lines = {{1, 2}};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client->PlaceOrder(order), 2);
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(local_->placed.load(), 3);
  EXPECT_EQ(remote_->placed.load(), 0);
  EXPECT_EQ(stats.shadow.unsafe, 3);
  EXPECT_EQ(stats.shadow.calls, 0);

  MigrationOptions options;
  options.shadow.methods = {"PlaceOrder"};
  channel = Make("shadow", options);
  client = MakeClient<rich::RichService>(channel);
  client->PlaceOrder(order);
  stats = Settled(*channel);
  EXPECT_EQ(remote_->placed.load(), 1);
  EXPECT_EQ(stats.shadow.matches, 1);
}

TEST_P(Migration, AHangingShadowSideNeitherDelaysNorChangesTheCaller) {
  remote_->hold = true;
  MigrationOptions options;
  options.shadow.max_in_flight = 2;
  options.shadow.timeout = std::chrono::seconds(15);
  auto channel = Make("shadow", options);
  auto client = MakeClient<rich::RichService>(channel);
  // Every call returns while the remote side holds the two shadow calls the cap lets out.
  for (int i = 1; i <= 50; ++i) EXPECT_EQ(client->Count(), i);
  ASSERT_TRUE(remote_->WaitHolding(2));
  MigrationStats stats = channel->Stats();
  EXPECT_EQ(stats.shadow_in_flight, 2);
  EXPECT_EQ(stats.shadow.skipped, 48);
  EXPECT_EQ(stats.local_calls, 50);
  remote_->Release();
  stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.calls, 2);
}

TEST_P(Migration, ADeadShadowSideIsCountedAsUnansweredNotAsMismatch) {
  MigrationOptions options;
  options.mode = Mode("shadow");
  auto channel = MakeMigrationChannel<rich::RichService>(local_, Remote("127.0.0.1:1"),
                                                         options);  // nothing listens on port 1
  auto client = MakeClient<rich::RichService>(channel);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(client->Count(), i);
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(stats.shadow.errors, 5);
  EXPECT_EQ(stats.shadow.mismatches, 0);
}

TEST_P(Migration, ARemoteCallNeverSentFallsBackToLocalWhenAsked) {
  auto list = MakeChannel("static://127.0.0.1:1", GetParam());
  MigrationOptions options;
  options.mode = Mode("remote");
  auto channel = MakeMigrationChannel<rich::RichService>(local_, list, options);
  auto client = MakeClient<rich::RichService>(channel);
  EXPECT_THROW(client->Count(), RpcError);
  options.fallback_to_local = true;
  channel = MakeMigrationChannel<rich::RichService>(local_, list, options);
  client = MakeClient<rich::RichService>(channel);
  for (int i = 0; i < 5; ++i) client->Echo(EchoOf(i));
  EXPECT_EQ(local_->Served().size(), 5u);
  EXPECT_EQ(channel->Stats().local_fallbacks, 5);
  // shadow:remote that fell back: the local side answered, so there is nothing to compare.
  ASSERT_TRUE(channel->SetMode(Mode("shadow:remote"), "test").ok());
  client->Echo(EchoOf(5));
  MigrationStats stats = Settled(*channel);
  EXPECT_EQ(stats.local_fallbacks, 6);
  EXPECT_EQ(stats.shadow.calls, 0);
  EXPECT_EQ(local_->Served().size(), 6u);
}

TEST_P(Migration, SwitchingUnderLoadLosesAndRepeatsNoCall) {
  auto channel = Make("local");
  auto client = MakeClient<rich::RichService>(channel);
  testing::EchoLoad load(client, 4, EchoOf(0));
  for (int round = 0; round < 3; ++round) {
    for (const char* mode : {"shadow", "percent:50", "remote", "shadow:remote", "local"}) {
      ASSERT_TRUE(channel->SetMode(Mode(mode), "test").ok());
      ASSERT_TRUE(load.Progress(50)) << "calls stopped in mode " << mode;
    }
  }
  load.Stop();
  Settled(*channel);
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
  // Every call answered by exactly one primary side: the ids served (shadows apart) are the ids
  // the callers got answers for, each once.
  std::vector<int64_t> served = local_->Served();
  std::vector<int64_t> remote = remote_->Served();
  served.insert(served.end(), remote.begin(), remote.end());
  std::multiset<int64_t> got(served.begin(), served.end());
  std::vector<int64_t> done = load.answered_ids();
  std::multiset<int64_t> want(done.begin(), done.end());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  EXPECT_GT(local_->Served().size(), 0u);
  EXPECT_GT(remote.size(), 0u);
  EXPECT_GT(remote_->Shadowed().size() + local_->Shadowed().size(), 0u);
  EXPECT_EQ(channel->Stats().switches, 15);
}

TEST_P(Migration, ModesThatNeedAMissingSideAreRefused) {
  MigrationOptions options;
  options.mode = Mode("local");
  auto local_only = MakeMigrationChannel<rich::RichService>(local_, nullptr, options);
  absl::Status s = local_only->SetMode(Mode("percent:10"), "test");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("remote side"), std::string::npos) << s;
  EXPECT_EQ(local_only->mode().kind, Kind::kLocal);
  options.mode = Mode("remote");
  EXPECT_THROW(MakeMigrationChannel<rich::RichService>(local_, nullptr, options), RpcError);
  auto remote_only = MakeMigrationChannel<rich::RichService>(std::shared_ptr<rich::RichService>(),
                                                             Remote(address_), options);
  EXPECT_FALSE(remote_only->SetMode(Mode("shadow"), "test").ok());
}

INSTANTIATE_TEST_SUITE_P(Protocols, Migration,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param) {
                           return param.param == Protocol::kGrpc ? "Grpc" : "Thrift";
                         });

// The comparison itself, on values: every container shape, presence, enums by name.
TEST(ReplyDiff, NamesEveryKindOfDifference) {
  rich::Everything a;
  a.containers.counts = {{"x", 1}, {"y", 2}};
  a.containers.names = {"p", "q"};
  a.optionals.maybe_int = 3;
  a.scalars.color = rich::Color::kRed;
  a.children.resize(1);
  rich::Everything b = a;
  b.containers.counts = {{"x", 1}, {"z", 2}};
  b.containers.names = {"p"};
  b.optionals.maybe_int.reset();
  b.scalars.color = rich::Color::kBlue;
  b.children[0].id = 9;
  internal::DiffSink sink("Echo", nullptr, 100);
  internal::DiffValues(a, b, sink);
  std::set<std::string> diffs(sink.differences().begin(), sink.differences().end());
  EXPECT_EQ(diffs, (std::set<std::string>{
                       "scalars.color: kRed vs kBlue",
                       "containers.names: 2 entries vs 1",
                       "containers.counts[\"y\"]: 2 vs absent",
                       "containers.counts[\"z\"]: absent vs 2",
                       "optionals.maybe_int: 3 vs absent",
                       "children[0].id: 0 vs 9",
                   }));
  internal::DiffSink limited("Echo", nullptr, 2);
  internal::DiffValues(a, b, limited);
  EXPECT_EQ(limited.differences().size(), 2u);
  EXPECT_EQ(limited.count(), 6u);
  internal::DiffSink same("Echo", nullptr, 10);
  internal::DiffValues(a, a, same);
  EXPECT_EQ(same.count(), 0u);
}

}  // namespace
}  // namespace rpcboot
