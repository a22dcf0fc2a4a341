// A service process built on rpcboot::App, serving the rich test interface: what the
// integration tests start, signal and kill.
//
// Its own flags (taken out before App reads the rest), for chaos and migration tests:
//   --chaos.count_delay_ms=N     every Count() answers N ms late
//   --chaos.count_fail=half|all  every second Count() (or every one) fails UNAVAILABLE
//   --chaos.echo_record=FILE     at exit, write the id of every Echo served, "p <id>" as a
//                                primary call, "s <id>" as a shadow call (rpcboot/migration.h)
//   --chaos.echo_skew_every=N    every N-th id's Echo answers differently (scalars.text)
//   --chaos.count_next=true      Count() first calls Count() of the next hop: this app's client
//                                of rich.RichService (--clients.rich.RichService.app=...)
// A slow Count() says on stderr how much of its caller's deadline it saw left when it started
// ("rich_app: Count saw N ms left") and when it is done ("rich_app: Count done").
// SIGUSR1 heals it: Count() answers at once and succeeds from then on. At exit it writes
// "rich_app: Count received N" on stderr, so that tests count attempts on the servers.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"
#include "rpcboot/server_context.h"

namespace {

std::atomic<bool> g_healed{false};

void Heal(int) { g_healed = true; }

struct Chaos {
  int count_delay_ms = 0;
  bool fail_half = false;
  bool fail_all = false;
  bool record = false;
  int skew_every = 0;
  bool count_next = false;
};

// Says on stderr (the test's log of this process) when a slow call has reached its handler, so
// that a test acts on the call being in flight instead of hoping it is; misbehaves as `chaos`
// says.
// One write per line: concurrent handlers' lines must not interleave.
void Say(const std::string& what) {
  std::string line = "rich_app: " + what + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

class AnnouncingRichService final : public rpcboot::testing::RichServiceImpl {
 public:
  explicit AnnouncingRichService(Chaos chaos) : chaos_(chaos) {}

  rich::Everything Echo(const rich::EchoRequest& request) override {
    if (chaos_.record) {
      const rpcboot::ServerContext* call = rpcboot::ServerContext::Current();
      std::lock_guard<std::mutex> lock(mu_);
      echoes_.push_back(((call != nullptr && call->shadow()) ? "s " : "p ") +
                        std::to_string(request.value.id));
    }
    rich::Everything out = RichServiceImpl::Echo(request);
    if (chaos_.skew_every > 0 && request.value.id % chaos_.skew_every == 0)
      out.scalars.text = "skewed";
    return out;
  }
  // Writes what Echo recorded, one line per call.
  void WriteEchoes(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    std::ofstream out(path);
    for (const std::string& line : echoes_) out << line << "\n";
  }
  int64_t Count() override {
    int64_t n = received_.fetch_add(1) + 1;
    if (next != nullptr) return next->Count();
    if (!g_healed.load()) {
      if (chaos_.count_delay_ms > 0) {
        const rpcboot::ServerContext* call = rpcboot::ServerContext::Current();
        if (call != nullptr && call->deadline().has_value())
          Say("Count saw " + std::to_string(call->remaining().count()) + " ms left");
        std::this_thread::sleep_for(std::chrono::milliseconds(chaos_.count_delay_ms));
        Say("Count done");
      }
      if (chaos_.fail_all || (chaos_.fail_half && n % 2 == 0))
        throw rpcboot::RpcError(rpcboot::StatusCode::kUnavailable, "chaos: this instance fails");
    }
    return RichServiceImpl::Count();
  }
  int64_t received() const { return received_.load(); }
  std::shared_ptr<rich::RichService> next;  // set before serving

  void Notify(int64_t id, const std::string& message, rich::Color color) override {
    if (id >= 1000) Say("Notify " + std::to_string(id) + " started");
    RichServiceImpl::Notify(id, message, color);
  }

 private:
  const Chaos chaos_;
  std::atomic<int64_t> received_{0};
  std::mutex mu_;
  std::vector<std::string> echoes_;
};

}  // namespace

int main(int argc, char** argv) {
  Chaos chaos;
  std::string record;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value = arg.substr(arg.find('=') + 1);
    if (arg.rfind("--chaos.count_delay_ms=", 0) == 0) {
      chaos.count_delay_ms = std::stoi(value);
    } else if (arg.rfind("--chaos.count_fail=", 0) == 0) {
      chaos.fail_half = value == "half";
      chaos.fail_all = value == "all";
      if (!chaos.fail_half && !chaos.fail_all) {
        std::fprintf(stderr, "rich_app: --chaos.count_fail is half or all, not '%s'\n",
                     value.c_str());
        return 2;
      }
    } else if (arg.rfind("--chaos.count_next=", 0) == 0) {
      chaos.count_next = value == "true";
    } else if (arg.rfind("--chaos.echo_skew_every=", 0) == 0) {
      chaos.skew_every = std::stoi(value);
    } else if (arg.rfind("--chaos.echo_record=", 0) == 0) {
      record = value;
      chaos.record = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  ::signal(SIGUSR1, Heal);
  std::unique_ptr<rpcboot::App> app =
      rpcboot::App::FromCommandLine(static_cast<int>(args.size()), args.data());
  auto service = std::make_shared<AnnouncingRichService>(chaos);
  if (chaos.count_next) service->next = app->Client<rich::RichService>();
  app->Serve<rich::RichService>(service);
  int code = app->Run();
  if (!record.empty()) service->WriteEchoes(record);
  Say("Count received " + std::to_string(service->received()));
  return code;
}
