// The payment service process: card holds kept in SQLite (settings.payment.store, one process
// per file) or in PostgreSQL (settings.payment.postgres, shared by every instance), served over
// gRPC (samples/payment/payment.yaml). An order's total is held when the order is placed,
// captured when it is delivered or collected and voided when it is cancelled; a customer's holds
// together may not pass settings.payment.hold_limit_cents (the card is declined).
//
//   payment --config=samples/payment/payment.yaml [--settings.payment.hold_limit_cents=N]
//           [--settings.payment.store=FILE | --settings.payment.store=
//           --settings.payment.postgres=DSN]
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "ledger.h"
#include "payment_service.rpcboot.h"
#include "rpcboot/app.h"
#include "rpcboot/metrics.h"
#include "rpcboot/status.h"

namespace {

using payment::Ledger;
using payment::LedgerTransaction;
using payment::Payment;
using payment::PaymentStatus;
using rpcboot::RpcError;
using rpcboot::StatusCode;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 1250 -> "12.50".
std::string Money(int64_t cents) {
  char text[32];
  std::snprintf(text, sizeof text, "%lld.%02lld", static_cast<long long>(cents / 100),
                static_cast<long long>(cents % 100));
  return text;
}

class Payments final : public payment::PaymentService {
 public:
  Payments(std::unique_ptr<Ledger> ledger, int64_t hold_limit_cents, std::string served_by)
      : ledger_(std::move(ledger)),
        hold_limit_cents_(hold_limit_cents),
        served_by_(std::move(served_by)) {}

  Payment Authorize(const payment::AuthorizeRequest& request) override {
    CheckOrderId(request.order_id);
    if (request.customer.empty() || request.customer.size() > kMaxText) {
      throw RpcError(
          StatusCode::kInvalidArgument,
          absl::StrCat("customer is ", request.customer.size(), " bytes; 1 to ", kMaxText));
    }
    if (request.amount_cents < 1 || request.amount_cents > kMaxAmount) {
      throw RpcError(
          StatusCode::kInvalidArgument,
          absl::StrCat("amount_cents ", request.amount_cents, " is not in 1..", kMaxAmount));
    }
    Payment p{};
    bool held_now = false;
    // The customer's holds are added up and the new one kept in one transaction that no other
    // about this customer runs beside (in any instance sharing the store).
    ledger_->Transact(request.order_id, request.customer, [&](LedgerTransaction& tx) {
      if (std::optional<Payment> earlier = Find(tx, request.order_id)) {
        if (earlier->status == PaymentStatus::kVoided) {
          throw RpcError(StatusCode::kFailedPrecondition,
                         "the payment of order " + request.order_id + " was voided");
        }
        if (earlier->customer != request.customer ||
            earlier->amount_cents != request.amount_cents) {
          throw RpcError(
              StatusCode::kInvalidArgument,
              absl::StrCat("order ", request.order_id, " was authorized for ", earlier->customer,
                           " and ", Money(earlier->amount_cents), ", not for ", request.customer,
                           " and ", Money(request.amount_cents)));
        }
        p = *std::move(earlier);
        return;
      }
      absl::StatusOr<int64_t> held = tx.Held(request.customer);
      if (!held.ok())
        throw RpcError(StatusCode::kUnavailable, std::string(held.status().message()));
      if (*held + request.amount_cents > hold_limit_cents_) {
        declined_->Add();
        throw RpcError(StatusCode::kFailedPrecondition,
                       absl::StrCat("card of ", request.customer, " declined: ", Money(*held),
                                    " held already, and ", Money(request.amount_cents),
                                    " more passes its limit of ", Money(hold_limit_cents_)));
      }
      p = Payment{request.order_id,
                  request.customer,
                  request.amount_cents,
                  PaymentStatus::kAuthorized,
                  served_by_,
                  NowMs(),
                  0};
      Keep(tx, p);
      held_now = true;
    });
    if (held_now) authorized_->Add();
    return p;
  }

  Payment Settle(const payment::SettleRequest& request) override {
    CheckOrderId(request.order_id);
    const PaymentStatus want = request.capture ? PaymentStatus::kCaptured : PaymentStatus::kVoided;
    std::optional<Payment> p;
    ledger_->Transact(request.order_id, "", [&](LedgerTransaction& tx) {
      p = Find(tx, request.order_id);
      if (!p) {
        if (request.capture) {
          throw RpcError(StatusCode::kNotFound, "no payment for order " + request.order_id);
        }
        // A void that overtook its Authorize (one that timed out, say): nothing is held, and the
        // Authorize, if it still comes, holds nothing either.
        p = Payment{request.order_id, "", 0, PaymentStatus::kVoided, served_by_, NowMs(), 0};
        Keep(tx, *p);
        return;
      }
      if (p->status == want) return;
      if (p->status != PaymentStatus::kAuthorized) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       absl::StrCat("the payment of order ", request.order_id, " is ",
                                    Named(p->status), ": it cannot be ", Named(want)));
      }
      p->status = want;
      p->updated_at_ms = NowMs();
      Keep(tx, *p);
    });
    return *std::move(p);
  }

  Payment GetPayment(const payment::GetPaymentRequest& request) override {
    CheckOrderId(request.order_id);
    Payment p{};
    ledger_->Transact(request.order_id, "",
                      [&](LedgerTransaction& tx) { p = Existing(tx, request.order_id); });
    return p;
  }

  Payment Refund(const payment::RefundRequest& request) override {
    CheckOrderId(request.order_id);
    Payment p{};
    ledger_->Transact(request.order_id, "", [&](LedgerTransaction& tx) {
      p = Existing(tx, request.order_id);
      if (p.status != PaymentStatus::kCaptured) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       absl::StrCat("the payment of order ", request.order_id, " is ",
                                    Named(p.status), ": only a captured payment is refunded"));
      }
      if (request.amount_cents < 1 || request.amount_cents > p.amount_cents) {
        throw RpcError(StatusCode::kInvalidArgument,
                       absl::StrCat("amount_cents ", request.amount_cents, " is not in 1..",
                                    p.amount_cents, " (what was captured)"));
      }
      if (p.refunded_cents == request.amount_cents) return;  // the same refund again
      if (p.refunded_cents > 0) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       absl::StrCat("order ", request.order_id, " was refunded ",
                                    Money(p.refunded_cents), " already"));
      }
      p.refunded_cents = request.amount_cents;
      p.updated_at_ms = NowMs();
      Keep(tx, p);
    });
    return p;
  }

 private:
  static constexpr std::size_t kMaxText = 128;      // what a peer can make each payment keep
  static constexpr int64_t kMaxAmount = 1'000'000;  // 10,000.00

  static const char* Named(PaymentStatus status) {
    switch (status) {
      case PaymentStatus::kAuthorized:
        return "authorized";
      case PaymentStatus::kCaptured:
        return "captured";
      case PaymentStatus::kVoided:
        return "voided";
    }
    return "in no known status";
  }

  static void CheckOrderId(const std::string& order_id) {
    if (order_id.empty() || order_id.size() > kMaxText) {
      throw RpcError(StatusCode::kInvalidArgument,
                     absl::StrCat("order_id is ", order_id.size(), " bytes; 1 to ", kMaxText));
    }
  }

  std::optional<Payment> Find(LedgerTransaction& tx, const std::string& order_id) const {
    absl::StatusOr<std::optional<Payment>> p = tx.Find(order_id);
    if (!p.ok()) throw RpcError(StatusCode::kUnavailable, std::string(p.status().message()));
    if (p->has_value()) (*p)->served_by = served_by_;
    return *std::move(p);
  }

  // The order's payment; NOT_FOUND when it has none.
  Payment Existing(LedgerTransaction& tx, const std::string& order_id) const {
    std::optional<Payment> p = Find(tx, order_id);
    if (!p) throw RpcError(StatusCode::kNotFound, "no payment for order " + order_id);
    return *std::move(p);
  }

  // On disk before it is answered: a payment the store could not keep is not made.
  static void Keep(LedgerTransaction& tx, const Payment& p) {
    if (absl::Status s = tx.Put(p); !s.ok())
      throw RpcError(StatusCode::kUnavailable, std::string(s.message()));
  }

  const std::unique_ptr<Ledger> ledger_;
  const int64_t hold_limit_cents_;
  const std::string served_by_;
  rpcboot::Counter* authorized_ =
      rpcboot::GetCounter("payment_authorized_total", "Holds placed on a card.", {}).value();
  rpcboot::Counter* declined_ =
      rpcboot::GetCounter("payment_declined_total", "Cards declined: the holds passed the limit.",
                          {})
          .value();
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  const rpcboot::Settings& settings = app->config().settings;
  absl::StatusOr<int64_t> limit = settings.Int("payment.hold_limit_cents", 20000, 1, 100'000'000);
  if (!limit.ok()) {
    std::cerr << "payment: " << limit.status().message() << "\n";
    return 2;
  }
  // A store that cannot be used stops the process with the reason (exit 2) before anything is
  // served, leaving the store as it was.
  const std::string store_path = settings.String("payment.store", "");
  const std::string postgres = settings.String("payment.postgres", "");
  if (!postgres.empty() && !store_path.empty()) {
    std::cerr << "payment: settings.payment.postgres and settings.payment.store (" << store_path
              << ") are both set: one store a process (set settings.payment.store to \"\" to "
                 "keep the payments in PostgreSQL)\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = postgres.empty()
                                                       ? payment::OpenSqliteLedger(store_path)
                                                       : payment::OpenPostgresLedger(postgres);
  if (!ledger.ok()) {
    std::cerr << "payment: settings.payment." << (postgres.empty() ? "store" : "postgres") << ": "
              << ledger.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<int64_t> count = (*ledger)->Count();
  if (!count.ok()) {
    std::cerr << "payment: " << count.status().message() << "\n";
    return 2;
  }
  std::cerr << "payment: hold limit " << Money(*limit) << " a customer, " << *count << " payments "
            << (*ledger)->Describe() << "\n";
  auto payments = std::make_shared<Payments>(*std::move(ledger), *limit,
                                             app->config().name + "@" + std::to_string(getpid()));
  app->Serve<payment::PaymentService>(payments);
  return app->Run();
}
