// How fast the registry moves and what picking an instance costs, each next to the raw library
// measured in the same run:
//
//   1. propagation: a registration (or removal) by rpcboot's Registrar until a Resolver on another
//      ZooKeeper session has it in its view; against the raw ZooKeeper C client (zoo_create on
//      one handle until a child watch fires on another). Median and p99 over --changes changes.
//   2. pick: nanoseconds per Pick of each load balancer over 3 and 100 backends; against a bare
//      atomic counter modulo n (the least any balancer can do).
//   3. call path: calls/s through a zk:// channel (resolver, balancer, retry bookkeeping) against
//      a plain host:port channel to the same server, 8 callers, Thrift.
//
//   build/bench/discovery_bench [--changes=200] [--seconds=2]
//
// Starts its own ZooKeeper on 127.0.0.1 (scripts/zookeeper.sh, as the tests do) and stops it at
// the end, also when a step fails.
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/flags.h"
#include "common_types.rpcboot.h"
#include "discovery/registrar.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/client.h"
#include "rpcboot/lb/load_balancer.h"
#include "rpcboot/server.h"
#include "tests/discovery/zookeeper_testing.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double median_ms;
  double p99_ms;
};

Stats Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

// One change seen by a listener: waits for `predicate` on the published list.
class ViewWaiter {
 public:
  void Publish(const rpcboot::discovery::InstanceList& list) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      list_ = list;
    }
    cv_.notify_all();
  }
  template <class Pred>
  bool Wait(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return list_ && pred(*list_); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  rpcboot::discovery::InstanceList list_;
};

void PropagationRpcboot(const std::string& connect, int changes, std::vector<double>* add_ms,
                        std::vector<double>* remove_ms) {
  using namespace rpcboot::discovery;
  auto writer = std::make_shared<Session>(SessionOptions{connect});
  auto reader = std::make_shared<Session>(SessionOptions{connect});
  writer->Start();
  reader->Start();
  writer->WaitConnected(std::chrono::seconds(10));
  reader->WaitConnected(std::chrono::seconds(10));
  Resolver resolver(reader, "/bench");
  ViewWaiter waiter;
  resolver.Watch("svc", [&](const InstanceList& list) { waiter.Publish(list); });
  for (int i = 0; i < changes; ++i) {
    Instance self;
    self.name = "svc";
    self.id = NewInstanceId();
    self.address = "127.0.0.1";
    self.port = 9000 + i;
    self.metadata = {{"instance_status", "UP"}, {"rpcboot.grpc.port", "9000"}};
    Registrar registrar(writer, "/bench", self);
    auto has = [&](const InstanceView& list) {
      return std::any_of(list.begin(), list.end(),
                         [&](const Instance& x) { return x.id == self.id; });
    };
    auto start = Clock::now();
    if (absl::Status s = registrar.Register(); !s.ok()) {
      throw std::runtime_error("registration " + std::to_string(i) +
                               " failed: " + std::string(s.message()));
    }
    if (!waiter.Wait(has)) {
      throw std::runtime_error("registration " + std::to_string(i) + " never reached the view");
    }
    add_ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    start = Clock::now();
    if (!registrar.Deregister().ok() ||
        !waiter.Wait([&](const InstanceView& list) { return !has(list); })) {
      throw std::runtime_error("removal " + std::to_string(i) + " never reached the view");
    }
    remove_ms->push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
}

// The raw C client: a child watch on one handle, zoo_create/zoo_delete on another.
struct RawWatch {
  std::mutex mu;
  std::condition_variable cv;
  bool fired = false;
};

void RawWatcher(zhandle_t*, int type, int, const char*, void* context) {
  if (type != ZOO_CHILD_EVENT) return;
  auto* w = static_cast<RawWatch*>(context);
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->fired = true;
  }
  w->cv.notify_all();
}

void PropagationRaw(const std::string& connect, int changes, std::vector<double>* add_ms,
                    std::vector<double>* remove_ms) {
  zhandle_t* writer = zookeeper_init(connect.c_str(), nullptr, 10000, nullptr, nullptr, 0);
  zhandle_t* reader = zookeeper_init(connect.c_str(), nullptr, 10000, nullptr, nullptr, 0);
  for (int i = 0; i < 500 && (zoo_state(writer) != ZOO_CONNECTED_STATE ||
                              zoo_state(reader) != ZOO_CONNECTED_STATE);
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  zoo_create(writer, "/raw", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
  RawWatch watch;
  auto change = [&](bool add, int i, std::vector<double>* out) {
    String_vector children{0, nullptr};
    watch.fired = false;
    zoo_wget_children(reader, "/raw", &RawWatcher, &watch, &children);
    deallocate_String_vector(&children);
    std::string path = "/raw/n" + std::to_string(i);
    auto start = Clock::now();
    if (add) {
      zoo_create(writer, path.c_str(), "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0);
    } else {
      zoo_delete(writer, path.c_str(), -1);
    }
    std::unique_lock<std::mutex> lock(watch.mu);
    watch.cv.wait_for(lock, std::chrono::seconds(10), [&] { return watch.fired; });
    // Reading the new list is part of seeing the change, as for the resolver.
    lock.unlock();
    String_vector now{0, nullptr};
    zoo_get_children(reader, "/raw", 0, &now);
    deallocate_String_vector(&now);
    out->push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  };
  for (int i = 0; i < changes; ++i) {
    change(true, i, add_ms);
    change(false, i, remove_ms);
  }
  zookeeper_close(reader);
  zookeeper_close(writer);
}

double NsPerPick(const rpcboot::Picker& picker, int picks) {
  rpcboot::PickArgs args;
  std::string key = "order-12345";
  args.request_key = key;
  auto start = Clock::now();
  uintptr_t sink = 0;
  for (int i = 0; i < picks; ++i) sink += reinterpret_cast<uintptr_t>(picker.Pick(args));
  double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() / picks;
  if (sink == 1) std::printf(" ");
  return ns;
}

double NsPerCounterPick(int n, int picks) {
  std::vector<int> backends(static_cast<std::size_t>(n));
  std::atomic<uint64_t> next{0};
  auto start = Clock::now();
  uintptr_t sink = 0;
  for (int i = 0; i < picks; ++i)
    sink += reinterpret_cast<uintptr_t>(&backends[next.fetch_add(1) % backends.size()]);
  double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() / picks;
  if (sink == 1) std::printf(" ");
  return ns;
}

double CallsPerSecond(const std::shared_ptr<rpcboot::Channel>& channel, int callers,
                      double seconds) {
  auto client = rpcboot::MakeClient<rich::RichService>(channel);
  client->Count();  // connect, resolve
  std::atomic<bool> stop{false};
  std::atomic<int64_t> calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      while (!stop) {
        client->Notify(1, "x", rich::Color::kRed);
        ++calls;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& t : threads) t.join();
  return static_cast<double>(calls) / seconds;
}

}  // namespace

int Bench(const std::string& connect, int changes, double seconds);

int main(int argc, char** argv) {
  int changes = 200;
  double seconds = 2;
  const rpcboot::bench::Flags flags("discovery_bench", "[--changes=200] [--seconds=2]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (flags.Int(a, "changes", 10, 10000, &changes) ||
        flags.Number(a, "seconds", 0.01, 30, &seconds)) {
      continue;
    }
    flags.Unknown(a);
  }
  try {
    rpcboot::testing::ZooKeeperServer zk("discovery_bench");  // stopped on every way out
    return Bench(zk.connect(), changes, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "discovery_bench: %s\n", e.what());
    return 1;
  }
}

int Bench(const std::string& connect, int changes, double seconds) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  std::vector<double> add, remove, raw_add, raw_remove;
  PropagationRaw(connect, changes, &raw_add, &raw_remove);
  PropagationRpcboot(connect, changes, &add, &remove);
  std::printf("propagation over %d changes (ms)        median      p99   ratio(p50)\n", changes);
  Stats a = Summarize(add), r = Summarize(remove), ra = Summarize(raw_add),
        rr = Summarize(raw_remove);
  std::printf("  raw C client, create -> child watch  %7.2f  %7.2f\n", ra.median_ms, ra.p99_ms);
  std::printf("  rpcboot, register -> resolver view   %7.2f  %7.2f  %7.2f\n", a.median_ms, a.p99_ms,
              a.median_ms / ra.median_ms);
  std::printf("  raw C client, delete -> child watch  %7.2f  %7.2f\n", rr.median_ms, rr.p99_ms);
  std::printf("  rpcboot, deregister -> resolver view %7.2f  %7.2f  %7.2f\n", r.median_ms, r.p99_ms,
              r.median_ms / rr.median_ms);

  std::printf("\npick cost (ns per pick)      3 backends  100 backends\n");
  const int picks = 2000000;
  std::printf("  atomic counter %% n        %10.1f  %12.1f\n", NsPerCounterPick(3, picks),
              NsPerCounterPick(100, picks));
  for (const char* name : {"p2c", "round_robin", "weighted_random", "consistent_hash"}) {
    double ns[2];
    int k = 0;
    for (int n : {3, 100}) {
      std::vector<std::shared_ptr<rpcboot::Backend>> backends;
      for (int i = 0; i < n; ++i)
        backends.push_back(std::make_shared<rpcboot::Backend>(
            std::to_string(i), "10.0.0." + std::to_string(i) + ":9090", 100 + i, nullptr));
      ns[k++] = NsPerPick(*(*rpcboot::MakeLoadBalancer(name))->Build(backends), picks);
    }
    std::printf("  %-24s %10.1f  %12.1f\n", name, ns[0], ns[1]);
  }

  rpcboot::ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  rpcboot::Server server(options);
  server.AddService<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
  if (!server.Start().ok()) return 1;
  {
    using namespace rpcboot::discovery;
    auto session = std::make_shared<Session>(SessionOptions{connect});
    session->Start();
    session->WaitConnected(std::chrono::seconds(10));
    Instance self;
    self.name = "rich";
    self.id = NewInstanceId();
    self.address = "127.0.0.1";
    self.port = server.thrift_port();
    self.metadata = {{"instance_status", "UP"},
                     {"rpcboot.protocols", "thrift"},
                     {"rpcboot.thrift.port", std::to_string(server.thrift_port())}};
    Registrar registrar(session, "/services", self);
    registrar.Register().IgnoreError();
    std::string endpoint = "127.0.0.1:" + std::to_string(server.thrift_port());
    rpcboot::ChannelOptions header;
    header.thrift_header = true;  // zk:// channels use THeader (deadlines reach the server)
    double direct = CallsPerSecond(rpcboot::MakeThriftChannel(endpoint, header), 8, seconds);
    double zk = CallsPerSecond(
        rpcboot::MakeChannel("zk://" + connect + "/services/rich", rpcboot::Protocol::kThrift), 8,
        seconds);
    std::printf("\ncall path, Thrift, 8 callers        calls/s   ratio\n");
    std::printf("  host:port channel             %10.0f\n", direct);
    std::printf("  zk:// channel (p2c)           %10.0f  %6.2f\n", zk, zk / direct);
  }
  server.Shutdown();
  return 0;
}
