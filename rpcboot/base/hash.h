// rpcboot::StableHash: a 64-bit hash of bytes that is the same in every build, process and
// version of rpcboot (FNV-1a, then a 64-bit finalizer). The "consistent_hash" load balancer
// places instances and request keys on its ring with it; use it to shard by the same key:
//
//   int shard = static_cast<int>(rpcboot::StableHash(order_id) % kShards);
//
// Not for hash tables facing untrusted keys (it is not seeded) nor for anything cryptographic.
// A pure function: thread-safe.
#ifndef RPCBOOT_BASE_HASH_H_
#define RPCBOOT_BASE_HASH_H_

#include <cstdint>
#include <string_view>

namespace rpcboot {

uint64_t StableHash(std::string_view bytes);

}  // namespace rpcboot

#endif  // RPCBOOT_BASE_HASH_H_
