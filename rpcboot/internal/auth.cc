#include "rpcboot/internal/auth.h"

#include <cctype>
#include <sstream>

#include "rpcboot/base/internal/read_file.h"

namespace rpcboot::internal {
namespace {

// A tokens file is read up to this size (some hundred thousand principals).
constexpr std::size_t kMaxTokensFileBytes = 16 << 20;

// Compares without stopping at the first difference, so a token's validity is not told by
// the time the comparison takes.
bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

bool Space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Strip(std::string_view text) {
  while (!text.empty() && Space(text.front())) text.remove_prefix(1);
  while (!text.empty() && Space(text.back())) text.remove_suffix(1);
  return text;
}

// The words of `text`, split at spaces and tabs.
std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && Space(text[i])) ++i;
    std::size_t start = i;
    while (i < text.size() && !Space(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace

std::string_view BearerToken(std::string_view authorization) {
  authorization = Strip(authorization);
  if (authorization.size() > 7) {
    std::string scheme(authorization.substr(0, 7));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "bearer ") return Strip(authorization.substr(7));
  }
  return authorization;
}

absl::StatusOr<std::shared_ptr<const CallGuard>> CallGuard::Make(const AuthOptions& options) {
  auto guard = std::make_shared<CallGuard>();
  guard->options_ = options;
  if (!options.tokens_file.empty()) {
    std::string content;
    internal::ReadFileResult read =
        internal::ReadFileUpTo(options.tokens_file, kMaxTokensFileBytes, &content);
    if (read != internal::ReadFileResult::kOk) {
      return absl::InvalidArgumentError("server.auth.tokens_file: " + options.tokens_file + " " +
                                        internal::ReadFileProblem(read, kMaxTokensFileBytes));
    }
    std::istringstream in(content);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      std::string_view text = Strip(line);
      if (text.empty() || text[0] == '#') continue;
      std::vector<std::string_view> parts = Words(text);
      if (parts.size() != 2) {
        return absl::InvalidArgumentError("server.auth.tokens_file: " + options.tokens_file + ":" +
                                          std::to_string(number) + " is not '<principal> <token>'");
      }
      guard->tokens_.emplace(std::string(parts[1]), std::string(parts[0]));
    }
  }
  for (const std::string& entry : options.allow) {
    std::vector<std::string_view> parts = Words(entry);
    std::size_t slash = parts.size() == 2 ? parts[1].find('/') : std::string_view::npos;
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == parts[1].size()) {
      return absl::InvalidArgumentError(
          "server.auth.allow: '" + entry +
          "' is not '<principal> <package.Service>/<Method>' (as in 'order shop.ShopService/*')");
    }
    guard->allow_.push_back({std::string(parts[0]), std::string(parts[1].substr(0, slash)),
                             std::string(parts[1].substr(slash + 1))});
  }
  guard->active_ = options.verify_token || !guard->tokens_.empty() || options.require_identity ||
                   !guard->allow_.empty() || options.authorize;
  return std::shared_ptr<const CallGuard>(std::move(guard));
}

Refusal CallGuard::Check(std::string_view method, std::string_view token,
                         PeerIdentity* identity) const {
  if (!active_) return {};
  if (!token.empty() && (options_.verify_token || !tokens_.empty())) {
    std::optional<std::string> principal;
    if (options_.verify_token) {
      principal = options_.verify_token(token);
    } else {
      for (const auto& [known, who] : tokens_) {
        if (SameSecret(token, known)) principal = who;
      }
    }
    if (!principal || principal->empty()) {
      return {StatusCode::kUnauthenticated, "rpcboot: the call's bearer token is not accepted"};
    }
    identity->principal = std::move(*principal);
    identity->source = "token";
  }
  if (options_.require_identity && identity->principal.empty()) {
    return {StatusCode::kUnauthenticated,
            "rpcboot: " + std::string(method) +
                " needs a verified caller: a client certificate or a bearer token "
                "(server.auth.require_identity)"};
  }
  // "/shop.ShopService/GetShop"
  std::string_view path = method.substr(method.empty() || method[0] != '/' ? 0 : 1);
  std::size_t slash = path.find('/');
  std::string_view service = path.substr(0, slash);
  std::string_view name = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  if (!allow_.empty()) {
    bool allowed = false;
    for (const Rule& rule : allow_) {
      if ((rule.principal == "*" || rule.principal == identity->principal) &&
          (rule.service == "*" || rule.service == service) &&
          (rule.method == "*" || rule.method == name)) {
        allowed = true;
        break;
      }
    }
    if (!allowed) {
      return {StatusCode::kPermissionDenied,
              "rpcboot: " +
                  (identity->principal.empty() ? std::string("an anonymous caller")
                                               : "'" + identity->principal + "'") +
                  " may not call " + std::string(method) + " (server.auth.allow)"};
    }
  }
  if (options_.authorize) {
    std::string why = options_.authorize(method, *identity);
    if (!why.empty()) return {StatusCode::kPermissionDenied, why};
  }
  return {};
}

}  // namespace rpcboot::internal
