// Thrift's own protocol classes driven by rpcboot's struct walkers: the reference that rpcboot's
// Thrift reader and writer (rpcboot/codec/thrift_protocol.h) are compared with. The reader is set
// up as the codec was before it had its own: strings and containers limited to the input's size,
// the message size to the input, type bytes checked (thrift_codec.h's ThriftCheckTypeBytes).
#ifndef RPCBOOT_TESTS_RPCBOOT_THRIFT_REFERENCE_H_
#define RPCBOOT_TESTS_RPCBOOT_THRIFT_REFERENCE_H_

#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rpcboot/codec/thrift_codec.h"

namespace rpcboot::testing {

// `value` written by Thrift's TBinaryProtocol or TCompactProtocol.
template <class T>
std::string ThriftReferenceEncode(const T& value, WireFormat format) {
  using apache::thrift::transport::TMemoryBuffer;
  auto buffer = std::make_shared<TMemoryBuffer>();
  if (format == WireFormat::kThriftCompact) {
    apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer> protocol(buffer);
    ThriftWriteStruct(protocol, value);
  } else {
    apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer> protocol(buffer);
    ThriftWriteStruct(protocol, value);
  }
  return buffer->getBufferAsString();
}

// `bytes` read into `*out` by Thrift's protocol; ok when the struct fills them exactly.
template <class T>
absl::Status ThriftReferenceDecode(std::string_view bytes, WireFormat format, T* out) {
  using apache::thrift::transport::TMemoryBuffer;
  const auto size = static_cast<int32_t>(bytes.size());
  auto config = std::make_shared<apache::thrift::TConfiguration>();
  config->setMaxMessageSize(size);
  auto buffer = std::make_shared<TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
      static_cast<uint32_t>(bytes.size()), TMemoryBuffer::OBSERVE, config);
  try {
    if (format == WireFormat::kThriftCompact) {
      apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer> protocol(buffer, size, size);
      ThriftReadStruct(protocol, out);
    } else {
      apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer> protocol(buffer, size, size, false,
                                                                         true);
      ThriftReadStruct(protocol, out);
    }
  } catch (const apache::thrift::TException& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (buffer->available_read() != 0) return absl::InvalidArgumentError("bytes left");
  return absl::OkStatus();
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_THRIFT_REFERENCE_H_
