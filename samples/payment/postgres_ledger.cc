// The payments in a PostgreSQL database that several payment instances share. A transaction
// takes PostgreSQL advisory locks, the order's and then (for a new hold) the customer's, so two
// instances never hold one order twice nor let a customer's holds together pass the limit; every
// transaction takes them in that order, so none waits for another in a circle. Connections are
// pooled, opened as calls need them; one that breaks is dropped, and the next call opens another.
#include <mutex>
#include <pqxx/pqxx>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "ledger.h"
#include "rpcboot/status.h"

namespace payment {
namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

constexpr std::size_t kMaxIdleConnections = 16;

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running..."): one
// line for a log or a status.
std::string OneLine(const char* what) {
  std::string text = absl::StrReplaceAll(what, {{"\n\t", " "}, {"\n", " "}});
  return std::string(absl::StripTrailingAsciiWhitespace(text));
}

// A 64-bit advisory lock key for `kind` and `key` (FNV-1a): the same in every process.
int64_t LockKey(std::string_view kind, const std::string& key) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(kind);
  mix(std::string_view("\x1f", 1));
  mix(key);
  return static_cast<int64_t>(h);
}

class PostgresLedger final : public Ledger {
 public:
  explicit PostgresLedger(std::string connection) : connection_(std::move(connection)) {}

  // Connects once and creates the table when missing (under a lock: instances starting together
  // would otherwise both create it).
  absl::Status Start() {
    try {
      std::unique_ptr<pqxx::connection> conn = Connect();
      where_ = absl::StrCat("PostgreSQL at ", conn->hostname() ? conn->hostname() : "?", ":",
                            conn->port() ? conn->port() : "?", "/",
                            conn->dbname() ? conn->dbname() : "?");
      pqxx::work w(*conn);
      w.exec_params("SELECT pg_advisory_xact_lock($1)", LockKey("schema", "payments"));
      w.exec(kPaymentsTable);
      // A table of another shape (some other program's "payments") is refused now, not at the
      // first call.
      w.exec(
          "SELECT order_id, customer, amount_cents, status, updated_at_ms, refunded_cents "
          "FROM payments LIMIT 0");
      w.commit();
      GiveBack(std::move(conn));
    } catch (const pqxx::broken_connection& e) {
      return absl::UnavailableError("cannot connect: " + OneLine(e.what()));
    } catch (const pqxx::sql_error& e) {
      return absl::FailedPreconditionError(
          absl::StrCat(where_, ": cannot use table payments: ", OneLine(e.what())));
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(OneLine(e.what()));
    }
    return absl::OkStatus();
  }

  void Transact(const std::string& order_id, const std::string& customer,
                const std::function<void(LedgerTransaction&)>& work) override {
    // A pooled connection the server closed (it restarted, or ended idle sessions) breaks at the
    // first statement: nothing was committed, and the transaction runs once more on a new one.
    if (!TryTransact(order_id, customer, work, /*fresh=*/false))
      TryTransact(order_id, customer, work, /*fresh=*/true);
  }

  absl::StatusOr<int64_t> Count() override {
    try {
      std::unique_ptr<pqxx::connection> conn = Connect();
      int64_t n = 0;
      {
        pqxx::read_transaction r(*conn);
        n = r.exec("SELECT COUNT(*) FROM payments")[0][0].as<int64_t>();
      }
      GiveBack(std::move(conn));
      return n;
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(where_, ": ", OneLine(e.what())));
    }
  }

  std::string Describe() const override { return "kept in " + where_ + " (shared)"; }

 private:
  // One try of Transact. False when a pooled connection turned out broken (the pool is emptied:
  // its other connections are as old).
  bool TryTransact(const std::string& order_id, const std::string& customer,
                   const std::function<void(LedgerTransaction&)>& work, bool fresh) {
    std::unique_ptr<pqxx::connection> conn;
    bool pooled = false;
    try {
      if (!fresh) conn = TakeIdle();
      pooled = conn != nullptr;
      if (!pooled) conn = Connect();
      {
        pqxx::work w(*conn);
        w.exec_params("SELECT pg_advisory_xact_lock($1)", LockKey("order", order_id));
        if (!customer.empty())
          w.exec_params("SELECT pg_advisory_xact_lock($1)", LockKey("customer", customer));
        Transaction tx(w, where_);
        work(tx);  // what it throws rolls the transaction back (pqxx::work's destructor)
        w.commit();
      }
    } catch (const pqxx::broken_connection& e) {
      if (pooled) {
        std::lock_guard<std::mutex> lock(mu_);
        idle_.clear();
        return false;
      }
      throw RpcError(StatusCode::kUnavailable,
                     absl::StrCat(where_, ": connection lost: ", OneLine(e.what())));
    } catch (const pqxx::in_doubt_error& e) {
      throw RpcError(
          StatusCode::kUnavailable,
          absl::StrCat(where_, ": the commit's outcome is unknown: ", OneLine(e.what())));
    } catch (const pqxx::sql_error& e) {
      GiveBack(std::move(conn));
      throw RpcError(StatusCode::kUnavailable, absl::StrCat(where_, ": ", OneLine(e.what())));
    } catch (const RpcError&) {
      GiveBack(std::move(conn));
      throw;
    } catch (const std::exception& e) {  // a value it cannot convert: a table of another shape
      GiveBack(std::move(conn));
      throw RpcError(StatusCode::kUnavailable, absl::StrCat(where_, ": ", OneLine(e.what())));
    }
    GiveBack(std::move(conn));
    return true;
  }

  class Transaction final : public LedgerTransaction {
   public:
    Transaction(pqxx::work& w, const std::string& where) : w_(w), where_(where) {}

    absl::StatusOr<std::optional<Payment>> Find(const std::string& order_id) override {
      pqxx::result r = w_.exec_params(
          "SELECT customer, amount_cents, status, updated_at_ms, refunded_cents FROM payments "
          "WHERE order_id = $1",
          order_id);
      if (r.empty()) return std::nullopt;
      Payment p{};
      p.order_id = order_id;
      p.customer = r[0][0].as<std::string>();
      p.amount_cents = r[0][1].as<int64_t>();
      const int64_t status = r[0][2].as<int64_t>();
      p.updated_at_ms = r[0][3].as<int64_t>();
      p.refunded_cents = r[0][4].as<int64_t>();
      if (absl::Status s = CheckRow(where_, order_id, status, p.amount_cents, p.refunded_cents);
          !s.ok())
        return s;
      p.status = static_cast<PaymentStatus>(status);
      return p;
    }

    absl::StatusOr<int64_t> Held(const std::string& customer) override {
      return w_
          .exec_params(
              "SELECT COALESCE(SUM(amount_cents), 0) FROM payments WHERE customer = $1 AND "
              "status = 0",
              customer)[0][0]
          .as<int64_t>();
    }

    absl::Status Put(const Payment& p) override {
      w_.exec_params(
          "INSERT INTO payments (order_id, customer, amount_cents, status, updated_at_ms, "
          "refunded_cents) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO UPDATE SET "
          "customer = EXCLUDED.customer, amount_cents = EXCLUDED.amount_cents, status = "
          "EXCLUDED.status, updated_at_ms = EXCLUDED.updated_at_ms, refunded_cents = "
          "EXCLUDED.refunded_cents",
          p.order_id, p.customer, p.amount_cents, static_cast<int>(p.status), p.updated_at_ms,
          p.refunded_cents);
      return absl::OkStatus();
    }

   private:
    pqxx::work& w_;
    const std::string& where_;
  };

  std::unique_ptr<pqxx::connection> Connect() const {
    // A key=value string without a connect_timeout gains one: libpq would otherwise wait for an
    // unanswering host as long as TCP does. A URI is taken as it is.
    std::string conninfo = connection_;
    if (conninfo.find("://") == std::string::npos &&
        conninfo.find("connect_timeout") == std::string::npos)
      conninfo += " connect_timeout=5";
    auto conn = std::make_unique<pqxx::connection>(conninfo);
    // A call never waits on the database for longer than its caller would.
    pqxx::nontransaction n(*conn);
    n.exec("SET statement_timeout = 5000; SET lock_timeout = 5000");
    return conn;
  }

  // An idle connection from the pool; none when it is empty.
  std::unique_ptr<pqxx::connection> TakeIdle() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return nullptr;
    std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }

  void GiveBack(std::unique_ptr<pqxx::connection> conn) {
    if (conn == nullptr || !conn->is_open()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
  }

  const std::string connection_;
  std::string where_ = "PostgreSQL";
  std::mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
};

}  // namespace

absl::StatusOr<std::unique_ptr<Ledger>> OpenPostgresLedger(const std::string& connection) {
  auto ledger = std::make_unique<PostgresLedger>(connection);
  if (absl::Status s = ledger->Start(); !s.ok()) return s;
  return std::unique_ptr<Ledger>(std::move(ledger));
}

}  // namespace payment
