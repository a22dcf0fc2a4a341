// The order service process: served over Thrift; validates each order against the shop service
// through a discovery-backed proxy; keeps orders in SQLite, one file per shard
// (samples/order/order.yaml: settings.store.*).
//
//   order --config=samples/order/order.yaml [--registry.zookeeper=h:p] [--settings.store.dir=D]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "catalog.h"
#include "common/distance.h"
#include "delivery_service.rpcboot.h"
#include "order_service.rpcboot.h"
#include "order_store.h"
#include "rpcboot/app.h"
#include "rpcboot/status.h"
#include "shop_service.rpcboot.h"

namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

// Who delivers how far, for how much (settings.delivery.* in order.yaml).
struct DeliveryPolicy {
  int64_t max_m = 10000;
  int64_t base_fee_cents = 199;
  int64_t per_km_cents = 50;  // per started kilometre
};

using common::DistanceMetres;
using common::HasPosition;

std::string Km(double metres) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f km", metres / 1000);
  return text;
}

// Whether `placed` is what `request` asks for (a retry must repeat its request).
bool SameRequest(const order::Order& placed, const order::PlaceOrderRequest& request) {
  auto same_line = [](const order::OrderLine& a, const order::OrderLine& b) {
    return a.item_id == b.item_id && a.quantity == b.quantity &&
           a.unit_price_cents == b.unit_price_cents;
  };
  bool delivered = HasPosition(request.deliver_to.point);
  return placed.shop_id == request.shop_id && placed.customer == request.customer &&
         std::equal(placed.lines.begin(), placed.lines.end(), request.lines.begin(),
                    request.lines.end(), same_line) &&
         (delivered ? placed.deliver_to.street == request.deliver_to.street &&
                          placed.deliver_to.point.lat == request.deliver_to.point.lat &&
                          placed.deliver_to.point.lng == request.deliver_to.point.lng
                    : placed.distance_m == 0);
}

class OrderServiceImpl final : public order::OrderService {
 public:
  OrderServiceImpl(std::shared_ptr<shop::ShopService> shops,
                   std::shared_ptr<delivery::DeliveryService> couriers,
                   std::unique_ptr<order::OrderStore> store, DeliveryPolicy delivery)
      : shops_(std::move(shops)),
        couriers_(std::move(couriers)),
        store_(std::move(store)),
        delivery_(delivery) {}

  order::Order PlaceOrder(const order::PlaceOrderRequest& request) override {
    // A retry of an order already placed gets that order back, never a second one: looked up
    // first, before anything that may have changed since (the shop may have closed).
    std::unique_lock<std::mutex> once;
    if (request.request_id.size() > 128) {
      throw RpcError(
          StatusCode::kInvalidArgument,
          "request_id is " + std::to_string(request.request_id.size()) + " bytes; at most 128");
    }
    if (!request.request_id.empty()) {
      once = std::unique_lock<std::mutex>(store_->RequestLock(request.request_id));
      absl::StatusOr<std::optional<order::Order>> earlier =
          store_->FindByRequest(request.request_id);
      if (!earlier.ok())
        throw RpcError(StatusCode::kInternal,
                       "order store: " + std::string(earlier.status().message()));
      if (earlier->has_value()) {
        if (!SameRequest(**earlier, request)) {
          throw RpcError(StatusCode::kInvalidArgument,
                         "request_id '" + request.request_id + "' placed order " +
                             (*earlier)->order_id +
                             " for a different request: a retry repeats the request as it was");
        }
        return **earlier;
      }
    }
    if (request.lines.empty()) throw RpcError(StatusCode::kInvalidArgument, "an order needs lines");
    shop::Shop s = shops_->GetShop({request.shop_id});  // NOT_FOUND passes through
    if (s.status != shop::ShopStatus::kOpen) {
      throw RpcError(StatusCode::kFailedPrecondition,
                     "shop " + std::to_string(s.id) + " (" + s.name + ") is closed");
    }
    const common::GeoPoint& to = request.deliver_to.point;
    if (!std::isfinite(to.lat) || !std::isfinite(to.lng) || std::abs(to.lat) > 90 ||
        std::abs(to.lng) > 180) {
      throw RpcError(StatusCode::kInvalidArgument, "deliver_to.point (" + std::to_string(to.lat) +
                                                       ", " + std::to_string(to.lng) +
                                                       ") is not a point on the globe");
    }
    order::Order o{};
    if (HasPosition(to)) {
      if (!HasPosition(s.location)) {
        throw RpcError(
            StatusCode::kFailedPrecondition,
            "shop " + std::to_string(s.id) + " (" + s.name + ") has no location: pickup only");
      }
      double metres = DistanceMetres(s.location, to);
      if (metres > static_cast<double>(delivery_.max_m)) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       request.deliver_to.street + " is " + Km(metres) + " from shop " +
                           std::to_string(s.id) + " (" + s.name + "); it delivers within " +
                           Km(static_cast<double>(delivery_.max_m)));
      }
      o.distance_m = static_cast<int32_t>(std::lround(metres));
      o.delivery_fee_cents =
          delivery_.base_fee_cents +
          delivery_.per_km_cents * static_cast<int64_t>(std::ceil(metres / 1000));
      o.deliver_to = request.deliver_to;
    }
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
    o.total_cents += o.delivery_fee_cents;
    o.order_id = store_->NextId();
    o.shop_id = s.id;
    o.customer = request.customer;
    o.lines = request.lines;
    o.shard = store_->ShardOf(o.order_id);
    o.shop_checked_by = s.served_by;
    if (o.distance_m > 0) AssignCourier(s.location, &o);
    // A handler may block (the handler pool runs it, never an I/O thread): this one writes to
    // SQLite and commits before it answers.
    if (absl::Status stored = store_->Put(o, request.request_id); !stored.ok())
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
  // A courier from the delivery service (over Thrift, consistent_hash by order id: a retry of the
  // same order reaches the instance that keeps its assignment). The order stands without one:
  // it says no courier yet, and the log says why.
  void AssignCourier(const common::GeoPoint& shop, order::Order* o) {
    try {
      rpcboot::CallOptions by_order;
      by_order.request_key = o->order_id;
      rpcboot::ScopedCallOptions scope(by_order);
      delivery::Assignment a = couriers_->Assign({o->order_id, shop, o->deliver_to.point});
      o->courier = a.courier;
      o->eta_minutes = a.eta_minutes;
    } catch (const RpcError& e) {
      std::cerr << "order: " << o->order_id << ": no courier assigned: " << e.what() << "\n";
    }
  }

  std::shared_ptr<shop::ShopService> shops_;
  std::shared_ptr<delivery::DeliveryService> couriers_;
  std::unique_ptr<order::OrderStore> store_;
  const DeliveryPolicy delivery_;
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
  std::shared_ptr<delivery::DeliveryService> couriers;
  try {
    shops = app->Client<shop::ShopService>();
    couriers = app->Client<delivery::DeliveryService>();  // clients.delivery.DeliveryService
  } catch (const rpcboot::RpcError& e) {  // no registry and no address, an unknown balancer
    std::cerr << "order: " << e.message() << "\n";
    return 2;
  }
  // settings.store.* in order.yaml: where the orders are kept.
  const rpcboot::Settings& settings = app->config().settings;
  std::string dir = settings.String("store.dir", "");
  absl::StatusOr<int64_t> shards = settings.Int("store.shards", 8, 1, 64);
  DeliveryPolicy delivery;
  absl::StatusOr<int64_t> max_km = settings.Int("delivery.max_km", 10, 0, 1000);
  absl::StatusOr<int64_t> base_fee = settings.Int("delivery.base_fee_cents", 199, 0, 100000);
  absl::StatusOr<int64_t> per_km = settings.Int("delivery.per_km_cents", 50, 0, 100000);
  for (const absl::StatusOr<int64_t>* value : {&shards, &max_km, &base_fee, &per_km}) {
    if (!value->ok()) {
      std::cerr << "order: " << value->status().message() << "\n";
      return 2;
    }
  }
  delivery = {*max_km * 1000, *base_fee, *per_km};
  absl::StatusOr<std::unique_ptr<order::OrderStore>> store =
      order::OrderStore::Open(dir, static_cast<int>(*shards));
  if (!store.ok()) {
    std::cerr << "order: settings.store.dir: " << store.status().message() << "\n";
    return 2;
  }
  std::cerr << "order: store " << (dir.empty() ? "in memory" : dir) << ": " << (*store)->shards()
            << " shards, " << (*store)->size() << " orders\n";
  app->Serve<order::OrderService>(
      std::make_shared<OrderServiceImpl>(shops, couriers, std::move(*store), delivery));
  return app->Run();
}
