// The model rpcboot-codegen builds from headers: services, and the structs and enums their
// methods reach. Parser fills it; planner and emitters read it. Plain data.
#ifndef RPCBOOT_CODEGEN_MODEL_H_
#define RPCBOOT_CODEGEN_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

namespace rpcboot::codegen {

struct SourceLocation {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;
};

enum class Kind {
  kVoid,
  kBool,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kFloat,
  kDouble,
  kString,
  kBytes,
  kEnum,
  kStruct,
  kList,      // args = {element}
  kMap,       // args = {key, value}
  kOptional,  // args = {value}
};

struct TypeRef {
  Kind kind = Kind::kVoid;
  int decl = -1;  // index into Model::enums (kEnum) or Model::structs (kStruct)
  std::vector<TypeRef> args;
};

bool IsContainer(const TypeRef& type);
bool IsScalar(const TypeRef& type);  // bool, integers, floats, enums

struct Enumerator {
  std::string name;
  int64_t value = 0;
};

// What every named declaration shares.
struct Decl {
  std::string name;      // "MenuItem"
  std::string cpp_name;  // "::shop::MenuItem"
  std::string package;   // "shop" (namespaces joined by '.')
  std::string file;      // real path of the declaring header
  SourceLocation loc;
};

struct EnumDecl : Decl {
  std::vector<Enumerator> values;
  int64_t min_value = 0;  // values the C++ enum can hold without undefined behaviour
  int64_t max_value = 0;
};

// The default member initializer of a struct's bool, integer, float, enum or string field.
// proto3 cannot tell an unset field from a zero one, so the .proto marks a field whose default
// is not zero `optional`: a stock peer then sends the zeros its caller set, and leaves the
// field off when unset, which rpcboot reads as the C++ default. Thrift writes the default.
struct FieldDefault {
  bool nonzero = false;  // not zero, or not known to be zero (an initializer clang cannot fold)
  bool known = false;    // nonzero and folded to the value below
  int64_t integer = 0;   // bool, integer (uint64_t as its bits) and enum fields
  double real = 0;       // float and double fields
  std::string text;      // string fields
};

struct FieldDecl {
  std::string name;
  TypeRef type;
  SourceLocation loc;
  int id = 0;                // wire id: RPCBOOT_ID(n), else declaration index + 1
  bool explicit_id = false;  // given by RPCBOOT_ID
  FieldDefault initial;      // struct fields only; parameters start value-initialized
};

struct StructDecl : Decl {
  std::vector<FieldDecl> fields;
  std::vector<int> reserved;  // RPCBOOT_RESERVED(...): ids of removed fields
};

struct MethodDecl {
  std::string name;
  bool idempotent = false;
  bool is_const = false;  // a proxy's override must repeat it
  std::vector<FieldDecl> params;
  TypeRef result;  // kVoid for void
  SourceLocation loc;
};

struct ServiceDecl : Decl {
  int header = -1;  // index into Model::headers
  std::vector<MethodDecl> methods;
};

struct Header {
  std::string path;          // as given on the command line
  std::string real_path;     // for matching clang's file names
  std::string include_path;  // how generated C++ includes it
  std::string stem;          // output file stem
  // Headers of the interfaces this one depends on (--import) come first, one group per
  // dependency's own codegen run, in the order those runs see each other; the input headers form
  // the last group. Files are written for the input headers only: an imported header's types
  // are emitted by its own run and referred to here.
  int group = 0;
  bool imported = false;
  // In a group without services (an interface of types only): every struct and enum the header
  // declares at namespace scope, in declaration order; all of them are emitted.
  std::vector<TypeRef> types;
};

struct Model {
  std::vector<Header> headers;
  std::vector<EnumDecl> enums;
  std::vector<StructDecl> structs;
  std::vector<ServiceDecl> services;
  // Every non-system file the translation unit read, for --depfile.
  std::vector<std::string> dependencies;
};

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_MODEL_H_
