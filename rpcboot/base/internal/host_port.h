// "host:port" as rpcboot's addresses and ZooKeeper connect strings write it.
#ifndef RPCBOOT_BASE_INTERNAL_HOST_PORT_H_
#define RPCBOOT_BASE_INTERNAL_HOST_PORT_H_

#include <string_view>

namespace rpcboot::internal {

// A host, a colon, and a port of 1 to 5 digits in 0..65535. The host is a name or IPv4 address
// (letters, digits, '-', '.', '_') or an IPv6 address in brackets ("[::1]", "[fe80::1%eth0]").
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
  if (port > 65535) return false;
  std::string_view host = s.substr(0, colon);
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    for (char c : host.substr(1, host.size() - 2)) {
      if (!alnum(c) && c != ':' && c != '.' && c != '%') return false;
    }
    return true;
  }
  for (char c : host) {
    if (!alnum(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_BASE_INTERNAL_HOST_PORT_H_
