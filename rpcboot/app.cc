#include "rpcboot/app.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "discovery/instance.h"
#include "discovery/registrar.h"
#include "discovery/resolver.h"
#include "discovery/session.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/address.h"
#include "rpcboot/internal/admin_server.h"
#include "rpcboot/internal/discovery_channel.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {
namespace {

using internal::Log;

// The write end of the running App's stop pipe, for the signal handler.
std::atomic<int> g_stop_fd{-1};

void OnSignal(int) {
  int fd = g_stop_fd.load();
  if (fd >= 0) {
    char byte = 's';
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
  }
}

std::vector<std::string> ProgramArguments(int argc, const char* const* argv) {
  return std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc);
}

std::string DetectHost() {
  ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (::getifaddrs(&list) != 0) return found;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    found = text;
    break;
  }
  ::freeifaddrs(list);
  return found;
}

}  // namespace

// Watches one flag node (<migration.flag_root>/<app>/<service>) and applies its mode to the
// client's migration channel: a value it cannot read is logged and ignored (the mode stays); a
// deleted node brings back the configured mode. ZooKeeper watches are one-shot: each read re-arms.
class MigrationFlag final : public discovery::Session::Observer {
 public:
  MigrationFlag(std::shared_ptr<discovery::Session> session, std::string path,
                std::shared_ptr<MigrationChannel> channel)
      : session_(std::move(session)),
        path_(std::move(path)),
        channel_(std::move(channel)),
        configured_(channel_->mode()) {}
  ~MigrationFlag() override {
    if (started_) session_->RemoveObserver(this);
  }
  MigrationFlag(const MigrationFlag&) = delete;
  MigrationFlag& operator=(const MigrationFlag&) = delete;

  void Start() {
    started_ = true;
    session_->AddObserver(this);
    if (session_->connected()) Read();
  }

  void OnConnected(bool) override { Read(); }
  void OnNodeEvent(discovery::NodeEvent, const std::string& path) override {
    if (path == path_) Read();
  }
  void OnTick() override {
    if (retry_.load()) Read();
  }

 private:
  void Read() {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<bool> exists = session_->Exists(path_, /*watch=*/true);
    retry_ = !exists.ok();
    if (!exists.ok()) return;
    if (!*exists) {
      if (last_mzxid_ != 0) {
        last_mzxid_ = 0;
        Apply(configured_, "flag " + path_ + " deleted: the configured mode");
      }
      return;
    }
    absl::StatusOr<discovery::Session::Node> node = session_->Get(path_, /*watch=*/true);
    if (!node.ok()) {
      retry_ = !absl::IsNotFound(node.status());  // deleted in between: its watch fires
      return;
    }
    if (node->mzxid == last_mzxid_) return;  // a reconnect, or a second watch: nothing new
    last_mzxid_ = node->mzxid;
    std::string source = absl::StrCat("flag ", path_, " version ", node->version);
    absl::StatusOr<MigrationMode> mode = MigrationMode::Parse(node->data);
    if (!mode.ok()) {
      Log(LogLevel::kWarning, absl::StrCat(source, ": ", mode.status().message(), "; keeping ",
                                           channel_->mode().ToString()));
      return;
    }
    Apply(*mode, source);
  }

  void Apply(const MigrationMode& mode, const std::string& source) {
    if (absl::Status s = channel_->SetMode(mode, source); !s.ok())
      Log(LogLevel::kWarning, std::string(s.message()));
  }

  std::shared_ptr<discovery::Session> session_;
  const std::string path_;
  std::shared_ptr<MigrationChannel> channel_;
  const MigrationMode configured_;
  bool started_ = false;
  std::atomic<bool> retry_{false};
  std::mutex mu_;           // one read at a time
  int64_t last_mzxid_ = 0;  // of the value applied or refused last; 0: no node
};

absl::StatusOr<std::unique_ptr<App>> App::Create(int argc, const char* const* argv) {
  absl::StatusOr<AppConfig> config = LoadConfig(ProgramArguments(argc, argv));
  if (!config.ok()) return config.status();
  return FromConfig(std::move(*config));
}

std::unique_ptr<App> App::FromCommandLine(int argc, const char* const* argv) {
  if (WantsHelp(ProgramArguments(argc, argv))) {
    std::fprintf(stdout, "%s", ConfigHelp().c_str());
    std::exit(0);
  }
  absl::StatusOr<std::unique_ptr<App>> app = Create(argc, argv);
  if (app.ok()) return std::move(*app);
  std::string program = argc > 0 ? argv[0] : "rpcboot";
  program = program.substr(program.rfind('/') + 1);
  std::fprintf(stderr, "%s: %s\n", program.c_str(), std::string(app.status().message()).c_str());
  std::exit(2);
}

absl::StatusOr<std::unique_ptr<App>> App::FromConfig(AppConfig config) {
  if (config.name.empty()) return absl::InvalidArgumentError("app.name is missing");
  // A configured client that can never reach its service is a configuration error now, not an
  // exception when the program first asks for it.
  for (const auto& [service, client] : config.clients) {
    if (std::string known; !internal::LoadBalancerExists(client.channel.load_balancer, &known)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "clients.", service, ".load_balancer: '", client.channel.load_balancer,
          "' is not a load balancer (known: ", known,
          "; register your own with rpcboot::RegisterLoadBalancer before App::FromConfig)"));
    }
    if (!client.address.empty()) {
      if (absl::StatusOr<internal::Address> address = internal::ParseAddress(client.address);
          !address.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("clients.", service, ".address: ", address.status().message()));
      }
    } else if (client.mode_set && client.migration.mode.kind == MigrationMode::Kind::kLocal) {
      // local only until switched; the remote side is made when it can be
    } else if (config.registry.zookeeper.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("clients.", service,
                                                     ": no way to reach it: set clients.", service,
                                                     ".address or registry.zookeeper"));
    }
  }
  if (config.server.grpc_port < 0 && config.server.thrift_port < 0) {
    Log(LogLevel::kInfo, absl::StrCat(config.name, ": no server port configured (client only)"));
  }
  return std::unique_ptr<App>(new App(std::move(config)));
}

App::App(AppConfig config)
    : config_(std::move(config)), server_(std::make_unique<Server>(config_.server)) {
  internal::SetMetricsOn(config_.metrics_enabled);
  effective_config_ = EffectiveConfig(config_);  // the configuration never changes after this
  TracingOptions tracing = config_.tracing;
  tracing.service_name = config_.name;
  if (absl::Status s = ConfigureTracing(tracing); !s.ok()) {
    Log(LogLevel::kError, absl::StrCat(config_.name, ": ", s.message(), "; tracing unchanged"));
  }
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
}

App::~App() {
  Shutdown();
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    channels_.clear();  // their flag watchers leave the session first
  }
  resolver_.reset();
  session_.reset();
  for (int fd : stop_pipe_)
    if (fd >= 0) ::close(fd);
}

void App::EnsureSession() {
  std::lock_guard<std::mutex> lock(session_mu_);
  if (session_ != nullptr || config_.registry.zookeeper.empty()) return;
  session_ = std::make_shared<discovery::Session>(discovery::SessionOptions{
      config_.registry.zookeeper, config_.registry.session_timeout, config_.registry.digest});
  session_->Start();
  resolver_ = std::make_shared<discovery::Resolver>(session_, config_.registry.base_path);
  resolver_->SetRecursiveWatch(config_.registry.recursive_watch);
  if (!config_.registry.snapshot_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config_.registry.snapshot_dir, ec);
    if (ec) {
      Log(LogLevel::kWarning, "registry.snapshot_dir: cannot create " +
                                  config_.registry.snapshot_dir + ": " + ec.message() +
                                  "; no snapshots");
    } else {
      resolver_->SetSnapshotDir(config_.registry.snapshot_dir);
    }
  }
}

std::shared_ptr<Channel> App::RemoteChannelFor(const std::string& service,
                                               const ClientConfig& client, std::string* target) {
  if (!client.address.empty()) {
    *target = client.address;
    return MakeChannel(client.address, client.protocol, client.channel);
  }
  if (config_.registry.zookeeper.empty()) {
    throw RpcError(StatusCode::kInvalidArgument,
                   absl::StrCat("no way to reach ", service, ": set registry.zookeeper or clients.",
                                service, ".address"));
  }
  EnsureSession();
  internal::ZooKeeperAddress where{config_.registry.zookeeper, config_.registry.base_path,
                                   client.app};
  *target = where.ToString();
  return internal::MakeDiscoveryChannel(resolver_, client.app, client.protocol, client.channel,
                                        where.ToString(), nullptr, service);
}

void App::AddLocal(const internal::ServiceBinding& binding, std::shared_ptr<void> impl) {
  std::lock_guard<std::mutex> lock(session_mu_);
  if (channels_.count(binding.full_name) != 0) {
    Log(LogLevel::kWarning, "App::Local<" + binding.full_name +
                                "> after its first Client: the clients made so far stay remote");
  }
  locals_[binding.full_name] = LocalImpl{&binding, std::move(impl)};
}

void App::AddServerInterceptor(ServerInterceptor interceptor) {
  server_->AddInterceptor(std::move(interceptor));
}

void App::AddClientInterceptor(ClientInterceptor interceptor) {
  std::lock_guard<std::mutex> lock(session_mu_);
  client_interceptors_.push_back(std::move(interceptor));
}

std::shared_ptr<Channel> App::ChannelFor(const internal::ServiceBinding& binding) {
  const std::string& service = binding.full_name;
  std::optional<LocalImpl> local;
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    if (auto it = channels_.find(service); it != channels_.end()) return it->second.channel;
    if (auto it = locals_.find(service); it != locals_.end() && it->second.binding == &binding)
      local = it->second;
  }
  ClientConfig client;
  auto it = config_.clients.find(service);
  if (it != config_.clients.end()) {
    client = it->second;
  } else {
    client = config_.client_defaults;
    client.app = service.substr(0, service.find('.'));
  }
  ClientChannel made{"", client.protocol, nullptr, nullptr, nullptr};
  if (!local && !client.mode_set) {
    made.channel = RemoteChannelFor(service, client, &made.target);
  } else {
    // A migration: the local side (if registered), the remote one (if reachable), a mode.
    MigrationOptions options = client.migration;
    if (!client.mode_set) options.mode.kind = MigrationMode::Kind::kLocal;
    std::shared_ptr<Channel> remote;
    try {
      remote = RemoteChannelFor(service, client, &made.target);
    } catch (const RpcError& e) {
      if (options.mode.kind != MigrationMode::Kind::kLocal || !local) throw;
      made.target = "(local only: " + e.message() + ")";
    }
    made.migration = MakeMigrationChannel(binding, local ? local->impl : nullptr, std::move(remote),
                                          std::move(options));
    made.channel = made.migration;
    if (config_.migration.flags && !config_.registry.zookeeper.empty()) {
      EnsureSession();
      made.flag = std::make_shared<MigrationFlag>(
          session_, absl::StrCat(config_.migration.flag_root, "/", config_.name, "/", service),
          made.migration);
    }
  }
  std::shared_ptr<MigrationFlag> start;
  std::shared_ptr<Channel> channel;
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    made.channel = WithInterceptors(std::move(made.channel), client_interceptors_);
    // Two threads asking at once: the first one's channel is the one.
    auto placed = channels_.emplace(service, std::move(made));
    if (placed.second) start = placed.first->second.flag;
    channel = placed.first->second.channel;
  }
  if (start) start->Start();  // reads the flag now when ZooKeeper answers
  return channel;
}

ChannelState App::ClientState(const std::string& service) {
  std::shared_ptr<Channel> channel;
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    auto it = channels_.find(service);
    if (it == channels_.end()) return {};
    channel = it->second.channel;
  }
  return channel->State();
}

std::optional<MigrationStats> App::Migration(const std::string& service) {
  std::lock_guard<std::mutex> lock(session_mu_);
  auto it = channels_.find(service);
  if (it == channels_.end() || !it->second.migration) return std::nullopt;
  return it->second.migration->Stats();
}

absl::Status App::SetMigrationMode(const std::string& service, MigrationMode mode,
                                   std::string source) {
  std::shared_ptr<MigrationChannel> migration;
  {
    std::lock_guard<std::mutex> lock(session_mu_);
    auto it = channels_.find(service);
    if (it == channels_.end())
      return absl::NotFoundError(absl::StrCat(service, ": no client of it yet"));
    migration = it->second.migration;
  }
  if (!migration) {
    return absl::FailedPreconditionError(absl::StrCat(
        service, ": its client has no migration (App::Local or clients.", service, ".mode)"));
  }
  return migration->SetMode(mode, std::move(source));
}

absl::Status App::Start() {
  if (started_) return absl::FailedPreconditionError("App::Start called twice");
  started_ = true;
  // A misspelt key of the application's own would otherwise be ignored without a word.
  for (const std::string& unread : config_.settings.Unread()) {
    Log(LogLevel::kWarning, absl::StrCat(config_.name, ": ", unread,
                                         " has not been read by the application (misspelt?)"));
  }
  // A client-only process (no port, no service) serves nothing and registers nothing; it may
  // still have an admin port.
  const bool client_only =
      config_.server.grpc_port < 0 && config_.server.thrift_port < 0 && services_.empty();
  if (!client_only) {
    if (absl::Status s = server_->Start(); !s.ok()) return s;
  }
  serving_ = true;
  if (config_.admin.port >= 0) {
    admin_ = std::make_unique<internal::AdminServer>([this] { return Info(); },
                                                     [this] { return serving_.load(); });
    if (absl::Status s = admin_->Start(config_.admin.host, config_.admin.port); !s.ok()) {
      admin_.reset();
      serving_ = false;
      server_->Shutdown();
      return s;
    }
  }
  if (client_only) return absl::OkStatus();
  if (config_.registry.zookeeper.empty()) {
    Log(LogLevel::kInfo, config_.name + ": no registry.zookeeper: not registering");
    return absl::OkStatus();
  }
  discovery::Serving serving;
  serving.app = config_.name;
  serving.address = !config_.advertise_host.empty() ? config_.advertise_host
                    : config_.server.host != "0.0.0.0" && !config_.server.host.empty()
                        ? config_.server.host
                        : DetectHost();
  serving.grpc_port = grpc_port();
  serving.thrift_port = thrift_port();
  serving.tls = !config_.server.tls.cert_file.empty();
  serving.services = services_;
  serving.weight = config_.weight;
  serving.version = config_.version;
  serving.zone = config_.zone;
  discovery::Instance self = discovery::MakeServingInstance(serving);

  EnsureSession();
  {
    std::lock_guard<std::mutex> lock(session_mu_);  // the admin page reads it
    registrar_ = std::make_unique<discovery::Registrar>(session_, config_.registry.base_path, self);
  }
  session_->WaitConnected(config_.registry.connect_timeout);
  absl::Status s = registrar_->Register();
  if (!s.ok()) {
    if (config_.registry.fail_fast) {
      return absl::UnavailableError(absl::StrCat("cannot register in ZooKeeper ",
                                                 config_.registry.zookeeper, ": ", s.message(),
                                                 " (registry.fail_fast is on)"));
    }
    Log(LogLevel::kWarning,
        absl::StrCat(config_.name, ": ZooKeeper ", config_.registry.zookeeper,
                     " unreachable; serving anyway and registering as soon as it answers"));
  }
  return absl::OkStatus();
}

void App::Stop() {
  if (stop_pipe_[1] >= 0) {
    char byte = 's';
    [[maybe_unused]] ssize_t n = ::write(stop_pipe_[1], &byte, 1);
  }
}

int App::Run() {
  if (absl::Status s = Start(); !s.ok()) {
    Log(LogLevel::kError, absl::StrCat(config_.name, ": cannot start: ", s.message()));
    return 1;
  }
  Log(LogLevel::kInfo, absl::StrCat(config_.name, ": serving (gRPC ", grpc_port(), ", Thrift ",
                                    thrift_port(), "); SIGTERM or SIGINT stops"));
  g_stop_fd.store(stop_pipe_[1]);
  struct sigaction action {};
  action.sa_handler = &OnSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_term {
  }, old_int{};
  ::sigaction(SIGTERM, &action, &old_term);
  ::sigaction(SIGINT, &action, &old_int);
  while (true) {
    pollfd p{stop_pipe_[0], POLLIN, 0};
    int rc = ::poll(&p, 1, -1);
    if (rc > 0) break;
    if (rc < 0 && errno != EINTR) break;
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  g_stop_fd.store(-1);
  Log(LogLevel::kInfo, config_.name + ": stopping");
  Shutdown();
  Log(LogLevel::kInfo, config_.name + ": stopped");
  return 0;
}

void App::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  serving_ = false;  // /health says NOT_SERVING while the instance drains
  if (registrar_ != nullptr) {
    absl::Status s = registrar_->Deregister();
    if (!s.ok()) {
      Log(LogLevel::kWarning,
          absl::StrCat("cannot deregister: ", s.message(), " (the node goes with the session)"));
    }
    // Clients' watches fire within milliseconds; this bounds how late one may still pick us.
    // A node never written had no clients to tell.
    if (registrar_->writes() > 0) std::this_thread::sleep_for(config_.registry.drain);
    std::lock_guard<std::mutex> lock(session_mu_);
    registrar_.reset();
  }
  server_->Shutdown();
  if (admin_ != nullptr) admin_->Stop();
}

int App::admin_port() const { return admin_ != nullptr ? admin_->port() : -1; }

internal::AdminInfo App::Info() {
  internal::AdminInfo info;
  info.app = config_.name;
  info.version = config_.version;
  info.zone = config_.zone;
  info.serving = serving_.load();
  info.grpc_port = grpc_port();
  info.thrift_port = thrift_port();
  info.tls = !config_.server.tls.cert_file.empty();
  info.zookeeper = config_.registry.zookeeper;
  std::lock_guard<std::mutex> lock(session_mu_);
  if (session_ != nullptr) {
    info.zookeeper_connected = session_->connected();
    info.zookeeper_disconnected_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(session_->disconnected_for()).count();
    info.zookeeper_sessions = session_->sessions();
    info.zookeeper_expirations = session_->expirations();
  }
  if (registrar_ != nullptr) {
    info.registry_path = registrar_->path();
    info.registered = registrar_->registered();
    info.registrations = registrar_->writes();
  }
  for (const auto& [service, c] : channels_) {
    info.clients.push_back(
        {service, c.target, c.protocol == Protocol::kGrpc ? "grpc" : "thrift", c.channel->State()});
  }
  info.config = effective_config_;
  return info;
}

std::string App::registry_path() const { return registrar_ == nullptr ? "" : registrar_->path(); }

bool App::registered() const { return registrar_ != nullptr && registrar_->registered(); }

}  // namespace rpcboot
