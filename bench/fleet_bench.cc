// Discovery at fleet scale: one application of --instances registrations, --watchers client
// sessions (each its own Session and Resolver, as separate client processes would have) spread
// over --processes processes, and a rolling restart of 10% of the instances in --batches steps.
// Prints, in one run:
//
//   - cold load: how long the watchers took to read the whole application;
//   - propagation: for each step, from the moment ZooKeeper acknowledged its last new node until
//     each watcher's view holds it (median, p99, max over every watcher and step; and per step
//     the median and the slowest watcher, beside ZooKeeper's commit of the step's writes); each
//     new node from its own acknowledgement until each watcher's view holds it, and each removed
//     one until each watcher's view has lost it; and each step whole, from its first write sent
//     until its last watcher holds its last node;
//   - ZooKeeper: how long it took to commit each step's writes (ZooKeeper queues an event for every
//     watcher before it acknowledges a write, so this grows with the watchers), requests
//     (packets received) per second and its own average and maximum latency over the restart
//     (its `mntr` four-letter word);
//   - the watcher processes' memory (RSS) and CPU time.
//
//   build/bench/fleet_bench [--instances=10000] [--watchers=200] [--processes=4]
//                           [--batches=10] [--warmup=30] [--ensemble] [--child_watches]
//
// The watchers learn of changes through persistent recursive watches (Resolver::
// SetRecursiveWatch), or with --child_watches through one-shot child watches, which make every
// watcher list all instances again after each change.
//
// Starts its own ZooKeeper (one server, or a 3-node ensemble with --ensemble) on 127.0.0.1 and
// stops it at the end; the watcher processes are this program started with --watch and stop
// when their input closes.
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/flags.h"
#include "discovery/instance.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "rpcboot/base/log.h"
#include "tests/discovery/pipelined_writes.h"
#include "tests/discovery/zookeeper_testing.h"

extern char** environ;

namespace {

using rpcboot::discovery::Instance;
using rpcboot::discovery::InstanceList;
using rpcboot::discovery::Resolver;
using rpcboot::discovery::Session;
using rpcboot::discovery::SessionOptions;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

long RssKb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f != nullptr && std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::atol(line + 6);
  }
  if (f != nullptr) std::fclose(f);
  return kb;
}

// User and system CPU of process `pid` so far, from /proc (0 when it cannot be read).
long ProcessCpuMs(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::atol(field.c_str());
    if (i == 15) stime = std::atol(field.c_str());
  }
  return (utime + stime) * 1000 / ::sysconf(_SC_CLK_TCK);
}

Instance FleetInstance(int i) {
  Instance instance;
  instance.name = "shop";
  instance.id = rpcboot::discovery::NewInstanceId();
  instance.address = "10." + std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) +
                     "." + std::to_string(i % 256);
  instance.port = 9090;
  instance.metadata = {{"instance_status", "UP"},
                       {"rpcboot.services", "shop.ShopService"},
                       {"rpcboot.protocols", "grpc"},
                       {"rpcboot.grpc.port", "9090"}};
  return instance;
}

// Creates (data non-empty) or deletes the nodes, pipelined; returns when ZooKeeper acknowledged
// all, with the time it acknowledged each.
std::vector<int64_t> Write(zhandle_t* zh,
                           const std::vector<std::pair<std::string, std::string>>& nodes,
                           bool create) {
  rpcboot::testing::PipelinedResult result = rpcboot::testing::PipelinedWrite(zh, nodes, create);
  if (result.failed > 0) {
    std::fprintf(stderr, "fleet_bench: %d ZooKeeper writes failed\n", result.failed);
    std::exit(1);
  }
  return result.ack_ns;
}

// ZooKeeper's `mntr` answer as key -> value.
std::map<std::string, std::string> Mntr(const std::string& host_port) {
  std::map<std::string, std::string> out;
  int port = std::atoi(host_port.substr(host_port.rfind(':') + 1).c_str());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, "mntr", 4) == 4) {
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, n);
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {  // "key<TAB>value", values with spaces
      std::size_t tab = line.find('\t');
      if (tab != std::string::npos) out[line.substr(0, tab)] = line.substr(tab + 1);
    }
  }
  ::close(fd);
  return out;
}

// ---- Watcher processes ----

// Whether the list holds the instance `id`.
bool Holds(const InstanceList& list, std::string_view id) {
  auto it = std::lower_bound(list->begin(), list->end(), id,
                             [](const Instance& a, std::string_view b) { return a.id < b; });
  return it != list->end() && it->id == id;
}

// Runs `count` sessions with a resolver each, watching "shop". Commands on stdin:
//   "expect <+id|-id> ...": report when every resolver's view holds every +id and none of the
//     -ids: "seen" and, for each resolver in turn, when its view first did so for each, in the
//     order given (ns)
//   "stats": "stats <rss_kb> <user_ms> <system_ms>"
// It prints "ready <load_ms>" once every resolver has read the whole application.
int Watch(const std::string& connect, int count, int instances, bool recursive) {
  rpcboot::SetLogSink([](rpcboot::LogLevel level, std::string_view message) {
    if (level >= rpcboot::LogLevel::kWarning) {
      std::fprintf(stderr, "watcher: %.*s\n", static_cast<int>(message.size()), message.data());
    }
  });
  struct Watcher {
    std::shared_ptr<Session> session;
    std::unique_ptr<Resolver> resolver;
    std::atomic<std::size_t> size{0};
  };
  std::vector<std::unique_ptr<Watcher>> watchers;
  std::mutex mu;
  std::condition_variable cv;
  // Under mu: the ids the driver expects to come (+) or go (-), in the order it wrote them, and
  // for each resolver how many of them (from the first) its view has matched and since when.
  std::shared_ptr<const std::vector<std::string>> expected;
  std::vector<std::size_t> matched(static_cast<std::size_t>(count), 0);
  std::vector<std::vector<int64_t>> seen_at(static_cast<std::size_t>(count));
  int64_t start = NowNs();
  for (int i = 0; i < count; ++i) {
    auto w = std::make_unique<Watcher>();
    w->session =
        std::make_shared<Session>(SessionOptions{connect, std::chrono::milliseconds(30000), ""});
    w->session->Start();
    w->resolver = std::make_unique<Resolver>(w->session, "/services");
    w->resolver->SetRecursiveWatch(recursive);
    watchers.push_back(std::move(w));
  }
  // Watch from a few threads: each first read blocks its thread.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < count; i += 4) {
        Watcher* w = watchers[static_cast<std::size_t>(i)].get();
        w->session->WaitConnected(std::chrono::seconds(60));
        w->resolver->Watch("shop", [&, w, i](const InstanceList& list) {
          w->size = list->size();
          const auto index = static_cast<std::size_t>(i);
          // The search runs outside the lock that 50 watcher threads share: a thread preempted
          // while holding it would hold up the others' timestamps.
          std::shared_ptr<const std::vector<std::string>> want;
          std::size_t from;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (expected == nullptr || matched[index] == expected->size()) return;
            want = expected;
            from = matched[index];
          }
          // Changes reach a view in the order they were written (ZooKeeper sends a session its
          // events in order and the resolver reads new nodes in that order), so the search
          // stops at the first one not there yet: one that came early is counted with the ones
          // before it, late rather than early.
          std::size_t to = from;
          while (to < want->size() &&
                 Holds(list, std::string_view((*want)[to]).substr(1)) == ((*want)[to][0] == '+')) {
            ++to;
          }
          if (to == from) return;
          const int64_t now = NowNs();
          std::lock_guard<std::mutex> lock(mu);
          if (expected == want && matched[index] == from) {
            std::fill(seen_at[index].begin() + static_cast<std::ptrdiff_t>(from),
                      seen_at[index].begin() + static_cast<std::ptrdiff_t>(to), now);
            matched[index] = to;
            if (to == want->size()) cv.notify_all();
          }
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (auto& w : watchers) {
    while (w->size.load() < static_cast<std::size_t>(instances)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::printf("ready %lld\n", static_cast<long long>((NowNs() - start) / 1000000));
  std::fflush(stdout);
  char* line = nullptr;
  std::size_t capacity = 0;
  while (::getline(&line, &capacity, stdin) > 0) {
    std::istringstream words(line);
    std::string command;
    words >> command;
    if (command == "expect") {
      auto ids = std::make_shared<std::vector<std::string>>();
      for (std::string id; words >> id;) ids->push_back(id);
      std::unique_lock<std::mutex> lock(mu);
      expected = ids;
      std::fill(matched.begin(), matched.end(), 0);
      for (auto& times : seen_at) times.assign(ids->size(), 0);
      lock.unlock();
      std::printf("armed\n");
      std::fflush(stdout);
      lock.lock();
      cv.wait(lock, [&] {
        return std::all_of(matched.begin(), matched.end(),
                           [&](std::size_t n) { return n == expected->size(); });
      });
      std::string out = "seen";
      for (const auto& times : seen_at) {
        for (int64_t t : times) absl::StrAppend(&out, " ", t);
      }
      expected = nullptr;
      lock.unlock();
      std::printf("%s\n", out.c_str());
      std::fflush(stdout);
    } else if (command == "stats") {
      rusage usage{};
      ::getrusage(RUSAGE_SELF, &usage);
      std::printf("stats %ld %ld %ld\n", RssKb(),
                  usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000,
                  usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000);
      std::fflush(stdout);
    }
  }
  std::free(line);
  std::_Exit(0);  // thousands of sessions: the OS closes them faster than one by one
}

struct Child {
  pid_t pid = -1;
  FILE* in = nullptr;   // its stdin
  FILE* out = nullptr;  // its stdout
  std::string ReadLine() {
    char line[1 << 16];
    std::string text;
    while (std::fgets(line, sizeof line, out) != nullptr) {
      text += line;
      if (!text.empty() && text.back() == '\n') break;
    }
    return text;
  }
};

Child Spawn(const char* self, const std::vector<std::string>& args) {
  int to[2], from[2];
  // Close-on-exec: a later child must not hold this one's stdin open (it would never see EOF);
  // dup2 onto 0 and 1 clears the flag for the child's own ends.
  if (::pipe2(to, O_CLOEXEC) != 0 || ::pipe2(from, O_CLOEXEC) != 0) std::abort();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from[1], 1);
  posix_spawn_file_actions_addclose(&actions, to[1]);
  posix_spawn_file_actions_addclose(&actions, from[0]);
  std::vector<char*> argv{const_cast<char*>(self)};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child child;
  if (posix_spawn(&child.pid, self, &actions, nullptr, argv.data(), environ) != 0) std::abort();
  posix_spawn_file_actions_destroy(&actions);
  ::close(to[0]);
  ::close(from[1]);
  child.in = ::fdopen(to[1], "w");
  child.out = ::fdopen(from[0], "r");
  return child;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// "<what> (ms): median, p99, max (samples)".
void PrintSpread(const char* what, const std::vector<double>& ms) {
  std::printf("%s (ms): median %.1f, p99 %.1f, max %.1f (%zu samples)\n", what, Percentile(ms, 0.5),
              Percentile(ms, 0.99), Percentile(ms, 1.0), ms.size());
}

int Drive(const char* self, int instances, int watchers, int processes, int batches, int warmup,
          bool ensemble, bool recursive) {
  std::unique_ptr<rpcboot::testing::ZooKeeperServer> single;
  std::unique_ptr<rpcboot::testing::ZooKeeperEnsemble> three;
  std::string connect;
  if (ensemble) {
    three = std::make_unique<rpcboot::testing::ZooKeeperEnsemble>("fleet_bench_ensemble");
    connect = three->connect();
  } else {
    single = std::make_unique<rpcboot::testing::ZooKeeperServer>("fleet_bench");
    connect = single->connect();
  }
  std::string first_server = connect.substr(0, connect.find(','));
  std::printf("ZooKeeper %s (%s); %d instances, %d watchers in %d processes, %d steps; %s\n",
              connect.c_str(), ensemble ? "3-node ensemble" : "one server", instances, watchers,
              processes, batches,
              recursive ? "persistent recursive watches" : "child watches (--child_watches)");
  zhandle_t* zh = zookeeper_init(connect.c_str(), nullptr, 30000, nullptr, nullptr, 0);
  while (zoo_state(zh) != ZOO_CONNECTED_STATE) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const char* path : {"/services", "/services/shop"}) {
    zoo_create(zh, path, nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
  }
  std::vector<std::string> ids;
  std::vector<std::pair<std::string, std::string>> nodes;
  for (int i = 0; i < instances; ++i) {
    Instance instance = FleetInstance(i);
    ids.push_back(instance.id);
    nodes.emplace_back("/services/shop/" + instance.id, rpcboot::discovery::ToJson(instance));
  }
  int64_t t = NowNs();
  Write(zh, nodes, true);
  std::printf("registered %d instances (pipelined creates) in %.0f ms\n", instances,
              static_cast<double>(NowNs() - t) / 1e6);

  std::vector<Child> children;
  int per = (watchers + processes - 1) / processes;
  int left = watchers;
  for (int p = 0; p < processes && left > 0; ++p) {
    int n = std::min(per, left);
    left -= n;
    children.push_back(Spawn(self, {"--watch=" + connect, "--count=" + std::to_string(n),
                                    "--instances=" + std::to_string(instances),
                                    recursive ? "--recursive" : "--child_watches"}));
  }
  double slowest_load = 0;
  for (Child& c : children) {
    std::string line = c.ReadLine();
    long ms = 0;
    if (std::sscanf(line.c_str(), "ready %ld", &ms) != 1) {
      std::fprintf(stderr, "fleet_bench: a watcher process failed: %s\n", line.c_str());
      return 1;
    }
    slowest_load = std::max(slowest_load, static_cast<double>(ms));
  }
  std::printf(
      "cold load: all %d watchers hold %d instances after %.0f ms (each process "
      "starting its sessions one after another)\n",
      watchers, instances, slowest_load);

  // RSS and CPU of the watcher processes (their own reports, summed); CPU of the ZooKeeper
  // servers (/proc).
  auto watcher_stats = [&] {
    std::pair<long, long> kb_ms{0, 0};
    for (Child& c : children) {
      std::fprintf(c.in, "stats\n");
      std::fflush(c.in);
      long rss = 0, user = 0, system = 0;
      std::sscanf(c.ReadLine().c_str(), "stats %ld %ld %ld", &rss, &user, &system);
      kb_ms.first += rss;
      kb_ms.second += user + system;
    }
    return kb_ms;
  };
  const std::vector<pid_t> server_pids = single ? std::vector<pid_t>{single->pid()} : three->pids();
  auto server_cpu_ms = [&] {
    long ms = 0;
    for (pid_t pid : server_pids) ms += ProcessCpuMs(pid);
    return ms;
  };
  std::vector<double> propagation_ms;  // each step's last new node, from its acknowledgement
  std::vector<double> each_ms;         // every new node, from its own acknowledgement
  std::vector<double> each_gone_ms;    // every removal, from its own acknowledgement
  std::vector<double> commit_ms;    // per step: its writes, from the first sent to the last acked
  std::vector<double> step_max;     // per step: propagation to the last watcher
  std::vector<double> step_median;  // per step: the median watcher's propagation
  int per_step = std::max(1, instances / 10 / batches);
  // A step of the rolling restart: per_step instances go, as many new ones come, and each
  // watcher reports when its view first lost each one gone and held each new one. Steps before
  // `warmup` are not counted.
  auto step = [&](int b, bool counted) {
    std::vector<std::pair<std::string, std::string>> gone, come;
    std::string expect_gone, expect_come;  // " -id ..." and " +id ...", in the order written
    for (int i = 0; i < per_step; ++i) {
      const std::string& old_id = ids[static_cast<std::size_t>(b * per_step + i)];
      gone.emplace_back("/services/shop/" + old_id, "");
      absl::StrAppend(&expect_gone, " -", old_id);
      Instance instance = FleetInstance(instances + b * per_step + i);
      come.emplace_back("/services/shop/" + instance.id, rpcboot::discovery::ToJson(instance));
      absl::StrAppend(&expect_come, " +", instance.id);
    }
    const std::string expect = "expect" + expect_gone + expect_come;
    for (Child& c : children) {
      std::fprintf(c.in, "%s\n", expect.c_str());
      std::fflush(c.in);
    }
    for (Child& c : children) c.ReadLine();  // armed
    int64_t write_start = NowNs();
    std::vector<int64_t> acks = Write(zh, gone, false);  // the removals', then the new nodes'
    const std::vector<int64_t> created = Write(zh, come, true);
    acks.insert(acks.end(), created.begin(), created.end());
    const int64_t written = acks.back();
    std::vector<double> this_step;
    for (Child& c : children) {
      std::istringstream seen(c.ReadLine());
      std::string word;
      seen >> word;
      std::size_t k = 0;  // the k-th change of a watcher: the removals, then the new nodes
      for (int64_t at; seen >> at; k = (k + 1) % acks.size()) {
        if (counted) {
          (k < gone.size() ? each_gone_ms : each_ms)
              .push_back(static_cast<double>(at - acks[k]) / 1e6);
        }
        if (k + 1 < acks.size()) continue;
        // The step's last node: every watcher holds the step once it holds this one.
        double ms = static_cast<double>(at - written) / 1e6;
        if (counted) propagation_ms.push_back(ms);
        this_step.push_back(ms);
      }
    }
    if (!counted) return;
    commit_ms.push_back(static_cast<double>(written - write_start) / 1e6);
    step_max.push_back(Percentile(this_step, 1.0));
    step_median.push_back(Percentile(this_step, 0.5));
  };
  // ZooKeeper's JVM is still compiling its hot paths after the cold load (its C2 compiler took
  // 10-20% of the CPU through the first restart steps and settled after about 30): a server in
  // production has run for long. The first `warmup` steps replace instances like the others
  // and are not measured.
  for (int b = 0; b < warmup; ++b) step(b, false);
  if (warmup > 0) {
    std::printf("%d warm-up steps (not counted)\n", warmup);
    std::fflush(stdout);
  }
  const long watcher_cpu_before = watcher_stats().second;
  const long server_cpu_before = server_cpu_ms();
  auto before = Mntr(first_server);
  int64_t restart_start = NowNs();
  for (int b = warmup; b < warmup + batches; ++b) step(b, true);
  double seconds = static_cast<double>(NowNs() - restart_start) / 1e9;
  auto after = Mntr(first_server);
  double packets = std::atof(after["zk_packets_received"].c_str()) -
                   std::atof(before["zk_packets_received"].c_str());
  std::printf("rolling restart of %d instances in %d steps took %.1f s\n", per_step * batches,
              batches, seconds);
  PrintSpread("propagation to every watcher", propagation_ms);
  PrintSpread("each new node from its own acknowledgement to each watcher", each_ms);
  // A removal needs no read: the event carries it. What a client needs first when an instance
  // restarts: to stop calling it.
  PrintSpread("each removal from its own acknowledgement to each watcher", each_gone_ms);
  // The median beside the last watcher tells a step slow for every watcher (all still behind on
  // the step's events when its last write was acknowledged) from one slow watcher.
  std::string steps;
  std::vector<double> step_total;  // per step: from its first write sent to its last watcher
  for (std::size_t i = 0; i < step_max.size(); ++i) {
    steps += absl::StrCat(i == 0 ? "" : " ", std::lround(step_median[i]), "/",
                          std::lround(step_max[i]), "/", std::lround(commit_ms[i]));
    step_total.push_back(commit_ms[i] + step_max[i]);
  }
  std::printf("step by step, median / last watcher / ZooKeeper's commit (ms): %s\n", steps.c_str());
  // The propagation above starts at the acknowledgement: a step ZooKeeper commits sooner leaves
  // the watchers more of its events to read after it. This is the step as a whole.
  std::printf("a step from its first write to its last watcher (ms): median %.0f, max %.0f\n",
              Percentile(step_total, 0.5), Percentile(step_total, 1.0));
  std::printf("ZooKeeper committed each step's %d writes in %.0f ms (median; max %.0f)%s\n",
              2 * per_step, Percentile(commit_ms, 0.5), Percentile(commit_ms, 1.0),
              recursive ? absl::StrCat(", queueing ", 2 * per_step * watchers,
                                       " events for the watchers per step")
                              .c_str()
                        : "");
  std::printf(
      "ZooKeeper (%s): %.0f requests/s received during the restart; latency avg %s ms, "
      "max %s ms; %s connections, %s watches\n",
      first_server.c_str(), packets / seconds, after["zk_avg_latency"].c_str(),
      after["zk_max_latency"].c_str(), after["zk_num_alive_connections"].c_str(),
      after["zk_watch_count"].c_str());
  const auto [rss_total, cpu_total] = watcher_stats();
  const long watcher_cpu_restart = cpu_total - watcher_cpu_before;
  std::printf(
      "CPU during the restart: watchers %.1f s (%.1f ms per watcher per step), ZooKeeper %.1f s, "
      "of %.1f s of %ld cores\n",
      static_cast<double>(watcher_cpu_restart) / 1000,
      static_cast<double>(watcher_cpu_restart) / watchers / batches,
      static_cast<double>(server_cpu_ms() - server_cpu_before) / 1000,
      static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN)) * seconds,
      ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf(
      "watchers: %.1f MiB RSS in all (%.2f MiB per watcher), %.1f s CPU in all "
      "(%.0f ms per watcher, cold load included)\n",
      static_cast<double>(rss_total) / 1024, static_cast<double>(rss_total) / 1024 / watchers,
      static_cast<double>(cpu_total) / 1000, static_cast<double>(cpu_total) / watchers);
  for (Child& c : children) {
    std::fclose(c.in);
    int status;
    ::waitpid(c.pid, &status, 0);
    std::fclose(c.out);
  }
  zookeeper_close(zh);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int instances = 10000, watchers = 200, processes = 4, batches = 10, warmup = 30, count = 0;
  bool ensemble = false;
  bool recursive = true;
  std::string watch;
  bool child_watches = false;
  const rpcboot::bench::Flags flags(
      "fleet_bench",
      "[--instances=10000] [--watchers=200] [--processes=4] [--batches=10] [--warmup=30] "
      "[--ensemble] [--child_watches]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    // --watch, --count and --recursive: how the driver starts its watcher processes.
    if (flags.Int(a, "instances", 10, 1000000, &instances) ||
        flags.Int(a, "watchers", 1, 10000, &watchers) ||
        flags.Int(a, "processes", 1, 256, &processes) ||
        flags.Int(a, "batches", 1, 100000, &batches) ||
        flags.Int(a, "warmup", 0, 100000, &warmup) || flags.Text(a, "watch", &watch) ||
        flags.Int(a, "count", 1, 10000, &count) || flags.Switch(a, "ensemble", &ensemble) ||
        flags.Switch(a, "child_watches", &child_watches) ||
        flags.Switch(a, "recursive", &recursive)) {
      continue;
    }
    flags.Unknown(a);
  }
  if (child_watches) recursive = false;
  // Each step replaces a tenth of the instances over --batches steps; the warm-up steps too.
  if (static_cast<int64_t>(warmup + batches) * std::max(1, instances / 10 / batches) > instances) {
    flags.Refuse(absl::StrCat("--warmup=", warmup, " steps and --batches=", batches,
                              " replace more than the ", instances, " instances"));
  }
  if (!watch.empty()) return Watch(watch, count, instances, recursive);
  return Drive(argv[0], instances, watchers, processes, batches, warmup, ensemble, recursive);
}
