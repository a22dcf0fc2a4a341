// The order service: places orders after checking them against the shop service and holding
// their total on the customer's card (the payment service), has a courier from the delivery
// service take each delivered one, follows it to the door, and reads them back. This header is
// the IDL: rpcboot-codegen emits order_service.thrift and order_service.proto from it.
#ifndef RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
#define RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/geo.h"
#include "rpcboot/annotations.h"

namespace order {

// Where an order is. Forward only: placed, picked up, delivered; cancelled only while placed.
enum class OrderStatus : int32_t {
  kPlaced = 0,     // taken; a delivered order waits for its courier (or for one to be assigned)
  kPickedUp = 1,   // the courier has it; for a pickup order, the customer has it (final)
  kDelivered = 2,  // at the door (final)
  kCancelled = 3,  // by the customer, or by the service when no courier came in time (final)
};

// The order's total on the customer's card (the payment service).
enum class PaymentState : int32_t {
  kNone = 0,      // placed before the service took payments (an older store)
  kHeld = 1,      // held on the card since the order was placed
  kCaptured = 2,  // taken: delivered or collected (final)
  kVoided = 3,    // the hold lifted: cancelled (final)
  kRefunded = 4,  // captured, then refunded_cents of it given back (RefundOrder; final)
};

struct OrderLine {
  int64_t item_id;
  int32_t quantity;
  int64_t unit_price_cents;  // the price the customer saw; must match the shop's menu
};

struct PlaceOrderRequest {
  int64_t shop_id;
  std::string customer;          // up to 128 bytes
  std::vector<OrderLine> lines;  // 1 to 50
  common::Address deliver_to;    // no point: picked up at the shop; street up to 256 bytes
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
  int32_t eta_minutes;         // from assignment to the door, as the delivery service said
  OrderStatus status;
  std::string status_reason;  // why it was cancelled; "" otherwise
  int64_t placed_at_ms;       // milliseconds since the Unix epoch
  int64_t updated_at_ms;      // when the status or the courier last changed
  // Couriers who gave the order up (DeclineOrder), first first: none of them is assigned to it
  // again.
  std::vector<std::string> declined_by;
  // Held when placed; captured or voided once the order ends (the payment service may be told a
  // little later: the order service keeps what it still has to tell it).
  PaymentState payment;
  int64_t refunded_cents;  // what RefundOrder gave back of the total; 0 otherwise
};

struct GetOrderRequest {
  std::string order_id;
};

struct CancelOrderRequest {
  std::string order_id;
  std::string reason;  // kept with the order (up to 256 bytes)
};

// A courier (or, for a pickup order, the shop) reports progress.
// Part or all of a delivered or collected order's total given back (a missing item, a late
// delivery): once per order.
struct RefundOrderRequest {
  std::string order_id;
  int64_t amount_cents;  // 1 to the order's total
  std::string reason;    // for the log (up to 256 bytes)
};

struct AdvanceOrderRequest {
  std::string order_id;
  OrderStatus status;  // kPickedUp or kDelivered
  std::string by;      // the courier named on the order; "" for a pickup order
};

// The order's courier gives it up before picking it up.
struct DeclineOrderRequest {
  std::string order_id;
  std::string by;      // the courier named on the order
  std::string reason;  // for the log (up to 256 bytes)
};

class RPCBOOT_SERVICE OrderService {
 public:
  virtual ~OrderService() = default;
  // The total is held on the customer's card first. NOT_FOUND: unknown shop;
  // FAILED_PRECONDITION: shop closed, address farther than the shop delivers, the card declined
  // ("payment service: card of ... declined: ..."); UNAVAILABLE: the payment service did not answer
  // (nothing is held and the order is not placed: retry with the same request_id);
  // INVALID_ARGUMENT: empty order, unknown item, wrong price, quantity out of 1..100, a point off
  // the globe, a request_id used before for a different request, a field past its size (customer
  // and request_id 128 bytes, street 256, 50 lines).
  virtual Order PlaceOrder(const PlaceOrderRequest& request) = 0;
  // NOT_FOUND for an unknown order id.
  RPCBOOT_IDEMPOTENT virtual Order GetOrder(const GetOrderRequest& request) = 0;
  // Cancels a placed order and frees its courier. A cancelled order again is answered as it is.
  // NOT_FOUND: unknown order; FAILED_PRECONDITION: picked up or delivered already.
  RPCBOOT_IDEMPOTENT virtual Order CancelOrder(const CancelOrderRequest& request) = 0;
  // Moves an order forward one step: placed -> picked up -> delivered (a pickup order ends at
  // picked up); delivered frees the courier. The status it already has is answered as it is (a
  // repeated report). NOT_FOUND: unknown order; INVALID_ARGUMENT: a status other than picked up
  // or delivered; PERMISSION_DENIED: `by` is not the order's courier; FAILED_PRECONDITION: a
  // step back or skipped, a cancelled order, a delivered order with no courier yet.
  RPCBOOT_IDEMPOTENT virtual Order AdvanceOrder(const AdvanceOrderRequest& request) = 0;
  // The courier on a placed order gives it up: the order waits for another courier (the
  // dispatcher asks for one), never one who gave it up before, and the courier is free for other
  // orders. The same courier again is answered as it is. NOT_FOUND: unknown order;
  // PERMISSION_DENIED: `by` is not the order's courier; FAILED_PRECONDITION: picked up, delivered
  // or cancelled, a pickup order, no courier yet, given up by 16 couriers already (cancel it);
  // INVALID_ARGUMENT: a reason of more than 256 bytes.
  RPCBOOT_IDEMPOTENT virtual Order DeclineOrder(const DeclineOrderRequest& request) = 0;
  // Gives back part or all of the total of a delivered or collected order (the payment service
  // is told at once, or later by the dispatcher; payment says kRefunded once it was). The same
  // refund again is answered as it is. NOT_FOUND: unknown order; FAILED_PRECONDITION: not
  // delivered or collected, its payment not captured (yet), refunded another amount already;
  // INVALID_ARGUMENT: an amount out of 1..total, a reason of more than 256 bytes.
  RPCBOOT_IDEMPOTENT virtual Order RefundOrder(const RefundOrderRequest& request) = 0;
};

}  // namespace order

#endif  // RPCBOOT_SAMPLES_ORDER_ORDER_SERVICE_H_
