// Decides what goes where before anything is written: which output file owns each struct and
// enum, which files import which, the order of declarations, and the names the IDL files use
// (proto enum values, synthesized request/response messages, Thrift-safe identifiers). Checks the
// naming rules the emitted files must satisfy, so emitted files always compile.
#ifndef RPCBOOT_CODEGEN_PLAN_H_
#define RPCBOOT_CODEGEN_PLAN_H_

#include <string>
#include <vector>

#include "codegen/diagnostics.h"
#include "codegen/model.h"

namespace rpcboot::codegen {

struct FilePlan {
  std::string package;       // proto package and Thrift namespace
  std::vector<int> enums;    // owned enums, dependencies first
  std::vector<int> structs;  // owned structs, dependencies first
  std::vector<int> services;
  std::vector<int> imports;  // indices of other files whose types this one uses
};

struct MethodPlan {
  bool request_is_param = false;    // the single struct parameter is the gRPC request
  bool response_is_return = false;  // the struct result is the gRPC response
  std::string request;              // proto message name (synthesized or the struct's)
  std::string response;
};

struct Plan {
  std::vector<FilePlan> files;  // one per Model::headers entry
  std::vector<int> enum_file;   // owning file of each enum
  std::vector<int> struct_file;
  std::vector<std::vector<MethodPlan>> methods;             // per service, per method
  std::vector<std::vector<std::string>> proto_enum_values;  // per enum, per enumerator
};

bool MakePlan(const Model& model, Plan* plan, Diagnostics* diags);

// Thrift rejects many keywords of its target languages as identifiers. Fields, parameters and
// enumerators that hit one get a trailing '_' in the .thrift file (the wire uses ids, not names).
bool IsThriftReserved(const std::string& name);
std::string ThriftSafeName(const std::string& name);

// "ShopStatus" -> "SHOP_STATUS", "kHttpError" -> "HTTP_ERROR".
std::string UpperSnake(const std::string& name, bool strip_k_prefix);

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_PLAN_H_
