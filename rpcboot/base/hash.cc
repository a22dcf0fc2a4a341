#include "rpcboot/base/hash.h"

namespace rpcboot {

uint64_t StableHash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull;  // MurmurHash3's fmix64
  h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

}  // namespace rpcboot
