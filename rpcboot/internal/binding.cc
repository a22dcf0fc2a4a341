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

bool ThriftResultError(WireFormat format, std::string_view result, StatusCode* code,
                       std::string* message) {
  if (result.empty() || result[0] == 0) return false;  // STOP: a void result
  int id = 0;
  // Field 1 must be a struct: type 12 in both protocols' field headers.
  if (format == WireFormat::kThriftBinary) {
    if (result.size() < 3 || result[0] != 12) return false;
    id = static_cast<int16_t>((static_cast<uint8_t>(result[1]) << 8) |
                              static_cast<uint8_t>(result[2]));
  } else {
    if ((result[0] & 0x0f) != 12) return false;
    id = static_cast<uint8_t>(result[0]) >> 4;  // the delta from field 0; 0: a full id follows
    if (id == 0) return false;                  // not how rpcboot (or Thrift) writes field 1
  }
  if (id != 1) return false;
  ThriftErrorOnly error;
  error.error.code = static_cast<int32_t>(StatusCode::kUnknown);  // as the proxy reads it
  if (!ThriftDecode(result, format, &error).ok()) return false;
  *code = StatusCodeFromInt(error.error.code);
  *message = std::move(error.error.message);
  return true;
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
