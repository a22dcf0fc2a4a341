// A ZooKeeper session that outlives connections and sessions: the handle the registrar and the
// resolver share.
//
//   auto session = std::make_shared<rpcboot::discovery::Session>(
//       rpcboot::discovery::SessionOptions{"10.0.0.1:2181,10.0.0.2:2181/chroot"});
//   session->Start();                       // returns at once; connects in the background
//   session->AddObserver(&registrar);       // told about new sessions and node events
//
// The ZooKeeper C client reconnects by itself, but it declares a session expired only when a
// server says so: after a server has lost its state, or during an outage longer than the session
// timeout, it never does. Session watches for both. When the session is expired, or the
// connection has been down for longer than the session timeout, it closes the handle and opens a
// new one; observers then hear OnConnected(new_session = true) and re-create what was theirs
// (ephemeral nodes, one-shot watches).
//
// Thread-safe. Observer callbacks run on the session's own event thread, one at a time; they may
// call the session's blocking operations. The session lives as long as its owners (shared_ptr);
// observers must be removed before they die.
#ifndef RPCBOOT_DISCOVERY_SESSION_H_
#define RPCBOOT_DISCOVERY_SESSION_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct _zhandle zhandle_t;

namespace rpcboot::discovery {

struct SessionOptions {
  // "host:port,host:port" with an optional chroot: "host:port,host:port/apps/prod".
  std::string connect;
  std::chrono::milliseconds session_timeout{std::chrono::seconds(10)};
  // "user:password": nodes this session creates with `protected_acl` are writable only by this
  // identity and readable by everyone (ZooKeeper's digest scheme). Empty: open ACL.
  std::string digest;
};

// What a node event or a session change means to an observer.
enum class NodeEvent { kCreated, kDeleted, kDataChanged, kChildrenChanged };

class Session {
 public:
  class Observer {
   public:
    virtual ~Observer() = default;
    // A session is connected. `new_session`: the first connection of a fresh session (ephemeral
    // nodes and watches of earlier sessions are gone); false after a reconnect of the same one.
    virtual void OnConnected(bool new_session) = 0;
    // A watch this process set on `path` fired (paths are relative to the chroot).
    virtual void OnNodeEvent(NodeEvent event, const std::string& path) = 0;
    // Called every few hundred milliseconds, for retries.
    virtual void OnTick() {}
    // Called after the node events that had arrived together were all delivered: work that
    // several events ask for (re-reading a list) can be done once here.
    virtual void OnEventsDone() {}
  };

  struct Node {
    std::string data;
    int64_t ephemeral_owner = 0;  // the session that owns an ephemeral node, 0 otherwise
    int32_t version = 0;
    int64_t mzxid = 0;  // the transaction that last wrote it: equal mzxid, equal content
  };

  // Checks the options (connect string, digest) without connecting.
  static absl::Status Validate(const SessionOptions& options);

  explicit Session(SessionOptions options);
  ~Session();  // closes the session: this process's ephemeral nodes go away at once
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts connecting (in the background) and the event thread. Once.
  void Start();
  // Both may be called inside a callback too. RemoveObserver returns once no callback of that
  // observer is running (but one that called it, on the event thread, is still on the stack).
  void AddObserver(Observer* observer);
  void RemoveObserver(Observer* observer);
  // The caller is the session's event thread (inside an observer's callback). The session must
  // not be destroyed there: its destructor joins that thread.
  bool OnEventThread() const;

  bool connected() const;
  // How long the session has been without a connection (since Start, or since it was lost);
  // zero while connected.
  std::chrono::steady_clock::duration disconnected_for() const;
  // Waits until connected; false on timeout.
  bool WaitConnected(std::chrono::milliseconds timeout) const;
  const SessionOptions& options() const { return options_; }
  // Sessions established so far (1 after the first connection; each expiry adds one), and how
  // many times a session was found expired or presumed lost and replaced.
  int sessions() const;
  int expirations() const;

  // Blocking operations on the current session. Unavailable when not connected; NotFound,
  // AlreadyExists, FailedPrecondition (not empty, bad version), PermissionDenied as ZooKeeper
  // says. `watch` leaves a one-shot watch that reaches observers as OnNodeEvent.
  enum class Mode { kPersistent, kEphemeral, kContainer };
  absl::Status Create(const std::string& path, const std::string& data, Mode mode,
                      bool protected_acl = false);
  // Creates every missing parent of `path` as a container node, level by level.
  absl::Status CreateParents(const std::string& path);
  // With a digest: gives `path` the protected ACL (this identity may do everything, everyone
  // may read), so that only this identity can create or delete its children. PermissionDenied
  // when the node belongs to another identity. Without a digest: nothing to do.
  absl::Status Fence(const std::string& path);
  absl::StatusOr<Node> Get(const std::string& path, bool watch);
  // Get of every path, pipelined: up to `window` requests in flight at once on the one
  // connection, so N nodes cost about N / window round trips, not N. One result per path, in
  // order. Unavailable for all when not connected.
  std::vector<absl::StatusOr<Node>> GetMany(const std::vector<std::string>& paths, bool watch,
                                            int window = 1000);
  absl::StatusOr<std::vector<std::string>> Children(const std::string& path, bool watch);
  absl::StatusOr<bool> Exists(const std::string& path, bool watch);
  absl::Status Set(const std::string& path, const std::string& data, int32_t version = -1);
  absl::Status Delete(const std::string& path, int32_t version = -1);

  // The current session's id and password (tests use them to force an expiry); 0 and "" when
  // there is none yet.
  int64_t session_id() const;
  std::string session_password() const;

 private:
  struct Event {
    uint64_t generation;
    int type;
    int state;
    std::string path;
  };
  static void Watcher(zhandle_t* zh, int type, int state, const char* path, void* context);
  void Post(Event event);
  void Run();
  void OpenHandle();  // with handle_mu_ held exclusively
  // Calls `call` for each observer, with observers_mu_ held.
  void ForEachObserver(const std::function<void(Observer*)>& call);
  absl::Status Check(int rc, const std::string& what, const std::string& path) const;

  const SessionOptions options_;
  // Guards the handle: operations hold it shared; replacing the handle takes it exclusively.
  mutable std::shared_mutex handle_mu_;
  zhandle_t* zh_ = nullptr;
  uint64_t generation_ = 0;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<Event> events_;
  bool stopping_ = false;
  bool connected_ = false;
  std::chrono::steady_clock::time_point disconnected_since_;
  int64_t announced_session_ = 0;  // the session observers last heard OnConnected(true) for
  int sessions_ = 0;
  int expirations_ = 0;
  std::thread thread_;

  std::atomic<std::thread::id> event_thread_{};
  std::mutex observers_mu_;           // held while observers run
  std::vector<Observer*> observers_;  // null: removed during a callback
};

}  // namespace rpcboot::discovery

#endif  // RPCBOOT_DISCOVERY_SESSION_H_
