// rpcboot.ThriftReflection: what gRPC server reflection is to a gRPC port, on a Thrift port. A
// Thrift call carries field ids and wire types but no names, so a tool that calls without the
// .thrift file (rpcboot call, rpcboot describe) first asks the server for its schema:
//
//   // namespace rpcboot; multiplexed name "rpcboot.ThriftReflection"
//   service ThriftReflection {
//     // The schema document of every served service, or of the one named ("" for all).
//     string Schema(1: string service) throws (1: RpcError error)
//   }
//
// The document is JSON, the same that rpcboot-codegen writes as <stem>.thrift.json:
//   {"rpcboot_thrift_schema": 1, "services": [{"name": "shop.ShopService", "methods": [...],
//    "types": {...}}]}
// (docs/cli.md describes it). Answered by the Thrift transport itself (it runs no user code),
// to the callers server.auth lets call, as gRPC reflection is.
#ifndef RPCBOOT_TRANSPORT_THRIFT_REFLECTION_H_
#define RPCBOOT_TRANSPORT_THRIFT_REFLECTION_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/internal/auth.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/wire_format.h"

namespace rpcboot::internal {

// The message name of a Schema call, and the method path server.auth's rules see.
inline constexpr std::string_view kThriftSchemaMethod = "rpcboot.ThriftReflection:Schema";
inline constexpr std::string_view kThriftSchemaPath = "/rpcboot.ThriftReflection/Schema";

// The schema document of `bindings`, or of the one whose full name is `service` (NotFound
// naming those there are when none is).
absl::StatusOr<std::string> ThriftSchemaDocument(const std::vector<const ServiceBinding*>& bindings,
                                                 std::string_view service);

// The caller's side: the args struct of a Schema call, and the document a result struct carries
// (throws RpcError: the server's error, or kInternal for a reply that does not decode).
std::string ThriftSchemaRequest(WireFormat format, std::string_view service);
std::string ThriftSchemaFromResult(WireFormat format, std::string_view result);

// The result struct answering a Schema call whose args struct is `args`: the document in field
// 0, or an RpcError in field 1 (refused by `guard`, an unknown service, args that do not decode).
std::string AnswerThriftSchema(const std::vector<const ServiceBinding*>& bindings,
                               const CallGuard& guard, std::string_view token,
                               PeerIdentity identity, WireFormat format, std::string_view args);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_THRIFT_REFLECTION_H_
