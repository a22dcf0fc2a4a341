// The interface from the design card, contract 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rpcboot/annotations.h"

namespace shop {
enum class ShopStatus { kOpen, kClosed };
struct MenuItem {
  int64_t id;
  std::string name;
  int64_t price;
};
struct Shop {
  int64_t id;
  std::string name;
  ShopStatus status;
  std::vector<MenuItem> menu;
};
struct GetShopRequest {
  int64_t shop_id;
};

class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  RPCBOOT_IDEMPOTENT virtual Shop GetShop(const GetShopRequest& request) = 0;
  virtual void CloseShop(int64_t shop_id, std::string reason) = 0;
};
}  // namespace shop
