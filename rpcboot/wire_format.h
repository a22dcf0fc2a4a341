// rpcboot::WireFormat: how request and reply bodies are encoded. One vocabulary for channels
// (Channel::format), the Thrift codec (ThriftEncode/ThriftDecode), the Thrift transports and the
// THeader frames that carry a protocol id: each converts to its wire's own number at the wire.
#ifndef RPCBOOT_WIRE_FORMAT_H_
#define RPCBOOT_WIRE_FORMAT_H_

namespace rpcboot {

enum class WireFormat {
  kProto,          // gRPC and in-process: proto3 messages as in the emitted .proto
  kThriftCompact,  // Thrift args and result structs, compact protocol
  kThriftBinary,   // Thrift args and result structs, binary protocol
};

}  // namespace rpcboot

#endif  // RPCBOOT_WIRE_FORMAT_H_
