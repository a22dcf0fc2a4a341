// The delivery service process: a fleet of couriers in memory, served over gRPC and Thrift at
// once (samples/delivery/delivery.yaml). Each order goes to the free courier nearest its shop,
// who is busy with it until the order service releases it (delivered or cancelled) and then
// waits at the customer's door for the next order.
//
//   delivery --config=samples/delivery/delivery.yaml [--settings.fleet.couriers=N]
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/distance.h"
#include "delivery_service.rpcboot.h"
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

class Fleet final : public delivery::DeliveryService {
 public:
  // `couriers` start on a ring around the centre of the samples' city.
  Fleet(int couriers, int speed_kmh, int prep_minutes, std::string served_by)
      : speed_kmh_(speed_kmh), prep_minutes_(prep_minutes), served_by_(std::move(served_by)) {
    static const char* const kNames[] = {"Ana", "Ben", "Cem", "Dara", "Eli", "Fay", "Gus", "Hana"};
    for (int i = 0; i < couriers; ++i) {
      double angle = 2 * M_PI * i / couriers;
      std::string name = kNames[i % 8];
      if (i >= 8) name += " " + std::to_string(i / 8 + 1);
      couriers_.push_back(
          {name, {52.5150 + 0.02 * std::sin(angle), 13.4100 + 0.03 * std::cos(angle)}, ""});
    }
    // How busy the fleet is, on /metrics and the status page (rpcboot/metrics.h).
    for (bool busy : {true, false}) {
      gauges_.push_back(rpcboot::AddGauge("delivery_couriers", "Couriers, busy or free.",
                                          {{"state", busy ? "busy" : "free"}},
                                          [this, busy] { return Couriers(busy) * 1.0; })
                            .value());
    }
  }

  delivery::Assignment Assign(const delivery::AssignRequest& request) override {
    if (request.order_id.empty()) throw RpcError(StatusCode::kInvalidArgument, "no order_id");
    for (const common::GeoPoint* p : {&request.pickup, &request.dropoff}) {
      if (!std::isfinite(p->lat) || !std::isfinite(p->lng) || std::abs(p->lat) > 90 ||
          std::abs(p->lng) > 180 || !common::HasPosition(*p)) {
        throw RpcError(StatusCode::kInvalidArgument,
                       "order " + request.order_id + ": a pickup and a dropoff point are needed");
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = assigned_.find(request.order_id); it != assigned_.end()) return it->second.a;
    Courier* nearest = nullptr;
    double to_pickup = 0;
    for (Courier& c : couriers_) {
      if (!c.busy_with.empty()) continue;
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
    nearest->busy_with = a.order_id;
    assigned_.emplace(
        a.order_id, Kept{a, static_cast<std::size_t>(nearest - couriers_.data()), request.dropoff});
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
    kept.a.done = true;
    Courier& c = couriers_[kept.courier];
    c.busy_with.clear();
    if (request.delivered) c.at = kept.dropoff;  // waits there for the next order
    delivery::Assignment a = kept.a;
    // Finished assignments stay trackable for a while, not for ever: the oldest are forgotten.
    done_.push_back(request.order_id);
    if (done_.size() > kKeepDone) {
      assigned_.erase(done_.front());
      done_.pop_front();
    }
    return a;
  }

 private:
  struct Kept {
    delivery::Assignment a;
    std::size_t courier;  // index in couriers_
    common::GeoPoint dropoff;
  };

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

  static constexpr std::size_t kKeepDone = 100000;

  const int speed_kmh_;
  const int prep_minutes_;
  const std::string served_by_;
  std::mutex mu_;
  std::vector<Courier> couriers_;         // guarded by mu_
  std::map<std::string, Kept> assigned_;  // by order id; guarded by mu_
  std::deque<std::string> done_;          // released order ids, oldest first; guarded by mu_
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
  app->Serve<delivery::DeliveryService>(std::make_shared<Fleet>(
      static_cast<int>(*couriers), static_cast<int>(*speed), static_cast<int>(*prep),
      app->config().name + "@" + std::to_string(getpid())));
  return app->Run();
}
