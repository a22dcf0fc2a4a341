// The order service process: served over Thrift; validates each order against the shop service
// through a discovery-backed proxy; keeps orders in SQLite, one file per shard
// (samples/order/order.yaml: settings.store.*); has the delivery service assign a courier to each
// delivered order, at once or, when every courier is busy, from a dispatcher that tries again
// until one is free (settings.delivery.*).
//
//   order --config=samples/order/order.yaml [--registry.zookeeper=h:p] [--settings.store.dir=D]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "catalog.h"
#include "common/distance.h"
#include "delivery_service.rpcboot.h"
#include "order_service.rpcboot.h"
#include "order_store.h"
#include "payment_service.rpcboot.h"
#include "rpcboot/app.h"
#include "rpcboot/metrics.h"
#include "rpcboot/status.h"
#include "shop_service.rpcboot.h"

namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

// Who delivers how far, for how much (settings.delivery.* in order.yaml).
struct DeliveryPolicy {
  int64_t max_m = 10000;
  int64_t base_fee_cents = 199;
  int64_t per_km_cents = 50;        // per started kilometre
  int64_t give_up_ms = 30 * 60000;  // an order no courier took by then is cancelled
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* Named(order::OrderStatus status) {
  switch (status) {
    case order::OrderStatus::kPlaced:
      return "placed";
    case order::OrderStatus::kPickedUp:
      return "picked up";
    case order::OrderStatus::kDelivered:
      return "delivered";
    case order::OrderStatus::kCancelled:
      return "cancelled";
  }
  return "in no known status";
}

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

// Calls to the delivery service carry the order id as their key: consistent_hash takes every
// call about one order to the instance that keeps its assignment.
template <typename Fn>
auto WithKey(const std::string& order_id, Fn fn) {
  rpcboot::CallOptions by_order;
  by_order.request_key = order_id;
  rpcboot::ScopedCallOptions scope(by_order);
  return fn();
}

// A counter of the service's own; the names are constants, so it cannot fail.
rpcboot::Counter* Counted(const char* name, const char* help, const rpcboot::MetricLabels& labels) {
  return rpcboot::GetCounter(name, help, labels).value();
}

class OrderServiceImpl final : public order::OrderService {
 public:
  OrderServiceImpl(std::shared_ptr<shop::ShopService> shops,
                   std::shared_ptr<delivery::DeliveryService> couriers,
                   std::shared_ptr<payment::PaymentService> payments,
                   std::unique_ptr<order::OrderStore> store, DeliveryPolicy delivery)
      : shops_(std::move(shops)),
        couriers_(std::move(couriers)),
        payments_(std::move(payments)),
        store_(std::move(store)),
        delivery_(delivery) {
    // The service's own metrics, beside rpcboot's on /metrics and the status page.
    for (const char* kind : {"delivery", "pickup"})
      placed_.push_back(Counted("order_placed_total", "Orders placed, by kind.", {{"kind", kind}}));
    const char* const label[] = {"placed", "picked_up", "delivered", "cancelled"};
    for (int status = 1; status < 4; ++status) {
      reached_[status] = Counted("order_status_reached_total", "Orders that reached a status.",
                                 {{"status", label[status]}});
    }
    gauges_.push_back(rpcboot::AddGauge("order_waiting_for_courier",
                                        "Delivered orders without a courier at the dispatcher's "
                                        "last round (up to 32 a shard).",
                                        {}, [this] { return waiting_.load() * 1.0; })
                          .value());
    gauges_.push_back(rpcboot::AddGauge("order_settlements_pending",
                                        "Payments still to be captured or voided at the "
                                        "dispatcher's last round (up to 32 a shard).",
                                        {}, [this] { return settling_.load() * 1.0; })
                          .value());
    gauges_.push_back(rpcboot::AddGauge("order_releases_pending",
                                        "Couriers still to be released at the dispatcher's last "
                                        "round (up to 32 a shard).",
                                        {}, [this] { return releasing_.load() * 1.0; })
                          .value());
  }

  order::Order PlaceOrder(const order::PlaceOrderRequest& request) override {
    // A retry of an order already placed gets that order back, never a second one: looked up
    // first, before anything that may have changed since (the shop may have closed).
    std::unique_lock<std::mutex> once;
    // What a stored order may hold: a peer cannot make the store keep megabytes per order.
    struct Limit {
      const char* field;
      std::size_t size;
      std::size_t most;
      const char* unit;
    };
    for (const Limit& l :
         {Limit{"request_id", request.request_id.size(), 128, "bytes"},
          Limit{"customer", request.customer.size(), 128, "bytes"},
          Limit{"deliver_to.street", request.deliver_to.street.size(), 256, "bytes"},
          Limit{"lines", request.lines.size(), 50, "lines"}}) {
      if (l.size > l.most) {
        throw RpcError(StatusCode::kInvalidArgument,
                       absl::StrCat(l.field, " is ", l.size, " ", l.unit, "; at most ", l.most));
      }
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
    if (!common::OnTheGlobe(to)) {
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
    o.status = order::OrderStatus::kPlaced;
    o.placed_at_ms = o.updated_at_ms = NowMs();
    Hold(&o);
    if (o.distance_m > 0) AssignCourier(s.location, &o);
    // A handler may block (the handler pool runs it, never an I/O thread): this one writes to
    // SQLite and commits before it answers.
    if (absl::Status stored = store_->Put(o, request.request_id); !stored.ok()) {
      if (!o.courier.empty()) ReleaseOrSay(o.order_id, false);  // no order, no ride
      VoidUnplaced(o.order_id);                                 // and no hold
      throw RpcError(StatusCode::kInternal, "order store: " + std::string(stored.message()));
    }
    placed_[o.distance_m > 0 ? 0 : 1]->Add();
    return o;
  }

  order::Order GetOrder(const order::GetOrderRequest& request) override {
    return Load(request.order_id);
  }

  order::Order CancelOrder(const order::CancelOrderRequest& request) override {
    CheckReason(request.reason);
    order::Order o;
    {
      std::lock_guard<std::mutex> lock(store_->OrderLock(request.order_id));
      o = Load(request.order_id);
      if (o.status == order::OrderStatus::kCancelled) return o;
      if (o.status != order::OrderStatus::kPlaced) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + o.order_id + " is " + Named(o.status) + ": too late to cancel");
      }
      o.status = order::OrderStatus::kCancelled;
      o.status_reason = request.reason.empty() ? "cancelled by the customer" : request.reason;
      Save(o, MayHoldACourier(o) ? std::optional<bool>(false) : std::nullopt, Settlement(o));
      reached_[static_cast<int>(o.status)]->Add();
    }
    if (MayHoldACourier(o)) ReleaseOrSay(o.order_id, false);
    SettleOrSay(o);
    return o;
  }

  order::Order AdvanceOrder(const order::AdvanceOrderRequest& request) override {
    using order::OrderStatus;
    if (request.status != OrderStatus::kPickedUp && request.status != OrderStatus::kDelivered) {
      throw RpcError(StatusCode::kInvalidArgument,
                     "status must be picked up (1) or delivered (2), not " +
                         std::to_string(static_cast<int>(request.status)) +
                         "; CancelOrder cancels");
    }
    order::Order o;
    {
      std::lock_guard<std::mutex> lock(store_->OrderLock(request.order_id));
      o = Load(request.order_id);
      const std::string& id = o.order_id;
      bool pickup = o.distance_m == 0;
      if (o.status == OrderStatus::kCancelled) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " was cancelled (" + o.status_reason + ")");
      }
      if (pickup && !request.by.empty()) {
        throw RpcError(StatusCode::kPermissionDenied,
                       "order " + id + " is picked up at the shop: no courier ('" + request.by +
                           "') carries it");
      }
      if (!pickup && o.courier.empty()) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " has no courier yet (the dispatcher assigns one)");
      }
      if (!pickup && request.by != o.courier) {
        throw RpcError(StatusCode::kPermissionDenied, "order " + id + " is carried by " +
                                                          o.courier + ", not '" + request.by + "'");
      }
      if (o.status == request.status) return o;  // a repeated report
      if (pickup && request.status == OrderStatus::kDelivered) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " is picked up at the shop: it is never delivered");
      }
      OrderStatus before =
          request.status == OrderStatus::kPickedUp ? OrderStatus::kPlaced : OrderStatus::kPickedUp;
      if (o.status != before) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " is " + Named(o.status) + ", not " + Named(before) +
                           ": it cannot be " + Named(request.status) + " now");
      }
      o.status = request.status;
      Save(o, o.status == OrderStatus::kDelivered ? std::optional<bool>(true) : std::nullopt,
           Settlement(o));
      reached_[static_cast<int>(o.status)]->Add();
    }
    if (o.status == OrderStatus::kDelivered) ReleaseOrSay(o.order_id, true);
    SettleOrSay(o);
    return o;
  }

  order::Order DeclineOrder(const order::DeclineOrderRequest& request) override {
    CheckReason(request.reason);
    order::Order o;
    {
      std::lock_guard<std::mutex> lock(store_->OrderLock(request.order_id));
      o = Load(request.order_id);
      const std::string& id = o.order_id;
      bool again =
          std::find(o.declined_by.begin(), o.declined_by.end(), request.by) != o.declined_by.end();
      if (o.distance_m == 0) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " is picked up at the shop: no courier carries it");
      }
      if (again && o.courier != request.by) return o;  // a repeated report
      if (o.status != order::OrderStatus::kPlaced) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " is " + Named(o.status) + ": too late to give it up");
      }
      if (o.courier.empty()) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " has no courier yet (the dispatcher assigns one)");
      }
      if (request.by != o.courier) {
        throw RpcError(StatusCode::kPermissionDenied, "order " + id + " is carried by " +
                                                          o.courier + ", not '" + request.by + "'");
      }
      if (o.declined_by.size() >= kMostDeclines) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       absl::StrCat("order ", id, " was given up by ", o.declined_by.size(),
                                    " couriers already: cancel it"));
      }
      // The delivery service frees the courier when the dispatcher asks it for another one.
      o.declined_by.push_back(o.courier);
      o.courier.clear();
      o.eta_minutes = 0;
      Save(o);
    }
    declined_->Add();
    std::cerr << "order: " << o.order_id << ": " << request.by << " gave it up"
              << (request.reason.empty() ? "" : " (" + request.reason + ")")
              << "; it waits for another courier\n";
    return o;
  }

  order::Order RefundOrder(const order::RefundOrderRequest& request) override {
    CheckReason(request.reason);
    order::Order o;
    {
      std::lock_guard<std::mutex> lock(store_->OrderLock(request.order_id));
      o = Load(request.order_id);
      const std::string& id = o.order_id;
      if (!Ended(o)) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id + " is " + Named(o.status) +
                           ": only a delivered or collected order is refunded");
      }
      if (o.refunded_cents > 0) {
        if (o.refunded_cents == request.amount_cents) return o;  // the same refund again
        throw RpcError(
            StatusCode::kFailedPrecondition,
            absl::StrCat("order ", id, " was refunded ", o.refunded_cents, " cents already"));
      }
      if (request.amount_cents < 1 || request.amount_cents > o.total_cents) {
        throw RpcError(StatusCode::kInvalidArgument,
                       absl::StrCat("amount_cents ", request.amount_cents, " is not in 1..",
                                    o.total_cents, " (the order's total)"));
      }
      if (o.payment != order::PaymentState::kCaptured) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "order " + id +
                           (o.payment == order::PaymentState::kHeld
                                ? ": its payment is not captured yet (the dispatcher captures it)"
                                : ": it has no captured payment to refund"));
      }
      o.refunded_cents = request.amount_cents;
      Save(o, std::nullopt, order::Settle::kRefund);
    }
    refunded_->Add();
    std::cerr << "order: " << o.order_id << ": " << o.refunded_cents << " cents refunded"
              << (request.reason.empty() ? "" : " (" + request.reason + ")") << "\n";
    SettleOrSay(o);
    return o;
  }

  // One round of the dispatcher: a courier for each delivered order that waits for one, oldest
  // first, until every courier is busy; an order that waited past give_up_ms is cancelled.
  void DispatchWaiting() {
    // First the payments still to be voided, captured or refunded (the payment service could not
    // be told). They do not hold up the couriers: a problem ends this part of the round only.
    absl::StatusOr<std::vector<std::pair<std::string, order::Settle>>> settlements =
        store_->PendingSettlements(32);
    if (!settlements.ok()) {
      Say("payments",
          "cannot list the payments to settle: " + std::string(settlements.status().message()));
    } else {
      settling_ = static_cast<int64_t>(settlements->size());
      for (const auto& [id, what] : *settlements) {
        if (std::string problem = SettlePayment(id, what); !problem.empty()) {
          Say("payments", problem);
          break;  // the next round tries again
        }
      }
    }
    // Then the couriers that are still to be released (the delivery service could not be told).
    absl::StatusOr<std::vector<std::pair<std::string, bool>>> releases =
        store_->PendingReleases(32);
    if (!releases.ok()) {
      Say("couriers",
          "cannot list the couriers to release: " + std::string(releases.status().message()));
      return;
    }
    releasing_ = static_cast<int64_t>(releases->size());
    for (const auto& [id, delivered] : *releases) {
      if (std::string problem = ReleaseCourier(id, delivered); !problem.empty()) {
        Say("couriers", problem);
        return;  // the next round tries again
      }
    }
    absl::StatusOr<std::vector<std::string>> waiting = store_->Waiting(32);
    if (!waiting.ok()) {
      Say("couriers",
          "cannot list the orders that wait: " + std::string(waiting.status().message()));
      return;
    }
    waiting_ = static_cast<int64_t>(waiting->size());
    // Orders a courier gave up come first: asking for their next courier frees the one who gave
    // it up, also when nobody else is free, so none of them ends the round. Then the oldest.
    std::vector<order::Order> orders;
    try {
      for (const std::string& id : *waiting) orders.push_back(Load(id));
    } catch (const RpcError& e) {
      Say("couriers", std::string("cannot read the orders that wait: ") + e.what());
      return;
    }
    std::stable_sort(orders.begin(), orders.end(),
                     [](const order::Order& a, const order::Order& b) {
                       return std::make_pair(a.declined_by.empty(), a.placed_at_ms) <
                              std::make_pair(b.declined_by.empty(), b.placed_at_ms);
                     });
    std::map<int64_t, common::GeoPoint> shop_at;
    for (order::Order& o : orders) {
      const std::string id = o.order_id;
      try {
        if (o.status != order::OrderStatus::kPlaced || !o.courier.empty()) continue;
        if (NowMs() - o.placed_at_ms > delivery_.give_up_ms) {
          GiveUp(id);
          continue;
        }
        if (shop_at.count(o.shop_id) == 0)
          shop_at[o.shop_id] = shops_->GetShop({o.shop_id}).location;
        delivery::Assignment a = WithKey(id, [&] {
          return couriers_->Assign({id, shop_at[o.shop_id], o.deliver_to.point, o.declined_by});
        });
        if (a.courier.empty()) {
          // A courier this order may not have (one gave it up) may still take the next one.
          if (!o.declined_by.empty()) continue;
          Say("couriers",
              std::to_string(waiting->size()) + " order(s) wait: every courier is busy");
          return;
        }
        bool taken = false;
        {
          std::lock_guard<std::mutex> lock(store_->OrderLock(id));
          o = Load(id);
          if (o.status == order::OrderStatus::kPlaced && o.courier.empty()) {
            o.courier = a.courier;
            o.eta_minutes = a.eta_minutes;
            Save(o);
            taken = true;
          }
        }
        if (!taken) {  // cancelled (or assigned) while the courier was asked for
          if (absl::Status kept = store_->Update(o, false); !kept.ok())
            Say("couriers", "cannot keep a release: " + std::string(kept.message()));
          if (std::string problem = ReleaseCourier(id, false); !problem.empty())
            Say("couriers", problem);
          continue;
        }
        char waited[32];
        std::snprintf(waited, sizeof waited, "%.1f s",
                      static_cast<double>(o.updated_at_ms - o.placed_at_ms) / 1000);
        std::cerr << "order: " << id << ": courier " << a.courier << " assigned after " << waited
                  << " of waiting\n";
        last_said_["couriers"].clear();
      } catch (const RpcError& e) {
        // The shop or the delivery service cannot be reached: the next round tries again.
        Say("couriers",
            std::to_string(waiting->size()) + " order(s) wait for a courier: " + e.what());
        return;
      }
    }
  }

 private:
  // A reason a caller gives is kept or logged: up to 256 bytes.
  static void CheckReason(const std::string& reason) {
    if (reason.size() > 256) {
      throw RpcError(StatusCode::kInvalidArgument,
                     "reason is " + std::to_string(reason.size()) + " bytes; at most 256");
    }
  }

  order::Order Load(const std::string& order_id) {
    absl::StatusOr<std::optional<order::Order>> o = store_->Get(order_id);
    if (!o.ok())
      throw RpcError(StatusCode::kInternal, "order store: " + std::string(o.status().message()));
    if (!o->has_value()) throw RpcError(StatusCode::kNotFound, "no order " + order_id);
    return std::move(**o);
  }

  // Stores the changes of `o` (its OrderLock held), stamped now, and, with `release`, that its
  // courier is to be released (see ReleaseCourier), with `settle`, that its payment is to be
  // voided, captured or refunded (see SettlePayment).
  void Save(order::Order& o, std::optional<bool> release = std::nullopt,
            std::optional<order::Settle> settle = std::nullopt) {
    o.updated_at_ms = NowMs();
    if (absl::Status s = store_->Update(o, release, settle); !s.ok())
      throw RpcError(StatusCode::kInternal, "order store: " + std::string(s.message()));
  }

  void GiveUp(const std::string& id) {
    order::Order o;
    {
      std::lock_guard<std::mutex> lock(store_->OrderLock(id));
      o = Load(id);
      if (o.status != order::OrderStatus::kPlaced || !o.courier.empty()) return;
      o.status = order::OrderStatus::kCancelled;
      o.status_reason = "no courier within " + std::to_string(delivery_.give_up_ms / 1000) + " s";
      Save(o, MayHoldACourier(o) ? std::optional<bool>(false) : std::nullopt, Settlement(o));
      reached_[static_cast<int>(o.status)]->Add();
    }
    std::cerr << "order: " << id << ": cancelled: " << o.status_reason << "\n";
    if (MayHoldACourier(o)) ReleaseOrSay(id, false);
    SettleOrSay(o);
  }

  // Holds the order's total on the customer's card, or refuses the order: the card declined
  // (FAILED_PRECONDITION), or the payment service did not answer (UNAVAILABLE; a hold it may
  // have made all the same is voided).
  void Hold(order::Order* o) {
    try {
      WithKey(o->order_id, [&] {
        return payments_->Authorize({o->order_id, o->customer, o->total_cents});
      });
      o->payment = order::PaymentState::kHeld;
    } catch (const RpcError& e) {
      if (e.code() == StatusCode::kFailedPrecondition) {
        throw RpcError(StatusCode::kFailedPrecondition, "payment service: " + e.message());
      }
      VoidUnplaced(o->order_id);
      throw RpcError(StatusCode::kUnavailable,
                     "payment service: " + std::string(e.what()) + "; the order is not placed");
    }
  }

  // Voids whatever the payment service holds for an order that was not placed: at once, or by
  // the dispatcher (kept on disk) when it cannot be told now.
  void VoidUnplaced(const std::string& order_id) {
    try {
      WithKey(order_id, [&] { return payments_->Settle({order_id, false}); });
    } catch (const RpcError& e) {
      std::cerr << "order: " << order_id
                << ": hold not voided yet (the dispatcher tries again): " << e.what() << "\n";
      if (absl::Status s = store_->KeepVoid(order_id, NowMs()); !s.ok())
        std::cerr << "order: " << order_id << ": " << s.message() << "\n";
    }
  }

  // What the payment service is to be told now that `o` changed: capture when it reached its
  // end, void when it was cancelled (both only while the total is held), refund when a captured
  // order was given a refund; nothing otherwise.
  static std::optional<order::Settle> Settlement(const order::Order& o) {
    if (o.payment == order::PaymentState::kCaptured && o.refunded_cents > 0)
      return order::Settle::kRefund;
    if (o.payment != order::PaymentState::kHeld) return std::nullopt;
    if (o.status == order::OrderStatus::kCancelled) return order::Settle::kVoid;
    if (Ended(o)) return order::Settle::kCapture;
    return std::nullopt;
  }

  // Delivered, or a pickup order collected.
  static bool Ended(const order::Order& o) {
    return o.status == order::OrderStatus::kDelivered ||
           (o.status == order::OrderStatus::kPickedUp && o.distance_m == 0);
  }

  // The order's payment state as the payment service's answer says it.
  static order::PaymentState StateOf(const payment::Payment& p) {
    switch (p.status) {
      case payment::PaymentStatus::kAuthorized:
        return order::PaymentState::kHeld;
      case payment::PaymentStatus::kCaptured:
        return p.refunded_cents > 0 ? order::PaymentState::kRefunded
                                    : order::PaymentState::kCaptured;
      case payment::PaymentStatus::kVoided:
        return order::PaymentState::kVoided;
    }
    return order::PaymentState::kNone;
  }

  // Tells the payment service to void, capture or refund the order's payment, and keeps the new
  // state (forgetting the settlement the store kept for it). When the service cannot be told, the
  // settlement stays and the dispatcher tries again; when it refuses for good (no such payment,
  // settled the other way), the order keeps the state the service says. Returns what went
  // wrong, "" when done.
  std::string SettlePayment(const std::string& order_id, order::Settle what,
                            order::PaymentState* settled = nullptr) {
    static const char* const kDone[] = {"voided", "captured", "refunded"};
    const std::string not_yet = order_id + ": payment not " + kDone[static_cast<int>(what)] +
                                " yet (the dispatcher tries again): ";
    order::PaymentState now;
    try {
      now = StateOf(WithKey(order_id, [&] {
        if (what == order::Settle::kRefund)
          return payments_->Refund({order_id, Load(order_id).refunded_cents});
        return payments_->Settle({order_id, what == order::Settle::kCapture});
      }));
    } catch (const RpcError& e) {
      if (e.code() != StatusCode::kNotFound && e.code() != StatusCode::kFailedPrecondition &&
          e.code() != StatusCode::kInvalidArgument) {
        return not_yet + e.what();
      }
      std::cerr << "order: " << order_id << ": payment not " << kDone[static_cast<int>(what)]
                << ": " << e.what() << "\n";
      try {
        now = StateOf(WithKey(order_id, [&] { return payments_->GetPayment({order_id}); }));
      } catch (const RpcError& g) {
        if (g.code() != StatusCode::kNotFound) return not_yet + g.what();
        now = order::PaymentState::kNone;
      }
    }
    if (absl::Status s = store_->Settled(order_id, now); !s.ok())
      std::cerr << "order: " << order_id << ": " << s.message() << "\n";
    if (settled != nullptr) *settled = now;
    return "";
  }

  // SettlePayment for a handler, when `o`'s change calls for one: `o` says the new state, a
  // problem goes to the log.
  void SettleOrSay(order::Order& o) {
    std::optional<order::Settle> what = Settlement(o);
    if (!what) return;
    if (std::string problem = SettlePayment(o.order_id, *what, &o.payment); !problem.empty())
      std::cerr << "order: " << problem << "\n";
  }

  // Whether the delivery service may hold a courier for `o`: any delivered order may, also one
  // with no courier here: the one who gave it up until a later Assign freed them, or the one an
  // Assign whose answer was lost (a timeout) gave it. Releasing an order no courier holds is
  // answered as it is, or NOT_FOUND when the service never assigned it: nothing to release.
  static bool MayHoldACourier(const order::Order& o) { return o.distance_m > 0; }

  // Logs a dispatcher problem once, not every round while it lasts (each topic on its own).
  void Say(const std::string& topic, const std::string& what) {
    std::string& last = last_said_[topic];
    if (what == last) return;
    last = what;
    std::cerr << "order: dispatcher: " << what << "\n";
  }

  // A courier from the delivery service (over Thrift). The order stands without one: it says no
  // courier yet, and the dispatcher asks again.
  void AssignCourier(const common::GeoPoint& shop, order::Order* o) {
    try {
      delivery::Assignment a = WithKey(o->order_id, [&] {
        return couriers_->Assign({o->order_id, shop, o->deliver_to.point});
      });
      o->courier = a.courier;
      o->eta_minutes = a.eta_minutes;
      if (a.courier.empty())
        std::cerr << "order: " << o->order_id << ": every courier is busy; it waits for one\n";
    } catch (const RpcError& e) {
      std::cerr << "order: " << o->order_id << ": no courier assigned: " << e.what() << "\n";
    }
  }

  // Tells the delivery service that the order's courier is free, and forgets the release the
  // store kept for it (an outbox row written with the status change). When the delivery service
  // cannot be told, the row stays and the dispatcher tries again; an assignment that service no
  // longer knows (it restarted) has nothing to release. Returns what went wrong, "" when the
  // courier is free.
  std::string ReleaseCourier(const std::string& order_id, bool delivered) {
    try {
      WithKey(order_id, [&] { return couriers_->Release({order_id, delivered}); });
    } catch (const RpcError& e) {
      if (e.code() != StatusCode::kNotFound)
        return order_id + ": courier not released yet (the dispatcher tries again): " + e.what();
      std::cerr << "order: " << order_id << ": nothing to release: " << e.what() << "\n";
    }
    if (absl::Status s = store_->Released(order_id); !s.ok())
      std::cerr << "order: " << order_id << ": " << s.message() << "\n";
    return "";
  }

  // ReleaseCourier for a handler: a problem goes to the log.
  void ReleaseOrSay(const std::string& order_id, bool delivered) {
    if (std::string problem = ReleaseCourier(order_id, delivered); !problem.empty())
      std::cerr << "order: " << problem << "\n";
  }

  std::shared_ptr<shop::ShopService> shops_;
  std::shared_ptr<delivery::DeliveryService> couriers_;
  std::shared_ptr<payment::PaymentService> payments_;
  std::unique_ptr<order::OrderStore> store_;
  static constexpr std::size_t kMostDeclines = 16;  // the delivery service's not_couriers limit

  const DeliveryPolicy delivery_;
  // The dispatcher's last problem, by topic (only its thread uses it).
  std::map<std::string, std::string> last_said_;
  std::vector<rpcboot::Counter*> placed_;  // delivery, pickup
  rpcboot::Counter* reached_[4] = {};      // by OrderStatus
  rpcboot::Counter* refunded_ =
      Counted("order_refunded_total", "Orders given a refund (RefundOrder).", {});
  rpcboot::Counter* declined_ =
      Counted("order_declined_total", "Orders a courier gave up (DeclineOrder).", {});
  std::atomic<int64_t> waiting_{0}, releasing_{0}, settling_{0};  // at the dispatcher's last round
  std::vector<std::unique_ptr<rpcboot::GaugeRegistration>> gauges_;  // last: go first
};

// Runs DispatchWaiting every `every` until destroyed.
class Dispatcher {
 public:
  Dispatcher(std::shared_ptr<OrderServiceImpl> service, std::chrono::milliseconds every)
      : service_(std::move(service)), every_(every), thread_([this] { Loop(); }) {}
  ~Dispatcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!wake_.wait_for(lock, every_, [this] { return stop_; })) {
      lock.unlock();
      service_->DispatchWaiting();
      lock.lock();
    }
  }

  std::shared_ptr<OrderServiceImpl> service_;
  const std::chrono::milliseconds every_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
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
  std::shared_ptr<payment::PaymentService> payments;
  try {
    shops = app->Client<shop::ShopService>();
    couriers = app->Client<delivery::DeliveryService>();  // clients.delivery.DeliveryService
    payments = app->Client<payment::PaymentService>();    // clients.payment.PaymentService
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
  absl::StatusOr<int64_t> dispatch_ms = settings.Int("delivery.dispatch_ms", 1000, 50, 600000);
  absl::StatusOr<int64_t> give_up_s = settings.Int("delivery.give_up_s", 1800, 1, 86400);
  for (const absl::StatusOr<int64_t>* value :
       {&shards, &max_km, &base_fee, &per_km, &dispatch_ms, &give_up_s}) {
    if (!value->ok()) {
      std::cerr << "order: " << value->status().message() << "\n";
      return 2;
    }
  }
  delivery = {*max_km * 1000, *base_fee, *per_km, *give_up_s * 1000};
  absl::StatusOr<std::unique_ptr<order::OrderStore>> store =
      order::OrderStore::Open(dir, static_cast<int>(*shards));
  if (!store.ok()) {
    std::cerr << "order: settings.store.dir: " << store.status().message() << "\n";
    return 2;
  }
  std::cerr << "order: store " << (dir.empty() ? "in memory" : dir) << ": " << (*store)->shards()
            << " shards, " << (*store)->size() << " orders\n";
  auto service =
      std::make_shared<OrderServiceImpl>(shops, couriers, payments, std::move(*store), delivery);
  app->Serve<order::OrderService>(service);
  int rc;
  {
    Dispatcher dispatcher(service, std::chrono::milliseconds(*dispatch_ms));
    rc = app->Run();
  }  // the dispatcher stops before the clients it calls go
  return rc;
}
