// A watched, cached view of the instances registered under <base>/<name>, for each name asked
// for: what clients pick from without a ZooKeeper round trip per call.
//
//   rpcboot::discovery::Resolver resolver(session, "/services");
//   int id = resolver.Watch("shop", [](InstanceList list) { ... });  // now, then on changes
//   InstanceList now = resolver.Current("shop");
//   resolver.Unwatch(id);
//
// Tolerant as contract 5 asks: a node whose data does not parse is logged once and skipped, an
// instance whose instance_status is not UP is left out, and while ZooKeeper is unreachable the
// last known list stays. Watches are one-shot in ZooKeeper; the resolver re-arms them after each
// event and re-reads everything after a new session.
//
// Thread-safe. Listeners run on the session's event thread: they must be quick and must not
// call Watch or Unwatch. Shares ownership of the session (it keeps it alive) and observes it
// until destroyed.
#ifndef RPCBOOT_DISCOVERY_RESOLVER_H_
#define RPCBOOT_DISCOVERY_RESOLVER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "discovery/instance.h"
#include "discovery/session.h"
#include "discovery/watch_stream.h"

namespace rpcboot::discovery {

// An immutable snapshot, sorted by id; the instances in it are shared with other snapshots.
using InstanceList = std::shared_ptr<const InstanceView>;

class Resolver final : private Session::Observer {
 public:
  using Listener = std::function<void(const InstanceList&)>;

  Resolver(std::shared_ptr<Session> session, std::string base_path);
  ~Resolver() override;
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts watching `name` (if not yet) and calls `listener` with the current list (when
  // ZooKeeper has answered; else with the first list it gives), then after every change.
  // Listeners run on the resolver's threads (and Watch's caller); one may let go of the resolver's
  // last owner (and of the session's). Returns an id for Unwatch.
  int Watch(const std::string& name, Listener listener);
  void Unwatch(int id);
  // The current list of `name`; empty when not watched.
  InstanceList Current(const std::string& name) const;
  // How many child nodes the registry lists for `name` (instances or not, readable or not).
  std::size_t ListedNodes(const std::string& name) const;
  // Whether a read of `name` is in progress (a change being read, or the first list) on a
  // connected session: a caller that finds no instance may wait for it.
  bool Reading(const std::string& name) const;
  // Keeps a snapshot of each watched application's list in `dir` (one file per application,
  // written atomically at most once a second after a change) and, when ZooKeeper has not
  // answered for a second and no list was ever read, serves the snapshot's list until it does.
  // A live read always replaces it. Before the first Watch. Empty: no snapshots (the default).
  void SetSnapshotDir(std::string dir);
  // Learns of changes through persistent recursive watches (ZooKeeper 3.6+) on a second
  // connection of its own (WatchStream) instead of one-shot child watches: a change to one
  // instance costs one event and one read, not a new list of every instance. Falls back to
  // child watches, with a warning, when the server does not support them. Before the first
  // Watch. On by default.
  void SetRecursiveWatch(bool on);
  // Why the list of `name` is empty, in words for an error message: ZooKeeper unreachable (and
  // for how long), still reading N instances, the last read's error, or what the registry
  // lists (nodes, none UP or readable).
  std::string Describe(const std::string& name) const;

 private:
  struct Entry {
    // Null: the data did not parse, or is unreadable. Shared: a re-read copies no instance.
    std::shared_ptr<const Instance> instance;
    int64_t mzxid = 0;  // the version read (0: unreadable to this client)
    bool up = false;    // instance->IsUp(), asked once
  };
  // By node name: cached, re-read on change. Hashed: a watcher of a large application looks up
  // a node per change: a hash finds it in a cache miss or two, a tree of 10,000 in fourteen.
  // Open addressing: no allocation per node, and no division per lookup.
  using Children = absl::flat_hash_map<std::string, Entry>;
  struct Watched {
    Children children;
    InstanceView::Builder up;  // the UP instances of `children`, sorted by id
    InstanceList list;         // `up` as last published (or the snapshot's)
    std::map<int, Listener> listeners;
    bool loaded = false;
    std::size_t reading = 0;      // nodes being read now (a refresh in progress)
    int refreshes = 0;            // refreshes started (waiting or running) and not yet done
    std::string error;            // the last refresh's failure, until one succeeds
    bool from_snapshot = false;   // `list` came from the snapshot file, not from ZooKeeper
    bool snapshot_tried = false;  // the snapshot was looked for (once)
    bool snapshot_dirty = false;  // the live list changed since the snapshot was written
    std::chrono::steady_clock::time_point snapshot_written;
  };

  // What was published, and to whom: the listeners are called when it goes out of scope. The
  // first local of a callback, so that they run after everything else in it: a listener may let
  // go of the resolver (and on the session's thread, ~Resolver hands the session to another
  // thread to close).
  struct Notifier {
    Notifier() = default;
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;
    ~Notifier();
    std::vector<std::pair<std::map<int, Listener>, InstanceList>> pending;
  };

  void OnConnected(bool new_session) override;
  void OnNodeEvent(NodeEvent event, const std::string& path) override;
  void OnTick() override;
  void OnEventsDone() override;
  // Re-reads the children of `name` and the data of new ones, of those in `reread`, or (`all`)
  // of every one; publishes on change, the listeners to be told through `notifier`.
  void Refresh(const std::string& name, const std::set<std::string>& reread, bool all,
               Notifier* notifier);
  std::string ServicePath(const std::string& name) const;
  std::string SnapshotFile(const std::string& name) const;
  void WriteSnapshot(const std::string& name, const InstanceList& list) const;
  // Reads the snapshot of `name`: its UP instances and its age; nullopt when there is none
  // usable (logged when it exists but cannot be read).
  std::optional<std::pair<std::vector<Instance>, std::chrono::seconds>> ReadSnapshot(
      const std::string& name) const;
  void SnapshotTick(Notifier* notifier);
  // The stream is in use (and has not found the server without addWatch: then it switches to
  // child watches and re-reads every application).
  bool Streaming();
  void OnStreamUpdate(const std::string& root, WatchStream::Update update);
  // How long ZooKeeper has been unreachable on the connection that feeds the views.
  std::chrono::steady_clock::duration DisconnectedFor() const;
  // Publishes `w.up` as `w.list`; the listeners to call with it. With mu_ held.
  std::map<int, Listener> PublishLocked(const std::string& name, Watched& w);
  // The entry for node `parent`/`node`'s data, written by transaction `mzxid`: its instance, or
  // none (logged when `log`) if it does not parse.
  static Entry ParseEntry(std::string_view data, int64_t mzxid, std::string_view parent,
                          std::string_view node, bool log);
  // The same nodes with the same versions (mzxid): the same list, with no instance compared.
  static bool SameVersions(const Children& a, const Children& b);
  // Keeping `w.up` in step with `w.children`: all of it, or one entry leaving or arriving.
  static void RebuildUp(Watched& w);
  static void RemoveUp(Watched& w, const Entry& entry);
  static void AddUp(Watched& w, const Entry& entry);

  std::shared_ptr<Session> session_;
  const std::string base_path_;
  std::mutex refresh_mu_;  // one refresh at a time (the user's Watch, the event thread)
  mutable std::mutex mu_;  // guards watched_, stale_ and next_id_
  std::map<std::string, Watched> watched_;
  std::set<std::string> stale_;  // names whose last refresh failed: retried on tick
  std::string snapshot_dir_;     // set before the first Watch
  // Node events of the batch being delivered, served together in OnEventsDone (event thread).
  std::map<std::string, std::set<std::string>> pending_;  // name -> children to re-read
  int next_id_ = 1;
  bool recursive_ = true;  // set before the first Watch
  std::atomic<bool> streaming_{false};
  std::condition_variable loaded_cv_;    // a stream's first full list arrived
  std::unique_ptr<WatchStream> stream_;  // last: its thread stops first
};

}  // namespace rpcboot::discovery

#endif  // RPCBOOT_DISCOVERY_RESOLVER_H_
