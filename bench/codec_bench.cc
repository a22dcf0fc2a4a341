// rpcboot's codecs against the code thrift-compiler and protoc generate from the same emitted
// IDL, on the same values, in the same run. Prints Google Benchmark's table, then one line per
// pair with the ratio generated_time / rpcboot_time (above 1.0: rpcboot is faster).
//
//   build/bench/codec_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The machine this runs on may be shared: use repetitions (medians are compared) and read
// ratios within about 5% of 1.0 as a tie.
//
// Each side runs as its calls do. Thrift: generated code writes to and reads from a TMemoryBuffer
// through TCompactProtocol/TBinaryProtocol (through TProtocol*, as it always calls them);
// rpcboot's ThriftEncodeAppend/ThriftDecode use its own binary and compact code
// (rpcboot/codec/thrift_protocol.h) on a std::string and on the bytes as they are, with every
// check the server and channel make. Protobuf: std::string on both sides. Decoding starts from a
// fresh object on both sides.
#include <benchmark/benchmark.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common_types.pb.h"
#include "common_types.rpcboot.h"
#include "common_types_types.h"
#include "rich_service.pb.h"
#include "rich_service.rpcboot.h"
#include "rich_service_types.h"
#include "rpcboot/codec/proto_codec.h"
#include "rpcboot/codec/thrift_codec.h"
#include "value_testing.h"

namespace {

using apache::thrift::transport::TMemoryBuffer;
using rpcboot::WireFormat;

// A menu-like message: what an order or shop service sends most.
rich::Containers MakeContainers() {
  rich::Containers c;
  for (int i = 0; i < 16; ++i) {
    c.ints.push_back(i * 37);
    c.longs.push_back(int64_t{i} * 1000003);
    c.names.push_back("item-" + std::to_string(i));
    c.points.push_back({i, -i});
    c.counts["sku-" + std::to_string(i)] = i * 199;
    c.doubles.push_back(i * 1.25);
  }
  return c;
}

rich::Scalars MakeScalars() {
  rich::Scalars s;
  s.flag = true;
  s.i8 = -5;
  s.i16 = 1200;
  s.i32 = 123456;
  s.i64 = 9876543210;
  s.u8 = 200;
  s.u16 = 60000;
  s.u32 = 4000000000u;
  s.u64 = 1234567890123;
  s.f32 = 1.5f;
  s.f64 = 2.25;
  s.text = "a short text field";
  s.blob = {1, 2, 3, 4, 5, 6, 7, 8};
  s.color = rich::Color::kBlue;
  s.light = rich::Light::kRed;
  s.level = rich::LEVEL_HIGH;
  return s;
}

rich::Everything MakeEverything() {
  rpcboot::testing::RandomOptions options;
  options.max_unordered = 1;
  options.uint64_keys_below_sign_bit = true;
  rpcboot::testing::Randomizer random(7, options);
  return random.Make<rich::Everything>();
}

template <class T>
void ThriftEncodeRpcboot(benchmark::State& state, const T& value, WireFormat format) {
  std::string out;
  for (auto _ : state) {
    out.clear();
    rpcboot::ThriftEncodeAppend(value, format, &out);
    benchmark::DoNotOptimize(out.data());
  }
}

template <class Ref, class Protocol>
void ThriftEncodeGenerated(benchmark::State& state, const Ref& ref) {
  auto buffer = std::make_shared<TMemoryBuffer>(4096);
  Protocol protocol(buffer);
  apache::thrift::protocol::TProtocol* base = &protocol;
  for (auto _ : state) {
    buffer->resetBuffer();
    ref.write(base);
    benchmark::DoNotOptimize(buffer->available_read());
  }
}

// A buffer that reads the same bytes again each iteration. Thrift counts what a transport has
// read against its maximum message size (100 MB) until told to start again.
class RereadBuffer : public TMemoryBuffer {
 public:
  void Rewind(std::string& bytes) {
    resetBuffer(reinterpret_cast<uint8_t*>(bytes.data()), static_cast<uint32_t>(bytes.size()));
    resetConsumedMessageSize();
  }
};

template <class T>
void ThriftDecodeRpcboot(benchmark::State& state, const std::string& bytes, WireFormat format) {
  for (auto _ : state) {
    T value{};
    if (!rpcboot::ThriftDecode(bytes, format, &value).ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(value);
  }
}

template <class Ref, class Protocol>
void ThriftDecodeGenerated(benchmark::State& state, std::string bytes) {
  auto buffer = std::make_shared<RereadBuffer>();
  Protocol protocol(buffer);
  apache::thrift::protocol::TProtocol* base = &protocol;
  for (auto _ : state) {
    buffer->Rewind(bytes);
    Ref ref;
    ref.read(base);
    benchmark::DoNotOptimize(ref);
  }
}

template <class T>
void ProtoEncodeRpcboot(benchmark::State& state, const T& value) {
  std::string out;
  for (auto _ : state) {
    rpcboot::ProtoEncode(value, &out);
    benchmark::DoNotOptimize(out.data());
  }
}

template <class Ref>
void ProtoEncodeGenerated(benchmark::State& state, const Ref& ref) {
  std::string out;
  for (auto _ : state) {
    ref.SerializeToString(&out);
    benchmark::DoNotOptimize(out.data());
  }
}

template <class T>
void ProtoDecodeRpcboot(benchmark::State& state, const std::string& bytes) {
  for (auto _ : state) {
    T value{};
    if (!rpcboot::ProtoDecode(bytes, &value).ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(value);
  }
}

template <class Ref>
void ProtoDecodeGenerated(benchmark::State& state, const std::string& bytes) {
  for (auto _ : state) {
    Ref ref;
    if (!ref.ParseFromString(bytes)) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(ref);
  }
}

// Registers the twelve benchmarks (3 protocols x encode/decode x rpcboot/generated) of one
// value; the generated objects are built from rpcboot's bytes, so both encode the same value.
template <class T, class ThriftRef, class ProtoRef>
void RegisterValue(const std::string& name, const T& value) {
  using Compact = apache::thrift::protocol::TCompactProtocolT<TMemoryBuffer>;
  using Binary = apache::thrift::protocol::TBinaryProtocolT<TMemoryBuffer>;
  auto proto_bytes = rpcboot::ProtoEncode(value);
  auto proto_ref = std::make_shared<ProtoRef>();
  proto_ref->ParseFromString(proto_bytes);
  auto thrift_ref = std::make_shared<ThriftRef>();
  std::string compact = rpcboot::ThriftEncode(value, WireFormat::kThriftCompact);
  std::string binary = rpcboot::ThriftEncode(value, WireFormat::kThriftBinary);
  {
    auto in = std::make_shared<TMemoryBuffer>(reinterpret_cast<uint8_t*>(compact.data()),
                                              static_cast<uint32_t>(compact.size()));
    Compact p(in);
    thrift_ref->read(&p);
  }
  auto reg = [&](const std::string& bench, auto fn) {
    benchmark::RegisterBenchmark((bench + "/" + name).c_str(), fn);
  };
  reg("ThriftCompact/Encode/rpcboot",
      [value](benchmark::State& s) { ThriftEncodeRpcboot(s, value, WireFormat::kThriftCompact); });
  reg("ThriftCompact/Encode/generated", [thrift_ref](benchmark::State& s) {
    ThriftEncodeGenerated<ThriftRef, Compact>(s, *thrift_ref);
  });
  reg("ThriftCompact/Decode/rpcboot", [compact](benchmark::State& s) {
    ThriftDecodeRpcboot<T>(s, compact, WireFormat::kThriftCompact);
  });
  reg("ThriftCompact/Decode/generated",
      [compact](benchmark::State& s) { ThriftDecodeGenerated<ThriftRef, Compact>(s, compact); });
  reg("ThriftBinary/Encode/rpcboot",
      [value](benchmark::State& s) { ThriftEncodeRpcboot(s, value, WireFormat::kThriftBinary); });
  reg("ThriftBinary/Encode/generated", [thrift_ref](benchmark::State& s) {
    ThriftEncodeGenerated<ThriftRef, Binary>(s, *thrift_ref);
  });
  reg("ThriftBinary/Decode/rpcboot", [binary](benchmark::State& s) {
    ThriftDecodeRpcboot<T>(s, binary, WireFormat::kThriftBinary);
  });
  reg("ThriftBinary/Decode/generated",
      [binary](benchmark::State& s) { ThriftDecodeGenerated<ThriftRef, Binary>(s, binary); });
  reg("Proto/Encode/rpcboot", [value](benchmark::State& s) { ProtoEncodeRpcboot<T>(s, value); });
  reg("Proto/Encode/generated",
      [proto_ref](benchmark::State& s) { ProtoEncodeGenerated<ProtoRef>(s, *proto_ref); });
  reg("Proto/Decode/rpcboot",
      [proto_bytes](benchmark::State& s) { ProtoDecodeRpcboot<T>(s, proto_bytes); });
  reg("Proto/Decode/generated",
      [proto_bytes](benchmark::State& s) { ProtoDecodeGenerated<ProtoRef>(s, proto_bytes); });
}

// Keeps each run's time per iteration so main can pair rpcboot with generated.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    // With --benchmark_repetitions, the median of the repetitions is used.
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      std::string name = run.run_name.str();
      if (run.run_type == Run::RT_Iteration && medians_.count(name) == 0) {
        times_[name] = run.GetAdjustedRealTime();
      } else if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        times_[name] = run.GetAdjustedRealTime();
        medians_.insert(name);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  const std::map<std::string, double>& times() const { return times_; }

 private:
  std::map<std::string, double> times_;
  std::set<std::string> medians_;
};

}  // namespace

int main(int argc, char** argv) {
  RegisterValue<rich::Scalars, rich_thrift::Scalars, rich_pb::Scalars>("Scalars", MakeScalars());
  RegisterValue<rich::Containers, rich_thrift::Containers, rich_pb::Containers>("Menu",
                                                                                MakeContainers());
  RegisterValue<rich::Everything, rich_thrift::Everything, rich_pb::Everything>("Nested",
                                                                                MakeEverything());
  benchmark::Initialize(&argc, argv);
  // Google Benchmark takes its own --benchmark_* flags out of argv; anything left is not a flag.
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n%-36s %12s %12s %8s\n", "codec/operation/value", "rpcboot ns", "generated ns",
              "ratio");
  const auto& times = reporter.times();
  int slower = 0, pairs = 0;
  for (const auto& [name, ours] : times) {
    std::size_t pos = name.find("/rpcboot/");
    if (pos == std::string::npos) continue;
    std::string theirs_name = name.substr(0, pos) + "/generated/" + name.substr(pos + 9);
    auto it = times.find(theirs_name);
    if (it == times.end()) continue;
    double ratio = it->second / ours;
    std::string label = name.substr(0, pos) + "/" + name.substr(pos + 9);
    std::printf("%-36s %12.1f %12.1f %8.2f\n", label.c_str(), ours, it->second, ratio);
    ++pairs;
    slower += ratio < 1.0;
  }
  std::printf(
      "\n%d pairs; rpcboot at least as fast in %d (ratio = generated time / rpcboot time)\n", pairs,
      pairs - slower);
  benchmark::Shutdown();
  return 0;
}
