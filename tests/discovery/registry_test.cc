// The session, registrar and resolver against a real ZooKeeper server on 127.0.0.1. Built twice:
// registry_test (resolvers on persistent recursive watches, the default) and
// registry_child_watches_test (RPCBOOT_TEST_CHILD_WATCHES: on one-shot child watches, as against
// a server before 3.6).
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <thread>

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

Instance MakeInstance(const std::string& name, int port) {
  Instance i;
  i.name = name;
  i.id = NewInstanceId();
  i.address = "127.0.0.1";
  i.port = port;
  i.metadata = {{std::string(kStatusKey), "UP"},
                {std::string(kServicesKey), "shop.ShopService"},
                {std::string(kProtocolsKey), "grpc"},
                {std::string(kGrpcPortKey), std::to_string(port)}};
  return i;
}

std::shared_ptr<Session> Connect(const std::string& connect,
                                 milliseconds timeout = milliseconds(2000),
                                 std::string digest = "") {
  auto session = std::make_shared<Session>(SessionOptions{connect, timeout, std::move(digest)});
  session->Start();
  EXPECT_TRUE(session->WaitConnected(std::chrono::seconds(10))) << "no session with " << connect;
  return session;
}

#ifdef RPCBOOT_TEST_CHILD_WATCHES
constexpr bool kRecursive = false;
#else
constexpr bool kRecursive = true;
#endif

// Makes `resolver` of this build's kind.
void Configure(Resolver& resolver) { resolver.SetRecursiveWatch(kRecursive); }

std::vector<std::string> Ids(const InstanceList& list) {
  std::vector<std::string> ids;
  for (const Instance& i : *list) ids.push_back(i.id);
  return ids;
}

bool Lists(Resolver& resolver, const std::string& name, const std::string& id) {
  // Held for the loop: the temporary would die before the loop's first step, and a republish
  // frees the list it pointed to.
  const InstanceList list = resolver.Current(name);
  for (const Instance& i : *list)
    if (i.id == id) return true;
  return false;
}

TEST(Registry, InstanceAppearsInAClientsViewAndDisappearsOnDeregister) {
  ZooKeeperServer zk("registry-basic");
  auto server_session = Connect(zk.connect());
  auto client_session = Connect(zk.connect());
  Resolver resolver(client_session, "/services");
  Configure(resolver);
  std::atomic<int> updates{0};
  resolver.Watch("shop", [&](const InstanceList&) { ++updates; });
  EXPECT_TRUE(resolver.Current("shop")->empty());

  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(server_session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  EXPECT_EQ(registrar.path(), "/services/shop/" + self.id);
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));
  const InstanceList view = resolver.Current("shop");  // held while `seen` is used
  const Instance& seen = view->front();
  EXPECT_EQ(seen.address, "127.0.0.1");
  EXPECT_EQ(seen.PortFor("grpc"), 9091);

  // The node is ephemeral and owned by the registering session.
  absl::StatusOr<Session::Node> node = client_session->Get(registrar.path(), false);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->ephemeral_owner, server_session->session_id());
  EXPECT_EQ(node->data, ToJson(self));

  Instance other = MakeInstance("shop", 9092);
  Registrar second(server_session, "/services", other);
  ASSERT_TRUE(second.Register().ok());
  ASSERT_TRUE(Eventually([&] { return resolver.Current("shop")->size() == 2; }));

  ASSERT_TRUE(registrar.Deregister().ok());
  ASSERT_TRUE(Eventually([&] { return !Lists(resolver, "shop", self.id); }));
  EXPECT_EQ(Ids(resolver.Current("shop")), std::vector<std::string>{other.id});
  EXPECT_GE(updates.load(), 3);

  // The parents are container nodes: once empty, ZooKeeper removes them by itself (the test
  // server checks every second), and a later registration creates them again.
  ASSERT_TRUE(second.Deregister().ok());
  EXPECT_TRUE(Eventually([&] { return !*client_session->Exists("/services/shop", false); }));
  ASSERT_TRUE(second.Register().ok());
  EXPECT_TRUE(Eventually([&] { return Lists(resolver, "shop", other.id); }));
}

// A listener may let go of the last owner of its resolver, and of the session with it (a channel
// closed by its user while its list updates): with child watches the listener runs on the
// session's own thread, which cannot remove an observer it is calling nor join itself. The
// resolver and the session go, nothing hangs, and a second resolver on a session of its own goes
// on working.
TEST(Registry, ALastOwnerLetGoInsideAListenerTakesTheResolverAndSessionWithIt) {
  ZooKeeperServer zk("registry-let-go");
  auto server_session = Connect(zk.connect());
  auto session = Connect(zk.connect());
  std::weak_ptr<Session> weak_session = session;
  std::mutex mu;
  auto owner = std::make_shared<Resolver>(std::move(session), "/services");
  std::weak_ptr<Resolver> weak_owner = owner;
  Configure(*owner);
  std::atomic<bool> let_go{false};
  owner->Watch("shop", [&](const InstanceList& list) {
    if (list->empty()) return;
    std::shared_ptr<Resolver> last;
    {
      std::lock_guard<std::mutex> lock(mu);
      last.swap(owner);
    }
    last.reset();  // ~Resolver here, inside its own listener
    let_go = true;
  });
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(server_session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  ASSERT_TRUE(Eventually([&] { return let_go.load(); }));
  EXPECT_TRUE(weak_owner.expired());
  // The session is closed on another thread, shortly after.
  EXPECT_TRUE(Eventually([&] { return weak_session.expired(); }));

  auto other_session = Connect(zk.connect());
  Resolver other(other_session, "/services");
  Configure(other);
  other.Watch("shop", [](const InstanceList&) {});
  EXPECT_TRUE(Eventually([&] { return Lists(other, "shop", self.id); }));
  Instance second = MakeInstance("shop", 9092);
  Registrar second_registrar(server_session, "/services", second);
  ASSERT_TRUE(second_registrar.Register().ok());
  EXPECT_TRUE(Eventually([&] { return Lists(other, "shop", second.id); }));
}

TEST(Registry, SessionEndRemovesTheInstance) {
  ZooKeeperServer zk("registry-close");
  auto client_session = Connect(zk.connect());
  Resolver resolver(client_session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  Instance self = MakeInstance("shop", 9091);
  {
    auto server_session = Connect(zk.connect());
    Registrar registrar(server_session, "/services", self);
    ASSERT_TRUE(registrar.Register().ok());
    ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));
  }  // the session closes: its ephemeral node goes at once
  EXPECT_TRUE(Eventually([&] { return resolver.Current("shop")->empty(); }));
}

TEST(Registry, ForcedSessionExpiryLeadsToReRegistration) {
  ZooKeeperServer zk("registry-expiry");
  auto server_session = Connect(zk.connect());
  auto client_session = Connect(zk.connect());
  Resolver resolver(client_session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(server_session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  int64_t old_session = server_session->session_id();

  // Expire the registrar's session the way ZooKeeper's own tests do: a second handle with the
  // same id and password, closed as soon as it holds the session. The original client may win
  // the session back first (it reconnects at once); then the close does not expire it, and the
  // kill is tried again.
  std::string password = server_session->session_password();
  bool expired = false;
  for (int attempt = 0; attempt < 10 && !expired; ++attempt) {
    clientid_t id{};
    id.client_id = old_session;
    std::memcpy(id.passwd, password.data(), sizeof id.passwd);
    zhandle_t* thief = zookeeper_init(zk.connect().c_str(), nullptr, 2000, &id, nullptr, 0);
    ASSERT_NE(thief, nullptr);
    for (int i = 0; i < 5000 && zoo_state(thief) != ZOO_CONNECTED_STATE; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    zookeeper_close(thief);
    expired =
        Eventually([&] { return server_session->session_id() != old_session; }, milliseconds(3000));
  }
  ASSERT_TRUE(expired) << "the session never expired";
  ASSERT_TRUE(Eventually([&] { return registrar.registered() && registrar.writes() == 2; }))
      << "writes " << registrar.writes();
  absl::StatusOr<Session::Node> node = client_session->Get(registrar.path(), false);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->ephemeral_owner, server_session->session_id());
  EXPECT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));
}

TEST(Registry, NodeDeletedByHandIsRegisteredAgain) {
  ZooKeeperServer zk("registry-delete");
  auto server_session = Connect(zk.connect());
  auto admin = Connect(zk.connect());
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(server_session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  for (int round = 2; round <= 3; ++round) {
    ASSERT_TRUE(admin->Delete(registrar.path()).ok());
    ASSERT_TRUE(Eventually([&] { return registrar.writes() == round && registrar.registered(); }))
        << "round " << round;
    absl::StatusOr<bool> exists = admin->Exists(registrar.path(), false);
    ASSERT_TRUE(exists.ok());
    EXPECT_TRUE(*exists);
  }
  // After Deregister the registrar stops keeping it.
  ASSERT_TRUE(registrar.Deregister().ok());
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_FALSE(*admin->Exists(registrar.path(), false));
}

TEST(Registry, OutageLongerThanTheSessionTimeoutKeepsTheViewAndRegistersAgain) {
  ZooKeeperServer zk("registry-outage");
  auto server_session = Connect(zk.connect(), milliseconds(1500));
  auto client_session = Connect(zk.connect(), milliseconds(1500));
  Resolver resolver(client_session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(server_session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));
  int64_t old_session = server_session->session_id();

  zk.Stop();
  // Three session timeouts without ZooKeeper: the view stays as it was.
  for (int i = 0; i < 45; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    ASSERT_TRUE(Lists(resolver, "shop", self.id)) << "view emptied after " << i * 100 << " ms";
  }
  EXPECT_FALSE(server_session->connected());
  zk.Start();  // same port, same data

  // Both sessions come back (each on its own schedule); the checks below read through the
  // client's.
  ASSERT_TRUE(Eventually([&] {
    return server_session->connected() && server_session->session_id() != old_session &&
           registrar.registered() && client_session->connected();
  }));
  absl::StatusOr<Session::Node> node = client_session->Get(registrar.path(), false);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->ephemeral_owner, server_session->session_id());
  // Once the old session expires on the server, the node (of the new session) stays.
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_TRUE(*client_session->Exists(registrar.path(), false));
  EXPECT_TRUE(Lists(resolver, "shop", self.id));
}

TEST(Registry, GarbageAndForeignNodesNeverBreakTheView) {
  ZooKeeperServer zk("registry-garbage");
  auto session = Connect(zk.connect());
  Resolver resolver(session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));

  auto admin = Connect(zk.connect());
  ASSERT_TRUE(
      admin->Create("/services/shop/garbage", "\xff{not json", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin->Create("/services/shop/empty", "", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(admin
                  ->Create("/services/shop/wrong-types", R"({"name":"shop","id":7,"address":1})",
                           Session::Mode::kPersistent)
                  .ok());
  // A plain Curator instance (no Spring payload, no rpcboot metadata): listed, speaks nothing
  // rpcboot knows.
  ASSERT_TRUE(admin
                  ->Create("/services/shop/curator-1",
                           R"({"name":"shop","id":"curator-1","address":"10.0.0.9","port":8080,)"
                           R"("sslPort":null,"payload":null,"registrationTimeUTC":1,)"
                           R"("serviceType":"DYNAMIC","uriSpec":null})",
                           Session::Mode::kPersistent)
                  .ok());
  Instance down = MakeInstance("shop", 9093);
  down.metadata[std::string(kStatusKey)] = "OUT_OF_SERVICE";
  ASSERT_TRUE(
      admin->Create("/services/shop/" + down.id, ToJson(down), Session::Mode::kPersistent).ok());

  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", "curator-1"); }));
  InstanceList list = resolver.Current("shop");
  EXPECT_EQ(list->size(), 2u);
  EXPECT_TRUE(Lists(resolver, "shop", self.id));
  EXPECT_FALSE(Lists(resolver, "shop", down.id));
  for (const Instance& i : *list) {
    if (i.id == "curator-1") {
      EXPECT_FALSE(i.PortFor("grpc").has_value());
    }
  }

  // A node that turns into garbage drops out; the rest stay.
  ASSERT_TRUE(admin->Delete("/services/shop/curator-1").ok());
  ASSERT_TRUE(admin->Create("/services/shop/curator-1", "[]", Session::Mode::kPersistent).ok());
  ASSERT_TRUE(Eventually([&] { return !Lists(resolver, "shop", "curator-1"); }));
  EXPECT_TRUE(Lists(resolver, "shop", self.id));
}

TEST(Registry, TheViewSurvivesTheApplicationNodeComingAndGoing) {
  // Another client creates and deletes /services/shop as fast as it can (as ZooKeeper's
  // container reaper and a registrar do at the edges): the resolver sees the node missing in one
  // call and present in the next, many times. It must keep working.
  ZooKeeperServer zk("registry-churn");
  auto session = Connect(zk.connect());
  Resolver resolver(session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  auto churn = Connect(zk.connect());
  // A persistent parent: a container would be reaped whenever the loop leaves it empty.
  ASSERT_TRUE(churn->Create("/services", "", Session::Mode::kPersistent).ok());
  for (int i = 0; i < 400; ++i) {
    absl::Status created = churn->Create("/services/shop", "", Session::Mode::kPersistent);
    ASSERT_TRUE(created.ok()) << created;
    absl::Status deleted = churn->Delete("/services/shop");
    ASSERT_TRUE(deleted.ok()) << deleted;
  }
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(churn, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  EXPECT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }))
      << "the resolver stopped following the registry";
}

TEST(Registry, ChrootAndSeveralHosts) {
  ZooKeeperServer zk("registry-chroot");
  {
    auto root = Connect(zk.connect());
    ASSERT_TRUE(root->Create("/apps", "", Session::Mode::kPersistent).ok());
  }
  // A dead host first in the list: the client moves on to the live one.
  std::string connect = "127.0.0.1:1," + zk.connect() + "/apps";
  ASSERT_TRUE(Session::Validate(SessionOptions{connect}).ok());
  auto session = Connect(connect);
  Registrar registrar(session, "/services", MakeInstance("shop", 9091));
  ASSERT_TRUE(registrar.Register().ok());
  auto root = Connect(zk.connect());
  absl::StatusOr<std::vector<std::string>> children = root->Children("/apps/services/shop", false);
  ASSERT_TRUE(children.ok()) << children.status();
  EXPECT_EQ(children->size(), 1u);
}

TEST(Registry, DigestAclLetsOthersReadButNotWrite) {
  ZooKeeperServer zk("registry-acl");
  auto owner = Connect(zk.connect(), milliseconds(2000), "rpcboot:secret");
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(owner, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  auto stranger = Connect(zk.connect());
  absl::StatusOr<Session::Node> node = stranger->Get(registrar.path(), false);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->data, ToJson(self));
  absl::Status s = stranger->Set(registrar.path(), "{}");
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_TRUE(owner->Set(registrar.path(), ToJson(self)).ok());
  EXPECT_EQ(stranger->Get(registrar.path(), false)->data, ToJson(self));
}

// A child node only its creator may read (a stranger's, or a broken deploy's) is skipped and
// logged: it neither freezes the view of a client already watching nor empties the view of one
// that starts afterwards.
TEST(Registry, AnUnreadableChildIsSkippedAndNeverFreezesTheView) {
  ZooKeeperServer zk("registry-unreadable");
  auto session = Connect(zk.connect());
  Resolver resolver(session, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(session, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", self.id); }));

  zhandle_t* stranger = zookeeper_init(zk.connect().c_str(), nullptr, 2000, nullptr, nullptr, 0);
  ASSERT_NE(stranger, nullptr);
  ASSERT_TRUE(Eventually([&] { return zoo_state(stranger) == ZOO_CONNECTED_STATE; }));
  ASSERT_EQ(zoo_add_auth(stranger, "digest", "mallory:x", 9, nullptr, nullptr), ZOK);
  Instance hidden = MakeInstance("shop", 9092);
  std::string json = ToJson(hidden);
  ASSERT_EQ(zoo_create(stranger, ("/services/shop/" + hidden.id).c_str(), json.data(),
                       static_cast<int>(json.size()), &ZOO_CREATOR_ALL_ACL, 0, nullptr, 0),
            ZOK);
  // Another instance registers after it: the view follows.
  Instance later = MakeInstance("shop", 9093);
  Registrar later_registrar(session, "/services", later);
  ASSERT_TRUE(later_registrar.Register().ok());
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", later.id); }));
  EXPECT_TRUE(Lists(resolver, "shop", self.id));
  EXPECT_FALSE(Lists(resolver, "shop", hidden.id));

  auto fresh_session = Connect(zk.connect());
  Resolver fresh(fresh_session, "/services");
  Configure(fresh);
  fresh.Watch("shop", [](const InstanceList&) {});
  EXPECT_EQ(fresh.Current("shop")->size(), 2u);
  EXPECT_TRUE(Lists(fresh, "shop", self.id));
  EXPECT_TRUE(Lists(fresh, "shop", later.id));
  zookeeper_close(stranger);
}

// 10,000 registrations load into one view in the first Watch (pipelined reads: the synchronous
// reader took longer than a call's 2 s timeout at 5,000). Created with pipelined creates too.
TEST(Registry, TenThousandInstancesLoadInOneView) {
  constexpr int kInstances = 10000;
  ZooKeeperServer zk("registry-fleet");
  auto admin = Connect(zk.connect(), milliseconds(10000));
  ASSERT_TRUE(admin->CreateParents("/services/shop/x").ok());
  zhandle_t* zh = zookeeper_init(zk.connect().c_str(), nullptr, 10000, nullptr, nullptr, 0);
  ASSERT_NE(zh, nullptr);
  ASSERT_TRUE(Eventually([&] { return zoo_state(zh) == ZOO_CONNECTED_STATE; }));
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    int failed = 0;
  } pending;
  auto done = [](int rc, const char*, const void* data) {
    auto* p = static_cast<Pending*>(const_cast<void*>(data));
    std::lock_guard<std::mutex> lock(p->mu);
    if (rc != ZOK) ++p->failed;
    --p->in_flight;
    p->cv.notify_all();
  };
  for (int i = 0; i < kInstances; ++i) {
    std::unique_lock<std::mutex> lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.in_flight < 500; });
    ++pending.in_flight;
    lock.unlock();
    Instance instance = MakeInstance("shop", 10000 + i % 50000);
    std::string json = ToJson(instance);
    ASSERT_EQ(zoo_acreate(zh, ("/services/shop/" + instance.id).c_str(), json.data(),
                          static_cast<int>(json.size()), &ZOO_OPEN_ACL_UNSAFE, 0, done, &pending),
              ZOK);
  }
  {
    std::unique_lock<std::mutex> lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.in_flight == 0; });
    ASSERT_EQ(pending.failed, 0);
  }
  zookeeper_close(zh);

  auto session = Connect(zk.connect(), milliseconds(10000));
  Resolver resolver(session, "/services");
  Configure(resolver);
  auto start = std::chrono::steady_clock::now();
  std::atomic<std::size_t> heard{0};
  resolver.Watch("shop", [&](const InstanceList& list) { heard = list->size(); });
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(resolver.Current("shop")->size(), static_cast<std::size_t>(kInstances));
  EXPECT_EQ(heard.load(), static_cast<std::size_t>(kInstances)) << "one view, all of them";
  std::printf("cold load of %d instances: %.0f ms\n", kInstances,
              std::chrono::duration<double, std::milli>(took).count());
}

// A client started while ZooKeeper is down serves the snapshot its predecessor left (and says
// so in its log), and switches to the live list when ZooKeeper answers.
TEST(Registry, ASnapshotServesAStartDuringAnOutageUntilZooKeeperAnswers) {
  std::string dir = std::string(RPCBOOT_TEST_TMP) + "/snapshots-outage";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  ZooKeeperServer zk("registry-snapshot");
  Instance first = MakeInstance("shop", 9091);
  {
    auto admin = Connect(zk.connect());
    ASSERT_TRUE(admin->CreateParents("/services/shop/x").ok());
    ASSERT_TRUE(
        admin->Create("/services/shop/" + first.id, ToJson(first), Session::Mode::kPersistent)
            .ok());
    Resolver resolver(admin, "/services");
    Configure(resolver);
    resolver.SetSnapshotDir(dir);
    resolver.Watch("shop", [](const InstanceList&) {});
    ASSERT_TRUE(Lists(resolver, "shop", first.id));
    // The snapshot is written within a second or so of the change.
    ASSERT_TRUE(Eventually(
        [&] {
          std::ifstream in(dir + "/services.shop.snapshot");
          std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          return text.find(first.id) != std::string::npos;
        },
        milliseconds(10000)));
  }
  zk.Stop();

  std::mutex mu;
  std::vector<std::string> lines;
  SetLogSink([&](LogLevel, std::string_view message) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(message);
  });
  auto logged = [&](const std::string& text) {
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& line : lines)
      if (line.find(text) != std::string::npos) return true;
    return false;
  };
  auto session = std::make_shared<Session>(SessionOptions{zk.connect(), milliseconds(4000), ""});
  session->Start();
  Resolver resolver(session, "/services");
  Configure(resolver);
  resolver.SetSnapshotDir(dir);
  std::atomic<int> heard{0};
  resolver.Watch("shop", [&](const InstanceList&) { ++heard; });
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", first.id); }, milliseconds(10000)))
      << "the snapshot was not served";
  EXPECT_TRUE(logged("from the snapshot " + dir + "/services.shop.snapshot"));

  zk.Start();
  ASSERT_TRUE(session->WaitConnected(std::chrono::seconds(20)));
  auto admin = Connect(zk.connect());
  Instance second = MakeInstance("shop", 9092);
  ASSERT_TRUE(
      admin->Create("/services/shop/" + second.id, ToJson(second), Session::Mode::kPersistent)
          .ok());
  ASSERT_TRUE(Eventually([&] { return Lists(resolver, "shop", second.id); }, milliseconds(10000)));
  EXPECT_TRUE(Lists(resolver, "shop", first.id));
  EXPECT_TRUE(logged("read from ZooKeeper; the snapshot is no longer used"));
  SetLogSink(nullptr);
}

// A snapshot that is not one (garbage, another path) is logged and ignored.
TEST(Registry, ABadSnapshotIsIgnored) {
  std::string dir = std::string(RPCBOOT_TEST_TMP) + "/snapshots-bad";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  {
    std::ofstream out(dir + "/services.shop.snapshot");
    out << "\xff garbage\n{}\n";
  }
  // A device in a snapshot's place is read up to a bound, not until memory runs out.
  ASSERT_EQ(::symlink("/dev/zero", (dir + "/services.order.snapshot").c_str()), 0);
  ZooKeeperServer zk("registry-snapshot-bad");
  std::string connect = zk.connect();
  zk.Stop();
  std::atomic<bool> warned{false};
  std::atomic<bool> warned_endless{false};
  SetLogSink([&](LogLevel, std::string_view message) {
    if (message.find("ignoring the snapshot " + dir + "/services.shop.snapshot") !=
        std::string_view::npos)
      warned = true;
    if (message.find("ignoring the snapshot " + dir +
                     "/services.order.snapshot: it is larger than 256 MiB") !=
        std::string_view::npos)
      warned_endless = true;
  });
  auto session = std::make_shared<Session>(SessionOptions{connect, milliseconds(4000), ""});
  session->Start();
  Resolver resolver(session, "/services");
  Configure(resolver);
  resolver.SetSnapshotDir(dir);
  resolver.Watch("shop", [](const InstanceList&) {});
  resolver.Watch("order", [](const InstanceList&) {});
  EXPECT_TRUE(Eventually([&] { return warned.load(); }, milliseconds(10000)));
  EXPECT_TRUE(Eventually([&] { return warned_endless.load(); }, milliseconds(10000)));
  EXPECT_TRUE(resolver.Current("shop")->empty());
  EXPECT_TRUE(resolver.Current("order")->empty());
  SetLogSink(nullptr);
}

// With a digest, the application node is fenced: an unauthenticated client (the attacker)
// cannot add a rogue sibling, delete the instance or change it, even when it created the
// application node first, with an open ACL, before the service started.
TEST(Registry, DigestFencesTheApplicationNodeAgainstOthers) {
  ZooKeeperServer zk("registry-fence");
  auto attacker = Connect(zk.connect());
  ASSERT_TRUE(attacker->CreateParents("/services/shop/x").ok());  // open, before the service
  auto owner = Connect(zk.connect(), milliseconds(2000), "shop:secret");
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(owner, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());

  Instance rogue = MakeInstance("shop", 6666);
  absl::Status s =
      attacker->Create("/services/shop/" + rogue.id, ToJson(rogue), Session::Mode::kPersistent);
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  s = attacker->Delete(registrar.path());
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  s = attacker->Set(registrar.path(), ToJson(rogue));
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  // Readers still read everything.
  Resolver resolver(attacker, "/services");
  Configure(resolver);
  resolver.Watch("shop", [](const InstanceList&) {});
  ASSERT_EQ(resolver.Current("shop")->size(), 1u);
  EXPECT_TRUE(Lists(resolver, "shop", self.id));
  // Another instance of the same application (same identity) registers beside it.
  auto peer = Connect(zk.connect(), milliseconds(2000), "shop:secret");
  Instance second = MakeInstance("shop", 9092);
  Registrar second_registrar(peer, "/services", second);
  EXPECT_TRUE(second_registrar.Register().ok());
}

// Without a digest nothing stops a stranger from writing, but the owner notices a changed node
// and writes it back.
TEST(Registry, ANodeChangedBySomeoneElseIsWrittenBack) {
  ZooKeeperServer zk("registry-rewrite");
  auto owner = Connect(zk.connect());
  Instance self = MakeInstance("shop", 9091);
  Registrar registrar(owner, "/services", self);
  ASSERT_TRUE(registrar.Register().ok());
  auto stranger = Connect(zk.connect());
  Instance rogue = self;
  rogue.address = "10.6.6.6";
  ASSERT_TRUE(stranger->Set(registrar.path(), ToJson(rogue)).ok());
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<Session::Node> node = stranger->Get(registrar.path(), false);
    return node.ok() && node->data == ToJson(self);
  })) << "the changed node was not written back";
}

TEST(Registry, BadConnectStringsAreRejectedWithTheReason) {
  struct Case {
    std::string connect;
    std::string says;
  } cases[] = {
      {"", "empty"},
      {"localhost", "'localhost' is not host:port"},
      {"a:1,b", "'b' is not host:port"},
      {"a:99999", "'a:99999' is not host:port"},
      {"a:1/apps/", "must not end with '/'"},
      {"a:1/apps//x", "empty path element"},
      {"[::1/apps", "'[::1' is not host:port"},
      {"::1:2181", "'::1:2181' is not host:port"},  // IPv6 needs its brackets
      {"zk 1:2181", "'zk 1:2181' is not host:port"},
  };
  for (const Case& c : cases) {
    absl::Status s = Session::Validate(SessionOptions{c.connect});
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.connect;
    EXPECT_NE(std::string(s.message()).find(c.says), std::string::npos) << s;
  }
  EXPECT_FALSE(Session::Validate(SessionOptions{"a:1", milliseconds(2000), "nocolon"}).ok());
  for (const char* good :
       {"[::1]:2181/apps", "zk-1.example_a:2181,10.0.0.2:2182", "[fe80::1%eth0]:1"})
    EXPECT_TRUE(Session::Validate(SessionOptions{good}).ok()) << good;
}

// A name that does not resolve leaves no handle to wait on: the next try comes a session timeout
// later, not at every one of the session's 200 ms ticks (15 tries and 30 log lines in 3 s before).
TEST(Registry, AConnectStringThatDoesNotResolveIsTriedOncePerSessionTimeout) {
  std::atomic<int> tries{0};
  SetLogSink([&](LogLevel, std::string_view message) {
    if (message.find("cannot create a handle for 'nosuchhost.invalid:2181'") !=
        std::string_view::npos)
      ++tries;
  });
  {
    auto session = std::make_shared<Session>(
        SessionOptions{"nosuchhost.invalid:2181", milliseconds(60000), ""});
    session->Start();
    ASSERT_TRUE(Eventually([&] { return tries.load() >= 1; }, milliseconds(30000)));
    std::this_thread::sleep_for(milliseconds(1500));  // seven ticks of the session's thread
    EXPECT_EQ(tries.load(), 1);
    EXPECT_FALSE(session->connected());
  }
  SetLogSink(nullptr);
}

TEST(Registry, UnreachableZooKeeperKeepsRetrying) {
  // Nothing listens on this port at first; the registration waits, then lands when a server
  // comes up there.
  ZooKeeperServer zk("registry-late");
  std::string port = zk.port();
  zk.Stop();
  auto session = std::make_shared<Session>(SessionOptions{"127.0.0.1:" + port, milliseconds(2000)});
  session->Start();
  Registrar registrar(session, "/services", MakeInstance("shop", 9091));
  absl::Status s = registrar.Register();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  zk.Start();
  EXPECT_TRUE(Eventually([&] { return registrar.registered(); }));
}

}  // namespace
}  // namespace rpcboot::discovery
