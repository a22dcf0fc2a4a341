// Distances between GeoPoints, for the samples' services (a helper, not part of the IDL).
#ifndef RPCBOOT_SAMPLES_COMMON_DISTANCE_H_
#define RPCBOOT_SAMPLES_COMMON_DISTANCE_H_

#include <algorithm>
#include <cmath>

#include "common/geo.h"

namespace common {

// (0, 0) stands for "no position".
inline bool HasPosition(const GeoPoint& p) { return p.lat != 0 || p.lng != 0; }

// A latitude in -90..90 and a longitude in -180..180 (not NaN, not infinite): a point that came
// from outside (a request, a stored row) is checked with this before any distance is taken.
inline bool OnTheGlobe(const GeoPoint& p) {
  return std::isfinite(p.lat) && std::isfinite(p.lng) && std::abs(p.lat) <= 90 &&
         std::abs(p.lng) <= 180;
}

// Great-circle distance (haversine, mean Earth radius), in metres.
inline double DistanceMetres(const GeoPoint& a, const GeoPoint& b) {
  constexpr double kEarthRadiusM = 6371000.0;
  constexpr double kRadians = M_PI / 180.0;
  double dlat = (b.lat - a.lat) * kRadians;
  double dlng = (b.lng - a.lng) * kRadians;
  double h = std::pow(std::sin(dlat / 2), 2) + std::cos(a.lat * kRadians) *
                                                   std::cos(b.lat * kRadians) *
                                                   std::pow(std::sin(dlng / 2), 2);
  return 2 * kEarthRadiusM * std::asin(std::min(1.0, std::sqrt(h)));
}

}  // namespace common

#endif  // RPCBOOT_SAMPLES_COMMON_DISTANCE_H_
