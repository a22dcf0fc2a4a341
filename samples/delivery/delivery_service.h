// The delivery service: assigns a courier to each delivered order and tracks it. This header is
// the IDL: rpcboot-codegen emits delivery_service.thrift and delivery_service.proto from it,
// importing geo's types. Served over gRPC and Thrift at once (delivery.yaml): the order service
// calls it over Thrift, the demo client tracks orders over gRPC.
#ifndef RPCBOOT_SAMPLES_DELIVERY_DELIVERY_SERVICE_H_
#define RPCBOOT_SAMPLES_DELIVERY_DELIVERY_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/geo.h"
#include "rpcboot/annotations.h"

namespace delivery {

struct AssignRequest {
  std::string order_id;
  common::GeoPoint pickup;   // the shop
  common::GeoPoint dropoff;  // the customer
  // Couriers who gave this order up (up to 16): none of them takes it again, and the one who
  // carries it now is free from this call on.
  std::vector<std::string> not_couriers;
};

struct Assignment {
  std::string order_id;
  std::string courier;          // "" when every courier is busy: ask again later
  int32_t courier_to_pickup_m;  // how far the courier was from the shop
  int32_t eta_minutes;          // from now to the door: preparation, the ride to the shop and on
  std::string served_by;        // the delivery instance that keeps the assignment
  bool done;                    // delivered or cancelled: the courier is free again
};

struct TrackRequest {
  std::string order_id;
};

struct ReleaseRequest {
  std::string order_id;
  bool delivered;  // true: the courier waits at the dropoff; false (cancelled): where it was
};

class RPCBOOT_SERVICE DeliveryService {
 public:
  virtual ~DeliveryService() = default;
  // The free courier nearest to the pickup takes the order and is busy with it until Release.
  // The same order_id again returns the assignment made then, so a retry never takes a second
  // courier, unless that courier is in not_couriers and still carries the order: then the
  // assignment is forgotten, the courier is free and another one takes the order. A finished
  // assignment is answered as it is. No free courier is not an error: the courier is "" and
  // nothing is kept.
  // INVALID_ARGUMENT: an order id of no bytes or more than 128, a point off the globe, more than
  // 16 not_couriers.
  RPCBOOT_IDEMPOTENT virtual Assignment Assign(const AssignRequest& request) = 0;
  // NOT_FOUND for an order this instance never assigned.
  RPCBOOT_IDEMPOTENT virtual Assignment Track(const TrackRequest& request) = 0;
  // The order was delivered or cancelled: its courier is free. Released again: answered as it
  // is. NOT_FOUND for an order this instance never assigned.
  RPCBOOT_IDEMPOTENT virtual Assignment Release(const ReleaseRequest& request) = 0;
};

}  // namespace delivery

#endif  // RPCBOOT_SAMPLES_DELIVERY_DELIVERY_SERVICE_H_
