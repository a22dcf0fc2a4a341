// The "p2c" load balancer: power of two choices on calls in flight (see
// rpcboot/lb/load_balancer.h).
#ifndef RPCBOOT_LB_P2C_H_
#define RPCBOOT_LB_P2C_H_

#include <memory>

#include "rpcboot/lb/load_balancer.h"

namespace rpcboot {

std::unique_ptr<LoadBalancer> MakeP2cBalancer();

}  // namespace rpcboot

#endif  // RPCBOOT_LB_P2C_H_
