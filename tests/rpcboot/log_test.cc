// rpcboot's log lines go to a sink the program installs, from every part of the library.
#include "rpcboot/base/log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "rich_service.rpcboot.h"
#include "rich_service_impl.h"
#include "rpcboot/server.h"

namespace rpcboot {
namespace {

struct Captured {
  std::mutex mu;
  std::vector<std::pair<LogLevel, std::string>> lines;

  bool Has(LogLevel level, const std::string& part) {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [l, text] : lines)
      if (l == level && text.find(part) != std::string::npos) return true;
    return false;
  }
};

class LogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([this](LogLevel level, std::string_view message) {
      std::lock_guard<std::mutex> lock(captured_.mu);
      captured_.lines.emplace_back(level, std::string(message));
    });
  }
  void TearDown() override { SetLogSink(nullptr); }
  Captured captured_;
};

TEST_F(LogSinkTest, LinesGoToTheInstalledSink) {
  internal::Log(LogLevel::kWarning, "a warning for the sink");
  EXPECT_TRUE(captured_.Has(LogLevel::kWarning, "a warning for the sink"));
}

TEST_F(LogSinkTest, TheServerLogsThroughTheSink) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.thrift_port = 0;
  Server server(options);
  server.AddService<rich::RichService>(std::make_shared<testing::RichServiceImpl>());
  ASSERT_TRUE(server.Start().ok());
  EXPECT_TRUE(captured_.Has(
      LogLevel::kInfo, "Thrift listening on 127.0.0.1:" + std::to_string(server.thrift_port())));
}

TEST_F(LogSinkTest, AnEmptySinkRestoresStderr) {
  SetLogSink(nullptr);
  ::testing::internal::CaptureStderr();
  internal::Log(LogLevel::kError, "back on stderr");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("rpcboot: back on stderr"), std::string::npos) << err;
  EXPECT_EQ(err.rfind("E ", 0), 0u) << err;
  EXPECT_FALSE(captured_.Has(LogLevel::kError, "back on stderr"));
}

// One event is one line on stderr: a newline or an escape sequence inside a message (from a
// peer's bytes, a registration) is written escaped, so it can neither forge a line nor reach the
// terminal.
TEST_F(LogSinkTest, StderrLinesHoldNoControlCharacters) {
  SetLogSink(nullptr);
  ::testing::internal::CaptureStderr();
  internal::Log(LogLevel::kWarning,
                "peer said 'a\nE 2026-01-01T00:00:00.000Z rpcboot: forged\x1b[2J'");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(
      err.find("rpcboot: peer said 'a\\x0aE 2026-01-01T00:00:00.000Z rpcboot: forged\\x1b[2J'\n"),
      std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.find('\x1b'), std::string::npos) << err;
}

// The lines a fresh process writes with RPCBOOT_LOG_LEVEL=`value` after logging an info line and
// a warning line, joined by '|'. Run in a death test's child: the level is read once per process.
std::string LinesWrittenWith(const char* value) {
  ::setenv("RPCBOOT_LOG_LEVEL", value, 1);
  std::string lines;
  SetLogSink([&lines](LogLevel, std::string_view message) { lines.append(message).append("|"); });
  internal::Log(LogLevel::kInfo, "an info line");
  internal::Log(LogLevel::kWarning, "a warning line");
  SetLogSink(nullptr);
  return lines;
}

TEST(LogLevel, TheEnvironmentSetsTheLeastSevereLevelWritten) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(std::exit(LinesWrittenWith("warning") == "a warning line|" ? 0 : 1),
              ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(std::exit(LinesWrittenWith("WARNING") == "a warning line|" ? 0 : 1),
              ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(std::exit(LinesWrittenWith("info") == "an info line|a warning line|" ? 0 : 1),
              ::testing::ExitedWithCode(0), "");
}

TEST(LogLevel, AValueThatNamesNoLevelIsSaidOnceAndInfoIsWritten) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      std::exit(LinesWrittenWith("loud") ==
                        "RPCBOOT_LOG_LEVEL: 'loud' is not info, warning or error; writing info and "
                        "above|an info line|a warning line|"
                    ? 0
                    : 1),
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace rpcboot
