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

// The endpoints of `instances` that speak `protocol` (instances without rpcboot metadata for it
// are left out) and, when `service` is given, serve it: an instance that publishes
// rpcboot.services without listing `service` is left out (one without the key may serve it).
std::vector<EndpointSpec> EndpointsFor(const std::vector<discovery::Instance>& instances,
                                       Protocol protocol, const std::string& service = "");

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
