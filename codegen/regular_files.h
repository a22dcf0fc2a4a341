// While libclang parses, every file it opens for reading must be a regular file (or a
// directory). Clang reads a device such as /dev/zero until memory runs out and waits forever on
// a named pipe nobody writes, and libclang has no hook for its file reads: codegen defines
// open() itself (regular_files.cc), refuses such a file with EACCES while a RegularFilesOnly
// lives, and remembers it so the error can say what the file is.
//
//   RegularFilesOnly guard;
//   clang_parseTranslationUnit2(...);  // #include "/dev/zero": "cannot open file", at once
//   for (const auto& file : guard.refused()) ...
//
// One at a time per process (codegen parses once). Thread-safe: libclang may parse on a thread
// of its own.
#ifndef RPCBOOT_CODEGEN_REGULAR_FILES_H_
#define RPCBOOT_CODEGEN_REGULAR_FILES_H_

#include <string>
#include <vector>

namespace rpcboot::codegen {

class RegularFilesOnly {
 public:
  struct Refused {
    std::string path;  // as clang spelled it
    std::string kind;  // "a character device", "a named pipe", ...
  };

  RegularFilesOnly();
  ~RegularFilesOnly();
  RegularFilesOnly(const RegularFilesOnly&) = delete;
  RegularFilesOnly& operator=(const RegularFilesOnly&) = delete;

  // The files refused so far, each once, in the order clang asked for them.
  std::vector<Refused> refused() const;
};

}  // namespace rpcboot::codegen

#endif  // RPCBOOT_CODEGEN_REGULAR_FILES_H_
