// A service process built on rpcboot::App, serving the rich test interface: what the
// integration tests start, signal and kill.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"

namespace {

// Says on stderr (the test's log of this process) when a slow call has reached its handler, so
// that a test acts on the call being in flight instead of hoping it is.
class AnnouncingRichService final : public rpcboot::testing::RichServiceImpl {
 public:
  void Notify(int64_t id, const std::string& message, rich::Color color) override {
    if (id >= 1000) {
      // One write per line: concurrent handlers' lines must not interleave.
      std::string line = "rich_app: Notify " + std::to_string(id) + " started\n";
      std::fwrite(line.data(), 1, line.size(), stderr);
    }
    RichServiceImpl::Notify(id, message, color);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  app->Serve<rich::RichService>(std::make_shared<AnnouncingRichService>());
  return app->Run();
}
