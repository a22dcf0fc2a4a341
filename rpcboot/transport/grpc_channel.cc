// gRPC client channel: generic unary calls on a grpc::Channel with bytes in and out, so no
// generated stub is needed.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>

#include "rpcboot/client.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot {
namespace {

std::string ToBytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

class GrpcChannel final : public Channel {
 public:
  GrpcChannel(const std::string& target, const ChannelOptions& options) : options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }

  WireFormat format() const override { return WireFormat::kProto; }

  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& call_options) override {
    grpc::ClientContext context;
    auto timeout =
        call_options.timeout.count() > 0 ? call_options.timeout : options_.default_timeout;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    grpc::Slice slice(request.data(), request.size());
    grpc::ByteBuffer request_buffer(&slice, 1);
    grpc::ByteBuffer reply;
    grpc::internal::RpcMethod rpc(method.grpc_path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel_.get(), rpc, &context, request_buffer, &reply);
    if (!status.ok()) {
      throw RpcError(StatusCodeFromInt(static_cast<int>(status.error_code())),
                     status.error_message());
    }
    return ToBytes(reply);
  }

 private:
  ChannelOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

std::shared_ptr<Channel> MakeGrpcChannel(const std::string& target, ChannelOptions options) {
  return std::make_shared<GrpcChannel>(target, options);
}

}  // namespace rpcboot
