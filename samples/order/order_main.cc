// The order service process: served over Thrift; validates each order against the shop service
// through a discovery-backed proxy; keeps orders in SQLite, one file per shard
// (samples/order/order.yaml: settings.store.*).
//
//   order --config=samples/order/order.yaml [--registry.zookeeper=h:p] [--settings.store.dir=D]
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "catalog.h"
#include "order_service.rpcboot.h"
#include "order_store.h"
#include "rpcboot/app.h"
#include "rpcboot/status.h"
#include "shop_service.rpcboot.h"

namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

class OrderServiceImpl final : public order::OrderService {
 public:
  OrderServiceImpl(std::shared_ptr<shop::ShopService> shops,
                   std::unique_ptr<order::OrderStore> store)
      : shops_(std::move(shops)), store_(std::move(store)) {}

  order::Order PlaceOrder(const order::PlaceOrderRequest& request) override {
    if (request.lines.empty()) throw RpcError(StatusCode::kInvalidArgument, "an order needs lines");
    shop::Shop s = shops_->GetShop({request.shop_id});  // NOT_FOUND passes through
    if (s.status != shop::ShopStatus::kOpen) {
      throw RpcError(StatusCode::kFailedPrecondition,
                     "shop " + std::to_string(s.id) + " (" + s.name + ") is closed");
    }
    order::Order o{};
    for (const order::OrderLine& line : request.lines) {
      const shop::MenuItem* item = nullptr;
      for (const shop::MenuItem& m : s.menu)
        if (m.id == line.item_id) item = &m;
      if (item == nullptr) {
        throw RpcError(StatusCode::kInvalidArgument, "item " + std::to_string(line.item_id) +
                                                         " is not on the menu of shop " +
                                                         std::to_string(s.id));
      }
      if (item->price_cents != line.unit_price_cents) {
        throw RpcError(StatusCode::kInvalidArgument,
                       "item " + std::to_string(item->id) + " (" + item->name + ") costs " +
                           std::to_string(item->price_cents) + " cents, not " +
                           std::to_string(line.unit_price_cents));
      }
      if (line.quantity < 1 || line.quantity > 100) {
        throw RpcError(StatusCode::kInvalidArgument,
                       "quantity " + std::to_string(line.quantity) + " is not in 1..100");
      }
      o.total_cents += item->price_cents * line.quantity;
    }
    o.order_id = store_->NextId();
    o.shop_id = s.id;
    o.customer = request.customer;
    o.lines = request.lines;
    o.shard = store_->ShardOf(o.order_id);
    o.shop_checked_by = s.served_by;
    // A handler may block (the handler pool runs it, never an I/O thread): this one writes to
    // SQLite and commits before it answers.
    if (absl::Status stored = store_->Put(o); !stored.ok())
      throw RpcError(StatusCode::kInternal, "order store: " + std::string(stored.message()));
    return o;
  }

  order::Order GetOrder(const order::GetOrderRequest& request) override {
    absl::StatusOr<std::optional<order::Order>> o = store_->Get(request.order_id);
    if (!o.ok())
      throw RpcError(StatusCode::kInternal, "order store: " + std::string(o.status().message()));
    if (!o->has_value()) throw RpcError(StatusCode::kNotFound, "no order " + request.order_id);
    return **o;
  }

 private:
  std::shared_ptr<shop::ShopService> shops_;
  std::unique_ptr<order::OrderStore> store_;
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  // The catalog as this service had it in-process before it moved to the shop service. Its copy
  // of the menu has one edit the shop service never got (item 13's name): shadow mode shows it.
  // clients.shop.ShopService.mode in order.yaml and the flag node
  // /rpcboot/migration/order/shop.ShopService pick the side (docs/migration.md).
  auto in_process = std::make_shared<shop::Catalog>("order (in-process catalog)");
  in_process->Rename(13, "tea");
  app->Local<shop::ShopService>(in_process);
  // The shop service, found through the registry (clients.shop.ShopService in order.yaml).
  std::shared_ptr<shop::ShopService> shops;
  try {
    shops = app->Client<shop::ShopService>();
  } catch (const rpcboot::RpcError& e) {  // no registry and no address, an unknown balancer
    std::cerr << "order: " << e.message() << "\n";
    return 2;
  }
  // settings.store.* in order.yaml: where the orders are kept.
  const rpcboot::Settings& settings = app->config().settings;
  std::string dir = settings.String("store.dir", "");
  absl::StatusOr<int64_t> shards = settings.Int("store.shards", 8, 1, 64);
  if (!shards.ok()) {
    std::cerr << "order: " << shards.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<order::OrderStore>> store =
      order::OrderStore::Open(dir, static_cast<int>(*shards));
  if (!store.ok()) {
    std::cerr << "order: settings.store.dir: " << store.status().message() << "\n";
    return 2;
  }
  std::cerr << "order: store " << (dir.empty() ? "in memory" : dir) << ": " << (*store)->shards()
            << " shards, " << (*store)->size() << " orders\n";
  app->Serve<order::OrderService>(std::make_shared<OrderServiceImpl>(shops, std::move(*store)));
  return app->Run();
}
