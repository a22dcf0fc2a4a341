#include "codegen/diagnostics.h"

#include <algorithm>

namespace rpcboot::codegen {

bool IsContainer(const TypeRef& type) {
  return type.kind == Kind::kList || type.kind == Kind::kMap;
}

bool IsScalar(const TypeRef& type) {
  switch (type.kind) {
    case Kind::kBool:
    case Kind::kInt8:
    case Kind::kInt16:
    case Kind::kInt32:
    case Kind::kInt64:
    case Kind::kUint8:
    case Kind::kUint16:
    case Kind::kUint32:
    case Kind::kUint64:
    case Kind::kFloat:
    case Kind::kDouble:
    case Kind::kEnum:
      return true;
    default:
      return false;
  }
}

void Diagnostics::Error(const SourceLocation& loc, std::string message) {
  std::string line;
  if (!loc.file.empty()) {
    line = loc.file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column) + ": ";
  } else {
    line = "rpcboot-codegen: ";
  }
  line += "error: " + message;
  // The same construct reached along two paths is reported once.
  if (std::find(errors_.begin(), errors_.end(), line) == errors_.end())
    errors_.push_back(std::move(line));
}

void Diagnostics::Print(std::ostream& out) const {
  for (const auto& e : errors_) out << e << "\n";
  if (!errors_.empty()) {
    out << errors_.size() << (errors_.size() == 1 ? " error" : " errors") << " generated.\n";
  }
}

}  // namespace rpcboot::codegen
