#include "rpcboot/internal/grpc_compression.h"

#include <zlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rpcboot::internal {
namespace {

const char* CodecName(GrpcCodec codec) {
  switch (codec) {
    case GrpcCodec::kGzip:
      return "gzip";
    case GrpcCodec::kDeflate:
      return "deflate";
    case GrpcCodec::kIdentity:
      break;
  }
  return "identity";
}

// Ends a z_stream however the function that started it returns.
class InflateEnd {
 public:
  explicit InflateEnd(z_stream* zs) : zs_(zs) {}
  ~InflateEnd() { inflateEnd(zs_); }
  InflateEnd(const InflateEnd&) = delete;
  InflateEnd& operator=(const InflateEnd&) = delete;

 private:
  z_stream* zs_;
};

}  // namespace

std::optional<GrpcCodec> GrpcCodecNamed(std::string_view encoding) {
  if (encoding.empty() || encoding == "identity") return GrpcCodec::kIdentity;
  if (encoding == "gzip") return GrpcCodec::kGzip;
  if (encoding == "deflate") return GrpcCodec::kDeflate;
  return std::nullopt;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  for (absl::string_view name :
       absl::StrSplit(absl::string_view(accept_encoding.data(), accept_encoding.size()), ',')) {
    if (absl::StripAsciiWhitespace(name) == "gzip") return true;
  }
  return false;
}

InflateError InflateMessage(GrpcCodec codec, std::string_view in, std::size_t limit,
                            absl::FunctionRef<bool(std::size_t)> grow, std::string_view refused,
                            std::string* out) {
  out->clear();
  z_stream zs{};
  // gzip's header and trailer (window bits + 16), or zlib's.
  if (inflateInit2(&zs, codec == GrpcCodec::kGzip ? 15 + 16 : 15) != Z_OK) {
    return {StatusCode::kResourceExhausted, "rpcboot: no memory to inflate a message"};
  }
  InflateEnd end(&zs);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[32 * 1024];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof chunk;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_MEM_ERROR) {
      return {StatusCode::kResourceExhausted, "rpcboot: no memory to inflate a message"};
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_STREAM_ERROR) {
      return {StatusCode::kInternal,
              absl::StrCat("rpcboot: a message marked ", CodecName(codec), " does not inflate (",
                           zs.msg != nullptr ? zs.msg : "not its format", ")")};
    }
    const std::size_t produced = sizeof chunk - zs.avail_out;
    if (out->size() + produced > limit) {
      return {StatusCode::kResourceExhausted,
              absl::StrCat("rpcboot: a ", in.size(), "-byte ", CodecName(codec),
                           " message inflates past the limit of ", limit,
                           " bytes (max_message_bytes); inflating stopped there")};
    }
    if (produced > 0 && !grow(produced)) {
      return {StatusCode::kResourceExhausted, std::string(refused)};
    }
    out->append(chunk, produced);
    if (rc == Z_BUF_ERROR) {
      return {StatusCode::kInternal, absl::StrCat("rpcboot: a message marked ", CodecName(codec),
                                                  " ends before its compressed stream does")};
    }
  }
  if (zs.avail_in != 0) {
    return {StatusCode::kInternal,
            absl::StrCat("rpcboot: a message marked ", CodecName(codec), " has ", zs.avail_in,
                         " bytes after the end of its compressed stream")};
  }
  return {};
}

std::optional<std::string> GzipMessage(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const std::size_t size = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END || size >= in.size()) return std::nullopt;
  out.resize(size);
  return out;
}

}  // namespace rpcboot::internal
