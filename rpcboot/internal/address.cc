#include "rpcboot/internal/address.h"

#include <string_view>
#include <vector>

#include "discovery/session.h"
#include "rpcboot/base/internal/host_port.h"

namespace rpcboot::internal {
namespace {

constexpr std::string_view kStaticScheme = "static://";
constexpr std::string_view kZkScheme = "zk://";

absl::Status BadAddress(std::string_view address, std::string_view why) {
  return absl::InvalidArgumentError("address '" + std::string(address) + "': " + std::string(why));
}

absl::StatusOr<ZooKeeperAddress> ParseZooKeeper(std::string_view address) {
  std::string_view rest = address.substr(kZkScheme.size());
  std::size_t slash = rest.find('/');
  std::size_t last = rest.rfind('/');
  if (slash == std::string_view::npos || last + 1 >= rest.size()) {
    return BadAddress(address,
                      "a zk:// address ends with the application's path, as in "
                      "zk://127.0.0.1:2181/services/shop");
  }
  if (rest.find("//", slash) != std::string_view::npos) {
    return BadAddress(address, "empty path element");
  }
  ZooKeeperAddress zk;
  zk.connect = std::string(rest.substr(0, slash));
  zk.base = last == slash ? "/" : std::string(rest.substr(slash, last - slash));
  zk.app = std::string(rest.substr(last + 1));
  if (absl::Status s = discovery::Session::Validate(discovery::SessionOptions{zk.connect});
      !s.ok()) {
    return BadAddress(address, std::string(s.message()));
  }
  return zk;
}

}  // namespace

std::string ZooKeeperAddress::ToString() const {
  return std::string(kZkScheme) + connect + (base == "/" ? "" : base) + "/" + app;
}

absl::StatusOr<Address> ParseAddress(std::string_view address) {
  Address parsed;
  if (address.substr(0, kZkScheme.size()) == kZkScheme) {
    absl::StatusOr<ZooKeeperAddress> zk = ParseZooKeeper(address);
    if (!zk.ok()) return zk.status();
    parsed.kind = Address::Kind::kZooKeeper;
    parsed.zookeeper = *std::move(zk);
    return parsed;
  }
  std::string_view list = address;
  if (address.substr(0, kStaticScheme.size()) == kStaticScheme) {
    parsed.kind = Address::Kind::kStatic;
    list.remove_prefix(kStaticScheme.size());
  } else if (address.find("://") != std::string_view::npos) {
    return BadAddress(address,
                      "unknown scheme (use host:port, static://host:port,host:port or "
                      "zk://host:port/services/<app>)");
  }
  while (true) {
    std::size_t comma =
        parsed.kind == Address::Kind::kStatic ? list.find(',') : std::string_view::npos;
    std::string_view endpoint = list.substr(0, comma);
    if (!IsHostPort(endpoint)) {
      return BadAddress(address,
                        "endpoint '" + std::string(endpoint) + "' is not host:port (port 0-65535)");
    }
    parsed.endpoints.emplace_back(endpoint);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return parsed;
}

}  // namespace rpcboot::internal
