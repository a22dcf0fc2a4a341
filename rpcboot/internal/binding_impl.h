// The templates behind generated bindings and proxies: decode a request, call the user's
// method, encode the reply (server side); encode the arguments, call through a Channel, decode
// the reply (client side). Included only by generated <stem>.rpcboot.cc files and rpcboot's
// own sources, because it pulls in the codecs (and with them Thrift's headers).
#ifndef RPCBOOT_INTERNAL_BINDING_IMPL_H_
#define RPCBOOT_INTERNAL_BINDING_IMPL_H_

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "rpcboot/channel.h"
#include "rpcboot/client.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/codec/value_diff.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/reflect.h"
#include "rpcboot/status.h"

namespace rpcboot::internal {

template <class S, std::size_t I>
using MethodOf = typename ServiceInfo<S>::template Method<I>;

// Calls method I of `impl` with the decoded parameters, which it uses up: a parameter taken by
// value is moved in (a 1 MiB string is not copied on its way to the handler), one taken by
// const& is bound as it is.
template <class S, std::size_t I, class Params>
decltype(auto) Apply(void* impl, Params& params) {
  S* service = static_cast<S*>(impl);
  return std::apply(
      [service](auto&... args) -> decltype(auto) {
        return (service->*MethodOf<S, I>::kPointer)(std::move(args)...);
      },
      params);
}

// How a request names its parts in decode errors, the same on both wires: as the emitted
// .proto does. A request that is one declared struct is named by that struct
// ("rich.EchoRequest.value.stamp"); parameters carried by a synthesized message are named
// "<package>.<Method>Request.<parameter>", whether they came in that message (gRPC) or in a
// Thrift args struct.
struct RequestNames {
  std::string_view request;  // ServiceInfo's kProtoRequest: "rich.NotifyRequest"
  const std::string_view* params;
  std::size_t param_count;
  bool request_is_param;
};

// Throws INVALID_ARGUMENT "bad request: ..." for a request that did not decode. `placeholder`
// is what the codec called the unnamed top level ("message" for proto, "struct" for Thrift).
[[noreturn]] void ThrowBadRequest(const absl::Status& status, std::string_view placeholder,
                                  const RequestNames& names);

template <class M>
RequestNames RequestNamesOf() {
  return {M::kProtoRequest, M::kParamNames.data(), M::kParamNames.size(), M::kProtoRequestIsParam};
}

template <class S, std::size_t I>
void ServeProto(void* impl, std::string_view request, std::string* out) {
  using M = MethodOf<S, I>;
  using R = typename M::Return;
  typename M::Params params{};
  absl::Status status;
  if constexpr (M::kProtoRequestIsParam) {
    status = ProtoDecode(request, &std::get<0>(params));
  } else {
    status = ProtoDecode(request, &params);
  }
  if (!status.ok()) ThrowBadRequest(status, "message", RequestNamesOf<M>());
  if constexpr (std::is_void_v<R>) {
    Apply<S, I>(impl, params);
  } else {
    R result = Apply<S, I>(impl, params);
    if constexpr (M::kProtoResponseIsReturn) {
      ProtoEncodeAppend(result, out);
    } else {
      ProtoEncodeAppend(std::tuple<const R&>(result), out);
    }
  }
}

// A Thrift result struct: field 0 = the return value (absent for void), written like
// thrift-compiler's <Service>_<Method>_result. An optional return value travels in the
// emitted <Method>Response struct, {1: optional T value}: a result field cannot be absent.
template <class P, class R>
void ThriftWriteSuccess(P& p, const R* result) {
  p.writeStructBegin("result");
  if constexpr (kIsOptional<R>) {
    p.writeFieldBegin("success", apache::thrift::protocol::T_STRUCT, 0);
    ThriftWriteValue(p, std::tuple<const R&>(*result));
    p.writeFieldEnd();
  } else if constexpr (!std::is_void_v<R>) {
    p.writeFieldBegin("success", ThriftTypeOf<R>(), 0);
    ThriftWriteValue(p, *result);
    p.writeFieldEnd();
  }
  p.writeFieldStop();
  p.writeStructEnd();
}

// Appends the result struct of `result` (null for void) to *out.
template <class R>
void ThriftAppendSuccess(WireFormat format, const R* result, std::string* out) {
  ThriftWriteToString(format, out,
                      [result](auto& protocol) { ThriftWriteSuccess(protocol, result); });
}

template <class R>
std::string ThriftEncodeSuccess(WireFormat format, const R* result) {
  std::string out;
  ThriftAppendSuccess(format, result, &out);
  return out;
}

template <class S, std::size_t I>
void ServeThrift(void* impl, WireFormat format, std::string_view args, std::string* out) {
  using M = MethodOf<S, I>;
  using R = typename M::Return;
  typename M::Params params{};
  absl::Status status = ThriftDecode(args, format, &params);
  if (!status.ok()) ThrowBadRequest(status, "struct", RequestNamesOf<M>());
  if constexpr (std::is_void_v<R>) {
    Apply<S, I>(impl, params);
    ThriftAppendSuccess<void>(format, nullptr, out);
  } else {
    R result = Apply<S, I>(impl, params);
    ThriftAppendSuccess(format, &result, out);
  }
}

// The value a reply of method I carries (the part a successful reply decodes to).
template <class S, std::size_t I>
typename MethodOf<S, I>::Return DecodeReply(WireFormat format, std::string_view reply);

template <class S, std::size_t I>
ReplyDiff DiffReplies(WireFormat format, std::string_view a, std::string_view b,
                      const std::vector<std::string>& ignore, std::size_t limit) {
  using M = MethodOf<S, I>;
  using R = typename M::Return;
  ReplyDiff diff;
  if constexpr (!std::is_void_v<R>) {
    R left = DecodeReply<S, I>(format, a);
    R right = DecodeReply<S, I>(format, b);
    DiffSink sink(M::kName, &ignore, limit);
    DiffValues(left, right, sink);
    diff.differences = sink.differences();
    diff.count = sink.count();
  }
  return diff;
}

template <class S, std::size_t... I>
ServiceBinding MakeServiceBinding(std::index_sequence<I...>) {
  ServiceBinding binding;
  binding.full_name = std::string(ServiceInfo<S>::kFullName);
  (binding.methods.push_back(MethodBinding{
       std::string(MethodOf<S, I>::kName),
       "/" + binding.full_name + "/" + std::string(MethodOf<S, I>::kName),
       MethodOf<S, I>::kIdempotent,
       &ServeProto<S, I>,
       &ServeThrift<S, I>,
       &DiffReplies<S, I>,
   }),
   ...);
  return binding;
}

template <class S>
ServiceBinding MakeServiceBinding() {
  return MakeServiceBinding<S>(std::make_index_sequence<ServiceInfo<S>::kMethodCount>{});
}

// The exception every emitted method declares: exception RpcError {1: i32 code, 2: string message}.
struct ThriftRpcError {
  int32_t code = 0;
  std::string message;
};

// ---- client side ----

[[noreturn]] void ThrowBadReply(std::string_view what);

// Reads a Thrift result struct: field 0 is the value, field 1 an RpcError, others are skipped.
template <class R, class P>
R ThriftReadResult(P& p) {
  using apache::thrift::protocol::T_STOP;
  using apache::thrift::protocol::T_STRUCT;
  using apache::thrift::protocol::TType;
  // What field 0 holds: the value, or for an optional result the struct that carries it.
  using Wire = std::conditional_t<std::is_void_v<R>, bool,
                                  std::conditional_t<kIsOptional<R>, std::tuple<R>, R>>;
  Wire result{};
  bool has_result = false;
  bool has_error = false;
  ThriftRpcError error{static_cast<int32_t>(StatusCode::kUnknown), ""};
  std::string name;
  TType type;
  int16_t id;
  p.readStructBegin(name);
  while (true) {
    ThriftReadFieldBegin(p, name, type, id);
    if (type == T_STOP) break;
    if constexpr (!std::is_void_v<R>) {
      if (id == 0 && type == ThriftTypeOf<Wire>()) {
        ThriftReadValue(p, result);
        has_result = true;
        p.readFieldEnd();
        continue;
      }
    }
    if (id == 1 && type == T_STRUCT) {
      has_error = true;
      ThriftReadValue(p, error);
    } else {
      ThriftSkip(p, type);
    }
    p.readFieldEnd();
  }
  p.readStructEnd();
  if (has_error) throw RpcError(StatusCodeFromInt(error.code), error.message);
  if constexpr (!std::is_void_v<R>) {
    if (!has_result) ThrowBadReply("Thrift reply holds neither a result nor an error");
    if constexpr (kIsOptional<R>) {
      return std::move(std::get<0>(result));
    } else {
      return result;
    }
  }
}

template <class R>
R ThriftDecodeResult(std::string_view bytes, WireFormat format) {
  try {
    return WithBoundedThriftReader(bytes, format,
                                   [](auto& reader) { return ThriftReadResult<R>(reader); });
  } catch (const apache::thrift::TException& e) {
    ThrowBadReply(e.what());
  }
}

template <class S, std::size_t I>
typename MethodOf<S, I>::Return DecodeReply(WireFormat format, std::string_view reply) {
  using M = MethodOf<S, I>;
  using R = typename M::Return;
  if (format != WireFormat::kProto) return ThriftDecodeResult<R>(reply, format);
  if constexpr (std::is_void_v<R>) {
    return;
  } else {
    std::conditional_t<M::kProtoResponseIsReturn, R, std::tuple<R>> decoded{};
    absl::Status status = ProtoDecode(reply, &decoded);
    if (!status.ok()) ThrowBadReply(std::string(status.message()));
    if constexpr (M::kProtoResponseIsReturn) {
      return decoded;
    } else {
      return std::move(std::get<0>(decoded));
    }
  }
}

template <class S, std::size_t I, class... Args>
typename MethodOf<S, I>::Return CallMethod(Channel& channel, const Args&... args) {
  using M = MethodOf<S, I>;
  const MethodBinding& method = BindingOf<S>().methods[I];
  std::tuple<const Args&...> params(args...);
  WireFormat format = channel.format();
  if (format == WireFormat::kProto) {
    std::string request;
    if constexpr (M::kProtoRequestIsParam) {
      request = ProtoEncode(std::get<0>(params));
    } else {
      request = ProtoEncode(params);
    }
    return DecodeReply<S, I>(format, CallThrough(channel, method, request));
  }
  std::string request = ThriftEncode(params, format);
  return DecodeReply<S, I>(format, CallThrough(channel, method, request));
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_BINDING_IMPL_H_
