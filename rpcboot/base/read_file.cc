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
  // One byte past the bound tells "exactly at the bound" from "over it". The buffer starts at a
  // regular file's size (a device's or a pipe's is unknown) and grows with what arrives.
  const std::size_t limit = max_bytes + 1;
  std::size_t first = S_ISREG(info.st_mode) ? static_cast<std::size_t>(info.st_size) + 1 : 0;
  out->resize(std::min(limit, std::max<std::size_t>(first, 4096)));
  std::size_t got = 0;
  ReadFileResult result = ReadFileResult::kOk;
  for (;;) {
    if (got == out->size()) {
      if (got == limit) break;
      out->resize(std::min(limit, got * 2));
    }
    ssize_t n = ::read(fd, out->data() + got, out->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = ReadFileResult::kCannotRead;
      break;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (result == ReadFileResult::kOk && got > max_bytes) result = ReadFileResult::kTooLarge;
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
