// Types a platform shares between its services, and a service of their own: built as one
// interface (platform_money, DEPENDS platform_geo), imported by another (platform_order,
// DEPENDS platform_money).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/geo.h"
#include "rpcboot/annotations.h"

namespace platform {

enum class Currency { kEur, kUsd };

struct Money {
  int64_t cents = 0;
  Currency currency = Currency::kEur;
};

// Declared here but reached by no method of this header: the interface that reaches it first
// (platform_order) emits it.
struct Discount {
  std::string code;
  Money off;
};

class RPCBOOT_SERVICE Wallet {
 public:
  virtual ~Wallet() = default;
  virtual Money Balance(const std::string& user) = 0;
  virtual std::vector<Money> History(const std::string& user, int32_t limit) = 0;
  // A type of the types-only interface as a whole request.
  virtual Money DeliveryFee(const Address& to) = 0;
};

}  // namespace platform
