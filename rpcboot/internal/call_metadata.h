// A call's own metadata (CallOptions::metadata, ServerContext::metadata): which keys are the
// caller's rather than the protocol's or rpcboot's, the rules a caller's entries must keep, and
// the size the servers take.
#ifndef RPCBOOT_INTERNAL_CALL_METADATA_H_
#define RPCBOOT_INTERNAL_CALL_METADATA_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/channel.h"
#include "rpcboot/server_context.h"

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

// An in-process call (BindInProcess, a fallback, an App's local side) while it lives: its handler
// sees the call's metadata and its reply metadata reaches the caller, as over the network.
// When the call has either, the handler runs under a copy of the context this thread serves
// (its deadline, identity and trace go on) or a "local" one, with the call's metadata;
// otherwise nothing changes.
class InProcessCallScope {
 public:
  explicit InProcessCallScope(const CallOptions& options);
  ~InProcessCallScope();  // hands the reply's metadata to options.reply_metadata
  InProcessCallScope(const InProcessCallScope&) = delete;
  InProcessCallScope& operator=(const InProcessCallScope&) = delete;

 private:
  const CallOptions& options_;
  std::optional<ServerContext> context_;
  std::optional<ServerContext::Scope> scope_;
};

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_CALL_METADATA_H_
