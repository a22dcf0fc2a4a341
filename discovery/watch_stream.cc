#include "discovery/watch_stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"

namespace rpcboot::discovery {

using internal::Log;

namespace {

// ZooKeeper's operation codes and error codes (its jute protocol, ZooDefs.OpCode).
constexpr int32_t kGetData = 4;
constexpr int32_t kGetChildren = 8;
constexpr int32_t kPing = 11;
constexpr int32_t kCloseSession = -11;
constexpr int32_t kAuth = 100;
constexpr int32_t kAddWatch = 106;
constexpr int32_t kMultiRead = 22;
// Reads of several nodes travel together, this many per multiRead (ZooKeeper 3.6+): one request
// through the server's pipeline instead of one each (a cold load of 10,000 is 50 requests).
constexpr std::size_t kReadsPerMulti = 200;
constexpr int32_t kPersistentRecursive = 1;  // AddWatchMode
constexpr int32_t kNotificationXid = -1;
constexpr int32_t kPingXid = -2;
constexpr int32_t kAuthXid = -4;
constexpr int32_t kUnimplemented = -6;
constexpr int32_t kNoNode = -101;
constexpr int32_t kNoAuth = -102;
constexpr int32_t kEventCreated = 1;
constexpr int32_t kEventDeleted = 2;
constexpr int32_t kEventDataChanged = 3;
// A reply larger than this is refused (the connection dropped) before it is buffered: a list of
// 100,000 children is about 4 MiB.
constexpr std::size_t kMaxFrame = 64u << 20;
// Changes are delivered at most once per interval: a burst (a rolling restart) then costs the
// caller one new list per interval, not one per event; a lone change is delivered at once. The
// interval is 10 ms, or ten times the CPU time the last delivery took (the caller rebuilding a
// list of thousands), up to 100 ms: delivering never takes more than a tenth of a CPU. CPU time,
// not elapsed time: on a busy machine a delivery that waited for a CPU did not cost more, and
// waiting longer to deliver the next would only add to every watcher's delay.
constexpr auto kCoalesceMin = std::chrono::milliseconds(10);
constexpr auto kCoalesceMax = std::chrono::milliseconds(100);
// In a burst of events (input twice within this), the thread reads its socket at most once per
// this interval: a rolling restart sends each watcher hundreds of events, and reading them a few
// at a time costs a wake-up and system calls each. A lone change is read at once.
constexpr auto kBurstPause = std::chrono::milliseconds(1);

std::chrono::nanoseconds ThreadCpuTime() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

void PutInt(std::string* out, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(u >> shift));
}
void PutLong(std::string* out, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(u >> shift));
}
void PutBuffer(std::string* out, std::string_view v) {
  PutInt(out, static_cast<int32_t>(v.size()));
  out->append(v);
}

// Jute's big-endian reading; every read checks what is left.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool Int(int32_t* v) {
    if (bytes_.size() < 4) return false;
    uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u = u << 8 | static_cast<uint8_t>(bytes_[static_cast<size_t>(i)]);
    *v = static_cast<int32_t>(u);
    bytes_.remove_prefix(4);
    return true;
  }
  bool Long(int64_t* v) {
    if (bytes_.size() < 8) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u = u << 8 | static_cast<uint8_t>(bytes_[static_cast<size_t>(i)]);
    *v = static_cast<int64_t>(u);
    bytes_.remove_prefix(8);
    return true;
  }
  // A buffer or string; a null one (length -1) reads as empty.
  bool Buffer(std::string* v) {
    std::string_view view;
    if (!View(&view)) return false;
    v->assign(view);
    return true;
  }
  // The same, as a view of the bytes read.
  bool View(std::string_view* v) {
    int32_t n;
    if (!Int(&n) || n < -1 || (n > 0 && static_cast<std::size_t>(n) > bytes_.size())) return false;
    const std::size_t size = n <= 0 ? 0 : static_cast<std::size_t>(n);
    *v = bytes_.substr(0, size);
    bytes_.remove_prefix(size);
    return true;
  }
  bool Bool(bool* v) {
    if (bytes_.empty()) return false;
    *v = bytes_[0] != 0;
    bytes_.remove_prefix(1);
    return true;
  }
  bool Skip(std::size_t n) {
    if (bytes_.size() < n) return false;
    bytes_.remove_prefix(n);
    return true;
  }
  std::size_t left() const { return bytes_.size(); }
  std::string_view rest() const { return bytes_; }

 private:
  std::string_view bytes_;
};

// GetDataResponse: the data, then the Stat (czxid, mzxid, ctime, mtime, version, cversion,
// aversion, ephemeralOwner, dataLength, numChildren, pzxid). The data as a view of `r`'s bytes.
bool ReadData(Reader& r, std::string_view* data, int64_t* mzxid) {
  // czxid; mzxid; ctime to pzxid (8 + 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8 bytes).
  return r.View(data) && r.Skip(8) && r.Long(mzxid) && r.Skip(52);
}

std::string ErrorName(int32_t err) {
  switch (err) {
    case kNoNode:
      return "no node";
    case kNoAuth:
      return "not authorized";
    case kUnimplemented:
      return "unimplemented";
    case -112:
      return "session expired";
    default:
      return absl::StrCat("error ", err);
  }
}

}  // namespace

class WatchStream::Core {
 public:
  Core(SessionOptions options, Callback callback);
  ~Core();

  void Run();
  void Add(const std::string& root);
  void Stop();

  using Update = WatchStream::Update;
  using Change = WatchStream::Change;
  using State = WatchStream::State;

  struct Root {
    bool listed = false;  // its children were listed on this connection
    bool loaded = false;  // the full update was delivered on this connection
    std::size_t pending = 0;
    std::map<std::string, Change> load;  // the first read, until complete
    std::vector<Change> batch;           // changes since the last delivery
  };
  struct Request {
    int32_t xid;
    enum Kind { kAddWatch, kChildren, kData, kMulti } kind;
    std::string root;
    std::string node;
    std::vector<std::pair<std::string, std::string>> reads;  // kMulti: (root, node) each
  };

  bool Connect(std::string* error);
  // Waits for `events` on `fd`; false on timeout, or when the stream is stopping.
  bool WaitFor(int fd, short events, int timeout_ms);
  void Serve();
  // Handles one frame; false (with `error`) when the connection must be dropped.
  bool HandleFrame(std::string_view frame, std::string* error);
  void Send(int32_t xid, int32_t type, const std::string& body);
  void SendRead(int32_t type, Request::Kind kind, const std::string& root, const std::string& node);
  void AddRoot(const std::string& root);  // on the stream's thread, connected
  // Reads `node` of `root` with the reads queued with it (FlushReads sends them).
  void QueueRead(Root& root, const std::string& root_path, std::string node);
  void FlushReads();
  void Deliver();
  void Disconnected(const std::string& error);
  // Appends `root`, or `root`/`node` when `node` is not empty, as the server names it (under the
  // chroot), as a jute buffer: straight into `out`, with no string built for it.
  void PutPath(std::string* out, std::string_view root, std::string_view node) const;
  bool stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  const SessionOptions options_;
  const Callback callback_;
  std::vector<std::string> hosts_;  // "host:port"
  std::string chroot_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  State state_ = State::kConnecting;
  std::chrono::steady_clock::time_point disconnected_since_;
  int failures_ = 0;
  std::string last_error_;
  std::set<std::string> roots_;                 // every root asked for
  std::vector<std::string> new_roots_;          // asked for since the thread last looked
  std::map<std::string, std::size_t> reading_;  // root -> reads in flight (or 1 until loaded)
  const int wake_fd_;                           // eventfd: Add and Stop wake the poll

  // The stream's thread only.
  int fd_ = -1;
  std::size_t host_index_ = 0;
  int32_t timeout_ms_ = 0;  // negotiated
  int32_t next_xid_ = 1;
  std::string in_;
  std::string out_;
  std::deque<Request> requests_;
  std::map<std::string, Root, std::less<>> live_;             // roots on this connection
  std::vector<std::pair<std::string, Update>> ready_;         // full updates to deliver
  std::vector<std::pair<std::string, std::string>> to_read_;  // (root, node) not sent yet
  std::size_t reads_in_flight_ = 0;                           // kData and kMulti requests
  std::chrono::steady_clock::time_point last_delivery_;
  std::chrono::steady_clock::duration coalesce_{std::chrono::milliseconds(10)};
  bool batched_ = false;  // some root has changes not delivered yet
  std::chrono::steady_clock::time_point last_sent_;
  std::chrono::steady_clock::time_point last_received_;
  // The last two times input woke the thread: two within kBurstPause make a burst.
  std::chrono::steady_clock::time_point previous_input_;
  std::chrono::steady_clock::time_point last_input_;
};

WatchStream::Core::Core(SessionOptions options, Callback callback)
    : options_(std::move(options)),
      callback_(std::move(callback)),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  const std::string& connect = options_.connect;
  std::size_t slash = connect.find('/');
  std::string hosts = connect.substr(0, slash);
  if (slash != std::string::npos && connect.size() > slash + 1) chroot_ = connect.substr(slash);
  for (std::size_t start = 0; start <= hosts.size();) {
    std::size_t comma = hosts.find(',', start);
    if (comma == std::string::npos) comma = hosts.size();
    if (comma > start) hosts_.push_back(hosts.substr(start, comma - start));
    start = comma + 1;
  }
  // Each stream starts at a random host of the list, as the C client does: clients that share a
  // connect string spread their streams (and the events and reads they carry) over the ensemble
  // instead of all landing on its first server.
  if (!hosts_.empty()) host_index_ = std::random_device{}() % hosts_.size();
  disconnected_since_ = std::chrono::steady_clock::now();
}

WatchStream::Core::~Core() {
  if (fd_ >= 0) ::close(fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void WatchStream::Core::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void WatchStream::Core::Add(const std::string& root) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!roots_.insert(root).second) return;
    new_roots_.push_back(root);
    reading_[root] = 1;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

WatchStream::WatchStream(SessionOptions options, Callback callback)
    : core_(std::make_shared<Core>(std::move(options), std::move(callback))) {}

WatchStream::~WatchStream() {
  core_->Stop();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    // Inside a callback: the thread holds the core and stops once the callback returns.
    thread_.detach();
  } else {
    thread_.join();
  }
}

void WatchStream::Start() {
  thread_ = std::thread([core = core_] { core->Run(); });
}

void WatchStream::Add(const std::string& root) { core_->Add(root); }

WatchStream::State WatchStream::state() const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  return core_->state_;
}

std::chrono::steady_clock::duration WatchStream::disconnected_for() const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  if (core_->state_ == State::kConnected) return std::chrono::steady_clock::duration::zero();
  return std::max(std::chrono::steady_clock::now() - core_->disconnected_since_,
                  std::chrono::steady_clock::duration(1));
}

int WatchStream::failures() const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  return core_->failures_;
}

bool WatchStream::Reading(const std::string& root) const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  auto it = core_->reading_.find(root);
  return core_->state_ == State::kConnected && it != core_->reading_.end() && it->second > 0;
}

std::size_t WatchStream::PendingReads(const std::string& root) const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  auto it = core_->reading_.find(root);
  return it == core_->reading_.end() ? 0 : it->second;
}

std::string WatchStream::last_error() const {
  std::lock_guard<std::mutex> lock(core_->mu_);
  return core_->last_error_;
}

void WatchStream::Core::PutPath(std::string* out, std::string_view root,
                                std::string_view node) const {
  // "/" under a chroot is the chroot itself.
  const bool chroot_itself = !chroot_.empty() && node.empty() && root == "/";
  const std::size_t size =
      chroot_.size() + (chroot_itself ? 0 : root.size()) + (node.empty() ? 0 : 1 + node.size());
  PutInt(out, static_cast<int32_t>(size));
  out->append(chroot_);
  if (chroot_itself) return;
  out->append(root);
  if (node.empty()) return;
  out->push_back('/');
  out->append(node);
}

bool WatchStream::Core::WaitFor(int fd, short events, int timeout_ms) {
  // The wake-up descriptor too: a stream being destroyed does not wait out a connect timeout.
  // (An Add wakes it as well; the roots it adds are read from roots_ once connected.)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int left =
        static_cast<int>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  deadline - std::chrono::steady_clock::now())
                                                  .count()));
    pollfd p[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    int n = ::poll(p, 2, left);
    if (stopping()) return false;
    if (n > 0 && (p[0].revents & (events | POLLERR | POLLHUP)) != 0) return true;
    if (p[1].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
    }
    if (left == 0 || (n < 0 && errno != EINTR)) return false;
  }
}

void WatchStream::Core::Run() {
  int backoff_ms = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms), [&] { return stopping_; });
      if (stopping_ || state_ == State::kUnsupported) return;
    }
    std::string error;
    if (!Connect(&error)) {
      Disconnected(error);
      backoff_ms = std::min(2000, std::max(100, backoff_ms * 2));
      continue;
    }
    backoff_ms = 0;
    Serve();
  }
}

bool WatchStream::Core::Connect(std::string* error) {
  if (hosts_.empty()) {
    *error = "no ZooKeeper server in the connect string";
    return false;
  }
  const std::string host_port = hosts_[host_index_++ % hosts_.size()];
  std::size_t colon = host_port.rfind(':');
  std::string host = host_port.substr(0, colon);
  std::string port = colon == std::string::npos ? "" : host_port.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *error = absl::StrCat("cannot resolve ", host_port, ": ", gai_strerror(rc));
    return false;
  }
  // Bounded like the C client's: a share of the session timeout, at least a second.
  const auto budget = std::max<std::chrono::milliseconds>(
      std::chrono::milliseconds(1000),
      options_.session_timeout / static_cast<int>(std::max<std::size_t>(1, hosts_.size())));
  const auto deadline = std::chrono::steady_clock::now() + budget;
  auto left_ms = [&] {
    return static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  int fd = -1;
  *error = absl::StrCat("cannot connect to ", host_port);
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      *error = absl::StrCat("cannot open a socket for ", host_port, ": ", std::strerror(errno));
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      int soerr = ETIMEDOUT;
      if (WaitFor(fd, POLLOUT, left_ms())) {
        socklen_t len = sizeof soerr;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      }
      rc = soerr == 0 ? 0 : -1;
      errno = soerr;
    }
    if (rc != 0) {
      *error = absl::StrCat("cannot connect to ", host_port, ": ", std::strerror(errno));
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  // ConnectRequest: protocol version, last zxid seen, timeout, session id (0: a new session),
  // password, read-only.
  std::string body;
  PutInt(&body, 0);
  PutLong(&body, 0);
  PutInt(&body, static_cast<int32_t>(options_.session_timeout.count()));
  PutLong(&body, 0);
  PutBuffer(&body, std::string(16, '\0'));
  body.push_back('\0');
  std::string frame;
  PutInt(&frame, static_cast<int32_t>(body.size()));
  frame += body;
  std::size_t sent = 0;
  std::string reply;
  std::size_t want = 4;
  bool ok = true;
  while (ok && (sent < frame.size() || reply.size() < want)) {
    if (!WaitFor(fd, sent < frame.size() ? POLLOUT : POLLIN, left_ms())) {
      *error = absl::StrCat(host_port, " did not answer the session handshake in time");
      ok = false;
      break;
    }
    if (sent < frame.size()) {
      ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        *error = absl::StrCat("handshake with ", host_port, ": ", std::strerror(errno));
        ok = false;
      }
      continue;
    }
    char buf[512];
    ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - reply.size()), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      *error = absl::StrCat(host_port, " closed the connection during the session handshake");
      ok = false;
      break;
    }
    if (n > 0) reply.append(buf, static_cast<std::size_t>(n));
    if (want == 4 && reply.size() == 4) {
      int32_t len;
      Reader(reply).Int(&len);
      if (len < 20 || len > 4096) {
        *error = absl::StrCat(host_port, " sent a session handshake of ", len,
                              " bytes: is it a ZooKeeper server?");
        ok = false;
        break;
      }
      want = 4 + static_cast<std::size_t>(len);
    }
  }
  int32_t version = 0, timeout = 0;
  int64_t session = 0;
  if (ok) {
    Reader r(std::string_view(reply).substr(4));
    if (!r.Int(&version) || !r.Int(&timeout) || !r.Long(&session) || timeout <= 0) {
      *error = absl::StrCat(host_port, " refused the session (timeout ", timeout, ")");
      ok = false;
    }
  }
  if (!ok) {
    ::close(fd);
    return false;
  }
  fd_ = fd;
  timeout_ms_ = timeout;
  next_xid_ = 1;
  in_.clear();
  out_.clear();
  requests_.clear();
  live_.clear();
  ready_.clear();
  last_sent_ = last_received_ = std::chrono::steady_clock::now();
  if (!options_.digest.empty()) {
    std::string auth;
    PutInt(&auth, 0);
    PutBuffer(&auth, "digest");
    PutBuffer(&auth, options_.digest);
    Send(kAuthXid, kAuth, auth);
  }
  std::vector<std::string> roots;
  {
    std::lock_guard<std::mutex> lock(mu_);
    roots.assign(roots_.begin(), roots_.end());
    new_roots_.clear();
    for (const std::string& root : roots) reading_[root] = 1;
    state_ = State::kConnected;
    last_error_.clear();
  }
  Log(LogLevel::kInfo,
      absl::StrCat("registry: watch stream connected to ", host_port, " (session 0x",
                   absl::Hex(session), ", timeout ", timeout, " ms)"));
  for (const std::string& root : roots) AddRoot(root);
  return true;
}

void WatchStream::Core::Send(int32_t xid, int32_t type, const std::string& body) {
  PutInt(&out_, static_cast<int32_t>(8 + body.size()));
  PutInt(&out_, xid);
  PutInt(&out_, type);
  out_ += body;
}

void WatchStream::Core::SendRead(int32_t type, Request::Kind kind, const std::string& root,
                                 const std::string& node) {
  std::string body;
  PutPath(&body, root, node);
  if (type == kAddWatch) {
    PutInt(&body, kPersistentRecursive);
  } else {
    body.push_back('\0');  // no one-shot watch
  }
  int32_t xid = next_xid_++;
  if (next_xid_ <= 0) next_xid_ = 1;
  Send(xid, type, body);
  requests_.push_back(Request{xid, kind, root, node});
}

void WatchStream::Core::AddRoot(const std::string& root) {
  live_[root] = Root{};
  // The watch first: a change after it reaches this connection as an event; the list that
  // follows already holds every change before it.
  SendRead(kAddWatch, Request::kAddWatch, root, "");
  SendRead(kGetChildren, Request::kChildren, root, "");
}

void WatchStream::Core::QueueRead(Root& root, const std::string& root_path, std::string node) {
  ++root.pending;
  to_read_.emplace_back(root_path, std::move(node));
}

void WatchStream::Core::FlushReads() {
  // While reads are in flight, the reads that events ask for wait for their answer and then go
  // together: under a burst (a rolling restart) a watcher sends a few requests per burst instead
  // of one per event, which is what keeps ZooKeeper answering when hundreds of watchers follow
  // one application; when ZooKeeper is idle a read waits at most one round trip.
  if (to_read_.empty() || reads_in_flight_ > 0) return;
  if (to_read_.size() == 1) {
    SendRead(kGetData, Request::kData, to_read_[0].first, to_read_[0].second);
    ++reads_in_flight_;
    to_read_.clear();
    return;
  }
  for (std::size_t start = 0; start < to_read_.size(); start += kReadsPerMulti) {
    std::size_t end = std::min(to_read_.size(), start + kReadsPerMulti);
    std::string body;
    Request request{next_xid_++, Request::kMulti, "", "", {}};
    if (next_xid_ <= 0) next_xid_ = 1;
    for (std::size_t i = start; i < end; ++i) {
      auto& [root_path, node] = to_read_[i];
      PutInt(&body, kGetData);  // MultiHeader: type, done, err
      body.push_back('\0');
      PutInt(&body, -1);
      PutPath(&body, root_path, node);
      body.push_back('\0');  // no one-shot watch
      request.reads.emplace_back(std::move(root_path), std::move(node));
    }
    PutInt(&body, -1);  // the end: type -1, done, err -1
    body.push_back('\1');
    PutInt(&body, -1);
    Send(request.xid, kMultiRead, body);
    requests_.push_back(std::move(request));
    ++reads_in_flight_;
  }
  to_read_.clear();
}

void WatchStream::Core::Serve() {
  while (true) {
    std::vector<std::string> added;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
      added.swap(new_roots_);
    }
    for (const std::string& root : added) AddRoot(root);
    const auto now = std::chrono::steady_clock::now();
    const auto ping_every = std::chrono::milliseconds(std::max(1, timeout_ms_ / 3));
    const auto dead_after = std::chrono::milliseconds(std::max(1, timeout_ms_ * 2 / 3));
    if (now - last_received_ >= dead_after) {
      return Disconnected(absl::StrCat(
          "no answer from ZooKeeper for ",
          std::chrono::duration_cast<std::chrono::milliseconds>(now - last_received_).count(),
          " ms"));
    }
    if (out_.empty() && now - last_sent_ >= ping_every) Send(kPingXid, kPing, "");
    if (batched_ && now - last_delivery_ >= coalesce_) Deliver();
    auto wait = std::min(last_sent_ + ping_every, last_received_ + dead_after) - now;
    if (batched_) wait = std::min(wait, last_delivery_ + coalesce_ - now);
    int wait_ms = static_cast<int>(std::clamp<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(wait).count() + 1, 1, 1000));
    if (out_.empty() && previous_input_ + kBurstPause > last_input_ &&
        now < last_input_ + kBurstPause) {
      // A burst: let the events gather and read them in one go (Stop still wakes this).
      pollfd wake{wake_fd_, POLLIN, 0};
      ::poll(&wake, 1,
             static_cast<int>(
                 std::chrono::ceil<std::chrono::milliseconds>(last_input_ + kBurstPause - now)
                     .count()));
    }
    pollfd fds[2] = {{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0},
                     {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, wait_ms) < 0 && errno != EINTR) {
      return Disconnected(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
      previous_input_ = last_input_;
      last_input_ = std::chrono::steady_clock::now();
      std::size_t used = 0;
      while (true) {
        char buf[64 * 1024];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0) return Disconnected("ZooKeeper closed the connection");
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          return Disconnected(absl::StrCat("read: ", std::strerror(errno)));
        }
        in_.append(buf, static_cast<std::size_t>(n));
        last_received_ = std::chrono::steady_clock::now();
        while (in_.size() - used >= 4) {
          int32_t len;
          Reader(std::string_view(in_).substr(used, 4)).Int(&len);
          if (len < 16 || static_cast<std::size_t>(len) > kMaxFrame) {
            return Disconnected(absl::StrCat("ZooKeeper sent a frame of ", len, " bytes (16 to ",
                                             kMaxFrame, " expected)"));
          }
          if (in_.size() - used < 4 + static_cast<std::size_t>(len)) break;
          std::string error;
          if (!HandleFrame(std::string_view(in_).substr(used + 4, static_cast<std::size_t>(len)),
                           &error)) {
            return Disconnected(error);
          }
          used += 4 + static_cast<std::size_t>(len);
        }
        if (used > 0) {
          in_.erase(0, used);
          used = 0;
        }
        // A short read took all there was: the next poll reports what comes later, and this
        // saves the read that would only say EAGAIN (a burst wakes the thread a hundred times).
        if (static_cast<std::size_t>(n) < sizeof buf) break;
      }
      FlushReads();
      if (!ready_.empty() || std::chrono::steady_clock::now() - last_delivery_ >= coalesce_) {
        Deliver();
      }
    }
    if (!out_.empty()) {
      ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return Disconnected(absl::StrCat("write: ", std::strerror(errno)));
      }
      if (n > 0) {
        out_.erase(0, static_cast<std::size_t>(n));
        last_sent_ = std::chrono::steady_clock::now();
      }
    }
  }
  // Stopping: close the session so that ZooKeeper drops its watches at once.
  out_.clear();
  Send(0, kCloseSession, "");
  [[maybe_unused]] ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
  ::close(fd_);
  fd_ = -1;
}

bool WatchStream::Core::HandleFrame(std::string_view frame, std::string* error) {
  Reader r(frame);
  int32_t xid, err;
  int64_t zxid;
  if (!r.Int(&xid) || !r.Long(&zxid) || !r.Int(&err)) {
    *error = "ZooKeeper sent a reply shorter than its header";
    return false;
  }
  if (xid == kPingXid) return true;
  if (xid == kAuthXid) {
    if (err != 0) {
      Log(LogLevel::kWarning, absl::StrCat("registry: ZooKeeper refused the digest of the watch "
                                           "stream (",
                                           ErrorName(err), "); reading as anyone"));
    }
    return true;
  }
  auto record = [&](const std::string& root_path, Root& root, Change change) {
    if (root.loaded) {
      root.batch.push_back(std::move(change));
      batched_ = true;
      return;
    }
    std::string node = change.node;
    root.load[node] = std::move(change);
    if (root.listed && root.pending == 0) {
      Update full{true, {}};
      for (auto& [name, c] : root.load) {
        if (c.kind != Change::kGone) full.changes.push_back(std::move(c));
      }
      root.load.clear();
      root.loaded = true;
      ready_.emplace_back(root_path, std::move(full));
    }
  };
  if (xid == kNotificationXid) {
    int32_t type, state;
    std::string_view path;  // within the frame
    if (!r.Int(&type) || !r.Int(&state) || !r.View(&path)) {
      *error = "ZooKeeper sent a watch event that does not parse";
      return false;
    }
    if (!chroot_.empty()) {
      if (path.substr(0, chroot_.size()) != chroot_) return true;
      path = path.size() == chroot_.size() ? std::string_view("/") : path.substr(chroot_.size());
    }
    std::size_t slash = path.rfind('/');
    if (slash == std::string_view::npos || slash + 1 == path.size()) return true;
    auto it = live_.find(path.substr(0, slash));
    if (it == live_.end() || !it->second.listed) return true;  // the list to come holds it
    std::string node(path.substr(slash + 1));
    if (type == kEventCreated || type == kEventDataChanged) {
      QueueRead(it->second, it->first, std::move(node));
    } else if (type == kEventDeleted) {
      record(it->first, it->second, Change{std::move(node), Change::kGone, {}});
    }
    return true;
  }
  if (requests_.empty() || requests_.front().xid != xid) {
    *error = absl::StrCat("ZooKeeper answered request ", xid, " out of order (expected ",
                          requests_.empty() ? 0 : requests_.front().xid, ")");
    return false;
  }
  Request request = std::move(requests_.front());
  requests_.pop_front();
  if (request.kind == Request::kData || request.kind == Request::kMulti) --reads_in_flight_;
  if (request.kind == Request::kMulti) {
    if (err != 0) {
      *error = absl::StrCat("a read of ", request.reads.size(), " nodes failed: ", ErrorName(err));
      return false;
    }
    // The reads of one burst are of one root, as a rule: its batch grows once.
    auto first = request.reads.empty() ? live_.end() : live_.find(request.reads.front().first);
    if (first != live_.end() && first->second.loaded) {
      std::vector<Change>& batch = first->second.batch;
      if (batch.size() + request.reads.size() > batch.capacity()) {
        batch.reserve(std::max(batch.size() + request.reads.size(), 2 * batch.capacity()));
      }
    }
    // The changes' data are views of one copy of the reply.
    auto held = std::make_shared<const std::string>(r.rest());
    Reader body(*held);
    for (auto& [root_path, node] : request.reads) {
      // MultiHeader (type, done, err), then the op's result: GetDataResponse, or ErrorResponse.
      int32_t type, op_err;
      bool done;
      if (!body.Int(&type) || !body.Bool(&done) || !body.Int(&op_err) || done) {
        *error = absl::StrCat("a read of ", request.reads.size(), " nodes does not parse");
        return false;
      }
      Change change{std::move(node), Change::kPresent, {}, 0, held};
      if (type == kGetData) {
        if (!ReadData(body, &change.data, &change.mzxid)) {
          *error = absl::StrCat("the data of ", root_path, "/", change.node, " does not parse");
          return false;
        }
      } else if (type == -1 && body.Int(&op_err) && (op_err == kNoNode || op_err == kNoAuth)) {
        change.kind = op_err == kNoNode ? Change::kGone : Change::kUnreadable;
      } else {
        *error = absl::StrCat("cannot read ", root_path, "/", change.node, ": ", ErrorName(op_err));
        return false;
      }
      auto found = live_.find(root_path);
      if (found == live_.end()) continue;
      --found->second.pending;
      record(root_path, found->second, std::move(change));
    }
    return true;
  }
  auto it = live_.find(request.root);
  if (it == live_.end()) return true;
  Root& root = it->second;
  switch (request.kind) {
    case Request::kMulti:
      return true;  // answered above
    case Request::kAddWatch:
      if (err == kUnimplemented) {
        std::lock_guard<std::mutex> lock(mu_);
        state_ = State::kUnsupported;
        *error = "this ZooKeeper server does not support persistent recursive watches (3.6+)";
        return false;
      }
      if (err != 0) {
        *error = absl::StrCat("addWatch ", request.root, ": ", ErrorName(err));
        return false;
      }
      return true;
    case Request::kChildren: {
      std::vector<std::string> names;
      if (err != 0 && err != kNoNode) {
        *error = absl::StrCat("cannot list ", request.root, ": ", ErrorName(err));
        return false;
      }
      if (err == 0) {
        int32_t count;
        // Each name takes at least its 4-byte length: a count beyond that is a lie.
        if (!r.Int(&count) || count < -1 ||
            (count > 0 && static_cast<std::size_t>(count) > r.left() / 4)) {
          *error = absl::StrCat("the list of ", request.root, " does not parse");
          return false;
        }
        names.resize(static_cast<std::size_t>(std::max(0, count)));
        for (std::string& name : names) {
          if (!r.Buffer(&name)) {
            *error = absl::StrCat("the list of ", request.root, " does not parse");
            return false;
          }
        }
      }
      root.listed = true;
      for (std::string& name : names) QueueRead(root, request.root, std::move(name));
      if (names.empty()) {
        root.loaded = true;
        ready_.emplace_back(request.root, Update{true, {}});
      }
      return true;
    }
    case Request::kData: {
      --root.pending;
      Change change{request.node, Change::kPresent, {}};
      if (err == kNoNode) {
        change.kind = Change::kGone;
      } else if (err == kNoAuth) {
        change.kind = Change::kUnreadable;
      } else if (err != 0) {
        *error =
            absl::StrCat("cannot read ", request.root, "/", request.node, ": ", ErrorName(err));
        return false;
      } else {
        change.frame = std::make_shared<const std::string>(r.rest());
        Reader body(*change.frame);
        if (!ReadData(body, &change.data, &change.mzxid)) {
          *error = absl::StrCat("the data of ", request.root, "/", request.node, " does not parse");
          return false;
        }
      }
      record(request.root, root, std::move(change));
      return true;
    }
  }
  return true;
}

void WatchStream::Core::Deliver() {
  last_delivery_ = std::chrono::steady_clock::now();
  const auto start = ThreadCpuTime();
  batched_ = false;
  std::vector<std::pair<std::string, Update>> out;
  out.swap(ready_);
  for (auto& [path, root] : live_) {
    if (!root.batch.empty()) {
      out.emplace_back(path, Update{false, std::move(root.batch)});
      root.batch.clear();
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [path, root] : live_) {
      reading_[path] = root.loaded ? root.pending : std::max<std::size_t>(1, root.pending);
    }
  }
  if (out.empty()) return;
  for (auto& [path, update] : out) {
    if (stopping()) return;  // the owner is gone (perhaps let go inside the last callback)
    callback_(path, std::move(update));
  }
  coalesce_ = std::clamp<std::chrono::steady_clock::duration>((ThreadCpuTime() - start) * 10,
                                                              kCoalesceMin, kCoalesceMax);
}

void WatchStream::Core::Disconnected(const std::string& error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  requests_.clear();
  live_.clear();
  ready_.clear();
  to_read_.clear();
  reads_in_flight_ = 0;
  batched_ = false;
  in_.clear();
  out_.clear();
  bool lost;
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost = state_ == State::kConnected;
    if (lost) disconnected_since_ = std::chrono::steady_clock::now();
    if (state_ != State::kUnsupported) state_ = State::kConnecting;
    ++failures_;
    last_error_ = error;
  }
  if (lost) {
    Log(LogLevel::kWarning, absl::StrCat("registry: watch stream lost its connection: ", error));
  }
}

}  // namespace rpcboot::discovery
