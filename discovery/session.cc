#include "discovery/session.h"

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/internal/host_port.h"
#include "rpcboot/base/log.h"

namespace rpcboot::discovery {
using internal::Log;
namespace {

struct WatcherContext {
  Session* session;
  uint64_t generation;
};

// The C client logs every failed connection attempt; during an outage that is a line per
// attempt. Session reports state changes itself, so the client's own lines are rate-limited.
void ClientLog(const char* message) {
  static std::atomic<int64_t> last_ms{0};
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 5000 || !last_ms.compare_exchange_strong(last, now)) return;
  Log(LogLevel::kWarning, absl::StrCat("zookeeper client: ", message));
}

NodeEvent ToNodeEvent(int type) {
  if (type == ZOO_CREATED_EVENT) return NodeEvent::kCreated;
  if (type == ZOO_DELETED_EVENT) return NodeEvent::kDeleted;
  if (type == ZOO_CHANGED_EVENT) return NodeEvent::kDataChanged;
  return NodeEvent::kChildrenChanged;
}

void IgnoreCompletion(int, const void*) {}

}  // namespace

absl::Status Session::Validate(const SessionOptions& options) {
  const std::string& connect = options.connect;
  if (connect.empty()) return absl::InvalidArgumentError("ZooKeeper connect string is empty");
  std::size_t slash = connect.find('/');
  std::string hosts = connect.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string chroot = connect.substr(slash);
    if (chroot.size() > 1 && chroot.back() == '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("ZooKeeper connect string '", connect, "': chroot must not end with '/'"));
    }
    if (chroot.find("//") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("ZooKeeper connect string '", connect, "': empty path element in chroot"));
    }
  }
  while (true) {
    std::size_t comma = hosts.find(',');
    std::string host = hosts.substr(0, comma);
    if (!internal::IsHostPort(host)) {
      return absl::InvalidArgumentError(absl::StrCat("ZooKeeper connect string '", connect, "': '",
                                                     host, "' is not host:port (port 0-65535)"));
    }
    if (comma == std::string::npos) break;
    hosts.erase(0, comma + 1);
  }
  if (!options.digest.empty() && options.digest.find(':') == std::string::npos) {
    return absl::InvalidArgumentError("ZooKeeper digest must be user:password");
  }
  if (options.session_timeout < std::chrono::milliseconds(100)) {
    return absl::InvalidArgumentError(absl::StrCat("ZooKeeper session timeout of ",
                                                   options.session_timeout.count(),
                                                   " ms is too short (at least 100 ms)"));
  }
  return absl::OkStatus();
}

Session::Session(SessionOptions options) : options_(std::move(options)) {}

Session::~Session() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::unique_lock<std::shared_mutex> lock(handle_mu_);
  if (zh_ != nullptr) zookeeper_close(zh_);
  zh_ = nullptr;
}

void Session::Start() {
  {
    std::unique_lock<std::shared_mutex> lock(handle_mu_);
    OpenHandle();
  }
  thread_ = std::thread([this] { Run(); });
}

void Session::OpenHandle() {
  if (zh_ != nullptr) zookeeper_close(zh_);
  zh_ = nullptr;
  ++generation_;
  // The contexts live as long as the session: the C client may call the watcher until
  // zookeeper_close returns, and a handful of handles over a process's life cost nothing.
  static std::mutex contexts_mu;
  static std::vector<std::unique_ptr<WatcherContext>>* contexts =
      new std::vector<std::unique_ptr<WatcherContext>>();
  WatcherContext* context;
  {
    std::lock_guard<std::mutex> lock(contexts_mu);
    contexts->push_back(std::make_unique<WatcherContext>(WatcherContext{this, generation_}));
    context = contexts->back().get();
  }
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zh_ = zookeeper_init2(options_.connect.c_str(), &Session::Watcher,
                        static_cast<int>(options_.session_timeout.count()), nullptr, context, 0,
                        &ClientLog);
  if (zh_ == nullptr) {
    // Most often a name that does not resolve (yet): tried again after a session timeout, not
    // at every tick.
    Log(LogLevel::kError, absl::StrCat("ZooKeeper: cannot create a handle for '", options_.connect,
                                       "': ", std::strerror(errno), "; trying again in ",
                                       options_.session_timeout.count(), " ms"));
    std::lock_guard<std::mutex> lock(mu_);
    connected_ = false;
    disconnected_since_ = std::chrono::steady_clock::now();
    return;
  }
  // The C client looks the servers' names up again every time it polls its socket (a
  // getaddrinfo, with its netlink and socket calls, per round of replies); like the Java
  // client, look them up when connecting only.
  zoo_set_servers_resolution_delay(zh_, -1);
  if (!options_.digest.empty()) {
    zoo_add_auth(zh_, "digest", options_.digest.data(), static_cast<int>(options_.digest.size()),
                 &IgnoreCompletion, nullptr);
  }
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = false;
  disconnected_since_ = std::chrono::steady_clock::now();
}

void Session::Watcher(zhandle_t*, int type, int state, const char* path, void* context) {
  auto* c = static_cast<WatcherContext*>(context);
  c->session->Post(Event{c->generation, type, state, path == nullptr ? "" : path});
}

void Session::Post(Event event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void Session::AddObserver(Observer* observer) {
  if (OnEventThread()) {  // inside a callback: this thread holds observers_mu_
    observers_.push_back(observer);
    return;
  }
  std::lock_guard<std::mutex> lock(observers_mu_);
  observers_.push_back(observer);
}

void Session::RemoveObserver(Observer* observer) {
  if (OnEventThread()) {
    // Inside a callback (an observer let go of inside one): this thread holds observers_mu_ and
    // is walking the list; the entry is emptied, and dropped once the walk is over.
    std::replace(observers_.begin(), observers_.end(), observer, static_cast<Observer*>(nullptr));
    return;
  }
  std::lock_guard<std::mutex> lock(observers_mu_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer), observers_.end());
}

bool Session::OnEventThread() const { return std::this_thread::get_id() == event_thread_.load(); }

void Session::ForEachObserver(const std::function<void(Observer*)>& call) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  // By index: a callback may add an observer, or remove one (then its entry is null).
  for (std::size_t i = 0; i < observers_.size(); ++i) {
    if (Observer* o = observers_[i]) call(o);
  }
  observers_.erase(std::remove(observers_.begin(), observers_.end(), nullptr), observers_.end());
}

int Session::sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_;
}

int Session::expirations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return expirations_;
}

bool Session::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connected_;
}

std::chrono::steady_clock::duration Session::disconnected_for() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (connected_) return std::chrono::steady_clock::duration::zero();
  return std::chrono::steady_clock::now() - disconnected_since_;
}

bool Session::WaitConnected(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return connected_ || stopping_; }) && connected_;
}

int64_t Session::session_id() const {
  std::shared_lock<std::shared_mutex> lock(handle_mu_);
  return zh_ == nullptr ? 0 : zoo_client_id(zh_)->client_id;
}

std::string Session::session_password() const {
  std::shared_lock<std::shared_mutex> lock(handle_mu_);
  if (zh_ == nullptr) return "";
  const clientid_t* id = zoo_client_id(zh_);
  return std::string(id->passwd, sizeof id->passwd);
}

void Session::Run() {
  event_thread_ = std::this_thread::get_id();
  auto tick = std::chrono::milliseconds(200);
  auto next_tick = std::chrono::steady_clock::now() + tick;
  while (true) {
    std::deque<Event> events;
    bool rebuild = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, next_tick, [this] { return stopping_ || !events_.empty(); });
      if (stopping_) return;
      events.swap(events_);
    }
    bool node_events = false;
    for (const Event& event : events) {
      {
        std::shared_lock<std::shared_mutex> lock(handle_mu_);
        if (event.generation != generation_) continue;  // from a handle already closed
      }
      if (event.type != ZOO_SESSION_EVENT) {
        node_events = true;
        ForEachObserver([&](Observer* o) { o->OnNodeEvent(ToNodeEvent(event.type), event.path); });
        continue;
      }
      if (event.state == ZOO_CONNECTED_STATE) {
        int64_t id = session_id();
        bool new_session;
        {
          std::lock_guard<std::mutex> lock(mu_);
          connected_ = true;
          new_session = id != announced_session_;
          announced_session_ = id;
          if (new_session) ++sessions_;
        }
        cv_.notify_all();
        if (new_session) {
          Log(LogLevel::kInfo, absl::StrCat("ZooKeeper: session 0x", absl::Hex(id),
                                            " established with ", options_.connect));
        }
        ForEachObserver([&](Observer* o) { o->OnConnected(new_session); });
      } else if (event.state == ZOO_EXPIRED_SESSION_STATE) {
        Log(LogLevel::kWarning, "ZooKeeper: session expired; starting a new one");
        rebuild = true;
      } else if (event.state == ZOO_AUTH_FAILED_STATE) {
        Log(LogLevel::kError, "ZooKeeper: authentication failed (check the digest)");
      } else {
        std::lock_guard<std::mutex> lock(mu_);
        if (connected_) {
          connected_ = false;
          disconnected_since_ = std::chrono::steady_clock::now();
          Log(LogLevel::kWarning, "ZooKeeper: connection lost; reconnecting");
        }
      }
    }
    if (node_events) ForEachObserver([](Observer* o) { o->OnEventsDone(); });
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!connected_ && now - disconnected_since_ > options_.session_timeout && !rebuild) {
        if (zh_ != nullptr) {  // (only this thread replaces zh_ once started)
          Log(LogLevel::kWarning,
              absl::StrCat("ZooKeeper: no connection for longer than the session timeout (",
                           options_.session_timeout.count(),
                           " ms); the session may be gone: starting a new one"));
        }
        rebuild = true;
      }
    }
    if (rebuild) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++expirations_;
      }
      std::unique_lock<std::shared_mutex> lock(handle_mu_);
      OpenHandle();
    }
    if (now >= next_tick) {
      next_tick = now + tick;
      ForEachObserver([](Observer* o) { o->OnTick(); });
    }
  }
}

absl::Status Session::Check(int rc, const std::string& what, const std::string& path) const {
  if (rc == ZOK) return absl::OkStatus();
  std::string message = absl::StrCat("ZooKeeper ", what, " ", path, ": ", zerror(rc));
  switch (rc) {
    case ZNONODE:
      return absl::NotFoundError(message);
    case ZNODEEXISTS:
      return absl::AlreadyExistsError(message);
    case ZNOTEMPTY:
    case ZBADVERSION:
    case ZNOCHILDRENFOREPHEMERALS:
      return absl::FailedPreconditionError(message);
    case ZNOAUTH:
    case ZAUTHFAILED:
      return absl::PermissionDeniedError(message);
    case ZBADARGUMENTS:
      return absl::InvalidArgumentError(message);
    case ZUNIMPLEMENTED:
      return absl::UnimplementedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

#define RPCBOOT_ZK_HANDLE(what, path)                                                          \
  std::shared_lock<std::shared_mutex> lock(handle_mu_);                                        \
  if (zh_ == nullptr || zoo_state(zh_) != ZOO_CONNECTED_STATE) {                               \
    return absl::UnavailableError(                                                             \
        absl::StrCat("ZooKeeper ", what, " ", path, ": not connected to ", options_.connect)); \
  }

absl::Status Session::Create(const std::string& path, const std::string& data, Mode mode,
                             bool protected_acl) {
  RPCBOOT_ZK_HANDLE("create", path);
  int flags = mode == Mode::kEphemeral   ? ZOO_EPHEMERAL
              : mode == Mode::kContainer ? ZOO_CONTAINER
                                         : ZOO_PERSISTENT;
  ACL acl_entries[2] = {{ZOO_PERM_ALL, {const_cast<char*>("auth"), const_cast<char*>("")}},
                        {ZOO_PERM_READ, {const_cast<char*>("world"), const_cast<char*>("anyone")}}};
  ACL_vector own_acl{2, acl_entries};
  bool use_own = protected_acl && !options_.digest.empty();
  int rc = zoo_create(zh_, path.c_str(), data.data(), static_cast<int>(data.size()),
                      use_own ? &own_acl : &ZOO_OPEN_ACL_UNSAFE, flags, nullptr, 0);
  return Check(rc, "create", path);
}

absl::Status Session::CreateParents(const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    absl::Status s = Create(parent, "", Mode::kContainer);
    if (absl::IsUnimplemented(s)) s = Create(parent, "", Mode::kPersistent);  // ZooKeeper < 3.5
    if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
  }
  return absl::OkStatus();
}

absl::Status Session::Fence(const std::string& path) {
  if (options_.digest.empty()) return absl::OkStatus();
  RPCBOOT_ZK_HANDLE("set the ACL of", path);
  ACL acl_entries[2] = {{ZOO_PERM_ALL, {const_cast<char*>("auth"), const_cast<char*>("")}},
                        {ZOO_PERM_READ, {const_cast<char*>("world"), const_cast<char*>("anyone")}}};
  ACL_vector own_acl{2, acl_entries};
  return Check(zoo_set_acl(zh_, path.c_str(), -1, &own_acl), "set the ACL of", path);
}

absl::StatusOr<Session::Node> Session::Get(const std::string& path, bool watch) {
  RPCBOOT_ZK_HANDLE("get", path);
  Node node;
  std::vector<char> buffer(64 * 1024);
  struct Stat stat {};
  while (true) {
    int length = static_cast<int>(buffer.size());
    int rc = zoo_get(zh_, path.c_str(), watch ? 1 : 0, buffer.data(), &length, &stat);
    if (absl::Status s = Check(rc, "get", path); !s.ok()) return s;
    if (stat.dataLength > static_cast<int32_t>(buffer.size())) {  // grew: read again, larger
      buffer.resize(static_cast<std::size_t>(stat.dataLength));
      continue;
    }
    node.data.assign(buffer.data(), static_cast<std::size_t>(std::max(length, 0)));
    break;
  }
  node.ephemeral_owner = stat.ephemeralOwner;
  node.version = stat.version;
  node.mzxid = stat.mzxid;
  return node;
}

namespace {

// The requests of one GetMany: completions (on the C client's completion thread) fill their
// slot and count down.
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::vector<int> rc;
  std::vector<Session::Node> nodes;
};

struct BatchSlot {
  Batch* batch;
  std::size_t index;
};

void OnGetDone(int rc, const char* value, int value_len, const struct Stat* stat,
               const void* data) {
  std::unique_ptr<const BatchSlot> slot(static_cast<const BatchSlot*>(data));
  Batch* batch = slot->batch;
  std::lock_guard<std::mutex> lock(batch->mu);
  batch->rc[slot->index] = rc;
  if (rc == ZOK) {
    Session::Node& node = batch->nodes[slot->index];
    if (value != nullptr && value_len > 0) node.data.assign(value, value_len);
    if (stat != nullptr) {
      node.ephemeral_owner = stat->ephemeralOwner;
      node.version = stat->version;
      node.mzxid = stat->mzxid;
    }
  }
  --batch->in_flight;
  batch->cv.notify_one();
}

}  // namespace

std::vector<absl::StatusOr<Session::Node>> Session::GetMany(const std::vector<std::string>& paths,
                                                            bool watch, int window) {
  std::vector<absl::StatusOr<Node>> out;
  out.reserve(paths.size());
  std::shared_lock<std::shared_mutex> lock(handle_mu_);
  if (zh_ == nullptr || zoo_state(zh_) != ZOO_CONNECTED_STATE) {
    for (const std::string& path : paths) {
      out.emplace_back(absl::UnavailableError(
          absl::StrCat("ZooKeeper get ", path, ": not connected to ", options_.connect)));
    }
    return out;
  }
  // The handle stays (the shared lock) until every completion has run: closing a handle runs
  // the pending ones with an error, so none is lost.
  Batch batch;
  batch.rc.assign(paths.size(), ZSYSTEMERROR);
  batch.nodes.resize(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    {
      std::unique_lock<std::mutex> batch_lock(batch.mu);
      batch.cv.wait(batch_lock, [&] { return batch.in_flight < std::max(window, 1); });
      ++batch.in_flight;
    }
    auto* slot = new BatchSlot{&batch, i};
    int rc = zoo_aget(zh_, paths[i].c_str(), watch ? 1 : 0, OnGetDone, slot);
    if (rc != ZOK) {  // not sent: no completion will come
      delete slot;
      std::lock_guard<std::mutex> batch_lock(batch.mu);
      batch.rc[i] = rc;
      --batch.in_flight;
    }
  }
  {
    std::unique_lock<std::mutex> batch_lock(batch.mu);
    batch.cv.wait(batch_lock, [&] { return batch.in_flight == 0; });
  }
  for (std::size_t i = 0; i < paths.size(); ++i) {
    absl::Status s = Check(batch.rc[i], "get", paths[i]);
    if (s.ok()) {
      out.emplace_back(std::move(batch.nodes[i]));
    } else {
      out.emplace_back(std::move(s));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> Session::Children(const std::string& path, bool watch) {
  RPCBOOT_ZK_HANDLE("get children of", path);
  String_vector children{0, nullptr};
  int rc = zoo_get_children(zh_, path.c_str(), watch ? 1 : 0, &children);
  if (absl::Status s = Check(rc, "get children of", path); !s.ok()) return s;
  std::vector<std::string> names(children.data, children.data + children.count);
  deallocate_String_vector(&children);
  return names;
}

absl::StatusOr<bool> Session::Exists(const std::string& path, bool watch) {
  RPCBOOT_ZK_HANDLE("exists", path);
  struct Stat stat {};
  int rc = zoo_exists(zh_, path.c_str(), watch ? 1 : 0, &stat);
  if (rc == ZNONODE) return false;
  if (absl::Status s = Check(rc, "exists", path); !s.ok()) return s;
  return true;
}

absl::Status Session::Set(const std::string& path, const std::string& data, int32_t version) {
  RPCBOOT_ZK_HANDLE("set", path);
  return Check(zoo_set(zh_, path.c_str(), data.data(), static_cast<int>(data.size()), version),
               "set", path);
}

absl::Status Session::Delete(const std::string& path, int32_t version) {
  RPCBOOT_ZK_HANDLE("delete", path);
  return Check(zoo_delete(zh_, path.c_str(), version), "delete", path);
}

#undef RPCBOOT_ZK_HANDLE

}  // namespace rpcboot::discovery
