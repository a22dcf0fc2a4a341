// A real implementation of the rich test interface, shared by proxy, server and interop tests.
#ifndef RPCBOOT_TESTS_RPCBOOT_RICH_SERVICE_IMPL_H_
#define RPCBOOT_TESTS_RPCBOOT_RICH_SERVICE_IMPL_H_

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "rich_service.h"
#include "rpcboot/server_context.h"
#include "rpcboot/status.h"

namespace rpcboot::testing {

class RichServiceImpl : public rich::RichService {
 public:
  rich::Everything Echo(const rich::EchoRequest& request) override { return request.value; }
  rich::Scalars EchoScalars(rich::Scalars scalars) override { return scalars; }
  // id < 0: an RpcError the caller must see as is; id == 0: a plain exception (INTERNAL);
  // id == kHeld: the handler counts itself in (WaitEntered) and waits for Release();
  // id == 1000 + n: sleeps n milliseconds (deadline tests: the caller gives up first).
  static constexpr int64_t kHeld = 3;
  // A message "reply:<key>=<value>" adds that to the reply's metadata first (kept on errors).
  void Notify(int64_t id, const std::string& message, rich::Color color) override {
    if (message.rfind("reply:", 0) == 0 && !AddReplyMetadata(message.substr(6)).ok()) {
      throw RpcError(StatusCode::kInvalidArgument, "reply metadata refused");
    }
    if (id < 0)
      throw RpcError(StatusCode::kFailedPrecondition, "negative id " + std::to_string(id));
    if (id == 0) throw std::runtime_error("boom: " + message);
    if (id == kHeld) Hold();
    if (id >= 1000) std::this_thread::sleep_for(std::chrono::milliseconds(id - 1000));
    if (const ServerContext* call = ServerContext::Current())
      seen_remaining_ms = call->remaining().count();
    last_color = color;
    std::lock_guard<std::mutex> lock(latch_mu_);
    notified++;
    latch_cv_.notify_all();
  }
  int64_t Count() override { return ++count; }
  std::vector<rich::Point> Path(const std::vector<rich::Point>& points, bool reversed) override {
    std::vector<rich::Point> out = points;
    if (reversed) std::reverse(out.begin(), out.end());
    return out;
  }
  // Counts the words, and each entry of the caller's metadata as the word
  // "metadata:<key>=<value>" (a "-bin" key's value in hex): what the handler was given. A word
  // "reply:<key>=<value>" (hex again for "-bin") is also added to the reply's metadata; one the
  // server refuses counts as "refused:<why>".
  std::map<std::string, int32_t> Histogram(std::vector<std::string> words) override {
    std::map<std::string, int32_t> h;
    for (const auto& w : words) {
      h[w]++;
      if (w.rfind("reply:", 0) != 0) continue;
      if (absl::Status s = AddReplyMetadata(w.substr(6)); !s.ok()) {
        h["refused:" + std::string(s.message())]++;
      }
    }
    if (const ServerContext* call = ServerContext::Current()) {
      for (const auto& [key, value] : call->metadata()) {
        std::string shown = value;
        if (key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0) {
          shown.clear();
          for (unsigned char c : value) {
            shown += "0123456789abcdef"[c >> 4];
            shown += "0123456789abcdef"[c & 15];
          }
        }
        h["metadata:" + key + "=" + shown]++;
      }
    }
    return h;
  }
  rich::Color Mix(rich::Color a, rich::Color b) override { return a == b ? a : rich::Color::kBlue; }
  std::vector<std::vector<int32_t>> Transpose(const std::vector<std::vector<int32_t>>& m) override {
    std::vector<std::vector<int32_t>> t;
    for (std::size_t r = 0; r < m.size(); ++r) {
      for (std::size_t c = 0; c < m[r].size(); ++c) {
        if (t.size() <= c) t.resize(c + 1);
        t[c].push_back(m[r][c]);
      }
    }
    return t;
  }
  rich::Stamp Now() override { return rich::Stamp{1795422103, 964000000, "UTC"}; }
  int64_t PlaceOrder(const rich::Order& order) override {
    int64_t total = 0;
    for (const auto& line : order.lines) total += line.quantity;
    return total;
  }
  std::optional<std::string> Lookup(std::optional<int64_t> key) override {
    if (!key || *key < 0) return std::nullopt;
    return "key " + std::to_string(*key);
  }
  std::optional<rich::Point> Nearest(const std::optional<rich::Point>& origin) override {
    if (!origin) return std::nullopt;
    rich::Point p = *origin;
    p.x += 1;
    return p;
  }

  static absl::Status AddReplyMetadata(const std::string& entry) {
    std::size_t equals = entry.find('=');
    std::string key = entry.substr(0, equals);
    std::string value = equals == std::string::npos ? "" : entry.substr(equals + 1);
    if (key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0) {
      std::string bytes;
      for (std::size_t i = 0; i + 1 < value.size(); i += 2) {
        bytes += static_cast<char>(std::stoi(value.substr(i, 2), nullptr, 16));
      }
      value = bytes;
    }
    return ServerContext::AddReplyMetadata(key, value);
  }

  // True once n held handlers have started (false after 10 s: the test fails, never hangs).
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(latch_mu_);
    return latch_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
  }
  // Lets every held handler, present and future, finish.
  void Release() {
    std::lock_guard<std::mutex> lock(latch_mu_);
    released_ = true;
    latch_cv_.notify_all();
  }
  // True once n calls of Notify have returned normally (false after 10 s).
  bool WaitNotified(int64_t n) {
    std::unique_lock<std::mutex> lock(latch_mu_);
    return latch_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return notified >= n; });
  }

  std::atomic<int64_t> count{0};
  std::atomic<int64_t> notified{0};
  std::atomic<rich::Color> last_color{rich::Color::kRed};
  std::atomic<int64_t> seen_remaining_ms{-1};

 private:
  void Hold() {
    std::unique_lock<std::mutex> lock(latch_mu_);
    ++entered_;
    latch_cv_.notify_all();
    latch_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
  }

  std::mutex latch_mu_;
  std::condition_variable latch_cv_;
  int entered_ = 0;
  bool released_ = false;
};

class AdminServiceImpl : public rich::AdminService {
 public:
  void Reset() override { resets++; }
  std::string Version() const override { return "1.2.3"; }
  rich::Level SetLevel(rich::Level level) override { return level; }
  rich::Limits EchoLimits(const rich::Limits& limits) override { return limits; }
  std::atomic<int> resets{0};
};

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_RICH_SERVICE_IMPL_H_
