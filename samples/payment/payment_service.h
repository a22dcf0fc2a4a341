// The payment service: holds an order's total on the customer's card when the order is placed,
// takes it when the order reaches its end and lifts the hold when it is cancelled. This header is
// the IDL: rpcboot-codegen emits payment_service.thrift and payment_service.proto from it. Served
// over gRPC (payment.yaml); the order service is its caller.
#ifndef RPCBOOT_SAMPLES_PAYMENT_PAYMENT_SERVICE_H_
#define RPCBOOT_SAMPLES_PAYMENT_PAYMENT_SERVICE_H_

#include <cstdint>
#include <string>

#include "rpcboot/annotations.h"

namespace payment {

enum class PaymentStatus : int32_t {
  kAuthorized = 0,  // the amount is held on the customer's card
  kCaptured = 1,    // taken: the order was delivered or collected (final)
  kVoided = 2,      // the hold is lifted, or there never was one: the order was cancelled (final)
};

struct AuthorizeRequest {
  std::string order_id;  // 1 to 128 bytes: the key of the payment
  std::string customer;  // whose card: 1 to 128 bytes
  int64_t amount_cents;  // 1 to 1,000,000
};

struct Payment {
  std::string order_id;
  std::string customer;
  int64_t amount_cents;  // 0 for a void that came before any hold
  PaymentStatus status;
  std::string served_by;   // the payment instance that answered
  int64_t updated_at_ms;   // milliseconds since the Unix epoch
  int64_t refunded_cents;  // of a captured payment, given back (Refund); 0 otherwise
};

struct SettleRequest {
  std::string order_id;
  bool capture;  // true: take the amount (the order reached its end); false: void the hold
};

// Part or all of a captured payment given back (a missing item, a late delivery): once per order.
struct RefundRequest {
  std::string order_id;
  int64_t amount_cents;  // 1 to what was captured
};

struct GetPaymentRequest {
  std::string order_id;
};

class RPCBOOT_SERVICE PaymentService {
 public:
  virtual ~PaymentService() = default;
  // Holds the amount on the customer's card. The same order again returns the payment made then
  // (a retry never holds twice). FAILED_PRECONDITION: the card is declined (the customer's holds
  // would pass settings.payment.hold_limit_cents), or the order's payment was voided already;
  // INVALID_ARGUMENT: a field out of its range, the same order with another customer or amount.
  RPCBOOT_IDEMPOTENT virtual Payment Authorize(const AuthorizeRequest& request) = 0;
  // Captures or voids the order's hold; a payment already so is answered as it is. A void of an
  // order with no payment keeps it voided, so a late Authorize for it holds nothing.
  // NOT_FOUND: a capture of an order with no payment; FAILED_PRECONDITION: a capture of a voided
  // payment or a void of a captured one.
  RPCBOOT_IDEMPOTENT virtual Payment Settle(const SettleRequest& request) = 0;
  // NOT_FOUND for an order with no payment.
  RPCBOOT_IDEMPOTENT virtual Payment GetPayment(const GetPaymentRequest& request) = 0;
  // Gives back part or all of a captured payment; the same refund again is answered as it is.
  // NOT_FOUND: no payment; FAILED_PRECONDITION: not captured, or refunded another amount
  // already; INVALID_ARGUMENT: an amount out of 1..what was captured.
  RPCBOOT_IDEMPOTENT virtual Payment Refund(const RefundRequest& request) = 0;
};

}  // namespace payment

#endif  // RPCBOOT_SAMPLES_PAYMENT_PAYMENT_SERVICE_H_
