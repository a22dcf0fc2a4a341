// The order service: places orders after checking them against the shop service, and reads
// them back. This header is the IDL: rpcboot-codegen emits order_service.thrift and
// order_service.proto from it.
#ifndef RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
#define RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/geo.h"
#include "rpcboot/annotations.h"

namespace order {

struct OrderLine {
  int64_t item_id;
  int32_t quantity;
  int64_t unit_price_cents;  // the price the customer saw; must match the shop's menu
};

struct PlaceOrderRequest {
  int64_t shop_id;
  std::string customer;
  std::vector<OrderLine> lines;
  common::Address deliver_to;  // no point: picked up at the shop
  // The caller's key for this order (up to 128 bytes; empty: none). The same key again, with the
  // same request, returns the order it placed instead of a second one: a client may retry a
  // PlaceOrder whose answer it never got.
  std::string request_id;
};

struct Order {
  std::string order_id;
  int64_t shop_id;
  std::string customer;
  std::vector<OrderLine> lines;
  int64_t total_cents;
  int32_t shard;                // the store shard that keeps it (hash of order_id)
  std::string shop_checked_by;  // the shop instance that validated it
  common::Address deliver_to;
  int32_t distance_m;          // shop to deliver_to, as the crow flies; 0 for a pickup
  int64_t delivery_fee_cents;  // included in total_cents
  std::string courier;         // who delivers it (the delivery service); "" for a pickup, or
                               // when no courier could be assigned when it was placed
  int32_t eta_minutes;         // from placing to the door, as the delivery service said
};

struct GetOrderRequest {
  std::string order_id;
};

class RPCBOOT_SERVICE OrderService {
 public:
  virtual ~OrderService() = default;
  // NOT_FOUND: unknown shop; FAILED_PRECONDITION: shop closed, address farther than the shop
  // delivers; INVALID_ARGUMENT: empty order, unknown item, wrong price, quantity out of 1..100,
  // a point off the globe, a request_id used before for a different request.
  virtual Order PlaceOrder(const PlaceOrderRequest& request) = 0;
  // NOT_FOUND for an unknown order id.
  RPCBOOT_IDEMPOTENT virtual Order GetOrder(const GetOrderRequest& request) = 0;
};

}  // namespace order

#endif  // RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
