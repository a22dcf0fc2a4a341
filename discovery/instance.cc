#include "discovery/instance.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rpcboot::discovery {

using Json = nlohmann::ordered_json;

namespace {
constexpr const char* kPayloadClass =
    "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance";

std::optional<int> ParseInt(const std::string& s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}
}  // namespace

bool Instance::IsUp() const {
  auto it = metadata.find(std::string(kStatusKey));
  return it == metadata.end() || it->second == "UP";
}

bool Instance::IsForeign() const { return metadata.count(std::string(kProtocolsKey)) == 0; }

std::optional<int> Instance::PortFor(std::string_view protocol, bool foreign) const {
  auto valid = [](std::optional<int> number) -> std::optional<int> {
    if (!number || *number <= 0 || *number > 65535) return std::nullopt;
    return number;
  };
  auto protocols = metadata.find(std::string(kProtocolsKey));
  if (protocols == metadata.end()) {
    // Not an rpcboot instance. grpc-spring-boot-starter publishes its gRPC port as gRPC_port
    // (earlier versions: gRPC.port): such an instance says it speaks gRPC there.
    if (protocol == "grpc") {
      for (std::string_view key : {kSpringGrpcPortKey, kSpringGrpcPortLegacyKey}) {
        auto it = metadata.find(std::string(key));
        if (it != metadata.end()) return valid(ParseInt(it->second));
      }
    }
    return foreign ? valid(port) : std::nullopt;
  }
  // "grpc,thrift", tolerantly: "thrift, grpc" and "GRPC" list the same protocols.
  bool listed = false;
  for (absl::string_view entry : absl::StrSplit(protocols->second, ',')) {
    listed |= absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(entry),
                                     absl::string_view(protocol.data(), protocol.size()));
  }
  if (!listed) return std::nullopt;
  auto port_entry = metadata.find("rpcboot." + std::string(protocol) + ".port");
  if (port_entry == metadata.end()) return std::nullopt;
  return valid(ParseInt(port_entry->second));
}

bool Instance::SpeaksTHeader() const {
  auto it = metadata.find(std::string(kThriftHeaderKey));
  return it != metadata.end() && absl::EqualsIgnoreCase(it->second, "true");
}

bool Instance::ServesTls() const {
  auto it = metadata.find(std::string(kTlsKey));
  return it != metadata.end() && absl::EqualsIgnoreCase(it->second, "true");
}

int Instance::Weight() const {
  auto it = metadata.find(std::string(kWeightKey));
  if (it == metadata.end()) return 100;
  std::optional<int> value = ParseInt(it->second);
  return value && *value >= 0 ? *value : 100;
}

std::string ToJson(const Instance& instance) {
  Json metadata = Json::object();
  for (const auto& [key, value] : instance.metadata) metadata[key] = value;
  auto part = [](const char* value, bool variable) {
    return Json{{"value", value}, {"variable", variable}};
  };
  Json j;
  j["name"] = instance.name;
  j["id"] = instance.id;
  j["address"] = instance.address;
  j["port"] = instance.port;
  j["sslPort"] = instance.ssl_port ? Json(*instance.ssl_port) : Json(nullptr);
  j["payload"] = Json{{"@class", kPayloadClass},
                      {"id", instance.name + "-" + instance.id},
                      {"name", instance.name},
                      {"metadata", metadata}};
  j["registrationTimeUTC"] = instance.registration_time_ms;
  j["serviceType"] = instance.service_type;
  j["uriSpec"] =
      Json{{"parts", Json::array({part("scheme", true), part("://", false), part("address", true),
                                  part(":", false), part("port", true)})}};
  return j.dump();
}

absl::StatusOr<Instance> ParseInstance(std::string_view text) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("instance data is not JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("instance data is not a JSON object");
  Instance out;
  auto string_field = [&](const char* key, std::string* value) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("instance field '", key, "' is missing or not a string"));
    }
    *value = it->get<std::string>();
    return absl::OkStatus();
  };
  for (auto [key, value] :
       {std::pair{"name", &out.name}, {"id", &out.id}, {"address", &out.address}}) {
    if (absl::Status s = string_field(key, value); !s.ok()) return s;
  }
  auto port = j.find("port");
  if (port == j.end() || !port->is_number_integer() || port->get<int64_t>() < 0 ||
      port->get<int64_t>() > 65535) {
    return absl::InvalidArgumentError("instance field 'port' is missing or not a port number");
  }
  out.port = port->get<int>();
  if (auto ssl = j.find("sslPort"); ssl != j.end() && ssl->is_number_integer())
    out.ssl_port = ssl->get<int>();
  if (auto t = j.find("registrationTimeUTC"); t != j.end() && t->is_number_integer()) {
    out.registration_time_ms = t->get<int64_t>();
  }
  if (auto type = j.find("serviceType"); type != j.end() && type->is_string())
    out.service_type = type->get<std::string>();
  // Spring's payload carries the metadata; Curator-only instances have none (payload null).
  if (auto payload = j.find("payload"); payload != j.end() && payload->is_object()) {
    if (auto metadata = payload->find("metadata");
        metadata != payload->end() && metadata->is_object()) {
      for (const auto& [key, value] : metadata->items()) {
        if (value.is_string()) out.metadata[key] = value.get<std::string>();
      }
    }
  }
  return out;
}

std::string NewInstanceId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

Instance MakeServingInstance(const Serving& serving) {
  Instance self;
  self.name = serving.app;
  self.id = NewInstanceId();
  self.address = serving.address;
  std::vector<std::string> protocols;
  self.metadata[std::string(kStatusKey)] = "UP";
  if (serving.grpc_port > 0) {
    protocols.push_back("grpc");
    self.metadata[std::string(kGrpcPortKey)] = std::to_string(serving.grpc_port);
    // For grpc-spring-boot-starter clients, which read their own key.
    self.metadata[std::string(kSpringGrpcPortKey)] = std::to_string(serving.grpc_port);
  }
  if (serving.thrift_port > 0) {
    protocols.push_back("thrift");
    self.metadata[std::string(kThriftPortKey)] = std::to_string(serving.thrift_port);
    self.metadata[std::string(kThriftHeaderKey)] = "true";
  }
  self.port = serving.grpc_port > 0 ? serving.grpc_port : std::max(serving.thrift_port, 0);
  self.metadata[std::string(kServicesKey)] = absl::StrJoin(serving.services, ",");
  self.metadata[std::string(kProtocolsKey)] = absl::StrJoin(protocols, ",");
  self.metadata[std::string(kWeightKey)] = std::to_string(serving.weight);
  self.metadata[std::string(kVersionKey)] = serving.version;
  if (!serving.zone.empty()) self.metadata[std::string(kZoneKey)] = serving.zone;
  if (serving.tls) self.metadata[std::string(kTlsKey)] = "true";
  self.registration_time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  return self;
}

namespace {

// Items per chunk when a list is built; a chunk that grows to twice this splits in two.
constexpr std::size_t kChunk = 64;

bool ById(const InstanceView::Item& a, const InstanceView::Item& b) { return a->id < b->id; }

}  // namespace

InstanceView::InstanceView(std::vector<Instance> instances) {
  Items items;
  items.reserve(instances.size());
  for (Instance& instance : instances) {
    items.push_back(std::make_shared<const Instance>(std::move(instance)));
  }
  Fill(std::move(items));
}

InstanceView::InstanceView(std::initializer_list<Instance> instances)
    : InstanceView(std::vector<Instance>(instances)) {}

InstanceView::const_iterator InstanceView::At(std::size_t i) const {
  if (i >= size()) {
    return chunks_.empty() ? const_iterator(this, 0, 0)
                           : const_iterator(this, chunks_.size() - 1, chunks_.back()->size());
  }
  std::size_t c =
      static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), i) - ends_.begin());
  return const_iterator(this, c, i - Start(c));
}

void InstanceView::Fill(Items items) {
  std::stable_sort(items.begin(), items.end(), ById);
  chunks_.clear();
  for (std::size_t at = 0; at < items.size(); at += kChunk) {
    auto first = items.begin() + static_cast<std::ptrdiff_t>(at);
    auto last = items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), at + kChunk));
    chunks_.push_back(std::make_shared<const Items>(std::make_move_iterator(first),
                                                    std::make_move_iterator(last)));
  }
  Reindex(0);
}

void InstanceView::Reindex(std::size_t from) {
  ends_.resize(chunks_.size());
  for (std::size_t c = from; c < chunks_.size(); ++c) ends_[c] = Start(c) + chunks_[c]->size();
}

void InstanceView::Builder::Assign(Items items) {
  view_.Fill(std::move(items));
  owned_.assign(view_.chunks_.size(), true);
}

InstanceView::Items& InstanceView::Builder::Own(std::size_t c) {
  if (!owned_[c]) {
    view_.chunks_[c] = std::make_shared<const Items>(*view_.chunks_[c]);
    owned_[c] = true;
  }
  // Made by this builder after the last Publish: no view shares it.
  return const_cast<Items&>(*view_.chunks_[c]);
}

void InstanceView::Builder::Insert(Item item) {
  auto& chunks = view_.chunks_;
  if (chunks.empty()) {
    chunks.push_back(std::make_shared<const Items>(Items{std::move(item)}));
    owned_.assign(1, true);
    view_.Reindex(0);
    return;
  }
  // The first chunk whose last item sorts after it (or the last chunk).
  auto after =
      std::upper_bound(chunks.begin(), chunks.end(), item,
                       [](const Item& x, const Chunk& chunk) { return ById(x, chunk->back()); });
  std::size_t c =
      after == chunks.end() ? chunks.size() - 1 : static_cast<std::size_t>(after - chunks.begin());
  Items& items = Own(c);
  items.insert(std::upper_bound(items.begin(), items.end(), item, ById), std::move(item));
  if (items.size() >= 2 * kChunk) {
    auto half = items.begin() + static_cast<std::ptrdiff_t>(items.size() / 2);
    Chunk second = std::make_shared<const Items>(std::make_move_iterator(half),
                                                 std::make_move_iterator(items.end()));
    items.erase(half, items.end());
    chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(c) + 1, std::move(second));
    owned_.insert(owned_.begin() + static_cast<std::ptrdiff_t>(c) + 1, true);
  }
  view_.Reindex(c);
}

void InstanceView::Builder::Erase(const Item& item) {
  auto& chunks = view_.chunks_;
  // Items with its id may span chunks: from the first chunk whose last item is not before it.
  auto from =
      std::lower_bound(chunks.begin(), chunks.end(), item,
                       [](const Chunk& chunk, const Item& x) { return ById(chunk->back(), x); });
  for (std::size_t c = static_cast<std::size_t>(from - chunks.begin()); c < chunks.size(); ++c) {
    const Items& items = *chunks[c];
    auto it = std::lower_bound(items.begin(), items.end(), item, ById);
    while (it != items.end() && (*it)->id == item->id && *it != item) ++it;
    if (it == items.end()) continue;  // perhaps in the next chunk
    if (*it != item) return;          // past the items with its id
    std::size_t at = static_cast<std::size_t>(it - items.begin());
    Items& owned = Own(c);
    owned.erase(owned.begin() + static_cast<std::ptrdiff_t>(at));
    if (owned.empty()) {
      chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(c));
      owned_.erase(owned_.begin() + static_cast<std::ptrdiff_t>(c));
    }
    view_.Reindex(c);
    return;
  }
}

std::shared_ptr<const InstanceView> InstanceView::Builder::Publish() {
  owned_.assign(owned_.size(), false);
  return std::make_shared<const InstanceView>(view_);
}

}  // namespace rpcboot::discovery
