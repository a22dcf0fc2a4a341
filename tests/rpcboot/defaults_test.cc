// Default member initializers and the wire: a field a message holds replaces the struct's default
// whole, on every wire and through a real server, and the generated glue compiles structs whose
// defaults are braced lists (g++ 12 cannot count their fields through Boost.PFR).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edge_service.rpcboot.h"
#include "rpcboot/client.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/server.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

// Every field differs from its default, or equals it where reading it onto the default would
// double it (ids), and the page's 0 is left off the gRPC wire as proto3 leaves zeros.
edge::Basket Sent() {
  edge::Basket sent;
  sent.page = {0, 50};
  sent.tags = {"b", "c"};
  sent.quotas = {{"b", 2}};
  sent.grid = {{7}, {}, {8, 9}};
  sent.ids = {1, 2};
  sent.next = edge::Page{0, 7};
  return sent;
}

void ExpectSame(const edge::Basket& back, const edge::Basket& sent, const std::string& path) {
  EXPECT_EQ(back.page.number, sent.page.number) << path << ": a struct starts from its defaults";
  EXPECT_EQ(back.page.size, sent.page.size) << path;
  EXPECT_EQ(back.tags, sent.tags) << path << ": a list replaces its default";
  EXPECT_EQ(back.quotas, sent.quotas) << path << ": a map replaces its default";
  EXPECT_EQ(back.grid, sent.grid) << path;
  EXPECT_EQ(back.ids, sent.ids) << path << ": read once, not appended to the default";
  ASSERT_EQ(back.next.has_value(), sent.next.has_value()) << path;
  if (sent.next) {
    EXPECT_EQ(back.next->number, sent.next->number) << path;
    EXPECT_EQ(back.next->size, sent.next->size) << path;
  }
}

TEST(Defaults, AFieldOnTheWireReplacesItsDefaultWholeInEveryCodec) {
  const edge::Basket sent = Sent();
  for (WireFormat format : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    edge::Basket back;
    absl::Status status = ThriftDecode(ThriftEncode(sent, format), format, &back);
    ASSERT_TRUE(status.ok()) << status;
    ExpectSame(back, sent, "thrift");
  }
  edge::Basket back;
  absl::Status status = ProtoDecode(ProtoEncode(sent), &back);
  ASSERT_TRUE(status.ok()) << status;
  ExpectSame(back, sent, "proto");
}

TEST(Defaults, AFieldTheBytesDoNotHoldKeepsItsDefault) {
  edge::Basket back;
  ASSERT_TRUE(ProtoDecode("", &back).ok());
  ExpectSame(back, edge::Basket{}, "proto, no bytes");
}

TEST(Defaults, ProtoMergesAFieldThatOccursTwiceIntoTheFirstNotIntoTheDefault) {
  edge::Basket first, second;
  first.ids = {5};
  first.page = {3, 0};
  first.quotas = {{"x", 1}};
  second.ids = {6};
  second.page = {0, 9};
  second.quotas = {{"y", 2}};
  first.tags.clear();  // an empty list is not sent
  second.tags.clear();
  edge::Basket merged;
  absl::Status status = ProtoDecode(ProtoEncode(first) + ProtoEncode(second), &merged);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(merged.ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(merged.page.number, 3);
  EXPECT_EQ(merged.page.size, 9);
  EXPECT_EQ(merged.quotas, (std::map<std::string, int32_t>{{"x", 1}, {"y", 2}}));
  EXPECT_EQ(merged.tags, std::vector<std::string>{"new"}) << "not on the wire: the default";
}

// proto3 leaves a zero off the wire, so a zero in a field whose default is not zero is written
// (else the receiver reads the default), and one whose default is zero is not (as protoc): the
// generated table of defaults says which, and agrees with the struct.
TEST(Defaults, ProtoWritesAZeroExactlyWhereTheDefaultIsNotZero) {
  edge::Box zeros;
  zeros.ratio = 0;
  zeros.label.clear();
  zeros.open = false;
  zeros.mask = 0;
  zeros.mode = edge::Mode::kType;
  edge::Box back;
  ASSERT_TRUE(ProtoDecode(ProtoEncode(zeros), &back).ok());
  EXPECT_EQ(back.ratio, 0);
  EXPECT_EQ(back.label, "");
  EXPECT_FALSE(back.open);
  EXPECT_EQ(back.mask, 0u);
  EXPECT_EQ(back.mode, edge::Mode::kType);
  EXPECT_EQ(ProtoEncode(edge::Keywords{}), "") << "zero defaults: nothing on the wire";
  EXPECT_EQ(StructInfo<edge::Box>::kNonZeroDefaults,
            (std::array<std::uint8_t, 6>{0, 1, 1, 1, 1, 1}));
}

class Catalog final : public edge::Catalog {
 public:
  edge::Keywords Echo(const edge::Keywords& keywords) override { return keywords; }
  edge::Item Get(int64_t) override { return {}; }
  edge::ItemV1 GetOld(int64_t) override { return {}; }
  edge::Box Pack(const edge::Box& box) override { return box; }
  edge::Basket Fill(const edge::Basket& basket) override {
    ExpectSame(basket, Sent(), "the server's view");
    ++filled;
    return basket;
  }
  std::optional<edge::Item> Find(std::optional<std::string>, std::optional<int32_t>) override {
    return std::nullopt;
  }
  std::atomic<int> filled{0};
};

TEST(Defaults, ABasketRoundTripsThroughAServerOnEveryWire) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  options.thrift_port = 0;
  Server server(options);
  auto impl = std::make_shared<Catalog>();
  server.AddService<edge::Catalog>(impl);
  ASSERT_TRUE(server.Start().ok());
  struct Wire {
    std::string name;
    std::shared_ptr<Channel> channel;
  };
  std::string thrift = "127.0.0.1:" + std::to_string(server.thrift_port());
  ChannelOptions binary, header;
  binary.thrift_format = WireFormat::kThriftBinary;
  header.thrift_header = true;
  std::vector<Wire> wires = {
      {"grpc", MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port()))},
      {"thrift compact", MakeThriftChannel(thrift, ChannelOptions{})},
      {"thrift binary", MakeThriftChannel(thrift, binary)},
      {"thrift header", MakeThriftChannel(thrift, header)},
  };
  for (const Wire& wire : wires) {
    auto client = MakeClient<edge::Catalog>(wire.channel);
    ExpectSame(client->Fill(Sent()), Sent(), wire.name);
  }
  EXPECT_EQ(impl->filled.load(), 4);
  server.Shutdown();
}

}  // namespace
}  // namespace rpcboot
