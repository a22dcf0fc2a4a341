#include "rpcboot/internal/discovery_channel.h"

#include <map>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "discovery/session.h"
#include "rpcboot/base/log.h"

namespace rpcboot::internal {
namespace {

// A session and a resolver, shared by the zk:// channels with the same connect string and base.
struct SharedRegistry {
  std::shared_ptr<discovery::Session> session;
  std::shared_ptr<discovery::Resolver> resolver;
  ~SharedRegistry() { resolver.reset(); }  // before the session it observes
};

std::shared_ptr<SharedRegistry> RegistryFor(const std::string& connect, const std::string& base) {
  static std::mutex mu;
  static auto* registries = new std::map<std::string, std::weak_ptr<SharedRegistry>>();
  std::lock_guard<std::mutex> lock(mu);
  std::weak_ptr<SharedRegistry>& slot = (*registries)[connect + "|" + base];
  if (std::shared_ptr<SharedRegistry> shared = slot.lock()) return shared;
  auto shared = std::make_shared<SharedRegistry>();
  shared->session = std::make_shared<discovery::Session>(discovery::SessionOptions{connect});
  shared->session->Start();
  shared->resolver = std::make_shared<discovery::Resolver>(shared->session, base);
  slot = shared;
  return shared;
}

}  // namespace

std::string EndpointSkips::Describe(Protocol protocol, const std::string& service) const {
  if (not_serving + no_port + foreign == 0) return "";
  const char* name = protocol == Protocol::kGrpc ? "grpc" : "thrift";
  std::vector<std::string> parts;
  if (not_serving > 0)
    parts.push_back(absl::StrCat(not_serving, " list rpcboot.services without ", service));
  if (no_port > 0) parts.push_back(absl::StrCat(no_port, " do not speak ", name));
  if (foreign > 0) {
    parts.push_back(absl::StrCat(
        foreign,
        " carry no rpcboot metadata (registered by Spring or Curator; set the client's "
        "foreign_instances: true to call them over ",
        name, " at their port)"));
  }
  return absl::StrCat("; ", not_serving + no_port + foreign,
                      " UP instance(s) left out: ", absl::StrJoin(parts, ", "));
}

std::vector<EndpointSpec> EndpointsFor(const discovery::InstanceView& instances, Protocol protocol,
                                       const std::string& service, bool call_foreign,
                                       EndpointSkips* skips) {
  EndpointSkips local;
  if (skips == nullptr) skips = &local;
  *skips = EndpointSkips{};
  std::vector<EndpointSpec> endpoints;
  for (const discovery::Instance& instance : instances) {
    if (!service.empty()) {
      auto listed = instance.metadata.find(std::string(discovery::kServicesKey));
      if (listed != instance.metadata.end()) {
        bool serves = false;
        for (absl::string_view name : absl::StrSplit(listed->second, ',')) {
          serves = serves || absl::StripAsciiWhitespace(name) == service;
        }
        if (!serves) {
          ++skips->not_serving;
          continue;
        }
      }
    }
    std::optional<int> port =
        instance.PortFor(protocol == Protocol::kGrpc ? "grpc" : "thrift", call_foreign);
    if (!port.has_value()) {
      ++(instance.IsForeign() ? skips->foreign : skips->no_port);
      continue;
    }
    std::string host = instance.address.find(':') != std::string::npos
                           ? "[" + instance.address + "]"  // IPv6
                           : instance.address;
    endpoints.push_back({instance.id, absl::StrCat(host, ":", *port), instance.Weight(),
                         instance.SpeaksTHeader(), instance.ServesTls()});
  }
  return endpoints;
}

std::shared_ptr<Channel> MakeDiscoveryChannel(std::shared_ptr<discovery::Resolver> resolver,
                                              const std::string& app, Protocol protocol,
                                              ChannelOptions options, const std::string& target,
                                              std::shared_ptr<void> owner,
                                              const std::string& service) {
  // THeader (which carries the call's deadline) goes only to instances that say they read it
  // (EndpointsFor): a stock framed server registered beside rpcboot's would refuse it.
  bool call_foreign = options.call_foreign_instances;
  auto channel = std::make_shared<ClusterChannel>(target, protocol, options);
  std::weak_ptr<discovery::Resolver> weak_resolver = resolver;
  // Why the last view's UP instances were left out, for the message of a call that finds none.
  struct SkipNote {
    std::mutex mu;
    std::string text;
  };
  auto note = std::make_shared<SkipNote>();
  channel->SetDescriber([weak_resolver, app, note] {
    std::shared_ptr<discovery::Resolver> r = weak_resolver.lock();
    std::lock_guard<std::mutex> lock(note->mu);
    return r ? r->Describe(app) + note->text : std::string();
  });
  channel->SetReading([weak_resolver, app] {
    std::shared_ptr<discovery::Resolver> r = weak_resolver.lock();
    return r != nullptr && r->Reading(app);
  });
  std::weak_ptr<ClusterChannel> weak = channel;
  int id = resolver->Watch(app, [weak, weak_resolver, app, protocol, service, call_foreign,
                                 note](const discovery::InstanceList& list) {
    std::shared_ptr<ClusterChannel> c = weak.lock();
    if (c == nullptr) return;
    std::shared_ptr<discovery::Resolver> r = weak_resolver.lock();
    bool registry_empty = list->empty() && r != nullptr && r->ListedNodes(app) == 0;
    EndpointSkips skips;
    std::vector<EndpointSpec> endpoints =
        EndpointsFor(*list, protocol, service, call_foreign, &skips);
    {
      std::lock_guard<std::mutex> lock(note->mu);
      note->text = skips.Describe(protocol, service);
    }
    c->Update(std::move(endpoints), registry_empty);
  });
  // The watch ends with the channel.
  std::shared_ptr<void> watch(nullptr, [resolver, id](void*) { resolver->Unwatch(id); });
  channel->Hold(watch);
  if (owner != nullptr) channel->Hold(std::move(owner));
  return channel;
}

std::shared_ptr<Channel> MakeZooKeeperChannel(const ZooKeeperAddress& address, Protocol protocol,
                                              ChannelOptions options) {
  std::shared_ptr<SharedRegistry> registry = RegistryFor(address.connect, address.base);
  return MakeDiscoveryChannel(registry->resolver, address.app, protocol, std::move(options),
                              address.ToString(), registry);
}

}  // namespace rpcboot::internal
