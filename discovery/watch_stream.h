// A second ZooKeeper connection, spoken on ZooKeeper's own wire protocol, that holds persistent
// recursive watches (ZooKeeper 3.6's addWatch, which the C client does not offer) on
// application nodes and reads their children. A change to one instance then costs each watcher
// one event and one read, where a one-shot child watch makes every watcher list all N names of
// the application again (and ZooKeeper serialize them N times over).
//
//   WatchStream stream(options, [](const std::string& root, WatchStream::Update update) {...});
//   stream.Start();
//   stream.Add("/services/shop");  // a full update once read, then one update per change
//
// Each connection is a new ZooKeeper session: nothing is resumed. After a reconnect every root
// is read again in full (the caller compares versions, so unchanged nodes cost no parse). Reads
// and events travel on the one connection, so they arrive in ZooKeeper's order: a read is never
// older than an event that came before it.
//
// Thread-safe. The callback runs on the stream's own thread, one update at a time; it must not
// call Add. Lives until destroyed; the destructor closes the session, and may run inside the
// callback (no update is delivered after it).
#ifndef RPCBOOT_DISCOVERY_WATCH_STREAM_H_
#define RPCBOOT_DISCOVERY_WATCH_STREAM_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "discovery/session.h"

namespace rpcboot::discovery {

class WatchStream {
 public:
  enum class State {
    kConnecting,   // not connected (yet, or again)
    kConnected,    // a session, watches added
    kUnsupported,  // the server does not know addWatch (before 3.6): the stream has stopped
  };
  struct Change {
    enum Kind { kPresent, kGone, kUnreadable };
    std::string node;  // the child's name
    Kind kind = kPresent;
    // kPresent only: the node's data and the transaction that last wrote it (equal mzxid, equal
    // data). The bytes lie in `frame`, ZooKeeper's reply, shared by the changes read with it:
    // a burst's hundred nodes cost one buffer, not one each.
    std::string_view data;
    int64_t mzxid = 0;
    std::shared_ptr<const std::string> frame;
  };
  struct Update {
    // True: `changes` holds every child (all kPresent or kUnreadable), replacing what was known.
    bool full = false;
    std::vector<Change> changes;
  };
  using Callback = std::function<void(const std::string& root, Update update)>;

  WatchStream(SessionOptions options, Callback callback);
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  void Start();  // connects in the background; once
  // Watches the children of `root` (relative to the chroot), from now on.
  void Add(const std::string& root);

  State state() const;
  // How long the stream has been without a session (zero while connected).
  std::chrono::steady_clock::duration disconnected_for() const;
  // Connection attempts that failed (or connections lost) so far.
  int failures() const;
  // Connected, and `root` not read in full yet (or reads of changed children in flight).
  bool Reading(const std::string& root) const;
  // Nodes of `root` whose reads are in flight.
  std::size_t PendingReads(const std::string& root) const;
  // Why the stream is not connected, in words: the last error.
  std::string last_error() const;

 private:
  // Everything the stream's thread touches, shared with it: when the last owner of the stream
  // lets go of it inside a callback (on the stream's own thread), the thread is detached and
  // finishes on this, delivering nothing more.
  class Core;
  std::shared_ptr<Core> core_;
  std::thread thread_;
};

}  // namespace rpcboot::discovery

#endif  // RPCBOOT_DISCOVERY_WATCH_STREAM_H_
