// The "round_robin" load balancer: each backend in turn (see rpcboot/lb/load_balancer.h).
#ifndef RPCBOOT_LB_ROUND_ROBIN_H_
#define RPCBOOT_LB_ROUND_ROBIN_H_

#include <memory>

#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {

std::unique_ptr<LoadBalancer> MakeRoundRobinBalancer();

}  // namespace rpcboot

#endif  // RPCBOOT_LB_ROUND_ROBIN_H_
