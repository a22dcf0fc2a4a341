// An interface built apart from the one that declares the types it shares (money.h): its IDL
// files import money's instead of declaring Money and Currency again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/money.h"
#include "rpcboot/annotations.h"

namespace platform {

struct Line {
  std::string dish;
  Money price;
};

struct Order {
  int64_t id = 0;
  std::vector<Line> lines;
  Money total;
  std::optional<Discount> discount;
  Address deliver_to;  // from geo.h, imported through money's interface
};

class RPCBOOT_SERVICE Orders {
 public:
  virtual ~Orders() = default;
  virtual Order Place(const std::vector<Line>& lines, std::optional<Discount> discount) = 0;
  // The same method name as Wallet's, in the same package: its messages get the service's name.
  virtual std::vector<Money> History(const std::string& user, int32_t limit) = 0;
  virtual Currency Settle(int64_t order_id, Currency currency) = 0;
};

}  // namespace platform
