#include "rpcboot/lb/consistent_hash.h"

#include <algorithm>
#include <string>
#include <utility>

#include "rpcboot/base/hash.h"

namespace rpcboot {
namespace {

// Points per backend on the ring: enough for an even spread (a few percent) over a handful of
// instances while the ring stays small.
constexpr int kPointsPerBackend = 160;

class ConsistentHashPicker final : public Picker {
 public:
  explicit ConsistentHashPicker(std::vector<std::shared_ptr<Backend>> backends)
      : backends_(std::move(backends)) {
    // Points hash the address, not the instance id: a restarted instance (new id, same
    // address) gets its keys back.
    for (std::size_t i = 0; i < backends_.size(); ++i) {
      for (int p = 0; p < kPointsPerBackend; ++p) {
        ring_.emplace_back(StableHash(backends_[i]->address() + "#" + std::to_string(p)), i);
      }
    }
    std::sort(ring_.begin(), ring_.end());
  }

  Backend* Pick(const PickArgs& args) const override {
    uint64_t h = args.request_key.empty() ? internal::RandomU64() : StableHash(args.request_key);
    auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, std::size_t{0}));
    // Walk on from the key's point to the first backend not to be avoided.
    for (std::size_t k = 0; k < ring_.size(); ++k, ++it) {
      if (it == ring_.end()) it = ring_.begin();
      Backend* b = backends_[it->second].get();
      if (!args.Avoid(*b)) return b;
      if (k >= static_cast<std::size_t>(kPointsPerBackend) * 4) break;  // bounded walk
    }
    for (const auto& b : backends_)
      if (!args.Avoid(*b)) return b.get();
    return nullptr;
  }

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
  std::vector<std::pair<uint64_t, std::size_t>> ring_;  // (point, backend index), sorted
};

class ConsistentHashBalancer final : public LoadBalancer {
 public:
  std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) override {
    return std::make_shared<ConsistentHashPicker>(std::move(backends));
  }
};

}  // namespace

std::unique_ptr<LoadBalancer> MakeConsistentHashBalancer() {
  return std::make_unique<ConsistentHashBalancer>();
}

}  // namespace rpcboot
