#include "rpcboot/internal/binding.h"

#include <string>

#include "rpcboot/internal/binding_impl.h"

namespace rpcboot::internal {

const MethodBinding* ServiceBinding::Find(std::string_view method_name) const {
  for (const MethodBinding& m : methods) {
    if (m.name == method_name) return &m;
  }
  return nullptr;
}

namespace {
struct ThriftErrorOnly {
  ThriftRpcError error;  // field 1 of the result struct
};
}  // namespace

std::string ThriftErrorResult(WireFormat format, StatusCode code, std::string_view message) {
  ThriftErrorOnly result{{static_cast<int32_t>(code), std::string(message)}};
  return ThriftEncode(result, format);
}

void ThrowBadRequest(const absl::Status& status, std::string_view placeholder,
                     const RequestNames& names) {
  // The codecs' message is "<codec>: <path>: <problem>", with an unnamed top level written as
  // "<placeholder>.<field id>" (Thrift may add "(<name>)"). Name it as the emitted .proto does.
  std::string message(status.message());
  std::size_t start = message.find(": ");
  start = start == std::string::npos ? 0 : start + 2;
  std::string_view rest = std::string_view(message).substr(start);
  std::size_t pos = placeholder.size() + 1;
  std::size_t id = 0;
  if (rest.substr(0, placeholder.size()) == placeholder && rest.size() > pos &&
      rest[placeholder.size()] == '.') {
    std::size_t digits = pos;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9')
      id = id * 10 + static_cast<std::size_t>(rest[digits++] - '0');
    if (digits > pos && id >= 1 && id <= names.param_count) {
      std::size_t end = digits;
      if (end < rest.size() && rest[end] == '(') {
        std::size_t close = rest.find(')', end);
        if (close != std::string_view::npos) end = close + 1;
      }
      std::string named(names.request);
      if (!names.request_is_param) named += "." + std::string(names.params[id - 1]);
      message.replace(start, end, named);
    }
  }
  throw RpcError(StatusCode::kInvalidArgument, "bad request: " + message);
}

void ThrowBadReply(std::string_view what) {
  throw RpcError(StatusCode::kInternal, "bad reply: " + std::string(what));
}

}  // namespace rpcboot::internal
