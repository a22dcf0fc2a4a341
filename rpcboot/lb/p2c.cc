#include "rpcboot/lb/p2c.h"

namespace rpcboot {
namespace {

class P2cPicker final : public Picker {
 public:
  explicit P2cPicker(std::vector<std::shared_ptr<Backend>> backends)
      : backends_(std::move(backends)) {}

  Backend* Pick(const PickArgs& args) const override {
    std::size_t n = backends_.size();
    if (n == 1) return args.Avoid(*backends_[0]) ? nullptr : backends_[0].get();
    uint64_t r = internal::RandomU64();
    std::size_t i = r % n;
    std::size_t j = (i + 1 + (r >> 32) % (n - 1)) % n;  // a second, different one
    Backend* a = backends_[i].get();
    Backend* b = backends_[j].get();
    bool avoid_a = args.Avoid(*a);
    bool avoid_b = args.Avoid(*b);
    if (!avoid_a && !avoid_b) {
      int fa = a->in_flight();
      int fb = b->in_flight();
      if (fa != fb) return fa < fb ? a : b;
      return (r >> 63) ? a : b;
    }
    if (!avoid_a) return a;
    if (!avoid_b) return b;
    // Both to be avoided: the first usable one after them, if any.
    for (std::size_t k = 1; k < n; ++k) {
      Backend* c = backends_[(j + k) % n].get();
      if (!args.Avoid(*c)) return c;
    }
    return nullptr;
  }

 private:
  std::vector<std::shared_ptr<Backend>> backends_;
};

class P2cBalancer final : public LoadBalancer {
 public:
  std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) override {
    return std::make_shared<P2cPicker>(std::move(backends));
  }
};

}  // namespace

std::unique_ptr<LoadBalancer> MakeP2cBalancer() { return std::make_unique<P2cBalancer>(); }

}  // namespace rpcboot
