// A service process built on rpcboot::App, serving the rich test interface: what the
// integration tests start, signal and kill.
#include <iostream>
#include <memory>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  app->Serve<rich::RichService>(std::make_shared<rpcboot::testing::RichServiceImpl>());
  return app->Run();
}
