// The order service process: served over Thrift; validates each order against the shop service
// through a discovery-backed proxy; keeps orders in key-based shards (samples/order/order.yaml).
//
//   order --config=samples/order/order.yaml [--registry.zookeeper=h:p]
#include <unistd.h>

#include <array>
#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "catalog.h"
#include "order_service.rpcboot.h"
#include "rpcboot/app.h"
#include "rpcboot/base/hash.h"
#include "rpcboot/status.h"
#include "shop_service.rpcboot.h"

namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

// Orders sharded by the hash of their id, as a large order store shards its tables: each shard
// has its own lock, so orders of different shards never contend.
class OrderStore {
 public:
  static constexpr int kShards = 8;

  static int ShardOf(const std::string& order_id) {
    return static_cast<int>(rpcboot::StableHash(order_id) % kShards);
  }
  void Put(const order::Order& o) {
    Shard& shard = shards_[o.shard];
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.orders[o.order_id] = o;
  }
  bool Get(const std::string& order_id, order::Order* out) {
    Shard& shard = shards_[ShardOf(order_id)];
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.orders.find(order_id);
    if (it == shard.orders.end()) return false;
    *out = it->second;
    return true;
  }

 private:
  struct Shard {
    std::mutex mu;
    std::map<std::string, order::Order> orders;
  };
  std::array<Shard, kShards> shards_;
};

class OrderServiceImpl final : public order::OrderService {
 public:
  explicit OrderServiceImpl(std::shared_ptr<shop::ShopService> shops)
      : shops_(std::move(shops)), prefix_("o" + std::to_string(getpid()) + "-") {}

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
    o.order_id = prefix_ + std::to_string(next_.fetch_add(1));
    o.shop_id = s.id;
    o.customer = request.customer;
    o.lines = request.lines;
    o.shard = OrderStore::ShardOf(o.order_id);
    o.shop_checked_by = s.served_by;
    store_.Put(o);
    return o;
  }

  order::Order GetOrder(const order::GetOrderRequest& request) override {
    order::Order o;
    if (!store_.Get(request.order_id, &o))
      throw RpcError(StatusCode::kNotFound, "no order " + request.order_id);
    return o;
  }

 private:
  std::shared_ptr<shop::ShopService> shops_;
  const std::string prefix_;
  std::atomic<int64_t> next_{1};
  OrderStore store_;
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
  app->Serve<order::OrderService>(std::make_shared<OrderServiceImpl>(shops));
  return app->Run();
}
