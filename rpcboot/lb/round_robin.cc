#include "rpcboot/lb/round_robin.h"

namespace rpcboot {
namespace {

class RoundRobinPicker final : public Picker {
 public:
  RoundRobinPicker(std::vector<std::shared_ptr<Backend>> backends,
                   std::shared_ptr<std::atomic<uint64_t>> next)
      : backends_(std::move(backends)), next_(std::move(next)) {}

  Backend* Pick(const PickArgs& args) const override {
    std::size_t n = backends_.size();
    uint64_t start = next_->fetch_add(1, std::memory_order_relaxed);
    for (std::size_t k = 0; k < n; ++k) {
      Backend* b = backends_[(start + k) % n].get();
      if (!args.Avoid(*b)) return b;
    }
    return nullptr;
  }

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
  std::shared_ptr<std::atomic<uint64_t>> next_;
};

class RoundRobinBalancer final : public LoadBalancer {
 public:
  std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) override {
    // The counter carries over list changes, so an update does not send a burst to the first.
    return std::make_shared<RoundRobinPicker>(std::move(backends), next_);
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> next_ = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace

std::unique_ptr<LoadBalancer> MakeRoundRobinBalancer() {
  return std::make_unique<RoundRobinBalancer>();
}

}  // namespace rpcboot
