#include "rpcboot/transport/thrift_reflection.h"

#include "absl/strings/str_cat.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/internal/binding_impl.h"

namespace rpcboot::internal {
namespace {

struct SchemaArgs {
  std::string service;  // 1: string service
};

}  // namespace

absl::StatusOr<std::string> ThriftSchemaDocument(const std::vector<const ServiceBinding*>& bindings,
                                                 std::string_view service) {
  std::string document = "{\"rpcboot_thrift_schema\": 1, \"services\": [";
  std::string names;
  bool any = false;
  for (const ServiceBinding* binding : bindings) {
    absl::StrAppend(&names, names.empty() ? "" : ", ", binding->full_name);
    if (!service.empty() && binding->full_name != service) continue;
    // A binding generated before codegen embedded schemas has none: listed by name only.
    std::string entry = binding->thrift_schema.empty()
                            ? absl::StrCat("{\"name\": \"", binding->full_name, "\"}")
                            : binding->thrift_schema;
    absl::StrAppend(&document, any ? ",\n  " : "\n  ", entry);
    any = true;
  }
  if (!service.empty() && !any) {
    return absl::NotFoundError(absl::StrCat("no service ", std::string(service),
                                            " (it serves: ", names.empty() ? "none" : names, ")"));
  }
  absl::StrAppend(&document, any ? "\n]}\n" : "]}\n");
  return document;
}

std::string ThriftSchemaRequest(WireFormat format, std::string_view service) {
  return ThriftEncode(SchemaArgs{std::string(service)}, format);
}

std::string ThriftSchemaFromResult(WireFormat format, std::string_view result) {
  return ThriftDecodeResult<std::string>(result, format);
}

std::string AnswerThriftSchema(const std::vector<const ServiceBinding*>& bindings,
                               const CallGuard& guard, std::string_view token,
                               PeerIdentity identity, WireFormat format, std::string_view args) {
  if (Refusal refusal = guard.Check(kThriftSchemaPath, token, &identity); refusal.refused())
    return ThriftErrorResult(format, refusal.code, refusal.message);
  SchemaArgs request;
  if (absl::Status s = ThriftDecode(args, format, &request); !s.ok()) {
    return ThriftErrorResult(format, StatusCode::kInvalidArgument,
                             absl::StrCat("rpcboot.ThriftReflection/Schema: ", s.message()));
  }
  absl::StatusOr<std::string> document = ThriftSchemaDocument(bindings, request.service);
  if (!document.ok()) {
    return ThriftErrorResult(format, StatusCode::kNotFound,
                             std::string(document.status().message()));
  }
  return ThriftEncodeSuccess(format, &*document);
}

}  // namespace rpcboot::internal
