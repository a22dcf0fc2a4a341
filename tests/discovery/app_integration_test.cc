// Service processes built on rpcboot::App, a real ZooKeeper (standalone or a 3-node ensemble)
// and clients that keep calling through zk:// channels while instances start, stop, die and
// ZooKeeper goes away.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "count_calls.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "tests/discovery/process_testing.h"
#include "tests/discovery/zookeeper_testing.h"

namespace rpcboot {
namespace {

using rpcboot::testing::ChildProcess;
using rpcboot::testing::Eventually;
using rpcboot::testing::ZooKeeperDir;
using rpcboot::testing::ZooKeeperEnsemble;
using rpcboot::testing::ZooKeeperServer;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ProtocolName(Protocol p) { return p == Protocol::kGrpc ? "Grpc" : "Thrift"; }

// Instances of the rich test app, and a client-side view of the registry.
class Fleet {
 public:
  Fleet(std::string connect, const std::string& name)
      : connect_(std::move(connect)), log_(ZooKeeperDir(name) + "-apps.log") {
    session_ = std::make_shared<discovery::Session>(discovery::SessionOptions{connect_});
    session_->Start();
    resolver_ = std::make_unique<discovery::Resolver>(session_, "/services");
    resolver_->Watch("rich", [](const discovery::InstanceList&) {});
  }
  ~Fleet() {
    instances_.clear();
    resolver_.reset();
  }

  ChildProcess& StartInstance(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {RPCBOOT_RICH_APP,
                                     "--app.name=rich",
                                     "--server.host=127.0.0.1",
                                     "--server.grpc_port=0",
                                     "--server.thrift_port=0",
                                     "--registry.zookeeper=" + connect_,
                                     "--registry.session_timeout_ms=2000",
                                     "--registry.drain_ms=300",
                                     "--server.shutdown_grace_ms=3000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    instances_.push_back(std::make_unique<ChildProcess>(argv, log_));
    return *instances_.back();
  }
  std::size_t Seen() const { return resolver_->Current("rich")->size(); }
  discovery::InstanceList View() const { return resolver_->Current("rich"); }
  std::vector<std::unique_ptr<ChildProcess>>& instances() { return instances_; }
  discovery::Session& session() { return *session_; }
  std::string Address() const { return "zk://" + connect_ + "/services/rich"; }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string connect_;
  std::string log_;
  std::shared_ptr<discovery::Session> session_;
  std::unique_ptr<discovery::Resolver> resolver_;
  std::vector<std::unique_ptr<ChildProcess>> instances_;
};

// Threads calling Echo (idempotent) and, optionally, Notify (not) until stopped.
class Load {
 public:
  Load(std::shared_ptr<rich::RichService> client, int threads, bool with_notify) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, client, with_notify, t] {
        int64_t i = 0;
        while (!stop_) {
          try {
            rich::EchoRequest request;
            request.value.id = t * 1000000 + i++;
            if (client->Echo(request).id != request.value.id) Fail("Echo returned another id");
            ++ok_;
            if (with_notify) {
              client->Notify(1, "load", rich::Color::kRed);
              ++ok_;
            }
          } catch (const RpcError& e) {
            Fail(e.what());
          }
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_)
      if (t.joinable()) t.join();
  }
  int64_t ok() const { return ok_; }
  int64_t failed() const { return failed_; }
  std::string first_failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_failure_;
  }
  // Waits until `n` more calls have succeeded.
  bool Progress(int64_t n) {
    int64_t target = ok_ + n;
    return Eventually([&] { return ok_ >= target; }, seconds(20));
  }

 private:
  void Fail(const std::string& what) {
    ++failed_;
    std::lock_guard<std::mutex> lock(mu_);
    if (first_failure_.empty()) first_failure_ = what;
  }
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> ok_{0};
  std::atomic<int64_t> failed_{0};
  std::mutex mu_;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

ChannelOptions FastOptions() {
  ChannelOptions options;
  options.default_timeout = seconds(5);
  return options;
}

TEST(AppLifecycle, InstancesAppearAfterStartAndDisappearAfterSigterm) {
  ZooKeeperServer zk("app-lifecycle");
  Fleet fleet(zk.connect(), "app-lifecycle");
  ChildProcess& app = fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  const discovery::InstanceList view = fleet.View();  // held: a republish may drop the old list
  const discovery::Instance& seen = view->front();
  EXPECT_EQ(seen.address, "127.0.0.1");
  EXPECT_EQ(seen.metadata.at("rpcboot.services"), "rich.RichService");
  EXPECT_EQ(seen.metadata.at("rpcboot.protocols"), "grpc,thrift");
  EXPECT_EQ(seen.port, *seen.PortFor("grpc"));

  for (Protocol p : {Protocol::kGrpc, Protocol::kThrift}) {
    auto client = MakeClient<rich::RichService>(MakeChannel(fleet.Address(), p, FastOptions()));
    EXPECT_EQ(client->Count(), p == Protocol::kGrpc ? 1 : 2) << ProtocolName(p);
  }

  app.Signal(SIGTERM);
  // The node goes first (deregistration), the process after the drain period.
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 0; }));
  int code = -1;
  ASSERT_TRUE(app.WaitFor(seconds(10), &code));
  EXPECT_EQ(code, 0) << fleet.Log();
  EXPECT_NE(fleet.Log().find("rich: stopped"), std::string::npos) << fleet.Log();
}

TEST(AppSecurity, TlsInstancesAreFoundAndCalledOverMutualTlsThroughTheRegistry) {
  ZooKeeperServer zk("app-tls");
  Fleet fleet(zk.connect(), "app-tls");
  const std::string certs = ZooKeeperDir("app-tls") + "-certs";
  ASSERT_EQ(std::system((std::string(RPCBOOT_CERTS_SCRIPT) + " " + certs + " >/dev/null").c_str()),
            0)
      << "making certificates failed: is the openssl command installed?";
  fleet.StartInstance({"--server.tls.cert_file=" + certs + "/server.crt",
                       "--server.tls.key_file=" + certs + "/server.key",
                       "--server.tls.ca_file=" + certs + "/ca.crt",
                       "--server.tls.require_client_cert=true",
                       "--server.auth.allow=order rich.RichService/*"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  EXPECT_EQ(fleet.View()->front().metadata.at("rpcboot.tls"), "true");

  auto options = [&](const std::string& cert) {
    ChannelOptions o = FastOptions();
    o.tls.ca_file = certs + "/ca.crt";
    if (!cert.empty()) {
      o.tls.cert_file = certs + "/" + cert + ".crt";
      o.tls.key_file = certs + "/" + cert + ".key";
    }
    return o;
  };
  for (Protocol p : {Protocol::kGrpc, Protocol::kThrift}) {
    // tls.enabled is not set: the registry says the instance serves TLS.
    auto order = MakeClient<rich::RichService>(MakeChannel(fleet.Address(), p, options("client")));
    EXPECT_GE(order->Count(), 1) << ProtocolName(p);
    auto ops = MakeClient<rich::RichService>(MakeChannel(fleet.Address(), p, options("ops")));
    try {
      ops->Count();
      ADD_FAILURE() << ProtocolName(p) << ": ops is not on the allow list";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kPermissionDenied) << e.what();
    }
    // Without a CA that signs the instance's certificate (the system's CAs do not), no call.
    auto stranger = MakeClient<rich::RichService>(MakeChannel(fleet.Address(), p, FastOptions()));
    try {
      stranger->Count();
      ADD_FAILURE() << ProtocolName(p) << ": a client that cannot verify the server called it";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::kUnavailable) << e.what();
    }
  }
  std::system(("rm -rf " + certs).c_str());
}

class AppResilience : public ::testing::TestWithParam<Protocol> {};

TEST_P(AppResilience, ASlowInstanceOfThreeIsEjectedThroughTheRegistryAndGetsOnlyProbes) {
  ZooKeeperServer zk("app-slow");
  Fleet fleet(zk.connect(), "app-slow");
  fleet.StartInstance();
  fleet.StartInstance();
  fleet.StartInstance({"--chaos.count_delay_ms=300"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  ChannelOptions options = FastOptions();
  options.outlier.interval = milliseconds(200);
  options.outlier.min_calls = 3;
  auto channel = MakeChannel(fleet.Address(), GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  auto ejected = [&] {
    int n = 0;
    for (const auto& i : channel->State().instances) n += i.ejected;
    return n;
  };
  // `calls` Count()s from 8 callers (or, with calls < 0, until `stop`): failures and calls
  // slower than 100 ms.
  std::atomic<int> slow{0}, failed{0};
  auto run = [&](int calls, const std::function<bool()>& stop) {
    std::vector<std::thread> callers;
    std::atomic<int> next{0};
    for (int t = 0; t < 8; ++t) {
      callers.emplace_back([&] {
        while (calls < 0 ? !stop() : next.fetch_add(1) < calls) {
          auto start = std::chrono::steady_clock::now();
          try {
            client->Count();
          } catch (const RpcError&) {
            failed.fetch_add(1);
          }
          if (std::chrono::steady_clock::now() - start > milliseconds(100)) slow.fetch_add(1);
        }
      });
    }
    for (std::thread& t : callers) t.join();
  };
  auto give_up = std::chrono::steady_clock::now() + seconds(20);
  run(-1, [&] { return ejected() == 1 || std::chrono::steady_clock::now() > give_up; });
  ASSERT_EQ(ejected(), 1) << "the instance answering 300 ms late was never ejected";
  EXPECT_EQ(failed.load(), 0);
  // While it is out, calls are fast: count those slower than 100 ms among 800.
  slow = 0;
  run(800, nullptr);
  EXPECT_EQ(failed.load(), 0);
  int ejections = 0;
  for (const auto& i : channel->State().instances) ejections += i.ejections;
  // Each slow call past the ejection is a probe, one per ejection period at most.
  EXPECT_LE(slow.load(), ejections + 8) << "slow calls beyond the probes";
  // It recovers (SIGUSR1): a probe finds it fast, and it takes its share of calls again.
  for (auto& instance : fleet.instances()) instance->Signal(SIGUSR1);
  give_up = std::chrono::steady_clock::now() + seconds(20);
  run(-1, [&] { return ejected() == 0 || std::chrono::steady_clock::now() > give_up; });
  ASSERT_EQ(ejected(), 0) << "the recovered instance never came back";
  std::map<std::string, int64_t> before;
  for (const auto& i : channel->State().instances) before[i.address] = i.picks;
  run(600, nullptr);
  EXPECT_EQ(failed.load(), 0);
  for (const auto& i : channel->State().instances)
    EXPECT_GT(i.picks - before[i.address], 60) << i.address << " did not get its share back";
}

using rpcboot::testing::CountCalls;

// "host:port" of the only instance the fleet has registered so far, as channels name it.
std::string OnlyInstance(Fleet& fleet, Protocol protocol) {
  discovery::InstanceList view = fleet.View();
  if (view == nullptr || view->size() != 1) return "";
  std::optional<int> port = view->front().PortFor(protocol == Protocol::kGrpc ? "grpc" : "thrift");
  return view->front().address + ":" + std::to_string(port.value_or(0));
}

// Stops every instance with SIGTERM and adds up the Count() attempts they say they received.
int64_t StopAndCountReceived(Fleet& fleet) {
  for (auto& instance : fleet.instances()) instance->Signal(SIGTERM);
  for (auto& instance : fleet.instances()) instance->Wait();
  std::istringstream log(fleet.Log());
  int64_t total = 0;
  for (std::string line; std::getline(log, line);) {
    const std::string key = "rich_app: Count received ";
    if (line.rfind(key, 0) == 0) total += std::stoll(line.substr(key.size()));
  }
  return total;
}

const ChannelState::Instance* InstanceIn(const ChannelState& state, const std::string& address) {
  for (const ChannelState::Instance& i : state.instances)
    if (i.address == address) return &i;
  return nullptr;
}

TEST_P(AppResilience, AnInstanceFailingHalfItsCallsIsEjectedAndIdempotentCallsNeverFail) {
  // One name per protocol: the instances' log is read, and must hold this run's lines only.
  const std::string name = "app-half-" + ProtocolName(GetParam());
  ZooKeeperServer zk(name);
  Fleet fleet(zk.connect(), name);
  fleet.StartInstance({"--chaos.count_fail=half"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  const std::string failing = OnlyInstance(fleet, GetParam());
  fleet.StartInstance();
  fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  ChannelOptions options = FastOptions();
  options.outlier.interval = milliseconds(200);
  options.outlier.min_calls = 3;
  options.retry_budget.ratio = 0.5;  // covers one instance of three failing half its calls
  auto channel = MakeChannel(fleet.Address(), GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  auto ejections = [&](const std::string& address) {
    ChannelState state = channel->State();
    const ChannelState::Instance* i = InstanceIn(state, address);
    return i == nullptr ? 0 : i->ejections;
  };
  int64_t failed = 0;
  auto give_up = std::chrono::steady_clock::now() + seconds(20);
  while (ejections(failing) == 0 && std::chrono::steady_clock::now() < give_up)
    failed += CountCalls(*client, 8, 300);
  ASSERT_GE(ejections(failing), 1) << "the instance failing half its calls was never ejected";
  EXPECT_EQ(failed, 0) << "an idempotent call failed";
  EXPECT_EQ(CountCalls(*client, 8, 1000), 0) << "an idempotent call failed";
  for (const ChannelState::Instance& i : channel->State().instances) {
    if (i.address != failing) {
      EXPECT_EQ(i.ejections, 0) << i.address << " was ejected too";
    }
  }
}

TEST_P(AppResilience, EveryInstanceFailingOpensTheCircuitWithinTheRetryBudget) {
  // One name per protocol: the instances' log is read, and must hold this run's lines only.
  const std::string name = "app-all-fail-" + ProtocolName(GetParam());
  ZooKeeperServer zk(name);
  Fleet fleet(zk.connect(), name);
  for (int i = 0; i < 3; ++i) fleet.StartInstance({"--chaos.count_fail=all"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  ChannelOptions options = FastOptions();
  options.outlier.interval = milliseconds(200);
  options.circuit.open_for = milliseconds(200);
  auto channel = MakeChannel(fleet.Address(), GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  const int64_t calls = 2000;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(CountCalls(*client, 4, calls), calls) << "every instance fails: so does every call";
  double seconds_taken =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ChannelState failing = channel->State();
  EXPECT_GT(failing.fast_failures, calls / 2) << "most calls should fail fast, circuit open";
  // Retries the budget allows: 10% of calls, 10 a second, and its initial 110.
  int64_t budget =
      static_cast<int64_t>(0.1 * static_cast<double>(calls) + 10 * seconds_taken) + 110;
  EXPECT_LE(failing.retries, budget) << "retries beyond the budget over " << seconds_taken << " s";

  // With a fallback, every call is answered.
  class Cached final : public testing::RichServiceImpl {
   public:
    int64_t Count() override { return -42; }
  };
  auto fallen_back = MakeClient<rich::RichService>(
      WithFallback<rich::RichService>(channel, std::make_shared<Cached>()));
  int64_t wrong = 0;
  for (int i = 0; i < 200; ++i) {
    try {
      wrong += fallen_back->Count() == -42 ? 0 : 1;
    } catch (const RpcError&) {
      ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0) << "a call was not answered by the fallback";

  // The instances heal: a probe closes the circuit and calls succeed.
  for (auto& instance : fleet.instances()) instance->Signal(SIGUSR1);
  int64_t made = calls + 200;
  for (auto until = std::chrono::steady_clock::now() + seconds(20);
       channel->State().circuit_open && std::chrono::steady_clock::now() < until;) {
    CountCalls(*client, 2, 20);
    made += 20;
  }
  ASSERT_FALSE(channel->State().circuit_open) << "the circuit never closed after healing";
  EXPECT_EQ(CountCalls(*client, 4, 200), 0);
  made += 200;
  // The servers' own count: every attempt the channel says it sent, no more.
  ChannelState end = channel->State();
  int64_t received = StopAndCountReceived(fleet);
  EXPECT_EQ(received, made - end.fast_failures + end.retries)
      << "calls made " << made << ", failed fast " << end.fast_failures << ", retries "
      << end.retries;
  EXPECT_LE(received - (made - calls), calls - failing.fast_failures + budget)
      << "attempts while failing beyond the calls sent and the budget";
}

TEST_P(AppResilience, HedgedCallsNeverWaitForAStalledInstanceAndTheLosersAreCancelled) {
  // One name per protocol: the instances' log is read, and must hold this run's lines only.
  const std::string name = "app-hedge-" + ProtocolName(GetParam());
  ZooKeeperServer zk(name);
  Fleet fleet(zk.connect(), name);
  fleet.StartInstance({"--chaos.count_delay_ms=3000"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  const std::string stalled = OnlyInstance(fleet, GetParam());
  fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 2; })) << fleet.Log();
  ChannelOptions options = FastOptions();
  options.outlier.enabled = false;  // hedging alone
  options.hedge_delay = milliseconds(30);
  options.retry_budget.ratio = 1;  // a backup for every call if need be
  auto channel = MakeChannel(fleet.Address(), GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  std::atomic<int64_t> slow{0};
  EXPECT_EQ(CountCalls(*client, 4, 120, &slow, milliseconds(1000)), 0)
      << "a hedged idempotent call failed";
  ChannelState state = channel->State();
  const ChannelState::Instance* s = InstanceIn(state, stalled);
  ASSERT_NE(s, nullptr);
  EXPECT_GT(s->picks, 0) << "no call went to the stalled instance first";
  EXPECT_GE(state.hedges, s->picks) << "a call to the stalled instance got no backup";
  // No call failed (above) or waited for the 3 s stall (below): each call sent to the stalled
  // instance first was answered by its backup. Its picks are not compared with the backups
  // that won: they may also hold backups, which lose (calls the fast instance took longer than
  // the hedge delay to answer, as in a loaded sanitizer run).
  EXPECT_GT(state.hedges_won, 0) << "no backup answered first";
  EXPECT_GE(state.cancelled, s->picks) << "the stalled instance's attempts were not cancelled";
  EXPECT_EQ(slow.load(), 0) << "calls waited for the stalled instance";
}

TEST_P(AppResilience, ACallPastMaxInFlightFailsAtOnce) {
  // One name per protocol: the instances' log is read, and must hold this run's lines only.
  const std::string name = "app-limit-" + ProtocolName(GetParam());
  ZooKeeperServer zk(name);
  Fleet fleet(zk.connect(), name);
  for (int i = 0; i < 3; ++i) fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  ChannelOptions options = FastOptions();
  options.max_in_flight = 3;
  auto channel = MakeChannel(fleet.Address(), GetParam(), options);
  auto client = MakeClient<rich::RichService>(channel);
  // Three calls held in their handlers (each announces itself in the log when it starts).
  std::vector<std::thread> held;
  for (int i = 0; i < 3; ++i)
    held.emplace_back([&, i] { client->Notify(3000 + i, "held", rich::Color::kRed); });
  ASSERT_TRUE(Eventually([&] {
    std::string log = fleet.Log();
    for (int i = 0; i < 3; ++i)
      if (log.find("Notify " + std::to_string(3000 + i) + " started") == std::string::npos)
        return false;
    return true;
  })) << fleet.Log();
  try {
    client->Count();
    ADD_FAILURE() << "a fourth call went out";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_in_flight"), std::string::npos) << e.what();
  }
  for (std::thread& t : held) t.join();
  EXPECT_NO_THROW(client->Count()) << "the limit frees as calls end";
  EXPECT_EQ(channel->State().fast_failures, 1);
}

TEST_P(AppResilience, ADeadlineSetAtTheFirstHopReachesTheThirdThroughTheRegistry) {
  const std::string name = "app-hops-" + ProtocolName(GetParam());
  ZooKeeperServer zk(name);
  Fleet fleet(zk.connect(), name);
  const std::string protocol = GetParam() == Protocol::kGrpc ? "grpc" : "thrift";
  // A -> B -> C, each its own process found through the registry; C takes 3 s.
  fleet.StartInstance({"--app.name=hop_c", "--chaos.count_delay_ms=3000"});
  for (const char* hop : {"b", "a"}) {
    fleet.StartInstance(
        {std::string("--app.name=hop_") + hop, "--chaos.count_next=true",
         std::string("--clients.rich.RichService.app=hop_") + (*hop == 'b' ? "c" : "b"),
         "--clients.rich.RichService.protocol=" + protocol});
  }
  ASSERT_TRUE(Eventually([&] {
    for (const char* app : {"/services/hop_a", "/services/hop_b", "/services/hop_c"}) {
      absl::StatusOr<std::vector<std::string>> children = fleet.session().Children(app, false);
      if (!children.ok() || children->empty()) return false;
    }
    return true;
  })) << fleet.Log();
  auto a = MakeClient<rich::RichService>(
      MakeChannel("zk://" + zk.connect() + "/services/hop_a", GetParam(), FastOptions()));
  // A call through all three first (each hop sees the next once its watch has fired: until
  // then it answers UNAVAILABLE), so the 200 ms below are spent on the call, not on a cold start.
  std::string warm_up_error;
  ASSERT_TRUE(Eventually([&] {
    try {
      ScopedCallOptions deadline({seconds(10)});
      a->Count();
      return true;
    } catch (const RpcError& e) {
      warm_up_error = e.what();
      return false;
    }
  })) << warm_up_error;
  const std::size_t warm = fleet.Log().size();
  try {
    ScopedCallOptions deadline({milliseconds(200)});
    a->Count();
    ADD_FAILURE() << "the call outlived its deadline";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kDeadlineExceeded) << e.what();
  }
  // A answered while C's handler still ran: the caller did not wait for C's 3 s.
  std::string log = fleet.Log().substr(warm);
  ASSERT_NE(log.find("rich_app: Count saw "), std::string::npos) << "the call never reached C";
  EXPECT_EQ(log.find("rich_app: Count done"), std::string::npos) << "A waited for C";
  int64_t seen = std::stoll(log.substr(log.find("rich_app: Count saw ") + 20));
  EXPECT_GT(seen, 0);
  EXPECT_LT(seen, 200) << "C saw more than A's deadline left";
}

INSTANTIATE_TEST_SUITE_P(Protocols, AppResilience,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) { return ProtocolName(param_info.param); });

class AppUnderLoad : public ::testing::TestWithParam<Protocol> {};

TEST_P(AppUnderLoad, KillNineOfOneOfThreeFailsNoIdempotentCall) {
  ZooKeeperServer zk("app-kill9-" + ProtocolName(GetParam()));
  Fleet fleet(zk.connect(), "app-kill9-" + ProtocolName(GetParam()));
  for (int i = 0; i < 3; ++i) fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), GetParam(), FastOptions()));
  Load load(client, 4, /*with_notify=*/false);
  ASSERT_TRUE(load.Progress(500));
  fleet.instances()[1]->Signal(SIGKILL);
  // Its node lives on until its session times out (2 s): calls meet the dead instance and move on.
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 2; }));
  ASSERT_TRUE(load.Progress(2000));
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
  EXPECT_GT(load.ok(), 2500);
}

TEST_P(AppUnderLoad, RollingRestartWithSigtermFailsNoCall) {
  ZooKeeperServer zk("app-rolling-" + ProtocolName(GetParam()));
  Fleet fleet(zk.connect(), "app-rolling-" + ProtocolName(GetParam()));
  for (int i = 0; i < 3; ++i) fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), GetParam(), FastOptions()));
  Load load(client, 4, /*with_notify=*/true);  // non-idempotent calls too
  ASSERT_TRUE(load.Progress(500));
  for (int i = 0; i < 3; ++i) {
    ChildProcess& old = *fleet.instances()[i];
    old.Signal(SIGTERM);
    int code = -1;
    ASSERT_TRUE(old.WaitFor(seconds(15), &code));
    EXPECT_EQ(code, 0);
    fleet.StartInstance();
    ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 3; })) << fleet.Log();
    ASSERT_TRUE(load.Progress(300));
  }
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
}

TEST_P(AppUnderLoad, AnInstanceDyingMidCallFailsANonIdempotentCallWithoutRetry) {
  // The request has left: the method may have run. A non-idempotent call must not be sent again
  // (here there is nowhere else to send it; the error says why it was not retried).
  ZooKeeperServer zk("app-midcall-" + ProtocolName(GetParam()));
  Fleet fleet(zk.connect(), "app-midcall-" + ProtocolName(GetParam()));
  ChildProcess& app = fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), GetParam(), FastOptions()));
  client->Count();  // connected
  std::thread killer([&] {
    // Kill it once the call is in its handler: the request has surely left.
    EXPECT_TRUE(Eventually([&] {
      return fleet.Log().find("Notify 4000 started") != std::string::npos;
    })) << fleet.Log();
    app.Signal(SIGKILL);
  });
  try {
    client->Notify(1000 + 3000, "slow", rich::Color::kRed);  // the handler sleeps 3 s
    ADD_FAILURE() << "the call succeeded although its server died";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::kUnavailable) << e.what();
    EXPECT_NE(e.message().find("not retried: Notify is not idempotent and its request had left"),
              std::string::npos)
        << e.message();
  }
  killer.join();
}

INSTANTIATE_TEST_SUITE_P(Protocols, AppUnderLoad,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) { return ProtocolName(param_info.param); });

TEST(AppZooKeeper, OutageLongerThanTheSessionTimeoutKeepsCallsFlowingAndRegistrationsComeBack) {
  ZooKeeperServer zk("app-outage");
  Fleet fleet(zk.connect(), "app-outage");
  for (int i = 0; i < 2; ++i) fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 2; })) << fleet.Log();
  std::vector<std::string> ids;
  const discovery::InstanceList view = fleet.View();
  for (const discovery::Instance& i : *view) ids.push_back(i.id);
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), Protocol::kGrpc, FastOptions()));
  Load load(client, 4, /*with_notify=*/true);
  ASSERT_TRUE(load.Progress(300));

  zk.Stop();
  std::this_thread::sleep_for(seconds(5));  // 2.5 session timeouts
  ASSERT_TRUE(load.Progress(300)) << "calls keep flowing on the cached list";
  zk.Start();  // same port, data intact

  // Both instances are registered again, under new sessions, with the same ids.
  ASSERT_TRUE(Eventually(
      [&] {
        if (!fleet.session().connected()) return false;
        for (const std::string& id : ids) {
          absl::StatusOr<discovery::Session::Node> node =
              fleet.session().Get("/services/rich/" + id, false);
          if (!node.ok()) return false;
        }
        return true;
      },
      seconds(20)))
      << fleet.Log();
  std::this_thread::sleep_for(seconds(3));  // past the old sessions' expiry
  EXPECT_EQ(fleet.Seen(), 2u);
  ASSERT_TRUE(load.Progress(300));
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
}

TEST(AppZooKeeper, KillingTheEnsembleLeaderUnderLoadFailsNoCallAndLosesNoRegistration) {
  ZooKeeperEnsemble ensemble("app-ensemble");
  Fleet fleet(ensemble.connect(), "app-ensemble");
  for (int i = 0; i < 2; ++i) fleet.StartInstance({"--registry.session_timeout_ms=6000"});
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 2; })) << fleet.Log();
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), Protocol::kThrift, FastOptions()));
  Load load(client, 4, /*with_notify=*/true);
  ASSERT_TRUE(load.Progress(300));
  // Asked over the four-letter-word port, which a loaded machine may answer late: ask again.
  int leader = 0;
  ASSERT_TRUE(Eventually([&] { return (leader = ensemble.Leader()) != 0; }, seconds(20)))
      << "no member says it leads";
  ensemble.StopMember(leader);
  ASSERT_TRUE(Eventually([&] { return ensemble.Leader() != 0; }, seconds(30)))
      << "the two left elect a leader";
  ASSERT_TRUE(load.Progress(500));
  std::this_thread::sleep_for(seconds(2));
  ASSERT_TRUE(Eventually([&] { return fleet.session().connected(); }));
  absl::StatusOr<std::vector<std::string>> nodes =
      fleet.session().Children("/services/rich", false);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(nodes->size(), 2u) << "no registration lost";
  EXPECT_EQ(fleet.Seen(), 2u);
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
}

TEST(AppZooKeeper, GarbageAndForeignNodesNeverBreakTheViewUnderLoad) {
  ZooKeeperServer zk("app-garbage");
  Fleet fleet(zk.connect(), "app-garbage");
  fleet.StartInstance();
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 1; })) << fleet.Log();
  auto client =
      MakeClient<rich::RichService>(MakeChannel(fleet.Address(), Protocol::kGrpc, FastOptions()));
  Load load(client, 2, /*with_notify=*/true);
  ASSERT_TRUE(load.Progress(200));
  discovery::Session& admin = fleet.session();
  ASSERT_TRUE(
      admin.Create("/services/rich/garbage", "{{{", discovery::Session::Mode::kPersistent).ok());
  // A Java service registered by Curator with Spring's payload but no rpcboot metadata.
  ASSERT_TRUE(admin
                  .Create("/services/rich/java-1",
                          R"({"name":"rich","id":"java-1","address":"127.0.0.1","port":1,)"
                          R"("sslPort":null,"payload":{"@class":"org.springframework.cloud.)"
                          R"(zookeeper.discovery.ZookeeperInstance","id":"rich-java","name":)"
                          R"("rich","metadata":{"instance_status":"UP"}},)"
                          R"("registrationTimeUTC":1,"serviceType":"DYNAMIC","uriSpec":null})",
                          discovery::Session::Mode::kPersistent)
                  .ok());
  ASSERT_TRUE(Eventually([&] { return fleet.Seen() == 2; }));
  ASSERT_TRUE(load.Progress(500));
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
}

// `n` distinct ports free now (bound together, then released), for a child process told where
// to listen. Bound together so that two of them are never the same port.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds;
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot find a free port: " << std::strerror(errno);
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  return ports;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::size_t Occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A rich_app without a registry on two fixed loopback ports, optionally under prlimit.
struct LocalApp {
  LocalApp(const std::string& name, std::vector<std::string> extra,
           std::vector<std::string> prefix = {}, bool with_admin = false)
      : LocalApp(name, std::move(extra), std::move(prefix), with_admin, FreePorts(3)) {}
  LocalApp(const std::string& name, std::vector<std::string> extra, std::vector<std::string> prefix,
           bool with_admin, const std::vector<int>& ports)
      : grpc_port(ports[0]),
        thrift_port(ports[1]),
        admin_port(with_admin ? ports[2] : 0),
        log(ZooKeeperDir(name) + ".log") {
    std::vector<std::string> argv = std::move(prefix);
    for (const std::string& a :
         {std::string(RPCBOOT_RICH_APP), std::string("--app.name=rich"),
          std::string("--server.host=127.0.0.1"), "--server.grpc_port=" + std::to_string(grpc_port),
          "--server.thrift_port=" + std::to_string(thrift_port)})
      argv.push_back(a);
    if (with_admin) argv.push_back("--admin.port=" + std::to_string(admin_port));
    for (std::string& a : extra) argv.push_back(std::move(a));
    std::remove(log.c_str());
    process = std::make_unique<ChildProcess>(argv, log);
  }
  std::shared_ptr<rich::RichService> Client(Protocol p) const {
    int port = p == Protocol::kGrpc ? grpc_port : thrift_port;
    return MakeClient<rich::RichService>(
        MakeChannel("127.0.0.1:" + std::to_string(port), p, FastOptions()));
  }
  bool Ready() const {
    return Eventually([&] {
      try {
        Client(Protocol::kGrpc)->Count();
        Client(Protocol::kThrift)->Count();
        return true;
      } catch (const RpcError&) {
        return false;
      }
    });
  }
  int grpc_port;
  int thrift_port;
  int admin_port;  // 0 without one
  std::string log;
  std::unique_ptr<ChildProcess> process;
};

TEST(AppShutdown, SigtermWithFiftyCallsInFlightOnEachProtocolFailsNone) {
  LocalApp app("app-sigterm-inflight",
               {"--server.handler_threads=128", "--server.shutdown_grace_ms=6000"});
  ASSERT_TRUE(app.Ready()) << ReadFile(app.log);
  std::vector<std::future<std::string>> calls;
  for (Protocol p : {Protocol::kGrpc, Protocol::kThrift}) {
    for (int i = 0; i < 50; ++i) {
      auto client = app.Client(p);  // its own channel: Thrift serves one call per connection
      calls.push_back(std::async(std::launch::async, [client] {
        try {
          ScopedCallOptions patient({seconds(20)});
          client->Notify(1000 + 1500, "in flight", rich::Color::kRed);  // a 1.5 s handler
          return std::string();
        } catch (const RpcError& e) {
          return std::string(e.what());
        }
      }));
    }
  }
  ASSERT_TRUE(Eventually(
      [&] { return Occurrences(ReadFile(app.log), "Notify 2500 started") == 100; }, seconds(30)))
      << "all 100 calls reached their handlers";
  app.process->Signal(SIGTERM);
  int failed = 0;
  std::string first;
  for (auto& call : calls) {
    std::string error = call.get();
    if (!error.empty() && failed++ == 0) first = error;
  }
  EXPECT_EQ(failed, 0) << "first failure: " << first;
  EXPECT_EQ(app.process->Wait(), 0) << ReadFile(app.log);
}

// Opens up to `n` connections to `port` on 127.0.0.1 that send nothing.
std::vector<int> Flood(int port, int n) {
  std::vector<int> flood;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      flood.push_back(fd);
    } else {
      ::close(fd);
    }
  }
  return flood;
}

TEST(AppResources, AConnectionFloodUnderADescriptorLimitFailsConnectionsNotTheProcess) {
  // 160 descriptors in all: the flood below asks for far more than the process can hold.
  LocalApp app("app-fd-flood", {"--server.max_connections=100000"},
               {"/usr/bin/prlimit", "--nofile=160:160", "--"});
  ASSERT_TRUE(app.Ready()) << ReadFile(app.log);
  std::vector<int> flood = Flood(app.thrift_port, 400);
  int code = 0;
  EXPECT_FALSE(app.process->WaitFor(milliseconds(200), &code)) << "the flood ended the process";
  for (int fd : flood) ::close(fd);
  // Once the flood is gone, the process serves again on both protocols.
  EXPECT_TRUE(app.Ready()) << ReadFile(app.log);
  EXPECT_NE(ReadFile(app.log).find("out of file descriptors"), std::string::npos)
      << "the shortage is logged";
  app.process->Signal(SIGTERM);
  EXPECT_EQ(app.process->Wait(), 0);
}

TEST(AppResources, AConnectionFloodOnTheGrpcPortLeavesGrpcListening) {
  // gRPC's own accept gives up on its listener for good at the first EMFILE (grpc#16058); the
  // server's must not.
  LocalApp app("app-fd-flood-grpc", {}, {"/usr/bin/prlimit", "--nofile=160:160", "--"});
  ASSERT_TRUE(app.Ready()) << ReadFile(app.log);
  std::vector<int> flood = Flood(app.grpc_port, 400);
  int code = 0;
  EXPECT_FALSE(app.process->WaitFor(milliseconds(200), &code)) << "the flood ended the process";
  for (int fd : flood) ::close(fd);
  EXPECT_TRUE(app.Ready()) << ReadFile(app.log);
  EXPECT_NE(ReadFile(app.log).find("gRPC: out of file descriptors"), std::string::npos)
      << "the shortage is logged";
  app.process->Signal(SIGTERM);
  EXPECT_EQ(app.process->Wait(), 0);
}

// The answer to GET `path` on 127.0.0.1:`port` (its whole text), or "" without one.
std::string HttpGet(int port, const std::string& path) {
  std::vector<int> fds = Flood(port, 1);
  if (fds.empty()) return "";
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  std::string answer;
  if (::send(fds[0], request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fds[0], buf, sizeof buf, 0)) > 0;) answer.append(buf, n);
  }
  ::close(fds[0]);
  return answer;
}

TEST(AppResources, AConnectionFloodOnTheAdminPortWhileOutOfDescriptorsFailsConnectionsOnly) {
  LocalApp app("app-fd-flood-admin", {"--server.max_connections=100000"},
               {"/usr/bin/prlimit", "--nofile=160:160", "--"}, /*with_admin=*/true);
  const int admin_port = app.admin_port;
  ASSERT_TRUE(app.Ready()) << ReadFile(app.log);
  // The admin port opens just after the RPC ports (App::Start): its /health answers 200 then.
  std::string health;
  ASSERT_TRUE(Eventually([&] {
    health = HttpGet(admin_port, "/health");
    return health.rfind("HTTP/1.1 200 OK\r\n", 0) == 0;
  })) << "/health answered: "
      << health;
  // Thrift's connections take every descriptor the process has; then the admin port is flooded.
  std::vector<int> flood = Flood(app.thrift_port, 400);
  ASSERT_TRUE(Eventually([&] {
    return ReadFile(app.log).find("out of file descriptors") != std::string::npos;
  })) << "the Thrift flood did not use up the descriptors";
  std::vector<int> admin_flood = Flood(admin_port, 100);
  ASSERT_TRUE(Eventually([&] {
    return ReadFile(app.log).find("admin: cannot accept a connection") != std::string::npos;
  })) << ReadFile(app.log);
  int code = 0;
  EXPECT_FALSE(app.process->WaitFor(milliseconds(200), &code)) << "the flood ended the process";
  for (int fd : flood) ::close(fd);
  for (int fd : admin_flood) ::close(fd);
  // Once the floods are gone the port answers again.
  EXPECT_TRUE(Eventually([&] {
    return HttpGet(admin_port, "/health").rfind("HTTP/1.1 200 OK\r\n", 0) == 0;
  })) << ReadFile(app.log);
  app.process->Signal(SIGTERM);
  EXPECT_EQ(app.process->Wait(), 0);
}

TEST(AppConfig, BadFlagsStopTheProcessWithTheReason) {
  ChildProcess app({RPCBOOT_RICH_APP, "--app.name=rich", "--server.grpc_port=http"},
                   ZooKeeperDir("app-config") + ".log");
  int code = app.Wait();
  EXPECT_EQ(code, 2);
  std::ifstream in(ZooKeeperDir("app-config") + ".log");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("server.grpc_port: 'http' from command line --server.grpc_port is not an "
                      "integer in -1..65535"),
            std::string::npos)
      << text;
}

TEST(AppConfig, AClientThatCannotReachItsServiceStopsTheProcessWithTheKey) {
  std::string log = ZooKeeperDir("app-badclient") + ".log";
  ChildProcess bad_address({RPCBOOT_RICH_APP, "--app.name=rich", "--server.grpc_port=0",
                            "--clients.rich.RichService.address=static://10.0.0.1:1,nonsense"},
                           log);
  EXPECT_EQ(bad_address.Wait(), 2);
  EXPECT_NE(ReadFile(log).find("clients.rich.RichService.address: address "
                               "'static://10.0.0.1:1,nonsense': endpoint 'nonsense' is not "
                               "host:port"),
            std::string::npos)
      << ReadFile(log);
  ChildProcess no_route({RPCBOOT_RICH_APP, "--app.name=rich", "--server.grpc_port=0",
                         "--clients.rich.RichService.protocol=thrift"},
                        log);
  EXPECT_EQ(no_route.Wait(), 2);
  EXPECT_NE(ReadFile(log).find("clients.rich.RichService: no way to reach it: set "
                               "clients.rich.RichService.address or registry.zookeeper"),
            std::string::npos)
      << ReadFile(log);
}

TEST(AppConfig, AnUnknownLoadBalancerStopsTheProcessWithTheKey) {
  std::string log = ZooKeeperDir("app-badbalancer") + ".log";
  ChildProcess app({RPCBOOT_RICH_APP, "--app.name=rich", "--server.grpc_port=0",
                    "--clients.rich.RichService.address=127.0.0.1:1",
                    "--clients.rich.RichService.load_balancer=fastest"},
                   log);
  EXPECT_EQ(app.Wait(), 2);
  EXPECT_NE(ReadFile(log).find("clients.rich.RichService.load_balancer: 'fastest' is not a load "
                               "balancer (known: consistent_hash, p2c, round_robin, "
                               "weighted_random;"),
            std::string::npos)
      << ReadFile(log);
}

TEST(AppConfig, MissingConfigFileExitsTwoWithTheProgramName) {
  std::string log = ZooKeeperDir("app-noconfig") + ".log";
  ChildProcess app({RPCBOOT_RICH_APP, "--config=/nonexistent/rich.yaml"}, log);
  EXPECT_EQ(app.Wait(), 2);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string program = RPCBOOT_RICH_APP;
  program = program.substr(program.rfind('/') + 1);
  EXPECT_NE(text.find(program + ": config file /nonexistent/rich.yaml cannot be read"),
            std::string::npos)
      << text;
}

TEST(AppConfig, HelpListsTheKeysAndExitsZero) {
  std::string log = ZooKeeperDir("app-help") + ".log";
  ChildProcess app({RPCBOOT_RICH_APP, "--help"}, log);
  EXPECT_EQ(app.Wait(), 0);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("registry.zookeeper (RPCBOOT_REGISTRY_ZOOKEEPER, default empty)"),
            std::string::npos)
      << text;
}

TEST(AppConfig, FailFastWithoutZooKeeperExitsOne) {
  ZooKeeperServer zk("app-failfast");
  std::string connect = zk.connect();
  zk.Stop();
  std::string log = ZooKeeperDir("app-failfast") + ".log";
  ChildProcess app({RPCBOOT_RICH_APP, "--app.name=rich", "--server.grpc_port=0",
                    "--registry.zookeeper=" + connect, "--registry.fail_fast=true",
                    "--registry.connect_timeout_ms=1000"},
                   log);
  EXPECT_EQ(app.Wait(), 1);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("cannot register in ZooKeeper " + connect), std::string::npos) << text;
}

}  // namespace
}  // namespace rpcboot
