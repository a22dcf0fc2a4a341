// Differential tests against the stock compilers' code for the same emitted IDL files: for
// random values of the rich interface, rpcboot's codecs and the code that thrift-compiler and
// protoc generated from rpcboot's own .thrift/.proto produce the same bytes, and each decodes
// the other's output to equal values.
//
// Proto, generated side encoding: the value is copied into the protoc message through protobuf
// reflection (field number = index + 1), serialized by protoc's code (deterministic, which only
// sorts map entries), and compared with rpcboot's bytes.
// Thrift, generated side encoding: thrift-compiler's reader parses rpcboot's bytes into its own
// object and its writer writes that object again; the bytes must be identical, and rpcboot
// decodes them back to the original value.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <memory>
#include <string>

#include "RichService.h"
#include "common_types.pb.h"
#include "common_types.rpcboot.h"
#include "common_types_types.h"
#include "rich_service.pb.h"
#include "rich_service.rpcboot.h"
#include "rich_service_types.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "value_testing.h"

namespace rpcboot {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using testing::DeepEqual;
using testing::Hex;
using testing::Randomizer;
using testing::RandomOptions;

// ---- value -> protoc message through reflection ----

template <class T>
void ToMessage(const T& value, Message* message);
template <class F>
void SetFromValue(const F& value, Message* message, const FieldDescriptor* field);

template <class X>
void SetSingular(const X& x, Message* m, const FieldDescriptor* fd) {
  using namespace rpcboot::internal;
  const Reflection* r = m->GetReflection();
  if constexpr (kIsStruct<X>) {
    ToMessage(x, r->MutableMessage(m, fd));
  } else if constexpr (kIsContainer<X>) {  // wrapper message, field 1 holds the container
    Message* wrapper = r->MutableMessage(m, fd);
    SetFromValue(x, wrapper, wrapper->GetDescriptor()->FindFieldByNumber(1));
  } else if constexpr (kIsString<X> || kIsBytes<X>) {
    r->SetString(m, fd, std::string(x.begin(), x.end()));
  } else if constexpr (kIsEnum<X>) {
    r->SetEnumValue(m, fd, static_cast<int>(x));
  } else if constexpr (kIsBool<X>) {
    r->SetBool(m, fd, x);
  } else if constexpr (std::is_same_v<X, float>) {
    r->SetFloat(m, fd, x);
  } else if constexpr (std::is_same_v<X, double>) {
    r->SetDouble(m, fd, x);
  } else {
    switch (fd->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, fd, static_cast<int32_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, fd, static_cast<int64_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(m, fd, static_cast<uint32_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(m, fd, static_cast<uint64_t>(x));
        break;
      default:
        FAIL() << "unexpected proto type for " << fd->full_name();
    }
  }
}

template <class X>
void AddElement(const X& x, Message* m, const FieldDescriptor* fd) {
  using namespace rpcboot::internal;
  const Reflection* r = m->GetReflection();
  if constexpr (kIsStruct<X>) {
    ToMessage(x, r->AddMessage(m, fd));
  } else if constexpr (kIsContainer<X>) {
    Message* wrapper = r->AddMessage(m, fd);
    SetFromValue(x, wrapper, wrapper->GetDescriptor()->FindFieldByNumber(1));
  } else if constexpr (kIsString<X> || kIsBytes<X>) {
    r->AddString(m, fd, std::string(x.begin(), x.end()));
  } else if constexpr (kIsEnum<X>) {
    r->AddEnumValue(m, fd, static_cast<int>(x));
  } else if constexpr (kIsBool<X>) {
    r->AddBool(m, fd, x);
  } else if constexpr (std::is_same_v<X, float>) {
    r->AddFloat(m, fd, x);
  } else if constexpr (std::is_same_v<X, double>) {
    r->AddDouble(m, fd, x);
  } else {
    switch (fd->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(m, fd, static_cast<int32_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(m, fd, static_cast<int64_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->AddUInt32(m, fd, static_cast<uint32_t>(x));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->AddUInt64(m, fd, static_cast<uint64_t>(x));
        break;
      default:
        FAIL() << "unexpected proto type for " << fd->full_name();
    }
  }
}

template <class F>
void SetFromValue(const F& value, Message* m, const FieldDescriptor* fd) {
  using namespace rpcboot::internal;
  ASSERT_NE(fd, nullptr);
  if constexpr (kIsOptional<F>) {
    if (value.has_value()) SetSingular(*value, m, fd);
  } else if constexpr (kIsList<F>) {
    for (const auto& e : value) AddElement(static_cast<const typename F::value_type&>(e), m, fd);
  } else if constexpr (kIsMap<F>) {
    for (const auto& [key, v] : value) {
      Message* entry = m->GetReflection()->AddMessage(m, fd);
      SetSingular(key, entry, entry->GetDescriptor()->FindFieldByNumber(1));
      SetSingular(v, entry, entry->GetDescriptor()->FindFieldByNumber(2));
    }
  } else {
    SetSingular(value, m, fd);
  }
}

template <class T, std::size_t... I>
void ToMessageFields(const T& value, Message* m, std::index_sequence<I...>) {
  (SetFromValue(boost::pfr::get<I>(value), m, m->GetDescriptor()->FindFieldByNumber(I + 1)), ...);
}

template <class T>
void ToMessage(const T& value, Message* message) {
  ToMessageFields(value, message, std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
}

std::string DeterministicBytes(const Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

template <class T, class Ref>
void CheckProto(const T& value) {
  // Generated encodes; rpcboot must produce the same bytes and decode them.
  Ref generated;
  ToMessage(value, &generated);
  std::string expected = DeterministicBytes(generated);
  std::string ours = ProtoEncode(value);
  ASSERT_EQ(Hex(ours), Hex(expected)) << "rpcboot and protoc bytes differ";
  T decoded{};
  auto status = ProtoDecode(expected, &decoded);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(DeepEqual(value, decoded)) << "rpcboot decoded protoc's bytes to a different value";
  // rpcboot encodes; protoc's parser must read it to the same message.
  Ref parsed;
  ASSERT_TRUE(parsed.ParseFromString(ours)) << "protoc cannot parse rpcboot's bytes";
  ASSERT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, generated));
}

template <class Protocol, class T, class Ref>
void CheckThrift(const T& value, WireFormat kind) {
  std::string ours = ThriftEncode(value, kind);
  auto in = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(ours.data()), static_cast<uint32_t>(ours.size()));
  Protocol reader(in);
  Ref generated;
  generated.read(&reader);
  ASSERT_EQ(in->available_read(), 0u) << "thrift-compiler's reader left bytes unread";
  auto out = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  Protocol writer(out);
  generated.write(&writer);
  std::string theirs = out->getBufferAsString();
  ASSERT_EQ(Hex(ours), Hex(theirs)) << "rpcboot and thrift-compiler bytes differ";
  T decoded{};
  ASSERT_TRUE(ThriftDecode(theirs, kind, &decoded).ok());
  ASSERT_TRUE(DeepEqual(value, decoded))
      << "rpcboot decoded thrift-compiler's bytes to a different value";
}

using Compact = apache::thrift::protocol::TCompactProtocol;
using Binary = apache::thrift::protocol::TBinaryProtocol;

template <class T, class ThriftRef, class ProtoRef>
void RunDifferential(uint64_t seed, int iterations) {
  // unordered_map iterates in no fixed order; stock code writes std::map order, so byte
  // comparisons keep those maps to one entry (their values are compared in codec_test).
  RandomOptions options;
  options.max_unordered = 1;
  options.uint64_keys_below_sign_bit = true;
  Randomizer random(seed, options);
  for (int i = 0; i < iterations; ++i) {
    T value = random.Make<T>();
    SCOPED_TRACE("iteration " + std::to_string(i));
    CheckProto<T, ProtoRef>(value);
    CheckThrift<Compact, T, ThriftRef>(value, WireFormat::kThriftCompact);
    CheckThrift<Binary, T, ThriftRef>(value, WireFormat::kThriftBinary);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(CodecDifferential, Scalars) {
  RunDifferential<rich::Scalars, rich_thrift::Scalars, rich_pb::Scalars>(21, 500);
}
TEST(CodecDifferential, Containers) {
  RunDifferential<rich::Containers, rich_thrift::Containers, rich_pb::Containers>(22, 300);
}
TEST(CodecDifferential, Optionals) {
  RunDifferential<rich::Optionals, rich_thrift::Optionals, rich_pb::Optionals>(23, 500);
}
TEST(CodecDifferential, EverythingNested) {
  RunDifferential<rich::Everything, rich_thrift::Everything, rich_pb::Everything>(24, 100);
}
TEST(CodecDifferential, DesignCardStyleRequest) {
  RunDifferential<rich::EchoRequest, rich_thrift::EchoRequest, rich_pb::EchoRequest>(25, 50);
}

// Strings and bytes of 16 KiB or more are appended to the output around the rest of the message
// (ProtoSizeCache::Defer), and long strings are checked and copied a piece at a time
// (AssignValidUtf8). Wherever they sit (nested, in lists, maps and optionals, next to short
// ones, at and around 16 KiB, with characters of every length across each piece's end) the
// bytes are still protoc's and thrift-compiler's, and decode to the same value.
TEST(CodecDifferential, LargeStringsAndBytesAnywhereInAMessage) {
  RandomOptions options;
  options.max_unordered = 1;
  options.uint64_keys_below_sign_bit = true;
  Randomizer random(27, options);
  auto text = [](std::size_t n, std::size_t salt) {
    const char* characters[] = {"a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x8d\x95"};
    std::string s;
    for (std::size_t i = salt; s.size() < n; ++i) s += characters[(i * 7 + i / 3) % 4];
    return s;
  };
  const std::size_t sizes[] = {16383, 16384, 16385, 40000, 70001};
  for (std::size_t i = 0; i < 10; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::size_t n = sizes[i % std::size(sizes)];
    rich::Everything value = random.Make<rich::Everything>();
    value.scalars.text = text(n, i);
    value.scalars.blob.assign(n + i, static_cast<uint8_t>(0xf0 + i));
    value.containers.names = {text(n, i + 1), "short", text(n + 3, i + 2)};
    value.containers.labels[7] = text(n, i + 3);
    value.containers.tags["k"] = {text(n, i + 4)};
    value.containers.counts[text(n, i + 8)] = 5;  // a large map key
    value.optionals.maybe_text = text(n, i + 5);
    value.optionals.maybe_blob = std::vector<uint8_t>(n, 0xff);
    value.end = text(2 * n, i + 6);
    rich::Everything child = random.Make<rich::Everything>();
    child.scalars.text = text(n + 1, i + 7);
    child.end = "tail";
    value.children.push_back(std::move(child));
    CheckProto<rich::Everything, rich_pb::Everything>(value);
    CheckThrift<Compact, rich::Everything, rich_thrift::Everything>(value,
                                                                    WireFormat::kThriftCompact);
    CheckThrift<Binary, rich::Everything, rich_thrift::Everything>(value,
                                                                   WireFormat::kThriftBinary);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// A method's argument list (std::tuple) is the Thrift args struct and the proto request message.
TEST(CodecDifferential, ArgumentListsAreArgsStructsAndRequestMessages) {
  Randomizer random(26);
  for (int i = 0; i < 50; ++i) {
    auto id = random.Make<rich::Stamp>().seconds;
    std::string message = random.Make<rich::Stamp>().zone;
    rich::Color color = random.Make<rich::Scalars>().color;
    std::tuple<const int64_t&, const std::string&, const rich::Color&> args(id, message, color);

    rich_pb::NotifyRequest request;
    request.set_id(id);
    request.set_message(message);
    request.set_color(static_cast<rich_pb::Color>(color));
    ASSERT_EQ(Hex(ProtoEncode(args)), Hex(DeterministicBytes(request)));

    rich_thrift::RichService_Notify_args thrift_args;
    thrift_args.id = id;
    thrift_args.message = message;
    thrift_args.color = static_cast<rich_thrift::Color::type>(color);
    auto out = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
    Compact writer(out);
    thrift_args.write(&writer);
    ASSERT_EQ(Hex(ThriftEncode(args, WireFormat::kThriftCompact)), Hex(out->getBufferAsString()));

    std::tuple<int64_t, std::string, rich::Color> decoded;
    ASSERT_TRUE(ThriftDecode(out->getBufferAsString(), WireFormat::kThriftCompact, &decoded).ok());
    EXPECT_EQ(std::get<0>(decoded), id);
    EXPECT_EQ(std::get<1>(decoded), message);
    EXPECT_EQ(std::get<2>(decoded), color);
  }
}

// uint64_t map keys at or above 2^63 are negative i64 keys to stock Thrift code, which orders
// them first: the entries come out in another order, with the same keys and values.
TEST(CodecDifferential, Uint64MapKeysAboveTheSignBitKeepTheirValues) {
  rich::Containers value;
  value.bits = {{1, true}, {uint64_t{1} << 63, false}, {~uint64_t{0}, true}};
  for (WireFormat kind : {WireFormat::kThriftCompact, WireFormat::kThriftBinary}) {
    std::string ours = ThriftEncode(value, kind);
    auto in = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(ours.data()), static_cast<uint32_t>(ours.size()));
    auto out = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
    rich_thrift::Containers generated;
    if (kind == WireFormat::kThriftCompact) {
      Compact reader(in), writer(out);
      generated.read(&reader);
      generated.write(&writer);
    } else {
      Binary reader(in), writer(out);
      generated.read(&reader);
      generated.write(&writer);
    }
    EXPECT_EQ(generated.bits.at(-1), true);
    EXPECT_EQ(generated.bits.at(INT64_MIN), false);
    rich::Containers back;
    ASSERT_TRUE(ThriftDecode(out->getBufferAsString(), kind, &back).ok());
    EXPECT_TRUE(DeepEqual(value, back));
  }
  CheckProto<rich::Containers, rich_pb::Containers>(value);  // proto has uint64 keys: same order
}

}  // namespace
}  // namespace rpcboot
