// The emitters: each turns one planned file (or service) into text. Pure functions of the model and
// plan, so the same headers always give the same bytes.
#ifndef RPCBOOT_CODEGEN_EMITTERS_H_
#define RPCBOOT_CODEGEN_EMITTERS_H_

#include <string>

#include "codegen/model.h"
#include "codegen/plan.h"

namespace rpcboot::codegen {

std::string EmitThrift(const Model& model, const Plan& plan, int file);
std::string EmitProto(const Model& model, const Plan& plan, int file);
// The Thrift schema as JSON, for tools that call without the .thrift (rpcboot call): one
// service (embedded in its binding), and the document of a file's services (<stem>.thrift.json).
std::string EmitThriftSchema(const Model& model, const Plan& plan, int service);
std::string EmitThriftSchemaFile(const Model& model, const Plan& plan, int file);
std::string EmitCppHeader(const Model& model, const Plan& plan, int file);
std::string EmitCppSource(const Model& model, const Plan& plan, int file);

// The first line of every emitted file.
std::string Banner(const Model& model, int file, const char* comment);

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_EMITTERS_H_
