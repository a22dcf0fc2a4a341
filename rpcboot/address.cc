// rpcboot's address grammar (MakeChannel): "host:port", "static://host:port,...", "zk://...".
#include <string_view>
#include <vector>

#include "rpcboot/client.h"
#include "rpcboot/internal/cluster_channel.h"
#include "rpcboot/internal/discovery_channel.h"
#include "rpcboot/internal/host_port.h"

namespace rpcboot {
namespace {

constexpr std::string_view kStaticScheme = "static://";
constexpr std::string_view kZkScheme = "zk://";

void CheckEndpoint(const std::string& endpoint, const std::string& address) {
  if (!internal::IsHostPort(endpoint)) {
    throw RpcError(
        StatusCode::kInvalidArgument,
        "address '" + address + "': endpoint '" + endpoint + "' is not host:port (port 0-65535)");
  }
}

}  // namespace

std::shared_ptr<Channel> MakeChannel(const std::string& address, Protocol protocol,
                                     ChannelOptions options) {
  if (address.rfind(kZkScheme, 0) == 0) {
    return internal::MakeZooKeeperChannel(address, protocol, std::move(options));
  }
  if (address.rfind(kStaticScheme, 0) != 0) {
    if (address.find("://") != std::string::npos) {
      throw RpcError(StatusCode::kInvalidArgument,
                     "address '" + address +
                         "': unknown scheme (use host:port, static://host:port,host:port or "
                         "zk://host:port/services/<app>)");
    }
    CheckEndpoint(address, address);
    return protocol == Protocol::kGrpc ? MakeGrpcChannel(address, options)
                                       : MakeThriftChannel(address, options);
  }
  std::vector<internal::EndpointSpec> endpoints;
  std::string_view list = std::string_view(address).substr(kStaticScheme.size());
  while (true) {
    std::size_t comma = list.find(',');
    std::string endpoint(list.substr(0, comma));
    CheckEndpoint(endpoint, address);
    endpoints.push_back({endpoint, endpoint, 100});
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  auto channel = std::make_shared<internal::ClusterChannel>(address, protocol, options);
  channel->Update(endpoints);
  return channel;
}

}  // namespace rpcboot
