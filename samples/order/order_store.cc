#include "order_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <mutex>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/base/hash.h"

namespace order {
namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  order_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  shop_id INTEGER NOT NULL,
  customer TEXT NOT NULL,
  total_cents INTEGER NOT NULL,
  shard INTEGER NOT NULL,
  shop_checked_by TEXT NOT NULL,
  placed_at_ms INTEGER NOT NULL,
  deliver_street TEXT NOT NULL DEFAULT '',
  deliver_lat REAL NOT NULL DEFAULT 0,
  deliver_lng REAL NOT NULL DEFAULT 0,
  distance_m INTEGER NOT NULL DEFAULT 0,
  delivery_fee_cents INTEGER NOT NULL DEFAULT 0,
  request_id TEXT NOT NULL DEFAULT '',
  courier TEXT NOT NULL DEFAULT '',
  eta_minutes INTEGER NOT NULL DEFAULT 0,
  status INTEGER NOT NULL DEFAULT 0,
  status_reason TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL DEFAULT 0,
  payment INTEGER NOT NULL DEFAULT 0,
  refunded_cents INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS order_lines (
  order_id TEXT NOT NULL REFERENCES orders (order_id),
  line_no INTEGER NOT NULL,
  item_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  PRIMARY KEY (order_id, line_no));
CREATE TABLE IF NOT EXISTS declines (
  order_id TEXT NOT NULL REFERENCES orders (order_id),
  courier TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (order_id, courier));
CREATE TABLE IF NOT EXISTS settlements (
  order_id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,  -- order::Settle: 0 void, 1 capture, 2 refund
  since_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS releases (
  order_id TEXT PRIMARY KEY,
  delivered INTEGER NOT NULL,
  since_ms INTEGER NOT NULL);
)";

// Columns added after the first stores were written, with what older rows hold: a store opened
// by a newer build gains them (a pickup, no fee), so the demo's store survives the upgrade.
constexpr struct {
  const char* name;
  const char* declaration;
} kAddedColumns[] = {
    {"deliver_street", "TEXT NOT NULL DEFAULT ''"},
    {"deliver_lat", "REAL NOT NULL DEFAULT 0"},
    {"deliver_lng", "REAL NOT NULL DEFAULT 0"},
    {"distance_m", "INTEGER NOT NULL DEFAULT 0"},
    {"delivery_fee_cents", "INTEGER NOT NULL DEFAULT 0"},
    {"request_id", "TEXT NOT NULL DEFAULT ''"},
    {"courier", "TEXT NOT NULL DEFAULT ''"},
    {"eta_minutes", "INTEGER NOT NULL DEFAULT 0"},
    {"status", "INTEGER NOT NULL DEFAULT 0"},
    {"status_reason", "TEXT NOT NULL DEFAULT ''"},
    {"updated_at_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"payment", "INTEGER NOT NULL DEFAULT 0"},
    {"refunded_cents", "INTEGER NOT NULL DEFAULT 0"},
};

using common::Text;

}  // namespace

struct OrderStore::Shard : common::SqliteFile {
  std::mutex mu;
  sqlite3_stmt* insert_order = nullptr;
  sqlite3_stmt* insert_line = nullptr;
  sqlite3_stmt* select_order = nullptr;
  sqlite3_stmt* select_lines = nullptr;
  sqlite3_stmt* select_by_request = nullptr;
  sqlite3_stmt* update_order = nullptr;
  sqlite3_stmt* select_waiting = nullptr;
  sqlite3_stmt* insert_release = nullptr;
  sqlite3_stmt* delete_release = nullptr;
  sqlite3_stmt* select_releases = nullptr;
  sqlite3_stmt* insert_settlement = nullptr;
  sqlite3_stmt* settle_order = nullptr;
  sqlite3_stmt* delete_settlement = nullptr;
  sqlite3_stmt* select_settlements = nullptr;
  sqlite3_stmt* insert_decline = nullptr;
  sqlite3_stmt* select_declines = nullptr;

  absl::Status Open(const std::string& path, const std::string& shown_as) {
    if (absl::Status s = SqliteFile::Open(path, shown_as); !s.ok()) return s;
    if (absl::Status s = Exec(kSchema, "cannot create the tables"); !s.ok()) return s;
    for (const auto& column : kAddedColumns) {
      sqlite3_stmt* probe = nullptr;
      std::string select = absl::StrCat("SELECT ", column.name, " FROM orders LIMIT 0");
      bool present = sqlite3_prepare_v2(db(), select.c_str(), -1, &probe, nullptr) == SQLITE_OK;
      sqlite3_finalize(probe);
      if (present) continue;
      std::string alter =
          absl::StrCat("ALTER TABLE orders ADD COLUMN ", column.name, " ", column.declaration);
      if (absl::Status s = Exec(alter.c_str(), "cannot add column " + std::string(column.name));
          !s.ok())
        return s;
    }
    if (absl::Status s = Exec("CREATE INDEX IF NOT EXISTS orders_by_request ON orders "
                              "(request_id) WHERE request_id != ''",
                              "cannot index the request ids");
        !s.ok())
      return s;
    // The delivered orders that wait for a courier: the dispatcher reads them often.
    if (absl::Status s = Exec("CREATE INDEX IF NOT EXISTS orders_waiting ON orders (seq) "
                              "WHERE status = 0 AND distance_m > 0 AND courier = ''",
                              "cannot index the orders that wait for a courier");
        !s.ok())
      return s;
    if (absl::Status s = PrepareAll({
            {&insert_order,
             "INSERT INTO orders (order_id, seq, shop_id, customer, total_cents, shard, "
             "shop_checked_by, placed_at_ms, deliver_street, deliver_lat, deliver_lng, distance_m, "
             "delivery_fee_cents, request_id, courier, eta_minutes, status, status_reason, "
             "updated_at_ms, payment) "
             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
            {&update_order,
             "UPDATE orders SET courier = ?, eta_minutes = ?, status = ?, status_reason = ?, "
             "updated_at_ms = ?, refunded_cents = ? WHERE order_id = ?"},
            {&insert_release,
             "INSERT OR REPLACE INTO releases (order_id, delivered, since_ms) VALUES (?, ?, ?)"},
            {&delete_release, "DELETE FROM releases WHERE order_id = ?"},
            {&select_releases,
             "SELECT order_id, delivered FROM releases ORDER BY since_ms LIMIT ?"},
            {&insert_settlement,
             "INSERT OR REPLACE INTO settlements (order_id, kind, since_ms) VALUES (?, ?, ?)"},
            {&settle_order, "UPDATE orders SET payment = ? WHERE order_id = ?"},
            {&delete_settlement, "DELETE FROM settlements WHERE order_id = ?"},
            {&select_settlements,
             "SELECT order_id, kind FROM settlements ORDER BY since_ms LIMIT ?"},
            {&insert_decline,
             "INSERT OR IGNORE INTO declines (order_id, courier, at_ms) VALUES (?, ?, ?)"},
            {&select_declines,
             "SELECT courier FROM declines WHERE order_id = ? ORDER BY at_ms, rowid"},
            {&select_waiting,
             "SELECT order_id FROM orders WHERE status = 0 AND distance_m > 0 AND courier = '' "
             "ORDER BY seq LIMIT ?"},
            {&select_by_request, "SELECT order_id FROM orders WHERE request_id = ?"},
            {&insert_line,
             "INSERT INTO order_lines (order_id, line_no, item_id, quantity, unit_price_cents) "
             "VALUES (?, ?, ?, ?, ?)"},
            {&select_order,
             "SELECT shop_id, customer, total_cents, shard, shop_checked_by, deliver_street, "
             "deliver_lat, deliver_lng, distance_m, delivery_fee_cents, courier, eta_minutes, "
             "status, status_reason, placed_at_ms, updated_at_ms, payment, refunded_cents "
             "FROM orders "
             "WHERE order_id = ?"},
            {&select_lines,
             "SELECT item_id, quantity, unit_price_cents FROM order_lines WHERE order_id = ? "
             "ORDER BY line_no"},
        });
        !s.ok())
      return s;
    return absl::OkStatus();
  }

  // The value of meta.key, "" when absent.
  absl::StatusOr<std::string> Meta(const char* key) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db(), "SELECT value FROM meta WHERE key = ?", -1, &st, nullptr) !=
        SQLITE_OK) {
      return Error("cannot read meta");
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    std::string value;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) value = Text(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("cannot read meta");
    return value;
  }

  absl::Status SetMeta(const char* key, const std::string& value) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db(), "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &st,
                           nullptr) != SQLITE_OK) {
      return Error("cannot write meta");
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error("cannot write meta");
  }
};

absl::StatusOr<std::unique_ptr<OrderStore>> OrderStore::Open(const std::string& dir, int shards) {
  std::unique_ptr<OrderStore> store(new OrderStore());
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (!std::filesystem::is_directory(dir)) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, " is not a directory", ec ? " and cannot be created: " + ec.message() : ""));
    }
    // One process per directory: two would hand out the same order ids.
    absl::StatusOr<common::OwnerLock> lock =
        common::OwnerLock::Take(dir + "/LOCK", dir, "order", "one process per store directory");
    if (!lock.ok()) return lock.status();
    store->owner_lock_ = *std::move(lock);
  }
  // The number of shards the directory was made with, checked before anything is written: a
  // refused start leaves the files as they were.
  if (std::string first = dir + "/shard-0.db"; !dir.empty() && std::filesystem::exists(first)) {
    Shard probe;
    if (absl::Status s = probe.SqliteFile::Open(first, first, /*probe_only=*/true); !s.ok())
      return s;
    absl::StatusOr<int64_t> has_meta =
        probe.Single("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                     "is not an SQLite database it can use");
    if (!has_meta.ok()) return has_meta.status();
    absl::StatusOr<std::string> kept = *has_meta > 0 ? probe.Meta("shards") : std::string();
    if (!kept.ok()) return kept.status();
    if (!kept->empty() && *kept != std::to_string(shards)) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, " holds ", *kept, " shards, not ", shards,
                       " (an order's shard depends on the number: keep settings.store.shards at ",
                       *kept, " or use a new directory)"));
    }
  }
  for (int i = 0; i < shards; ++i) {
    auto shard = std::make_unique<Shard>();
    std::string path = dir.empty() ? ":memory:" : absl::StrCat(dir, "/shard-", i, ".db");
    if (absl::Status s =
            shard->Open(path, dir.empty() ? absl::StrCat("shard ", i, " (memory)") : path);
        !s.ok())
      return s;
    store->shards_.push_back(std::move(shard));
  }
  // The first shard keeps the number of shards (an order's shard depends on it) and the tag
  // that makes this store's order ids its own.
  Shard& first = *store->shards_[0];
  absl::StatusOr<std::string> tag = first.Meta("tag");
  if (!tag.ok()) return tag.status();
  store->tag_ = *tag;
  if (store->tag_.empty()) {
    std::random_device random;
    store->tag_ = absl::StrCat(absl::Hex(random() & 0xffffff, absl::kZeroPad6));
    if (absl::Status s = first.SetMeta("tag", store->tag_); !s.ok()) return s;
    if (absl::Status s = first.SetMeta("shards", std::to_string(shards)); !s.ok()) return s;
  }
  int64_t last = 0;
  for (auto& shard : store->shards_) {
    absl::StatusOr<int64_t> max = shard->Single("SELECT COALESCE(MAX(seq), 0) FROM orders");
    if (!max.ok()) return max.status();
    last = std::max(last, *max);
  }
  store->next_ = last + 1;
  return store;
}

OrderStore::~OrderStore() = default;

std::string OrderStore::NextId() { return absl::StrCat("o", tag_, "-", next_.fetch_add(1)); }

int OrderStore::ShardOf(const std::string& order_id) const {
  return static_cast<int>(rpcboot::StableHash(order_id) % shards_.size());
}

absl::Status OrderStore::Put(const Order& o, const std::string& request_id) {
  Shard& shard = *shards_[static_cast<std::size_t>(o.shard)];
  int64_t seq = 0;
  absl::SimpleAtoi(o.order_id.substr(o.order_id.rfind('-') + 1), &seq);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (absl::Status s = shard.Exec("BEGIN", "cannot begin"); !s.ok()) return s;
  sqlite3_stmt* st = shard.insert_order;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, seq);
  sqlite3_bind_int64(st, 3, o.shop_id);
  sqlite3_bind_text(st, 4, o.customer.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 5, o.total_cents);
  sqlite3_bind_int64(st, 6, o.shard);
  sqlite3_bind_text(st, 7, o.shop_checked_by.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 8, o.placed_at_ms);
  sqlite3_bind_text(st, 9, o.deliver_to.street.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(st, 10, o.deliver_to.point.lat);
  sqlite3_bind_double(st, 11, o.deliver_to.point.lng);
  sqlite3_bind_int64(st, 12, o.distance_m);
  sqlite3_bind_int64(st, 13, o.delivery_fee_cents);
  sqlite3_bind_text(st, 14, request_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 15, o.courier.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 16, o.eta_minutes);
  sqlite3_bind_int64(st, 17, static_cast<int64_t>(o.status));
  sqlite3_bind_text(st, 18, o.status_reason.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 19, o.updated_at_ms);
  sqlite3_bind_int64(st, 20, static_cast<int64_t>(o.payment));
  if (sqlite3_step(st) != SQLITE_DONE) return shard.Abort("cannot store order " + o.order_id);
  for (std::size_t i = 0; i < o.lines.size(); ++i) {
    const OrderLine& line = o.lines[i];
    st = shard.insert_line;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, static_cast<int64_t>(i));
    sqlite3_bind_int64(st, 3, line.item_id);
    sqlite3_bind_int64(st, 4, line.quantity);
    sqlite3_bind_int64(st, 5, line.unit_price_cents);
    if (sqlite3_step(st) != SQLITE_DONE) return shard.Abort("cannot store a line of " + o.order_id);
  }
  if (sqlite3_exec(shard.db(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return shard.Abort("cannot commit order " + o.order_id);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Order>> OrderStore::Get(const std::string& order_id) {
  Shard& shard = *shards_[static_cast<std::size_t>(ShardOf(order_id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  sqlite3_stmt* st = shard.select_order;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return shard.Error("cannot read order " + order_id);
  Order o{};
  o.order_id = order_id;
  o.shop_id = sqlite3_column_int64(st, 0);
  o.customer = Text(st, 1);
  o.total_cents = sqlite3_column_int64(st, 2);
  o.shard = sqlite3_column_int(st, 3);
  o.shop_checked_by = Text(st, 4);
  o.deliver_to.street = Text(st, 5);
  o.deliver_to.point = {sqlite3_column_double(st, 6), sqlite3_column_double(st, 7)};
  o.distance_m = sqlite3_column_int(st, 8);
  o.delivery_fee_cents = sqlite3_column_int64(st, 9);
  o.courier = Text(st, 10);
  o.eta_minutes = sqlite3_column_int(st, 11);
  int status = sqlite3_column_int(st, 12);
  o.status = status >= 0 && status <= static_cast<int>(OrderStatus::kCancelled)
                 ? static_cast<OrderStatus>(status)
                 : OrderStatus::kPlaced;
  o.status_reason = Text(st, 13);
  o.placed_at_ms = sqlite3_column_int64(st, 14);
  o.updated_at_ms = sqlite3_column_int64(st, 15);
  int payment = sqlite3_column_int(st, 16);
  o.refunded_cents = sqlite3_column_int64(st, 17);
  o.payment = payment >= 0 && payment <= static_cast<int>(PaymentState::kRefunded)
                  ? static_cast<PaymentState>(payment)
                  : PaymentState::kNone;
  sqlite3_reset(st);
  if (status != static_cast<int>(o.status) || payment != static_cast<int>(o.payment)) {
    return absl::InternalError(absl::StrCat(shard.name(), ": order ", order_id, " has status ",
                                            status, " and payment ", payment,
                                            ", which an order cannot have"));
  }
  st = shard.select_lines;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    o.lines.push_back(
        {sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1), sqlite3_column_int64(st, 2)});
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return shard.Error("cannot read the lines of order " + order_id);
  st = shard.select_declines;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) o.declined_by.push_back(Text(st, 0));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return shard.Error("cannot read who gave order " + order_id + " up");
  return o;
}

absl::Status OrderStore::Update(const Order& o, std::optional<bool> release,
                                std::optional<Settle> settle) {
  Shard& shard = *shards_[static_cast<std::size_t>(ShardOf(o.order_id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  if (absl::Status s = shard.Exec("BEGIN", "cannot begin"); !s.ok()) return s;
  sqlite3_stmt* st = shard.update_order;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, o.courier.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, o.eta_minutes);
  sqlite3_bind_int64(st, 3, static_cast<int64_t>(o.status));
  sqlite3_bind_text(st, 4, o.status_reason.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 5, o.updated_at_ms);
  sqlite3_bind_int64(st, 6, o.refunded_cents);
  sqlite3_bind_text(st, 7, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return shard.Abort("cannot update order " + o.order_id);
  if (sqlite3_changes(shard.db()) != 1) {
    sqlite3_exec(shard.db(), "ROLLBACK", nullptr, nullptr, nullptr);
    return absl::NotFoundError(absl::StrCat(shard.name(), ": no order ", o.order_id, " to update"));
  }
  for (const std::string& courier : o.declined_by) {  // those stored already are kept as they are
    st = shard.insert_decline;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, courier.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, o.updated_at_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return shard.Abort("cannot keep who gave order " + o.order_id + " up");
  }
  if (release.has_value()) {
    st = shard.insert_release;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, *release ? 1 : 0);
    sqlite3_bind_int64(st, 3, o.updated_at_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return shard.Abort("cannot keep the release of " + o.order_id);
  }
  if (settle.has_value()) {
    st = shard.insert_settlement;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, o.order_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, static_cast<int>(*settle));
    sqlite3_bind_int64(st, 3, o.updated_at_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return shard.Abort("cannot keep the payment of " + o.order_id);
  }
  if (sqlite3_exec(shard.db(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return shard.Abort("cannot commit order " + o.order_id);
  return absl::OkStatus();
}

absl::Status OrderStore::KeepVoid(const std::string& order_id, int64_t now_ms) {
  Shard& shard = *shards_[static_cast<std::size_t>(ShardOf(order_id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  sqlite3_stmt* st = shard.insert_settlement;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 2, 0);
  sqlite3_bind_int64(st, 3, now_ms);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? absl::OkStatus() : shard.Error("cannot keep the void of " + order_id);
}

absl::Status OrderStore::Settled(const std::string& order_id, PaymentState now) {
  Shard& shard = *shards_[static_cast<std::size_t>(ShardOf(order_id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  const std::string doing = "cannot keep the settled payment of " + order_id;
  if (absl::Status s = shard.Exec("BEGIN", doing); !s.ok()) return s;
  sqlite3_stmt* st = shard.settle_order;
  sqlite3_reset(st);
  sqlite3_bind_int(st, 1, static_cast<int>(now));
  sqlite3_bind_text(st, 2, order_id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return shard.Abort(doing);
  st = shard.delete_settlement;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return shard.Abort(doing);
  if (sqlite3_exec(shard.db(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return shard.Abort(doing);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, Settle>>> OrderStore::PendingSettlements(
    int per_shard) {
  auto rows = Outbox(&Shard::select_settlements, per_shard, "cannot list the payments to settle");
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, Settle>> pending;
  for (auto& [id, what] : *rows) {
    if (what < 0 || what > static_cast<int>(Settle::kRefund)) {
      return absl::InternalError(absl::StrCat("the settlement of order ", id, " is ", what,
                                              ", which is none (0 void, 1 capture, 2 refund)"));
    }
    pending.emplace_back(std::move(id), static_cast<Settle>(what));
  }
  return pending;
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> OrderStore::Outbox(
    sqlite3_stmt* Shard::*select, int per_shard, const std::string& doing) {
  std::vector<std::pair<std::string, int>> pending;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    sqlite3_stmt* st = (*shard).*select;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, per_shard);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      pending.emplace_back(Text(st, 0), sqlite3_column_int(st, 1));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return shard->Error(doing);
  }
  return pending;
}

absl::Status OrderStore::Released(const std::string& order_id) {
  Shard& shard = *shards_[static_cast<std::size_t>(ShardOf(order_id))];
  std::lock_guard<std::mutex> lock(shard.mu);
  sqlite3_stmt* st = shard.delete_release;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? absl::OkStatus()
                           : shard.Error("cannot forget the release of " + order_id);
}

absl::StatusOr<std::vector<std::pair<std::string, bool>>> OrderStore::PendingReleases(
    int per_shard) {
  auto rows = Outbox(&Shard::select_releases, per_shard, "cannot list the couriers to release");
  if (!rows.ok()) return rows.status();
  std::vector<std::pair<std::string, bool>> pending;
  for (auto& [id, delivered] : *rows) pending.emplace_back(std::move(id), delivered != 0);
  return pending;
}

absl::StatusOr<std::vector<std::string>> OrderStore::Waiting(int per_shard) {
  std::vector<std::string> ids;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    sqlite3_stmt* st = shard->select_waiting;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, per_shard);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) ids.push_back(Text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return shard->Error("cannot list the orders that wait for a courier");
  }
  return ids;
}

std::mutex& OrderStore::OrderLock(const std::string& order_id) {
  return order_locks_[rpcboot::StableHash(order_id) % order_locks_.size()];
}

std::mutex& OrderStore::RequestLock(const std::string& request_id) {
  return request_locks_[rpcboot::StableHash(request_id) % request_locks_.size()];
}

absl::StatusOr<std::optional<Order>> OrderStore::FindByRequest(const std::string& request_id) {
  for (auto& shard : shards_) {
    std::string order_id;
    {
      std::lock_guard<std::mutex> lock(shard->mu);
      sqlite3_stmt* st = shard->select_by_request;
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, request_id.c_str(), -1, SQLITE_TRANSIENT);
      int rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) order_id = Text(st, 0);
      sqlite3_reset(st);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return shard->Error("cannot look up request " + request_id);
    }
    if (!order_id.empty()) return Get(order_id);
  }
  return std::nullopt;
}

int64_t OrderStore::size() {
  int64_t total = 0;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    absl::StatusOr<int64_t> n = shard->Single("SELECT COUNT(*) FROM orders");
    if (n.ok()) total += *n;
  }
  return total;
}

}  // namespace order
