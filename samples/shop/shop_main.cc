// The shop service process: a fixed catalog in memory, served over gRPC (samples/shop/shop.yaml).
//
//   shop --config=samples/shop/shop.yaml [--server.grpc_port=0] [--registry.zookeeper=h:p]
#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "rpcboot/app.h"
#include "rpcboot/status.h"
#include "shop_service.rpcboot.h"

namespace {

class ShopServiceImpl final : public shop::ShopService {
 public:
  explicit ShopServiceImpl(std::string served_by) : served_by_(std::move(served_by)) {
    Add({1,
         "Noodle Bar",
         shop::ShopStatus::kOpen,
         {{11, "beef noodles", 1250}, {12, "dumplings", 650}, {13, "green tea", 250}}});
    Add({2,
         "Pizza Corner",
         shop::ShopStatus::kOpen,
         {{21, "margherita", 990}, {22, "quattro formaggi", 1290}}});
    Add({3, "Night Grill", shop::ShopStatus::kClosed, {{31, "skewers", 800}}});
  }

  shop::Shop GetShop(const shop::GetShopRequest& request) override {
    auto it = shops_.find(request.shop_id);
    if (it == shops_.end()) {
      throw rpcboot::RpcError(rpcboot::StatusCode::kNotFound,
                              "no shop " + std::to_string(request.shop_id));
    }
    shop::Shop s = it->second;
    s.served_by = served_by_;
    return s;
  }

  std::vector<shop::Shop> ListShops() override {
    std::vector<shop::Shop> all;
    for (const auto& [id, s] : shops_) all.push_back(GetShop({id}));
    return all;
  }

 private:
  void Add(shop::Shop s) { shops_.emplace(s.id, std::move(s)); }

  const std::string served_by_;
  std::map<int64_t, shop::Shop> shops_;  // read-only after construction: thread-safe
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  // Replies name the instance by process id, so the demo can show how calls spread.
  app->Serve<shop::ShopService>(
      std::make_shared<ShopServiceImpl>(app->config().name + "@" + std::to_string(getpid())));
  return app->Run();
}
