// Files named from outside are read whole up to a bound, and past it refused without reading on.
#include "rpcboot/base/internal/read_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace rpcboot::internal {
namespace {

std::string Write(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "read_file_test_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(ReadFileUpTo, AFileAtTheBoundIsReadAndOneByteMoreIsTooLarge) {
  std::string out;
  EXPECT_EQ(ReadFileUpTo(Write("at", std::string(10000, 'a')), 10000, &out), ReadFileResult::kOk);
  EXPECT_EQ(out, std::string(10000, 'a'));
  EXPECT_EQ(ReadFileUpTo(Write("over", std::string(10001, 'b')), 10000, &out),
            ReadFileResult::kTooLarge);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(ReadFileUpTo(Write("empty", ""), 10000, &out), ReadFileResult::kOk);
  EXPECT_TRUE(out.empty());
}

TEST(ReadFileUpTo, DevicesPipesDirectoriesAndMissingFiles) {
  std::string out;
  EXPECT_EQ(ReadFileUpTo("/dev/zero", 1 << 20, &out), ReadFileResult::kTooLarge);
  EXPECT_EQ(ReadFileProblem(ReadFileResult::kTooLarge, 1 << 20), "is larger than 1 MiB");
  EXPECT_EQ(ReadFileProblem(ReadFileResult::kTooLarge, 64 << 10), "is larger than 64 KiB");
  EXPECT_EQ(ReadFileUpTo("/dev/null", 100, &out), ReadFileResult::kOk);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(ReadFileUpTo("/", 100, &out), ReadFileResult::kIsDirectory);
  EXPECT_EQ(ReadFileProblem(ReadFileResult::kIsDirectory, 100), "is a directory, not a file");
  EXPECT_EQ(ReadFileUpTo("/nonexistent/file", 100, &out), ReadFileResult::kCannotRead);
  EXPECT_EQ(ReadFileProblem(ReadFileResult::kCannotRead, 100), "cannot be read");

  // A pipe's size is unknown: what it holds is read as it arrives, across several reads.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string sent(50000, 'p');
  ASSERT_EQ(::write(fds[1], sent.data(), 40000), 40000);
  ASSERT_EQ(::write(fds[1], sent.data() + 40000, 10000), 10000);
  ::close(fds[1]);
  EXPECT_EQ(ReadFileUpTo("/proc/self/fd/" + std::to_string(fds[0]), 60000, &out),
            ReadFileResult::kOk);
  ::close(fds[0]);
  EXPECT_EQ(out, sent);
}

}  // namespace
}  // namespace rpcboot::internal
