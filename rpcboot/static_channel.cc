// The "host:port" and "static://" address forms: a fixed list of endpoints behind one Channel.
#include <atomic>
#include <string_view>
#include <vector>

#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot {
namespace {

constexpr std::string_view kStaticScheme = "static://";

void CheckEndpoint(const std::string& endpoint, const std::string& address) {
  std::size_t colon = endpoint.rfind(':');
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < endpoint.size();
  if (ok) {
    for (std::size_t i = colon + 1; i < endpoint.size(); ++i)
      ok &= endpoint[i] >= '0' && endpoint[i] <= '9';
    ok &= endpoint.size() - colon - 1 <= 5 && std::stoi(endpoint.substr(colon + 1)) <= 65535;
  }
  if (!ok) {
    throw RpcError(
        StatusCode::kInvalidArgument,
        "address '" + address + "': endpoint '" + endpoint + "' is not host:port (port 0-65535)");
  }
}

std::shared_ptr<Channel> MakeEndpointChannel(const std::string& endpoint, Protocol protocol,
                                             const ChannelOptions& options) {
  return protocol == Protocol::kGrpc ? MakeGrpcChannel(endpoint, options)
                                     : MakeThriftChannel(endpoint, options);
}

// Round robin over a fixed list; idempotent calls fail over to the next endpoint on UNAVAILABLE.
class StaticListChannel final : public Channel {
 public:
  explicit StaticListChannel(std::vector<std::shared_ptr<Channel>> endpoints)
      : endpoints_(std::move(endpoints)) {}

  WireFormat format() const override { return endpoints_.front()->format(); }

  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& options) override {
    std::size_t first = next_.fetch_add(1, std::memory_order_relaxed);
    for (std::size_t attempt = 0;; ++attempt) {
      Channel& endpoint = *endpoints_[(first + attempt) % endpoints_.size()];
      try {
        return endpoint.Call(method, request, options);
      } catch (const RpcError& e) {
        bool retry = e.code() == StatusCode::kUnavailable && method.idempotent &&
                     attempt + 1 < endpoints_.size();
        if (!retry) throw;
      }
    }
  }

 private:
  std::vector<std::shared_ptr<Channel>> endpoints_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace

std::shared_ptr<Channel> MakeChannel(const std::string& address, Protocol protocol,
                                     ChannelOptions options) {
  if (address.rfind(kStaticScheme, 0) != 0) {
    if (address.find("://") != std::string::npos) {
      throw RpcError(StatusCode::kInvalidArgument, "address '" + address +
                                                       "': unknown scheme (use host:port or "
                                                       "static://host:port,host:port)");
    }
    CheckEndpoint(address, address);
    return MakeEndpointChannel(address, protocol, options);
  }
  std::vector<std::shared_ptr<Channel>> endpoints;
  std::string_view list = std::string_view(address).substr(kStaticScheme.size());
  while (true) {
    std::size_t comma = list.find(',');
    std::string endpoint(list.substr(0, comma));
    CheckEndpoint(endpoint, address);
    endpoints.push_back(MakeEndpointChannel(endpoint, protocol, options));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return std::make_shared<StaticListChannel>(std::move(endpoints));
}

}  // namespace rpcboot
