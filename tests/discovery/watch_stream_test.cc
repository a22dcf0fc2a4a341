// WatchStream, ZooKeeper's wire protocol spoken by rpcboot: against a real ZooKeeper server on
// 127.0.0.1 (every change, in order; a chroot; a restart), and against fake servers on a local
// socket that answer with garbage or without addWatch.
#include "discovery/watch_stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "discovery/registrar.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "gtest/gtest.h"
#include "rpcboot/base/log.h"
#include "tests/discovery/zookeeper_testing.h"

namespace rpcboot::discovery {
namespace {

using rpcboot::testing::Eventually;
using rpcboot::testing::ZooKeeperServer;
using std::chrono::milliseconds;

std::shared_ptr<Session> Connect(const std::string& connect) {
  auto session = std::make_shared<Session>(SessionOptions{connect, milliseconds(4000)});
  session->Start();
  EXPECT_TRUE(session->WaitConnected(std::chrono::seconds(10))) << "no session with " << connect;
  return session;
}

// What a stream delivered: the children it knows (name -> data) and how many full lists.
class Recorder {
 public:
  WatchStream::Callback callback() {
    return [this](const std::string& root, WatchStream::Update update) {
      std::lock_guard<std::mutex> lock(mu_);
      std::map<std::string, std::string>& view = views_[root];
      if (update.full) {
        view.clear();
        ++fulls_[root];
      }
      for (const WatchStream::Change& change : update.changes) {
        if (change.kind == WatchStream::Change::kGone) {
          EXPECT_FALSE(update.full) << "a full list holds no gone node";
          view.erase(change.node);
        } else if (change.kind == WatchStream::Change::kUnreadable) {
          view[change.node] = "<unreadable>";
        } else {
          EXPECT_GT(change.mzxid, 0);
          view[change.node] = std::string(change.data);
        }
      }
    };
  }
  std::map<std::string, std::string> View(const std::string& root) {
    std::lock_guard<std::mutex> lock(mu_);
    return views_[root];
  }
  int Fulls(const std::string& root) {
    std::lock_guard<std::mutex> lock(mu_);
    return fulls_[root];
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> views_;
  std::map<std::string, int> fulls_;
};

TEST(WatchStream, ReadsTheChildrenThenFollowsEveryChange) {
  ZooKeeperServer zk("watch-stream-basic");
  auto admin = Connect(zk.connect());
  ASSERT_TRUE(admin->CreateParents("/services/shop/x").ok());
  ASSERT_TRUE(admin->Create("/services/shop/a", "one", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/shop/b", "two", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/order", "", Session::Mode::kPersistent).ok());

  Recorder recorder;
  // A long session timeout: a reconnect on a busy machine would deliver a second full list.
  WatchStream stream(SessionOptions{zk.connect(), milliseconds(20000)}, recorder.callback());
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return recorder.Fulls("/services/shop") == 1; }));
  EXPECT_EQ(stream.state(), WatchStream::State::kConnected);
  EXPECT_EQ(recorder.View("/services/shop"),
            (std::map<std::string, std::string>{{"a", "one"}, {"b", "two"}}));
  EXPECT_TRUE(Eventually([&] { return !stream.Reading("/services/shop"); }));

  // Created, changed, deleted; a grandchild and another application are not children of it.
  ASSERT_TRUE(admin->Create("/services/shop/c", "three", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Set("/services/shop/a", "uno").ok());
  ASSERT_TRUE(admin->Delete("/services/shop/b").ok());
  ASSERT_TRUE(admin->Create("/services/shop/c/deeper", "no", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/order/z", "no", Session::Mode::kPersistent).ok());
  std::map<std::string, std::string> expected{{"a", "uno"}, {"c", "three"}};
  EXPECT_TRUE(Eventually([&] { return recorder.View("/services/shop") == expected; }))
      << recorder.View("/services/shop").size() << " children";

  // A burst, each node created, changed and deleted: only the survivors remain, whatever order
  // the reads and events crossed in.
  for (int i = 0; i < 100; ++i) {
    std::string path = "/services/shop/n" + std::to_string(i);
    ASSERT_TRUE(admin->Create(path, "v1", Session::Mode::kPersistent).ok());
    ASSERT_TRUE(admin->Set(path, "v2").ok());
    if (i % 2 == 0) {
      ASSERT_TRUE(admin->Delete(path).ok());
    } else {
      expected["n" + std::to_string(i)] = "v2";
    }
  }
  EXPECT_TRUE(Eventually([&] { return recorder.View("/services/shop") == expected; }));
  EXPECT_EQ(recorder.Fulls("/services/shop"), 1) << "changes come one by one, not as new lists";

  // An application added later, whose node does not exist yet: an empty list, then its
  // instances as they come.
  stream.Add("/services/cart");
  ASSERT_TRUE(Eventually([&] { return recorder.Fulls("/services/cart") == 1; }));
  EXPECT_TRUE(recorder.View("/services/cart").empty());
  ASSERT_TRUE(admin->CreateParents("/services/cart/x").ok());
  ASSERT_TRUE(admin->Create("/services/cart/k", "cart", Session::Mode::kPersistent).ok());
  EXPECT_TRUE(Eventually([&] {
    return recorder.View("/services/cart") == std::map<std::string, std::string>{{"k", "cart"}};
  }));
}

TEST(WatchStream, ChrootAndDeadHosts) {
  ZooKeeperServer zk("watch-stream-chroot");
  auto admin = Connect(zk.connect());
  ASSERT_TRUE(admin->CreateParents("/apps/services/shop/x").ok());
  ASSERT_TRUE(admin->Create("/apps/services/shop/a", "one", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services", "", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/shop", "", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/shop/outside", "", Session::Mode::kPersistent).ok());

  Recorder recorder;
  // A stream starts at a random host: with three dead ones of four, most runs meet one first.
  WatchStream stream(SessionOptions{"127.0.0.1:1,127.0.0.1:1," + zk.connect() + ",127.0.0.1:1/apps",
                                    milliseconds(4000)},
                     recorder.callback());
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return recorder.Fulls("/services/shop") == 1; }));
  EXPECT_EQ(recorder.View("/services/shop"), (std::map<std::string, std::string>{{"a", "one"}}));
  ASSERT_TRUE(admin->Create("/apps/services/shop/b", "two", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/shop/outside2", "", Session::Mode::kPersistent).ok());
  EXPECT_TRUE(Eventually([&] {
    return recorder.View("/services/shop") ==
           std::map<std::string, std::string>{{"a", "one"}, {"b", "two"}};
  }));
}

TEST(WatchStream, ZooKeeperRestartIsFollowedByAFullRead) {
  ZooKeeperServer zk("watch-stream-restart");
  {
    auto admin = Connect(zk.connect());
    ASSERT_TRUE(admin->CreateParents("/services/shop/x").ok());
    ASSERT_TRUE(admin->Create("/services/shop/a", "one", Session::Mode::kPersistent).ok());
  }
  Recorder recorder;
  WatchStream stream(SessionOptions{zk.connect(), milliseconds(2000)}, recorder.callback());
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return recorder.Fulls("/services/shop") == 1; }));
  zk.Stop();
  ASSERT_TRUE(Eventually([&] { return stream.state() == WatchStream::State::kConnecting; }));
  EXPECT_GT(stream.disconnected_for(), std::chrono::steady_clock::duration::zero());
  EXPECT_FALSE(stream.Reading("/services/shop")) << "nothing is read while disconnected";
  EXPECT_FALSE(stream.last_error().empty());
  zk.Start();
  ASSERT_TRUE(Eventually([&] { return recorder.Fulls("/services/shop") == 2; }));
  EXPECT_EQ(recorder.View("/services/shop"), (std::map<std::string, std::string>{{"a", "one"}}));
  // The watch is there again on the new session.
  auto admin = Connect(zk.connect());
  ASSERT_TRUE(admin->Create("/services/shop/b", "two", Session::Mode::kPersistent).ok());
  EXPECT_TRUE(Eventually([&] { return recorder.View("/services/shop").count("b") == 1; }));
}

// A fake server on 127.0.0.1: accepts connections one after another and runs `serve` on each.
class FakeServer {
 public:
  using Serve = std::function<void(int fd, int connection)>;
  explicit FakeServer(Serve serve) : serve_(std::move(serve)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (int n = 0; !stop_; ++n) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) != 1) {
          --n;
          continue;
        }
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        serve_(c, n);
        ::close(c);
        ++connections_;
      }
    });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string connect() const { return "127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }

 private:
  Serve serve_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

void PutInt(std::string* out, int32_t v) {
  uint32_t u = htonl(static_cast<uint32_t>(v));
  out->append(reinterpret_cast<const char*>(&u), 4);
}
void PutLong(std::string* out, int64_t v) {
  PutInt(out, static_cast<int32_t>(static_cast<uint64_t>(v) >> 32));
  PutInt(out, static_cast<int32_t>(v & 0xffffffff));
}

// Reads one length-prefixed frame (bounded wait); empty on failure.
std::string ReadFrame(int fd) {
  auto read_n = [&](std::size_t n) {
    std::string out;
    while (out.size() < n) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) != 1) return std::string();
      char buf[4096];
      ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
      if (got <= 0) return std::string();
      out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
  };
  std::string len = read_n(4);
  if (len.size() != 4) return "";
  uint32_t n;
  std::memcpy(&n, len.data(), 4);
  n = ntohl(n);
  return n > (1u << 20) ? std::string() : read_n(n);
}

void SendAll(int fd, const std::string& bytes) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

// The server's half of the session handshake; false when the client went away first (a stream
// being destroyed at the end of a test may have just connected again).
bool Handshake(int fd) {
  if (ReadFrame(fd).empty()) return false;
  std::string body;
  PutInt(&body, 0);        // protocol version
  PutInt(&body, 4000);     // timeout
  PutLong(&body, 0x1234);  // session id
  PutInt(&body, 16);       // password
  body.append(16, 'p');
  body.push_back('\0');  // read-only
  std::string frame;
  PutInt(&frame, static_cast<int32_t>(body.size()));
  SendAll(fd, frame + body);
  return true;
}

std::string Reply(int32_t xid, int32_t err, const std::string& body = "") {
  std::string payload;
  PutInt(&payload, xid);
  PutLong(&payload, 7);
  PutInt(&payload, err);
  payload += body;
  std::string frame;
  PutInt(&frame, static_cast<int32_t>(payload.size()));
  return frame + payload;
}

int32_t XidOf(const std::string& request) {
  uint32_t xid = 0;
  if (request.size() >= 4) std::memcpy(&xid, request.data(), 4);
  return static_cast<int32_t>(ntohl(xid));
}

// Every kind of garbage after a good handshake: random bytes, lying lengths, replies to requests
// never sent, truncated replies, a list claiming more names than it holds, a 2 GiB frame. Each
// drops the connection with a reason; the stream reconnects, nothing is delivered, and the
// process goes on.
TEST(WatchStream, GarbageFromTheServerDropsTheConnectionNotTheProcess) {
  std::mt19937 random(20261129);
  std::vector<std::string> garbage;
  for (int i = 0; i < 40; ++i) {  // random bytes, random lengths
    std::string bytes(static_cast<std::size_t>(random() % 200 + 1), '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    garbage.push_back(bytes);
  }
  std::string huge;
  PutInt(&huge, 0x7fffffff);
  garbage.push_back(huge + "xyz");
  std::string negative;
  PutInt(&negative, -5);
  garbage.push_back(negative);
  garbage.push_back(Reply(4242, 0));  // a reply to nothing sent
  // To addWatch (xid 1) fine, then the list (xid 2) claims a million names in a few bytes.
  std::string lying_list;
  PutInt(&lying_list, 1000000);
  PutInt(&lying_list, 3);
  lying_list += "abc";
  garbage.push_back(Reply(1, 0) + Reply(2, 0, lying_list));
  // A list with a name whose length runs past the end.
  std::string short_name;
  PutInt(&short_name, 1);
  PutInt(&short_name, 400);
  short_name += "abc";
  garbage.push_back(Reply(1, 0) + Reply(2, 0, short_name));
  // A good list of one, then its data truncated inside the Stat.
  std::string one;
  PutInt(&one, 1);
  PutInt(&one, 1);
  one += "a";
  std::string cut_data;
  PutInt(&cut_data, 2);
  cut_data += "{}";
  PutLong(&cut_data, 1);
  garbage.push_back(Reply(1, 0) + Reply(2, 0, one) + Reply(3, 0, cut_data));
  // A list of two, read together (multiRead, xid 3): a result cut inside its data, a result
  // list that ends before the second read, and an error that is neither "no node" nor "not
  // authorized".
  std::string two;
  PutInt(&two, 2);
  PutInt(&two, 1);
  two += "a";
  PutInt(&two, 1);
  two += "b";
  std::string multi_cut;
  PutInt(&multi_cut, 4);  // type getData
  multi_cut.push_back('\0');
  PutInt(&multi_cut, 0);
  PutInt(&multi_cut, 50);  // data of 50 bytes, 2 sent
  multi_cut += "{}";
  garbage.push_back(Reply(1, 0) + Reply(2, 0, two) + Reply(3, 0, multi_cut));
  std::string multi_early_end;
  PutInt(&multi_early_end, -1);
  multi_early_end.push_back('\1');
  PutInt(&multi_early_end, -1);
  garbage.push_back(Reply(1, 0) + Reply(2, 0, two) + Reply(3, 0, multi_early_end));
  std::string multi_odd_error;
  PutInt(&multi_odd_error, -1);
  multi_odd_error.push_back('\0');
  PutInt(&multi_odd_error, -1);
  PutInt(&multi_odd_error, -7);  // an ErrorResult of an unexpected kind
  garbage.push_back(Reply(1, 0) + Reply(2, 0, two) + Reply(3, 0, multi_odd_error));
  garbage.push_back(Reply(1, 0) + Reply(2, 0, two) + Reply(3, -5));  // the whole read refused
  // A watch event that does not parse.
  std::string bad_event;
  PutInt(&bad_event, 1);
  garbage.push_back(Reply(-1, 0, bad_event));
  std::string short_header;
  PutInt(&short_header, 16);
  short_header += std::string(16, '\x01');
  garbage.push_back(short_header);

  FakeServer server([&](int fd, int n) {
    if (!Handshake(fd)) return;
    SendAll(fd, garbage[static_cast<std::size_t>(n) % garbage.size()]);
    // Hold the connection until the client drops it (bounded).
    pollfd p{fd, POLLIN, 0};
    for (int i = 0; i < 40 && ::poll(&p, 1, 50) >= 0; ++i) {
      char buf[4096];
      if ((p.revents & POLLIN) && ::recv(fd, buf, sizeof buf, 0) <= 0) break;
    }
  });
  std::atomic<int> delivered{0};
  std::atomic<int> with_children{0};
  WatchStream stream(SessionOptions{server.connect(), milliseconds(4000)},
                     [&](const std::string&, WatchStream::Update update) {
                       ++delivered;
                       if (!update.changes.empty()) ++with_children;
                     });
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return server.connections() >= static_cast<int>(garbage.size()); },
                         std::chrono::seconds(120)))
      << "the stream stopped reconnecting after " << server.connections() << " connections";
  EXPECT_EQ(with_children.load(), 0) << "garbage was delivered as children";
  EXPECT_GE(stream.failures(), static_cast<int>(garbage.size()) - 1);
  EXPECT_NE(stream.state(), WatchStream::State::kUnsupported);
}

TEST(WatchStream, AHugeFrameIsRefusedBeforeItIsBuffered) {
  std::atomic<bool> refused{false};
  FakeServer server([&](int fd, int) {
    if (!Handshake(fd)) return;
    std::string frame;
    PutInt(&frame, 0x7fffffff);
    SendAll(fd, frame);
    // The client closes at once, without waiting for 2 GiB.
    pollfd p{fd, POLLIN, 0};
    char buf[4096];
    for (int i = 0; i < 100; ++i) {
      if (::poll(&p, 1, 50) == 1 && ::recv(fd, buf, sizeof buf, 0) <= 0) {
        refused = true;
        break;
      }
    }
  });
  WatchStream stream(SessionOptions{server.connect(), milliseconds(4000)},
                     [](const std::string&, WatchStream::Update) {});
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return refused.load(); }));
  EXPECT_TRUE(Eventually([&] {
    return stream.last_error().find("2147483647 bytes") != std::string::npos;
  })) << stream.last_error();
}

// A server before 3.6 answers addWatch UNIMPLEMENTED: the stream stops and says so (the
// resolver then uses child watches).
TEST(WatchStream, AServerWithoutAddWatchStopsTheStream) {
  FakeServer server([&](int fd, int) {
    if (!Handshake(fd)) return;
    std::string request = ReadFrame(fd);
    SendAll(fd, Reply(XidOf(request), -6));
    ReadFrame(fd);  // getChildren: never answered
  });
  WatchStream stream(SessionOptions{server.connect(), milliseconds(4000)},
                     [](const std::string&, WatchStream::Update) {});
  stream.Start();
  stream.Add("/services/shop");
  ASSERT_TRUE(Eventually([&] { return stream.state() == WatchStream::State::kUnsupported; }));
  EXPECT_NE(stream.last_error().find("persistent recursive watches"), std::string::npos)
      << stream.last_error();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(server.connections(), 1) << "no reconnecting to a server without addWatch";
}

// A server that accepts and never answers the handshake: the stream waits for it within the
// session timeout, but its destruction does not (it would otherwise outlast the server's own
// patience, which ends the connection).
TEST(WatchStream, DestructionDoesNotWaitForAServerThatNeverAnswers) {
  std::atomic<bool> connected{false};
  std::atomic<bool> server_gave_up{false};
  std::atomic<bool> release{false};
  FakeServer server([&](int fd, int) {
    connected = true;
    for (int i = 0; i < 300 && !release; ++i) std::this_thread::sleep_for(milliseconds(100));
    server_gave_up = !release;
    ::shutdown(fd, SHUT_RDWR);
  });
  {
    WatchStream stream(SessionOptions{server.connect(), std::chrono::seconds(60)},
                       [](const std::string&, WatchStream::Update) {});
    stream.Start();
    stream.Add("/services/shop");
    ASSERT_TRUE(Eventually([&] { return connected.load(); }));
  }
  EXPECT_FALSE(server_gave_up.load()) << "the destructor waited for the server to close";
  release = true;
}

// Streams of clients that share a connect string spread over its servers: each starts at a
// random one (the first connection of each of 30 streams, counted per server).
TEST(WatchStream, StreamsSpreadOverTheServersOfTheConnectString) {
  std::vector<std::unique_ptr<FakeServer>> servers;
  std::string connect;
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<FakeServer>([](int fd, int) { ReadFrame(fd); }));
    connect += (i == 0 ? "" : ",") + servers.back()->connect();
  }
  auto total = [&] {
    int n = 0;
    for (const auto& s : servers) n += s->connections();
    return n;
  };
  std::vector<int> first(servers.size(), 0);
  for (int i = 0; i < 30; ++i) {
    std::vector<int> before;
    for (const auto& s : servers) before.push_back(s->connections());
    const int before_total = total();
    WatchStream stream(SessionOptions{connect, milliseconds(4000)},
                       [](const std::string&, WatchStream::Update) {});
    stream.Start();
    stream.Add("/services/shop");
    ASSERT_TRUE(Eventually([&] { return total() > before_total; }));
    for (std::size_t k = 0; k < servers.size(); ++k) {
      if (servers[k]->connections() > before[k]) {
        ++first[k];
        break;
      }
    }
  }
  // A server with no first connection by chance: about 3 x (2/3)^30, 1.6e-5.
  for (std::size_t k = 0; k < servers.size(); ++k) {
    EXPECT_GT(first[k], 0) << "no stream started at server " << k << " of 3";
  }
}

TEST(WatchStream, NotAZooKeeperServer) {
  FakeServer server([&](int fd, int) {
    ReadFrame(fd);
    SendAll(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");
  });
  WatchStream stream(SessionOptions{server.connect(), milliseconds(4000)},
                     [](const std::string&, WatchStream::Update) {});
  stream.Start();
  stream.Add("/services/shop");
  EXPECT_TRUE(Eventually([&] {
    return stream.last_error().find("is it a ZooKeeper server?") != std::string::npos;
  })) << stream.last_error();
  EXPECT_EQ(stream.state(), WatchStream::State::kConnecting);
}

// A proxy in front of a real ZooKeeper that plays a server before 3.6: it answers addWatch
// UNIMPLEMENTED itself and passes every other frame through whole.
class NoAddWatchProxy {
 public:
  explicit NoAddWatchProxy(int zk_port) : zk_port_(zk_port) {
    server_ = std::make_unique<FakeServer>([this](int client, int) { Pump(client); });
  }
  ~NoAddWatchProxy() {
    stop_ = true;
    server_.reset();  // no new relay after this
    for (std::thread& t : threads_) t.join();
  }
  std::string connect() const { return server_->connect(); }
  int refused() const { return refused_; }

 private:
  // One connection at a time would stall the session behind the stream: each gets a thread.
  void Pump(int client) {
    int dup = ::dup(client);
    threads_.emplace_back([this, dup] { Relay(dup); });
  }
  void Relay(int client) {
    int zk = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(zk_port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(zk, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(zk);
      ::close(client);
      return;
    }
    std::string from_client, from_zk;
    bool first = true;
    while (!stop_) {
      pollfd p[2] = {{client, POLLIN, 0}, {zk, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      char buf[65536];
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = ::recv(client, buf, sizeof buf, 0);
        if (n <= 0) break;
        from_client.append(buf, static_cast<std::size_t>(n));
      }
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = ::recv(zk, buf, sizeof buf, 0);
        if (n <= 0) break;
        from_zk.append(buf, static_cast<std::size_t>(n));
      }
      // Whole frames only, so that an injected reply never splits one of ZooKeeper's.
      auto take = [](std::string& bytes) {
        if (bytes.size() < 4) return std::string();
        uint32_t len;
        std::memcpy(&len, bytes.data(), 4);
        len = ntohl(len);
        if (bytes.size() < 4 + len) return std::string();
        std::string frame = bytes.substr(0, 4 + len);
        bytes.erase(0, 4 + len);
        return frame;
      };
      for (std::string frame; !(frame = take(from_client)).empty();) {
        int32_t type = frame.size() >= 12 ? XidOf(frame.substr(8, 4)) : 0;
        if (!first && type == 106) {
          ++refused_;
          SendAll(client, Reply(XidOf(frame.substr(4, 4)), -6));
        } else {
          SendAll(zk, frame);
        }
        first = false;
      }
      for (std::string frame; !(frame = take(from_zk)).empty();) SendAll(client, frame);
    }
    ::close(zk);
    ::close(client);
  }

  const int zk_port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> refused_{0};
  std::vector<std::thread> threads_;  // relays, started by the accepting thread
  std::unique_ptr<FakeServer> server_;
};

// Against a server without addWatch (before 3.6) the resolver says so in its log and follows
// the registry with child watches: the first list, and every change after it.
TEST(WatchStream, TheResolverFallsBackToChildWatchesWithoutAddWatch) {
  ZooKeeperServer zk("watch-stream-fallback");
  auto admin = Connect(zk.connect());
  Instance first;
  first.name = "shop";
  first.id = NewInstanceId();
  first.address = "127.0.0.1";
  first.port = 9091;
  first.metadata = {{std::string(kStatusKey), "UP"}};
  Registrar registrar(admin, "/services", first);
  ASSERT_TRUE(registrar.Register().ok());

  std::string port = zk.connect().substr(zk.connect().rfind(':') + 1);
  NoAddWatchProxy proxy(std::stoi(port));
  std::mutex log_mu;
  std::vector<std::string> logged;
  SetLogSink([&](LogLevel, std::string_view message) {
    std::lock_guard<std::mutex> lock(log_mu);
    logged.emplace_back(message);
  });
  {
    auto session = Connect(proxy.connect());
    Resolver resolver(session, "/services");
    resolver.Watch("shop", [](const InstanceList&) {});
    EXPECT_TRUE(Eventually([&] { return resolver.Current("shop")->size() == 1; }));
    EXPECT_GE(proxy.refused(), 1) << "the resolver never tried addWatch";
    Instance second = first;
    second.id = NewInstanceId();
    Registrar registrar2(admin, "/services", second);
    ASSERT_TRUE(registrar2.Register().ok());
    EXPECT_TRUE(Eventually([&] { return resolver.Current("shop")->size() == 2; }))
        << "a change after the fallback was missed";
  }
  SetLogSink(nullptr);
  std::lock_guard<std::mutex> lock(log_mu);
  bool said = false;
  for (const std::string& line : logged) {
    said = said || line.find("does not support persistent recursive watches") != std::string::npos;
  }
  EXPECT_TRUE(said) << "the fallback was not logged";
}

}  // namespace
}  // namespace rpcboot::discovery
