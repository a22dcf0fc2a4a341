#include "rpcboot/internal/call_metadata.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace rpcboot::internal {

namespace {

// HTTP/2 and gRPC read these themselves, or rpcboot gives them to the handler another way
// (authorization: identity(); traceparent, tracestate: trace()).
constexpr std::array<std::string_view, 14> kReserved = {"content-type",      "te",
                                                        "user-agent",        "host",
                                                        "authorization",     "traceparent",
                                                        "tracestate",        "connection",
                                                        "keep-alive",        "proxy-connection",
                                                        "upgrade",           "content-length",
                                                        "transfer-encoding", "accept-encoding"};

// Lowercase letters, digits, '-', '_', '.': gRPC's metadata key syntax.
bool KeySyntax(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

std::string Shown(std::string_view text) {
  std::string shown;
  for (char c : text.substr(0, 64)) {
    if (c >= 0x20 && c <= 0x7e) {
      shown += c;
    } else {
      shown += absl::StrCat("\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  if (text.size() > 64) shown += "...";
  return shown;
}

}  // namespace

bool IsBinaryMetadataKey(std::string_view key) {
  return key.size() >= 4 && key.substr(key.size() - 4) == "-bin";
}

bool IsCallMetadataKey(std::string_view key) {
  if (!KeySyntax(key)) return false;
  if (key.rfind("grpc-", 0) == 0 || key.rfind("rpcboot-", 0) == 0) return false;
  for (std::string_view reserved : kReserved) {
    if (key == reserved) return false;
  }
  return true;
}

absl::Status CheckCallMetadata(const CallMetadata& metadata) {
  std::size_t bytes = 0;
  for (const auto& [key, value] : metadata) {
    if (!KeySyntax(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("call metadata key '", Shown(key),
                       "' is not a metadata key (lowercase letters, digits, '-', '_', '.')"));
    }
    if (!IsCallMetadataKey(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "call metadata key '", key,
          "' is the protocol's or rpcboot's own (grpc-*, rpcboot-*, authorization, ...)"));
    }
    if (!IsBinaryMetadataKey(key)) {
      for (char c : value) {
        if (c < 0x20 || c > 0x7e) {
          return absl::InvalidArgumentError(
              absl::StrCat("call metadata '", key, "' has a value that is not printable ASCII ('",
                           Shown(value), "'); bytes go under a key ending in \"-bin\""));
        }
      }
      if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) {
        return absl::InvalidArgumentError(absl::StrCat("call metadata '", key,
                                                       "' has a value with a space at one end ('",
                                                       Shown(value), "')"));
      }
    }
    bytes += MetadataEntryBytes(key, value);
  }
  if (bytes > kMaxCallMetadataBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "call metadata of ", bytes, " bytes exceeds the limit of ", kMaxCallMetadataBytes));
  }
  return absl::OkStatus();
}

InProcessCallScope::InProcessCallScope(const CallOptions& options) : options_(options) {
  if (options.reply_metadata != nullptr) options.reply_metadata->clear();
  if (options.metadata.empty() && options.reply_metadata == nullptr) return;
  if (const ServerContext* outer = ServerContext::Current()) {
    context_.emplace(*outer);
    context_->TakeReplyMetadata();  // the outer call's own, not this one's
  } else {
    std::optional<ServerContext::Clock::time_point> deadline;
    if (options.timeout.count() > 0) deadline = ServerContext::Clock::now() + options.timeout;
    context_.emplace("local", "in-process", deadline);
  }
  *context_->mutable_metadata() = options.metadata;
  scope_.emplace(&*context_);
}

InProcessCallScope::~InProcessCallScope() {
  scope_.reset();
  if (context_ && options_.reply_metadata != nullptr) {
    *options_.reply_metadata = context_->TakeReplyMetadata();
  }
}

}  // namespace rpcboot::internal
