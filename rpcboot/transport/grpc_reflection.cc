#include "rpcboot/transport/grpc_reflection.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <set>

#include "rpcboot/base/log.h"
#include "rpcboot/transport/grpc_bytes.h"
#include "rpcboot/transport/server_transport.h"

namespace rpcboot::internal {
namespace {

// ServerReflectionRequest / ServerReflectionResponse field numbers (grpc.reflection.v1 and
// v1alpha have the same messages).
enum RequestField {
  kHost = 1,
  kFileByFilename = 3,
  kFileContainingSymbol = 4,
  kFileContainingExtension = 5,
  kAllExtensionNumbersOfType = 6,
  kListServices = 7,
};
enum ResponseField {
  kValidHost = 1,
  kOriginalRequest = 2,
  kFileDescriptorResponse = 4,       // {1: repeated bytes file_descriptor_proto}
  kAllExtensionNumbersResponse = 5,  // {1: string base_type_name, 2: repeated int32}
  kListServicesResponse = 6,         // {1: repeated ServiceResponse {1: string name}}
  kErrorResponse = 7,                // {1: int32 error_code, 2: string error_message}
};

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutBytes(std::string* out, int field, std::string_view bytes) {
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

void PutInt(std::string* out, int field, uint64_t v) {
  PutVarint(out, static_cast<uint64_t>(field) << 3);
  PutVarint(out, v);
}

std::string Error(int code, const std::string& message) {
  std::string error;
  PutInt(&error, 1, static_cast<uint64_t>(code));
  PutBytes(&error, 2, message);
  return error;
}

constexpr int kNotFound = 5;
constexpr int kInvalidArgument = 3;
constexpr int kUnimplemented = 12;

}  // namespace

GrpcReflection::GrpcReflection(const MethodTable& table)
    : pool_(std::make_unique<google::protobuf::DescriptorPool>()) {
  for (const ServiceBinding* binding : table.bindings()) {
    for (const std::string& bytes : binding->descriptors) {
      google::protobuf::FileDescriptorProto file;
      if (!file.ParseFromString(bytes) || files_.count(file.name())) continue;
      if (pool_->BuildFile(file) == nullptr) {
        Log(LogLevel::kWarning, "gRPC reflection: the descriptor of " + file.name() +
                                    " does not build (a name defined twice?); not served");
        continue;
      }
      files_.emplace(file.name(), bytes);
    }
  }
  services_ = table.services();
  services_.push_back("grpc.health.v1.Health");
  services_.push_back("grpc.reflection.v1.ServerReflection");
  services_.push_back("grpc.reflection.v1alpha.ServerReflection");
}

GrpcReflection::~GrpcReflection() = default;

std::vector<std::string> GrpcReflection::FileWithImports(const std::string& name) const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::function<void(const google::protobuf::FileDescriptor*)> visit =
      [&](const google::protobuf::FileDescriptor* file) {
        if (file == nullptr || !seen.insert(file->name()).second) return;
        auto it = files_.find(file->name());
        if (it != files_.end()) out.push_back(it->second);
        for (int i = 0; i < file->dependency_count(); ++i) visit(file->dependency(i));
      };
  visit(pool_->FindFileByName(name));
  return out;
}

std::string GrpcReflection::Answer(std::string_view request) const {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(request.data()),
                                            static_cast<int>(request.size()));
  std::string host, file_name, symbol, extendee;
  bool list = false, by_name = false, by_symbol = false, by_extension = false, numbers = false;
  bool bad = false;
  while (uint32_t tag = in.ReadTag()) {
    int field = static_cast<int>(tag >> 3);
    int wire = static_cast<int>(tag & 7);
    if (wire == 2) {
      uint32_t length = 0;
      std::string value;
      if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) {
        bad = true;
        break;
      }
      switch (field) {
        case kHost:
          host = value;
          break;
        case kFileByFilename:
          by_name = true;
          file_name = value;
          break;
        case kFileContainingSymbol:
          by_symbol = true;
          symbol = value;
          break;
        case kFileContainingExtension:
          by_extension = true;
          break;
        case kAllExtensionNumbersOfType:
          numbers = true;
          extendee = value;
          break;
        case kListServices:
          list = true;
          break;
        default:
          break;
      }
    } else if (wire == 0) {
      uint64_t ignored;
      if (!in.ReadVarint64(&ignored)) bad = true;
    } else {
      bad = true;  // reflection requests hold only strings and messages
    }
    if (bad) break;
  }
  std::string out;
  PutBytes(&out, kValidHost, host);
  PutBytes(&out, kOriginalRequest, request);
  if (bad) {
    PutBytes(&out, kErrorResponse, Error(kInvalidArgument, "rpcboot: request does not decode"));
  } else if (list) {
    std::string services;
    for (const std::string& s : services_) {
      std::string one;
      PutBytes(&one, 1, s);
      PutBytes(&services, 1, one);
    }
    PutBytes(&out, kListServicesResponse, services);
  } else if (by_name || by_symbol) {
    std::string name = file_name;
    if (by_symbol) {
      const google::protobuf::FileDescriptor* file = pool_->FindFileContainingSymbol(symbol);
      name = file != nullptr ? file->name() : "";
    }
    std::vector<std::string> files =
        name.empty() ? std::vector<std::string>{} : FileWithImports(name);
    if (files.empty()) {
      PutBytes(&out, kErrorResponse,
               Error(kNotFound,
                     by_symbol ? "rpcboot: no symbol " + symbol : "rpcboot: no file " + file_name));
    } else {
      std::string descriptors;
      for (const std::string& f : files) PutBytes(&descriptors, 1, f);
      PutBytes(&out, kFileDescriptorResponse, descriptors);
    }
  } else if (numbers) {
    if (pool_->FindMessageTypeByName(extendee) == nullptr) {
      PutBytes(&out, kErrorResponse, Error(kNotFound, "rpcboot: no message " + extendee));
    } else {
      std::string none;  // rpcboot's messages declare no extension ranges
      PutBytes(&none, 1, extendee);
      PutBytes(&out, kAllExtensionNumbersResponse, none);
    }
  } else if (by_extension) {
    PutBytes(&out, kErrorResponse,
             Error(kNotFound, "rpcboot: the served messages have no extensions"));
  } else {
    PutBytes(&out, kErrorResponse,
             Error(kUnimplemented, "rpcboot: the request asks for nothing this server knows"));
  }
  return out;
}

}  // namespace rpcboot::internal
