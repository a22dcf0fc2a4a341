// The C library's fortified open() is an inline wrapper that the definition below would clash with.
#undef _FORTIFY_SOURCE

#include "codegen/regular_files.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>

namespace rpcboot::codegen {
namespace {

using Open = int (*)(const char*, int, ...);

// The C library's open (or a sanitizer's in front of it), past the one defined below; the
// system call itself when there is none.
int OpenNext(const char* path, int flags, mode_t mode) {
  static const Open next = reinterpret_cast<Open>(::dlsym(RTLD_NEXT, "open"));
  if (next == nullptr) return static_cast<int>(::syscall(SYS_openat, AT_FDCWD, path, flags, mode));
  return next(path, flags, mode);
}

const char* KindOf(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::atomic<bool> guarding{false};
std::mutex refused_mu;
// Never destroyed: open() may run on another thread while the process exits.
std::vector<RegularFilesOnly::Refused>& RefusedFiles() {
  static auto* files = new std::vector<RegularFilesOnly::Refused>;
  return *files;
}

// True when `path`, opened with `flags`, is to be refused (and then remembered).
bool Refuse(const char* path, int flags) {
  if (!guarding.load(std::memory_order_acquire) || (flags & O_ACCMODE) != O_RDONLY) return false;
  struct stat st {};
  if (::stat(path, &st) != 0) return false;  // open says why
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return false;
  std::lock_guard<std::mutex> lock(refused_mu);
  auto& files = RefusedFiles();
  if (std::none_of(files.begin(), files.end(),
                   [&](const RegularFilesOnly::Refused& f) { return f.path == path; })) {
    files.push_back({path, KindOf(st.st_mode)});
  }
  return true;
}

}  // namespace

RegularFilesOnly::RegularFilesOnly() {
  {
    std::lock_guard<std::mutex> lock(refused_mu);
    RefusedFiles().clear();
  }
  guarding.store(true, std::memory_order_release);
}

RegularFilesOnly::~RegularFilesOnly() { guarding.store(false, std::memory_order_release); }

std::vector<RegularFilesOnly::Refused> RegularFilesOnly::refused() const {
  std::lock_guard<std::mutex> lock(refused_mu);
  return RefusedFiles();
}

}  // namespace rpcboot::codegen

// Every open() in the process that goes through the dynamic linker, libclang's and LLVM's
// included, comes here first; only reads during a parse are looked at.
extern "C" int open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, int));
    va_end(args);
  }
  if (rpcboot::codegen::Refuse(path, flags)) {
    errno = EACCES;
    return -1;
  }
  return rpcboot::codegen::OpenNext(path, flags, mode);
}
