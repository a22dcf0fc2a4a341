#include "discovery/resolver.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/internal/read_file.h"
#include "rpcboot/base/log.h"

namespace rpcboot::discovery {

using internal::Log;

namespace {
// The snapshot of a changed list is written this long after the previous write at most.
constexpr auto kSnapshotEvery = std::chrono::seconds(1);
// With no answer from ZooKeeper this long and no list ever read, the snapshot is served.
constexpr auto kSnapshotAfter = std::chrono::seconds(1);
constexpr char kSnapshotHeader[] = "rpcboot-registry-snapshot 1";
// A snapshot is read up to this size (100,000 instances take about 30 MiB).
constexpr std::size_t kMaxSnapshotBytes = 256 << 20;

// Lets go of `session` on a thread of its own: the session's destructor joins its event thread,
// which cannot join itself (a resolver let go of inside one of the session's callbacks).
void ReleaseOffThisThread(std::shared_ptr<Session> session) {
  auto* holder = new std::shared_ptr<Session>(std::move(session));
  try {
    std::thread([holder] { delete holder; }).detach();
  } catch (const std::system_error& e) {
    // No thread to spare: the session stays open (and its memory held) rather than the process
    // ending.
    Log(LogLevel::kError, absl::StrCat("registry: cannot start a thread to close a ZooKeeper "
                                       "session (",
                                       e.what(), "); it stays open"));
  }
}

int64_t WallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Resolver::Resolver(std::shared_ptr<Session> session, std::string base_path)
    : session_(std::move(session)), base_path_(base_path == "/" ? "" : std::move(base_path)) {
  session_->AddObserver(this);
}

Resolver::~Resolver() {
  // The session's callbacks first (RemoveObserver waits for one in progress: OnTick asks the
  // stream), then the stream's thread (it calls OnStreamUpdate).
  session_->RemoveObserver(this);
  streaming_ = false;
  stream_.reset();
  if (session_->OnEventThread()) ReleaseOffThisThread(std::move(session_));
}

Resolver::Notifier::~Notifier() {
  for (auto& [listeners, list] : pending) {
    for (auto& [id, listener] : listeners) listener(list);
  }
}

void Resolver::SetRecursiveWatch(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  recursive_ = on;
}

bool Resolver::Streaming() {
  if (!streaming_.load()) return false;
  if (stream_->state() != WatchStream::State::kUnsupported) return true;
  bool was = true;
  if (streaming_.compare_exchange_strong(was, false)) {
    Log(LogLevel::kWarning,
        absl::StrCat("registry: ZooKeeper ", session_->options().connect,
                     " does not support persistent recursive watches (3.6+); using child "
                     "watches (registry.recursive_watch)"));
  }
  return false;
}

std::chrono::steady_clock::duration Resolver::DisconnectedFor() const {
  if (streaming_.load()) return stream_->disconnected_for();
  return session_->disconnected_for();
}

std::string Resolver::ServicePath(const std::string& name) const {
  return absl::StrCat(base_path_, "/", name);
}

int Resolver::Watch(const std::string& name, Listener listener) {
  Notifier notifier;
  int id;
  bool load;
  bool start_stream = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    Watched& w = watched_[name];
    if (w.list == nullptr) w.list = std::make_shared<const InstanceView>();
    load = !w.loaded;
    if (recursive_ && stream_ == nullptr) {
      stream_ = std::make_unique<WatchStream>(
          session_->options(), [this](const std::string& root, WatchStream::Update update) {
            OnStreamUpdate(root, std::move(update));
          });
      streaming_ = true;
      start_stream = true;
    }
  }
  if (start_stream) stream_->Start();
  if (load && Streaming()) {
    // As a read through the session would, wait for the first list while ZooKeeper answers:
    // until it is read, the connection fails, or the server turns out not to support the
    // watches (then read through the session below).
    const int failures = stream_->failures();
    stream_->Add(ServicePath(name));
    const auto deadline = std::chrono::steady_clock::now() + session_->options().session_timeout;
    std::unique_lock<std::mutex> lock(mu_);
    while (!watched_[name].loaded && std::chrono::steady_clock::now() < deadline &&
           stream_->failures() == failures &&
           stream_->state() != WatchStream::State::kUnsupported) {
      loaded_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    load = !watched_[name].loaded && stream_->state() == WatchStream::State::kUnsupported;
  }
  if (load && !Streaming()) Refresh(name, {}, true, &notifier);
  InstanceList current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Watched& w = watched_[name];
    w.listeners.emplace(id, listener);
    // Not read yet (ZooKeeper unreachable): the listener hears the first list when it comes.
    if (w.loaded) current = w.list;
  }
  if (current != nullptr) listener(current);
  return id;
}

void Resolver::Unwatch(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, w] : watched_) w.listeners.erase(id);
}

InstanceList Resolver::Current(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(name);
  if (it == watched_.end()) return std::make_shared<const InstanceView>();
  return it->second.list;
}

void Resolver::Refresh(const std::string& name, const std::set<std::string>& reread, bool all,
                       Notifier* notifier) {
  // Counted from before it waits for the one running: Reading() is true from the moment a
  // change is known until its read is done.
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++watched_[name].refreshes;
  }
  struct Done {
    Resolver* self;
    const std::string& name;
    ~Done() {
      std::lock_guard<std::mutex> lock(self->mu_);
      --self->watched_[name].refreshes;
    }
  } done{this, name};
  std::lock_guard<std::mutex> refresh_lock(refresh_mu_);
  const std::string path = ServicePath(name);
  auto fail = [&](const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    watched_[name].reading = 0;
    watched_[name].error = std::string(s.message());
    // Before the first answer there is nothing to keep: the session's connection will refresh.
    if (stale_.insert(name).second && watched_[name].loaded) {
      Log(LogLevel::kWarning,
          absl::StrCat("registry: cannot read ", path, " (", s.message(), "); keeping the last ",
                       watched_[name].list ? watched_[name].list->size() : 0,
                       " instance(s) and retrying"));
    }
  };
  absl::StatusOr<std::vector<std::string>> names = session_->Children(path, /*watch=*/true);
  // No instance has ever registered (or the container was cleaned up): watch for creation. A
  // node created between the two calls is listed again (a few times at most: it would have to
  // be deleted and created again in between each time).
  for (int retry = 0; absl::IsNotFound(names.status()) && retry < 5; ++retry) {
    absl::StatusOr<bool> exists = session_->Exists(path, /*watch=*/true);
    if (!exists.ok()) return fail(exists.status());
    if (!*exists) break;
    names = session_->Children(path, /*watch=*/true);
  }
  std::vector<std::string> listed;  // none when the application's node does not exist
  if (names.ok()) {
    listed = std::move(*names);
  } else if (!absl::IsNotFound(names.status())) {
    return fail(names.status());
  }

  // What changed, against what is known, looked up in place (only a refresh changes `children`
  // here, one at a time): nodes gone from the listing, and nodes to read (new ones, the ones
  // events named, or all), each with the version known of it.
  struct ToRead {
    std::string node;
    std::optional<Entry> known;  // as read before, if it was
  };
  std::vector<ToRead> to_read;
  std::vector<std::string> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Children& children = watched_[name].children;
    std::size_t listed_known = 0;
    for (const std::string& node : listed) {
      auto it = children.find(node);
      if (it != children.end()) ++listed_known;
      if (it == children.end() || all || reread.count(node) != 0) {
        to_read.push_back(
            {node, it == children.end() ? std::nullopt : std::optional<Entry>(it->second)});
      }
    }
    if (listed_known < children.size()) {  // some known node is no longer listed
      std::unordered_set<std::string_view> now(listed.begin(), listed.end());
      for (const auto& [node, entry] : children) {
        if (now.count(node) == 0) gone.push_back(node);
      }
    }
    watched_[name].reading = to_read.size();
  }
  // Read together, pipelined, and parsed outside the lock (a first listing parses thousands).
  std::vector<std::string> paths;
  paths.reserve(to_read.size());
  for (const ToRead& r : to_read) paths.push_back(path + "/" + r.node);
  std::vector<absl::StatusOr<Session::Node>> read = session_->GetMany(paths, /*watch=*/true);
  std::vector<std::pair<std::string, std::optional<Entry>>> changes;  // nullopt: gone
  for (const std::string& node : gone) changes.emplace_back(node, std::nullopt);
  for (std::size_t i = 0; i < to_read.size(); ++i) {
    const std::optional<Entry>& known = to_read[i].known;
    absl::StatusOr<Session::Node>& data = read[i];
    if (absl::IsNotFound(data.status())) {  // gone since the listing
      if (known.has_value()) changes.emplace_back(to_read[i].node, std::nullopt);
    } else if (absl::IsPermissionDenied(data.status())) {
      // A node this client may not read (its ACL) is not an instance to call, and must not hold
      // up the others. Logged once: not again while the node stays unreadable (version 0).
      if (!known.has_value() || known->mzxid != 0) {
        Log(LogLevel::kWarning,
            absl::StrCat("registry: skipping ", paths[i], ": ", data.status().message()));
        changes.emplace_back(to_read[i].node, Entry{nullptr, 0});
      }
    } else if (!data.ok()) {
      return fail(data.status());
    } else if (!known.has_value() || known->mzxid != data->mzxid) {  // else unchanged
      changes.emplace_back(to_read[i].node,
                           ParseEntry(data->data, data->mzxid, path, to_read[i].node,
                                      !known.has_value() || known->instance != nullptr));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stale_.erase(name);
    Watched& w = watched_[name];
    w.reading = 0;
    w.error.clear();
    // The first list (or the first after a snapshot), or a change to much of it, is sorted
    // anew; a few changes are inserted and erased where they belong.
    const bool rebuild = !w.loaded || w.from_snapshot || changes.size() > w.children.size() / 4;
    const bool changed = !w.loaded || w.from_snapshot || !changes.empty();
    for (auto& [node, entry] : changes) {
      auto it = w.children.find(node);
      if (it != w.children.end()) {
        if (!rebuild) RemoveUp(w, it->second);
        w.children.erase(it);
      }
      if (entry.has_value()) {
        if (!rebuild) AddUp(w, *entry);
        w.children.emplace(node, std::move(*entry));
      }
    }
    w.loaded = true;
    if (!changed) return;
    if (rebuild) RebuildUp(w);
    notifier->pending.emplace_back(PublishLocked(name, w), w.list);
  }
}

Resolver::Entry Resolver::ParseEntry(std::string_view data, int64_t mzxid, std::string_view parent,
                                     std::string_view node, bool log) {
  Entry entry{nullptr, mzxid};
  absl::StatusOr<Instance> instance = ParseInstance(data);
  if (instance.ok()) {
    entry.instance = std::make_shared<const Instance>(std::move(*instance));
    entry.up = entry.instance->IsUp();
  } else if (log) {
    Log(LogLevel::kWarning, absl::StrCat("registry: skipping ", std::string(parent), "/",
                                         std::string(node), ": ", instance.status().message()));
  }
  return entry;
}

bool Resolver::SameVersions(const Children& a, const Children& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [node, entry] : a) {
    auto it = b.find(node);
    if (it == b.end() || it->second.mzxid != entry.mzxid) return false;
  }
  return true;
}

void Resolver::RebuildUp(Watched& w) {
  InstanceView::Items up;
  up.reserve(w.children.size());
  for (const auto& [node, entry] : w.children) {
    if (entry.up) up.push_back(entry.instance);
  }
  w.up.Assign(std::move(up));
}

void Resolver::RemoveUp(Watched& w, const Entry& entry) {
  // Equal ids (two nodes claiming one id) sit together: this removes this node's own instance.
  if (entry.up) w.up.Erase(entry.instance);
}

void Resolver::AddUp(Watched& w, const Entry& entry) {
  if (entry.up) w.up.Insert(entry.instance);
}

std::map<int, Resolver::Listener> Resolver::PublishLocked(const std::string& name, Watched& w) {
  if (w.from_snapshot) {
    Log(LogLevel::kInfo, absl::StrCat("registry: ", ServicePath(name),
                                      " read from ZooKeeper; the snapshot is no longer used"));
    w.from_snapshot = false;
  }
  w.snapshot_dirty = !snapshot_dir_.empty();
  // Shares the instances, and the chunks that did not change, with the previous list.
  w.list = w.up.Publish();
  return w.listeners;
}

void Resolver::OnStreamUpdate(const std::string& root, WatchStream::Update update) {
  if (root.size() <= base_path_.size() + 1) return;
  const std::string name = root.substr(base_path_.size() + 1);
  // Versions compared under the lock, data parsed outside it (a first list parses thousands),
  // the result installed under it again. Only this thread changes `children` while streaming.
  // entries[i] is what update.changes[i] makes of its node (nullopt: gone); the node names move
  // from the update into the table.
  std::vector<std::optional<Entry>> entries(update.changes.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    Watched& w = watched_[name];
    for (std::size_t i = 0; i < update.changes.size(); ++i) {
      const WatchStream::Change& change = update.changes[i];
      if (!w.loaded || change.kind != WatchStream::Change::kPresent) continue;
      auto old = w.children.find(change.node);
      if (old != w.children.end() && old->second.mzxid == change.mzxid) {
        entries[i] = old->second;  // the same version, read before: not parsed again
      }
    }
  }
  for (std::size_t i = 0; i < update.changes.size(); ++i) {
    const WatchStream::Change& change = update.changes[i];
    if (change.kind == WatchStream::Change::kUnreadable) {
      Log(LogLevel::kWarning, absl::StrCat("registry: skipping ", root, "/", change.node,
                                           ": not authorized to read it"));
      entries[i] = Entry{nullptr, 0};
    } else if (change.kind == WatchStream::Change::kPresent && !entries[i].has_value()) {
      entries[i] = ParseEntry(change.data, change.mzxid, root, change.node, true);
    }
  }
  std::map<int, Listener> listeners;
  InstanceList published;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Watched& w = watched_[name];
    bool changed = !w.loaded || w.from_snapshot;
    if (update.full) {
      Children children;
      children.reserve(entries.size());
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].has_value()) {
          children.emplace(std::move(update.changes[i].node), std::move(*entries[i]));
        }
      }
      changed = changed || !SameVersions(w.children, children);
      w.children = std::move(children);
      if (changed) RebuildUp(w);
    } else {
      // One change at a time: the UP list is kept sorted by inserting and erasing, not rebuilt.
      for (std::size_t i = 0; i < entries.size(); ++i) {
        std::string& node = update.changes[i].node;
        std::optional<Entry>& entry = entries[i];
        if (!entry.has_value()) {
          auto it = w.children.find(node);
          if (it == w.children.end()) continue;
          RemoveUp(w, it->second);
          w.children.erase(it);
          changed = true;
          continue;
        }
        // One lookup for a new node (the common change: an instance joining): the name moves
        // into the table only when it is new.
        auto [it, added] = w.children.try_emplace(std::move(node));
        if (added) {
          AddUp(w, *entry);
          it->second = std::move(*entry);
        } else if (it->second.mzxid != entry->mzxid || entry->mzxid == 0) {
          RemoveUp(w, it->second);
          AddUp(w, *entry);
          it->second = std::move(*entry);
        } else {
          continue;
        }
        changed = true;
      }
    }
    w.loaded = true;
    w.error.clear();
    if (changed) {
      listeners = PublishLocked(name, w);
      published = w.list;
    }
  }
  loaded_cv_.notify_all();
  for (auto& [id, listener] : listeners) listener(published);
}

std::size_t Resolver::ListedNodes(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(name);
  return it == watched_.end() ? 0 : it->second.children.size();
}

bool Resolver::Reading(const std::string& name) const {
  // While ZooKeeper cannot be reached a read waits for the connection, not for an answer: a
  // caller is better told at once.
  if (streaming_.load()) return stream_->Reading(ServicePath(name));
  if (session_->disconnected_for() > std::chrono::steady_clock::duration::zero()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(name);
  return it != watched_.end() && (it->second.refreshes > 0 || it->second.reading > 0);
}

std::string Resolver::Describe(const std::string& name) const {
  const std::string path = ServicePath(name);
  auto down = DisconnectedFor();
  const bool streaming = streaming_.load();
  const std::size_t stream_reads = streaming ? stream_->PendingReads(path) : 0;
  const std::string stream_error = streaming ? stream_->last_error() : "";
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(name);
  if (it == watched_.end()) return absl::StrCat(path, " is not watched");
  const Watched& w = it->second;
  if (w.reading > 0 || (streaming && down == down.zero() && stream_reads > 0)) {
    if (streaming && !w.loaded && stream_reads <= 1) {
      return absl::StrCat("still listing the instances of ", path);
    }
    return absl::StrCat("still reading ", streaming ? stream_reads : w.reading,
                        " instance node(s) of ", path);
  }
  if (down > std::chrono::steady_clock::duration::zero()) {
    const std::string& error = streaming ? stream_error : w.error;
    return absl::StrCat("ZooKeeper ", session_->options().connect, " not reachable for ",
                        std::chrono::duration_cast<std::chrono::milliseconds>(down).count(), " ms",
                        w.loaded ? "" : " (no list read yet)",
                        error.empty() ? "" : "; last error: ", error);
  }
  if (!w.error.empty()) return absl::StrCat("cannot read ", path, ": ", w.error);
  if (!w.loaded) return absl::StrCat(path, " not read yet");
  std::size_t parsed = 0;
  for (const auto& [node, entry] : w.children) parsed += entry.instance != nullptr ? 1 : 0;
  return absl::StrCat(path, " lists ", w.children.size(), " node(s), ", parsed,
                      " readable instance(s), ", w.list ? w.list->size() : 0, " UP");
}

void Resolver::OnConnected(bool new_session) {
  Notifier notifier;        // first: the listeners run last, and may let go of this resolver
  if (Streaming()) return;  // the stream reads everything again on its own connection
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, w] : watched_) names.push_back(name);
  }
  // A new session has none of the old watches: read everything again. A reconnect keeps them,
  // but children may have changed while the connection was down.
  for (const std::string& name : names) Refresh(name, {}, new_session, &notifier);
}

void Resolver::OnNodeEvent(NodeEvent, const std::string& path) {
  if (Streaming()) return;
  std::string name;
  std::string child;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [n, w] : watched_) {
      std::string service = ServicePath(n);
      if (path == service) {
        name = n;
      } else if (path.size() > service.size() + 1 &&
                 path.compare(0, service.size(), service) == 0 && path[service.size()] == '/') {
        name = n;
        child = path.substr(service.size() + 1);
      }
    }
  }
  if (name.empty()) return;
  // Served once for the whole batch of events (OnEventsDone): a rolling restart of a large
  // application delivers hundreds of events at once, and each re-list reads every child name.
  // A child's own event (its data changed, or it was deleted) re-reads that child; the list
  // is read again in any case (a deletion also fires the parent's child watch).
  std::set<std::string>& reread = pending_[name];
  if (!child.empty()) reread.insert(child);
}

void Resolver::OnEventsDone() {
  Notifier notifier;  // first: the listeners run last, and may let go of this resolver
  std::map<std::string, std::set<std::string>> pending;
  pending.swap(pending_);
  for (const auto& [name, reread] : pending) Refresh(name, reread, false, &notifier);
}

void Resolver::SetSnapshotDir(std::string dir) {
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_dir_ = std::move(dir);
}

std::string Resolver::SnapshotFile(const std::string& name) const {
  // One file per registry path: "/services/shop" -> "services.shop.snapshot".
  std::string path = ServicePath(name);
  std::string file;
  for (char c : path.substr(1)) file += c == '/' ? '.' : c;
  return absl::StrCat(snapshot_dir_, "/", file, ".snapshot");
}

void Resolver::WriteSnapshot(const std::string& name, const InstanceList& list) const {
  // Header line, then one instance (its registry JSON, one line) per line; written to a
  // temporary file and renamed over the old one, so a reader sees one or the other, whole.
  std::string text =
      absl::StrCat(kSnapshotHeader, " ", ServicePath(name), " ", WallSeconds(), "\n");
  for (const Instance& instance : *list) absl::StrAppend(&text, ToJson(instance), "\n");
  const std::string file = SnapshotFile(name);
  const std::string temp = absl::StrCat(file, ".tmp.", ::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  for (std::size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  ok = ok && ::rename(temp.c_str(), file.c_str()) == 0;
  if (!ok) {
    Log(LogLevel::kWarning, absl::StrCat("registry: cannot write the snapshot ", file, ": ",
                                         std::strerror(errno), " (registry.snapshot_dir)"));
    ::unlink(temp.c_str());
  }
}

std::optional<std::pair<std::vector<Instance>, std::chrono::seconds>> Resolver::ReadSnapshot(
    const std::string& name) const {
  const std::string file = SnapshotFile(name);
  std::string content;
  internal::ReadFileResult read = internal::ReadFileUpTo(file, kMaxSnapshotBytes, &content);
  if (read == internal::ReadFileResult::kCannotRead) return std::nullopt;  // none yet
  if (read != internal::ReadFileResult::kOk) {
    Log(LogLevel::kWarning, absl::StrCat("registry: ignoring the snapshot ", file, ": it ",
                                         internal::ReadFileProblem(read, kMaxSnapshotBytes)));
    return std::nullopt;
  }
  std::istringstream in(content);
  std::string header;
  std::getline(in, header);
  std::istringstream fields(header);
  std::string magic, version, path;
  int64_t written = 0;
  fields >> magic >> version >> path >> written;
  if (absl::StrCat(magic, " ", version) != kSnapshotHeader || path != ServicePath(name) ||
      !fields) {
    Log(LogLevel::kWarning, absl::StrCat("registry: ignoring the snapshot ", file,
                                         ": not a snapshot of ", ServicePath(name)));
    return std::nullopt;
  }
  std::vector<Instance> list;
  std::string line;
  int bad = 0;
  while (std::getline(in, line)) {
    absl::StatusOr<Instance> instance = ParseInstance(line);
    if (!instance.ok()) {
      ++bad;
      continue;
    }
    if (instance->IsUp()) list.push_back(std::move(*instance));
  }
  if (bad > 0) {
    Log(LogLevel::kWarning, absl::StrCat("registry: the snapshot ", file, " has ", bad,
                                         " unreadable line(s); skipped"));
  }
  std::sort(list.begin(), list.end(),
            [](const Instance& a, const Instance& b) { return a.id < b.id; });
  return std::make_pair(std::move(list),
                        std::chrono::seconds(std::max<int64_t>(0, WallSeconds() - written)));
}

void Resolver::SnapshotTick(Notifier* notifier) {
  const auto now = std::chrono::steady_clock::now();
  const bool unreachable = DisconnectedFor() >= kSnapshotAfter;
  std::vector<std::pair<std::string, InstanceList>> to_write;
  std::vector<std::string> to_read;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (snapshot_dir_.empty()) return;
    for (auto& [name, w] : watched_) {
      if (w.snapshot_dirty && now - w.snapshot_written >= kSnapshotEvery) {
        to_write.emplace_back(name, w.list);
        w.snapshot_dirty = false;
        w.snapshot_written = now;
      }
      if (!w.loaded && !w.snapshot_tried && unreachable) {
        w.snapshot_tried = true;
        to_read.push_back(name);
      }
    }
  }
  for (const auto& [name, list] : to_write) WriteSnapshot(name, list);
  for (const std::string& name : to_read) {
    auto snapshot = ReadSnapshot(name);
    if (!snapshot.has_value()) continue;
    InstanceList published;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Watched& w = watched_[name];
      if (w.loaded) continue;  // ZooKeeper answered meanwhile: the live list wins
      w.list = std::make_shared<const InstanceView>(std::move(snapshot->first));
      w.loaded = true;
      w.from_snapshot = true;
      published = w.list;
      notifier->pending.emplace_back(w.listeners, w.list);
    }
    Log(LogLevel::kWarning,
        absl::StrCat("registry: ZooKeeper ", session_->options().connect,
                     " not reachable; serving ", ServicePath(name), " from the snapshot ",
                     SnapshotFile(name), " written ", snapshot->second.count(), " s ago (",
                     published->size(), " instance(s)) until it answers"));
  }
}

void Resolver::OnTick() {
  Notifier notifier;  // first: the listeners run last, and may let go of this resolver
  SnapshotTick(&notifier);
  const bool was_streaming = streaming_.load();
  if (Streaming()) return;
  std::set<std::string> stale;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stale = stale_;
    // The stream found the server without addWatch: every application is read (and watched)
    // through the session from now on.
    if (was_streaming) {
      for (const auto& [name, w] : watched_) stale.insert(name);
    }
  }
  if (stale.empty() || !session_->connected()) return;
  for (const std::string& name : stale) Refresh(name, {}, true, &notifier);
}

}  // namespace rpcboot::discovery
