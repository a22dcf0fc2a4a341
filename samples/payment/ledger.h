// Where the payment service keeps its payments, one row per order: an SQLite file that one
// process owns (settings.payment.store), or a PostgreSQL database that several payment instances
// share (settings.payment.postgres), so that a customer's holds are counted together whichever
// instance takes a call.
#ifndef RPCBOOT_SAMPLES_PAYMENT_LEDGER_H_
#define RPCBOOT_SAMPLES_PAYMENT_LEDGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "payment_service.h"

namespace payment {

// What one transaction of a ledger reads and writes.
class LedgerTransaction {
 public:
  virtual ~LedgerTransaction() = default;
  // The order's payment; std::nullopt when it has none. A row that cannot be a payment is an
  // error naming it.
  virtual absl::StatusOr<std::optional<Payment>> Find(const std::string& order_id) = 0;
  // What the customer's authorized payments hold together.
  virtual absl::StatusOr<int64_t> Held(const std::string& customer) = 0;
  // Stores the payment (its served_by is not kept).
  virtual absl::Status Put(const Payment& payment) = 0;
};

class Ledger {
 public:
  virtual ~Ledger() = default;
  // Runs `work` in one transaction. No other transaction about the same order, nor (when
  // `customer` is not empty) about the same customer, runs beside it, in this process or in
  // another on the same store. What `work` throws ends the transaction without its changes and
  // is thrown on. A store that cannot be reached, read or written is RpcError UNAVAILABLE,
  // naming the store.
  virtual void Transact(const std::string& order_id, const std::string& customer,
                        const std::function<void(LedgerTransaction&)>& work) = 0;
  virtual absl::StatusOr<int64_t> Count() = 0;
  // For the log: "kept in payments.db", "in memory only", "kept in PostgreSQL at ...".
  virtual std::string Describe() const = 0;
};

// The table both stores keep, in SQL that SQLite and PostgreSQL both take (a status is a
// PaymentStatus; an index finds a customer's holds).
inline constexpr char kPaymentsTable[] = R"(
CREATE TABLE IF NOT EXISTS payments (
  order_id TEXT PRIMARY KEY,
  customer TEXT NOT NULL,
  amount_cents BIGINT NOT NULL,
  status INTEGER NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  refunded_cents BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS payments_held ON payments (customer) WHERE status = 0;
)";

// An SQLite file ("" for memory only) that one process owns (a lock file beside it).
absl::StatusOr<std::unique_ptr<Ledger>> OpenSqliteLedger(const std::string& path);

// A PostgreSQL database, by libpq connection string; creates its table when missing. Several
// processes may share it.
absl::StatusOr<std::unique_ptr<Ledger>> OpenPostgresLedger(const std::string& connection);

// The error for a row no payment has (a status out of range, negative or inconsistent amounts);
// OK for one that can be a payment.
absl::Status CheckRow(const std::string& store, const std::string& order_id, int64_t status,
                      int64_t amount_cents, int64_t refunded_cents);

}  // namespace payment

#endif  // RPCBOOT_SAMPLES_PAYMENT_LEDGER_H_
