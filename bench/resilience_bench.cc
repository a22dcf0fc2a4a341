// Outlier ejection against an instance that is slow now and then, and what the resilience
// machinery costs when every instance is healthy. Three rpcboot servers run in a child process
// (this binary started with --serve, stopped by pid); the load is rpcboot proxies on a
// static:// list of the three, 8 and 64 callers, both protocols, in the same run:
//
//   slow:    one instance answers 10% of its calls 300 ms late; ejection off against on, and
//            on with hedging (a backup request after 20 ms)
//   healthy: all three answer at once; outlier detection, circuit and retry budget off
//            against on (the default), the happy path's cost
//
//   build/bench/resilience_bench [--seconds=2] [--callers=8,64]
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/flags.h"
#include "bench/load_testing.h"
#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"

namespace {

// Count() late on every tenth call when `slow`.
class SometimesSlow : public rpcboot::testing::RichServiceImpl {
 public:
  explicit SometimesSlow(bool slow) : slow_(slow) {}
  int64_t Count() override {
    int64_t n = calls_.fetch_add(1) + 1;
    if (slow_ && n % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return n;
  }

 private:
  const bool slow_;
  std::atomic<int64_t> calls_{0};
};

int Serve(bool one_slow) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<std::unique_ptr<rpcboot::Server>> servers;
  std::string grpc, thrift;
  for (int i = 0; i < 3; ++i) {
    rpcboot::ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = 0;
    options.thrift_port = 0;
    options.handler_threads = 96;  // room for the slow calls
    servers.push_back(std::make_unique<rpcboot::Server>(options));
    servers.back()->AddService<rich::RichService>(
        std::make_shared<SometimesSlow>(one_slow && i == 2));
    if (!servers.back()->Start().ok()) return 1;
    grpc += (i == 0 ? "static://127.0.0.1:" : ",127.0.0.1:") +
            std::to_string(servers.back()->grpc_port());
    thrift += (i == 0 ? "static://127.0.0.1:" : ",127.0.0.1:") +
              std::to_string(servers.back()->thrift_port());
  }
  std::printf("%s %s\n", grpc.c_str(), thrift.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::_Exit(0);
}

// The three servers' lists, "static://h:p,h:p,h:p" for each protocol.
struct ServerProcess {
  rpcboot::bench::SelfProcess process;
  std::string grpc, thrift;
  ServerProcess(const char* self, const char* kind) : process(self, kind, "error") {
    std::istringstream(process.first_line()) >> grpc >> thrift;
  }
};

// Hedging on top of `on`: a backup request after 20 ms.
bool hedge = false;

rpcboot::ChannelOptions Options(bool on) {
  rpcboot::ChannelOptions o;
  if (hedge) o.hedge_delay = std::chrono::milliseconds(20);
  o.default_timeout = std::chrono::seconds(5);
  o.outlier.enabled = on;
  o.circuit.enabled = on;
  if (!on) o.retry_budget.ratio = 1000;  // no budget to speak of
  return o;
}

// The ejections the last Measure saw.
int last_ejections = 0;

rpcboot::bench::Result Measure(const std::string& list, rpcboot::Protocol protocol, bool on,
                               int callers, double seconds) {
  auto channel = rpcboot::MakeChannel(list, protocol, Options(on));
  auto client = rpcboot::MakeClient<rich::RichService>(channel);
  auto caller = [client](int) {
    return std::function<bool()>([client] {
      try {
        client->Count();
        return true;
      } catch (const rpcboot::RpcError&) {
        return false;
      }
    });
  };
  // Three seconds to settle (connections; with ejection on, the slow instance found and its
  // ejections grown past the first ones), then measure.
  rpcboot::bench::Load(callers, 3.0, caller);
  rpcboot::bench::Result result = rpcboot::bench::Load(callers, seconds, caller);
  last_ejections = 0;
  for (const auto& instance : channel->State().instances) last_ejections += instance.ejections;
  return result;
}

void Print(const char* scenario, const char* protocol, int callers, const char* setting,
           const rpcboot::bench::Result& r, const std::string& note) {
  std::printf("%-8s %-7s %7d %-4s %10.0f %9.1f %10.1f %10.1f %6ld  %s\n", scenario, protocol,
              callers, setting, r.calls_per_second, r.p50_us, r.p99_us, r.p999_us, r.errors,
              note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  std::vector<int> callers = {8, 64};
  const rpcboot::bench::Flags flags("resilience_bench", "[--seconds=S] [--callers=8,64]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--serve=slow") return Serve(true);
    if (a == "--serve=healthy") return Serve(false);
    if (flags.Number(a, "seconds", 0.01, 30, &seconds) ||
        flags.List(a, "callers", 1, 4096, &callers)) {
      continue;
    }
    flags.Unknown(a);
  }
  std::printf("%-8s %-7s %7s %-4s %10s %9s %10s %10s %6s\n", "scenario", "proto", "callers", "res.",
              "calls/s", "p50 us", "p99 us", "p999 us", "errors");
  for (const char* scenario : {"slow", "healthy"}) {
    const bool slow = std::string(scenario) == "slow";
    ServerProcess servers(argv[0], scenario);
    for (auto [name, protocol, list] :
         {std::tuple{"grpc", rpcboot::Protocol::kGrpc, servers.grpc},
          std::tuple{"thrift", rpcboot::Protocol::kThrift, servers.thrift}}) {
      for (int n : callers) {
        rpcboot::bench::Result off = Measure(list, protocol, false, n, seconds);
        rpcboot::bench::Result on = Measure(list, protocol, true, n, seconds);
        char note[96];
        std::snprintf(note, sizeof note, "on/off: calls/s %.3f, p999 %.3f; %d ejections",
                      on.calls_per_second / off.calls_per_second, on.p999_us / off.p999_us,
                      last_ejections);
        Print(scenario, name, n, "off", off, "");
        Print(scenario, name, n, "on", on, note);
        if (!slow) continue;
        hedge = true;
        rpcboot::bench::Result hedged = Measure(list, protocol, true, n, seconds);
        hedge = false;
        std::snprintf(note, sizeof note, "hedge/off: calls/s %.2f, p999 %.3f",
                      hedged.calls_per_second / off.calls_per_second, hedged.p999_us / off.p999_us);
        Print(scenario, name, n, "hedg", hedged, note);
      }
    }
  }
  return 0;
}
