// The shop service: shops, their menus and whether they are open. This header is the IDL:
// rpcboot-codegen emits shop_service.thrift and shop_service.proto from it.
#ifndef RPCBOOT_SAMPLES_SHOP_SHOP_SERVICE_H_
#define RPCBOOT_SAMPLES_SHOP_SHOP_SERVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/geo.h"
#include "rpcboot/annotations.h"

namespace shop {

enum class ShopStatus : int32_t { kOpen = 0, kClosed = 1 };

struct MenuItem {
  int64_t id;
  std::string name;
  int64_t price_cents;
};

struct Shop {
  int64_t id;
  std::string name;
  ShopStatus status;
  std::vector<MenuItem> menu;
  std::string served_by;      // the instance that answered (the demo shows the spread)
  common::GeoPoint location;  // where couriers pick orders up
};

struct GetShopRequest {
  int64_t shop_id;
};

class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  // NOT_FOUND for an unknown shop.
  RPCBOOT_IDEMPOTENT virtual Shop GetShop(const GetShopRequest& request) = 0;
  RPCBOOT_IDEMPOTENT virtual std::vector<Shop> ListShops() = 0;
};

}  // namespace shop

#endif  // RPCBOOT_SAMPLES_SHOP_SHOP_SERVICE_H_
