// Compiler-style diagnostics: `file:line:col: error: message`.
#ifndef RPCBOOT_CODEGEN_DIAGNOSTICS_H_
#define RPCBOOT_CODEGEN_DIAGNOSTICS_H_

#include <ostream>
#include <string>
#include <vector>

#include "codegen/model.h"

namespace rpcboot::codegen {

class Diagnostics {
 public:
  void Error(const SourceLocation& loc, std::string message);
  bool has_errors() const { return !errors_.empty(); }
  // Prints every error once, in the order reported.
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> errors_;
};

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_DIAGNOSTICS_H_
