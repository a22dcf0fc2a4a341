// Reads annotated headers with libclang and builds the Model: every RPCBOOT_SERVICE class
// declared in an input header, and every struct and enum its methods reach. Constructs outside
// the type mapping become diagnostics that name the construct and what to write instead.
#ifndef RPCBOOT_CODEGEN_PARSER_H_
#define RPCBOOT_CODEGEN_PARSER_H_

#include <string>
#include <vector>

#include "codegen/diagnostics.h"
#include "codegen/model.h"

namespace rpcboot::codegen {

// Fills model->services, enums, structs and dependencies from model->headers. `clang_args` are
// passed to clang as they are (-I, -D, -std, ...). Returns false when any error was reported.
bool ParseHeaders(const std::vector<std::string>& clang_args, Model* model, Diagnostics* diags);

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_PARSER_H_
