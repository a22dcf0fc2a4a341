// Naming rules the planner applies to emitted IDL.
#include "codegen/plan.h"

#include <gtest/gtest.h>

namespace rpcboot::codegen {
namespace {

TEST(UpperSnake, ConvertsCppNamesToProtoEnumStyle) {
  EXPECT_EQ(UpperSnake("ShopStatus", false), "SHOP_STATUS");
  EXPECT_EQ(UpperSnake("kOpen", true), "OPEN");
  EXPECT_EQ(UpperSnake("kHTTPError", true), "HTTP_ERROR");
  EXPECT_EQ(UpperSnake("LEVEL_LOW", true), "LEVEL_LOW");
  EXPECT_EQ(UpperSnake("open_now", true), "OPEN_NOW");
  EXPECT_EQ(UpperSnake("kilo", true), "KILO") << "a lower-case k is part of the name";
  EXPECT_EQ(UpperSnake("Http2Frame", false), "HTTP2_FRAME");
}

TEST(ThriftSafeName, AppendsUnderscoreToReservedWordsOnly) {
  EXPECT_EQ(ThriftSafeName("end"), "end_");
  EXPECT_EQ(ThriftSafeName("from"), "from_");
  EXPECT_EQ(ThriftSafeName("None"), "None_");
  EXPECT_EQ(ThriftSafeName("i32"), "i32_");
  EXPECT_EQ(ThriftSafeName("name"), "name");
  EXPECT_EQ(ThriftSafeName("value"), "value");
  EXPECT_TRUE(IsThriftReserved("service"));
  EXPECT_FALSE(IsThriftReserved("shop_id"));
}

}  // namespace
}  // namespace rpcboot::codegen
