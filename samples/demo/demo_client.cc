// The demo's client: shows the registry, places and reads orders through the order service
// (Thrift, found in ZooKeeper), retries one with its request_id, has a courier give one up,
// cancels one, plays the couriers and the customers who collect (each order to its end:
// delivered or picked up), and tries invalid orders and steps. Prints what happens; exits 0 when
// every valid order succeeded, the retry got its order back, the order given up went to another
// courier, every order reached its end (when a delivery instance is up), every payment is as its
// order says and every invalid order or step was refused with the expected code.
//
//   demo_client --zookeeper=127.0.0.1:2181 [--orders=30] [--interval_ms=100]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "delivery_service.rpcboot.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "order_service.rpcboot.h"
#include "payment_service.rpcboot.h"
#include "rpcboot/client.h"

namespace {

void ShowInstances(rpcboot::discovery::Resolver& resolver, const std::string& app) {
  rpcboot::discovery::InstanceList list = resolver.Current(app);
  std::printf("  %-6s %zu instance(s)\n", app.c_str(), list->size());
  for (const rpcboot::discovery::Instance& i : *list) {
    std::string ports;
    for (const char* p : {"grpc", "thrift"})
      if (i.PortFor(p))
        ports += std::string(ports.empty() ? "" : ", ") + p + " " + std::to_string(*i.PortFor(p));
    std::printf("         %s  %s (%s)\n", i.id.c_str(), i.address.c_str(), ports.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string zookeeper;
  int orders = 30;
  int interval_ms = 100;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--zookeeper=", 0) == 0) {
      zookeeper = a.substr(12);
    } else if (a.rfind("--orders=", 0) == 0) {
      orders = std::atoi(a.c_str() + 9);
    } else if (a.rfind("--interval_ms=", 0) == 0) {
      interval_ms = std::atoi(a.c_str() + 14);
    } else {
      std::fprintf(stderr,
                   "usage: demo_client --zookeeper=host:port [--orders=N] [--interval_ms=M]\n");
      return 2;
    }
  }
  if (zookeeper.empty() || orders < 1 || orders > 100000 || interval_ms < 0) {
    std::fprintf(stderr, "demo_client: --zookeeper is required; --orders in 1..100000\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  auto session =
      std::make_shared<rpcboot::discovery::Session>(rpcboot::discovery::SessionOptions{zookeeper});
  session->Start();
  if (!session->WaitConnected(std::chrono::seconds(10))) {
    std::fprintf(stderr, "demo_client: no ZooKeeper at %s\n", zookeeper.c_str());
    return 1;
  }
  rpcboot::discovery::Resolver resolver(session, "/services");
  for (const char* app : {"shop", "order", "delivery"}) resolver.Watch(app, [](const auto&) {});
  std::printf("registered in ZooKeeper %s under /services:\n", zookeeper.c_str());
  for (const char* app : {"shop", "order", "delivery"}) ShowInstances(resolver, app);

  auto orders_client = rpcboot::MakeClient<order::OrderService>(
      rpcboot::MakeChannel("zk://" + zookeeper + "/services/order", rpcboot::Protocol::kThrift));

  std::printf(
      "\nplacing %d orders (order service over Thrift; it checks each with a shop "
      "instance over gRPC):\n",
      orders);
  int placed = 0, failed = 0;
  std::map<std::string, int> checked_by;
  std::vector<std::string> ids;
  std::vector<std::string> delivered_ids, pickup_ids;
  order::PlaceOrderRequest first_request;
  std::string first_id;
  std::string tracked_id;  // a delivered order, tracked with the delivery service below
  for (int n = 0; n < orders; ++n) {
    order::PlaceOrderRequest request;
    request.customer = "customer-" + std::to_string(n % 7);
    // The client's key for the order: a retry after a lost answer repeats it (below).
    request.request_id = "demo-" + std::to_string(getpid()) + "-" + std::to_string(n);
    if (n % 2 == 0) {  // delivered, from shop 1 to an address 1-3 km away
      request.shop_id = 1;
      request.lines = {{11, 1 + n % 3, 1250}, {13, 2, 250}};
      request.deliver_to = {"Wiener Str. " + std::to_string(1 + n % 5),
                            {52.4980 + 0.002 * (n % 5), 13.4300}};
    } else {  // picked up at shop 2
      request.shop_id = 2;
      request.lines = {{21, 1, 990}};
    }
    try {
      order::Order o = orders_client->PlaceOrder(request);
      if (first_request.request_id.empty()) {
        first_request = request;
        first_id = o.order_id;
      }
      ++placed;
      ++checked_by[o.shop_checked_by];
      ids.push_back(o.order_id);
      (o.distance_m > 0 ? delivered_ids : pickup_ids).push_back(o.order_id);
      char delivery[96] = "pickup";
      if (o.distance_m > 0) {
        std::snprintf(delivery, sizeof delivery, "%.1f km, fee %lld, %s", o.distance_m / 1000.0,
                      static_cast<long long>(o.delivery_fee_cents),
                      o.courier.empty()
                          ? "no courier yet"
                          : (o.courier + " in " + std::to_string(o.eta_minutes) + " min").c_str());
        if (!o.courier.empty() && tracked_id.empty()) tracked_id = o.order_id;
      }
      std::printf("  order %-12s shop %lld  %6lld cents  %-36s shard %d  checked by %s\n",
                  o.order_id.c_str(), static_cast<long long>(o.shop_id),
                  static_cast<long long>(o.total_cents), delivery, o.shard,
                  o.shop_checked_by.c_str());
    } catch (const rpcboot::RpcError& e) {
      ++failed;
      std::printf("  order FAILED: %s\n", e.what());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }

  // A client that lost the answer to its first order sends it again, with the same request_id:
  // the order service answers with the order it placed then, and places no second one.
  bool retried_right = false;
  if (!first_id.empty()) {
    try {
      order::Order again = orders_client->PlaceOrder(first_request);
      retried_right = again.order_id == first_id;
      std::printf("\na retry of the first order (request_id %s) returned %s%s\n",
                  first_request.request_id.c_str(), again.order_id.c_str(),
                  retried_right ? ": the same order, not a second one" : " (WRONG: a new order)");
    } catch (const rpcboot::RpcError& e) {
      std::printf("\na retry of the first order FAILED: %s\n", e.what());
    }
  }

  // The delivery service serves gRPC and Thrift at once: order assigned the courier over Thrift,
  // this client asks over gRPC.
  bool tracked_right = true;
  if (!tracked_id.empty()) {
    auto couriers = rpcboot::MakeClient<delivery::DeliveryService>(
        rpcboot::MakeChannel("zk://" + zookeeper + "/services/delivery", rpcboot::Protocol::kGrpc));
    try {
      delivery::Assignment a = couriers->Track({tracked_id});
      std::printf(
          "tracked %s with the delivery service over gRPC: courier %s, %d m from the shop, "
          "at the door in %d min (kept by %s)\n",
          tracked_id.c_str(), a.courier.c_str(), a.courier_to_pickup_m, a.eta_minutes,
          a.served_by.c_str());
    } catch (const rpcboot::RpcError& e) {
      tracked_right = false;
      std::printf("tracking %s FAILED: %s\n", tracked_id.c_str(), e.what());
    }
  }

  // The courier of the tracked order gives it up before picking it up: the order waits again,
  // and the order service's dispatcher gives it to another courier, never the same one.
  std::string gave_up;  // who gave the tracked order up
  bool declined_right = true;
  if (!tracked_id.empty()) {
    try {
      gave_up = orders_client->GetOrder({tracked_id}).courier;
      order::Order o = orders_client->DeclineOrder({tracked_id, gave_up, "a flat tyre"});
      declined_right = o.courier.empty() && o.declined_by == std::vector<std::string>{gave_up};
      std::printf("%s gave %s up (a flat tyre): it waits for another courier%s\n", gave_up.c_str(),
                  tracked_id.c_str(), declined_right ? "" : " (WRONG: the order did not change)");
    } catch (const rpcboot::RpcError& e) {
      declined_right = false;
      std::printf("giving %s up FAILED: %s\n", tracked_id.c_str(), e.what());
    }
  }

  // The customer of the last delivered order changes their mind before it is picked up: its
  // courier is free again for the others.
  std::string cancelled_id;
  bool cancelled_right = true;
  if (!delivered_ids.empty()) {
    cancelled_id = delivered_ids.back();
    delivered_ids.pop_back();
    try {
      order::Order o =
          orders_client->CancelOrder({cancelled_id, "the customer changed their mind"});
      cancelled_right = o.status == order::OrderStatus::kCancelled;
      std::printf("\ncancelled %s: %s%s\n", cancelled_id.c_str(), o.status_reason.c_str(),
                  o.courier.empty() ? "" : (" (" + o.courier + " is free again)").c_str());
    } catch (const rpcboot::RpcError& e) {
      cancelled_right = false;
      std::printf("\ncancelling %s FAILED: %s\n", cancelled_id.c_str(), e.what());
    }
  }

  // The couriers pick their orders up and deliver them; each delivery frees a courier, and the
  // order service's dispatcher gives the orders that wait for one to it. Customers collect the
  // pickup orders. Without a delivery instance the delivered orders wait.
  int delivered = 0, collected = 0, waited = 0, step_failures = 0;
  bool couriers_up = resolver.Current("delivery")->size() > 0;
  for (const std::string& id : pickup_ids) {
    try {
      orders_client->AdvanceOrder({id, order::OrderStatus::kPickedUp, ""});
      ++collected;
    } catch (const rpcboot::RpcError& e) {
      ++step_failures;
      std::printf("  collecting %s FAILED: %s\n", id.c_str(), e.what());
    }
  }
  if (!couriers_up) {
    std::printf("no delivery instance is registered: %zu delivered order(s) wait for a courier\n",
                delivered_ids.size());
  } else {
    std::printf("couriers at work (%zu delivered orders):\n", delivered_ids.size());
    std::vector<std::string> left = delivered_ids;
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool first_round = true;
    while (!left.empty() && std::chrono::steady_clock::now() < give_up) {
      std::vector<std::string> still;
      for (const std::string& id : left) {
        try {
          order::Order o = orders_client->GetOrder({id});
          if (o.courier.empty()) {
            still.push_back(id);
            continue;
          }
          if (!first_round) ++waited;
          if (id == tracked_id && o.courier == gave_up) declined_right = false;
          orders_client->AdvanceOrder({id, order::OrderStatus::kPickedUp, o.courier});
          if (id == tracked_id) {  // a repeated report is answered as it is
            orders_client->AdvanceOrder({id, order::OrderStatus::kPickedUp, o.courier});
          }
          o = orders_client->AdvanceOrder({id, order::OrderStatus::kDelivered, o.courier});
          ++delivered;
          std::printf("  %-12s %-5s picked up and delivered%s\n", id.c_str(), o.courier.c_str(),
                      id == tracked_id ? (" (after " + gave_up + " gave it up)").c_str()
                      : first_round    ? ""
                                       : " (after waiting for a free courier)");
        } catch (const rpcboot::RpcError& e) {
          ++step_failures;
          std::printf("  %s FAILED: %s\n", id.c_str(), e.what());
        }
      }
      left = std::move(still);
      first_round = false;
      if (!left.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    for (const std::string& id : left) std::printf("  %s got no courier within 30 s\n", id.c_str());
    step_failures += static_cast<int>(left.size());
  }

  // Each order read back, and its payment from the payment service (over gRPC): captured once
  // delivered or collected, voided once cancelled, held while under way, as the order says.
  auto payments = rpcboot::MakeClient<payment::PaymentService>(
      rpcboot::MakeChannel("zk://" + zookeeper + "/services/payment", rpcboot::Protocol::kGrpc));
  int read_back = 0, payments_wrong = 0;
  std::map<payment::PaymentStatus, int> by_payment;
  for (const std::string& id : ids) {
    try {
      order::Order o = orders_client->GetOrder({id});
      if (o.order_id == id) ++read_back;
      payment::Payment p = payments->GetPayment({id});
      bool ended = o.status == order::OrderStatus::kDelivered ||
                   (o.status == order::OrderStatus::kPickedUp && o.distance_m == 0);
      auto want = o.status == order::OrderStatus::kCancelled
                      ? std::pair(order::PaymentState::kVoided, payment::PaymentStatus::kVoided)
                  : ended
                      ? std::pair(order::PaymentState::kCaptured, payment::PaymentStatus::kCaptured)
                      : std::pair(order::PaymentState::kHeld, payment::PaymentStatus::kAuthorized);
      ++by_payment[p.status];
      if (o.refunded_cents > 0) want.first = order::PaymentState::kRefunded;
      if (o.payment != want.first || p.status != want.second || p.amount_cents != o.total_cents ||
          p.refunded_cents != o.refunded_cents) {
        ++payments_wrong;
        std::printf("  the payment of %s is %d (order says %d) for %lld cents: WRONG\n", id.c_str(),
                    static_cast<int>(p.status), static_cast<int>(o.payment),
                    static_cast<long long>(p.amount_cents));
      }
    } catch (const rpcboot::RpcError& e) {
      ++payments_wrong;
      std::printf("  reading %s and its payment FAILED: %s\n", id.c_str(), e.what());
    }
  }
  std::printf(
      "\npayments, read from the payment service over gRPC: %d captured, %d voided, %d held%s\n",
      by_payment[payment::PaymentStatus::kCaptured], by_payment[payment::PaymentStatus::kVoided],
      by_payment[payment::PaymentStatus::kAuthorized],
      payments_wrong == 0 ? "; each as its order says" : "");

  std::printf("\ninvalid orders are rejected with a code and a reason:\n");
  struct Bad {
    const char* what;
    order::PlaceOrderRequest request;
    rpcboot::StatusCode expected;
  };
  Bad bad[] = {
      {"closed shop", {3, "c", {{31, 1, 800}}}, rpcboot::StatusCode::kFailedPrecondition},
      {"unknown shop", {9, "c", {{11, 1, 1250}}}, rpcboot::StatusCode::kNotFound},
      {"unknown item", {1, "c", {{99, 1, 100}}}, rpcboot::StatusCode::kInvalidArgument},
      {"wrong price", {1, "c", {{12, 1, 600}}}, rpcboot::StatusCode::kInvalidArgument},
      {"too far",
       {1, "c", {{11, 1, 1250}}, {"Marienplatz 1, Munich", {48.1374, 11.5755}}},
       rpcboot::StatusCode::kFailedPrecondition},
      {"card declined",  // 1,250.00 on a card that may hold 200.00 (payment.yaml)
       {1, "big-spender", {{11, 100, 1250}}},
       rpcboot::StatusCode::kFailedPrecondition},
  };
  int rejected_right = 0;
  for (Bad& b : bad) {
    try {
      orders_client->PlaceOrder(b.request);
      std::printf("  %-13s ACCEPTED (wrong)\n", b.what);
    } catch (const rpcboot::RpcError& e) {
      bool right = e.code() == b.expected;
      rejected_right += right;
      std::printf("  %-13s %s%s\n", b.what, e.what(), right ? "" : "  (unexpected code)");
    }
  }

  // Steps out of order are refused too.
  struct BadStep {
    const char* what;
    order::AdvanceOrderRequest request;
    rpcboot::StatusCode expected;
  };
  std::vector<BadStep> bad_steps;
  if (!cancelled_id.empty()) {
    bad_steps.push_back({"cancelled",
                         {cancelled_id, order::OrderStatus::kPickedUp, ""},
                         rpcboot::StatusCode::kFailedPrecondition});
  }
  if (!pickup_ids.empty()) {
    bad_steps.push_back({"a courier",
                         {pickup_ids[0], order::OrderStatus::kPickedUp, "Ana"},
                         rpcboot::StatusCode::kPermissionDenied});
    bad_steps.push_back({"not a step",
                         {pickup_ids[0], order::OrderStatus::kCancelled, ""},
                         rpcboot::StatusCode::kInvalidArgument});
  }
  int steps_refused_right = 0;
  for (BadStep& b : bad_steps) {
    try {
      orders_client->AdvanceOrder(b.request);
      std::printf("  step: %-10s ACCEPTED (wrong)\n", b.what);
    } catch (const rpcboot::RpcError& e) {
      bool right = e.code() == b.expected;
      steps_refused_right += right;
      std::printf("  step: %-10s %s%s\n", b.what, e.what(), right ? "" : "  (unexpected code)");
    }
  }

  std::printf(
      "\nsummary: %d placed, %d failed, %d read back, %d/%zu invalid orders rejected "
      "correctly\n",
      placed, failed, read_back, rejected_right, std::size(bad));
  std::printf(
      "  %d delivered (%d after waiting for a courier), %d collected at the shop, %d cancelled, "
      "%d/%zu invalid steps refused correctly\n",
      delivered, waited, collected, cancelled_id.empty() ? 0 : 1, steps_refused_right,
      bad_steps.size());
  for (const auto& [instance, count] : checked_by)
    std::printf("  shop instance %-14s checked %d order(s)\n", instance.c_str(), count);
  bool ok = failed == 0 && read_back == placed && retried_right && tracked_right &&
            declined_right && cancelled_right && step_failures == 0 && payments_wrong == 0 &&
            rejected_right == static_cast<int>(std::size(bad)) &&
            steps_refused_right == static_cast<int>(bad_steps.size());
  std::printf("%s\n", ok ? "demo client: OK" : "demo client: FAILED");
  return ok ? 0 : 1;
}
