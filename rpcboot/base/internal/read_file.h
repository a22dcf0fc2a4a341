// Reading a file named from outside (a config file, a certificate, a token file, a schema) with a
// bound, so a name given by mistake (/dev/zero, a log, a device) is an error instead of a process
// that reads until memory runs out.
#ifndef RPCBOOT_BASE_INTERNAL_READ_FILE_H_
#define RPCBOOT_BASE_INTERNAL_READ_FILE_H_

#include <cstddef>
#include <string>

namespace rpcboot::internal {

enum class ReadFileResult {
  kOk,
  kCannotRead,   // missing, not permitted, or an I/O error
  kIsDirectory,  // a directory where a file was meant
  kTooLarge,     // more than the bound: *out is left empty
};

// The whole of `path` into *out, when it holds at most `max_bytes`.
ReadFileResult ReadFileUpTo(const std::string& path, std::size_t max_bytes, std::string* out);

// "" for kOk, else what follows the file's name in an error: "cannot be read", "is a directory,
// not a file", "is larger than 4 MiB" (the bound in MiB, or in KiB below one MiB).
std::string ReadFileProblem(ReadFileResult result, std::size_t max_bytes);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_BASE_INTERNAL_READ_FILE_H_
