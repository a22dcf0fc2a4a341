#include "rpcboot/transport/grpc_health.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

namespace rpcboot::internal {

std::optional<std::string> GrpcHealth::ServiceOf(std::string_view request) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(request.data()),
                                            static_cast<int>(request.size()));
  std::string service;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == ((1u << 3) | 2u)) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || !in.ReadString(&service, static_cast<int>(length))) {
        return std::nullopt;
      }
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage()) return std::nullopt;
  return service;
}

}  // namespace rpcboot::internal
