// grpc.health.v1.Health as both gRPC server transports answer it: the serving status of the
// server ("") and of each bound service by its full name, SERVING until the server stops taking
// calls, then NOT_SERVING. Internal to the gRPC transports; thread-safe.
#ifndef RPCBOOT_TRANSPORT_GRPC_HEALTH_H_
#define RPCBOOT_TRANSPORT_GRPC_HEALTH_H_

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace rpcboot::internal {

class GrpcHealth {
 public:
  // HealthCheckResponse.ServingStatus
  static constexpr int kServing = 1;
  static constexpr int kNotServing = 2;
  static constexpr int kServiceUnknown = 3;

  void Add(const std::string& service) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_[service] = kServing;
  }
  void StopServing() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [service, status] : statuses_) status = kNotServing;
  }
  int Of(const std::string& service) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = statuses_.find(service);
    return it == statuses_.end() ? kServiceUnknown : it->second;
  }

  // The service a serialized HealthCheckRequest names ({1: string service}); nullopt when it
  // does not decode.
  static std::optional<std::string> ServiceOf(std::string_view request);
  // A serialized HealthCheckResponse ({1: ServingStatus status}).
  static std::string Response(int status) {
    const char bytes[] = {0x08, static_cast<char>(status)};
    return std::string(bytes, sizeof bytes);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int, std::less<>> statuses_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_GRPC_HEALTH_H_
