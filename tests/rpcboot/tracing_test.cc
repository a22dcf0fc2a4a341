// Tracing: W3C traceparent parsing; one trace across three real servers on each protocol with
// the parents chained hop by hop; the caller's sampled flag winning over the rate; log lines
// carrying the trace id; the OTLP/JSON exporter posting to a real HTTP receiver.
#include "rpcboot/tracing.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/base/log.h"
#include "rpcboot/client.h"
#include "rpcboot/server.h"
#include "rpcboot/server_context.h"
#include "thrift_io_testing.h"

namespace rpcboot {
namespace {

// Keeps every recorded span.
class Collector : public SpanExporter {
 public:
  void Export(const Span& span) override {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.push_back(span);
  }
  std::vector<Span> Spans(const std::string& trace_id) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Span> out;
    for (const Span& s : spans_)
      if (s.trace_id == trace_id) out.push_back(s);
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<Span> spans_;
};

std::shared_ptr<Collector> TheCollector() {
  static std::shared_ptr<Collector> collector = [] {
    auto c = std::make_shared<Collector>();
    AddSpanExporter(c);
    return c;
  }();
  return collector;
}

void Trace(double rate, const std::string& endpoint = "") {
  TracingOptions options;
  options.sample_rate = rate;
  options.otlp_endpoint = endpoint;
  options.service_name = "tracing_test";
  ASSERT_TRUE(ConfigureTracing(options).ok());
}

TEST(TraceContext, ParsesW3cTraceparentAndRefusesWhatIsNotOne) {
  auto parsed = TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(parsed->span_id_hex(), "00f067aa0ba902b7");
  EXPECT_TRUE(parsed->sampled);
  EXPECT_EQ(parsed->traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  parsed = TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_FALSE(parsed->sampled);
  // A later version may append fields; it is read as version 00.
  EXPECT_TRUE(TraceContext::Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later")
                  .has_value());
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // uppercase
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero span id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // 00 with more
           "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",    // separators
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    // not hex
       }) {
    EXPECT_FALSE(TraceContext::Parse(bad).has_value()) << bad;
  }
}

// Count() on A calls B, on B calls C; every hop notes the trace its handler sees.
class HopImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override {
    const ServerContext* call = ServerContext::Current();
    seen_trace = call->trace_id();
    seen_span = call->span_id();
    return next != nullptr ? next->Count() : 1;
  }
  std::shared_ptr<rich::RichService> next;
  std::string seen_trace, seen_span;
};

class ThreeHops : public ::testing::TestWithParam<Protocol> {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      impls_.push_back(std::make_shared<HopImpl>());
      ServerOptions options;
      options.host = "127.0.0.1";
      (GetParam() == Protocol::kGrpc ? options.grpc_port : options.thrift_port) = 0;
      servers_.push_back(std::make_unique<Server>(options));
      servers_.back()->AddService<rich::RichService>(impls_.back());
      ASSERT_TRUE(servers_.back()->Start().ok());
      int port = GetParam() == Protocol::kGrpc ? servers_.back()->grpc_port()
                                               : servers_.back()->thrift_port();
      addresses_.push_back("127.0.0.1:" + std::to_string(port));
    }
    ChannelOptions options;
    options.thrift_header = true;  // Thrift carries trace context in THeader headers
    impls_[0]->next =
        MakeClient<rich::RichService>(MakeChannel(addresses_[1], GetParam(), options));
    impls_[1]->next =
        MakeClient<rich::RichService>(MakeChannel(addresses_[2], GetParam(), options));
    first_ = MakeClient<rich::RichService>(MakeChannel(addresses_[0], GetParam(), options));
  }

  std::vector<std::shared_ptr<HopImpl>> impls_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<std::string> addresses_;
  std::shared_ptr<rich::RichService> first_;
};

TEST_P(ThreeHops, OneTraceCrossesEveryHopAndParentsChain) {
  auto collector = TheCollector();
  Trace(1.0);
  EXPECT_EQ(first_->Count(), 1);
  const std::string trace = impls_[0]->seen_trace;
  ASSERT_EQ(trace.size(), 32u);
  EXPECT_EQ(impls_[1]->seen_trace, trace);
  EXPECT_EQ(impls_[2]->seen_trace, trace);
  // Client span of the first call, then server A, client A->B, server B, client B->C, server C;
  // every span is recorded before the reply that follows it is sent.
  std::vector<Span> spans = collector->Spans(trace);
  ASSERT_EQ(spans.size(), 6u);
  std::map<std::string, const Span*> by_id;
  const Span* root = nullptr;
  for (const Span& s : spans) {
    by_id[s.span_id] = &s;
    EXPECT_EQ(s.name, "rich.RichService/Count");
    EXPECT_EQ(s.code, StatusCode::kOk);
    EXPECT_LE(s.start_unix_ns, s.end_unix_ns);
    if (s.parent_span_id.empty()) root = &s;
  }
  ASSERT_NE(root, nullptr) << "the first call starts the trace";
  EXPECT_FALSE(root->server);
  // Walk down from the root: client, server, client, server, client, server.
  const Span* at = root;
  std::vector<const Span*> chain{root};
  while (chain.size() < 6) {
    const Span* child = nullptr;
    for (const Span& s : spans)
      if (s.parent_span_id == at->span_id) child = &s;
    ASSERT_NE(child, nullptr) << "no span has " << at->span_id << " as its parent";
    chain.push_back(child);
    at = child;
  }
  for (std::size_t i = 0; i < chain.size(); ++i) {
    EXPECT_EQ(chain[i]->server, i % 2 == 1) << i;
    EXPECT_EQ(chain[i]->protocol, GetParam() == Protocol::kGrpc ? "grpc" : "thrift");
  }
  // What each handler saw is its own server span.
  EXPECT_EQ(chain[1]->span_id, impls_[0]->seen_span);
  EXPECT_EQ(chain[3]->span_id, impls_[1]->seen_span);
  EXPECT_EQ(chain[5]->span_id, impls_[2]->seen_span);
  // A span ends after its children: the root lasts longest.
  EXPECT_LE(chain[0]->start_unix_ns, chain[5]->start_unix_ns);
  EXPECT_GE(chain[0]->end_unix_ns, chain[5]->end_unix_ns);
}

TEST_P(ThreeHops, UnsampledTracesStillCarryTheTraceIdButRecordNothing) {
  auto collector = TheCollector();
  Trace(0.0);
  EXPECT_EQ(first_->Count(), 1);
  const std::string trace = impls_[0]->seen_trace;
  ASSERT_EQ(trace.size(), 32u);
  EXPECT_EQ(impls_[2]->seen_trace, trace) << "the id reaches every hop for the logs";
  EXPECT_TRUE(collector->Spans(trace).empty());
  // A caller that says "sampled" is recorded whatever the rate: the decision at the edge holds.
  // (A trace id of its own per protocol: the collector keeps the whole process's spans.)
  const std::string edge_trace =
      std::string("0af7651916cd43dd8448eb211c8031") + (GetParam() == Protocol::kGrpc ? "9c" : "9d");
  ServerContext edge("grpc", "edge", std::nullopt);
  TraceContext sampled = *TraceContext::Parse("00-" + edge_trace + "-b7ad6b7169203331-01");
  edge.set_trace(sampled, 0, 1);
  {
    ServerContext::Scope scope(&edge);
    EXPECT_EQ(first_->Count(), 1);
  }
  EXPECT_EQ(impls_[2]->seen_trace, edge_trace);
  EXPECT_EQ(collector->Spans(edge_trace).size(), 6u);
}

INSTANTIATE_TEST_SUITE_P(Protocols, ThreeHops,
                         ::testing::Values(Protocol::kGrpc, Protocol::kThrift),
                         [](const auto& param_info) {
                           return param_info.param == Protocol::kGrpc ? "Grpc" : "Thrift";
                         });

TEST(Tracing, LogLinesWrittenWhileServingCarryTheTraceId) {
  std::mutex mu;
  std::vector<std::string> lines;
  SetLogSink([&](LogLevel, std::string_view message) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(message);
  });
  ServerContext call("thrift", "peer", std::nullopt);
  call.set_trace(*TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), 0,
                 0);
  {
    ServerContext::Scope scope(&call);
    internal::Log(LogLevel::kWarning, "inside the handler");
  }
  internal::Log(LogLevel::kWarning, "after it");
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "[trace 4bf92f3577b34da6a3ce929d0e0e4736] inside the handler");
  EXPECT_EQ(lines[1], "after it");
}

// An OTLP collector: a real HTTP server that keeps what is posted to /v1/traces.
class OtlpCollector {
 public:
  OtlpCollector() {
    receiver_.Post("/v1/traces", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        EXPECT_EQ(req.get_header_value("Content-Type"), "application/json");
        bodies_.push_back(req.body);
      }
      cv_.notify_all();
      res.set_content("{}", "application/json");
    });
    port_ = receiver_.bind_to_any_port("127.0.0.1");
    serving_ = std::thread([this] { receiver_.listen_after_bind(); });
  }
  ~OtlpCollector() {
    receiver_.stop();
    serving_.join();
  }
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces";
  }
  // Waits (by count, up to 20 s) for `n` spans; every span posted so far, and the resource of
  // the last request in *resource. Each body must parse as JSON.
  nlohmann::json WaitForSpans(std::size_t n, nlohmann::json* resource) {
    nlohmann::json spans = nlohmann::json::array();
    std::unique_lock<std::mutex> lock(mu_);
    auto count = [&] {
      spans = nlohmann::json::array();
      for (const std::string& body : bodies_) {
        nlohmann::json request = nlohmann::json::parse(body);
        *resource = request["resourceSpans"][0]["resource"];
        for (const auto& s : request["resourceSpans"][0]["scopeSpans"][0]["spans"])
          spans.push_back(s);
      }
      return spans.size() >= n;
    };
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(20), count)) << spans.dump(2);
    return spans;
  }

 private:
  httplib::Server receiver_;
  int port_ = -1;
  std::thread serving_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> bodies_;  // guarded by mu_
};

TEST(Tracing, TheOtlpExporterPostsOtlpJsonToTheCollector) {
  OtlpCollector collector;
  Trace(1.0, collector.endpoint());
  auto impl = std::make_shared<testing::RichServiceImpl>();
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  Server server(options);
  server.AddService<rich::RichService>(impl);
  ASSERT_TRUE(server.Start().ok());
  auto client = MakeClient<rich::RichService>(
      MakeChannel("127.0.0.1:" + std::to_string(server.grpc_port()), Protocol::kGrpc));
  EXPECT_EQ(client->Count(), 1);
  EXPECT_THROW(client->Notify(-3, "x", rich::Color::kRed), RpcError);

  // Four spans (two calls, each a client and a server span) reach the collector within the
  // exporter's one-second batching; wait for them by count.
  nlohmann::json resource;
  nlohmann::json spans = collector.WaitForSpans(4, &resource);
  Trace(0.01);  // back to the default; the exporter goes

  EXPECT_EQ(resource["attributes"][0]["key"], "service.name");
  EXPECT_EQ(resource["attributes"][0]["value"]["stringValue"], "tracing_test");
  // `size` characters (any number when 0), each one of `allowed`.
  auto made_of = [](const std::string& text, std::size_t size, const char* allowed) {
    return !text.empty() && (size == 0 || text.size() == size) &&
           text.find_first_not_of(allowed) == std::string::npos;
  };
  int servers = 0, errors = 0;
  for (const auto& s : spans) {
    EXPECT_TRUE(made_of(s["traceId"].get<std::string>(), 32, "0123456789abcdef")) << s;
    EXPECT_TRUE(made_of(s["spanId"].get<std::string>(), 16, "0123456789abcdef")) << s;
    ASSERT_TRUE(made_of(s["startTimeUnixNano"].get<std::string>(), 0, "0123456789")) << s;
    EXPECT_LE(std::stoll(s["startTimeUnixNano"].get<std::string>()),
              std::stoll(s["endTimeUnixNano"].get<std::string>()));
    EXPECT_TRUE(s["kind"] == 2 || s["kind"] == 3) << s;
    if (s["kind"] == 2) {
      ++servers;
      EXPECT_TRUE(made_of(s["parentSpanId"].get<std::string>(), 16, "0123456789abcdef")) << s;
    }
    std::map<std::string, nlohmann::json> attributes;
    for (const auto& a : s["attributes"]) attributes[a["key"]] = a["value"];
    EXPECT_EQ(attributes["rpc.system"]["stringValue"], "grpc") << s;
    EXPECT_EQ(attributes["rpc.service"]["stringValue"], "rich.RichService") << s;
    if (s.contains("status")) {
      ++errors;
      EXPECT_EQ(s["status"]["code"], 2);
      EXPECT_NE(s["status"]["message"].get<std::string>().find("negative id -3"),
                std::string::npos);
      EXPECT_EQ(attributes["rpc.grpc.status_code"]["intValue"], "9") << "FAILED_PRECONDITION";
    }
  }
  EXPECT_EQ(servers, 2);
  EXPECT_EQ(errors, 2) << "the failed call's client and server spans";
}

// A handler's error message need not be UTF-8 (text cut at a byte count mid-character, bytes
// from a file or a peer); over gRPC the client gets the same bytes. The exporter writes them as
// U+FFFD and goes on: it used to throw on its thread and end the process.
class CutMessageImpl : public testing::RichServiceImpl {
 public:
  int64_t Count() override {
    throw RpcError(StatusCode::kInternal, std::string("cut \xc3 mid-character"));
  }
};

TEST(Tracing, BytesThatAreNotUtf8InASpanNeverStopTheExporter) {
  OtlpCollector collector;
  Trace(1.0, collector.endpoint());
  ServerOptions options;
  options.host = "127.0.0.1";
  options.grpc_port = 0;
  options.grpc_server = rpcboot::testing::TestGrpcServer();
  Server server(options);
  server.AddService<rich::RichService>(std::make_shared<CutMessageImpl>());
  ASSERT_TRUE(server.Start().ok());
  auto client = MakeClient<rich::RichService>(
      MakeChannel("127.0.0.1:" + std::to_string(server.grpc_port()), Protocol::kGrpc));
  EXPECT_THROW(client->Count(), RpcError);
  nlohmann::json resource;
  nlohmann::json spans = collector.WaitForSpans(2, &resource);
  Trace(0.01);
  int replaced = 0;
  for (const auto& s : spans) {
    if (s.contains("status") && s["status"]["message"].get<std::string>().find(
                                    "cut \xef\xbf\xbd mid-character") != std::string::npos)
      ++replaced;
  }
  EXPECT_EQ(replaced, 2) << "the client and the server span: " << spans.dump(2);
}

TEST(Tracing, ABadConfigurationIsRefusedAndChangesNothing) {
  TracingOptions options;
  options.otlp_endpoint = "ftp://collector/v1/traces";
  absl::Status s = ConfigureTracing(options);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tracing.otlp_endpoint"), absl::string_view::npos) << s;
  options.otlp_endpoint = "http:///v1/traces";
  EXPECT_FALSE(ConfigureTracing(options).ok());
  options.otlp_endpoint = "";
  options.sample_rate = 1.5;
  s = ConfigureTracing(options);
  EXPECT_NE(s.message().find("tracing.sample_rate"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace rpcboot
