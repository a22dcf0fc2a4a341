// The shop catalog: a fixed set of shops in memory behind the ShopService interface. The shop
// service serves it over gRPC (shop_main.cc); the order service also links it in as its
// in-process copy (order_main.cc: App::Local), the module it is moving away from, so that it can
// switch to the shop service step by step (docs/migration.md).
#ifndef RPCBOOT_SAMPLES_SHOP_CATALOG_H_
#define RPCBOOT_SAMPLES_SHOP_CATALOG_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rpcboot/status.h"
#include "shop_service.h"

namespace shop {

class Catalog final : public ShopService {
 public:
  // `served_by` names who answered in every reply (the demo shows it).
  explicit Catalog(std::string served_by) : served_by_(std::move(served_by)) {
    Add({1,
         "Noodle Bar",
         ShopStatus::kOpen,
         {{11, "beef noodles", 1250}, {12, "dumplings", 650}, {13, "green tea", 250}},
         "",
         {52.5200, 13.4050}});
    Add({2,
         "Pizza Corner",
         ShopStatus::kOpen,
         {{21, "margherita", 990}, {22, "quattro formaggi", 1290}},
         "",
         {52.4990, 13.4180}});
    Add({3, "Night Grill", ShopStatus::kClosed, {{31, "skewers", 800}}, "", {52.5300, 13.3850}});
  }

  // Renames an item: an edit made to one copy of the catalog only (before start: not locked).
  void Rename(int64_t item_id, const std::string& name) {
    for (auto& [id, s] : shops_)
      for (MenuItem& item : s.menu)
        if (item.id == item_id) item.name = name;
  }

  Shop GetShop(const GetShopRequest& request) override {
    auto it = shops_.find(request.shop_id);
    if (it == shops_.end()) {
      throw rpcboot::RpcError(rpcboot::StatusCode::kNotFound,
                              "no shop " + std::to_string(request.shop_id));
    }
    Shop s = it->second;
    s.served_by = served_by_;
    return s;
  }

  std::vector<Shop> ListShops() override {
    std::vector<Shop> all;
    for (const auto& [id, s] : shops_) all.push_back(GetShop({id}));
    return all;
  }

 private:
  void Add(Shop s) { shops_.emplace(s.id, std::move(s)); }

  const std::string served_by_;
  std::map<int64_t, Shop> shops_;  // read-only once serving: thread-safe
};

}  // namespace shop

#endif  // RPCBOOT_SAMPLES_SHOP_CATALOG_H_
