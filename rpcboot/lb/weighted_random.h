// The "weighted_random" load balancer: random in proportion to weight (see
// rpcboot/lb/load_balancer.h).
#ifndef RPCBOOT_LB_WEIGHTED_RANDOM_H_
#define RPCBOOT_LB_WEIGHTED_RANDOM_H_

#include <memory>

#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {

std::unique_ptr<LoadBalancer> MakeWeightedRandomBalancer();

}  // namespace rpcboot

#endif  // RPCBOOT_LB_WEIGHTED_RANDOM_H_
