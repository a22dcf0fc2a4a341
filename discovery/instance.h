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
// is shared between the lists it is in, and the list is held in chunks of a few dozen that are
// shared too: a registry view of 10,000 instances is republished on every change, and a list with
// one instance changed copies one chunk's pointers and the chunks' pointers (about 160), not
// 10,000. No reference count is touched per instance or per chunk: a list keeps alive what it
// shows by holding the builder's record of what was removed after it was published (and, through
// it, of what was removed after every later list). So a list kept for long keeps the instances
// removed since alive too: hold the latest, let old ones go. Thread-compatible; shared as
// std::shared_ptr<const InstanceView> (InstanceList).
class InstanceView {
 public:
  using Item = std::shared_ptr<const Instance>;
  using Items = std::vector<Item>;
  class Builder;

  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Instance;
    using difference_type = std::ptrdiff_t;
    using pointer = const Instance*;
    using reference = const Instance&;
    const_iterator() = default;
    reference operator*() const { return *(*view_->chunks_[chunk_])[offset_]; }
    pointer operator->() const { return (*view_->chunks_[chunk_])[offset_]; }
    reference operator[](difference_type n) const { return *(*this + n); }
    const_iterator& operator++() {
      if (++offset_ == view_->chunks_[chunk_]->size() && chunk_ + 1 < view_->chunks_.size()) {
        ++chunk_;
        offset_ = 0;
      }
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator before = *this;
      ++*this;
      return before;
    }
    const_iterator& operator--() {
      if (offset_ == 0) {
        --chunk_;
        offset_ = view_->chunks_[chunk_]->size();
      }
      --offset_;
      return *this;
    }
    const_iterator operator--(int) {
      const_iterator before = *this;
      --*this;
      return before;
    }
    const_iterator& operator+=(difference_type n) {
      // Within this chunk (the last steps of a binary search): no search for the chunk.
      const auto to = static_cast<difference_type>(offset_) + n;
      if (to >= 0 && static_cast<std::size_t>(to) < view_->Size(chunk_)) {
        offset_ = static_cast<std::size_t>(to);
        return *this;
      }
      return *this = view_->At(static_cast<std::size_t>(index() + n));
    }
    const_iterator& operator-=(difference_type n) { return *this += -n; }
    friend const_iterator operator+(const_iterator a, difference_type n) { return a += n; }
    friend const_iterator operator+(difference_type n, const_iterator a) { return a += n; }
    friend const_iterator operator-(const_iterator a, difference_type n) { return a -= n; }
    friend difference_type operator-(const const_iterator& a, const const_iterator& b) {
      return a.index() - b.index();
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) {
      return a.index() == b.index();
    }
    friend bool operator!=(const const_iterator& a, const const_iterator& b) {
      return a.index() != b.index();
    }
    friend bool operator<(const const_iterator& a, const const_iterator& b) {
      return a.index() < b.index();
    }
    friend bool operator>(const const_iterator& a, const const_iterator& b) {
      return a.index() > b.index();
    }
    friend bool operator<=(const const_iterator& a, const const_iterator& b) {
      return a.index() <= b.index();
    }
    friend bool operator>=(const const_iterator& a, const const_iterator& b) {
      return a.index() >= b.index();
    }

   private:
    friend class InstanceView;
    const_iterator(const InstanceView* view, std::size_t chunk, std::size_t offset)
        : view_(view), chunk_(chunk), offset_(offset) {}
    difference_type index() const {
      return view_ == nullptr ? 0 : static_cast<difference_type>(view_->Start(chunk_) + offset_);
    }
    const InstanceView* view_ = nullptr;
    std::size_t chunk_ = 0;   // the chunk, or the last one at the end
    std::size_t offset_ = 0;  // within it (its size at the end)
  };
  using iterator = const_iterator;
  using value_type = Instance;
  using size_type = std::size_t;

  InstanceView() = default;
  // Sorts by id.
  InstanceView(std::vector<Instance> instances);  // NOLINT: a list converts implicitly
  InstanceView(std::initializer_list<Instance> instances);

  const_iterator begin() const { return const_iterator(this, 0, 0); }
  const_iterator end() const { return At(size()); }
  std::size_t size() const { return ends_.empty() ? 0 : ends_.back(); }
  bool empty() const { return ends_.empty(); }
  const Instance& operator[](std::size_t i) const { return *At(i); }
  const Instance& front() const { return *chunks_.front()->front(); }
  const Instance& back() const { return *chunks_.back()->back(); }

 private:
  using Chunk = std::vector<const Instance*>;  // sorted, never empty; fixed once published
  struct Retired;
  // The iterator at index `i` (0 to size()).
  const_iterator At(std::size_t i) const;
  std::size_t Start(std::size_t chunk) const { return chunk == 0 ? 0 : ends_[chunk - 1]; }
  // The items in `chunk` (0 when there is no such chunk).
  std::size_t Size(std::size_t chunk) const {
    return chunk < ends_.size() ? ends_[chunk] - Start(chunk) : 0;
  }

  std::vector<const Chunk*> chunks_;
  std::vector<std::size_t> ends_;        // one past each chunk's last index: a running sum of sizes
  std::shared_ptr<const Retired> keep_;  // what the builder let go of since this was published
};

// Keeps a sorted list under changes and publishes it as InstanceViews that share what did not
// change: an insert or erase copies at most the pointers of the one chunk it touches, and only
// when a published view shows that chunk. Thread-compatible (the resolver's, under its lock).
class InstanceView::Builder {
 public:
  Builder();
  // Whatever was published stays valid: what only the builder held is handed to the lists.
  ~Builder();
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  // Replaces everything with `items` (no null), sorted here.
  void Assign(Items items);
  // After the items with the same id.
  void Insert(Item item);
  // That very item (compared by address); nothing when it is not here.
  void Erase(const Item& item);
  std::size_t size() const { return size_; }
  // The list as it is now; later changes do not touch it.
  std::shared_ptr<const InstanceView> Publish();

 private:
  // Chunk `c`, to be changed: copied first if a published list shows it.
  Chunk& Own(std::size_t c);
  // Hands chunk `c` (and, with `instances`, its instances) to the lists published so far.
  void Retire(std::size_t c, bool instances);
  // Splits chunk `c` in two when it has grown to twice the usual size.
  void SplitIfLarge(std::size_t c);
  // Brings view_'s chunk ends up to date from chunk `from` on.
  void Reindex(std::size_t from);

  // The first 8 bytes of an id, big-endian (zero-padded): ordered as the ids are where they
  // differ, equal where they tie. Searches compare these, held side by side, and read an id
  // only on a tie: an id compared through its instance is two cache misses, and an insert into
  // a list of 10,000 compares fourteen.
  using Key = uint64_t;
  static Key KeyOf(const Instance& instance);
  // The first chunk whose last item sorts after (`upper`) or not before `x` (the last chunk when
  // none does); then the position in chunk `c`.
  std::size_t FindChunk(Key key, const Instance* x, bool upper) const;
  std::size_t FindInChunk(std::size_t c, Key key, const Instance* x, bool upper) const;

  InstanceView view_;  // its chunks are owned here, in chunks_
  std::vector<std::unique_ptr<Chunk>> chunks_;
  std::vector<Items> owners_;           // per chunk, its instances in its order: the owners
  std::vector<std::vector<Key>> keys_;  // per chunk, its instances' keys in its order
  std::vector<Key> last_keys_;          // per chunk, its last instance's key
  std::vector<bool> published_;         // chunk c is shown by a published list
  std::size_t size_ = 0;
  // The first chunk whose end in view_ is out of date (npos: none): worked out when published,
  // not after every change (a change moves every later chunk's end).
  std::size_t stale_ = std::string::npos;
  std::shared_ptr<Retired> retired_;  // what goes to the lists published so far
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
