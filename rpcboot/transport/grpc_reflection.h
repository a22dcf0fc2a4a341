// gRPC server reflection (grpc.reflection.v1 and v1alpha ServerReflection/ServerReflectionInfo),
// answered from the FileDescriptorProtos that rpcboot-codegen embeds in each service's glue
// (ServiceBinding::descriptors), so that grpcurl and other reflection clients list the
// services, resolve methods and message types, and can call them without the .proto.
//
// Built once when the gRPC transport starts; read-only afterwards (any number of streams at
// once). Internal to the gRPC transport.
#ifndef RPCBOOT_TRANSPORT_GRPC_REFLECTION_H_
#define RPCBOOT_TRANSPORT_GRPC_REFLECTION_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace google::protobuf {
class DescriptorPool;
}  // namespace google::protobuf

namespace rpcboot::internal {

class MethodTable;

class GrpcReflection {
 public:
  // The paths of the reflection streams it answers.
  static constexpr const char* kPaths[] = {
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};

  explicit GrpcReflection(const MethodTable& table);
  ~GrpcReflection();

  // The answer (a serialized ServerReflectionResponse) to one serialized
  // ServerReflectionRequest; a request that does not decode gets an error response.
  std::string Answer(std::string_view request) const;

 private:
  // `file` and its imports, each once, as serialized FileDescriptorProtos.
  std::vector<std::string> FileWithImports(const std::string& file) const;

  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  std::map<std::string, std::string> files_;  // name -> serialized FileDescriptorProto
  std::vector<std::string> services_;         // what list_services answers
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_GRPC_REFLECTION_H_
