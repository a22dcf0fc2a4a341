// Thrift message framing shared by rpcboot's Thrift server and channel: frames are a 4-byte
// big-endian length and a message (header + struct), as TFramedTransport writes them.
#ifndef RPCBOOT_TRANSPORT_THRIFT_WIRE_H_
#define RPCBOOT_TRANSPORT_THRIFT_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rpcboot/channel.h"

namespace rpcboot::internal {

enum ThriftMessageType : int32_t {
  kThriftCall = 1,
  kThriftReply = 2,
  kThriftException = 3,
  kThriftOneway = 4
};

struct ThriftMessageHeader {
  std::string name;
  int32_t type = 0;
  int32_t seqid = 0;
  WireFormat format = WireFormat::kThriftCompact;
  std::size_t body_offset = 0;  // where the struct after the header starts in the frame
};

// Parses a message header, detecting compact (0x82) or binary (0x80 0x01) from the first byte.
absl::Status ParseThriftHeader(std::string_view frame, ThriftMessageHeader* header);

// Appends a message header: what precedes the struct in a message.
void AppendThriftMessageHeader(WireFormat format, std::string_view name, int32_t type,
                               int32_t seqid, std::string* out);

// header + body, as a frame body (without the length prefix).
std::string ThriftMessage(WireFormat format, std::string_view name, int32_t type, int32_t seqid,
                          std::string_view body);

// THeader frames (Thrift's header transport, libthriftz): a frame whose body starts with 0x0FFF
// carries key-value info headers around an ordinary message. rpcboot uses the header
// "rpcboot-timeout-ms" to carry a call's deadline to the server.
struct THeaderFrame {
  uint16_t flags = 0;
  int32_t seqid = 0;
  WireFormat format = WireFormat::kThriftCompact;  // the protocol id: 0 binary, 2 compact
  std::vector<std::pair<std::string, std::string>> headers;
  // Transform ids, in the order applied when written (kTHeaderZlib: the message is zlib's
  // format). ParseTHeader reads them and leaves the message as it is; WrapTHeader applies them.
  std::vector<uint32_t> transforms;
  std::size_t payload_offset = 0;  // where the message starts in the frame body
};
inline constexpr uint32_t kTHeaderZlib = 1;
inline constexpr std::string_view kTimeoutHeader = "rpcboot-timeout-ms";
// The caller's credential ("Bearer <token>"), as gRPC carries it in metadata.
inline constexpr std::string_view kAuthorizationHeader = "authorization";

// The info headers of a call that are the caller's own metadata (ServerContext::metadata).
struct THeaderMetadata {
  std::vector<std::pair<std::string, std::string>> entries;  // keys lowercase, in order
  std::size_t bytes = 0;  // all of them, counted as HTTP/2 counts a header list
};

bool IsTHeaderFrame(std::string_view frame);
// Reads a THeader frame. With `keep`, only the info headers whose key it accepts are copied out,
// each key once (its last value), and the rest are read past: up to 256 KiB of headers a peer
// sends then cost no copy. Without it, every header in order. With `metadata`, the headers
// `keep` passes over that are call metadata (IsCallMetadataKey once lowercased) are copied
// there as long as they stay within kMaxReceivedMetadataBytes; `bytes` counts them all.
absl::Status ParseTHeader(std::string_view frame, THeaderFrame* out,
                          bool (*keep)(std::string_view key) = nullptr,
                          THeaderMetadata* metadata = nullptr);
// A `keep` for ParseTHeader that copies no header (for a reader that needs only the message).
inline bool NoInfoHeaders(std::string_view) { return false; }
// A THeader frame body (without the 4-byte length) around `message`, laid out as Thrift's
// THeaderTransport writes it; with kTHeaderZlib among the transforms, `message` goes compressed
// (and the frame lists only that transform: the only one written), unless that makes it no
// smaller (then it goes plain, and the frame lists no transform).
std::string WrapTHeader(const THeaderFrame& header, std::string_view message);

// TApplicationException's types, as Thrift's runtimes number them.
enum ThriftApplicationExceptionType : int32_t {
  kThriftUnknownError = 0,
  kThriftUnknownMethod = 1,
  kThriftInvalidMessageType = 2,
  kThriftWrongMethodName = 3,
  kThriftBadSequenceId = 4,
  kThriftMissingResult = 5,
  kThriftInternalError = 6,
  kThriftProtocolError = 7,
};

// A TApplicationException struct, for T_EXCEPTION replies.
std::string ThriftApplicationException(WireFormat format, int32_t type, std::string_view message);
// Reads a TApplicationException struct: its type and message.
std::pair<int32_t, std::string> ReadThriftApplicationException(WireFormat format,
                                                               std::string_view body);

// The 4-byte big-endian frame length of TFramedTransport.
void EncodeFrameLength(uint32_t length, char out[4]);
uint32_t DecodeFrameLength(const char in[4]);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_TRANSPORT_THRIFT_WIRE_H_
