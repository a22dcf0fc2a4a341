// The payment service process: card holds kept in SQLite (settings.payment.store), served over
// gRPC (samples/payment/payment.yaml). An order's total is held when the order is placed,
// captured when it is delivered or collected and voided when it is cancelled; a customer's holds
// together may not pass settings.payment.hold_limit_cents (the card is declined).
//
//   payment --config=samples/payment/payment.yaml [--settings.payment.hold_limit_cents=N]
//           [--settings.payment.store=FILE]
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sqlite_file.h"
#include "payment_service.rpcboot.h"
#include "rpcboot/app.h"
#include "rpcboot/metrics.h"
#include "rpcboot/status.h"

namespace {

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

// The payments, one row per order, in one SQLite file ("" for memory only), owned by one process
// (a lock file beside it). Not thread-safe: the service calls it under its lock.
class Ledger {
 public:
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path) {
    std::unique_ptr<Ledger> ledger(new Ledger());
    if (!path.empty()) {
      // One process per ledger: two would each let a customer hold up to the limit.
      absl::StatusOr<common::OwnerLock> lock =
          common::OwnerLock::Take(path + ".lock", path, "payment", "one process per payment store");
      if (!lock.ok()) return lock.status();
      ledger->owner_lock_ = *std::move(lock);
    }
    common::SqliteFile& file = ledger->file_;
    if (absl::Status s =
            file.Open(path.empty() ? ":memory:" : path, path.empty() ? "payments (memory)" : path);
        !s.ok())
      return s;
    if (absl::Status s = file.Exec(R"(
CREATE TABLE IF NOT EXISTS payments (
  order_id TEXT PRIMARY KEY,
  customer TEXT NOT NULL,
  amount_cents INTEGER NOT NULL,
  status INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  refunded_cents INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS payments_held ON payments (customer) WHERE status = 0;
)",
                                   "cannot create the tables");
        !s.ok())
      return s;
    // A store written before refunds gains the column (nothing refunded).
    sqlite3_stmt* probe = nullptr;
    bool refunds = sqlite3_prepare_v2(file.db(), "SELECT refunded_cents FROM payments LIMIT 0", -1,
                                      &probe, nullptr) == SQLITE_OK;
    sqlite3_finalize(probe);
    if (!refunds) {
      if (absl::Status s =
              file.Exec("ALTER TABLE payments ADD COLUMN refunded_cents INTEGER NOT NULL DEFAULT 0",
                        "cannot add column refunded_cents");
          !s.ok())
        return s;
    }
    if (absl::Status s = file.PrepareAll({
            {&ledger->select_,
             "SELECT customer, amount_cents, status, updated_at_ms, refunded_cents FROM payments "
             "WHERE order_id = ?"},
            {&ledger->held_,
             "SELECT COALESCE(SUM(amount_cents), 0) FROM payments WHERE customer = ? AND status = "
             "0"},
            {&ledger->put_,
             "INSERT OR REPLACE INTO payments (order_id, customer, amount_cents, status, "
             "updated_at_ms, refunded_cents) VALUES (?, ?, ?, ?, ?, ?)"},
        });
        !s.ok())
      return s;
    return ledger;
  }

  // The order's payment; std::nullopt when it has none. A row that cannot be a payment is an
  // error naming it.
  absl::StatusOr<std::optional<Payment>> Find(const std::string& order_id) {
    sqlite3_reset(select_);
    sqlite3_bind_text(select_, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(select_);
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) return file_.Error("cannot read the payment of order " + order_id);
    Payment p{};
    p.order_id = order_id;
    p.customer = common::Text(select_, 0);
    p.amount_cents = sqlite3_column_int64(select_, 1);
    int64_t status = sqlite3_column_int64(select_, 2);
    p.updated_at_ms = sqlite3_column_int64(select_, 3);
    p.refunded_cents = sqlite3_column_int64(select_, 4);
    sqlite3_reset(select_);
    if (status < 0 || status > static_cast<int64_t>(PaymentStatus::kVoided) || p.amount_cents < 0 ||
        p.refunded_cents < 0 || p.refunded_cents > p.amount_cents) {
      return absl::InternalError(absl::StrCat(
          file_.name(), ": the payment of order ", order_id, " has status ", status, ", amount ",
          p.amount_cents, " and refunded ", p.refunded_cents, ", which no payment has"));
    }
    p.status = static_cast<PaymentStatus>(status);
    return p;
  }

  // What the customer's authorized payments hold together.
  absl::StatusOr<int64_t> Held(const std::string& customer) {
    sqlite3_reset(held_);
    sqlite3_bind_text(held_, 1, customer.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(held_);
    int64_t held = rc == SQLITE_ROW ? sqlite3_column_int64(held_, 0) : 0;
    sqlite3_reset(held_);
    if (rc != SQLITE_ROW) return file_.Error("cannot add up the holds of " + customer);
    return held;
  }

  absl::Status Put(const Payment& p) {
    sqlite3_reset(put_);
    sqlite3_bind_text(put_, 1, p.order_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(put_, 2, p.customer.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(put_, 3, p.amount_cents);
    sqlite3_bind_int64(put_, 4, static_cast<int64_t>(p.status));
    sqlite3_bind_int64(put_, 5, p.updated_at_ms);
    sqlite3_bind_int64(put_, 6, p.refunded_cents);
    int rc = sqlite3_step(put_);
    sqlite3_reset(put_);
    if (rc != SQLITE_DONE) return file_.Error("cannot keep the payment of order " + p.order_id);
    return absl::OkStatus();
  }

  int64_t Count() {
    absl::StatusOr<int64_t> n = file_.Single("SELECT COUNT(*) FROM payments");
    return n.ok() ? *n : 0;
  }

 private:
  Ledger() = default;

  common::OwnerLock owner_lock_;  // before file_: held until it is closed
  common::SqliteFile file_;
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* held_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
};

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
    std::lock_guard<std::mutex> lock(mu_);
    if (std::optional<Payment> earlier = Find(request.order_id)) {
      if (earlier->status == PaymentStatus::kVoided) {
        throw RpcError(StatusCode::kFailedPrecondition,
                       "the payment of order " + request.order_id + " was voided");
      }
      if (earlier->customer != request.customer || earlier->amount_cents != request.amount_cents) {
        throw RpcError(
            StatusCode::kInvalidArgument,
            absl::StrCat("order ", request.order_id, " was authorized for ", earlier->customer,
                         " and ", Money(earlier->amount_cents), ", not for ", request.customer,
                         " and ", Money(request.amount_cents)));
      }
      return *earlier;
    }
    absl::StatusOr<int64_t> held = ledger_->Held(request.customer);
    if (!held.ok()) throw RpcError(StatusCode::kUnavailable, std::string(held.status().message()));
    if (*held + request.amount_cents > hold_limit_cents_) {
      declined_->Add();
      throw RpcError(StatusCode::kFailedPrecondition,
                     absl::StrCat("card of ", request.customer, " declined: ", Money(*held),
                                  " held already, and ", Money(request.amount_cents),
                                  " more passes its limit of ", Money(hold_limit_cents_)));
    }
    Payment p{request.order_id,
              request.customer,
              request.amount_cents,
              PaymentStatus::kAuthorized,
              served_by_,
              NowMs(),
              0};
    Keep(p);
    authorized_->Add();
    return p;
  }

  Payment Settle(const payment::SettleRequest& request) override {
    CheckOrderId(request.order_id);
    const PaymentStatus want = request.capture ? PaymentStatus::kCaptured : PaymentStatus::kVoided;
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<Payment> p = Find(request.order_id);
    if (!p) {
      if (request.capture) {
        throw RpcError(StatusCode::kNotFound, "no payment for order " + request.order_id);
      }
      // A void that overtook its Authorize (one that timed out, say): nothing is held, and the
      // Authorize, if it still comes, holds nothing either.
      p = Payment{request.order_id, "", 0, PaymentStatus::kVoided, served_by_, NowMs(), 0};
      Keep(*p);
      return *p;
    }
    if (p->status == want) return *p;
    if (p->status != PaymentStatus::kAuthorized) {
      throw RpcError(StatusCode::kFailedPrecondition,
                     absl::StrCat("the payment of order ", request.order_id, " is ",
                                  Named(p->status), ": it cannot be ", Named(want)));
    }
    p->status = want;
    p->updated_at_ms = NowMs();
    p->served_by = served_by_;
    Keep(*p);
    return *p;
  }

  Payment GetPayment(const payment::GetPaymentRequest& request) override {
    CheckOrderId(request.order_id);
    std::lock_guard<std::mutex> lock(mu_);
    return Existing(request.order_id);
  }

  Payment Refund(const payment::RefundRequest& request) override {
    CheckOrderId(request.order_id);
    std::lock_guard<std::mutex> lock(mu_);
    Payment p = Existing(request.order_id);
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
    if (p.refunded_cents == request.amount_cents) return p;  // the same refund again
    if (p.refunded_cents > 0) {
      throw RpcError(StatusCode::kFailedPrecondition,
                     absl::StrCat("order ", request.order_id, " was refunded ",
                                  Money(p.refunded_cents), " already"));
    }
    p.refunded_cents = request.amount_cents;
    p.updated_at_ms = NowMs();
    Keep(p);
    return p;
  }

  int64_t Count() {
    std::lock_guard<std::mutex> lock(mu_);
    return ledger_->Count();
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

  std::optional<Payment> Find(const std::string& order_id) {  // requires mu_
    absl::StatusOr<std::optional<Payment>> p = ledger_->Find(order_id);
    if (!p.ok()) throw RpcError(StatusCode::kUnavailable, std::string(p.status().message()));
    if (p->has_value()) (*p)->served_by = served_by_;
    return *std::move(p);
  }

  // The order's payment; NOT_FOUND when it has none.
  Payment Existing(const std::string& order_id) {  // requires mu_
    std::optional<Payment> p = Find(order_id);
    if (!p) throw RpcError(StatusCode::kNotFound, "no payment for order " + order_id);
    return *std::move(p);
  }

  // On disk before it is answered: a payment the store could not keep is not made.
  void Keep(const Payment& p) {  // requires mu_
    if (absl::Status s = ledger_->Put(p); !s.ok())
      throw RpcError(StatusCode::kUnavailable, std::string(s.message()));
  }

  std::mutex mu_;
  std::unique_ptr<Ledger> ledger_;  // guarded by mu_
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
  // served, leaving the file as it was.
  const std::string store_path = settings.String("payment.store", "");
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(store_path);
  if (!ledger.ok()) {
    std::cerr << "payment: settings.payment.store: " << ledger.status().message() << "\n";
    return 2;
  }
  auto payments = std::make_shared<Payments>(*std::move(ledger), *limit,
                                             app->config().name + "@" + std::to_string(getpid()));
  std::cerr << "payment: hold limit " << Money(*limit) << " a customer, " << payments->Count()
            << " payments " << (store_path.empty() ? "in memory only" : "kept in " + store_path)
            << "\n";
  app->Serve<payment::PaymentService>(payments);
  return app->Run();
}
