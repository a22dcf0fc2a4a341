// A call's own metadata (CallOptions::metadata, ServerContext::metadata): which keys are the
// caller's rather than the protocol's or rpcboot's, the rules a caller's entries must keep, and
// the size the servers take.
#ifndef RPCBOOT_INTERNAL_CALL_METADATA_H_
#define RPCBOOT_INTERNAL_CALL_METADATA_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace rpcboot::internal {

using CallMetadata = std::vector<std::pair<std::string, std::string>>;

// What a caller may send in all, counted as HTTP/2 counts a header list (key + value + 32 an
// entry). gRPC's own servers take 8 KiB of metadata by default.
inline constexpr std::size_t kMaxCallMetadataBytes = 8 * 1024;
// What a server keeps of one call's metadata (the native gRPC server's limit on a request's
// headers, and the same on THeader).
inline constexpr std::size_t kMaxReceivedMetadataBytes = 16 * 1024;

inline std::size_t MetadataEntryBytes(std::string_view key, std::string_view value) {
  return key.size() + value.size() + 32;
}

// Whether `key` (lowercase) is one of the caller's own: a valid gRPC metadata key that neither
// the protocols nor rpcboot read themselves.
bool IsCallMetadataKey(std::string_view key);
// Keys ending in "-bin" carry bytes (base64 on gRPC's wire).
bool IsBinaryMetadataKey(std::string_view key);

// OK, or why `metadata` cannot be sent: INVALID_ARGUMENT naming the entry, RESOURCE_EXHAUSTED
// past kMaxCallMetadataBytes.
absl::Status CheckCallMetadata(const CallMetadata& metadata);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_CALL_METADATA_H_
