#include "fleet_store.h"

#include "absl/strings/str_cat.h"
#include "common/distance.h"

namespace delivery {
namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS couriers (
  idx INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  lat REAL NOT NULL,
  lng REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
  order_id TEXT PRIMARY KEY,
  courier_idx INTEGER NOT NULL,
  to_pickup_m INTEGER NOT NULL,
  eta_minutes INTEGER NOT NULL,
  dropoff_lat REAL NOT NULL,
  dropoff_lng REAL NOT NULL,
  done_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS assignments_done ON assignments (done_seq) WHERE done_seq > 0;
)";

}  // namespace

absl::StatusOr<std::unique_ptr<FleetStore>> FleetStore::Open(const std::string& path) {
  std::unique_ptr<FleetStore> store(new FleetStore());
  if (!path.empty()) {
    // One process per store: two would hand one courier to two orders.
    absl::StatusOr<common::OwnerLock> lock =
        common::OwnerLock::Take(path + ".lock", path, "delivery", "one process per fleet store");
    if (!lock.ok()) return lock.status();
    store->owner_lock_ = *std::move(lock);
  }
  common::SqliteFile& file = store->file_;
  if (absl::Status s =
          file.Open(path.empty() ? ":memory:" : path, path.empty() ? "fleet (memory)" : path);
      !s.ok())
    return s;
  if (absl::Status s = file.Exec(kSchema, "cannot create the tables"); !s.ok()) return s;
  if (absl::Status s = file.PrepareAll({
          {&store->insert_courier_,
           "INSERT INTO couriers (idx, name, lat, lng) VALUES (?, ?, ?, ?)"},
          {&store->insert_assignment_,
           "INSERT INTO assignments (order_id, courier_idx, to_pickup_m, eta_minutes, "
           "dropoff_lat, dropoff_lng, done_seq) VALUES (?, ?, ?, ?, ?, ?, 0)"},
          {&store->finish_assignment_, "UPDATE assignments SET done_seq = ? WHERE order_id = ?"},
          {&store->move_courier_, "UPDATE couriers SET lat = ?, lng = ? WHERE idx = ?"},
          {&store->forget_done_, "DELETE FROM assignments WHERE done_seq > 0 AND done_seq <= ?"},
          {&store->forget_, "DELETE FROM assignments WHERE order_id = ?"},
      });
      !s.ok())
    return s;
  return store;
}

absl::StatusOr<std::vector<StoredCourier>> FleetStore::Couriers() {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(file_.db(), "SELECT idx, name, lat, lng FROM couriers ORDER BY idx", -1,
                         &st, nullptr) != SQLITE_OK) {
    return file_.Error("cannot read the couriers");
  }
  std::vector<StoredCourier> couriers;
  int rc;
  std::string wrong;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t idx = sqlite3_column_int64(st, 0);
    StoredCourier c{common::Text(st, 1),
                    {sqlite3_column_double(st, 2), sqlite3_column_double(st, 3)}};
    if (idx != static_cast<int64_t>(couriers.size())) {
      wrong = absl::StrCat("courier ", idx, " where courier ", couriers.size(), " was expected");
    } else if (c.name.empty() || !common::OnTheGlobe(c.at)) {
      wrong = absl::StrCat("courier ", idx, " has no name or a place off the globe");
    }
    if (!wrong.empty()) break;
    couriers.push_back(std::move(c));
  }
  sqlite3_finalize(st);
  if (!wrong.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(file_.name(), ": ", wrong));
  }
  if (rc != SQLITE_DONE) return file_.Error("cannot read the couriers");
  return couriers;
}

absl::Status FleetStore::AddCouriers(int first_index, const std::vector<StoredCourier>& couriers) {
  if (absl::Status s = file_.Exec("BEGIN", "cannot add couriers"); !s.ok()) return s;
  for (std::size_t i = 0; i < couriers.size(); ++i) {
    sqlite3_reset(insert_courier_);
    sqlite3_bind_int64(insert_courier_, 1, first_index + static_cast<int64_t>(i));
    sqlite3_bind_text(insert_courier_, 2, couriers[i].name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(insert_courier_, 3, couriers[i].at.lat);
    sqlite3_bind_double(insert_courier_, 4, couriers[i].at.lng);
    if (sqlite3_step(insert_courier_) != SQLITE_DONE) return file_.Abort("cannot add couriers");
  }
  if (sqlite3_exec(file_.db(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return file_.Abort("cannot add couriers");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredAssignment>> FleetStore::Assignments(int64_t keep_done) {
  // The finished ones are read newest first (to stop at keep_done) and returned oldest first.
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(file_.db(),
                         "SELECT order_id, courier_idx, to_pickup_m, eta_minutes, dropoff_lat, "
                         "dropoff_lng, done_seq FROM (SELECT * FROM assignments WHERE done_seq = 0 "
                         "UNION ALL SELECT * FROM (SELECT * FROM assignments WHERE done_seq > 0 "
                         "ORDER BY done_seq DESC LIMIT ?)) ORDER BY done_seq",
                         -1, &st, nullptr) != SQLITE_OK) {
    return file_.Error("cannot read the assignments");
  }
  sqlite3_bind_int64(st, 1, keep_done);
  std::vector<StoredAssignment> kept;
  int rc;
  std::string wrong;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    StoredAssignment a;
    a.order_id = common::Text(st, 0);
    int64_t courier = sqlite3_column_int64(st, 1);
    a.courier = static_cast<int>(courier);
    a.courier_to_pickup_m = sqlite3_column_int(st, 2);
    a.eta_minutes = sqlite3_column_int(st, 3);
    a.dropoff = {sqlite3_column_double(st, 4), sqlite3_column_double(st, 5)};
    a.done_seq = sqlite3_column_int64(st, 6);
    if (a.order_id.empty() || courier < 0 || courier > 1000000 || !common::OnTheGlobe(a.dropoff) ||
        a.done_seq < 0) {
      wrong = absl::StrCat("the assignment of order '", a.order_id,
                           "' has no order id, a courier index below 0 or a dropoff off the globe");
      break;
    }
    kept.push_back(std::move(a));
  }
  sqlite3_finalize(st);
  if (!wrong.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(file_.name(), ": ", wrong));
  }
  if (rc != SQLITE_DONE) return file_.Error("cannot read the assignments");
  return kept;
}

absl::Status FleetStore::Assigned(const StoredAssignment& a) {
  sqlite3_stmt* st = insert_assignment_;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, a.order_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 2, a.courier);
  sqlite3_bind_int(st, 3, a.courier_to_pickup_m);
  sqlite3_bind_int(st, 4, a.eta_minutes);
  sqlite3_bind_double(st, 5, a.dropoff.lat);
  sqlite3_bind_double(st, 6, a.dropoff.lng);
  if (sqlite3_step(st) != SQLITE_DONE) {
    return file_.Error("cannot keep the assignment of order " + a.order_id);
  }
  return absl::OkStatus();
}

absl::Status FleetStore::Forget(const std::string& order_id) {
  sqlite3_reset(forget_);
  sqlite3_bind_text(forget_, 1, order_id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(forget_) != SQLITE_DONE) {
    return file_.Error("cannot forget the assignment of order " + order_id);
  }
  return absl::OkStatus();
}

absl::Status FleetStore::Released(const std::string& order_id, int64_t done_seq, int courier,
                                  std::optional<common::GeoPoint> now_at, int64_t keep_done) {
  const std::string doing = "cannot keep the release of order " + order_id;
  if (absl::Status s = file_.Exec("BEGIN", doing); !s.ok()) return s;
  sqlite3_reset(finish_assignment_);
  sqlite3_bind_int64(finish_assignment_, 1, done_seq);
  sqlite3_bind_text(finish_assignment_, 2, order_id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(finish_assignment_) != SQLITE_DONE) return file_.Abort(doing);
  if (now_at) {
    sqlite3_reset(move_courier_);
    sqlite3_bind_double(move_courier_, 1, now_at->lat);
    sqlite3_bind_double(move_courier_, 2, now_at->lng);
    sqlite3_bind_int(move_courier_, 3, courier);
    if (sqlite3_step(move_courier_) != SQLITE_DONE) return file_.Abort(doing);
  }
  sqlite3_reset(forget_done_);
  sqlite3_bind_int64(forget_done_, 1, done_seq - keep_done);
  if (sqlite3_step(forget_done_) != SQLITE_DONE) return file_.Abort(doing);
  if (sqlite3_exec(file_.db(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
    return file_.Abort(doing);
  return absl::OkStatus();
}

}  // namespace delivery
