#include "rpcboot/internal/admin_server.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"
#include "rpcboot/internal/admin_http.h"
#include "rpcboot/internal/app_metrics.h"
#include "rpcboot/internal/metrics.h"
#include "rpcboot/migration.h"
#include "rpcboot/tracing.h"

namespace rpcboot::internal {
namespace {

using Json = nlohmann::json;

// Rates and percentiles on the status page cover this much of the recent past.
constexpr int kWindowSeconds = 10;

std::string Html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A metric's value as a person reads it: whole numbers without a fraction.
std::string Quantity(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrCat(static_cast<int64_t>(v));
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

std::string UtcTime(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d %02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(unix_ms % 1000));
  return text;
}

std::string Fixed(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

// One method's figures: totals since start and the last kWindowSeconds.
struct MethodView {
  const CallStats* stats;
  CallCounts total;
  CallCounts window;
  double seconds;  // the window's length

  double rate() const { return seconds > 0 ? static_cast<double>(window.finished()) / seconds : 0; }
  double error_rate() const {
    int64_t n = window.finished();
    return n > 0 ? static_cast<double>(window.failed()) / static_cast<double>(n) : 0;
  }
};

}  // namespace

class AdminServer::Impl {
 public:
  Impl(std::function<AdminInfo()> info, std::function<bool()> serving)
      : info_(std::move(info)), serving_(std::move(serving)) {
    start_ = std::chrono::steady_clock::now();
  }

  // Every second, the counts of every CallStats, so that a page can show the last few seconds.
  void Sample() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      Snapshot snap;
      snap.at = std::chrono::steady_clock::now();
      for (const CallStats* stats : MetricsRegistry::Get().All())
        snap.counts[stats] = stats->Read();
      samples_.push_back(std::move(snap));
      while (samples_.size() > kWindowSeconds + 1) samples_.pop_front();
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
    }
  }

  std::vector<MethodView> Methods() {
    auto now = std::chrono::steady_clock::now();
    std::vector<MethodView> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (const CallStats* stats : MetricsRegistry::Get().All()) {
      MethodView view{stats, stats->Read(), {}, 0};
      view.window = view.total;
      view.seconds = std::chrono::duration<double>(now - start_).count();
      if (!samples_.empty()) {
        const Snapshot& oldest = samples_.front();
        if (auto it = oldest.counts.find(stats); it != oldest.counts.end()) {
          view.window = view.total.Since(it->second);
          view.seconds = std::chrono::duration<double>(now - oldest.at).count();
        }
      }
      out.push_back(view);
    }
    return out;
  }

  Json StatusJson() {
    AdminInfo info = info_();
    Json j;
    j["app"] = info.app;
    j["version"] = info.version;
    j["zone"] = info.zone;
    j["pid"] = static_cast<int64_t>(::getpid());
    j["serving"] = info.serving;
    j["uptime_seconds"] = static_cast<int64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_)
            .count());
    j["ports"] = {{"grpc", info.grpc_port}, {"thrift", info.thrift_port}, {"admin", http.port()}};
    j["tls"] = info.tls;
    j["registry"] = {{"zookeeper", info.zookeeper},
                     {"path", info.registry_path},
                     {"registered", info.registered},
                     {"connected", info.zookeeper_connected},
                     {"disconnected_ms", info.zookeeper_disconnected_ms},
                     {"sessions", info.zookeeper_sessions},
                     {"expirations", info.zookeeper_expirations},
                     {"registrations", info.registrations}};
    Json served = Json::array(), called = Json::array();
    for (const MethodView& m : Methods()) {
      Json codes = Json::object();
      for (int c = 0; c < kStatusCodes; ++c) {
        if (m.total.by_code[c] > 0)
          codes[std::string(StatusCodeName(static_cast<StatusCode>(c)))] = m.total.by_code[c];
      }
      Json entry = {{"service", m.stats->service()},
                    {"method", m.stats->method()},
                    {"calls", m.total.finished()},
                    {"errors", m.total.failed()},
                    {"in_flight", m.total.in_flight()},
                    {"by_code", codes},
                    {"window_seconds", m.seconds},
                    {"rate_per_second", m.rate()},
                    {"error_rate", m.error_rate()},
                    {"p50_ms", m.window.Quantile(0.5) * 1000},
                    {"p99_ms", m.window.Quantile(0.99) * 1000}};
      if (m.stats->side() == "server") {
        entry["protocol"] = m.stats->protocol();
        entry["shed"] = m.total.shed;
        served.push_back(std::move(entry));
      } else {
        called.push_back(std::move(entry));
      }
    }
    j["served_methods"] = std::move(served);
    j["called_methods"] = std::move(called);
    Json clients = Json::array();
    for (const AdminInfo::Client& c : info.clients) {
      Json instances = Json::array();
      for (const ChannelState::Instance& i : c.state.instances) {
        instances.push_back({{"address", i.address},
                             {"state", InstanceState(i)},
                             {"in_flight", i.in_flight},
                             {"picks", i.picks},
                             {"ejections", i.ejections}});
      }
      clients.push_back({{"service", c.service},
                         {"target", c.target},
                         {"protocol", c.protocol},
                         {"instances", std::move(instances)},
                         {"circuit_open", c.state.circuit_open},
                         {"retries", c.state.retries},
                         {"retries_refused", c.state.retries_refused},
                         {"fast_failures", c.state.fast_failures},
                         {"fallbacks", c.state.fallbacks},
                         {"hedges", c.state.hedges}});
      if (const MigrationStats* m = c.state.migration.get()) {
        auto shadow_json = [](const MigrationStats::Shadow& s) {
          return Json{{"calls", s.calls},   {"matches", s.matches}, {"mismatches", s.mismatches},
                      {"errors", s.errors}, {"skipped", s.skipped}, {"unsafe", s.unsafe}};
        };
        Json by_method = Json::object();
        for (const auto& [name, s] : m->shadow_by_method) by_method[name] = shadow_json(s);
        clients.back()["migration"] = {{"mode", m->mode.ToString()},
                                       {"source", m->mode_source},
                                       {"switches", m->switches},
                                       {"local_calls", m->local_calls},
                                       {"remote_calls", m->remote_calls},
                                       {"local_fallbacks", m->local_fallbacks},
                                       {"shadow", shadow_json(m->shadow)},
                                       {"shadow_by_method", std::move(by_method)},
                                       {"recent_mismatches", m->recent_mismatches}};
      }
    }
    j["clients"] = std::move(clients);
    Json failures = Json::array();
    for (const FailedCall& f : MetricsRegistry::Get().RecentFailures()) {
      failures.push_back({{"time", UtcTime(f.unix_ms)},
                          {"side", f.side},
                          {"service", f.service},
                          {"method", f.method},
                          {"protocol", f.protocol},
                          {"peer", f.peer},
                          {"code", std::string(StatusCodeName(f.code))},
                          {"message", f.message}});
    }
    j["recent_failures"] = std::move(failures);
    Json spans = Json::array();
    for (const Span& sp : RecentSpans()) {
      spans.push_back(
          {{"time", UtcTime(sp.start_unix_ns / 1000000)},
           {"trace_id", sp.trace_id},
           {"span_id", sp.span_id},
           {"parent_span_id", sp.parent_span_id},
           {"kind", sp.server ? "server" : "client"},
           {"name", sp.name},
           {"protocol", sp.protocol},
           {"duration_ms", static_cast<double>(sp.end_unix_ns - sp.start_unix_ns) / 1e6},
           {"code", std::string(StatusCodeName(sp.code))}});
    }
    j["recent_spans"] = std::move(spans);
    Json config = Json::array();
    for (const auto& [key, value] : info.config) config.push_back({{"key", key}, {"value", value}});
    j["config"] = std::move(config);
    Json app_metrics = Json::array();
    for (const AppSample& sample : ReadAppMetrics()) {
      Json labels = Json::object();
      for (const auto& [name, value] : sample.labels) labels[name] = value;
      app_metrics.push_back({{"name", sample.name},
                             {"type", sample.counter ? "counter" : "gauge"},
                             {"labels", std::move(labels)},
                             {"value", sample.value}});
    }
    j["app_metrics"] = std::move(app_metrics);
    return j;
  }

  static std::string InstanceState(const ChannelState::Instance& i) {
    if (i.ejected) return "ejected";
    return i.healthy ? "healthy" : "backing off";
  }

  std::string Page() {
    Json j = StatusJson();
    std::string out =
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
        Html(j["app"].get<std::string>()) +
        " - rpcboot</title>\n<style>\n"
        "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\n"
        "h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}\n"
        "table{border-collapse:collapse;margin-bottom:.5em}\n"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\n"
        "th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
        ".ok{color:#1a7f37}.bad{color:#c62828;font-weight:bold}.muted{color:#777}\n"
        "</style></head>\n<body>\n";
    const Json& reg = j["registry"];
    bool serving = j["serving"].get<bool>();
    absl::StrAppend(&out, "<h1 id=\"app\">", Html(j["app"].get<std::string>()), " <span class=\"",
                    serving ? "ok" : "bad", "\" id=\"health\">",
                    serving ? "SERVING" : "NOT_SERVING", "</span></h1>\n<p>version ",
                    Html(j["version"].get<std::string>()));
    if (!j["zone"].get<std::string>().empty())
      absl::StrAppend(&out, ", zone ", Html(j["zone"].get<std::string>()));
    absl::StrAppend(&out, ", pid ", j["pid"].get<int64_t>(), ", up ",
                    j["uptime_seconds"].get<int64_t>(), " s; ports: gRPC ",
                    j["ports"]["grpc"].get<int>(), ", Thrift ", j["ports"]["thrift"].get<int>(),
                    ", admin ", http.port(), j["tls"].get<bool>() ? " (TLS)" : "",
                    "</p>\n<p>registry: ");
    if (reg["zookeeper"].get<std::string>().empty()) {
      out += "none (no registry.zookeeper)";
    } else {
      absl::StrAppend(
          &out, "ZooKeeper ", Html(reg["zookeeper"].get<std::string>()), " <span class=\"",
          reg["connected"].get<bool>() ? "ok\">connected" : "bad\">disconnected", "</span>",
          reg["connected"].get<bool>()
              ? std::string()
              : absl::StrCat(" for ", reg["disconnected_ms"].get<int64_t>(), " ms"),
          "; node <code>", Html(reg["path"].get<std::string>()), "</code> ",
          reg["registered"].get<bool>() ? "<span class=\"ok\">registered</span>"
                                        : "<span class=\"bad\">not registered</span>",
          "; sessions ", reg["sessions"].get<int>(), ", expirations ",
          reg["expirations"].get<int>(), ", node writes ", reg["registrations"].get<int>());
    }
    out += "</p>\n";
    auto methods_table = [&](const char* id, const Json& list, bool server) {
      absl::StrAppend(&out, "<table id=\"", id, "\"><tr><th>method</th>",
                      server ? "<th>protocol</th>" : "",
                      "<th>calls/s</th><th>errors</th><th>p50 ms</th><th>p99 ms</th>"
                      "<th>in flight</th><th>calls</th><th>by code</th></tr>\n");
      for (const Json& m : list) {
        std::string codes;
        for (const auto& [code, n] : m["by_code"].items())
          absl::StrAppend(&codes, codes.empty() ? "" : ", ", code, " ", n.get<int64_t>());
        double errors = m["error_rate"].get<double>();
        absl::StrAppend(&out, "<tr><td>", Html(m["service"].get<std::string>()), "/",
                        Html(m["method"].get<std::string>()), "</td>",
                        server ? "<td>" + Html(m["protocol"].get<std::string>()) + "</td>" : "",
                        "<td class=\"n\">", Fixed(m["rate_per_second"].get<double>(), 1),
                        "</td><td class=\"n", errors > 0 ? " bad" : "", "\">",
                        Fixed(errors * 100, 1), "%</td><td class=\"n\">",
                        Fixed(m["p50_ms"].get<double>(), 2), "</td><td class=\"n\">",
                        Fixed(m["p99_ms"].get<double>(), 2), "</td><td class=\"n\">",
                        m["in_flight"].get<int64_t>(), "</td><td class=\"n\">",
                        m["calls"].get<int64_t>(), "</td><td>", Html(codes), "</td></tr>\n");
      }
      out += "</table>\n";
    };
    absl::StrAppend(&out,
                    "<h2>Served methods</h2>\n<p class=\"muted\">rates, errors and "
                    "percentiles over the last ",
                    kWindowSeconds, " s; calls and codes since start</p>\n");
    methods_table("served", j["served_methods"], true);
    out += "<h2>Called methods</h2>\n";
    if (j["called_methods"].empty()) out += "<p class=\"muted\">none yet</p>\n";
    methods_table("called", j["called_methods"], false);
    out += "<h2>Clients</h2>\n<div id=\"clients\">\n";
    if (j["clients"].empty()) out += "<p class=\"muted\">none</p>\n";
    for (const Json& c : j["clients"]) {
      absl::StrAppend(&out, "<h3>", Html(c["service"].get<std::string>()), "</h3>\n<p>",
                      Html(c["protocol"].get<std::string>()), " to <code>",
                      Html(c["target"].get<std::string>()), "</code>; circuit ",
                      c["circuit_open"].get<bool>() ? "<span class=\"bad\">open</span>" : "closed",
                      "; retries ", c["retries"].get<int64_t>(), " (",
                      c["retries_refused"].get<int64_t>(),
                      " refused by the budget), fast failures ", c["fast_failures"].get<int64_t>(),
                      ", fallbacks ", c["fallbacks"].get<int64_t>(), ", hedges ",
                      c["hedges"].get<int64_t>(), "</p>\n");
      if (c.contains("migration")) {
        const Json& m = c["migration"];
        const Json& s = m["shadow"];
        absl::StrAppend(
            &out, "<p>migration mode <b>", Html(m["mode"].get<std::string>()), "</b> (",
            Html(m["source"].get<std::string>()), "; ", m["switches"].get<int64_t>(),
            " switches): ", m["local_calls"].get<int64_t>(), " calls local (",
            m["local_fallbacks"].get<int64_t>(), " fallbacks), ", m["remote_calls"].get<int64_t>(),
            " remote; shadow: ", s["calls"].get<int64_t>(), " compared, ",
            s["mismatches"].get<int64_t>() > 0 ? "<span class=\"bad\">" : "<span>",
            s["mismatches"].get<int64_t>(), " mismatches</span>, ", s["errors"].get<int64_t>(),
            " unanswered, ", s["skipped"].get<int64_t>(), " skipped</p>\n");
        for (const Json& line : m["recent_mismatches"])
          absl::StrAppend(&out, "<p class=\"muted\"><code>", Html(line.get<std::string>()),
                          "</code></p>\n");
      }
      absl::StrAppend(&out,
                      "<table class=\"instances\"><tr><th>instance</th><th>state</th>"
                      "<th>in flight</th><th>calls sent</th><th>ejections</th></tr>\n");
      for (const Json& i : c["instances"]) {
        std::string state = i["state"].get<std::string>();
        absl::StrAppend(&out, "<tr><td>", Html(i["address"].get<std::string>()),
                        "</td><td class=\"", state == "healthy" ? "ok" : "bad", "\">", Html(state),
                        "</td><td class=\"n\">", i["in_flight"].get<int>(), "</td><td class=\"n\">",
                        i["picks"].get<int64_t>(), "</td><td class=\"n\">",
                        i["ejections"].get<int>(), "</td></tr>\n");
      }
      if (c["instances"].empty())
        out += "<tr><td colspan=\"5\" class=\"bad\">no instance known</td></tr>\n";
      out += "</table>\n";
    }
    out +=
        "</div>\n<h2>Recent failed calls</h2>\n<table id=\"failures\"><tr><th>time (UTC)</th>"
        "<th>side</th><th>method</th><th>peer</th><th>code</th><th>message</th></tr>\n";
    const Json& failures = j["recent_failures"];
    for (auto it = failures.rbegin(); it != failures.rend(); ++it) {
      const Json& f = *it;
      absl::StrAppend(&out, "<tr><td>", Html(f["time"].get<std::string>()), "</td><td>",
                      Html(f["side"].get<std::string>()), "</td><td>",
                      Html(f["service"].get<std::string>()), "/",
                      Html(f["method"].get<std::string>()), "</td><td>",
                      Html(f["peer"].get<std::string>()), "</td><td class=\"bad\">",
                      Html(f["code"].get<std::string>()), "</td><td>",
                      Html(f["message"].get<std::string>()), "</td></tr>\n");
    }
    if (failures.empty()) out += "<tr><td colspan=\"6\" class=\"muted\">none</td></tr>\n";
    out +=
        "</table>\n<h2>Recent traced calls</h2>\n<p class=\"muted\">spans recorded by "
        "sampling (tracing.sample_rate) or at a caller's request, newest first</p>\n"
        "<table id=\"spans\"><tr><th>start (UTC)</th><th>trace</th><th>span</th>"
        "<th>parent</th><th>kind</th><th>method</th><th>ms</th><th>code</th></tr>\n";
    const Json& spans = j["recent_spans"];
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      const Json& sp = *it;
      std::string code = sp["code"].get<std::string>();
      absl::StrAppend(&out, "<tr><td>", Html(sp["time"].get<std::string>()), "</td><td><code>",
                      Html(sp["trace_id"].get<std::string>()), "</code></td><td><code>",
                      Html(sp["span_id"].get<std::string>()), "</code></td><td><code>",
                      Html(sp["parent_span_id"].get<std::string>()), "</code></td><td>",
                      Html(sp["kind"].get<std::string>()), "</td><td>",
                      Html(sp["name"].get<std::string>()), "</td><td class=\"n\">",
                      Fixed(sp["duration_ms"].get<double>(), 2), "</td><td",
                      code == "OK" ? ">" : " class=\"bad\">", Html(code), "</td></tr>\n");
    }
    if (spans.empty()) out += "<tr><td colspan=\"8\" class=\"muted\">none yet</td></tr>\n";
    out +=
        "</table>\n<h2>Application metrics</h2>\n<table id=\"app_metrics\"><tr><th>metric</th>"
        "<th>labels</th><th>type</th><th>value</th></tr>\n";
    for (const Json& m : j["app_metrics"]) {
      std::string labels;
      for (const auto& [name, value] : m["labels"].items())
        absl::StrAppend(&labels, labels.empty() ? "" : ", ", name, "=", value.get<std::string>());
      const Json& value = m["value"];
      absl::StrAppend(&out, "<tr><td>", Html(m["name"].get<std::string>()), "</td><td>",
                      Html(labels), "</td><td>", Html(m["type"].get<std::string>()),
                      "</td><td class=\"n\">",
                      Html(value.is_number() ? Quantity(value.get<double>()) : std::string("NaN")),
                      "</td></tr>\n");
    }
    if (j["app_metrics"].empty()) {
      out +=
          "<tr><td colspan=\"4\" class=\"muted\">none (rpcboot/metrics.h: GetCounter, "
          "AddGauge)</td></tr>\n";
    }
    out +=
        "</table>\n<h2>Configuration</h2>\n<table id=\"config\"><tr><th>key</th><th>value</th>"
        "</tr>\n";
    for (const Json& kv : j["config"]) {
      absl::StrAppend(&out, "<tr><td>", Html(kv["key"].get<std::string>()), "</td><td>",
                      Html(kv["value"].get<std::string>()), "</td></tr>\n");
    }
    absl::StrAppend(
        &out,
        "</table>\n<p><a href=\"/metrics\">/metrics</a> (Prometheus) &middot; "
        "<a href=\"/status.json\">/status.json</a> &middot; <a href=\"/health\">/health</a> "
        "&middot; <label><input type=\"checkbox\" id=\"live\" checked> refresh every 5 s"
        "</label></p>\n"
        "<script>\n"
        "setInterval(async () => {\n"
        "  if (!document.getElementById('live').checked) return;\n"
        "  try {\n"
        "    const page = await (await fetch('/')).text();\n"
        "    const doc = new DOMParser().parseFromString(page, 'text/html');\n"
        "    doc.getElementById('live').checked = true;\n"
        "    document.body.replaceWith(doc.body);\n"
        "  } catch (e) {}\n"
        "}, 5000);\n"
        "</script>\n</body></html>\n");
    return out;
  }

  std::string Metrics() {
    MetricWriter out;
    MetricsRegistry::Get().Collect(out);
    AdminInfo info = info_();
    using Type = MetricWriter::Type;
    MetricWriter::Labels app{{"app", info.app}, {"version", info.version}};
    out.Add("rpcboot_info", Type::kGauge, "This instance: 1, labelled with its app and version.",
            app, 1);
    out.Add("rpcboot_serving", Type::kGauge, "1 while the instance serves, 0 while it drains.", {},
            info.serving ? 1 : 0);
    if (!info.zookeeper.empty()) {
      out.Add("rpcboot_zookeeper_connected", Type::kGauge,
              "1 while the ZooKeeper session is connected.", {}, info.zookeeper_connected ? 1 : 0);
      out.Add("rpcboot_zookeeper_sessions_total", Type::kCounter,
              "ZooKeeper sessions established (each expiry starts one more).", {},
              info.zookeeper_sessions);
      out.Add("rpcboot_zookeeper_expirations_total", Type::kCounter,
              "ZooKeeper sessions found expired or presumed lost.", {}, info.zookeeper_expirations);
      out.Add("rpcboot_registry_registered", Type::kGauge,
              "1 while this instance's node is in place.", {}, info.registered ? 1 : 0);
      out.Add("rpcboot_registry_writes_total", Type::kCounter,
              "Times this instance's node was written (more than 1: re-registrations).", {},
              info.registrations);
    }
    for (const AdminInfo::Client& c : info.clients) {
      MetricWriter::Labels svc{{"service", c.service}};
      int healthy = 0;
      for (const ChannelState::Instance& i : c.state.instances) healthy += i.healthy ? 1 : 0;
      out.Add("rpcboot_client_instances", Type::kGauge, "Instances a client sees.", svc,
              static_cast<double>(c.state.instances.size()));
      out.Add("rpcboot_client_healthy_instances", Type::kGauge,
              "Instances a client sees that are neither ejected nor backing off.", svc, healthy);
      out.Add("rpcboot_client_circuit_open", Type::kGauge, "1 while a client's circuit is open.",
              svc, c.state.circuit_open ? 1 : 0);
      out.Add("rpcboot_client_retries_total", Type::kCounter,
              "Retries and failovers a client sent.", svc, static_cast<double>(c.state.retries));
      out.Add("rpcboot_client_retries_refused_total", Type::kCounter,
              "Retries not sent: the retry budget was spent.", svc,
              static_cast<double>(c.state.retries_refused));
      out.Add("rpcboot_client_fast_failures_total", Type::kCounter,
              "Calls refused by the open circuit or max_in_flight.", svc,
              static_cast<double>(c.state.fast_failures));
      out.Add("rpcboot_client_fallbacks_total", Type::kCounter,
              "Calls answered by a fallback implementation.", svc,
              static_cast<double>(c.state.fallbacks));
      out.Add("rpcboot_client_hedges_total", Type::kCounter, "Backup requests sent.", svc,
              static_cast<double>(c.state.hedges));
      if (const MigrationStats* m = c.state.migration.get()) {
        out.Add("rpcboot_migration_mode", Type::kGauge,
                "1 for the migration mode a client is in (local, remote, shadow:..., percent:N).",
                {{"service", c.service}, {"mode", m->mode.ToString()}}, 1);
        out.Add("rpcboot_migration_switches_total", Type::kCounter,
                "Migration mode changes (config, flag node, admin).", svc,
                static_cast<double>(m->switches));
        for (auto [side, n] : {std::pair{"local", m->local_calls}, {"remote", m->remote_calls}}) {
          out.Add("rpcboot_migration_calls_total", Type::kCounter,
                  "Calls answered by each side of a migration.",
                  {{"service", c.service}, {"side", side}}, static_cast<double>(n));
        }
        out.Add("rpcboot_migration_local_fallbacks_total", Type::kCounter,
                "Remote calls never sent that the local side served (fallback_to_local).", svc,
                static_cast<double>(m->local_fallbacks));
        for (const auto& [method, s] : m->shadow_by_method) {
          for (auto [result, n] : {std::pair{"match", s.matches},
                                   {"mismatch", s.mismatches},
                                   {"error", s.errors},
                                   {"skipped", s.skipped},
                                   {"unsafe", s.unsafe}}) {
            out.Add("rpcboot_migration_shadow_total", Type::kCounter,
                    "Shadow calls by result: match, mismatch, error (no answer), skipped (over "
                    "the cap), unsafe (not idempotent: not sent).",
                    {{"service", c.service}, {"method", method}, {"result", result}},
                    static_cast<double>(n));
          }
        }
      }
      for (const ChannelState::Instance& i : c.state.instances) {
        MetricWriter::Labels inst{{"service", c.service}, {"instance", i.address}};
        out.Add("rpcboot_client_instance_picks_total", Type::kCounter,
                "Calls (attempts) a client sent to an instance.", inst,
                static_cast<double>(i.picks));
        out.Add("rpcboot_client_instance_ejected", Type::kGauge,
                "1 while an instance is ejected as an outlier.", inst, i.ejected ? 1 : 0);
      }
    }
    return out.Text();
  }

  std::function<AdminInfo()> info_;
  std::function<bool()> serving_;
  std::chrono::steady_clock::time_point start_;
  // The answer to a GET of `path`.
  AdminHttp::Reply Route(std::string_view path);

  AdminHttp http{[this](std::string_view path) { return Route(path); }};
  std::thread sampler;

 private:
  struct Snapshot {
    std::chrono::steady_clock::time_point at;
    std::map<const CallStats*, CallCounts> counts;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::deque<Snapshot> samples_;

 public:
  void StopSampler() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (sampler.joinable()) sampler.join();
  }
};

AdminServer::AdminServer(std::function<AdminInfo()> info, std::function<bool()> serving)
    : impl_(std::make_unique<Impl>(std::move(info), std::move(serving))) {}

AdminServer::~AdminServer() { Stop(); }

AdminHttp::Reply AdminServer::Impl::Route(std::string_view path) {
  if (path == "/") return {200, "text/html; charset=utf-8", Page()};
  if (path == "/status.json") {
    // Text from peers (error messages, addresses) need not be UTF-8: such bytes become U+FFFD.
    return {200, "application/json",
            StatusJson().dump(2, ' ', false, Json::error_handler_t::replace)};
  }
  if (path == "/metrics") return {200, "text/plain; version=0.0.4; charset=utf-8", Metrics()};
  if (path == "/health" || path == "/health.json") {
    const bool serving = serving_();
    const char* word = serving ? "SERVING" : "NOT_SERVING";
    if (path == "/health.json") {
      return {serving ? 200 : 503, "application/json", Json{{"status", word}}.dump()};
    }
    return {serving ? 200 : 503, "text/plain; charset=utf-8", std::string(word) + "\n"};
  }
  return {404, "text/plain; charset=utf-8",
          absl::StrCat("rpcboot admin: no page ", Printable(path),
                       " (pages: /, /status.json, /metrics, /health, /health.json)\n")};
}

absl::Status AdminServer::Start(const std::string& host, int port) {
  Impl& impl = *impl_;
  if (absl::Status started = impl.http.Start(host, port); !started.ok()) return started;
  try {
    impl.sampler = std::thread([&impl] { impl.Sample(); });
  } catch (const std::system_error& e) {
    impl.http.Stop();
    return absl::ResourceExhaustedError(
        absl::StrCat("admin.port: cannot start its sampling thread: ", e.what()));
  }
  Log(LogLevel::kInfo,
      absl::StrCat("admin: status page http://", host == "0.0.0.0" ? "127.0.0.1" : host, ":",
                   impl.http.port(), "/ (metrics: /metrics)"));
  return absl::OkStatus();
}

void AdminServer::Stop() {
  if (!impl_) return;
  impl_->http.Stop();
  impl_->StopSampler();
}

int AdminServer::port() const { return impl_->http.port(); }

std::string AdminServer::StatusPage() { return impl_->Page(); }
std::string AdminServer::StatusJson() {
  return impl_->StatusJson().dump(2, ' ', false, Json::error_handler_t::replace);
}
std::string AdminServer::Metrics() { return impl_->Metrics(); }

}  // namespace rpcboot::internal
