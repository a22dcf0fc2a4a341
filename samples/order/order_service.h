// The order service: places orders after checking them against the shop service, and reads
// them back. This header is the IDL: rpcboot-codegen emits order_service.thrift and
// order_service.proto from it.
#ifndef RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
#define RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

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
};

struct Order {
  std::string order_id;
  int64_t shop_id;
  std::string customer;
  std::vector<OrderLine> lines;
  int64_t total_cents;
  int32_t shard;                // the store shard that keeps it (hash of order_id)
  std::string shop_checked_by;  // the shop instance that validated it
};

struct GetOrderRequest {
  std::string order_id;
};

class RPCBOOT_SERVICE OrderService {
 public:
  virtual ~OrderService() = default;
  // NOT_FOUND: unknown shop; FAILED_PRECONDITION: shop closed; INVALID_ARGUMENT: empty order,
  // unknown item, wrong price, quantity out of 1..100.
  virtual Order PlaceOrder(const PlaceOrderRequest& request) = 0;
  // NOT_FOUND for an unknown order id.
  RPCBOOT_IDEMPOTENT virtual Order GetOrder(const GetOrderRequest& request) = 0;
};

}  // namespace order

#endif  // RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
