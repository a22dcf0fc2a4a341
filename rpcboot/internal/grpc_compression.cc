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

// zlib's state for one thread, made once and reset for each message: making it costs more than
// compressing a small message (about 270 KiB of tables for deflate, fresh pages each time).
class Inflater {
 public:
  Inflater() { ready_ = inflateInit2(&zs_, 15 + 16) == Z_OK; }
  ~Inflater() {
    if (ready_) inflateEnd(&zs_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  // The stream, reset for a message in gzip's format (window bits + 16) or zlib's; null when zlib
  // has no memory for it.
  z_stream* For(GrpcCodec codec) {
    if (!ready_) ready_ = inflateInit2(&zs_, 15 + 16) == Z_OK;
    if (!ready_ || inflateReset2(&zs_, codec == GrpcCodec::kGzip ? 15 + 16 : 15) != Z_OK) {
      return nullptr;
    }
    return &zs_;
  }

 private:
  z_stream zs_{};
  bool ready_ = false;
};

class Deflater {
 public:
  // `window_bits`: 15 + 16 for gzip's format, 15 for zlib's.
  explicit Deflater(int window_bits) : window_bits_(window_bits) { Init(); }
  ~Deflater() {
    if (ready_) deflateEnd(&zs_);
  }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  // The stream, reset for a message at level 1; null when zlib has no memory for it.
  z_stream* Get() {
    if (!ready_) Init();
    if (!ready_ || deflateReset(&zs_) != Z_OK) return nullptr;
    return &zs_;
  }

 private:
  void Init() {
    ready_ = deflateInit2(&zs_, 1, Z_DEFLATED, window_bits_, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  const int window_bits_;
  z_stream zs_{};
  bool ready_ = false;
};

// `in` compressed whole by `deflater`'s stream; nullopt when zlib has no memory.
std::optional<std::string> Compress(Deflater& deflater, std::string_view in) {
  z_stream* stream = deflater.Get();
  if (stream == nullptr) return std::nullopt;
  z_stream& zs = *stream;
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) return std::nullopt;
  out.resize(zs.total_out);
  return out;
}

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
  thread_local Inflater inflater;
  z_stream* stream = inflater.For(codec);
  if (stream == nullptr) {
    return {StatusCode::kResourceExhausted, "rpcboot: no memory to inflate a message"};
  }
  z_stream& zs = *stream;
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
  thread_local Deflater deflater(15 + 16);
  std::optional<std::string> out = Compress(deflater, in);
  if (out && out->size() >= in.size()) return std::nullopt;
  return out;
}

std::optional<std::string> ZlibMessage(std::string_view in) {
  thread_local Deflater deflater(15);
  return Compress(deflater, in);
}

}  // namespace rpcboot::internal
