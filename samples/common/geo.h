// Types every service of the platform shares, and no service: an interface of types only
// (samples/CMakeLists.txt: geo_types). The shop and order interfaces import them (DEPENDS
// geo_types), so geo.thrift and geo.proto declare them once for every language.
#ifndef RPCBOOT_SAMPLES_COMMON_GEO_H_
#define RPCBOOT_SAMPLES_COMMON_GEO_H_

#include <string>

namespace common {

// WGS 84 degrees. (0, 0) is "no position".
struct GeoPoint {
  double lat = 0;
  double lng = 0;
};

struct Address {
  std::string street;
  GeoPoint point;
};

}  // namespace common

#endif  // RPCBOOT_SAMPLES_COMMON_GEO_H_
