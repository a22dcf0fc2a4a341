// Where the delivery service keeps its fleet: the couriers (where each one is) and the
// assignments (which courier carries which order, and those finished lately), in one SQLite file
// (settings.fleet.store). A restarted delivery process finds its couriers busy with the orders
// they had, so it never hands a busy courier out again and still answers Track and Release for
// them. An empty setting keeps the fleet in memory only.
//
// One process owns a store at a time (a lock file beside it says which). Not thread-safe: the
// fleet calls it under its own lock.
#ifndef RPCBOOT_SAMPLES_DELIVERY_FLEET_STORE_H_
#define RPCBOOT_SAMPLES_DELIVERY_FLEET_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/geo.h"
#include "common/sqlite_file.h"

namespace delivery {

struct StoredCourier {
  std::string name;
  common::GeoPoint at;
};

struct StoredAssignment {
  std::string order_id;
  int courier = 0;  // index in the fleet
  int32_t courier_to_pickup_m = 0;
  int32_t eta_minutes = 0;
  common::GeoPoint dropoff;
  int64_t done_seq = 0;  // 0 while the courier carries the order; then the order of finishing
};

class FleetStore {
 public:
  // Opens (or creates) the store at `path`, "" for memory only. Errors name the file and what is
  // wrong with it ("... is not an SQLite database it can use", "... is in use by another delivery
  // process (pid 12)").
  static absl::StatusOr<std::unique_ptr<FleetStore>> Open(const std::string& path);

  // The couriers as stored, by index; rows that cannot be a fleet are an error naming the row.
  absl::StatusOr<std::vector<StoredCourier>> Couriers();
  // Appends couriers (the fleet grew), in one transaction.
  absl::Status AddCouriers(int first_index, const std::vector<StoredCourier>& couriers);
  // The assignments still carried, and the last `keep_done` finished ones (oldest first).
  absl::StatusOr<std::vector<StoredAssignment>> Assignments(int64_t keep_done);
  absl::Status Assigned(const StoredAssignment& a);
  // The order's assignment is gone (its courier gave the order up).
  absl::Status Forget(const std::string& order_id);
  // The order's courier is free, now at `now_at` when it moved (delivered); finished
  // assignments older than the last `keep_done` are forgotten. One transaction.
  absl::Status Released(const std::string& order_id, int64_t done_seq, int courier,
                        std::optional<common::GeoPoint> now_at, int64_t keep_done);

  const std::string& name() const { return file_.name(); }

 private:
  FleetStore() = default;

  common::OwnerLock owner_lock_;  // before file_: held until it is closed
  common::SqliteFile file_;
  sqlite3_stmt* insert_courier_ = nullptr;
  sqlite3_stmt* insert_assignment_ = nullptr;
  sqlite3_stmt* finish_assignment_ = nullptr;
  sqlite3_stmt* move_courier_ = nullptr;
  sqlite3_stmt* forget_done_ = nullptr;
  sqlite3_stmt* forget_ = nullptr;
};

}  // namespace delivery

#endif  // RPCBOOT_SAMPLES_DELIVERY_FLEET_STORE_H_
