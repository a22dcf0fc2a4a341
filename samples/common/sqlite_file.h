// One SQLite database file as the samples keep their state: opened with a busy timeout and, for a
// file, write-ahead logging; each error names the file and what was being done ("orders/shard-0.db:
// cannot create the tables: file is not a database"). The order store keeps a shard in one, the
// delivery service its fleet.
//
// A SqliteFile is used by one thread at a time (its owner locks around it). OwnerLock keeps a
// store to one process: two processes writing one store would hand out the same ids or couriers.
#ifndef RPCBOOT_SAMPLES_COMMON_SQLITE_FILE_H_
#define RPCBOOT_SAMPLES_COMMON_SQLITE_FILE_H_

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace common {

class SqliteFile {
 public:
  SqliteFile() = default;
  ~SqliteFile();  // finalizes what Prepare made, then closes
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;

  // Opens (or creates) `path`, ":memory:" for none; `name` is what errors call it. `probe_only`:
  // the file must exist and is opened as it is (its journal mode unchanged), to read it before
  // deciding to use it.
  absl::Status Open(const std::string& path, const std::string& name, bool probe_only = false);
  // `sql` as a prepared statement in *st, finalized with this file.
  absl::Status Prepare(sqlite3_stmt** st, const char* sql, const std::string& doing);
  // Each statement's SQL prepared into its place; the first that does not prepare is the error
  // "has tables of another shape" (a file some other program or version wrote).
  struct Statement {
    sqlite3_stmt** st;
    const char* sql;
  };
  absl::Status PrepareAll(std::initializer_list<Statement> statements);
  absl::Status Exec(const char* sql, const std::string& doing);
  // The first column of the first row of `sql`; an error when there is no row.
  absl::StatusOr<int64_t> Single(const char* sql, const std::string& doing = "cannot read");
  // The error of `doing`, with SQLite's reason.
  absl::Status Error(const std::string& doing) const;
  // Ends the transaction in progress without its changes; the error of `doing`.
  absl::Status Abort(const std::string& doing);

  sqlite3* db() const { return db_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;
};

// The text of a column, "" for NULL.
std::string Text(sqlite3_stmt* st, int column);

// A lock file held for the life of the process that owns a store (flock, with the owner's pid
// written in it so that a refusal can name the owner). Movable; released at destruction.
class OwnerLock {
 public:
  // A refusal reads "<what> is in use by another <program> process (pid 12): <rule>".
  static absl::StatusOr<OwnerLock> Take(const std::string& lock_path, const std::string& what,
                                        const std::string& program, const std::string& rule);
  OwnerLock() = default;
  OwnerLock(OwnerLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  OwnerLock& operator=(OwnerLock&& other) noexcept;
  ~OwnerLock();

 private:
  int fd_ = -1;
};

}  // namespace common

#endif  // RPCBOOT_SAMPLES_COMMON_SQLITE_FILE_H_
