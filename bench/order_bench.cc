// The samples' order path under load, each service in its own process as on a platform: a
// ZooKeeper, the shop service (gRPC), the payment service (gRPC) and the order service (Thrift),
// started from the built samples with their own YAML files. `callers` threads call the order
// service through its proxy (found in ZooKeeper), as a platform's front end would. For each
// caller count it prints calls/s and p50/p99 of:
//   - GetShop on the shop service: one hop over gRPC, what one call of the slice costs;
//   - GetOrder: one hop over Thrift and an SQLite read;
//   - PlaceOrder of a pickup order: the order service asks shop for the menu and payment for a
//     hold (two calls over gRPC, found in ZooKeeper) and commits the order to SQLite;
//   - PlaceOrder/grpcpp: the same against a second order service whose two gRPC clients run on
//     gRPC's C++ library instead of rpcboot's native channel (grpc_client: grpcpp);
// and their ratios to GetShop measured in the same run. Every process it starts is stopped by pid
// when it ends; the stores are made fresh in the build tree each run.
//
//   order_bench [--callers=1,8,32] [--seconds=3]
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/flags.h"
#include "bench/load_testing.h"
#include "order_service.rpcboot.h"
#include "rpcboot/client.h"
#include "shop_service.rpcboot.h"
#include "tests/discovery/zookeeper_testing.h"

namespace {

// A sample's process, its output in `log`; stopped with SIGTERM (and waited for) when destroyed,
// and by the kernel when this process ends any other way (PR_SET_PDEATHSIG). A failure to start
// it throws, so the ones started before it are stopped as the stack unwinds.
class Service {
 public:
  Service(const std::vector<std::string>& args, const std::string& log) : log_(log) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + log);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // the parent ended before prctl
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fd);
    if (pid_ < 0) throw std::runtime_error(std::string("cannot start ") + argv[0]);
  }
  ~Service() {
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Waits (up to 20 s) until the instance is in the registry; throws naming the log if it never
  // is.
  void WaitRegistered() const {
    for (int i = 0; i < 200; ++i) {
      std::ifstream in(log_);
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find("registry: registered") != std::string::npos) return;
      if (::kill(pid_, 0) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error(log_ + " never registered: see it");
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

struct Part {
  const char* name;
  std::vector<rpcboot::bench::Result> results;  // by caller count
};

}  // namespace

// Starts the services, loads them and prints the table; stops them however it ends.
int Run(const std::vector<int>& callers, double seconds) {
  const std::string src = RPCBOOT_SOURCE_DIR, samples = RPCBOOT_SAMPLES_DIR;
  const std::string work = std::string(RPCBOOT_TEST_TMP) + "/order_bench_run";
  std::system(("rm -rf '" + work + "' && mkdir -p '" + work + "'").c_str());

  rpcboot::testing::ZooKeeperServer zk("order_bench");
  const std::string registry = "--registry.zookeeper=" + zk.connect();
  Service shop({samples + "/shop", "--config=" + src + "/samples/shop/shop.yaml", registry},
               work + "/shop.log");
  Service payment({samples + "/payment", "--config=" + src + "/samples/payment/payment.yaml",
                   registry, "--settings.payment.store=" + work + "/payments.db",
                   "--settings.payment.hold_limit_cents=100000000"},
                  work + "/payment.log");
  shop.WaitRegistered();
  payment.WaitRegistered();
  Service order({samples + "/order", "--config=" + src + "/samples/order/order.yaml", registry,
                 "--settings.store.dir=" + work + "/orders"},
                work + "/order.log");
  // The same order service with its gRPC clients (shop, payment) on gRPC's C++ library instead
  // of the native channel, under its own name and store: the PlaceOrder rows compare the two.
  Service order_grpcpp({samples + "/order", "--config=" + src + "/samples/order/order.yaml",
                        registry, "--settings.store.dir=" + work + "/orders_grpcpp",
                        "--app.name=order_grpcpp", "--clients.shop.ShopService.grpc_client=grpcpp",
                        "--clients.payment.PaymentService.grpc_client=grpcpp"},
                       work + "/order_grpcpp.log");
  order.WaitRegistered();
  order_grpcpp.WaitRegistered();

  const std::string base = "zk://" + zk.connect() + "/services/";
  auto orders_client = [&](const std::string& app = "order") {
    return rpcboot::MakeClient<order::OrderService>(
        rpcboot::MakeChannel(base + app, rpcboot::Protocol::kThrift));
  };
  // One order to read back, placed before any load.
  const std::string known = orders_client()->PlaceOrder({2, "reader", {{21, 1, 990}}}).order_id;

  std::mutex first_error_mu;
  std::string first_error;
  auto failed = [&](const rpcboot::RpcError& e) {
    std::lock_guard<std::mutex> lock(first_error_mu);
    if (first_error.empty()) first_error = e.what();
    return false;
  };
  std::vector<Part> parts = {
      {"GetShop", {}}, {"GetOrder", {}}, {"PlaceOrder", {}}, {"PlaceOrder/grpcpp", {}}};
  for (int n : callers) {
    parts[0].results.push_back(rpcboot::bench::Load(n, seconds, [&](int) {
      std::shared_ptr<shop::ShopService> shops = rpcboot::MakeClient<shop::ShopService>(
          rpcboot::MakeChannel(base + "shop", rpcboot::Protocol::kGrpc));
      return std::function<bool()>([shops, &failed] {
        try {
          return shops->GetShop({2}).id == 2;
        } catch (const rpcboot::RpcError& e) {
          return failed(e);
        }
      });
    }));
    parts[1].results.push_back(rpcboot::bench::Load(n, seconds, [&](int) {
      std::shared_ptr<order::OrderService> client = orders_client();
      return std::function<bool()>([client, &known, &failed] {
        try {
          return client->GetOrder({known}).order_id == known;
        } catch (const rpcboot::RpcError& e) {
          return failed(e);
        }
      });
    }));
    // Pickup orders, a customer per caller and 50 more for its orders: holds spread over many
    // cards. `app`: the order service with native gRPC clients, or the one on grpcpp.
    auto place = [&](const std::string& app) {
      return rpcboot::bench::Load(n, seconds, [&, app](int caller) {
        std::shared_ptr<order::OrderService> client = orders_client(app);
        auto placed = std::make_shared<long>(0);
        return std::function<bool()>([client, caller, placed, &failed] {
          order::PlaceOrderRequest request{
              2,
              "load-" + std::to_string(caller) + "-" + std::to_string((*placed)++ % 50),
              {{21, 1, 990}}};
          try {
            return !client->PlaceOrder(request).order_id.empty();
          } catch (const rpcboot::RpcError& e) {
            return failed(e);
          }
        });
      });
    };
    parts[2].results.push_back(place("order"));
    parts[3].results.push_back(place("order_grpcpp"));
  }

  std::printf(
      "the samples' order path, each service its own process (ZooKeeper, shop and payment over "
      "gRPC, order over Thrift, SQLite stores in %s), %.1f s per point:\n",
      work.c_str(), seconds);
  std::printf("%-18s %7s %12s %9s %9s %8s %9s\n", "call", "callers", "calls/s", "p50 us", "p99 us",
              "errors", "/GetShop");
  for (const Part& part : parts) {
    for (std::size_t i = 0; i < callers.size(); ++i) {
      const rpcboot::bench::Result& r = part.results[i];
      std::printf("%-18s %7d %12.0f %9.0f %9.0f %8ld %8.2fx\n", part.name, callers[i],
                  r.calls_per_second, r.p50_us, r.p99_us, r.errors,
                  r.calls_per_second / parts[0].results[i].calls_per_second);
    }
  }
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  return first_error.empty() ? 0 : 1;
}

int main(int argc, char** argv) {
  std::vector<int> callers = {1, 8, 32};
  double seconds = 3;
  rpcboot::bench::Flags flags("order_bench", "[--callers=1,8,32] [--seconds=3]");
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (flags.List(a, "callers", 1, 256, &callers) || flags.Number(a, "seconds", 0.2, 60, &seconds))
      continue;
    flags.Unknown(a);
  }
  try {
    return Run(callers, seconds);
  } catch (const std::exception& e) {  // a service that did not start; the others are stopped
    std::fprintf(stderr, "order_bench: %s\n", e.what());
    return 1;
  }
}
