// What a migration channel (rpcboot/migration.h) costs, all in one run:
//   in-process: a plain virtual call, BindInProcess, and a migration channel in local mode (proto
//   and Thrift codecs), one caller, ns per call;
//   over gRPC to a server on 127.0.0.1: the plain channel, the migration channel in remote mode,
//   and the caller's latency in shadow mode (primary local, every call also sent to the server)
//   against local mode; 2 callers, p50/p99 and calls/s.
// Prints ratios against the plain virtual call and against BindInProcess; medians of 5 rounds.
//
//   build/bench/migration_bench [--calls=N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/flags.h"
#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/migration.h"
#include "rpcboot/server.h"

namespace {

using Clock = std::chrono::steady_clock;

rich::EchoRequest Request() {
  rich::EchoRequest r;
  r.value.id = 42;
  r.value.scalars.text = "a shop with a menu";
  for (int i = 0; i < 8; ++i) {
    r.value.containers.points.push_back({i, i * 2});
    r.value.containers.names.push_back("item-" + std::to_string(i));
  }
  return r;
}

// Keeps the compiler from seeing through the pointer (and devirtualizing the plain call).
rich::RichService* volatile g_opaque = nullptr;

double NsPerCall(rich::RichService& service, int calls) {
  const rich::EchoRequest request = Request();
  int64_t sink = 0;
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) sink += service.Echo(request).id;
  double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() / calls;
  if (sink == 1) std::printf(" ");
  return ns;
}

struct Latency {
  double p50_us = 0, p99_us = 0, calls_per_s = 0;
};

Latency Measure(rich::RichService& service, int callers, int calls_each) {
  std::vector<std::vector<double>> per(callers);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      const rich::EchoRequest request = Request();
      per[t].reserve(calls_each);
      for (int i = 0; i < calls_each; ++i) {
        auto s = Clock::now();
        service.Echo(request);
        per[t].push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& v : per) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  Latency l;
  l.p50_us = all[all.size() / 2];
  l.p99_us = all[all.size() * 99 / 100];
  l.calls_per_s = static_cast<double>(all.size()) / seconds;
  return l;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int calls = 200000;
  const rpcboot::bench::Flags flags("migration_bench", "[--calls=200000]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (!flags.Int(a, "calls", 1000, 100000000, &calls)) flags.Unknown(a);
  }
  auto impl = std::make_shared<rpcboot::testing::RichServiceImpl>();
  g_opaque = impl.get();

  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.thrift_port = 0;
  rpcboot::Server server(options);
  server.AddService<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
  if (!server.Start().ok()) {
    std::fprintf(stderr, "migration_bench: cannot start the server\n");
    return 1;
  }
  const std::string grpc = "127.0.0.1:" + std::to_string(server.grpc_port());
  const std::string thrift = "127.0.0.1:" + std::to_string(server.thrift_port());
  auto mode = [](const char* text) {
    rpcboot::MigrationOptions o;
    o.mode = *rpcboot::MigrationMode::Parse(text);
    o.shadow.max_in_flight = 64;
    return o;
  };
  auto grpc_channel = rpcboot::MakeGrpcChannel(grpc);
  auto bound = rpcboot::BindInProcess<rich::RichService>(impl);
  auto local_proto = rpcboot::MakeClient<rich::RichService>(
      rpcboot::MakeMigrationChannel<rich::RichService>(impl, grpc_channel, mode("local")));
  auto local_thrift =
      rpcboot::MakeClient<rich::RichService>(rpcboot::MakeMigrationChannel<rich::RichService>(
          impl, rpcboot::MakeThriftChannel(thrift), mode("local")));
  auto plain_grpc = rpcboot::MakeClient<rich::RichService>(grpc_channel);
  auto remote = rpcboot::MakeClient<rich::RichService>(
      rpcboot::MakeMigrationChannel<rich::RichService>(impl, grpc_channel, mode("remote")));
  auto shadow_channel =
      rpcboot::MakeMigrationChannel<rich::RichService>(impl, grpc_channel, mode("shadow"));
  auto shadow = rpcboot::MakeClient<rich::RichService>(shadow_channel);

  std::printf(
      "migration_bench: Echo of a small struct (8 points, 8 names), %d calls a round, "
      "medians of 5 rounds\n\n",
      calls);
  std::vector<double> virt, bind, lp, lt;
  for (int round = 0; round < 5; ++round) {
    virt.push_back(NsPerCall(*g_opaque, calls));
    bind.push_back(NsPerCall(*bound, calls / 4));
    lp.push_back(NsPerCall(*local_proto, calls / 4));
    lt.push_back(NsPerCall(*local_thrift, calls / 4));
  }
  const double v = Median(virt), b = Median(bind);
  std::printf("in-process, 1 caller                    ns/call   x virtual   x BindInProcess\n");
  auto row = [&](const char* name, double ns) {
    std::printf("  %-36s %8.0f   %8.1f   %8.2f\n", name, ns, ns / v, ns / b);
  };
  row("plain virtual call", v);
  row("BindInProcess (proto codec)", b);
  row("migration local (gRPC client: proto)", Median(lp));
  row("migration local (Thrift client)", Median(lt));

  const int remote_calls = std::max(2000, calls / 20);
  std::vector<double> pg50, pg99, pgs, r50, r99, rs, l50, l99, ls, s50, s99, ss;
  for (int round = 0; round < 5; ++round) {
    Latency p = Measure(*plain_grpc, 2, remote_calls / 2);
    Latency r = Measure(*remote, 2, remote_calls / 2);
    Latency l = Measure(*local_proto, 2, remote_calls / 2);
    Latency s = Measure(*shadow, 2, remote_calls / 2);
    for (auto [lat, p50, p99, cps] : {std::tuple{p, &pg50, &pg99, &pgs},
                                      {r, &r50, &r99, &rs},
                                      {l, &l50, &l99, &ls},
                                      {s, &s50, &s99, &ss}}) {
      p50->push_back(lat.p50_us);
      p99->push_back(lat.p99_us);
      cps->push_back(lat.calls_per_s);
    }
  }
  std::printf(
      "\nover gRPC to 127.0.0.1, 2 callers       p50 us    p99 us     calls/s   x plain gRPC\n");
  auto row2 = [&](const char* name, const std::vector<double>& p50, const std::vector<double>& p99,
                  const std::vector<double>& cps) {
    std::printf("  %-36s %8.1f  %8.1f  %10.0f   %8.2f\n", name, Median(p50), Median(p99),
                Median(cps), Median(cps) / Median(pgs));
  };
  row2("plain gRPC channel", pg50, pg99, pgs);
  row2("migration remote", r50, r99, rs);
  row2("migration local", l50, l99, ls);
  row2("migration shadow (local answers)", s50, s99, ss);
  rpcboot::MigrationStats stats = shadow_channel->Stats();
  std::printf(
      "\nshadow: %lld compared (%lld match, %lld mismatch), %lld skipped over "
      "shadow_max_in_flight (64): the caller never waits for them\n",
      static_cast<long long>(stats.shadow.calls), static_cast<long long>(stats.shadow.matches),
      static_cast<long long>(stats.shadow.mismatches),
      static_cast<long long>(stats.shadow.skipped));
  std::printf("shadow vs local, the caller's p50: %.2fx\n", Median(s50) / Median(l50));
  server.Shutdown();
  return 0;
}
