// "host:port" as rpcboot's addresses and ZooKeeper connect strings write it.
#ifndef RPCBOOT_BASE_INTERNAL_HOST_PORT_H_
#define RPCBOOT_BASE_INTERNAL_HOST_PORT_H_

#include <string_view>

namespace rpcboot::internal {

// A non-empty host, a colon, and a port of 1 to 5 digits in 0..65535.
inline bool IsHostPort(std::string_view s) {
  std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size() ||
      s.size() - colon - 1 > 5) {
    return false;
  }
  int port = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port <= 65535;
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_BASE_INTERNAL_HOST_PORT_H_
