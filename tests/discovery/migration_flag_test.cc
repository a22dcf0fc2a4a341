// A migration driven through its flag node, with a real ZooKeeper, the rich app as the remote
// service in its own process and the rpcboot tool writing the flag: a caller under load is
// switched local -> shadow -> (a bad value) -> percent:50 -> remote -> local, and no call fails,
// every call is answered by exactly one primary side (counted on both sides, the remote one by
// the ids it recorded), the shadow comparison finds exactly the calls the remote answers
// differently and names the field, the bad value is logged and changes nothing, and deleting
// the flag brings back the configured mode.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "discovery/session.h"
#include "echo_load.h"
#include "process_testing.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"
#include "rpcboot/base/log.h"
#include "zookeeper_testing.h"

namespace rpcboot {
namespace {

using rpcboot::testing::ChildProcess;
using rpcboot::testing::Eventually;
using rpcboot::testing::ZooKeeperDir;
using rpcboot::testing::ZooKeeperServer;

// The in-process side: records the ids it serves.
class LocalRich final : public testing::RichServiceImpl {
 public:
  rich::Everything Echo(const rich::EchoRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    served.push_back(request.value.id);
    return request.value;
  }
  std::vector<int64_t> Served() {
    std::lock_guard<std::mutex> lock(mu_);
    return served;
  }

 private:
  std::mutex mu_;
  std::vector<int64_t> served;
};

// Runs the rpcboot tool; returns its output (and exit code).
std::string Tool(const std::string& args, int* code) {
  std::string out;
  FILE* pipe = ::popen((std::string(RPCBOOT_CLI) + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return "cannot run " + std::string(RPCBOOT_CLI);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  int status = ::pclose(pipe);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class Lines {
 public:
  Lines() {
    SetLogSink([this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~Lines() { SetLogSink(nullptr); }
  bool Has(const std::string& a, const std::string& b = "") {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& l : lines_)
      if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
    return false;
  }
  std::string All(const std::string& a) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const std::string& l : lines_)
      if (l.find(a) != std::string::npos) out += l + "\n";
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(MigrationFlag, ACallerSwitchedThroughItsFlagUnderLoadLosesAndRepeatsNoCall) {
  Lines log;
  ZooKeeperServer zk("migration-flag");
  const std::string record = ZooKeeperDir("migration-flag") + "-echoes.txt";
  std::remove(record.c_str());
  auto remote = std::make_unique<ChildProcess>(
      std::vector<std::string>{RPCBOOT_RICH_APP, "--app.name=rich", "--server.host=127.0.0.1",
                               "--server.grpc_port=0", "--registry.zookeeper=" + zk.connect(),
                               "--registry.drain_ms=100", "--chaos.echo_record=" + record,
                               "--chaos.echo_skew_every=10"},
      ZooKeeperDir("migration-flag") + "-rich.log");

  absl::StatusOr<AppConfig> config =
      LoadConfig({"--app.name=caller", "--registry.zookeeper=" + zk.connect(),
                  "--clients.rich.RichService.protocol=grpc", "--admin.port=0"});
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<App>> app = App::FromConfig(*config);
  ASSERT_TRUE(app.ok()) << app.status();
  auto local = std::make_shared<LocalRich>();
  (*app)->Local<rich::RichService>(local);
  std::shared_ptr<rich::RichService> client = (*app)->Client<rich::RichService>();
  ASSERT_TRUE((*app)->Start().ok());  // a client-only app: its admin port
  auto mode = [&] { return (*app)->Migration("rich.RichService")->mode.ToString(); };
  EXPECT_EQ(mode(), "local");  // App::Local and no configured mode: local

  rich::EchoRequest plain;
  plain.value.scalars.text = "plain";
  testing::EchoLoad load(client, 4, plain);
  auto some_calls = [&] { return load.Progress(200); };
  const std::string zk_address = "zk://" + zk.connect();
  auto flag = [&](const std::string& value) {
    int code = -1;
    std::string out = Tool("flag " + zk_address + " caller rich.RichService " + value, &code);
    EXPECT_EQ(code, 0) << out;
    return out;
  };

  ASSERT_TRUE(some_calls());
  // The remote side is up and the caller sees it before any call may go there.
  ASSERT_TRUE(Eventually([&] {
    return (*app)->ClientState("rich.RichService").instances.size() == 1;
  })) << "the caller never saw the rich app in ZooKeeper";
  for (const char* step : {"shadow", "percent:50", "remote", "local"}) {
    std::string out = flag(step);
    EXPECT_NE(out.find("/rpcboot/migration/caller/rich.RichService = " + std::string(step)),
              std::string::npos)
        << out;
    ASSERT_TRUE(Eventually([&] {
      return mode() ==
             (step == std::string("shadow") ? std::string("shadow:local") : std::string(step));
    })) << step
        << ": the caller is still in " << mode();
    ASSERT_TRUE(some_calls()) << step;
    if (step == std::string("shadow")) {
      // A value that is not a mode, written by hand (the tool refuses it): logged with the
      // node's version, the mode stays.
      discovery::Session writer(discovery::SessionOptions{zk.connect()});
      writer.Start();
      ASSERT_TRUE(writer.WaitConnected(std::chrono::seconds(10)));
      ASSERT_TRUE(writer.Set("/rpcboot/migration/caller/rich.RichService", "shadow:both").ok());
      ASSERT_TRUE(Eventually([&] { return log.Has("is not a mode", "keeping shadow:local"); }));
      EXPECT_TRUE(log.Has("/rpcboot/migration/caller/rich.RichService version 1"));
      EXPECT_EQ(mode(), "shadow:local");
      ASSERT_TRUE(some_calls());
    }
  }
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << load.first_failure();
  const std::vector<int64_t> done = load.answered_ids();
  ASSERT_TRUE(
      Eventually([&] { return (*app)->Migration("rich.RichService")->shadow_in_flight == 0; }));
  MigrationStats stats = *(*app)->Migration("rich.RichService");
  EXPECT_EQ(stats.local_calls + stats.remote_calls, static_cast<int64_t>(done.size()));
  EXPECT_EQ(stats.switches, 4);
  EXPECT_NE(stats.mode_source.find("version"), std::string::npos) << stats.mode_source;

  // Deleting the flag: back to the configured mode (local), logged.
  flag("remote");
  ASSERT_TRUE(Eventually([&] { return mode() == "remote"; }));
  int code = -1;
  EXPECT_NE(Tool("flag " + zk_address + " caller rich.RichService", &code).find("= remote"),
            std::string::npos);
  flag("clear");
  ASSERT_TRUE(Eventually([&] { return mode() == "local"; }));
  EXPECT_TRUE(log.Has("deleted: the configured mode"));

  // The remote side's record, written when it stops.
  remote->Signal(SIGTERM);
  EXPECT_EQ(remote->Wait(), 0);
  std::ifstream in(record);
  ASSERT_TRUE(in.good()) << "no record at " << record;
  std::multiset<int64_t> primary_remote, shadowed;
  std::string kind;
  int64_t id;
  while (in >> kind >> id) (kind == "p" ? primary_remote : shadowed).insert(id);

  std::multiset<int64_t> answered(done.begin(), done.end());
  std::multiset<int64_t> served(primary_remote);
  for (int64_t local_id : local->Served()) served.insert(local_id);
  EXPECT_EQ(served.size(), answered.size());
  EXPECT_TRUE(served == answered) << "a call was served twice, or by no side";
  EXPECT_GT(primary_remote.size(), 100u);
  EXPECT_GT(local->Served().size(), 100u);

  // Shadow: the remote answered every 10th id differently; exactly those are mismatches.
  ASSERT_GT(shadowed.size(), 0u);
  int64_t skewed = 0;
  for (int64_t s : shadowed) skewed += s % 10 == 0 ? 1 : 0;
  EXPECT_EQ(stats.shadow.calls, static_cast<int64_t>(shadowed.size()));
  EXPECT_EQ(stats.shadow.errors, 0) << log.All("got no answer");
  EXPECT_EQ(stats.shadow.mismatches, skewed);
  EXPECT_EQ(stats.shadow.matches, static_cast<int64_t>(shadowed.size()) - skewed);
  EXPECT_TRUE(log.Has("shadow mismatch", "scalars.text: \"plain\" vs \"skewed\""));

  // The same figures on the admin port: /metrics and /status.json.
  httplib::Client http("127.0.0.1", (*app)->admin_port());
  httplib::Result metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  for (const std::string& line :
       {"rpcboot_migration_shadow_total{service=\"rich.RichService\",method=\"Echo\","
        "result=\"mismatch\"} " +
            std::to_string(skewed),
        std::string("rpcboot_migration_mode{service=\"rich.RichService\",mode=\"local\"} 1"),
        std::string("rpcboot_migration_switches_total{service=\"rich.RichService\"} 6")}) {
    EXPECT_NE(metrics->body.find(line + "\n"), std::string::npos) << line;
  }
  httplib::Result status = http.Get("/status.json");
  ASSERT_TRUE(status && status->status == 200);
  nlohmann::json j = nlohmann::json::parse(status->body);
  ASSERT_EQ(j["clients"].size(), 1u);
  const nlohmann::json& m = j["clients"][0]["migration"];
  EXPECT_EQ(m["mode"], "local");
  EXPECT_EQ(m["shadow"]["mismatches"].get<int64_t>(), skewed);
  EXPECT_NE(m["source"].get<std::string>().find("deleted"), std::string::npos);
  (*app)->Shutdown();
}

// A shadow side that hangs (a rich_app whose Count takes 5 s, past the 3 s shadow deadline) or
// fails every call (another one):
// the caller's answers come from the local side, none waits, and the shadow calls are bounded by
// the cap (the rest skipped) and counted as unanswered, never as mismatches.
TEST(MigrationFlag, AShadowSideThatHangsOrFailsChangesNothingForTheCaller) {
  ZooKeeperServer zk("migration-shadow-chaos");
  const std::string log = ZooKeeperDir("migration-shadow-chaos") + "-rich.log";
  std::vector<std::unique_ptr<ChildProcess>> remotes;
  for (std::string chaos : {"--chaos.count_delay_ms=5000", "--chaos.count_fail=all"}) {
    const std::string app = chaos.find("delay") != std::string::npos ? "hangs" : "fails";
    remotes.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{RPCBOOT_RICH_APP, "--app.name=" + app, "--server.host=127.0.0.1",
                                 "--server.grpc_port=0", "--registry.zookeeper=" + zk.connect(),
                                 chaos},
        log));
  }
  for (std::string app : {"hangs", "fails"}) {
    absl::StatusOr<AppConfig> config = LoadConfig(
        {"--app.name=caller-of-" + app, "--registry.zookeeper=" + zk.connect(),
         "--clients.rich.RichService.app=" + app, "--clients.rich.RichService.mode=shadow",
         "--clients.rich.RichService.shadow_max_in_flight=2",
         "--clients.rich.RichService.shadow_timeout_ms=3000"});
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<App>> caller = App::FromConfig(*config);
    ASSERT_TRUE(caller.ok()) << caller.status();
    auto local = std::make_shared<testing::RichServiceImpl>();
    (*caller)->Local<rich::RichService>(local);
    auto client = (*caller)->Client<rich::RichService>();
    ASSERT_TRUE(Eventually([&] {
      return (*caller)->ClientState("rich.RichService").instances.size() == 1;
    })) << app;
    // 50 calls, answered locally one after another, while the remote side holds or fails.
    for (int i = 1; i <= 50; ++i) EXPECT_EQ(client->Count(), i) << app;
    MigrationStats stats = *(*caller)->Migration("rich.RichService");
    EXPECT_EQ(stats.local_calls, 50) << app;
    EXPECT_EQ(stats.remote_calls, 0) << app;
    if (app == "hangs") {
      // Both shadow calls the cap lets out are still held: every other one was skipped.
      EXPECT_EQ(stats.shadow_in_flight, 2);
      EXPECT_EQ(stats.shadow.skipped, 48);
    }
    ASSERT_TRUE(Eventually([&] {
      return (*caller)->Migration("rich.RichService")->shadow_in_flight == 0;
    })) << app;
    stats = *(*caller)->Migration("rich.RichService");
    EXPECT_EQ(stats.shadow.mismatches, 0) << app;
    EXPECT_EQ(stats.shadow.calls, stats.shadow.errors) << app << ": every shadow call unanswered";
    EXPECT_EQ(stats.shadow.calls + stats.shadow.skipped, 50) << app;
    EXPECT_GT(stats.shadow.calls, 0) << app;
  }
}

TEST(MigrationFlag, TheToolRefusesWhatIsNotAModeAndWritesNothing) {
  ZooKeeperServer zk("migration-flag-tool");
  int code = -1;
  std::string out = Tool("flag zk://" + zk.connect() + " caller rich.RichService sideways", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("'sideways' is not a mode"), std::string::npos) << out;
  out = Tool("flag zk://" + zk.connect() + " caller rich.RichService", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("no flag"), std::string::npos) << out;
  out = Tool("flag zk://" + zk.connect() + " caller/x rich.RichService local", &code);
  EXPECT_EQ(code, 2) << out;
  out = Tool("flag 127.0.0.1:1 caller rich.RichService local", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("zk://"), std::string::npos) << out;
}

}  // namespace
}  // namespace rpcboot
