// Copies between grpc::ByteBuffer and contiguous bytes, and a call's own metadata out of gRPC's,
// shared by the gRPC server and channel on gRPC's library (and the rpcboot tool).
#ifndef RPCBOOT_TRANSPORT_GRPC_BYTES_H_
#define RPCBOOT_TRANSPORT_GRPC_BYTES_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rpcboot/internal/call_metadata.h"

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

// Appends the entries of gRPC's `metadata` that are a call's own (IsCallMetadataKey) to *out;
// gRPC has decoded "-bin" values.
inline void AppendCallMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                               CallMetadata* out) {
  for (const auto& [key, value] : metadata) {
    std::string_view name(key.data(), key.size());
    if (IsCallMetadataKey(name)) {
      out->emplace_back(std::string(name), std::string(value.data(), value.size()));
    }
  }
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_GRPC_BYTES_H_
