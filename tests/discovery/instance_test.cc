// The registry's instance JSON: contract 5's layout, round trips, Curator-only instances, and a
// tolerant reader that names what is wrong with bad node data.
#include "discovery/instance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rpcboot::discovery {
namespace {

Instance ShopInstance() {
  Instance i;
  i.name = "shop";
  i.id = "6f1c2a9e-1b2c-4d3e-8f40-5a6b7c8d9e0f";
  i.address = "10.1.2.3";
  i.port = 9091;
  i.registration_time_ms = 1795422103964;
  i.metadata = {{"instance_status", "UP"},
                {"rpcboot.services", "shop.ShopService"},
                {"rpcboot.protocols", "grpc,thrift"},
                {"rpcboot.grpc.port", "9091"},
                {"rpcboot.thrift.port", "9090"},
                {"rpcboot.weight", "100"},
                {"rpcboot.zone", "a"},
                {"rpcboot.version", "1.0.0"}};
  return i;
}

TEST(Instance, JsonHasContractFivesLayout) {
  nlohmann::json j = nlohmann::json::parse(ToJson(ShopInstance()));
  EXPECT_EQ(j["name"], "shop");
  EXPECT_EQ(j["id"], "6f1c2a9e-1b2c-4d3e-8f40-5a6b7c8d9e0f");
  EXPECT_EQ(j["address"], "10.1.2.3");
  EXPECT_EQ(j["port"], 9091);
  EXPECT_TRUE(j["sslPort"].is_null());
  EXPECT_EQ(j["payload"]["@class"],
            "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance");
  EXPECT_EQ(j["payload"]["id"], "shop-6f1c2a9e-1b2c-4d3e-8f40-5a6b7c8d9e0f");
  EXPECT_EQ(j["payload"]["name"], "shop");
  EXPECT_EQ(j["payload"]["metadata"]["rpcboot.thrift.port"], "9090");
  EXPECT_EQ(j["payload"]["metadata"]["instance_status"], "UP");
  EXPECT_EQ(j["registrationTimeUTC"], 1795422103964);
  EXPECT_EQ(j["serviceType"], "DYNAMIC");
  ASSERT_EQ(j["uriSpec"]["parts"].size(), 5u);
  EXPECT_EQ(j["uriSpec"]["parts"][0], (nlohmann::json{{"value", "scheme"}, {"variable", true}}));
  EXPECT_EQ(j["uriSpec"]["parts"][1], (nlohmann::json{{"value", "://"}, {"variable", false}}));
  EXPECT_EQ(j["uriSpec"]["parts"][4], (nlohmann::json{{"value", "port"}, {"variable", true}}));
}

TEST(Instance, RoundTrips) {
  Instance original = ShopInstance();
  original.ssl_port = 9443;
  absl::StatusOr<Instance> back = ParseInstance(ToJson(original));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, original.name);
  EXPECT_EQ(back->id, original.id);
  EXPECT_EQ(back->address, original.address);
  EXPECT_EQ(back->port, original.port);
  EXPECT_EQ(back->ssl_port, 9443);
  EXPECT_EQ(back->metadata, original.metadata);
  EXPECT_EQ(back->registration_time_ms, original.registration_time_ms);
  EXPECT_EQ(back->PortFor("grpc"), 9091);
  EXPECT_EQ(back->PortFor("thrift"), 9090);
  EXPECT_EQ(back->Weight(), 100);
  EXPECT_TRUE(back->IsUp());
}

TEST(Instance, CuratorInstanceWithoutPayloadParsesButSpeaksNoRpcbootProtocol) {
  // What Curator's JsonInstanceSerializer writes for ServiceInstance<Void>.
  std::string curator =
      R"({"name":"shop","id":"java-1","address":"127.0.0.1","port":8080,"sslPort":null,"payload":null,)"
      R"("registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null})";
  absl::StatusOr<Instance> i = ParseInstance(curator);
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(i->port, 8080);
  EXPECT_TRUE(i->IsUp());
  EXPECT_EQ(i->PortFor("grpc"), std::nullopt);
  EXPECT_EQ(i->PortFor("thrift"), std::nullopt);
}

TEST(Instance, ReaderIgnoresUnknownFieldsAndHonoursStatus) {
  std::string json =
      R"({"name":"shop","id":"x","address":"h","port":1,"future":{"a":[1,2]},"payload":{"@class":"Other",)"
      R"("metadata":{"instance_status":"OUT_OF_SERVICE","rpcboot.protocols":"thrift","rpcboot.thrift.port":"70000",)"
      R"("rpcboot.weight":"heavy","n":5}}})";
  absl::StatusOr<Instance> i = ParseInstance(json);
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_FALSE(i->IsUp());
  EXPECT_EQ(i->PortFor("thrift"), std::nullopt) << "70000 is no port";
  EXPECT_EQ(i->Weight(), 100) << "an unreadable weight falls back to the default";
  EXPECT_EQ(i->metadata.count("n"), 0u) << "non-string metadata values are skipped";
}

TEST(Instance, BadNodeDataNamesWhatIsWrong) {
  EXPECT_EQ(ParseInstance("garbage").status().message(), "instance data is not JSON");
  EXPECT_EQ(ParseInstance("[1,2]").status().message(), "instance data is not a JSON object");
  EXPECT_EQ(ParseInstance(R"({"id":"x","address":"h","port":1})").status().message(),
            "instance field 'name' is missing or not a string");
  EXPECT_EQ(ParseInstance(R"({"name":"s","id":7,"address":"h","port":1})").status().message(),
            "instance field 'id' is missing or not a string");
  EXPECT_EQ(ParseInstance(R"({"name":"s","id":"x","address":"h","port":"80"})").status().message(),
            "instance field 'port' is missing or not a port number");
  EXPECT_EQ(ParseInstance(R"({"name":"s","id":"x","address":"h","port":70000})").status().message(),
            "instance field 'port' is missing or not a port number");
}

TEST(Instance, GarbageNeverCrashesTheReader) {
  std::mt19937_64 rng(9);
  std::string base = ToJson(ShopInstance());
  for (int i = 0; i < 20000; ++i) {
    std::string s = base;
    for (int e = 0; e < 1 + static_cast<int>(rng() % 4); ++e) {
      std::size_t pos = rng() % s.size();
      if (rng() % 2) {
        s[pos] = static_cast<char>(rng());
      } else {
        s.erase(pos, 1 + rng() % 8);
      }
      if (s.empty()) s = "{";
    }
    (void)ParseInstance(s);
  }
}

// What a JSON document reader makes of `text` (nlohmann's, the reader ParseInstance used before
// it read instances in one pass): the reference the one-pass reader must agree with. One
// difference is meant: an integer above INT64_MAX is no sslPort or registration time (the
// document reader wrapped it to a negative number).
absl::StatusOr<Instance> ParseWithDocument(std::string_view text) {
  using Json = nlohmann::ordered_json;
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("instance data is not JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("instance data is not a JSON object");
  Instance out;
  for (auto [key, value] :
       {std::pair{"name", &out.name}, {"id", &out.id}, {"address", &out.address}}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("instance field '", key, "' is missing or not a string"));
    }
    *value = it->get<std::string>();
  }
  auto port = j.find("port");
  if (port == j.end() || !port->is_number_integer() || port->get<int64_t>() < 0 ||
      port->get<int64_t>() > 65535) {
    return absl::InvalidArgumentError("instance field 'port' is missing or not a port number");
  }
  out.port = port->get<int>();
  auto fits = [](const Json& v) {
    return v.is_number_integer() &&
           !(v.is_number_unsigned() &&
             v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  };
  if (auto ssl = j.find("sslPort"); ssl != j.end() && fits(*ssl)) {
    out.ssl_port = ssl->get<int>();
  }
  if (auto t = j.find("registrationTimeUTC"); t != j.end() && fits(*t)) {
    out.registration_time_ms = t->get<int64_t>();
  }
  if (auto type = j.find("serviceType"); type != j.end() && type->is_string()) {
    out.service_type = type->get<std::string>();
  }
  if (auto payload = j.find("payload"); payload != j.end() && payload->is_object()) {
    if (auto metadata = payload->find("metadata");
        metadata != payload->end() && metadata->is_object()) {
      for (const auto& [key, value] : metadata->items()) {
        if (value.is_string()) out.metadata[key] = value.get<std::string>();
      }
    }
  }
  return out;
}

std::string Describe(const absl::StatusOr<Instance>& i) {
  if (!i.ok()) return std::string(i.status().message());
  std::string out = absl::StrCat(i->name, "|", i->id, "|", i->address, "|", i->port, "|",
                                 i->ssl_port ? std::to_string(*i->ssl_port) : "-", "|",
                                 i->registration_time_ms, "|", i->service_type);
  for (const auto& [key, value] : i->metadata) absl::StrAppend(&out, "|", key, "=", value);
  return out;
}

TEST(Instance, ReadsEveryInputAsADocumentReaderWould) {
  // Corners of JSON itself: escapes, surrogates, UTF-8, numbers, nesting, repeated keys, values
  // of the wrong type, text around the value.
  const std::string good = R"("name":"s","id":"x","address":"h","port":1)";
  std::vector<std::string> cases = {
      "{" + good + "}",
      "\xEF\xBB\xBF{" + good + "}",
      " \t\r\n{" + good + "} \n",
      "{" + good + "} x",
      "{" + good + ",}",
      "{" + good + ",,\"a\":1}",
      "{" + good + "",
      R"({"name":"s\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00","id":"x","address":"h","port":1})",
      R"({"name":"\ud83d","id":"x","address":"h","port":1})",
      R"({"name":"\ude00","id":"x","address":"h","port":1})",
      R"({"name":"\ud83d\u0041","id":"x","address":"h","port":1})",
      R"({"name":"\u00","id":"x","address":"h","port":1})",
      R"({"name":"\x","id":"x","address":"h","port":1})",
      R"({"name":"\u0000","id":"x","address":"h","port":1})",
      "{\"name\":\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\",\"id\":\"x\",\"address\":\"h\",\"port\":"
      "1}",
      "{\"name\":\"\xC0\xAF\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"\xE0\x80\xAF\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"\xED\xA0\x80\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"\xF4\x90\x80\x80\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"\xF0\x9F\x98\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"\xFF\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      "{\"name\":\"a\x01\",\"id\":\"x\",\"address\":\"h\",\"port\":1}",
      R"({"name":"s","id":"x","address":"h","port":-0})",
      R"({"name":"s","id":"x","address":"h","port":01})",
      R"({"name":"s","id":"x","address":"h","port":1.0})",
      R"({"name":"s","id":"x","address":"h","port":1e2})",
      R"({"name":"s","id":"x","address":"h","port":-1})",
      R"({"name":"s","id":"x","address":"h","port":65535,"sslPort":443,"registrationTimeUTC":-5})",
      R"({"name":"s","id":"x","address":"h","port":1,"registrationTimeUTC":18446744073709551615})",
      R"({"name":"s","id":"x","address":"h","port":18446744073709551616})",
      R"({"name":"s","id":"x","address":"h","port":1.})",
      R"({"name":"s","id":"x","address":"h","port":.5})",
      R"({"name":"s","id":"x","address":"h","port":1e})",
      R"({"name":"s","id":"x","address":"h","port":-})",
      R"({"name":"s","id":"x","address":"h","port":1,"sslPort":null,"serviceType":"STATIC"})",
      R"({"name":"s","id":"x","address":"h","port":1,"serviceType":5})",
      R"({"name":"s","id":"x","address":"h","port":1,"serviceType":"A","serviceType":[]})",
      R"({"name":"s","name":"t","id":"x","address":"h","port":1})",
      R"({"name":"s","id":"x","address":"h","port":1,"name":{}})",
      R"({"name":"s","id":"x","address":"h","port":"1","port":2})",
      R"({"name":"s","id":"x","address":"h","port":2,"port":"1"})",
      R"({"name":true,"id":false,"address":null,"port":1})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":{"metadata":{"a":"1","b":2,"c":"3","c":4,"d":{"e":"f"},"g":["h"]}}})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":{"metadata":{"a":"1"},"metadata":{"b":"2"}}})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":{"metadata":{"a":"1"},"metadata":7}})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":{"metadata":{"a":"1"}},"payload":null})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":{"x":{"metadata":{"a":"1"}}}})",
      R"({"name":"s","id":"x","address":"h","port":1,"payload":[{"metadata":{"a":"1"}}]})",
      R"({"name":"s","id":"x","address":"h","port":1,"extra":[[[[{"name":"t","port":9}]]]]})",
      R"({"name":"s","id":"x","address":"h","port":1,"extra":[1,2,]})",
      R"({"name":"s","id":"x","address":"h","port":1,"extra":tru})",
      R"({"name":"s","id":"x","address":"h","port":1,"extra":nul})",
      R"({"name":"s","id":"x","address":"h","port":1,"extra":[true,false,null,-1.5e-3,"z"]})",
      R"({"name":"s","id":"x","address":"h","port":1 "a":1})",
      R"({"name":"s","id":"x","address":"h","port":1,"a" 1})",
      R"({"name":"s","id":"x","address":"h","port":1,1:2})",
      R"({"name":"s","id":"x","address":"h","port":1]})",
      R"([{"name":"s","id":"x","address":"h","port":1}])",
      R"("text")",
      "7",
      "null",
      "",
      "   ",
      "{}",
      std::string(100000, '[') + std::string(100000, ']'),
      "{\"name\":\"s\",\"id\":\"x\",\"address\":\"h\",\"port\":1,\"deep\":" +
          std::string(100000, '[') + std::string(100000, ']') + "}",
      std::string(100000, '['),
  };
  for (const std::string& text : cases) {
    EXPECT_EQ(Describe(ParseInstance(text)), Describe(ParseWithDocument(text)))
        << "input: " << text.substr(0, 200);
  }
  // Every kind of damage to a real instance's data: bytes changed to anything or to JSON's own
  // characters, cut out, or repeated.
  std::mt19937_64 rng(16);
  const std::string base = ToJson(ShopInstance());
  const std::string significant = "{}[]:,\"\\0123456789-+.eEtrufalsn \x80\xC3\xED\xF0\xFF";
  int agreed_ok = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string s = base;
    for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
      std::size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[pos] = static_cast<char>(rng());
          break;
        case 1:
          s[pos] = significant[rng() % significant.size()];
          break;
        case 2:
          s.erase(pos, 1 + rng() % 8);
          break;
        default:
          s.insert(pos, s.substr(pos, 1 + rng() % 20));
      }
      if (s.empty()) s = "{";
    }
    auto mine = ParseInstance(s);
    ASSERT_EQ(Describe(mine), Describe(ParseWithDocument(s))) << "input: " << s;
    if (mine.ok()) ++agreed_ok;
  }
  // The damage left some inputs readable: both readers were compared on successes too.
  EXPECT_GT(agreed_ok, 1000);
}

// 8-4-4-4-12 lower-case hex digits, version 4, variant 10xx.
bool IsUuidV4(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    if (!dash && std::isupper(static_cast<unsigned char>(s[i]))) return false;
  }
  return s[14] == '4' && std::string("89ab").find(s[19]) != std::string::npos;
}

TEST(Instance, IdsAreVersionFourUuids) {
  std::string a = NewInstanceId(), b = NewInstanceId();
  EXPECT_TRUE(IsUuidV4(a)) << a;
  EXPECT_TRUE(IsUuidV4(b)) << b;
  EXPECT_NE(a, b);
  EXPECT_FALSE(IsUuidV4("6f1c2a9e-1b2c-3d3e-8f40-5a6b7c8d9e0f")) << "version 3";
}

TEST(ServingInstance, DescribesWhatTheProcessServes) {
  Serving serving;
  serving.app = "shop";
  serving.address = "10.1.2.3";
  serving.grpc_port = 9091;
  serving.thrift_port = 9090;
  serving.services = {"shop.ShopService", "shop.AdminService"};
  serving.weight = 50;
  serving.version = "2.1.0";
  serving.zone = "b";
  Instance self = MakeServingInstance(serving);
  EXPECT_EQ(self.name, "shop");
  EXPECT_EQ(self.address, "10.1.2.3");
  EXPECT_EQ(self.port, 9091);  // the first listed protocol's
  EXPECT_EQ(self.id.size(), 36u);
  EXPECT_GT(self.registration_time_ms, 1700000000000);
  EXPECT_TRUE(self.IsUp());
  EXPECT_EQ(self.metadata.at("rpcboot.protocols"), "grpc,thrift");
  EXPECT_EQ(self.metadata.at("rpcboot.services"), "shop.ShopService,shop.AdminService");
  EXPECT_EQ(self.PortFor("grpc"), 9091);
  EXPECT_EQ(self.PortFor("thrift"), 9090);
  EXPECT_EQ(self.Weight(), 50);
  EXPECT_EQ(self.metadata.at("rpcboot.version"), "2.1.0");
  EXPECT_EQ(self.metadata.at("rpcboot.zone"), "b");
  // The JSON reads back as the same instance.
  absl::StatusOr<Instance> back = ParseInstance(ToJson(self));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata, self.metadata);
}

TEST(InstancePorts, ProtocolListsAreReadTolerantly) {
  Instance i = ShopInstance();
  i.metadata["rpcboot.protocols"] = " thrift , GRPC ";
  EXPECT_EQ(i.PortFor("grpc"), 9091);
  EXPECT_EQ(i.PortFor("thrift"), 9090);
  i.metadata["rpcboot.protocols"] = "thrift";
  EXPECT_FALSE(i.PortFor("grpc").has_value()) << "not listed: not spoken";
}

TEST(InstancePorts, SpringGrpcInstancesSayTheirPortTheirOwnWay) {
  Instance spring;
  spring.name = "shop";
  spring.id = "x";
  spring.address = "10.0.0.9";
  spring.port = 8080;  // the HTTP port of a Spring Boot app
  spring.metadata = {{"instance_status", "UP"}, {"gRPC_port", "9898"}};
  EXPECT_EQ(spring.PortFor("grpc"), 9898);
  EXPECT_FALSE(spring.PortFor("thrift").has_value());
  spring.metadata = {{"gRPC.port", "9797"}};  // the older spelling
  EXPECT_EQ(spring.PortFor("grpc"), 9797);
  spring.metadata = {{"gRPC_port", "not a port"}};
  EXPECT_FALSE(spring.PortFor("grpc").has_value());
  spring.metadata = {};
  EXPECT_FALSE(spring.PortFor("grpc").has_value()) << "a plain instance speaks nothing known";
}

TEST(ServingInstance, PublishesTheGrpcPortForSpringClientsToo) {
  Serving serving;
  serving.app = "shop";
  serving.address = "10.1.2.3";
  serving.grpc_port = 9091;
  serving.services = {"shop.ShopService"};
  EXPECT_EQ(MakeServingInstance(serving).metadata.at("gRPC_port"), "9091");
  serving.grpc_port = -1;
  serving.thrift_port = 9090;
  EXPECT_EQ(MakeServingInstance(serving).metadata.count("gRPC_port"), 0u);
}

TEST(ServingInstance, ThriftOnlyPublishesTheThriftPortAndNoZone) {
  Serving serving;
  serving.app = "order";
  serving.address = "127.0.0.1";
  serving.thrift_port = 7000;
  serving.services = {"order.OrderService"};
  serving.version = "1.0.0";
  Instance self = MakeServingInstance(serving);
  EXPECT_EQ(self.port, 7000);
  EXPECT_EQ(self.metadata.at("rpcboot.protocols"), "thrift");
  EXPECT_FALSE(self.PortFor("grpc").has_value());
  EXPECT_EQ(self.metadata.count("rpcboot.zone"), 0u);
  EXPECT_NE(MakeServingInstance(serving).id, self.id);  // a fresh id each time
}

// A view is read like a sorted vector: every iterator operation agrees with the index it stands
// for, across chunk boundaries, in lists from empty to 79 chunks.
TEST(InstanceView, ReadsLikeASortedVector) {
  for (int n : {0, 1, 63, 64, 65, 200, 1000, 2048, 2049, 5000}) {
    std::vector<Instance> instances;
    for (int i = 0; i < n; ++i) {
      Instance instance;
      instance.id = "id-" + std::to_string(100000 + (i * 7919) % n);  // unsorted, unique
      instances.push_back(instance);
    }
    InstanceView view(instances);
    ASSERT_EQ(view.size(), static_cast<std::size_t>(n));
    EXPECT_EQ(view.empty(), n == 0);
    EXPECT_EQ(view.end() - view.begin(), n);
    EXPECT_TRUE(std::is_sorted(view.begin(), view.end(),
                               [](const Instance& a, const Instance& b) { return a.id < b.id; }));
    int i = 0;
    for (auto it = view.begin(); it != view.end(); ++it, ++i) {
      ASSERT_EQ(&*it, &view[static_cast<std::size_t>(i)]);
      ASSERT_EQ(it - view.begin(), i);
      ASSERT_EQ(view.begin() + i, it);
      ASSERT_EQ(&view.begin()[i], &*it);
      ASSERT_LT(it, view.end());
    }
    ASSERT_EQ(i, n);
    // Steps from anywhere to anywhere, within a chunk and across: the same as from the start.
    for (int from = 0; from <= n; from += std::max(1, n / 37)) {
      for (int to = 0; to <= n; to += std::max(1, n / 41)) {
        auto it = view.begin() + from;
        it += to - from;
        ASSERT_EQ(it - view.begin(), to);
        ASSERT_TRUE(it == view.begin() + to);
        if (to < n) {
          ASSERT_EQ(&*it, &view[static_cast<std::size_t>(to)]);
        }
        ASSERT_TRUE((view.begin() + from) - (from - to) == it);
      }
    }
    for (auto it = view.end(); it != view.begin();) {
      --i;
      --it;
      ASSERT_EQ(&*it, &view[static_cast<std::size_t>(i)]);
      ASSERT_EQ(view.end() - it, n - i);
    }
    if (n > 0) {
      EXPECT_EQ(&view.front(), &*view.begin());
      EXPECT_EQ(&view.back(), &*(view.end() - 1));
      auto found =
          std::lower_bound(view.begin(), view.end(), view[static_cast<std::size_t>(n / 2)].id,
                           [](const Instance& a, const std::string& id) { return a.id < id; });
      EXPECT_EQ(found - view.begin(), n / 2);
    }
  }
}

// Random inserts and erases (with ids that repeat, as when two nodes claim one id) against a plain
// sorted vector; every published view keeps exactly what it held when it was published. The ids
// share their first eight bytes or not, are shorter than eight, empty, or past ASCII: the builder
// searches by the first eight bytes and reads the whole id only on a tie.
TEST(InstanceViewBuilder, MatchesASortedVectorAndNeverChangesAPublishedView) {
  std::mt19937 random(7);
  InstanceView::Builder builder;
  InstanceView::Items model;  // sorted by id; equal ids in insertion order
  auto by_id = [](const InstanceView::Item& a, const InstanceView::Item& b) {
    return a->id < b->id;
  };
  std::vector<std::pair<std::shared_ptr<const InstanceView>, InstanceView::Items>> published;
  auto check = [](const InstanceView& view, const InstanceView::Items& expected) {
    ASSERT_EQ(view.size(), expected.size());
    std::size_t i = 0;
    for (const Instance& instance : view) ASSERT_EQ(&instance, expected[i++].get()) << i;
  };
  for (int step = 0; step < 20000; ++step) {
    int what = static_cast<int>(random() % 100);
    if (what < 55 || model.empty()) {
      auto instance = std::make_shared<Instance>();
      // A NUL byte inside: an id padded with zeros must not tie with a longer one wrongly.
      static const std::string kPrefixes[] = {"id-", "0123456789-", "\xc3\xa9-", "",
                                              std::string("id\0", 3)};
      instance->id = kPrefixes[random() % 5] + std::to_string(random() % 3000);
      if (random() % 50 == 0) instance->id.clear();
      InstanceView::Item item = instance;
      model.insert(std::upper_bound(model.begin(), model.end(), item, by_id), item);
      builder.Insert(item);
    } else if (what < 97) {
      InstanceView::Item item = model[random() % model.size()];
      model.erase(std::find(model.begin(), model.end(), item));
      builder.Erase(item);
    } else {
      auto stranger = std::make_shared<const Instance>(*model[random() % model.size()]);
      builder.Erase(stranger);  // the same id, another instance: not here, nothing removed
    }
    ASSERT_EQ(builder.size(), model.size());
    if (step % 97 == 0) published.emplace_back(builder.Publish(), model);
    if (step % 1000 == 0) {
      auto view = builder.Publish();
      check(*view, model);
      if (HasFatalFailure()) return;
    }
  }
  for (const auto& [view, held] : published) {
    check(*view, held);
    if (HasFatalFailure()) return;
  }
  InstanceView::Items sorted = model;
  builder.Assign(sorted);
  check(*builder.Publish(), model);
  builder.Assign({});
  EXPECT_TRUE(builder.Publish()->empty());
}

// Instances id-100000 to id-109999, in order.
InstanceView::Items TenThousandSorted() {
  InstanceView::Items items;
  for (int i = 0; i < 10000; ++i) {
    auto instance = std::make_shared<Instance>();
    instance->id = "id-" + std::to_string(100000 + i);
    items.push_back(instance);
  }
  return items;
}

// A list of 10,000 (157 chunks) loses a run of 2,000 neighbours (whole chunks vanish), then
// gains 3,000 that all sort between two neighbours (one chunk grows and splits again and again),
// and every view published on the way still reads as it did.
TEST(InstanceViewBuilder, ChunksThatVanishAndSplitKeepEveryPublishedView) {
  std::mt19937 random(11);
  InstanceView::Items model = TenThousandSorted();
  InstanceView::Builder builder;
  builder.Assign(model);
  std::vector<std::pair<std::shared_ptr<const InstanceView>, InstanceView::Items>> published;
  published.emplace_back(builder.Publish(), model);
  InstanceView::Items run(model.begin() + 3000, model.begin() + 5000);
  std::shuffle(run.begin(), run.end(), random);
  for (std::size_t i = 0; i < run.size(); ++i) {
    model.erase(std::find(model.begin(), model.end(), run[i]));
    builder.Erase(run[i]);
    if (i % 97 == 0) published.emplace_back(builder.Publish(), model);
  }
  auto by_id = [](const InstanceView::Item& a, const InstanceView::Item& b) {
    return a->id < b->id;
  };
  for (int i = 0; i < 3000; ++i) {
    auto instance = std::make_shared<Instance>();
    instance->id = "id-107000-" + std::to_string(100000 + random() % 900000);  // before id-107001
    InstanceView::Item item = instance;
    model.insert(std::upper_bound(model.begin(), model.end(), item, by_id), item);
    builder.Insert(item);
    if (i % 89 == 0) published.emplace_back(builder.Publish(), model);
  }
  published.emplace_back(builder.Publish(), model);
  ASSERT_EQ(published.back().first->size(), 11000u);
  for (const auto& [view, held] : published) {
    ASSERT_EQ(view->size(), held.size());
    std::size_t i = 0;
    for (const Instance& instance : *view) ASSERT_EQ(&instance, held[i++].get()) << i;
    for (std::size_t j = 0; j < held.size(); j += 97) ASSERT_EQ(&(*view)[j], held[j].get()) << j;
    ASSERT_EQ(&view->back(), held.back().get());
  }
}

// Publishing a list of 10,000 after one change shares every chunk but the one that changed.
TEST(InstanceViewBuilder, APublishedChangeSharesTheInstancesThatDidNotChange) {
  InstanceView::Items items = TenThousandSorted();
  InstanceView::Builder builder;
  builder.Assign(items);
  auto before = builder.Publish();
  builder.Erase(items[5000]);
  auto after = builder.Publish();
  ASSERT_EQ(after->size(), 9999u);
  // Each instance is held by `items` and once more (by the builder, or for the erased one by
  // what `before` keeps): a list holds no reference of its own per instance.
  for (const InstanceView::Item& item : items) ASSERT_EQ(item.use_count(), 2);
  EXPECT_EQ(&(*before)[5000], items[5000].get());
  EXPECT_EQ(&(*after)[5000], items[5001].get());
  for (std::size_t i = 0; i < 5000; ++i) ASSERT_EQ(&(*before)[i], &(*after)[i]);
}

TEST(InstanceViewBuilder, AListKeepsWhatItShowsUntilItIsGone) {
  std::vector<std::weak_ptr<const Instance>> watch;
  std::shared_ptr<const InstanceView> first, second, third;
  {
    InstanceView::Builder builder;
    InstanceView::Items items;
    for (int i = 0; i < 300; ++i) {
      auto instance = std::make_shared<Instance>();
      instance->id = "id-" + std::to_string(1000 + i);
      watch.push_back(instance);
      items.push_back(std::move(instance));
    }
    builder.Assign(items);
    first = builder.Publish();
    builder.Erase(items[10]);  // shown by `first` only
    second = builder.Publish();
    builder.Erase(items[20]);        // shown by `first` and `second`
    for (int i = 0; i < 200; ++i) {  // splits and empties chunks
      auto instance = std::make_shared<Instance>();
      instance->id = "id-1020-" + std::to_string(100 + i);
      builder.Insert(instance);
    }
    third = builder.Publish();
    builder.Erase(items[30]);  // the builder goes: what it held goes to `third`
  }
  auto read_all = [](const InstanceView& view) {
    std::size_t ids = 0;
    for (const Instance& instance : view) ids += instance.id.size();  // touches every instance
    return ids;
  };
  EXPECT_EQ(first->size(), 300u);
  EXPECT_EQ(second->size(), 299u);
  EXPECT_EQ(third->size(), 498u);
  EXPECT_GT(read_all(*first), 0u);
  EXPECT_GT(read_all(*second), 0u);
  EXPECT_GT(read_all(*third), 0u);
  EXPECT_FALSE(watch[10].expired());
  first.reset();  // the last list showing items[10]
  EXPECT_TRUE(watch[10].expired());
  EXPECT_FALSE(watch[20].expired()) << "`second` shows it";
  EXPECT_GT(read_all(*second), 0u);
  second.reset();
  EXPECT_TRUE(watch[20].expired());
  EXPECT_FALSE(watch[30].expired()) << "`third` shows it";
  EXPECT_GT(read_all(*third), 0u);
  third.reset();
  for (const auto& w : watch) ASSERT_TRUE(w.expired()) << "nothing outlives the last list";
}

TEST(InstanceViewBuilder, AListKeptAcrossManyPublicationsGoesWithoutDeepRecursion) {
  InstanceView::Builder builder;
  auto a = std::make_shared<Instance>();
  a->id = "a";
  builder.Insert(a);
  auto oldest = builder.Publish();
  for (int i = 0; i < 200000; ++i) {  // 200,000 records chained behind `oldest`
    auto b = std::make_shared<Instance>();
    b->id = "b";
    builder.Insert(b);
    builder.Publish();
    builder.Erase(b);
  }
  EXPECT_EQ(oldest->size(), 1u);
  oldest.reset();  // frees the chain link by link
  EXPECT_EQ(builder.Publish()->size(), 1u);
}

}  // namespace
}  // namespace rpcboot::discovery
