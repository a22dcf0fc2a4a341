// Types only, no service: an interface of shared messages (platform_geo), as a protobuf team
// keeps a common.proto. Every struct and enum declared here is emitted by its own run; money.h
// and order.h import them (DEPENDS platform_geo, directly or through platform_money).
#pragma once

#include <string>

namespace platform {

enum class Region { kCentral = 0, kNorth = 1, kSouth = 2 };

struct GeoPoint {
  double lat = 0;
  double lng = 0;
};

struct Address {
  std::string street;
  GeoPoint point;
  Region region = Region::kNorth;  // a default that is not zero crosses the import too
};

// Reached by no method of any interface: emitted by geo's run all the same.
struct Area {
  std::string name;
  GeoPoint corner;
};

}  // namespace platform
