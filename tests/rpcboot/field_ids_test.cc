// Field ids given with RPCBOOT_ID: the wire carries them, on both codecs, so a struct whose
// fields were reordered and partly removed still reads what a peer with the old layout sends,
// and the other way round (tests/codegen/testdata/edge: Item is ItemV1 reordered, two removed).
#include <gtest/gtest.h>

#include <string>

#include "edge_service.rpcboot.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"

namespace rpcboot {
namespace {

edge::ItemV1 OldItem() {
  edge::ItemV1 old;
  old.sku = 77;
  old.quantity = 3;
  old.note = "fragile";
  old.title = "teapot";
  old.legacy = 9;
  return old;
}

void ExpectNewFromOld(const edge::Item& item) {
  EXPECT_EQ(item.sku, 77);
  EXPECT_EQ(item.quantity, 3);
  EXPECT_EQ(item.title, "teapot");
  EXPECT_FALSE(item.price.has_value());
}

TEST(FieldIds, ProtoCarriesTheGivenIds) {
  edge::Item item;
  item.title = "x";  // id 4, declared first
  std::string bytes = ProtoEncode(item);
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), (4u << 3) | 2u) << "tag of field 4, length";
  item = edge::Item{};
  item.price = 2.5;  // id 6, fixed64
  bytes = ProtoEncode(item);
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), (6u << 3) | 1u);
}

TEST(FieldIds, ProtoReadsAnOldPeerAndAnOldPeerReadsUs) {
  edge::Item item;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(OldItem()), &item).ok());
  ExpectNewFromOld(item);
  item.price = 4.25;
  edge::ItemV1 back;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(item), &back).ok());
  EXPECT_EQ(back.sku, 77);
  EXPECT_EQ(back.quantity, 3);
  EXPECT_EQ(back.title, "teapot");
  EXPECT_EQ(back.note, "");  // removed on our side: the old peer sees its default
  EXPECT_EQ(back.legacy, 0);
}

TEST(FieldIds, ThriftReadsAnOldPeerAndAnOldPeerReadsUs) {
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    edge::Item item;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(OldItem(), format), format, &item).ok());
    ExpectNewFromOld(item);
    item.price = 1.5;
    edge::ItemV1 back;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(item, format), format, &back).ok());
    EXPECT_EQ(back.sku, 77);
    EXPECT_EQ(back.title, "teapot");
    EXPECT_EQ(back.note, "");
    edge::Item again;
    ASSERT_TRUE(ThriftDecode(ThriftEncode(item, format), format, &again).ok());
    EXPECT_EQ(again.price, 1.5);
    EXPECT_EQ(again.title, "teapot");
  }
}

TEST(FieldIds, GeneratedDescriptionHasTheIds) {
  EXPECT_EQ((internal::FieldId<edge::Item, 0>()), 4);
  EXPECT_EQ((internal::FieldId<edge::Item, 1>()), 1);
  EXPECT_EQ((internal::FieldId<edge::Item, 3>()), 6);
  EXPECT_EQ((internal::FieldId<edge::ItemV1, 4>()), 5);
}

}  // namespace
}  // namespace rpcboot
