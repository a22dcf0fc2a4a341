// The admin port (admin.port) of a real App: /metrics counts exactly the calls made, on both
// protocols and on both sides, and parses as Prometheus text under a strict reader; the status
// data names the methods, clients and failed calls and never shows a secret; /health follows
// the instance's life; bad requests and a port in use get clear answers; slow and surplus
// connections never keep a probe from its answer.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common_types.rpcboot.h"
#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/app.h"
#include "rpcboot/client.h"
#include "rpcboot/config.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/metrics.h"
#include "rpcboot/server_context.h"
#include "socket_testing.h"

namespace rpcboot {
namespace {

using testing::ConnectTo;
using testing::RichServiceImpl;

// A Prometheus text exposition, read strictly: every rule of the 0.0.4 text format that a
// scraper relies on is checked, and a broken one fails the read with the line.
struct Exposition {
  struct Family {
    std::string type;
    std::string help;
  };
  std::map<std::string, Family> families;
  // "name{a=\"x\",b=\"y\"}" (labels sorted) -> value
  std::map<std::string, double> samples;

  double Get(const std::string& name, std::map<std::string, std::string> labels) const {
    auto it = samples.find(Key(name, labels));
    return it == samples.end() ? 0 : it->second;
  }
  bool Has(const std::string& name, std::map<std::string, std::string> labels) const {
    return samples.count(Key(name, labels)) > 0;
  }
  static std::string Key(const std::string& name,
                         const std::map<std::string, std::string>& labels) {
    std::string key = name + "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
      key += (first ? "" : ",") + k + "=\"" + v + "\"";
      first = false;
    }
    return key + "}";
  }
};

// [a-zA-Z_:][a-zA-Z0-9_:]* for a metric name (`colon`), [a-zA-Z_][a-zA-Z0-9_]* for a label's.
bool IsName(const std::string& name, bool colon) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && !(colon && c == ':'))
      return false;
  }
  return true;
}

// Returns "" and fills *out, or the first problem.
std::string ReadExposition(const std::string& text, Exposition* out) {
  if (text.empty() || text.back() != '\n') return "does not end with a newline";
  std::istringstream in(text);
  std::string line;
  std::set<std::string> closed;  // families whose samples are over
  std::string current;           // the family of the last sample
  int number = 0;
  // Histogram series: family + labels without le -> (le -> count), and their _count.
  std::map<std::string, std::map<double, double>> buckets;
  std::map<std::string, double> counts;
  auto family_of = [&](const std::string& sample) -> std::string {
    if (out->families.count(sample)) return sample;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
        std::string base = sample.substr(0, sample.size() - s.size());
        auto it = out->families.find(base);
        if (it != out->families.end() && it->second.type == "histogram") return base;
      }
    }
    return "";
  };
  while (std::getline(in, line)) {
    ++number;
    std::string where = "line " + std::to_string(number) + " '" + line + "': ";
    if (line.empty()) return where + "empty line";
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, kind, name;
      words >> hash >> kind >> name;
      if (kind != "HELP" && kind != "TYPE") continue;  // a plain comment
      if (!IsName(name, true)) return where + "bad metric name";
      if (closed.count(name) || current == name) return where + kind + " after the samples";
      Exposition::Family& f = out->families[name];
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (kind == "TYPE") {
        if (!f.type.empty()) return where + "second TYPE";
        if (rest != "counter" && rest != "gauge" && rest != "histogram" && rest != "summary" &&
            rest != "untyped")
          return where + "unknown type";
        f.type = rest;
      } else {
        if (!f.help.empty()) return where + "second HELP";
        f.help = rest.empty() ? " " : rest;
      }
      continue;
    }
    // name{labels} value
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    if (!IsName(name, true)) return where + "bad metric name";
    std::map<std::string, std::string> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) return where + "label without '='";
        std::string label = line.substr(i, eq - i);
        if (!IsName(label, false)) return where + "bad label name '" + label + "'";
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return where + "unquoted label value";
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            if (j >= line.size()) return where + "escape at the end";
            if (line[j] == 'n') {
              value += '\n';
            } else if (line[j] == '\\' || line[j] == '"') {
              value += line[j];
            } else {
              return where + "bad escape";
            }
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return where + "unterminated label value";
        if (!labels.emplace(label, value).second) return where + "label twice";
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return where + "unterminated labels";
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return where + "no space before the value";
    std::string value_text = line.substr(i + 1);
    double value = 0;
    if (value_text == "+Inf") {
      value = INFINITY;
    } else if (value_text == "-Inf") {
      value = -INFINITY;
    } else if (value_text == "NaN") {
      value = NAN;
    } else {
      std::size_t used = 0;
      try {
        value = std::stod(value_text, &used);
      } catch (const std::exception&) {
        return where + "value is not a number";
      }
      if (used != value_text.size()) return where + "value is not a number (a timestamp?)";
    }
    std::string family = family_of(name);
    if (family.empty()) return where + "sample with no TYPE before it";
    const Exposition::Family& f = out->families[family];
    if (f.help.empty()) return where + "family without HELP";
    if (family != current) {
      if (closed.count(family)) return where + "family's samples are not together";
      if (!current.empty()) closed.insert(current);
      current = family;
    }
    if (f.type == "counter" && name.size() > 6 && name.compare(name.size() - 6, 6, "_total") != 0 &&
        name.rfind("rpcboot_", 0) == 0)
      return where + "counter whose name does not end in _total";
    if (f.type == "counter" && !(value >= 0)) return where + "negative counter";
    if (f.type == "histogram") {
      std::map<std::string, std::string> without_le = labels;
      without_le.erase("le");
      std::string series = Exposition::Key(family, without_le);
      if (name == family + "_bucket") {
        if (!labels.count("le")) return where + "bucket without le";
        const std::string& le = labels["le"];
        buckets[series][le == "+Inf" ? INFINITY : std::stod(le)] = value;
      } else if (name == family + "_count") {
        counts[series] = value;
      }
    }
    if (!out->samples.emplace(Exposition::Key(name, labels), value).second)
      return where + "the same series twice";
  }
  for (const auto& [series, by_le] : buckets) {
    double last = 0;
    for (const auto& [le, n] : by_le) {
      if (n < last) return series + ": buckets are not cumulative";
      last = n;
    }
    if (!by_le.count(INFINITY)) return series + ": no +Inf bucket";
    if (!counts.count(series) || counts[series] != by_le.at(INFINITY))
      return series + ": _count differs from the +Inf bucket";
  }
  return "";
}

class AdminPortTest : public ::testing::Test {
 protected:
  void StartApp(const std::string& extra_yaml = "") {
    absl::StatusOr<AppConfig> config = ParseConfig(
        "app: {name: rich, version: 2.0.0}\n"
        "server: {host: 127.0.0.1, grpc_port: 0, thrift_port: 0, shutdown_grace_ms: 5000}\n"
        "admin: {port: 0}\n" +
            extra_yaml,
        "admin_test.yaml");
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<App>> app = App::FromConfig(*config);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    app_->Serve<rich::RichService>(impl_);
    absl::Status started = app_->Start();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_GT(app_->admin_port(), 0);
    http_ = std::make_unique<httplib::Client>("127.0.0.1", app_->admin_port());
    http_->set_read_timeout(10, 0);
  }

  std::shared_ptr<rich::RichService> Proxy(Protocol protocol) {
    int port = protocol == Protocol::kGrpc ? app_->grpc_port() : app_->thrift_port();
    return MakeClient<rich::RichService>(
        MakeChannel("127.0.0.1:" + std::to_string(port), protocol));
  }

  Exposition Scrape() {
    auto res = http_->Get("/metrics");
    EXPECT_TRUE(res) << "no answer from /metrics";
    Exposition e;
    if (!res) return e;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    std::string problem = ReadExposition(res->body, &e);
    EXPECT_EQ(problem, "") << res->body;
    return e;
  }

  std::string Get(const std::string& path, int* status = nullptr) {
    auto res = http_->Get(path.c_str());
    EXPECT_TRUE(res) << "no answer from " << path;
    if (!res) return "";
    if (status != nullptr) *status = res->status;
    return res->body;
  }

  const std::string service_ = internal::BindingOf<rich::RichService>().full_name;
  std::shared_ptr<RichServiceImpl> impl_ = std::make_shared<RichServiceImpl>();
  std::unique_ptr<App> app_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(AdminPortTest, MetricsCountExactlyTheCallsMadeOnBothProtocolsAndBothSides) {
  StartApp();
  Exposition before = Scrape();
  auto grpc = Proxy(Protocol::kGrpc);
  auto thrift = Proxy(Protocol::kThrift);
  for (int i = 0; i < 3; ++i) grpc->Count();
  for (int i = 0; i < 4; ++i) thrift->Count();
  for (int i = 0; i < 2; ++i) EXPECT_THROW(grpc->Notify(-1, "no", rich::Color::kRed), RpcError);
  EXPECT_THROW(thrift->Notify(0, "boom", rich::Color::kRed), RpcError);  // INTERNAL
  Exposition after = Scrape();

  auto delta = [&](const std::string& name, std::map<std::string, std::string> labels) {
    return after.Get(name, labels) - before.Get(name, labels);
  };
  using L = std::map<std::string, std::string>;
  // Server side, per protocol and code.
  EXPECT_EQ(
      delta("rpcboot_server_handled_total",
            L{{"service", service_}, {"method", "Count"}, {"protocol", "grpc"}, {"code", "OK"}}),
      3);
  EXPECT_EQ(
      delta("rpcboot_server_handled_total",
            L{{"service", service_}, {"method", "Count"}, {"protocol", "thrift"}, {"code", "OK"}}),
      4);
  EXPECT_EQ(delta("rpcboot_server_handled_total", L{{"service", service_},
                                                    {"method", "Notify"},
                                                    {"protocol", "grpc"},
                                                    {"code", "FAILED_PRECONDITION"}}),
            2);
  EXPECT_EQ(delta("rpcboot_server_handled_total", L{{"service", service_},
                                                    {"method", "Notify"},
                                                    {"protocol", "thrift"},
                                                    {"code", "INTERNAL"}}),
            1);
  EXPECT_EQ(delta("rpcboot_server_started_total",
                  L{{"service", service_}, {"method", "Count"}, {"protocol", "thrift"}}),
            4);
  EXPECT_EQ(delta("rpcboot_server_handling_seconds_count",
                  L{{"service", service_}, {"method", "Count"}, {"protocol", "grpc"}}),
            3);
  EXPECT_EQ(after.Get("rpcboot_server_in_flight",
                      L{{"service", service_}, {"method", "Count"}, {"protocol", "grpc"}}),
            0);
  // Client side: both proxies together, by code.
  EXPECT_EQ(delta("rpcboot_client_handled_total",
                  L{{"service", service_}, {"method", "Count"}, {"code", "OK"}}),
            7);
  EXPECT_EQ(delta("rpcboot_client_handled_total",
                  L{{"service", service_}, {"method", "Notify"}, {"code", "FAILED_PRECONDITION"}}),
            2);
  EXPECT_EQ(delta("rpcboot_client_handled_total",
                  L{{"service", service_}, {"method", "Notify"}, {"code", "INTERNAL"}}),
            1);
  EXPECT_EQ(delta("rpcboot_client_started_total", L{{"service", service_}, {"method", "Notify"}}),
            3);
  EXPECT_EQ(
      delta("rpcboot_client_handling_seconds_count", L{{"service", service_}, {"method", "Count"}}),
      7);
  // Nothing else was counted: no call of a method that was not made.
  EXPECT_EQ(
      delta("rpcboot_server_handled_total",
            L{{"service", service_}, {"method", "Echo"}, {"protocol", "grpc"}, {"code", "OK"}}),
      0);
  EXPECT_TRUE(
      after.Has("rpcboot_server_handled_total",
                L{{"service", service_}, {"method", "Echo"}, {"protocol", "grpc"}, {"code", "OK"}}))
      << "a served method has its series before its first call";
  EXPECT_GE(after.Get("rpcboot_server_connections", L{{"protocol", "thrift"}}), 1);
  EXPECT_EQ(after.families.at("rpcboot_server_handling_seconds").type, "histogram");
  EXPECT_EQ(after.Get("rpcboot_info", L{{"app", "rich"}, {"version", "2.0.0"}}), 1);
  EXPECT_EQ(after.Get("rpcboot_serving", {}), 1);
  EXPECT_GT(after.Get("process_resident_memory_bytes", {}), 0);
}

TEST(AdminExposition, TheStrictReaderRejectsBrokenExpositions) {
  // The reader above is what the metrics are held to: it must fail on what breaks scrapers.
  Exposition e;
  EXPECT_NE(ReadExposition("x 1\n", &e), "");  // no TYPE
  e = {};
  EXPECT_NE(ReadExposition("# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1} 1\n", &e), "");
  e = {};
  EXPECT_NE(ReadExposition("# HELP a h\n# TYPE a gauge\na 1\n# HELP b h\n# TYPE b gauge\nb 1\n"
                           "a{x=\"2\"} 1\n",
                           &e),
            "");  // samples of a apart
  e = {};
  EXPECT_NE(ReadExposition("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                           "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                           &e),
            "");  // not cumulative
  e = {};
  EXPECT_NE(ReadExposition("# HELP a h\n# TYPE a gauge\na 1\na 2\n", &e), "");  // twice
  e = {};
  EXPECT_EQ(ReadExposition("# HELP a h\n# TYPE a gauge\na{x=\"q\\\"\\\\\\n\"} 1.5e-06\n", &e), "");
}

TEST_F(AdminPortTest, StatusShowsMethodsClientsAndFailedCallsAndRedactsSecrets) {
  // A client to this very app through the config (static list), so the page has a client with
  // an instance; and a registry digest whose password must never be shown.
  StartApp("registry: {digest: \"ops:s3cret-pw\"}\ntracing: {sample_rate: 1}\n");
  // Counts are per process (other tests in this binary may have called Count): compare.
  auto CountCalls = [](const nlohmann::json& methods) -> int64_t {
    for (const auto& m : methods) {
      if (m["method"] == "Count" && m["protocol"] == "grpc") return m["calls"].get<int64_t>();
    }
    return -1;
  };
  const int64_t count_calls_before =
      CountCalls(nlohmann::json::parse(Get("/status.json"))["served_methods"]);
  ASSERT_GE(count_calls_before, 0) << "a served method is listed before its first call";
  // Clients are configured before the App exists; this one names the ports just bound, so it
  // goes through a second App (client only) with the same admin data source.
  absl::StatusOr<AppConfig> config = ParseConfig(
      "app: {name: caller}\nadmin: {port: 0}\nregistry: {digest: \"ops:s3cret-pw\"}\n"
      "tracing: {sample_rate: 1}\n"
      "clients:\n  " +
          service_ + ": {address: \"static://127.0.0.1:" + std::to_string(app_->grpc_port()) +
          "\", protocol: grpc}\n",
      "caller.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto caller = App::FromConfig(*config);
  ASSERT_TRUE(caller.ok()) << caller.status();
  ASSERT_TRUE((*caller)->Start().ok());
  auto rich_client = (*caller)->Client<rich::RichService>();
  EXPECT_EQ(rich_client->Count(), 1);
  EXPECT_THROW(rich_client->Notify(-7, "x", rich::Color::kRed), RpcError);

  httplib::Client caller_http("127.0.0.1", (*caller)->admin_port());
  auto json_res = caller_http.Get("/status.json");
  ASSERT_TRUE(json_res);
  ASSERT_EQ(json_res->status, 200);
  nlohmann::json status = nlohmann::json::parse(json_res->body);
  EXPECT_EQ(status["app"], "caller");
  EXPECT_EQ(status["serving"], true);
  ASSERT_EQ(status["clients"].size(), 1u);
  EXPECT_EQ(status["clients"][0]["service"], service_);
  ASSERT_EQ(status["clients"][0]["instances"].size(), 1u);
  EXPECT_EQ(status["clients"][0]["instances"][0]["address"],
            "127.0.0.1:" + std::to_string(app_->grpc_port()));
  EXPECT_EQ(status["clients"][0]["instances"][0]["picks"], 2);
  EXPECT_EQ(status["clients"][0]["instances"][0]["state"], "healthy");
  bool found = false;
  for (const auto& f : status["recent_failures"]) {
    if (f["side"] == "client" && f["method"] == "Notify" && f["code"] == "FAILED_PRECONDITION" &&
        f["message"].get<std::string>().find("negative id -7") != std::string::npos)
      found = true;
  }
  EXPECT_TRUE(found) << status["recent_failures"].dump(2);

  // Every call was traced (sample_rate 1): the client span of the failed call is listed.
  bool traced = false;
  for (const auto& span : status["recent_spans"]) {
    if (span["kind"] == "client" && span["name"] == service_ + "/Notify" &&
        span["code"] == "FAILED_PRECONDITION" && span["trace_id"].get<std::string>().size() == 32)
      traced = true;
  }
  EXPECT_TRUE(traced) << status["recent_spans"].dump(2);

  // The serving app saw the same calls; its page lists them.
  std::string page = Get("/");
  EXPECT_NE(page.find("<h1 id=\"app\">rich"), std::string::npos);
  EXPECT_NE(page.find(service_ + "/Count"), std::string::npos);
  EXPECT_NE(page.find("negative id -7"), std::string::npos) << "the failed call, server side";
  EXPECT_NE(page.find("admin.port"), std::string::npos) << "the configuration";
  EXPECT_NE(page.find("ops:(redacted)"), std::string::npos);
  EXPECT_NE(page.find("<table id=\"spans\">"), std::string::npos);
  EXPECT_NE(page.find("<td>server</td><td>" + service_ + "/Count</td>"), std::string::npos)
      << "the served call's span";
  // No external assets: the page loads with no network but the admin port.
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("<link"), std::string::npos);
  for (const std::string& body : {page, Get("/status.json"), Get("/metrics"), json_res->body})
    EXPECT_EQ(body.find("s3cret"), std::string::npos) << "a secret on the admin port";
  nlohmann::json served = nlohmann::json::parse(Get("/status.json"))["served_methods"];
  EXPECT_EQ(CountCalls(served), count_calls_before + 1) << served.dump(2);
}

TEST_F(AdminPortTest, HealthSaysNotServingWhileTheInstanceDrains) {
  StartApp();
  int status = 0;
  EXPECT_EQ(Get("/health", &status), "SERVING\n");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(Get("/health.json"), "{\"status\":\"SERVING\"}");
  auto proxy = Proxy(Protocol::kGrpc);
  auto held = std::async(std::launch::async,
                         [&] { proxy->Notify(RichServiceImpl::kHeld, "held", rich::Color::kRed); });
  ASSERT_TRUE(impl_->WaitEntered(1));
  auto stopping = std::async(std::launch::async, [&] { app_->Shutdown(); });
  // The held call keeps the drain going; /health must turn while it does.
  std::string body;
  for (int i = 0; i < 500 && body != "NOT_SERVING\n"; ++i) {
    body = Get("/health", &status);
    if (body != "NOT_SERVING\n") std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(body, "NOT_SERVING\n");
  EXPECT_EQ(status, 503);
  EXPECT_EQ(Get("/health.json"), "{\"status\":\"NOT_SERVING\"}");
  impl_->Release();
  held.get();  // the accepted call still succeeds
  stopping.get();
}

TEST_F(AdminPortTest, UnknownPagesAndGarbageGetClearAnswersAndTheInstanceServesOn) {
  StartApp();
  int status = 0;
  std::string body = Get("/nope", &status);
  EXPECT_EQ(status, 404);
  EXPECT_NE(body.find("no page /nope"), std::string::npos) << body;
  EXPECT_NE(body.find("/metrics"), std::string::npos) << "lists the pages";
  // Not HTTP at all, then a request line far too long.
  for (const std::string& junk : {std::string("\x16\x03\x01garbage\r\n\r\n"),
                                  "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n"}) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(app_->admin_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(junk.size()));
    char reply[256] = {};
    ssize_t n = ::recv(fd, reply, sizeof reply - 1, 0);
    ::close(fd);
    if (n > 0) {
      EXPECT_EQ(std::string(reply).rfind("HTTP/1.1 4", 0), 0u) << reply;
    }
  }
  EXPECT_EQ(Get("/health", &status), "SERVING\n");
  EXPECT_EQ(Proxy(Protocol::kThrift)->Count(), 1);
}

// Whether the server has closed `fd` (it reads an end of stream without waiting); what it sent
// before is dropped.
bool ClosedByServer(int fd) {
  char buf[512];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

// Everything the server sends until it closes.
std::string ReadToClose(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, n);
  return out;
}

TEST_F(AdminPortTest, SlowRequestsNeverKeepAProbeFromItsAnswer) {
  StartApp();
  // More connections than the port holds, each with half a request that never ends.
  std::vector<int> slow;
  for (int i = 0; i < 80; ++i) {
    int fd = ConnectTo(app_->admin_port());
    ASSERT_GE(fd, 0);
    const std::string part = "GET /health HTTP/1.1\r\nHost: x\r\n";
    ASSERT_EQ(::send(fd, part.data(), part.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(part.size()));
    slow.push_back(fd);
  }
  int status = 0;
  EXPECT_EQ(Get("/health", &status), "SERVING\n");
  EXPECT_EQ(status, 200);
  // The probe was answered while the slow ones were held: the newest of them are still open
  // (the oldest made room for the newer).
  int open = 0;
  for (int fd : slow) open += ClosedByServer(fd) ? 0 : 1;
  EXPECT_GE(open, 50) << "the slow connections were closed before the probe got its answer";
  // Each of them is closed once its request is overdue, with nothing sent.
  for (int fd : slow) {
    EXPECT_EQ(ReadToClose(fd), "");
    ::close(fd);
  }
  EXPECT_EQ(Get("/health", &status), "SERVING\n");
}

TEST_F(AdminPortTest, AConnectionOverTheCapClosesTheOneWaitingLongest) {
  StartApp();
  std::vector<int> fds;
  for (int i = 0; i < 64; ++i) {
    int fd = ConnectTo(app_->admin_port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "GET /", 5, MSG_NOSIGNAL), 5);
    fds.push_back(fd);
  }
  // Each connection's first bytes are taken on accept: once the 64th answers a complete request
  // the port holds all of them.
  int newest = ConnectTo(app_->admin_port());
  ASSERT_GE(newest, 0);
  const std::string request = "GET /health HTTP/1.1\r\n\r\n";
  ASSERT_EQ(::send(newest, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  EXPECT_EQ(ReadToClose(newest).rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  ::close(newest);
  // The oldest was closed to make room; the second oldest still waits.
  EXPECT_EQ(ReadToClose(fds[0]), "");
  EXPECT_FALSE(ClosedByServer(fds[1])) << "closed with the oldest: by a deadline, not the cap";
  for (int fd : fds) ::close(fd);
}

TEST_F(AdminPortTest, HeadAndOtherMethodsGetHttpAnswers) {
  StartApp();
  int fd = ConnectTo(app_->admin_port());
  ASSERT_GE(fd, 0);
  std::string request = "HEAD /metrics HTTP/1.1\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string head = ReadToClose(fd);
  ::close(fd);
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_EQ(head.size(), head.find("\r\n\r\n") + 4) << "a HEAD answer carries no body";
  fd = ConnectTo(app_->admin_port());
  ASSERT_GE(fd, 0);
  request = "POST /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer = ReadToClose(fd);
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Allow: GET, HEAD\r\n"), std::string::npos) << answer;
}

TEST_F(AdminPortTest, AnAdminPortInUseStopsTheStartAndNamesTheKey) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int taken = ntohs(addr.sin_port);
  absl::StatusOr<AppConfig> config =
      ParseConfig("app: {name: rich}\nserver: {host: 127.0.0.1, grpc_port: 0}\nadmin: {port: " +
                      std::to_string(taken) + "}\n",
                  "taken.yaml");
  ASSERT_TRUE(config.ok());
  auto app = App::FromConfig(*config);
  ASSERT_TRUE(app.ok());
  (*app)->Serve<rich::RichService>(impl_);
  absl::Status started = (*app)->Start();
  ::close(fd);
  EXPECT_FALSE(started.ok());
  EXPECT_NE(started.message().find("admin.port"), absl::string_view::npos) << started;
  EXPECT_NE(started.message().find(std::to_string(taken)), absl::string_view::npos) << started;
  EXPECT_EQ((*app)->grpc_port(), -1) << "nothing left half-started";
}

TEST_F(AdminPortTest, AnAdminHostThatIsNoAddressStopsTheStartAndNamesTheKey) {
  absl::StatusOr<AppConfig> config = ParseConfig(
      "app: {name: rich}\nserver: {host: 127.0.0.1, grpc_port: 0}\n"
      "admin: {port: 0, host: 999.1.1.1}\n",
      "bad_host.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto app = App::FromConfig(*config);
  ASSERT_TRUE(app.ok());
  (*app)->Serve<rich::RichService>(impl_);
  absl::Status started = (*app)->Start();
  EXPECT_FALSE(started.ok());
  EXPECT_NE(started.message().find("admin.host"), absl::string_view::npos) << started;
  EXPECT_NE(started.message().find("999.1.1.1"), absl::string_view::npos) << started;
  EXPECT_EQ((*app)->grpc_port(), -1) << "nothing left half-started";
}

TEST_F(AdminPortTest, WithMetricsOffNoCallIsCounted) {
  StartApp("metrics: {enabled: false}\n");
  Exposition before = Scrape();
  auto proxy = Proxy(Protocol::kGrpc);
  for (int i = 0; i < 5; ++i) proxy->Count();
  Exposition after = Scrape();
  std::map<std::string, std::string> labels{
      {"service", service_}, {"method", "Count"}, {"protocol", "grpc"}, {"code", "OK"}};
  EXPECT_EQ(after.Get("rpcboot_server_handled_total", labels),
            before.Get("rpcboot_server_handled_total", labels));
  std::map<std::string, std::string> client{{"service", service_}, {"method", "Count"}};
  EXPECT_EQ(after.Get("rpcboot_client_started_total", client),
            before.Get("rpcboot_client_started_total", client));
  EXPECT_EQ(impl_->count.load(), 5) << "the calls themselves were served";
}

// An application's own metrics (rpcboot/metrics.h) are served beside rpcboot's: on /metrics
// under the strict reader, in /status.json and on the page; a gauge is read at each scrape and
// goes with its registration.
TEST_F(AdminPortTest, TheApplicationsOwnMetricsAreServedBesideRpcboots) {
  StartApp();
  absl::StatusOr<Counter*> pickups =
      GetCounter("admintest_orders_total", "Orders placed.", {{"kind", "pickup"}});
  ASSERT_TRUE(pickups.ok()) << pickups.status();
  absl::StatusOr<Counter*> odd =
      GetCounter("admintest_orders_total", "ignored: the first help", {{"kind", "say \"hi\"\\\n"}});
  ASSERT_TRUE(odd.ok()) << odd.status();
  (*pickups)->Add(3);
  (*odd)->Add();
  std::atomic<int> waiting{7};
  absl::StatusOr<std::unique_ptr<GaugeRegistration>> gauge =
      AddGauge("admintest_waiting", "Orders that wait.", {}, [&] { return waiting.load() * 1.0; });
  ASSERT_TRUE(gauge.ok()) << gauge.status();
  Exposition e = Scrape();
  EXPECT_EQ(e.Get("admintest_orders_total", {{"kind", "pickup"}}), 3);
  EXPECT_EQ(e.Get("admintest_orders_total", {{"kind", "say \"hi\"\\\n"}}), 1);
  EXPECT_EQ(e.families["admintest_orders_total"].type, "counter");
  EXPECT_EQ(e.families["admintest_orders_total"].help, "Orders placed.");
  EXPECT_EQ(e.Get("admintest_waiting", {}), 7);
  EXPECT_EQ(e.families["admintest_waiting"].type, "gauge");
  waiting = 2;
  EXPECT_EQ(Scrape().Get("admintest_waiting", {}), 2) << "a gauge is read at each scrape";

  nlohmann::json status = nlohmann::json::parse(Get("/status.json"));
  bool listed = false;
  for (const auto& m : status["app_metrics"]) {
    if (m["name"] == "admintest_orders_total" && m["labels"]["kind"] == "pickup" &&
        m["type"] == "counter" && m["value"] == 3)
      listed = true;
  }
  EXPECT_TRUE(listed) << status["app_metrics"].dump(2);
  std::string page = Get("/");
  EXPECT_NE(page.find("<table id=\"app_metrics\">"), std::string::npos);
  EXPECT_NE(page.find("<td>admintest_waiting</td><td></td><td>gauge</td><td class=\"n\">2</td>"),
            std::string::npos);

  gauge->reset();
  EXPECT_FALSE(Scrape().Has("admintest_waiting", {})) << "the gauge went with its registration";
}

TEST(AppMetrics, NamesAndLabelsPrometheusCannotTakeAreRefusedNamingThem) {
  struct Case {
    std::string name;
    MetricLabels labels;
    std::string says;
  } cases[] = {
      {"", {}, "metric name '' is not a Prometheus name"},
      {"9lives", {}, "metric name '9lives' is not a Prometheus name"},
      {"orders-total", {}, "metric name 'orders-total' is not a Prometheus name"},
      {"rpcboot_mine", {}, "starts with rpcboot_, which is rpcboot's own"},
      {"process_mine", {}, "starts with process_, which is rpcboot's own"},
      {"apptest_x", {{"a b", "1"}}, "label name 'a b' of metric apptest_x is not a Prometheus"},
      {"apptest_x", {{"__reserved", "1"}}, "label name '__reserved'"},
      {"apptest_x", {{"k", "1"}, {"k", "2"}}, "label 'k' is given twice for metric apptest_x"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Counter*> counter = GetCounter(c.name, "help", c.labels);
    ASSERT_FALSE(counter.ok()) << c.name;
    EXPECT_EQ(counter.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(counter.status().message().find(c.says), absl::string_view::npos) << counter.status();
    auto gauge = AddGauge(c.name, "help", c.labels, [] { return 1.0; });
    EXPECT_FALSE(gauge.ok()) << c.name;
  }
  // One name is one type.
  ASSERT_TRUE(GetCounter("apptest_typed_total", "h").ok());
  auto as_gauge = AddGauge("apptest_typed_total", "h", {}, [] { return 1.0; });
  ASSERT_FALSE(as_gauge.ok());
  EXPECT_NE(as_gauge.status().message().find("apptest_typed_total is a counter, not a gauge"),
            absl::string_view::npos)
      << as_gauge.status();
  auto gauge = AddGauge("apptest_level", "h", {{"pool", "a"}}, [] { return 1.0; });
  ASSERT_TRUE(gauge.ok());
  auto twice = AddGauge("apptest_level", "h", {{"pool", "a"}}, [] { return 2.0; });
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kAlreadyExists) << twice.status();
  EXPECT_FALSE(GetCounter("apptest_level", "h").ok());
  EXPECT_FALSE(AddGauge("apptest_empty", "h", {}, nullptr).ok()) << "a gauge without a function";
  // Labels in any order are one series; a negative Add is ignored.
  auto ab = GetCounter("apptest_pairs_total", "h", {{"a", "1"}, {"b", "2"}});
  auto ba = GetCounter("apptest_pairs_total", "h", {{"b", "2"}, {"a", "1"}});
  ASSERT_TRUE(ab.ok() && ba.ok());
  EXPECT_EQ(*ab, *ba);
  (*ab)->Add(-5);
  EXPECT_EQ((*ab)->Value(), 0);
}

TEST(AppMetrics, CountersAddUpExactlyAcrossThreads) {
  absl::StatusOr<Counter*> counter = GetCounter("apptest_threads_total", "h");
  ASSERT_TRUE(counter.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) (*counter)->Add();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ((*counter)->Value(), 800000);
}

TEST(AppMetrics, AGaugeThatThrowsIsLeftOutAndDestroyingARegistrationWaitsForItsRead) {
  auto bad = AddGauge("apptest_broken", "h", {}, []() -> double { throw std::runtime_error("x"); });
  ASSERT_TRUE(bad.ok());
  internal::MetricWriter out;
  internal::MetricsRegistry::Get().Collect(out);
  EXPECT_EQ(out.Text().find("apptest_broken "), std::string::npos);

  // A read in progress holds the registration's destruction until it returns.
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> order{0}, read_done{0}, destroyed{0};
  auto slow = AddGauge("apptest_slow", "h", {}, [&, released]() {
    entered.set_value();
    released.wait();
    read_done = ++order;
    return 1.0;
  });
  ASSERT_TRUE(slow.ok());
  std::thread scrape([] {
    internal::MetricWriter w;
    internal::MetricsRegistry::Get().Collect(w);
  });
  entered.get_future().wait();
  std::thread destroy([&] {
    slow->reset();
    destroyed = ++order;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the destroyer reach its wait
  EXPECT_EQ(destroyed.load(), 0) << "destroyed while its read was running";
  release.set_value();
  scrape.join();
  destroy.join();
  EXPECT_LT(read_done.load(), destroyed.load());
}

// Text from outside (a peer's error message, an address) and from the application (a label
// value) need not be UTF-8, and a long message is cut at a byte count: the status data stays
// valid JSON and the page and /metrics still answer.
TEST_F(AdminPortTest, TextThatIsNotUtf8NeverBreaksTheStatusData) {
  StartApp();
  internal::CallStats* stats = internal::MetricsRegistry::Get().Server(service_, "Count", "grpc");
  internal::MetricsRegistry::Get().RecordFailure(*stats, StatusCode::kInternal, "peer\xff",
                                                 "bad byte \xff\xfe here");
  std::string long_message(299, 'a');
  for (int i = 0; i < 10; ++i) long_message += "\xc3\xbc";  // u-umlaut, cut after its first byte
  internal::MetricsRegistry::Get().RecordFailure(*stats, StatusCode::kInternal, "peer",
                                                 long_message);
  auto counter = GetCounter("admintest_bytes_total", "h", {{"value", "\xff"}});
  ASSERT_TRUE(counter.ok());
  int status = 0;
  std::string json = Get("/status.json", &status);
  ASSERT_EQ(status, 200) << json;
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json;
  bool shown = false;
  for (const auto& f : parsed["recent_failures"]) {
    if (f["message"].get<std::string>().find("bad byte") != std::string::npos) shown = true;
  }
  EXPECT_TRUE(shown) << parsed["recent_failures"].dump(2);
  Get("/", &status);
  EXPECT_EQ(status, 200);
  Get("/metrics", &status);
  EXPECT_EQ(status, 200);
}

TEST(AppMetrics, SeriesWithoutEndAreRefusedAtTheCap) {
  // A label per order id would grow without end: past kMaxAppSeries, ResourceExhausted.
  int made = 0;
  absl::Status refused;
  for (std::size_t i = 0; i <= kMaxAppSeries; ++i) {
    auto c = GetCounter("apptest_per_order_total", "h", {{"order", std::to_string(i)}});
    if (!c.ok()) {
      refused = c.status();
      break;
    }
    ++made;
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("a label per user or order grows without end"),
            absl::string_view::npos)
      << refused;
  EXPECT_LE(made, static_cast<int>(kMaxAppSeries));
  EXPECT_GT(made, static_cast<int>(kMaxAppSeries) - 100) << "other tests made only a few";
  // What exists is still counted.
  auto first = GetCounter("apptest_per_order_total", "h", {{"order", "0"}});
  ASSERT_TRUE(first.ok()) << first.status();
}

// Interceptors added to an App: the server's run on the calls it serves over both protocols,
// the clients' on every call of the proxies it makes (here a local implementation, by config).
TEST(AppInterceptors, RunOnServedCallsAndOnTheAppsOwnProxies) {
  const std::map<std::string, std::string> no_env;
  absl::StatusOr<AppConfig> config =
      LoadConfig({"--app.name=rich", "--server.host=127.0.0.1", "--server.grpc_port=0",
                  "--server.thrift_port=0", "--clients.rich.RichService.mode=local"},
                 &no_env);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<App>> made = App::FromConfig(*config);
  ASSERT_TRUE(made.ok()) << made.status();
  App& app = **made;
  app.Serve<rich::RichService>(std::make_shared<testing::RichServiceImpl>());
  auto local = std::make_shared<testing::RichServiceImpl>();
  app.Local<rich::RichService>(local);
  std::atomic<int> counted{0};
  app.AddServerInterceptor(
      [&](const ServerContext&, std::string_view method, const std::function<void()>& proceed) {
        if (method == "/rich.RichService/Count") counted++;
        proceed();
      });
  app.AddClientInterceptor(
      [](std::string_view, CallOptions& call, const std::function<void()>& proceed) {
        call.metadata.emplace_back("x-app", "rich");
        proceed();
      });
  absl::Status started = app.Start();
  ASSERT_TRUE(started.ok()) << started;
  for (Protocol protocol : {Protocol::kGrpc, Protocol::kThrift}) {
    int port = protocol == Protocol::kGrpc ? app.grpc_port() : app.thrift_port();
    MakeClient<rich::RichService>(MakeChannel("127.0.0.1:" + std::to_string(port), protocol))
        ->Count();
  }
  EXPECT_EQ(counted.load(), 2) << "the server interceptor saw both protocols' calls";
  auto histogram = app.Client<rich::RichService>()->Histogram({"w"});
  EXPECT_EQ(histogram["metadata:x-app=rich"], 1) << "the client interceptor's metadata";
  EXPECT_EQ(counted.load(), 2) << "a local call is not served by the server";
  app.Shutdown();
}

}  // namespace
}  // namespace rpcboot
