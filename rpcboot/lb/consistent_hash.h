// The "consistent_hash" load balancer: a hash ring on the request key (see
// rpcboot/lb/load_balancer.h).
#ifndef RPCBOOT_LB_CONSISTENT_HASH_H_
#define RPCBOOT_LB_CONSISTENT_HASH_H_

#include <memory>

#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {

std::unique_ptr<LoadBalancer> MakeConsistentHashBalancer();

}  // namespace rpcboot

#endif  // RPCBOOT_LB_CONSISTENT_HASH_H_
