// The shop service process: a fixed catalog in memory, served over gRPC (samples/shop/shop.yaml).
//
//   shop --config=samples/shop/shop.yaml [--server.grpc_port=0] [--registry.zookeeper=h:p]
#include <unistd.h>

#include <memory>
#include <string>

#include "catalog.h"
#include "rpcboot/app.h"
#include "shop_service.rpcboot.h"

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  // Replies name the instance by process id, so the demo can show how calls spread.
  app->Serve<shop::ShopService>(
      std::make_shared<shop::Catalog>(app->config().name + "@" + std::to_string(getpid())));
  return app->Run();
}
