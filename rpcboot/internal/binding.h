// Type-erased per-method entry points that generated code provides for each service, so that
// servers and channels move bytes and never see user types. Internal: users go through
// rpcboot::Server, rpcboot::MakeClient and rpcboot::BindInProcess.
#ifndef RPCBOOT_INTERNAL_BINDING_H_
#define RPCBOOT_INTERNAL_BINDING_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rpcboot/channel.h"
#include "rpcboot/reflect.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

// The differences between two replies, by field path ("items[2].price: 450 vs 460"): at most
// the limit asked for, and how many there were in all.
struct ReplyDiff {
  std::vector<std::string> differences;
  std::size_t count = 0;
};

struct MethodBinding {
  std::string name;       // "GetShop": the Thrift message name
  std::string grpc_path;  // "/shop.ShopService/GetShop"
  bool idempotent = false;
  // Decodes a proto request, calls the method on `impl` (the service interface) and appends the
  // encoded proto response to *out. Throws RpcError(kInvalidArgument) for a request that does not
  // decode; lets the handler's exceptions through.
  void (*serve_proto)(void* impl, std::string_view request, std::string* out) = nullptr;
  // The same for a Thrift args struct; appends the result struct (success in field 0) to *out.
  void (*serve_thrift)(void* impl, WireFormat format, std::string_view args,
                       std::string* out) = nullptr;
  // Compares two successful replies of this method (as a channel of `format` returns them)
  // field by field, leaving out the fields `ignore` names (ShadowOptions::ignore_fields). Throws
  // RpcError(kInternal) for a reply that does not decode.
  ReplyDiff (*diff_replies)(WireFormat format, std::string_view a, std::string_view b,
                            const std::vector<std::string>& ignore, std::size_t limit) = nullptr;
};

// method.serve_proto or serve_thrift, as `format` says, into a fresh string.
inline std::string ServeToString(const MethodBinding& method, void* impl, WireFormat format,
                                 std::string_view request) {
  std::string out;
  if (format == WireFormat::kProto) {
    method.serve_proto(impl, request, &out);
  } else {
    method.serve_thrift(impl, format, request, &out);
  }
  return out;
}

struct ServiceBinding {
  std::string full_name;  // "shop.ShopService": Thrift multiplexing name, gRPC service name
  std::vector<MethodBinding> methods;
  // The service's emitted .proto file and every file it imports, as serialized
  // FileDescriptorProtos, imports first: what gRPC server reflection hands out.
  std::vector<std::string> descriptors;
  // The service's Thrift schema as JSON (rpcboot-codegen's <stem>.thrift.json, this service's
  // entry): what rpcboot.ThriftReflection hands out, so tools call over Thrift without the IDL.
  std::string thrift_schema;

  const MethodBinding* Find(std::string_view method_name) const;
};

// Defined by the generated <stem>.rpcboot.cc of the header that declares S.
template <class S>
const ServiceBinding& BindingOf();

// One clear error, instead of a wall of template errors, for a service rpcboot-codegen has not
// described here.
template <class S>
constexpr void RequireGenerated() {
  static_assert(HasServiceInfo<S>::value,
                "rpcboot: this class has no generated description: mark it 'class RPCBOOT_SERVICE "
                "Name', run rpcboot-codegen on its header (rpcboot_add_interface in CMake) and "
                "#include the generated <header>.rpcboot.h");
}

// The generated client proxy of S: implements S by calling through a Channel.
template <class S>
class Proxy;

// What every generated proxy calls: `channel`.Call with the call options in scope, counted in
// the client's metrics (rpcboot/internal/metrics.h).
std::string CallThrough(Channel& channel, const MethodBinding& method, std::string_view request);

// Encodes an error into a Thrift result struct (field 1: RpcError {1: code, 2: message}).
std::string ThriftErrorResult(WireFormat format, StatusCode code, std::string_view message);
// Whether a Thrift result struct carries an error (field 1) rather than a result: then *code and
// *message hold it. Reads only the first field's header on success results.
bool ThriftResultError(WireFormat format, std::string_view result, StatusCode* code,
                       std::string* message);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_BINDING_H_
