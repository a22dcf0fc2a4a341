// Channels fed by the ZooKeeper registry: the "zk://" address form and App's clients.
#ifndef RPCBOOT_INTERNAL_DISCOVERY_CHANNEL_H_
#define RPCBOOT_INTERNAL_DISCOVERY_CHANNEL_H_

#include <memory>
#include <string>

#include "discovery/instance.h"
#include "discovery/resolver.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/address.h"
#include "rpcboot/internal/cluster_channel.h"

namespace rpcboot::internal {

// Which instances EndpointsFor left out, and why: for the message of a call that finds none.
struct EndpointSkips {
  int not_serving = 0;  // publish rpcboot.services without the service
  int no_port = 0;      // rpcboot instances that do not speak the protocol
  int foreign = 0;      // no rpcboot metadata (and, for gRPC, no gRPC_port)
  // "" when nothing was left out, else "; 2 UP instance(s) left out: ..." naming the reasons.
  std::string Describe(Protocol protocol, const std::string& service) const;
};

// The endpoints of `instances` that speak `protocol` and, when `service` is given, serve it: an
// instance that publishes rpcboot.services without listing `service` is left out (one without
// the key may serve it). Instances without rpcboot metadata are left out unless they publish
// gRPC_port (gRPC) or `call_foreign` is set (ChannelOptions::call_foreign_instances): then they
// are called at their `port`, plain framed on Thrift.
std::vector<EndpointSpec> EndpointsFor(const discovery::InstanceView& instances, Protocol protocol,
                                       const std::string& service = "", bool call_foreign = false,
                                       EndpointSkips* skips = nullptr);

// A channel over the instances of application `app` that `resolver` watches. Keeps `resolver`
// (and `owner`, when given) alive. Throws RpcError(kInvalidArgument) for an unknown balancer.
std::shared_ptr<Channel> MakeDiscoveryChannel(std::shared_ptr<discovery::Resolver> resolver,
                                              const std::string& app, Protocol protocol,
                                              ChannelOptions options, const std::string& target,
                                              std::shared_ptr<void> owner = nullptr,
                                              const std::string& service = "");

// A "zk://" address: one ZooKeeper session per connect string and base path, shared by the
// channels of a process.
std::shared_ptr<Channel> MakeZooKeeperChannel(const ZooKeeperAddress& address, Protocol protocol,
                                              ChannelOptions options);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_DISCOVERY_CHANNEL_H_
