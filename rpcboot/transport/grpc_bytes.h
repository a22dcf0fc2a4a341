// Copies between grpc::ByteBuffer and contiguous bytes, shared by the gRPC server and channel.
#ifndef RPCBOOT_TRANSPORT_GRPC_BYTES_H_
#define RPCBOOT_TRANSPORT_GRPC_BYTES_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <string_view>
#include <vector>

namespace rpcboot::internal {

inline std::string ToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

inline grpc::ByteBuffer ToByteBuffer(std::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_GRPC_BYTES_H_
