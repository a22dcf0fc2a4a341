#include "rpcboot/base/internal/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace rpcboot::internal {

ReadFileResult ReadFileUpTo(const std::string& path, std::size_t max_bytes, std::string* out) {
  out->clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ReadFileResult::kCannotRead;
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    return ReadFileResult::kIsDirectory;
  }
  // Grows with what arrives, up to one byte past the bound (which tells "exactly at the bound"
  // from "over it"); a regular file's size only sizes the first allocation.
  std::size_t want = max_bytes + 1;
  if (S_ISREG(info.st_mode) && static_cast<std::size_t>(info.st_size) < want)
    want = static_cast<std::size_t>(info.st_size) + 1;
  out->resize(want < 4096 ? 4096 : want);
  std::size_t got = 0;
  ReadFileResult result = ReadFileResult::kOk;
  for (;;) {
    if (got == out->size()) {
      if (got > max_bytes) {
        result = ReadFileResult::kTooLarge;
        break;
      }
      out->resize(std::min(max_bytes + 1, got * 2));
    }
    ssize_t n = ::read(fd, out->data() + got, std::min(out->size(), max_bytes + 1) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = ReadFileResult::kCannotRead;
      break;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got > max_bytes) {
      result = ReadFileResult::kTooLarge;
      break;
    }
  }
  ::close(fd);
  if (result != ReadFileResult::kOk) {
    out->clear();
    out->shrink_to_fit();
    return result;
  }
  out->resize(got);
  return result;
}

std::string ReadFileProblem(ReadFileResult result, std::size_t max_bytes) {
  switch (result) {
    case ReadFileResult::kOk:
      return "";
    case ReadFileResult::kCannotRead:
      return "cannot be read";
    case ReadFileResult::kIsDirectory:
      return "is a directory, not a file";
    case ReadFileResult::kTooLarge:
      break;
  }
  if (max_bytes >= (std::size_t{1} << 20))
    return "is larger than " + std::to_string(max_bytes >> 20) + " MiB";
  return "is larger than " + std::to_string(max_bytes >> 10) + " KiB";
}

}  // namespace rpcboot::internal
