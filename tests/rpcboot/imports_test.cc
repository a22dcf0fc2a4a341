// Interfaces generated apart (rpcboot_add_interface ... DEPENDS): geo.h (types only, no
// service) <- money.h <- order.h. Each one's files import the types the ones before declare
// instead of emitting them again, so all build into one program, serve from one server, and
// describe themselves to gRPC reflection without a clash.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "money.rpcboot.h"
#include "order.rpcboot.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/transport/thrift_wire.h"
#include "socket_testing.h"

namespace rpcboot {
namespace {

using platform::Address;
using platform::Currency;
using platform::Discount;
using platform::Line;
using platform::Money;

class Wallet final : public platform::Wallet {
 public:
  Money Balance(const std::string& user) override {
    return {static_cast<int64_t>(user.size()) * 100, Currency::kUsd};
  }
  std::vector<Money> History(const std::string& user, int32_t limit) override {
    std::vector<Money> out;
    for (int32_t i = 0; i < limit; ++i) out.push_back({static_cast<int64_t>(user.size()) + i});
    ++calls;
    return out;
  }
  Money DeliveryFee(const Address& to) override {
    // kCentral is zero, the field's default is kNorth: the zero must cross the wire.
    return {to.region == platform::Region::kCentral ? 111 : 999,
            to.point.lat > 50 ? Currency::kEur : Currency::kUsd};
  }
  std::atomic<int> calls{0};
};

class Orders final : public platform::Orders {
 public:
  platform::Order Place(const std::vector<Line>& lines, std::optional<Discount> discount) override {
    platform::Order order;
    order.id = 7;
    order.lines = lines;
    for (const Line& line : lines) order.total.cents += line.price.cents;
    if (discount) order.total.cents -= discount->off.cents;
    order.discount = std::move(discount);
    order.deliver_to = {"Main St 1", {52.5, 13.4}, platform::Region::kCentral};
    return order;
  }
  std::vector<Money> History(const std::string&, int32_t limit) override {
    ++calls;
    return std::vector<Money>(static_cast<std::size_t>(limit), Money{-1, Currency::kUsd});
  }
  Currency Settle(int64_t, Currency currency) override {
    return currency == Currency::kEur ? Currency::kUsd : Currency::kEur;
  }
  std::atomic<int> calls{0};
};

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Imports, TheImportingFilesReferToTheImportedTypesInsteadOfDeclaringThem) {
  std::string order_proto = Read(std::string(RPCBOOT_ORDER_IDL_DIR) + "/order.proto");
  std::string order_thrift = Read(std::string(RPCBOOT_ORDER_IDL_DIR) + "/order.thrift");
  std::string money_proto = Read(std::string(RPCBOOT_MONEY_IDL_DIR) + "/money.proto");
  std::string money_thrift = Read(std::string(RPCBOOT_MONEY_IDL_DIR) + "/money.thrift");
  std::string geo_proto = Read(std::string(RPCBOOT_GEO_IDL_DIR) + "/geo.proto");
  std::string geo_thrift = Read(std::string(RPCBOOT_GEO_IDL_DIR) + "/geo.thrift");
  ASSERT_FALSE(order_proto.empty());
  ASSERT_FALSE(geo_proto.empty());
  EXPECT_NE(order_proto.find("import \"money.proto\";"), std::string::npos) << order_proto;
  EXPECT_EQ(order_proto.find("message Money"), std::string::npos) << order_proto;
  EXPECT_EQ(order_proto.find("enum Currency"), std::string::npos) << order_proto;
  EXPECT_NE(order_thrift.find("include \"money.thrift\""), std::string::npos) << order_thrift;
  EXPECT_NE(order_thrift.find("3: money.Money total"), std::string::npos) << order_thrift;
  // Declared in money.h but reached only by order.h: emitted by the interface that reaches it.
  EXPECT_EQ(money_proto.find("message Discount"), std::string::npos) << money_proto;
  EXPECT_NE(order_proto.find("message Discount"), std::string::npos) << order_proto;
  // The interface of types only declares every type of its header, reached or not, and no
  // service and no RpcError; the others import it.
  for (const char* message :
       {"enum Region", "message GeoPoint", "message Address", "message Area"}) {
    EXPECT_NE(geo_proto.find(message), std::string::npos) << message << "\n" << geo_proto;
  }
  EXPECT_EQ(geo_proto.find("service"), std::string::npos) << geo_proto;
  EXPECT_EQ(geo_thrift.find("RpcError"), std::string::npos) << geo_thrift;
  EXPECT_NE(money_proto.find("import \"geo.proto\";"), std::string::npos) << money_proto;
  EXPECT_NE(money_proto.find("rpc DeliveryFee(Address) returns (Money);"), std::string::npos)
      << money_proto;
  EXPECT_NE(money_thrift.find("Money DeliveryFee(1: geo.Address to)"), std::string::npos)
      << money_thrift;
  EXPECT_EQ(money_proto.find("message Address"), std::string::npos) << money_proto;
  EXPECT_NE(order_proto.find("import \"geo.proto\";"), std::string::npos) << order_proto;
  EXPECT_NE(order_thrift.find("geo.Address deliver_to"), std::string::npos) << order_thrift;
  EXPECT_EQ(order_proto.find("message Address"), std::string::npos) << order_proto;
  // One description of each type in the program, where its interface put it.
  EXPECT_EQ(StructInfo<Money>::kFullName, "platform.Money");
  EXPECT_EQ(StructInfo<Discount>::kFullName, "platform.Discount");
  EXPECT_EQ(StructInfo<Address>::kFullName, "platform.Address");
  EXPECT_EQ(StructInfo<platform::Area>::kFullName, "platform.Area");
}

// One server on 127.0.0.1 with both services (grpc_port -1: Thrift only).
struct BothServed {
  explicit BothServed(int grpc_port) : server(Options(grpc_port)) {
    server.AddService<platform::Wallet>(wallet);
    server.AddService<platform::Orders>(orders);
  }
  static ServerOptions Options(int grpc_port) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.grpc_port = grpc_port;
    options.thrift_port = 0;
    return options;
  }
  std::shared_ptr<Wallet> wallet = std::make_shared<Wallet>();
  std::shared_ptr<Orders> orders = std::make_shared<Orders>();
  Server server;
};

TEST(Imports, BothInterfacesServeFromOneServerOnEveryWire) {
  BothServed both(0);
  Server& server = both.server;
  ASSERT_TRUE(server.Start().ok());
  std::string thrift = "127.0.0.1:" + std::to_string(server.thrift_port());
  ChannelOptions binary, header;
  binary.thrift_format = WireFormat::kThriftBinary;
  header.thrift_header = true;
  struct Wire {
    std::string name;
    std::shared_ptr<Channel> channel;
  };
  std::vector<Wire> wires = {
      {"grpc", MakeGrpcChannel("127.0.0.1:" + std::to_string(server.grpc_port()))},
      {"thrift compact", MakeThriftChannel(thrift)},
      {"thrift binary", MakeThriftChannel(thrift, binary)},
      {"thrift header", MakeThriftChannel(thrift, header)},
  };
  for (const Wire& wire : wires) {
    SCOPED_TRACE(wire.name);
    auto w = MakeClient<platform::Wallet>(wire.channel);
    auto o = MakeClient<platform::Orders>(wire.channel);
    Money balance = w->Balance("abc");
    EXPECT_EQ(balance.cents, 300);
    EXPECT_EQ(balance.currency, Currency::kUsd);
    platform::Order order = o->Place({{"ramen", {1200, Currency::kEur}}, {"tea", {300}}},
                                     Discount{"NEW", {100, Currency::kEur}});
    EXPECT_EQ(order.id, 7);
    ASSERT_EQ(order.lines.size(), 2u);
    EXPECT_EQ(order.lines[0].dish, "ramen");
    EXPECT_EQ(order.total.cents, 1400);
    ASSERT_TRUE(order.discount.has_value());
    EXPECT_EQ(order.discount->code, "NEW");
    EXPECT_EQ(order.deliver_to.street, "Main St 1");
    EXPECT_EQ(order.deliver_to.point.lng, 13.4);
    EXPECT_EQ(order.deliver_to.region, platform::Region::kCentral);
    Money fee = w->DeliveryFee({"Elm St 2", {51.0, 7.0}, platform::Region::kCentral});
    EXPECT_EQ(fee.cents, 111);
    EXPECT_EQ(fee.currency, Currency::kEur);
    EXPECT_EQ(w->DeliveryFee({}).cents, 999) << "the default region, kNorth";
    // Same method name on both services: each call reaches its own service.
    std::vector<Money> from_wallet = w->History("ab", 3);
    std::vector<Money> from_orders = o->History("ab", 2);
    ASSERT_EQ(from_wallet.size(), 3u);
    EXPECT_EQ(from_wallet[2].cents, 4);
    ASSERT_EQ(from_orders.size(), 2u);
    EXPECT_EQ(from_orders[0].cents, -1);
    EXPECT_EQ(o->Settle(1, Currency::kEur), Currency::kUsd);
  }
  EXPECT_EQ(both.wallet->calls.load(), 4);
  EXPECT_EQ(both.orders->calls.load(), 4);
  server.Shutdown();
}

// A peer that calls a plain name two services share is told which services have it and to use
// the multiplexed name; rpcboot's own Thrift channel does so by itself (above).
TEST(Imports, APlainNameTwoServicesShareIsAnsweredWithTheirNames) {
  BothServed both(-1);
  Server& server = both.server;
  ASSERT_TRUE(server.Start().ok());
  int fd = testing::ConnectTo(server.thrift_port());
  ASSERT_GE(fd, 0);
  std::string call = internal::ThriftMessage(WireFormat::kThriftCompact, "History",
                                             internal::kThriftCall, 1, std::string(1, '\0'));
  char prefix[4];
  internal::EncodeFrameLength(static_cast<uint32_t>(call.size()), prefix);
  call.insert(0, prefix, 4);
  ASSERT_EQ(::send(fd, call.data(), call.size(), 0), static_cast<ssize_t>(call.size()));
  char reply[1024];
  ssize_t got = ::recv(fd, reply, sizeof reply, 0);
  ::close(fd);
  ASSERT_GT(got, 4);
  std::string text(reply, static_cast<std::size_t>(got));
  EXPECT_NE(text.find("several services on this port have a method 'History' (platform.Wallet, "
                      "platform.Orders)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("'<service>:History'"), std::string::npos) << text;
  EXPECT_EQ(both.wallet->calls.load() + both.orders->calls.load(), 0) << "nothing ran";
  server.Shutdown();
}

// The rpcboot tool learns both services through gRPC reflection: money.proto comes with each
// (Orders' file imports it) and is read once, without protobuf's "already exists" error.
TEST(Imports, TheToolDescribesBothServicesThroughReflection) {
  BothServed both(0);
  ASSERT_TRUE(both.server.Start().ok());
  std::string command = std::string(RPCBOOT_CLI) +
                        " describe 127.0.0.1:" + std::to_string(both.server.grpc_port()) + " 2>&1";
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  int status = ::pclose(pipe);
  both.server.Shutdown();
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("platform.Wallet (money.proto)"), std::string::npos) << out;
  EXPECT_NE(out.find("platform.Orders (order.proto)"), std::string::npos) << out;
  EXPECT_NE(out.find("rpc History(platform.OrdersHistoryRequest) returns "
                     "(platform.OrdersHistoryResponse)"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("ERROR"), std::string::npos) << out;
}

// What gRPC reflection builds from both services: each file once, money.proto from whichever
// service comes first, and order.proto's messages resolve against it.
TEST(Imports, BothServicesDescriptorsBuildIntoOnePool) {
  google::protobuf::DescriptorPool pool;
  std::set<std::string> built;
  for (const internal::ServiceBinding* binding :
       {&internal::BindingOf<platform::Orders>(), &internal::BindingOf<platform::Wallet>()}) {
    for (const std::string& bytes : binding->descriptors) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes));
      if (!built.insert(file.name()).second) continue;
      ASSERT_NE(pool.BuildFile(file), nullptr) << file.name();
    }
  }
  EXPECT_EQ(built, (std::set<std::string>{"geo.proto", "money.proto", "order.proto"}));
  const google::protobuf::MethodDescriptor* history =
      pool.FindMethodByName("platform.Orders.History");
  ASSERT_NE(history, nullptr);
  EXPECT_EQ(history->input_type()->full_name(), "platform.OrdersHistoryRequest");
  EXPECT_EQ(history->output_type()->field(0)->message_type()->file()->name(), "money.proto");
  const google::protobuf::MethodDescriptor* wallet_history =
      pool.FindMethodByName("platform.Wallet.History");
  ASSERT_NE(wallet_history, nullptr);
  EXPECT_EQ(wallet_history->input_type()->full_name(), "platform.HistoryRequest");
}

}  // namespace
}  // namespace rpcboot
