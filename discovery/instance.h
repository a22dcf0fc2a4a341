// One registered instance as it sits in ZooKeeper: Apache Curator's ServiceInstance JSON with
// Spring Cloud Zookeeper's ZookeeperInstance payload, so that Java services read rpcboot
// instances and rpcboot reads theirs (docs/registry.md).
//
//   Instance self = ...;                        // name "shop", address, port, metadata
//   std::string node_data = ToJson(self);       // what the registrar writes
//   absl::StatusOr<Instance> other = ParseInstance(node_data);  // what the resolver reads
//
// Plain values; thread-compatible.
#ifndef RPCBOOT_DISCOVERY_INSTANCE_H_
#define RPCBOOT_DISCOVERY_INSTANCE_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rpcboot::discovery {

// Metadata keys rpcboot writes (and reads) in payload.metadata.
inline constexpr std::string_view kStatusKey = "instance_status";  // Spring: "UP" to be used
inline constexpr std::string_view kServicesKey = "rpcboot.services";
inline constexpr std::string_view kProtocolsKey = "rpcboot.protocols";
inline constexpr std::string_view kGrpcPortKey = "rpcboot.grpc.port";
inline constexpr std::string_view kThriftPortKey = "rpcboot.thrift.port";
inline constexpr std::string_view kWeightKey = "rpcboot.weight";
inline constexpr std::string_view kZoneKey = "rpcboot.zone";
inline constexpr std::string_view kVersionKey = "rpcboot.version";
// "true": the instance's Thrift port also reads THeader frames (rpcboot servers do).
inline constexpr std::string_view kThriftHeaderKey = "rpcboot.thrift.header";
// "true": the instance's ports serve TLS only; clients connect with TLS.
inline constexpr std::string_view kTlsKey = "rpcboot.tls";
// grpc-spring-boot-starter's key for an instance's gRPC port (and its older spelling).
inline constexpr std::string_view kSpringGrpcPortKey = "gRPC_port";
inline constexpr std::string_view kSpringGrpcPortLegacyKey = "gRPC.port";

struct Instance {
  std::string name;     // the application name: "shop"
  std::string id;       // a UUID
  std::string address;  // host or IP clients connect to
  int port = 0;         // the first listed protocol's port
  std::optional<int> ssl_port;
  std::map<std::string, std::string> metadata;  // payload.metadata
  int64_t registration_time_ms = 0;             // registrationTimeUTC
  std::string service_type = "DYNAMIC";

  // instance_status is "UP" (or absent: Curator instances without Spring's payload).
  bool IsUp() const;
  // The port of "grpc" or "thrift" from rpcboot metadata (rpcboot.protocols read tolerantly:
  // spaces and case do not matter), or nullopt when this instance does not speak it. An instance
  // without rpcboot metadata speaks gRPC when it publishes grpc-spring-boot-starter's gRPC_port
  // (or gRPC.port), and nothing else rpcboot knows, unless `foreign` is set: then it is taken
  // to speak `protocol` at its `port` (gRPC: at gRPC_port when it publishes one).
  std::optional<int> PortFor(std::string_view protocol, bool foreign = false) const;
  // No rpcboot.protocols: registered by something other than rpcboot (Spring, Curator).
  bool IsForeign() const;
  // rpcboot.thrift.header is "true": clients may send THeader frames to the Thrift port.
  bool SpeaksTHeader() const;
  // rpcboot.tls is "true": the instance's ports take TLS connections only.
  bool ServesTls() const;
  // rpcboot.weight, 100 when absent or unreadable.
  int Weight() const;
};

// An immutable list of instances, sorted by id, read like a std::vector<Instance>. Each instance
// is shared between the lists it is in: a list with one instance changed copies no other (a
// registry view of 10,000 instances is republished on every change). Thread-compatible; shared
// as std::shared_ptr<const InstanceView> (InstanceList).
class InstanceView {
 public:
  using Items = std::vector<std::shared_ptr<const Instance>>;
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Instance;
    using difference_type = std::ptrdiff_t;
    using pointer = const Instance*;
    using reference = const Instance&;
    const_iterator() = default;
    explicit const_iterator(Items::const_iterator it) : it_(it) {}
    reference operator*() const { return **it_; }
    pointer operator->() const { return it_->get(); }
    reference operator[](difference_type n) const { return *it_[n]; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    const_iterator operator++(int) { return const_iterator(it_++); }
    const_iterator& operator--() {
      --it_;
      return *this;
    }
    const_iterator operator--(int) { return const_iterator(it_--); }
    const_iterator& operator+=(difference_type n) {
      it_ += n;
      return *this;
    }
    const_iterator& operator-=(difference_type n) {
      it_ -= n;
      return *this;
    }
    friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
    friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
    friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) {
      return a.it_ - b.it_;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) {
      return a.it_ == b.it_;
    }
    friend bool operator!=(const const_iterator& a, const const_iterator& b) {
      return a.it_ != b.it_;
    }
    friend bool operator<(const const_iterator& a, const const_iterator& b) {
      return a.it_ < b.it_;
    }
    friend bool operator>(const const_iterator& a, const const_iterator& b) {
      return a.it_ > b.it_;
    }
    friend bool operator<=(const const_iterator& a, const const_iterator& b) {
      return a.it_ <= b.it_;
    }
    friend bool operator>=(const const_iterator& a, const const_iterator& b) {
      return a.it_ >= b.it_;
    }

   private:
    Items::const_iterator it_;
  };
  using iterator = const_iterator;
  using value_type = Instance;
  using size_type = std::size_t;

  InstanceView() = default;
  // Sorts by id.
  InstanceView(std::vector<Instance> instances);  // NOLINT: a list converts implicitly
  InstanceView(std::initializer_list<Instance> instances);
  // `items` must be sorted by id and hold no null.
  static InstanceView FromSorted(Items items);

  const_iterator begin() const { return const_iterator(items_.begin()); }
  const_iterator end() const { return const_iterator(items_.end()); }
  std::size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const Instance& operator[](std::size_t i) const { return *items_[i]; }
  const Instance& front() const { return *items_.front(); }
  const Instance& back() const { return *items_.back(); }

 private:
  Items items_;
};

// The node data: UTF-8 JSON in the layout of contract 5.
std::string ToJson(const Instance& instance);

// Reads node data written by rpcboot, Curator or Spring. Unknown fields are ignored; a value of
// the wrong type, a missing name, id, address or port, or text that is not JSON is an
// InvalidArgument error naming the field.
absl::StatusOr<Instance> ParseInstance(std::string_view json);

// A random (version 4) UUID, the instance id.
std::string NewInstanceId();

// What an rpcboot process serves, to be published in its registry node.
struct Serving {
  std::string app;      // the application name: "shop"
  std::string address;  // where clients connect
  int grpc_port = -1;   // -1: not served
  int thrift_port = -1;
  bool tls = false;                   // both ports serve TLS
  std::vector<std::string> services;  // full names: "shop.ShopService"
  int weight = 100;
  std::string version;
  std::string zone;  // empty: not written
};

// The instance an rpcboot process registers for `serving`: a new id, status UP, registered now,
// rpcboot's metadata keys filled in; `port` is the first listed protocol's (gRPC, then Thrift).
Instance MakeServingInstance(const Serving& serving);

}  // namespace rpcboot::discovery

#endif  // RPCBOOT_DISCOVERY_INSTANCE_H_
