// A service process built on rpcboot::App, serving the rich test interface: what the
// integration tests start, signal and kill.
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

// Says on stderr (the test's log of this process) when a slow call has reached its handler, so
// that a test acts on the call being in flight instead of hoping it is.
// For migration tests: records the id of every Echo it serves, as a primary ("p <id>") or as a
// shadow call ("s <id>"), and answers every skew_every-th id differently (scalars.text).
class AnnouncingRichService final : public rpcboot::testing::RichServiceImpl {
 public:
  AnnouncingRichService(int count_delay_ms, int skew_every)
      : count_delay_ms_(count_delay_ms), skew_every_(skew_every) {}

  rich::Everything Echo(const rich::EchoRequest& request) override {
    const rpcboot::ServerContext* call = rpcboot::ServerContext::Current();
    {
      std::lock_guard<std::mutex> lock(mu_);
      echoes_.push_back(((call != nullptr && call->shadow()) ? "s " : "p ") +
                        std::to_string(request.value.id));
    }
    rich::Everything out = RichServiceImpl::Echo(request);
    if (skew_every_ > 0 && request.value.id % skew_every_ == 0) out.scalars.text = "skewed";
    return out;
  }
  // Writes what Echo recorded, one line per call.
  void WriteEchoes(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    std::ofstream out(path);
    for (const std::string& line : echoes_) out << line << "\n";
  }
  int64_t Count() override {
    if (count_delay_ms_ > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(count_delay_ms_));
    return RichServiceImpl::Count();
  }

  void Notify(int64_t id, const std::string& message, rich::Color color) override {
    if (id >= 1000) {
      // One write per line: concurrent handlers' lines must not interleave.
      std::string line = "rich_app: Notify " + std::to_string(id) + " started\n";
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
    RichServiceImpl::Notify(id, message, color);
  }

 private:
  const int count_delay_ms_;
  const int skew_every_;
  std::mutex mu_;
  std::vector<std::string> echoes_;
};

}  // namespace

int main(int argc, char** argv) {
  // --chaos.count_delay_ms=N (this program's own flag, taken out before App reads the rest):
  // every Count() answers N ms late.
  // --chaos.echo_record=FILE: at exit, write the Echo ids served (see AnnouncingRichService);
  // --chaos.echo_skew_every=N: answer every N-th id's Echo differently.
  int delay_ms = 0;
  int skew_every = 0;
  std::string record;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--chaos.count_delay_ms=", 0) == 0) {
      delay_ms = std::stoi(arg.substr(arg.find('=') + 1));
    } else if (arg.rfind("--chaos.echo_skew_every=", 0) == 0) {
      skew_every = std::stoi(arg.substr(arg.find('=') + 1));
    } else if (arg.rfind("--chaos.echo_record=", 0) == 0) {
      record = arg.substr(arg.find('=') + 1);
    } else {
      args.push_back(argv[i]);
    }
  }
  std::unique_ptr<rpcboot::App> app =
      rpcboot::App::FromCommandLine(static_cast<int>(args.size()), args.data());
  auto service = std::make_shared<AnnouncingRichService>(delay_ms, skew_every);
  app->Serve<rich::RichService>(service);
  int code = app->Run();
  if (!record.empty()) service->WriteEchoes(record);
  return code;
}
