// gRPC client channel: generic unary calls on a grpc::Channel with bytes in and out, so no
// generated stub is needed.
#include <grpc/compression.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>

#include "rpcboot/base/internal/host_port.h"
#include "rpcboot/client.h"
#include "rpcboot/internal/abseil_mutex.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/internal/client_connection.h"
#include "rpcboot/internal/tls.h"
#include "rpcboot/internal/tracing.h"
#include "rpcboot/internal/unsent_error.h"
#include "rpcboot/transport/grpc_bytes.h"

namespace rpcboot {
namespace {

class GrpcChannel final : public Channel {
 public:
  GrpcChannel(const std::string& target, const ChannelOptions& options) : options_(options) {
    internal::SettleAbseilDeadlockDetection();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    if (options.grpc_compression == GrpcCompression::kGzip) {
      args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (options.tls.enabled) {
      credentials = TlsCredentials(options.tls);
      if (!options.tls.server_name.empty()) args.SetSslTargetNameOverride(options.tls.server_name);
    }
    channel_ = grpc::CreateCustomChannel(target, credentials, args);
  }

  WireFormat format() const override { return WireFormat::kProto; }

  std::string Call(const internal::MethodBinding& method, std::string_view request,
                   const CallOptions& call_options) override {
    grpc::ClientContext context;
    const auto timeout = internal::CallTimeout(options_, call_options, method.name);
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    if (!options_.bearer_token.empty()) {
      context.AddMetadata("authorization", "Bearer " + options_.bearer_token);
    }
    if (!call_options.traceparent.empty()) {
      context.AddMetadata(std::string(internal::kTraceparentHeader), call_options.traceparent);
      if (!call_options.tracestate.empty())
        context.AddMetadata(std::string(internal::kTracestateHeader), call_options.tracestate);
    }
    if (call_options.shadow) context.AddMetadata(std::string(internal::kShadowHeader), "1");
    for (const auto& [key, value] : call_options.metadata) context.AddMetadata(key, value);
    grpc::ByteBuffer request_buffer = internal::ToByteBuffer(request);
    grpc::ByteBuffer reply;
    grpc::internal::RpcMethod rpc(method.grpc_path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
    if (call_options.cancellation) {
      call_options.cancellation->OnCancel([&context] { context.TryCancel(); });
    }
    grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel_.get(), rpc, &context, request_buffer, &reply);
    if (call_options.cancellation) call_options.cancellation->Clear();
    if (call_options.reply_metadata != nullptr) {
      call_options.reply_metadata->clear();
      internal::AppendCallMetadata(context.GetServerInitialMetadata(), call_options.reply_metadata);
      internal::AppendCallMetadata(context.GetServerTrailingMetadata(),
                                   call_options.reply_metadata);
    }
    if (!status.ok()) {
      // gRPC retries by itself a call that never left. What still fails with "failed to connect
      // to all addresses" failed at the pick, before anything was sent. (The channel's state
      // after a failure says nothing: a server that died mid-call also leaves it in
      // TRANSIENT_FAILURE a moment later.)
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
          status.error_message().find("failed to connect") != std::string::npos) {
        throw internal::UnsentError(status.error_message());
      }
      throw RpcError(StatusCodeFromInt(static_cast<int>(status.error_code())),
                     status.error_message());
    }
    return internal::ToBytes(reply);
  }

 private:
  static std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const TlsOptions& tls) {
    // The same checks and messages as a Thrift channel's (gRPC itself would only log them).
    absl::StatusOr<internal::TlsContext> check = internal::MakeClientTlsContext(tls, "tls");
    if (!check.ok())
      throw RpcError(StatusCode::kInvalidArgument, std::string(check.status().message()));
    grpc::SslCredentialsOptions ssl;
    auto read = [](const std::string& path, const char* key) {
      absl::StatusOr<std::string> pem = internal::ReadPemFile(path, key);
      if (!pem.ok())
        throw RpcError(StatusCode::kInvalidArgument, std::string(pem.status().message()));
      return *pem;
    };
    if (!tls.ca_file.empty()) ssl.pem_root_certs = read(tls.ca_file, "tls.ca_file");
    if (!tls.cert_file.empty()) {
      ssl.pem_cert_chain = read(tls.cert_file, "tls.cert_file");
      ssl.pem_private_key = read(tls.key_file, "tls.key_file");
    }
    return grpc::SslCredentials(ssl);
  }

  ChannelOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

std::shared_ptr<Channel> MakeGrpcChannel(const std::string& target, ChannelOptions options) {
  // The native client takes host:port; any other gRPC target ("dns:///...", "unix:...") is
  // gRPC's own to resolve.
  if (options.grpc_client == GrpcClient::kNative && internal::IsHostPort(target))
    return MakeNativeGrpcChannel(target, options);
  return std::make_shared<GrpcChannel>(target, options);
}

}  // namespace rpcboot
