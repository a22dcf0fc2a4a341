// Registering a balancer of one's own. A binary of its own: the registry freezes at the first
// use in a process, which other tests would have made.
#include <gtest/gtest.h>

#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {
namespace {

class FirstBalancer final : public LoadBalancer {
 public:
  std::shared_ptr<const Picker> Build(std::vector<std::shared_ptr<Backend>> backends) override {
    struct First final : Picker {
      std::vector<std::shared_ptr<Backend>> list;
      Backend* Pick(const PickArgs&) const override { return list.front().get(); }
    };
    auto picker = std::make_shared<First>();
    picker->list = std::move(backends);
    return picker;
  }
};

TEST(Registry, OwnBalancersRegisterBeforeTheFirstUseThenTheRegistryFreezes) {
  ASSERT_TRUE(RegisterLoadBalancer("first", [] { return std::make_unique<FirstBalancer>(); }).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(
      RegisterLoadBalancer("p2c", [] { return std::make_unique<FirstBalancer>(); })));
  std::vector<std::shared_ptr<Backend>> backends = {
      std::make_shared<Backend>("a", "10.0.0.1:1", 100, nullptr),
      std::make_shared<Backend>("b", "10.0.0.2:1", 100, nullptr)};
  absl::StatusOr<std::unique_ptr<LoadBalancer>> lb = MakeLoadBalancer("first");
  ASSERT_TRUE(lb.ok()) << lb.status();
  EXPECT_EQ((*lb)->Build(backends)->Pick(PickArgs{}), backends[0].get());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      RegisterLoadBalancer("late", [] { return std::make_unique<FirstBalancer>(); })));
}

}  // namespace
}  // namespace rpcboot
