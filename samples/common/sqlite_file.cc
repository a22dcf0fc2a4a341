#include "common/sqlite_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace common {

SqliteFile::~SqliteFile() {
  for (sqlite3_stmt* st : statements_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

absl::Status SqliteFile::Open(const std::string& path, const std::string& name, bool probe_only) {
  name_ = name;
  int flags = SQLITE_OPEN_READWRITE | (probe_only ? 0 : SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) return Error("cannot open");
  sqlite3_busy_timeout(db_, 2000);
  if (probe_only) return absl::OkStatus();
  // WAL: a reader never waits for the writer; NORMAL: a commit survives a process crash (an OS
  // crash may lose the last ones).
  if (path != ":memory:") {
    return Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "is not an SQLite database it can use");
  }
  return absl::OkStatus();
}

absl::Status SqliteFile::Prepare(sqlite3_stmt** st, const char* sql, const std::string& doing) {
  if (sqlite3_prepare_v2(db_, sql, -1, st, nullptr) != SQLITE_OK) return Error(doing);
  statements_.push_back(*st);
  return absl::OkStatus();
}

absl::Status SqliteFile::PrepareAll(std::initializer_list<Statement> statements) {
  for (const Statement& s : statements) {
    if (absl::Status status = Prepare(s.st, s.sql, "has tables of another shape"); !status.ok())
      return status;
  }
  return absl::OkStatus();
}

absl::Status SqliteFile::Exec(const char* sql, const std::string& doing) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(doing);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteFile::Single(const char* sql, const std::string& doing) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) return Error(doing);
  int64_t value = 0;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) value = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return Error(doing);
  return value;
}

absl::Status SqliteFile::Error(const std::string& doing) const {
  return absl::InternalError(absl::StrCat(name_, ": ", doing, ": ",
                                          db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory"));
}

absl::Status SqliteFile::Abort(const std::string& doing) {
  absl::Status s = Error(doing);
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return s;
}

std::string Text(sqlite3_stmt* st, int column) {
  const unsigned char* text = sqlite3_column_text(st, column);
  return text != nullptr ? reinterpret_cast<const char*>(text) : "";
}

absl::StatusOr<OwnerLock> OwnerLock::Take(const std::string& lock_path, const std::string& what,
                                          const std::string& program, const std::string& rule) {
  OwnerLock lock;
  lock.fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock.fd_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(lock_path, " cannot be opened: ", std::strerror(errno)));
  }
  if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    ssize_t n = ::pread(lock.fd_, pid, sizeof(pid) - 1, 0);
    std::string owner = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : "unknown";
    while (!owner.empty() && owner.back() == '\n') owner.pop_back();
    return absl::FailedPreconditionError(absl::StrCat(what, " is in use by another ", program,
                                                      " process (pid ", owner, "): ", rule));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.fd_, 0) != 0 || ::pwrite(lock.fd_, pid.data(), pid.size(), 0) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(lock_path, " cannot be written: ", std::strerror(errno)));
  }
  return lock;
}

OwnerLock& OwnerLock::operator=(OwnerLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

OwnerLock::~OwnerLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace common
