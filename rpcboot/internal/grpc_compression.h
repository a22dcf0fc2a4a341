// gRPC message compression (grpc-encoding gzip and deflate) for the native gRPC server
// (server.grpc_compression). A compressed request is inflated with its output bounded: inflating
// stops as soon as the message would pass its limit, so a small message that inflates to
// gigabytes (a gzip bomb) costs at most the limit in memory and the time to produce it.
#ifndef RPCBOOT_INTERNAL_GRPC_COMPRESSION_H_
#define RPCBOOT_INTERNAL_GRPC_COMPRESSION_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

// The grpc-encoding values understood. kDeflate is zlib's format (RFC 1950), as gRPC sends it.
enum class GrpcCodec { kIdentity, kGzip, kDeflate };

// The codec a grpc-encoding value names; nullopt for one not understood (snappy, zstd, ...).
std::optional<GrpcCodec> GrpcCodecNamed(std::string_view encoding);

// Whether a grpc-accept-encoding value (a comma-separated list) lists gzip.
bool AcceptsGzip(std::string_view accept_encoding);

// What the server sends as grpc-accept-encoding when it takes compressed requests.
inline constexpr std::string_view kGrpcAcceptedEncodings = "identity,deflate,gzip";

// Why an inflate failed: the message passed its limit, or its bytes are not the codec's format.
struct InflateError {
  StatusCode code = StatusCode::kOk;  // kOk: inflated
  std::string message;
  bool ok() const { return code == StatusCode::kOk; }
};

// Inflates one message (`in`, compressed with `codec`: gzip or deflate) into *out. Never produces
// more than `limit` bytes: a message that would is RESOURCE_EXHAUSTED once its output passes the
// limit. `grow(n)` is asked before *out takes n more bytes (a memory quota); false stops the
// inflate with RESOURCE_EXHAUSTED and `refused` as its message. Bytes that are not the codec's
// format, a stream that ends early or has bytes after its end are INTERNAL (as gRPC answers them).
InflateError InflateMessage(GrpcCodec codec, std::string_view in, std::size_t limit,
                            absl::FunctionRef<bool(std::size_t)> grow, std::string_view refused,
                            std::string* out);

// Channels that compress requests (grpc_compression gzip, thrift_compression zlib) compress
// those at least this long: below it, compression rarely saves a packet.
inline constexpr std::size_t kCompressRequestsFrom = 1024;

// `in` compressed as gzip (zlib level 1: the fastest), or nullopt when that is no smaller.
std::optional<std::string> GzipMessage(std::string_view in);
// `in` compressed in zlib's format (RFC 1950, level 1), whatever its size (THeader's zlib
// transform); nullopt only when zlib has no memory.
std::optional<std::string> ZlibMessage(std::string_view in);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_GRPC_COMPRESSION_H_
