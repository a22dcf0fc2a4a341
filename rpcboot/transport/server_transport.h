// The interface each protocol's server side implements; rpcboot::Server holds one per
// configured protocol and knows nothing else about them.
#ifndef RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_
#define RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/server.h"

namespace rpcboot::internal {

struct BoundService {
  const ServiceBinding* binding;
  std::shared_ptr<void> impl;
};

class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  // Binds the port and starts serving `services` (which outlive the transport).
  virtual absl::Status Start(const std::vector<BoundService>& services) = 0;
  virtual int port() const = 0;
  virtual void Shutdown() = 0;
};

std::unique_ptr<ServerTransport> MakeGrpcServerTransport(const ServerOptions& options);
std::unique_ptr<ServerTransport> MakeThriftServerTransport(const ServerOptions& options);

// Runs a handler and maps what it throws to a status code and message (contract 4).
struct HandlerOutcome {
  StatusCode code = StatusCode::kOk;
  std::string message;
  std::string reply;
};
template <class Fn>
HandlerOutcome RunHandler(Fn&& fn) {
  HandlerOutcome out;
  try {
    out.reply = fn();
  } catch (const RpcError& e) {
    out.code = e.code();
    out.message = e.message();
  } catch (const std::exception& e) {
    out.code = StatusCode::kInternal;
    out.message = e.what();
  } catch (...) {
    out.code = StatusCode::kInternal;
    out.message = "handler threw a non-standard exception";
  }
  return out;
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_SERVER_TRANSPORT_H_
