// The breaking-change check behind `rpcboot-codegen --check-compat`: the .proto emitted now is
// compared with the one emitted before (both carry the same ids, names and types as the
// .thrift beside them), and every change that would break a deployed peer is listed.
#ifndef RPCBOOT_CODEGEN_COMPAT_H_
#define RPCBOOT_CODEGEN_COMPAT_H_

#include <google/protobuf/descriptor.pb.h>

#include <string>
#include <vector>

namespace rpcboot::codegen {

// Parses .proto text with protobuf's own parser. On failure returns false and sets *error to
// "line:column: message" of the first problem.
bool ParseProtoText(const std::string& text, google::protobuf::FileDescriptorProto* file,
                    std::string* error);

// Each change from `before` to `after` that breaks a peer built from `before`, as a sentence:
// a changed package; a removed service or method, or one whose request or response message
// changed; a field removed without reserving its number, or whose name, type or cardinality
// changed; a removed or renamed enum value. Additions, reordering by explicit ids and removals
// with reserved numbers are compatible.
std::vector<std::string> BreakingChanges(const google::protobuf::FileDescriptorProto& before,
                                         const google::protobuf::FileDescriptorProto& after);

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_COMPAT_H_
