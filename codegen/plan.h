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
  // The file whose .thrift declares the RpcError exception this one's methods throw: itself, or
  // the first file it imports (directly or not) that declares one (Thrift refuses a second
  // declaration in one namespace); the .thrift includes it. -1 for a file without services.
  int thrift_error_file = -1;
};

struct MethodPlan {
  bool request_is_param = false;       // the single struct parameter is the gRPC request
  bool response_is_return = false;     // the struct result is the gRPC response
  bool thrift_result_wrapped = false;  // an optional result: Thrift returns `response` too
  std::string request;                 // proto message name (synthesized or the struct's)
  std::string response;
};

// What the command line says about the emitted files' language options.
struct LanguageOptions {
  std::string java_package_prefix;  // "com.example": java_package = "com.example.<package>"
  std::string go_package_prefix;  // "example.com/gen": go_package = "example.com/gen/<path>;<name>"
};

struct Plan {
  LanguageOptions options;
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
// A struct field's name in the .thrift: ThriftSafeName, and a trailing `_` for a field named like
// its struct (legal C++, but thrift-compiler's C++ struct could not name its own type).
std::string ThriftFieldName(const std::string& field, const std::string& owner);
// A float or double default as text that reads back to the same value ("0.25", "2", "inf").
std::string RealText(double value, Kind kind);

// The key under which protoc compares field names for JSON clashes: lowercase, no underscores.
// Type, message and method names are compared under it too (Go and Java: plan.cc).
std::string ProtoJsonKey(const std::string& name);

// The Java package of an IDL package ("shop" -> "com.example.shop" with a prefix).
std::string JavaPackage(const LanguageOptions& options, const std::string& package);
// The Go import path and package name of an IDL package: "example.com/gen/shop;shop".
std::string GoPackage(const LanguageOptions& options, const std::string& package,
                      const std::string& stem);

// "ShopStatus" -> "SHOP_STATUS", "kHttpError" -> "HTTP_ERROR".
std::string UpperSnake(const std::string& name, bool strip_k_prefix);

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_PLAN_H_
