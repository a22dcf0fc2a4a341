#include "rpcboot/internal/tracing.h"

#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"

namespace rpcboot {
namespace {

using internal::Log;

int64_t UnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Ids: a per-thread splitmix64 stream, seeded from the system's entropy; never zero.
uint64_t RandomId() {
  thread_local uint64_t state = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device() ^ static_cast<uint64_t>(UnixNs()) ^
           static_cast<uint64_t>(std::hash<std::thread::id>()(std::this_thread::get_id()));
  }();
  while (true) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    if (z != 0) return z;
  }
}

// Two hex digits per byte value, for writing ids a byte at a time.
struct HexPairs {
  char text[512];
  constexpr HexPairs() : text() {
    const char digits[] = "0123456789abcdef";
    for (int b = 0; b < 256; ++b) {
      text[2 * b] = digits[b >> 4];
      text[2 * b + 1] = digits[b & 0xf];
    }
  }
};

// `v` as 16 lowercase hex digits at out[0..15].
void Hex(uint64_t v, char* out) {
  static constexpr HexPairs kPairs;
  for (int i = 7; i >= 0; --i) {
    const char* pair = kPairs.text + 2 * (v & 0xff);
    out[2 * i] = pair[0];
    out[2 * i + 1] = pair[1];
    v >>= 8;
  }
}

std::string Hex64(uint64_t v) {
  std::string out(16, '0');
  Hex(v, out.data());
  return out;
}

// Digit values of lowercase hex (W3C allows no uppercase), -1 for anything else.
struct HexDigits {
  int8_t value[256];
  constexpr HexDigits() : value() {
    for (int c = 0; c < 256; ++c) value[c] = -1;
    for (int c = '0'; c <= '9'; ++c) value[c] = static_cast<int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) value[c] = static_cast<int8_t>(c - 'a' + 10);
  }
};

bool ParseHex(std::string_view text, uint64_t* out) {
  static constexpr HexDigits kDigits;
  uint64_t v = 0;
  int bad = 0;
  for (char c : text) {
    int d = kDigits.value[static_cast<unsigned char>(c)];
    bad |= d;  // any -1 sets every bit
    v = (v << 4) | static_cast<uint64_t>(d & 0xf);
  }
  *out = v;
  return bad >= 0;
}

// Exports OTLP/JSON over HTTP from a thread of its own: spans queue (at most kQueue; more are
// dropped and counted) and go out in batches, at least once a second.
class OtlpExporter final : public SpanExporter {
 public:
  static constexpr std::size_t kQueue = 4096;
  static constexpr std::size_t kBatch = 256;

  OtlpExporter(std::string base, std::string path, std::string service_name)
      : base_(std::move(base)), path_(std::move(path)), service_name_(std::move(service_name)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~OtlpExporter() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Export(const Span& span) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kQueue) {
      ++dropped_;
      return;
    }
    queue_.push_back(span);
    if (queue_.size() >= kBatch) cv_.notify_one();
  }

  // One OTLP/JSON ExportTraceServiceRequest of `spans`.
  static std::string Body(const std::vector<Span>& spans, const std::string& service_name) {
    using Json = nlohmann::json;
    auto attribute = [](const char* key, Json value) {
      // OTLP/JSON writes 64-bit integers as decimal strings.
      Json v = value.is_string() ? Json{{"stringValue", value}}
                                 : Json{{"intValue", std::to_string(value.get<int64_t>())}};
      return Json{{"key", key}, {"value", v}};
    };
    Json out_spans = Json::array();
    for (const Span& s : spans) {
      std::size_t slash = s.name.find('/');
      Json attributes = Json::array();
      attributes.push_back(attribute("rpc.system", s.protocol == "thrift" ? "apache_thrift"
                                                   : s.protocol.empty()   ? "rpcboot"
                                                                          : "grpc"));
      attributes.push_back(attribute("rpc.service", s.name.substr(0, slash)));
      if (slash != std::string::npos)
        attributes.push_back(attribute("rpc.method", s.name.substr(slash + 1)));
      // The status code as gRPC numbers it (Thrift calls carry the same codes in rpcboot).
      attributes.push_back(attribute("rpc.grpc.status_code", static_cast<int>(s.code)));
      if (!s.peer.empty()) attributes.push_back(attribute("network.peer.address", s.peer));
      Json span = {{"traceId", s.trace_id},
                   {"spanId", s.span_id},
                   {"name", s.name},
                   {"kind", s.server ? 2 : 3},  // SPAN_KIND_SERVER, SPAN_KIND_CLIENT
                   {"startTimeUnixNano", std::to_string(s.start_unix_ns)},
                   {"endTimeUnixNano", std::to_string(s.end_unix_ns)},
                   {"attributes", attributes}};
      if (!s.parent_span_id.empty()) span["parentSpanId"] = s.parent_span_id;
      if (s.code != StatusCode::kOk) {
        span["status"] = {{"code", 2},  // STATUS_CODE_ERROR
                          {"message", std::string(StatusCodeName(s.code)) + ": " + s.message}};
      }
      out_spans.push_back(std::move(span));
    }
    Json request = {
        {"resourceSpans",
         Json::array({{{"resource",
                        {{"attributes", Json::array({attribute("service.name", service_name)})}}},
                       {"scopeSpans", Json::array({{{"scope", {{"name", "rpcboot"}}},
                                                    {"spans", std::move(out_spans)}}})}}})}};
    // A span's message may hold bytes that are not UTF-8 (a handler's text, a peer's status
    // message): written as U+FFFD, never thrown on the exporter's thread.
    return request.dump(-1, ' ', false, Json::error_handler_t::replace);
  }

 private:
  void Run() {
    httplib::Client client(base_);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    client.set_write_timeout(5, 0);
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait_for(lock, std::chrono::seconds(1),
                   [this] { return stopping_ || queue_.size() >= kBatch; });
      if (queue_.empty() && stopping_) return;
      while (!queue_.empty()) {
        std::vector<Span> batch;
        while (!queue_.empty() && batch.size() < kBatch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        int64_t dropped = std::exchange(dropped_, 0);
        lock.unlock();
        if (dropped > 0) {
          Log(LogLevel::kWarning,
              absl::StrCat("tracing: ", dropped, " spans dropped: the OTLP queue was full (",
                           kQueue, ")"));
        }
        auto res = client.Post(path_.c_str(), Body(batch, service_name_), "application/json");
        if ((!res || res->status / 100 != 2) && log_.Allow()) {
          Log(LogLevel::kWarning,
              absl::StrCat(
                  "tracing: OTLP export to ", base_, path_, " failed (",
                  res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error()),
                  "); ", batch.size(), " spans lost"));
        }
        lock.lock();
        if (stopping_ && queue_.empty()) return;
      }
    }
  }

  const std::string base_, path_, service_name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Span> queue_;
  int64_t dropped_ = 0;
  bool stopping_ = false;
  internal::LogLimiter log_;
  std::thread thread_;
};

struct Tracer {
  std::atomic<bool> enabled{true};
  // A new trace is sampled when a random 64-bit number is below this (rate x 2^64).
  std::atomic<uint64_t> sample_below{static_cast<uint64_t>(0.01 * 18446744073709551616.0)};
  std::mutex mu;  // exporters, otlp, recent
  std::vector<std::shared_ptr<SpanExporter>> exporters;
  std::shared_ptr<OtlpExporter> otlp;
  std::deque<Span> recent;
};

Tracer& TheTracer() {
  static Tracer* tracer = new Tracer();  // never destroyed: spans may end during exit
  return *tracer;
}

void Record(Span span) {
  Tracer& t = TheTracer();
  std::vector<std::shared_ptr<SpanExporter>> exporters;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    exporters = t.exporters;
    if (t.otlp != nullptr) exporters.push_back(t.otlp);
    t.recent.push_back(span);
    while (t.recent.size() > 100) t.recent.pop_front();
  }
  for (const auto& e : exporters) e->Export(span);
}

bool SampleNew() {
  uint64_t below = TheTracer().sample_below.load(std::memory_order_relaxed);
  return below != 0 && RandomId() < below;
}

}  // namespace

std::string TraceContext::trace_id() const {
  if ((trace_hi | trace_lo) == 0) return "";
  std::string out(32, '0');
  Hex(trace_hi, out.data());
  Hex(trace_lo, out.data() + 16);
  return out;
}

std::string TraceContext::span_id_hex() const { return span_id == 0 ? "" : Hex64(span_id); }

std::string TraceContext::traceparent() const {
  // "00-" trace "-" span "-" flags, written in place: this runs for every call made.
  std::string out = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-00";
  Hex(trace_hi, out.data() + 3);
  Hex(trace_lo, out.data() + 19);
  Hex(span_id, out.data() + 36);
  if (sampled) out[54] = '1';
  return out;
}

std::optional<TraceContext> TraceContext::Parse(std::string_view text) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters
  // (a later version may append "-..."; version 00 may not).
  if (text.size() < 55 || text[2] != '-' || text[35] != '-' || text[52] != '-') return std::nullopt;
  uint64_t version = 0, flags = 0;
  TraceContext out;
  if (!ParseHex(text.substr(0, 2), &version) || version == 0xff) return std::nullopt;
  if (version == 0 && text.size() != 55) return std::nullopt;
  if (text.size() > 55 && text[55] != '-') return std::nullopt;
  if (!ParseHex(text.substr(3, 16), &out.trace_hi) ||
      !ParseHex(text.substr(19, 16), &out.trace_lo) ||
      !ParseHex(text.substr(36, 16), &out.span_id) || !ParseHex(text.substr(53, 2), &flags)) {
    return std::nullopt;
  }
  if (!out.valid()) return std::nullopt;
  out.sampled = (flags & 1) != 0;
  return out;
}

absl::Status ConfigureTracing(const TracingOptions& options) {
  if (!(options.sample_rate >= 0 && options.sample_rate <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tracing.sample_rate: ", options.sample_rate, " is not in 0..1"));
  }
  std::shared_ptr<OtlpExporter> otlp;
  if (!options.otlp_endpoint.empty()) {
    const std::string& url = options.otlp_endpoint;
    std::size_t scheme = url.find("://");
    std::string name = scheme == std::string::npos ? "" : url.substr(0, scheme);
    if (name != "http" && name != "https") {
      return absl::InvalidArgumentError("tracing.otlp_endpoint: '" + url +
                                        "' is not an http:// or https:// URL");
    }
    std::size_t path = url.find('/', scheme + 3);
    std::string base = url.substr(0, path);
    if (base.size() <= scheme + 3) {
      return absl::InvalidArgumentError("tracing.otlp_endpoint: '" + url + "' names no host");
    }
    otlp = std::make_shared<OtlpExporter>(
        base, path == std::string::npos ? "/v1/traces" : url.substr(path), options.service_name);
  }
  Tracer& t = TheTracer();
  t.enabled.store(options.enabled);
  t.sample_below.store(options.sample_rate >= 1
                           ? ~uint64_t{0}
                           : static_cast<uint64_t>(options.sample_rate * 18446744073709551616.0));
  std::shared_ptr<OtlpExporter> old;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    old = std::exchange(t.otlp, std::move(otlp));
  }
  return absl::OkStatus();  // `old` sends what it holds as it goes
}

void AddSpanExporter(std::shared_ptr<SpanExporter> exporter) {
  Tracer& t = TheTracer();
  std::lock_guard<std::mutex> lock(t.mu);
  t.exporters.push_back(std::move(exporter));
}

std::vector<Span> RecentSpans() {
  Tracer& t = TheTracer();
  std::lock_guard<std::mutex> lock(t.mu);
  return {t.recent.begin(), t.recent.end()};
}

namespace internal {

bool TracingOn() { return TheTracer().enabled.load(std::memory_order_relaxed); }

void BeginServerSpan(ServerContext* context, std::string_view traceparent,
                     std::string_view tracestate) {
  if (!TracingOn()) return;
  TraceContext trace;
  uint64_t parent = 0;
  if (std::optional<TraceContext> incoming = TraceContext::Parse(traceparent)) {
    trace = *incoming;
    parent = incoming->span_id;
    trace.tracestate = std::string(tracestate.substr(0, 512));
  } else {
    trace.trace_hi = RandomId();
    trace.trace_lo = RandomId();
    trace.sampled = SampleNew();
  }
  trace.span_id = RandomId();
  context->set_trace(trace, parent, trace.sampled ? UnixNs() : 0);
}

void EndServerSpan(const ServerContext& context, std::string_view name, StatusCode code,
                   std::string_view message) {
  const TraceContext& trace = context.trace();
  if (!trace.valid() || !trace.sampled) return;
  Span span;
  span.trace_id = trace.trace_id();
  span.span_id = trace.span_id_hex();
  if (context.parent_span_id() != 0) span.parent_span_id = Hex64(context.parent_span_id());
  span.name = std::string(name);
  span.server = true;
  span.protocol = context.protocol();
  span.peer = context.peer();
  span.start_unix_ns = context.trace_start_unix_ns();
  span.end_unix_ns = UnixNs();
  span.code = code;
  span.message = std::string(message.substr(0, 300));
  Record(std::move(span));
}

std::optional<ClientSpan> BeginClientSpan() {
  if (!TracingOn()) return std::nullopt;
  ClientSpan span;
  const ServerContext* served = ServerContext::Current();
  if (served != nullptr && served->trace().valid()) {
    span.context = served->trace();
    span.parent = served->trace().span_id;
  } else {
    span.context.trace_hi = RandomId();
    span.context.trace_lo = RandomId();
    span.context.sampled = SampleNew();
  }
  span.context.span_id = RandomId();
  if (span.context.sampled) span.start_unix_ns = UnixNs();
  return span;
}

void EndClientSpan(const ClientSpan& client, std::string_view name, std::string_view protocol,
                   StatusCode code, std::string_view message) {
  if (!client.context.sampled) return;
  Span span;
  span.trace_id = client.context.trace_id();
  span.span_id = client.context.span_id_hex();
  if (client.parent != 0) span.parent_span_id = Hex64(client.parent);
  span.name = std::string(name);
  span.protocol = std::string(protocol);
  span.start_unix_ns = client.start_unix_ns;
  span.end_unix_ns = UnixNs();
  span.code = code;
  span.message = std::string(message.substr(0, 300));
  Record(std::move(span));
}

}  // namespace internal
}  // namespace rpcboot
