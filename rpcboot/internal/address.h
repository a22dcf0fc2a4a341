// rpcboot's address grammar, in one place: parsed here, printed here, and nowhere else.
//   "host:port"                              one endpoint
//   "static://host:port,host:port,..."       a fixed list
//   "zk://host:port,host:port[/chroot...]/base/app"
//                                            application `app` under `base` in that ZooKeeper
#ifndef RPCBOOT_INTERNAL_ADDRESS_H_
#define RPCBOOT_INTERNAL_ADDRESS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rpcboot::internal {

struct ZooKeeperAddress {
  std::string connect;  // "h1:2181,h2:2181"
  std::string base;     // "/services" ("/" when the application sits at the root)
  std::string app;      // "shop"

  // "zk://h1:2181,h2:2181/services/shop": the form Parse reads back.
  std::string ToString() const;
};

struct Address {
  enum class Kind { kEndpoint, kStatic, kZooKeeper };
  Kind kind = Kind::kEndpoint;
  std::vector<std::string> endpoints;  // kEndpoint (one) and kStatic: "host:port" each
  ZooKeeperAddress zookeeper;          // kZooKeeper
};

// InvalidArgument naming the address and the part that is wrong.
absl::StatusOr<Address> ParseAddress(std::string_view address);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_ADDRESS_H_
