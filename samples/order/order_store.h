// Where the order service keeps its orders: SQLite, one database file per shard in a directory
// (settings.store.dir in order.yaml), each shard with its own connection and lock, so orders of
// different shards never wait for each other. An order's shard is the hash of its id. Orders
// survive a restart; an empty directory setting keeps them in memory only.
//
// One order process owns a directory at a time (a lock file says which); the number of shards is
// fixed when the directory is created. Thread-safe.
#ifndef RPCBOOT_SAMPLES_ORDER_ORDER_STORE_H_
#define RPCBOOT_SAMPLES_ORDER_ORDER_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sqlite_file.h"
#include "order_service.h"

namespace order {

// What the payment service is still to be told of an order (the settlements outbox).
enum class Settle : int { kVoid = 0, kCapture = 1, kRefund = 2 };

class OrderStore {
 public:
  // Opens (or creates) the shards in `dir`; "" keeps them in memory. Every error names the file
  // and what is wrong with it ("... is not an SQLite database", "... is in use by process 123").
  static absl::StatusOr<std::unique_ptr<OrderStore>> Open(const std::string& dir, int shards);
  ~OrderStore();
  OrderStore(const OrderStore&) = delete;
  OrderStore& operator=(const OrderStore&) = delete;

  // A new order id, unique in this store across restarts: "o<store tag>-<sequence>".
  std::string NextId();
  int ShardOf(const std::string& order_id) const;
  // Stores `o` (o.shard already set) in its shard, atomically with its lines, under the caller's
  // request id ("" for none).
  absl::Status Put(const Order& o, const std::string& request_id);
  // Stores what changes after placing: courier, eta, status, its reason, updated_at_ms and who
  // gave the order up (names not stored yet are added), and, in the same transaction, what the
  // other services are still to be told: with `release`, that the order's courier is to be
  // released (true: delivered, false: cancelled) until Released says it was; with `settle`, that
  // its payment is to be voided, captured or refunded until Settled says it was. Outboxes,
  // so that nothing another service could not be told at once is lost. Hold
  // OrderLock(o.order_id) from the Get that read the order to here. The payment state is
  // written by Put and Settled only.
  absl::Status Update(const Order& o, std::optional<bool> release = std::nullopt,
                      std::optional<Settle> settle = std::nullopt);
  // The payment service settled the order's payment: its state is `now`, and the settlement is
  // no longer pending. One transaction.
  absl::Status Settled(const std::string& order_id, PaymentState now);
  // A void to make of an order that was never stored (its hold may have been made when placing
  // it failed).
  absl::Status KeepVoid(const std::string& order_id, int64_t now_ms);
  // The settlements still to be made (order id, what), the oldest first, up to `per_shard`
  // from each shard.
  absl::StatusOr<std::vector<std::pair<std::string, Settle>>> PendingSettlements(int per_shard);
  absl::Status Released(const std::string& order_id);
  // The releases still to be made, the oldest first, up to `per_shard` from each shard.
  absl::StatusOr<std::vector<std::pair<std::string, bool>>> PendingReleases(int per_shard);
  std::mutex& OrderLock(const std::string& order_id);
  // The ids of delivered orders still placed and without a courier, the oldest first, up to
  // `per_shard` from each shard.
  absl::StatusOr<std::vector<std::string>> Waiting(int per_shard);
  // The order, std::nullopt when there is none, or an error from the database.
  absl::StatusOr<std::optional<Order>> Get(const std::string& order_id);
  // The order stored under a request id, std::nullopt when none is. Hold RequestLock(id) from
  // the lookup to the Put, so that two calls with one id place one order.
  absl::StatusOr<std::optional<Order>> FindByRequest(const std::string& request_id);
  std::mutex& RequestLock(const std::string& request_id);
  int shards() const { return static_cast<int>(shards_.size()); }
  int64_t size();  // orders stored, across shards

 private:
  struct Shard;
  OrderStore() = default;
  // The rows a statement of each shard lists (order id, a flag), up to `per_shard` from each.
  absl::StatusOr<std::vector<std::pair<std::string, int>>> Outbox(sqlite3_stmt* Shard::*select,
                                                                  int per_shard,
                                                                  const std::string& doing);

  common::OwnerLock owner_lock_;  // before shards_: held until they are closed
  std::vector<std::unique_ptr<Shard>> shards_;
  std::string tag_;
  std::atomic<int64_t> next_{1};
  std::array<std::mutex, 64> request_locks_;  // by hash of the request id
  std::array<std::mutex, 64> order_locks_;    // by hash of the order id
};

}  // namespace order

#endif  // RPCBOOT_SAMPLES_ORDER_ORDER_STORE_H_
