// The payments in one SQLite file, owned by one process: its transactions run one at a time.
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/sqlite_file.h"
#include "ledger.h"
#include "rpcboot/status.h"

namespace payment {
namespace {

class SqliteLedger final : public Ledger, private LedgerTransaction {
 public:
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& path) {
    std::unique_ptr<SqliteLedger> ledger(new SqliteLedger(path));
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
    if (absl::Status s = file.Exec(kPaymentsTable, "cannot create the tables"); !s.ok()) return s;
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
    return std::unique_ptr<Ledger>(std::move(ledger));
  }

  void Transact(const std::string&, const std::string&,
                const std::function<void(LedgerTransaction&)>& work) override {
    // Every call changes at most one row, last: nothing to undo when `work` throws.
    std::lock_guard<std::mutex> lock(mu_);
    work(*this);
  }

  absl::StatusOr<int64_t> Count() override {
    std::lock_guard<std::mutex> lock(mu_);
    return file_.Single("SELECT COUNT(*) FROM payments");
  }

  std::string Describe() const override {
    return path_.empty() ? "in memory only" : "kept in " + path_;
  }

 private:
  explicit SqliteLedger(std::string path) : path_(std::move(path)) {}

  absl::StatusOr<std::optional<Payment>> Find(const std::string& order_id) override {
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
    if (absl::Status s = CheckRow(file_.name(), order_id, status, p.amount_cents, p.refunded_cents);
        !s.ok())
      return s;
    p.status = static_cast<PaymentStatus>(status);
    return p;
  }

  absl::StatusOr<int64_t> Held(const std::string& customer) override {
    sqlite3_reset(held_);
    sqlite3_bind_text(held_, 1, customer.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(held_);
    int64_t held = rc == SQLITE_ROW ? sqlite3_column_int64(held_, 0) : 0;
    sqlite3_reset(held_);
    if (rc != SQLITE_ROW) return file_.Error("cannot add up the holds of " + customer);
    return held;
  }

  absl::Status Put(const Payment& p) override {
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

  const std::string path_;
  std::mutex mu_;
  common::OwnerLock owner_lock_;  // before file_: held until it is closed
  common::SqliteFile file_;       // guarded by mu_
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* held_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Ledger>> OpenSqliteLedger(const std::string& path) {
  return SqliteLedger::Open(path);
}

absl::Status CheckRow(const std::string& store, const std::string& order_id, int64_t status,
                      int64_t amount_cents, int64_t refunded_cents) {
  if (status < 0 || status > static_cast<int64_t>(PaymentStatus::kVoided) || amount_cents < 0 ||
      refunded_cents < 0 || refunded_cents > amount_cents) {
    return absl::InternalError(absl::StrCat(
        store, ": the payment of order ", order_id, " has status ", status, ", amount ",
        amount_cents, " and refunded ", refunded_cents, ", which no payment has"));
  }
  return absl::OkStatus();
}

}  // namespace payment
