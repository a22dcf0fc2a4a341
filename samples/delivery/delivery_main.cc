// The delivery service process: a fleet of couriers kept in SQLite (settings.fleet.store), served
// over gRPC and Thrift at once (samples/delivery/delivery.yaml). Each order goes to the free
// courier nearest its shop, who is busy with it until the order service releases it (delivered or
// cancelled) and then waits at the customer's door for the next order.
//
//   delivery --config=samples/delivery/delivery.yaml [--settings.fleet.couriers=N]
//            [--settings.fleet.store=FILE]
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/distance.h"
#include "delivery_service.rpcboot.h"
#include "fleet_store.h"
#include "rpcboot/app.h"
#include "rpcboot/metrics.h"
#include "rpcboot/status.h"

namespace {

using rpcboot::RpcError;
using rpcboot::StatusCode;

struct Courier {
  std::string name;
  common::GeoPoint at;
  std::string busy_with;  // the order it carries; "" when free
};

// Where the `count` couriers of a new fleet start: a ring around the centre of the samples' city.
std::vector<delivery::StoredCourier> StartingRing(int count, int from) {
  static const char* const kNames[] = {"Ana", "Ben", "Cem", "Dara", "Eli", "Fay", "Gus", "Hana"};
  std::vector<delivery::StoredCourier> ring;
  for (int i = from; i < count; ++i) {
    double angle = 2 * M_PI * i / count;
    std::string name = kNames[i % 8];
    if (i >= 8) name += " " + std::to_string(i / 8 + 1);
    ring.push_back({name, {52.5150 + 0.02 * std::sin(angle), 13.4100 + 0.03 * std::cos(angle)}});
  }
  return ring;
}

class Fleet final : public delivery::DeliveryService {
 public:
  // The fleet kept in `store`, grown to `couriers` (a new store starts them on the ring). A
  // store that holds more couriers than that, or assignments that do not fit its couriers, is
  // refused naming what is wrong.
  static absl::StatusOr<std::shared_ptr<Fleet>> Load(std::unique_ptr<delivery::FleetStore> store,
                                                     int couriers, int speed_kmh, int prep_minutes,
                                                     std::string served_by) {
    std::shared_ptr<Fleet> fleet(
        new Fleet(std::move(store), speed_kmh, prep_minutes, std::move(served_by)));
    if (absl::Status s = fleet->Restore(couriers); !s.ok()) return s;
    return fleet;
  }

  delivery::Assignment Assign(const delivery::AssignRequest& request) override {
    if (request.order_id.empty() || request.order_id.size() > kMaxOrderId) {
      throw RpcError(StatusCode::kInvalidArgument,
                     "order_id is " + std::to_string(request.order_id.size()) + " bytes; 1 to " +
                         std::to_string(kMaxOrderId));
    }
    for (const common::GeoPoint* p : {&request.pickup, &request.dropoff}) {
      if (!common::OnTheGlobe(*p) || !common::HasPosition(*p)) {
        throw RpcError(StatusCode::kInvalidArgument,
                       "order " + request.order_id + ": a pickup and a dropoff point are needed");
      }
    }
    if (request.not_couriers.size() > kMaxNotCouriers) {
      throw RpcError(StatusCode::kInvalidArgument,
                     absl::StrCat("not_couriers has ", request.not_couriers.size(),
                                  " names; at most ", kMaxNotCouriers));
    }
    auto declined = [&request](const std::string& name) {
      return std::find(request.not_couriers.begin(), request.not_couriers.end(), name) !=
             request.not_couriers.end();
    };
    std::lock_guard<std::mutex> lock(mu_);
    if (auto earlier = assigned_.find(request.order_id); earlier != assigned_.end()) {
      Kept& kept = earlier->second;
      // A finished assignment stays finished: a delivered or cancelled order is never carried
      // again.
      if (kept.a.done || !declined(kept.a.courier)) return kept.a;
      // Its courier gave the order up: the assignment is forgotten (on disk first), the courier
      // is free where they are, and someone else is asked.
      if (absl::Status s = store_->Forget(request.order_id); !s.ok())
        throw RpcError(StatusCode::kUnavailable, std::string(s.message()));
      couriers_[kept.courier].busy_with.clear();
      assigned_.erase(earlier);
    }
    Courier* nearest = nullptr;
    double to_pickup = 0;
    for (Courier& c : couriers_) {
      if (!c.busy_with.empty() || declined(c.name)) continue;
      double d = common::DistanceMetres(c.at, request.pickup);
      if (nearest == nullptr || d < to_pickup) {
        nearest = &c;
        to_pickup = d;
      }
    }
    delivery::Assignment a{};
    a.order_id = request.order_id;
    a.served_by = served_by_;
    if (nearest == nullptr) return a;  // every courier is busy: not kept, asked again later
    double ride = to_pickup + common::DistanceMetres(request.pickup, request.dropoff);
    a.courier = nearest->name;
    a.courier_to_pickup_m = static_cast<int32_t>(std::lround(to_pickup));
    a.eta_minutes = prep_minutes_ + static_cast<int32_t>(std::ceil(ride / 1000 / speed_kmh_ * 60));
    int index = static_cast<int>(nearest - couriers_.data());
    // Kept on disk first: an assignment the store could not keep is not made (Assign is
    // idempotent, the caller may try again).
    if (absl::Status s = store_->Assigned(
            {a.order_id, index, a.courier_to_pickup_m, a.eta_minutes, request.dropoff, 0});
        !s.ok()) {
      throw RpcError(StatusCode::kUnavailable, std::string(s.message()));
    }
    nearest->busy_with = a.order_id;
    assigned_.emplace(a.order_id, Kept{a, static_cast<std::size_t>(index), request.dropoff});
    return a;
  }

  delivery::Assignment Track(const delivery::TrackRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Find(request.order_id).a;
  }

  delivery::Assignment Release(const delivery::ReleaseRequest& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    Kept& kept = Find(request.order_id);
    if (kept.a.done) return kept.a;
    std::optional<common::GeoPoint> now_at;  // a courier who delivered waits at the door
    if (request.delivered) now_at = kept.dropoff;
    if (absl::Status s = store_->Released(request.order_id, next_done_seq_,
                                          static_cast<int>(kept.courier), now_at, kKeepDone);
        !s.ok()) {
      throw RpcError(StatusCode::kUnavailable, std::string(s.message()));
    }
    ++next_done_seq_;
    kept.a.done = true;
    Courier& c = couriers_[kept.courier];
    c.busy_with.clear();
    if (now_at) c.at = *now_at;
    delivery::Assignment a = kept.a;
    Finished(request.order_id);
    return a;
  }

 private:
  struct Kept {
    delivery::Assignment a;
    std::size_t courier;  // index in couriers_
    common::GeoPoint dropoff;
  };

  Fleet(std::unique_ptr<delivery::FleetStore> store, int speed_kmh, int prep_minutes,
        std::string served_by)
      : speed_kmh_(speed_kmh),
        prep_minutes_(prep_minutes),
        served_by_(std::move(served_by)),
        store_(std::move(store)) {
    // How busy the fleet is, on /metrics and the status page (rpcboot/metrics.h).
    for (bool busy : {true, false}) {
      gauges_.push_back(rpcboot::AddGauge("delivery_couriers", "Couriers, busy or free.",
                                          {{"state", busy ? "busy" : "free"}},
                                          [this, busy] { return Couriers(busy) * 1.0; })
                            .value());
    }
  }

  // Reads the couriers and assignments back from the store, adding couriers up to `count`.
  absl::Status Restore(int count) {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<std::vector<delivery::StoredCourier>> stored = store_->Couriers();
    if (!stored.ok()) return stored.status();
    const int kept = static_cast<int>(stored->size());
    if (kept > count) {
      return absl::FailedPreconditionError(absl::StrCat(
          store_->name(), " holds ", kept, " couriers, more than settings.fleet.couriers (", count,
          "): a fleet store only grows; raise the setting or use a new store"));
    }
    // Couriers the fleet grows by are written once the assignments are read and found sound: a
    // refused start leaves the store as it was.
    std::vector<delivery::StoredCourier> added = StartingRing(count, kept);
    stored->insert(stored->end(), added.begin(), added.end());
    for (delivery::StoredCourier& c : *stored) couriers_.push_back({std::move(c.name), c.at, ""});
    absl::StatusOr<std::vector<delivery::StoredAssignment>> assignments =
        store_->Assignments(kKeepDone);
    if (!assignments.ok()) return assignments.status();
    for (const delivery::StoredAssignment& s : *assignments) {
      if (s.courier >= count || (s.done_seq == 0 && !couriers_[s.courier].busy_with.empty())) {
        return absl::FailedPreconditionError(absl::StrCat(
            store_->name(), ": order ", s.order_id, " is carried by courier ", s.courier,
            s.courier >= count ? absl::StrCat(", and the fleet has ", count)
                               : ", who already carries order " + couriers_[s.courier].busy_with));
      }
      delivery::Assignment a{};
      a.order_id = s.order_id;
      a.courier = couriers_[s.courier].name;
      a.courier_to_pickup_m = s.courier_to_pickup_m;
      a.eta_minutes = s.eta_minutes;
      a.served_by = served_by_;
      a.done = s.done_seq > 0;
      assigned_[s.order_id] = Kept{a, static_cast<std::size_t>(s.courier), s.dropoff};
      if (a.done) {
        Finished(s.order_id);
        next_done_seq_ = std::max(next_done_seq_, s.done_seq + 1);
      } else {
        couriers_[s.courier].busy_with = s.order_id;
      }
    }
    if (!added.empty()) {
      if (absl::Status s = store_->AddCouriers(kept, added); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Finished assignments stay trackable for a while, not for ever: the oldest are forgotten.
  void Finished(const std::string& order_id) {  // requires mu_
    done_.push_back(order_id);
    if (done_.size() > static_cast<std::size_t>(kKeepDone)) {
      assigned_.erase(done_.front());
      done_.pop_front();
    }
  }

  int Couriers(bool busy) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Courier& c : couriers_) n += c.busy_with.empty() != busy;
    return n;
  }

  Kept& Find(const std::string& order_id) {  // requires mu_
    auto it = assigned_.find(order_id);
    if (it == assigned_.end()) {
      throw RpcError(StatusCode::kNotFound,
                     "order " + order_id + " was not assigned by " + served_by_);
    }
    return it->second;
  }

  static constexpr int64_t kKeepDone = 100000;
  static constexpr std::size_t kMaxOrderId = 128;  // what a peer can make each assignment keep
  static constexpr std::size_t kMaxNotCouriers = 16;

  const int speed_kmh_;
  const int prep_minutes_;
  const std::string served_by_;
  std::mutex mu_;
  std::unique_ptr<delivery::FleetStore> store_;  // guarded by mu_
  int64_t next_done_seq_ = 1;                    // guarded by mu_
  std::vector<Courier> couriers_;                // guarded by mu_
  std::map<std::string, Kept> assigned_;         // by order id; guarded by mu_
  std::deque<std::string> done_;                 // finished order ids, oldest first; guarded by mu_
  std::vector<std::unique_ptr<rpcboot::GaugeRegistration>> gauges_;  // last: go first
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<rpcboot::App> app = rpcboot::App::FromCommandLine(argc, argv);
  const rpcboot::Settings& settings = app->config().settings;
  absl::StatusOr<int64_t> couriers = settings.Int("fleet.couriers", 8, 1, 1000);
  absl::StatusOr<int64_t> speed = settings.Int("fleet.speed_kmh", 15, 1, 200);
  absl::StatusOr<int64_t> prep = settings.Int("fleet.prep_minutes", 10, 0, 240);
  for (const absl::StatusOr<int64_t>* value : {&couriers, &speed, &prep}) {
    if (!value->ok()) {
      std::cerr << "delivery: " << value->status().message() << "\n";
      return 2;
    }
  }
  // The fleet is read back from its store before anything is served: a store that cannot be
  // used stops the process with the reason (exit 2), leaving the file as it was.
  const std::string store_path = settings.String("fleet.store", "");
  absl::StatusOr<std::unique_ptr<delivery::FleetStore>> store =
      delivery::FleetStore::Open(store_path);
  absl::StatusOr<std::shared_ptr<Fleet>> fleet =
      store.ok() ? Fleet::Load(*std::move(store), static_cast<int>(*couriers),
                               static_cast<int>(*speed), static_cast<int>(*prep),
                               app->config().name + "@" + std::to_string(getpid()))
                 : absl::StatusOr<std::shared_ptr<Fleet>>(store.status());
  if (!fleet.ok()) {
    std::cerr << "delivery: settings.fleet.store: " << fleet.status().message() << "\n";
    return 2;
  }
  std::cerr << "delivery: fleet of " << *couriers << " couriers, "
            << (store_path.empty() ? "in memory only" : "kept in " + store_path) << "\n";
  app->Serve<delivery::DeliveryService>(*std::move(fleet));
  return app->Run();
}
