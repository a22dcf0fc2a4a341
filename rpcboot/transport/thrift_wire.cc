#include "rpcboot/transport/thrift_wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <thrift/TApplicationException.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"

namespace rpcboot::internal {

using apache::thrift::transport::TMemoryBuffer;
using Compact = apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer>;
using Binary = apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer>;

namespace {

std::shared_ptr<TMemoryBuffer> Observe(std::string_view bytes) {
  auto config =
      std::make_shared<apache::thrift::TConfiguration>(static_cast<int>(bytes.size()) + 1);
  return std::make_shared<TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(bytes.data())),
      static_cast<uint32_t>(bytes.size()), TMemoryBuffer::OBSERVE, config);
}

}  // namespace

absl::Status ParseThriftHeader(std::string_view frame, ThriftMessageHeader* header) {
  if (frame.empty()) return absl::InvalidArgumentError("empty Thrift frame");
  auto first = static_cast<uint8_t>(frame[0]);
  if (first != 0x82 &&
      !(first == 0x80 && frame.size() > 1 && static_cast<uint8_t>(frame[1]) == 0x01)) {
    return absl::InvalidArgumentError(absl::StrCat("not a Thrift message (first byte 0x",
                                                   absl::Hex(first),
                                                   "; expected 0x82 compact or 0x80 binary)"));
  }
  auto buffer = Observe(frame);
  auto limit = static_cast<int32_t>(frame.size());
  try {
    apache::thrift::protocol::TMessageType type;
    if (first == 0x82) {
      Compact p(buffer, limit, limit);
      p.readMessageBegin(header->name, type, header->seqid);
      header->format = WireFormat::kThriftCompact;
    } else {
      Binary p(buffer, limit, limit, true, true);
      p.readMessageBegin(header->name, type, header->seqid);
      header->format = WireFormat::kThriftBinary;
    }
    header->type = type;
  } catch (const apache::thrift::TException& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad Thrift message header: ", e.what()));
  }
  header->body_offset = frame.size() - buffer->available_read();
  return absl::OkStatus();
}

std::string ThriftMessage(WireFormat format, std::string_view name, int32_t type, int32_t seqid,
                          std::string_view body) {
  auto buffer =
      std::make_shared<TMemoryBuffer>(static_cast<uint32_t>(64 + name.size() + body.size()));
  auto message_type = static_cast<apache::thrift::protocol::TMessageType>(type);
  if (format == WireFormat::kThriftBinary) {
    Binary p(buffer);
    p.writeMessageBegin(std::string(name), message_type, seqid);
  } else {
    Compact p(buffer);
    p.writeMessageBegin(std::string(name), message_type, seqid);
  }
  std::string out = buffer->getBufferAsString();
  out.append(body);
  return out;
}

std::string ThriftApplicationException(WireFormat format, int32_t type, std::string_view message) {
  auto buffer = std::make_shared<TMemoryBuffer>(128);
  apache::thrift::TApplicationException e(
      static_cast<apache::thrift::TApplicationException::TApplicationExceptionType>(type),
      std::string(message));
  if (format == WireFormat::kThriftBinary) {
    Binary p(buffer);
    e.write(&p);
  } else {
    Compact p(buffer);
    e.write(&p);
  }
  return buffer->getBufferAsString();
}

std::pair<int32_t, std::string> ReadThriftApplicationException(WireFormat format,
                                                               std::string_view body) {
  auto buffer = Observe(body);
  auto limit = static_cast<int32_t>(body.size());
  apache::thrift::TApplicationException e;
  try {
    if (format == WireFormat::kThriftBinary) {
      Binary p(buffer, limit, limit, false, true);
      e.read(&p);
    } else {
      Compact p(buffer, limit, limit);
      e.read(&p);
    }
  } catch (const apache::thrift::TException& ex) {
    return {apache::thrift::TApplicationException::UNKNOWN,
            std::string("unreadable exception: ") + ex.what()};
  }
  return {e.getType(), e.what()};
}

bool WaitReadable(int fd, std::chrono::milliseconds timeout, IoError* error) {
  pollfd p{fd, POLLIN, 0};
  while (true) {
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(timeout.count(), 0)));
    if (rc > 0) return true;
    if (rc == 0) {
      *error = IoError::kTimeout;
      return false;
    }
    if (errno != EINTR) {
      *error = IoError::kFailed;
      return false;
    }
  }
}

bool ReadFull(int fd, char* out, std::size_t n, std::chrono::steady_clock::time_point deadline,
              IoError* error) {
  std::size_t done = 0;
  while (done < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!WaitReadable(fd, left, error)) return false;
    ssize_t got = ::recv(fd, out + done, n - done, 0);
    if (got == 0) {
      *error = IoError::kClosed;
      return false;
    }
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *error = IoError::kFailed;
      return false;
    }
    done += static_cast<std::size_t>(got);
  }
  return true;
}

bool WriteFull(int fd, std::string_view data, std::chrono::steady_clock::time_point deadline,
               IoError* error) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
          *error = IoError::kTimeout;
          return false;
        }
        continue;
      }
      *error = errno == EPIPE || errno == ECONNRESET ? IoError::kClosed : IoError::kFailed;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool RecvFull(int fd, char* out, std::size_t n, IoError* error) {
  std::size_t done = 0;
  while (done < n) {
    ssize_t got = ::recv(fd, out + done, n - done, 0);
    if (got > 0) {
      done += static_cast<std::size_t>(got);
      continue;
    }
    if (got == 0) {
      *error = IoError::kClosed;
      return false;
    }
    if (errno == EINTR) continue;
    *error = errno == EAGAIN || errno == EWOULDBLOCK ? IoError::kTimeout
             : errno == ECONNRESET                   ? IoError::kClosed
                                                     : IoError::kFailed;
    return false;
  }
  return true;
}

bool SendFull(int fd, std::string_view data, IoError* error) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    *error = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? IoError::kTimeout
             : n < 0 && (errno == EPIPE || errno == ECONNRESET) ? IoError::kClosed
                                                                : IoError::kFailed;
    return false;
  }
  return true;
}

void SetSocketTimeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  auto ms = std::max<int64_t>(timeout.count(), 1);
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void EncodeFrameLength(uint32_t length, char out[4]) {
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
}

uint32_t DecodeFrameLength(const char in[4]) {
  return (uint32_t{static_cast<uint8_t>(in[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(in[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(in[2])} << 8) | uint32_t{static_cast<uint8_t>(in[3])};
}

}  // namespace rpcboot::internal
