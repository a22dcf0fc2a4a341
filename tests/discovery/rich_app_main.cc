// A service process built on rpcboot::App, serving the rich test interface: what the
// integration tests start, signal and kill.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"

namespace {

// Says on stderr (the test's log of this process) when a slow call has reached its handler, so
// that a test acts on the call being in flight instead of hoping it is.
class AnnouncingRichService final : public rpcboot::testing::RichServiceImpl {
 public:
  explicit AnnouncingRichService(int count_delay_ms) : count_delay_ms_(count_delay_ms) {}
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
};

}  // namespace

int main(int argc, char** argv) {
  // --chaos.count_delay_ms=N (this program's own flag, taken out before App reads the rest):
  // every Count() answers N ms late.
  int delay_ms = 0;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--chaos.count_delay_ms=", 0) == 0) {
      delay_ms = std::stoi(arg.substr(arg.find('=') + 1));
    } else {
      args.push_back(argv[i]);
    }
  }
  std::unique_ptr<rpcboot::App> app =
      rpcboot::App::FromCommandLine(static_cast<int>(args.size()), args.data());
  app->Serve<rich::RichService>(std::make_shared<AnnouncingRichService>(delay_ms));
  return app->Run();
}
