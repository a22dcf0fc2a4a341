// The rpcboot tool's Thrift schema (cli/thrift_schema.h) against rpcboot's own codec: the args
// it writes from JSON decode, with the generated glue, into the C++ values the JSON names; the
// results the glue writes read back as the JSON of those values; and every malformed schema,
// request and reply gets a clear error (never a crash or an allocation a length asks for).
#include "cli/thrift_schema.h"

#include <gtest/gtest.h>

#include <string>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rpcboot/codec/thrift_codec.h"
#include "rpcboot/internal/binding_impl.h"
#include "rpcboot/transport/thrift_reflection.h"

namespace rpcboot::cli {
namespace {

constexpr WireFormat kFormats[] = {WireFormat::kThriftCompact, WireFormat::kThriftBinary};

// The document a server with the rich services hands out through rpcboot.ThriftReflection.
ThriftSchema RichSchema() {
  std::vector<const internal::ServiceBinding*> bindings = {
      &internal::BindingOf<rich::RichService>(), &internal::BindingOf<rich::AdminService>()};
  absl::StatusOr<std::string> document = internal::ThriftSchemaDocument(bindings, "");
  EXPECT_TRUE(document.ok());
  absl::StatusOr<ThriftSchema> schema = ThriftSchema::Parse(*document);
  EXPECT_TRUE(schema.ok()) << schema.status();
  return *schema;
}

const ThriftService& Rich(const ThriftSchema& schema) {
  const ThriftService* service = schema.Find("rich.RichService");
  EXPECT_NE(service, nullptr);
  return *service;
}

struct EchoScalarsArgs {
  rich::Scalars scalars;  // 1: Scalars scalars
};
struct EchoArgs {
  rich::EchoRequest request;
};
struct NotifyArgs {
  int64_t id = 0;
  std::string message;
  rich::Color color = rich::Color::kRed;
};

TEST(ThriftSchema, DocumentListsServicesAndNamesAnUnknownOne) {
  ThriftSchema schema = RichSchema();
  ASSERT_EQ(schema.services().size(), 2u);
  EXPECT_EQ(schema.services()[1].name, "rich.AdminService");
  EXPECT_EQ(Rich(schema).methods.size(), 12u);
  absl::StatusOr<std::string> one = internal::ThriftSchemaDocument(
      {&internal::BindingOf<rich::AdminService>(), &internal::BindingOf<rich::RichService>()},
      "nope.Nope");
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.status().message(),
            "no service nope.Nope (it serves: rich.AdminService, rich.RichService)");
}

TEST(ThriftSchema, DescribeWritesThriftIdl) {
  std::string text = ThriftSchema::Describe(Rich(RichSchema()));
  for (const char* line :
       {"  rich.Everything Echo(1: rich.EchoRequest request)  // idempotent\n",
        "  void Notify(1: i64 id, 2: string message, 3: rich.Color color)\n",
        "  rich.LookupResponse Lookup(1: optional i64 key)  // idempotent\n",
        "  3: list<i8> tiny\n", "  7: string end_\n", "  1: optional i32 maybe_int\n",
        "  9: i64 u64  // unsigned\n", "  kBlue = 7\n", "  15: map<i64, bool> bits\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "no '" << line << "' in:\n" << text;
  }
}

TEST(ThriftSchema, ArgsFromJsonDecodeIntoTheValuesTheJsonNames) {
  ThriftSchema schema = RichSchema();
  const ThriftService& rich = Rich(schema);
  for (WireFormat format : kFormats) {
    // The struct's fields directly (as on gRPC); C++ names of renamed fields ("i8" for "i8_").
    absl::StatusOr<std::string> args =
        ThriftSchema::EncodeArgs(rich, *rich.Find("EchoScalars"),
                                 R"({"flag": true, "i8": -128, "i16_": 32767, "i32": -2147483648,
            "i64": "-9223372036854775808", "u8": 255, "u16": 65535, "u32": 4294967295,
            "u64": "18446744073709551615", "f32": 1.5, "f64": "-Infinity", "text": "h\u00e9",
            "blob": "AAEC/w==", "color": "kBlue", "light": -2, "level": "LEVEL_HIGH",
            "tier": "kGold"})",
                                 format);
    ASSERT_TRUE(args.ok()) << args.status();
    EchoScalarsArgs decoded;
    ASSERT_TRUE(ThriftDecode(*args, format, &decoded).ok());
    const rich::Scalars& s = decoded.scalars;
    EXPECT_TRUE(s.flag);
    EXPECT_EQ(s.i8, -128);
    EXPECT_EQ(s.i16, 32767);
    EXPECT_EQ(s.i32, INT32_MIN);
    EXPECT_EQ(s.i64, INT64_MIN);
    EXPECT_EQ(s.u8, 255);
    EXPECT_EQ(s.u16, 65535);
    EXPECT_EQ(s.u32, 4294967295u);
    EXPECT_EQ(s.u64, UINT64_MAX);
    EXPECT_EQ(s.f32, 1.5f);
    EXPECT_EQ(s.f64, -std::numeric_limits<double>::infinity());
    EXPECT_EQ(s.text, "h\xc3\xa9");
    EXPECT_EQ(s.blob, (std::vector<uint8_t>{0, 1, 2, 255}));
    EXPECT_EQ(s.color, rich::Color::kBlue);
    EXPECT_EQ(s.light, rich::Light::kOff);
    EXPECT_EQ(s.level, rich::LEVEL_HIGH);
    EXPECT_EQ(s.tier, rich::Tier::kGold);

    // Parameters by name; containers, maps with integer keys, nested structs.
    args = ThriftSchema::EncodeArgs(rich, *rich.Find("Notify"),
                                    R"({"id": 7, "message": "hi", "color": "kGreen"})", format);
    ASSERT_TRUE(args.ok()) << args.status();
    NotifyArgs notify;
    ASSERT_TRUE(ThriftDecode(*args, format, &notify).ok());
    EXPECT_EQ(notify.id, 7);
    EXPECT_EQ(notify.message, "hi");
    EXPECT_EQ(notify.color, rich::Color::kGreen);

    args = ThriftSchema::EncodeArgs(
        rich, *rich.Find("Echo"),
        R"({"value": {"id": 1, "containers": {"points_by_id": {"-3": {"x": 1, "y": 2}},
            "bits": {"18446744073709551615": true}, "matrix": [[1, 2], []],
            "tags": {"a": ["b", "c"]}}, "optionals": {"maybe_int": 0},
            "children": [{"id": 2, "end": "e"}]}})",
        format);
    ASSERT_TRUE(args.ok()) << args.status();
    EchoArgs echo;
    ASSERT_TRUE(ThriftDecode(*args, format, &echo).ok());
    const rich::Everything& e = echo.request.value;
    EXPECT_EQ(e.id, 1);
    EXPECT_EQ(e.containers.points_by_id.at(-3).y, 2);
    EXPECT_TRUE(e.containers.bits.at(UINT64_MAX));
    EXPECT_EQ(e.containers.matrix, (std::vector<std::vector<int32_t>>{{1, 2}, {}}));
    EXPECT_EQ(e.containers.tags.at("a").size(), 2u);
    ASSERT_TRUE(e.optionals.maybe_int.has_value()) << "a present zero stays present";
    EXPECT_EQ(*e.optionals.maybe_int, 0);
    EXPECT_FALSE(e.optionals.maybe_text.has_value());
    ASSERT_EQ(e.children.size(), 1u);
    EXPECT_EQ(e.children[0].end, "e");
  }
}

TEST(ThriftSchema, ResultsReadBackAsJson) {
  ThriftSchema schema = RichSchema();
  const ThriftService& rich = Rich(schema);
  for (WireFormat format : kFormats) {
    rich::Scalars s;
    s.i8 = -1;
    s.u64 = UINT64_MAX;
    s.f64 = std::numeric_limits<double>::quiet_NaN();
    s.blob = {0, 255};
    s.color = rich::Color::kBlue;
    s.text = "t";
    std::string result = internal::ThriftEncodeSuccess(format, &s);
    absl::StatusOr<ThriftReply> reply =
        ThriftSchema::DecodeResult(rich, *rich.Find("EchoScalars"), result, format);
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_TRUE(reply->ok);
    for (const char* want :
         {"\"i8_\": -1", "\"u64\": 18446744073709551615", "\"f64\": \"NaN\"", "\"blob\": \"AP8=\"",
          "\"color\": \"kBlue\"", "\"text\": \"t\"", "\"level\": \"LEVEL_LOW\""}) {
      EXPECT_NE(reply->json.find(want), std::string::npos) << want << " not in " << reply->json;
    }
    // void: "{}"; an error in field 1: its code and message.
    std::string void_result = internal::ThriftEncodeSuccess<void>(format, nullptr);
    reply = ThriftSchema::DecodeResult(rich, *rich.Find("Notify"), void_result, format);
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->json, "{}");
    std::string error =
        internal::ThriftErrorResult(format, StatusCode::kFailedPrecondition, "closed");
    reply = ThriftSchema::DecodeResult(rich, *rich.Find("Count"), error, format);
    ASSERT_TRUE(reply.ok());
    EXPECT_FALSE(reply->ok);
    EXPECT_EQ(reply->code, StatusCode::kFailedPrecondition);
    EXPECT_EQ(reply->message, "closed");
  }
}

TEST(ThriftSchema, BadRequestsNameTheFieldAndTheProblem) {
  ThriftSchema schema = RichSchema();
  const ThriftService& rich = Rich(schema);
  const ThriftMethod& scalars = *rich.Find("EchoScalars");
  struct Case {
    const char* json;
    const char* message;
  } cases[] = {
      {"{bad", "not JSON: "},
      {"[1]", "[1] is not an object (the parameters of EchoScalars)"},
      {R"({"i8": 128})", "scalars.i8_: 128 is out of range for an i8 (-128..127)"},
      {R"({"i64": "x"})", "scalars.i64_: \"x\" is not an i64 (an integer)"},
      {R"({"u64": -1})", "scalars.u64: -1 is out of range for an unsigned i64"},
      {R"({"i32": 1.5})", "scalars.i32_: 1.5 is not an i32 (an integer)"},
      {R"({"flag": 1})", "scalars.flag: 1 is not a bool (true or false)"},
      {R"({"text": 3})", "scalars.text: 3 is not a string"},
      {R"({"blob": "%%%"})", "scalars.blob: \"%%%\" is not binary (a base64 string)"},
      {R"({"color": "kPink"})",
       "scalars.color: \"kPink\" is not a value of rich.Color (kRed, "
       "kGreen, kBlue)"},
      {R"({"f64": "many"})", "scalars.f64: \"many\" is not a double"},
      {R"({"colour": 1})", "scalars: no field 'colour' in rich.Scalars (fields: flag, i8_,"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> args =
        ThriftSchema::EncodeArgs(rich, scalars, c.json, WireFormat::kThriftCompact);
    ASSERT_FALSE(args.ok()) << c.json;
    EXPECT_TRUE(absl::IsInvalidArgument(args.status()));
    EXPECT_NE(args.status().message().find(c.message), std::string::npos)
        << c.json << " -> " << args.status().message();
  }
  absl::StatusOr<std::string> args = ThriftSchema::EncodeArgs(
      rich, *rich.Find("Path"), R"({"points": {"x": 1}, "reversed": true})",
      WireFormat::kThriftCompact);
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(), "points: {\"x\":1} is not a list (a JSON array)");
  args = ThriftSchema::EncodeArgs(rich, *rich.Find("Notify"), R"({"idd": 1})",
                                  WireFormat::kThriftCompact);
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().message(),
            "no field 'idd' in the parameters of Notify (fields: id, message, color)");
}

TEST(ThriftSchema, HostileRepliesFailCleanly) {
  ThriftSchema schema = RichSchema();
  const ThriftService& rich = Rich(schema);
  const ThriftMethod& scalars = *rich.Find("EchoScalars");
  const WireFormat compact = WireFormat::kThriftCompact;
  rich::Scalars s;
  s.text = "hello";
  std::string whole = internal::ThriftEncodeSuccess(compact, &s);
  // Cut short anywhere: "does not decode".
  for (std::size_t n = 0; n + 1 < whole.size(); ++n) {
    absl::StatusOr<ThriftReply> reply =
        ThriftSchema::DecodeResult(rich, scalars, whole.substr(0, n), compact);
    EXPECT_FALSE(reply.ok()) << n;
  }
  // Field 0 a struct holding field 12 (text) a string that claims 2^31 - 1 bytes.
  std::string huge("\x0c\x00\xc8\xff\xff\xff\xff\x07", 8);
  absl::StatusOr<ThriftReply> reply = ThriftSchema::DecodeResult(rich, scalars, huge, compact);
  ASSERT_FALSE(reply.ok());
  EXPECT_TRUE(absl::IsDataLoss(reply.status())) << reply.status();
  // Field 0 an i64 where the schema says a struct.
  reply = ThriftSchema::DecodeResult(rich, scalars, std::string("\x06\x00\x02\x00", 4), compact);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().message(),
            "the reply does not fit the schema: result: the server sent an i64 where the schema "
            "says rich.Scalars: the schema does not match the server");
  // A void result, and no result at all where one is due.
  reply = ThriftSchema::DecodeResult(rich, scalars, std::string(1, '\0'), compact);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().message(), "the reply carries no result (field 0) and no error");
  // Everything inside Everything's children 200 deep: refused at 64, not a stack overflow.
  rich::Everything deep;
  for (int i = 0; i < 200; ++i) {
    rich::Everything outer;
    outer.children.push_back(std::move(deep));
    deep = std::move(outer);
  }
  std::string nested = internal::ThriftEncodeSuccess(compact, &deep);
  reply = ThriftSchema::DecodeResult(rich, *rich.Find("Echo"), nested, compact);
  ASSERT_FALSE(reply.ok());
  EXPECT_NE(reply.status().message().find("nested deeper than 64"), std::string::npos)
      << reply.status();
}

TEST(ThriftSchema, BadDocumentsAreNamed) {
  struct Case {
    const char* document;
    const char* message;
  } cases[] = {
      {"{", "the schema is not JSON"},
      {"{}", "not an rpcboot Thrift schema"},
      {R"({"rpcboot_thrift_schema": 2, "services": []})", "schema version 2 is not one"},
      {R"({"rpcboot_thrift_schema": 1})", "no \"services\" list"},
      {R"({"rpcboot_thrift_schema": 1, "services": [{"name": "a.S", "methods": [
          {"name": "M", "params": [], "result": "a.Missing"}], "types": {}}]})",
       "services[0].methods[0].result: type 'a.Missing' is not defined"},
      {R"({"rpcboot_thrift_schema": 1, "services": [{"name": "a.S", "methods": [],
          "types": {"a.T": {"struct": [{"id": 1, "name": "x", "type": "i32"},
                                       {"id": 1, "name": "y", "type": "i32"}]}}}]})",
       "field id 1 is used twice"},
      {R"({"rpcboot_thrift_schema": 1, "services": [{"name": "a.S", "methods": [],
          "types": {"a.T": {"enum": [["A", "zero"]]}}}]})",
       "an enum value is not [\"NAME\", number]"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ThriftSchema> schema = ThriftSchema::Parse(c.document);
    ASSERT_FALSE(schema.ok()) << c.document;
    EXPECT_NE(schema.status().message().find(c.message), std::string::npos)
        << schema.status().message();
  }
  // A schema can come from a server (rpcboot.ThriftReflection): a type nested 100,000 deep is an
  // error, not a stack overflow, and 64 levels still read.
  auto nested = [](int levels) {
    return R"({"rpcboot_thrift_schema": 1, "services": [{"name": "a.S", "methods": [)"
           R"({"name": "M", "params": [], "result": )" +
           [&] {
             std::string t;
             for (int i = 0; i < levels; ++i) t += R"({"list": )";
             return t + "\"i32\"" + std::string(levels, '}');
           }() +
           "}]}]}";
  };
  absl::StatusOr<ThriftSchema> deep = ThriftSchema::Parse(nested(100000));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find(": a type nested deeper than 64"), std::string::npos)
      << deep.status().message().substr(0, 200);
  absl::StatusOr<ThriftSchema> fits = ThriftSchema::Parse(nested(64));
  EXPECT_TRUE(fits.ok()) << fits.status();
}

}  // namespace
}  // namespace rpcboot::cli
