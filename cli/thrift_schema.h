// The Thrift schema document (rpcboot-codegen's <stem>.thrift.json, or what a server's
// rpcboot.ThriftReflection answers; rpcboot/transport/thrift_reflection.h) and what the rpcboot
// tool does with it: JSON in, a Thrift args struct out; a Thrift result struct in, JSON out.
//
// JSON follows the schema's names (those of the emitted .thrift): an object per struct, an
// array per list, an object per map (keys as strings), enums by name (or number), binary as
// base64, 64-bit integers as numbers or strings, doubles as numbers or "NaN", "Infinity",
// "-Infinity". The request is an object of the method's parameters by name; a method whose one
// parameter is a struct also takes that struct's fields directly (as gRPC, where that struct is
// the request message).
#ifndef RPCBOOT_CLI_THRIFT_SCHEMA_H_
#define RPCBOOT_CLI_THRIFT_SCHEMA_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/status.h"
#include "rpcboot/wire_format.h"

namespace rpcboot::cli {

struct ThriftType {
  enum class Kind {
    kVoid,
    kBool,
    kI8,
    kI16,
    kI32,
    kI64,
    kU64,  // an i64 on the wire that holds an unsigned value
    kDouble,
    kString,
    kBinary,
    kList,
    kMap,
    kStruct,
    kEnum,
  };
  Kind kind = Kind::kVoid;
  std::string name;              // kStruct, kEnum: "shop.Shop"
  std::vector<ThriftType> args;  // kList: {element}; kMap: {key, value}
};

struct ThriftField {
  int16_t id = 0;
  std::string name;
  ThriftType type;
  bool optional = false;
};

struct ThriftMethod {
  std::string name;
  bool idempotent = false;
  std::vector<ThriftField> params;  // the args struct's fields
  ThriftType result;                // field 0 of the result struct (kVoid: none)
};

struct ThriftService {
  std::string name;  // "shop.ShopService": the multiplexed name
  std::vector<ThriftMethod> methods;
  std::map<std::string, std::vector<ThriftField>> structs;                    // by full name
  std::map<std::string, std::vector<std::pair<std::string, int64_t>>> enums;  // by full name

  const ThriftMethod* Find(std::string_view method) const;
};

// A reply: the result's JSON, or the error the server answered.
struct ThriftReply {
  bool ok = true;
  std::string json;  // ok: the result, indented ("{}" for void)
  StatusCode code = StatusCode::kOk;
  std::string message;
};

class ThriftSchema {
 public:
  // InvalidArgument naming what is wrong: not JSON, not a schema document, a type that is not
  // defined.
  static absl::StatusOr<ThriftSchema> Parse(std::string_view document);

  const std::vector<ThriftService>& services() const { return services_; }
  const ThriftService* Find(std::string_view service) const;

  // The service in Thrift IDL syntax, and the structs and enums its methods reach.
  static std::string Describe(const ThriftService& service);
  static std::string TypeName(const ThriftType& type);

  // The args struct of `method` from the JSON request; InvalidArgument naming the field and
  // what is wrong with it.
  static absl::StatusOr<std::string> EncodeArgs(const ThriftService& service,
                                                const ThriftMethod& method, std::string_view json,
                                                WireFormat format);
  // The result struct of `method` read back; InvalidArgument (or DataLoss for bytes that do
  // not decode) when the reply does not fit the schema.
  static absl::StatusOr<ThriftReply> DecodeResult(const ThriftService& service,
                                                  const ThriftMethod& method,
                                                  std::string_view result, WireFormat format);

 private:
  std::vector<ThriftService> services_;
};

}  // namespace rpcboot::cli

#endif  // RPCBOOT_CLI_THRIFT_SCHEMA_H_
