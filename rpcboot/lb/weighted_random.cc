#include "rpcboot/lb/weighted_random.h"

#include <algorithm>

namespace rpcboot {
namespace {

class WeightedRandomPicker final : public Picker {
 public:
  explicit WeightedRandomPicker(std::vector<std::shared_ptr<Backend>> backends)
      : backends_(std::move(backends)) {
    uint64_t total = 0;
    for (const auto& b : backends_) {
      total += static_cast<uint64_t>(std::max(b->weight(), 1));
      cumulative_.push_back(total);
    }
  }

  Backend* Pick(const PickArgs& args) const override {
    uint64_t r = internal::RandomU64() % cumulative_.back();
    std::size_t i =
        std::upper_bound(cumulative_.begin(), cumulative_.end(), r) - cumulative_.begin();
    std::size_t n = backends_.size();
    for (std::size_t k = 0; k < n; ++k) {
      Backend* b = backends_[(i + k) % n].get();
      if (!args.Avoid(*b)) return b;
    }
    return nullptr;
  }

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
  std::vector<uint64_t> cumulative_;  // running sum of weights
};

class WeightedRandomBalancer final : public LoadBalancer {
 public:
  std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) override {
    return std::make_shared<WeightedRandomPicker>(std::move(backends));
  }
};

}  // namespace

std::unique_ptr<LoadBalancer> MakeWeightedRandomBalancer() {
  return std::make_unique<WeightedRandomBalancer>();
}

}  // namespace rpcboot
