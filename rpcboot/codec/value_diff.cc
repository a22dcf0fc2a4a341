#include "rpcboot/codec/value_diff.h"

#include <cmath>
#include <cstdio>

namespace rpcboot::internal {

std::string DiffSink::Path() const {
  std::string path;
  for (const std::string& part : path_) {
    if (!path.empty() && part.front() != '[') path += '.';
    path += part;
  }
  return path.empty() ? "(the reply)" : path;
}

bool DiffSink::Ignored() const {
  if (ignore_ == nullptr || ignore_->empty() || path_.empty()) return false;
  // The path without list indexes and map keys: "items.price".
  std::string plain;
  for (const std::string& part : path_) {
    if (part.front() == '[') continue;
    if (!plain.empty()) plain += '.';
    plain += part;
  }
  const std::string& name = path_.back();
  for (std::string_view entry : *ignore_) {
    if (std::size_t colon = entry.find(':'); colon != std::string_view::npos) {
      if (entry.substr(0, colon) != method_) continue;
      entry.remove_prefix(colon + 1);
    }
    // A bare name leaves that field out wherever it is; a dotted path only there.
    if (entry.find('.') == std::string_view::npos ? entry == name : entry == plain) return true;
  }
  return false;
}

void DiffSink::Add(std::string_view what) {
  ++count_;
  if (differences_.size() < limit_) differences_.push_back(Path() + ": " + std::string(what));
}

std::string DiffText(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s.size() > kMax) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string DiffText(bool v) { return v ? "true" : "false"; }
std::string DiffText(int64_t v) { return std::to_string(v); }
std::string DiffText(uint64_t v) { return std::to_string(v); }
std::string DiffText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace rpcboot::internal
