// rpcboot-codegen --check-compat on a table of changes: each is emitted as version 1, changed,
// and checked against version 1's .proto; breaking ones fail with the expected sentence,
// compatible ones pass.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "codegen_runner.h"

namespace rpcboot::testing {
namespace {

struct Case {
  const char* name;
  const char* before;                 // the body of namespace shop, version 1
  const char* after;                  // version 2
  std::vector<std::string> expected;  // each must appear; none: compatible
  const char* package_after = "shop";
};

const char* kService = R"(
class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  virtual Shop Get(int64_t id) = 0;
  virtual void Close(int64_t id, std::string reason) = 0;
};
)";

std::string Header(const std::string& package, const std::string& body, bool with_service) {
  return "#include <cstdint>\n#include <optional>\n#include <string>\n#include <vector>\n"
         "#include \"rpcboot/annotations.h\"\nnamespace " +
         package + " {\n" + body + (with_service ? kService : "") + "}\n";
}

CodegenRun Check(const Case& c, const std::string& dir) {
  std::filesystem::create_directories(dir + "/v1");
  WriteFile(dir + "/shop.h", Header("shop", c.before, true));
  CodegenRun v1 =
      RunCodegen({"-o", dir + "/v1", "-I", std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
  EXPECT_EQ(v1.exit_code, 0) << v1.output;
  std::string after = c.after;
  bool own_service = after.find("RPCBOOT_SERVICE") != std::string::npos;
  WriteFile(dir + "/shop.h", Header(c.package_after, after, !own_service));
  return RunCodegen({"--check-compat", dir + "/v1/shop.proto", "-I",
                     std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
}

const char* kV1 = R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; };
)";

const Case kCases[] = {
    {"added_field",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; std::string city; };
)",
     {}},
    {"added_enum_value_and_method",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone, kPaused };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; };
class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  virtual Shop Get(int64_t id) = 0;
  virtual void Close(int64_t id, std::string reason) = 0;
  virtual void Open(int64_t id) = 0;
};
)",
     {}},
    {"ids_keep_a_reordered_struct_compatible",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { RPCBOOT_ID(4) Status status = Status::kOpen; RPCBOOT_ID(2) std::string name; RPCBOOT_ID(1) int64_t id = 0; RPCBOOT_ID(3) std::vector<int32_t> tags; };
)",
     {}},
    {"removed_field_with_reserved_id",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct RPCBOOT_RESERVED(3) Shop { RPCBOOT_ID(1) int64_t id = 0; RPCBOOT_ID(2) std::string name; RPCBOOT_ID(4) Status status = Status::kOpen; };
)",
     {}},
    {"optional_added_to_a_field",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::optional<std::string> name; std::vector<int32_t> tags; Status status = Status::kOpen; };
)",
     {}},
    {"removed_field_without_reserving",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { RPCBOOT_ID(1) int64_t id = 0; RPCBOOT_ID(2) std::string name; RPCBOOT_ID(4) Status status = Status::kOpen; };
)",
     {"field 3 'tags' of Shop was removed without reserving its id"}},
    {"reordered_without_ids",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { std::string name; int64_t id = 0; std::vector<int32_t> tags; Status status = Status::kOpen; };
)",
     {"field 1 'id' of Shop is now named 'name'",
      "field 1 'id' of Shop changed type from 'int64' to 'string'"}},
    {"changed_field_type",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::string name; std::vector<int64_t> tags; Status status = Status::kOpen; };
)",
     {"field 3 'tags' of Shop changed type from 'repeated int32' to 'repeated int64'"}},
    {"changed_parameter_type",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; };
class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  virtual Shop Get(std::string id) = 0;
  virtual void Close(int64_t id, std::string reason) = 0;
};
)",
     {"field 1 'id' of GetRequest changed type from 'int64' to 'string'"}},
    {"removed_method",
     kV1,
     R"(
enum class Status { kOpen, kClosed, kGone };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; };
class RPCBOOT_SERVICE ShopService {
 public:
  virtual ~ShopService() = default;
  virtual Shop Get(int64_t id) = 0;
};
)",
     {"method ShopService.Close was removed"}},
    {"removed_enum_value",
     kV1,
     R"(
enum class Status { kOpen, kClosed };
struct Shop { int64_t id = 0; std::string name; std::vector<int32_t> tags; Status status = Status::kOpen; };
)",
     {"value STATUS_GONE = 2 of enum Status was removed"}},
    {"changed_package", kV1, kV1, {"package changed from 'shop' to 'shop2'"}, "shop2"},
};

class CheckCompat : public ::testing::TestWithParam<Case> {};

TEST_P(CheckCompat, ReportsExactlyTheBreakingChanges) {
  const Case& c = GetParam();
  CodegenRun run = Check(c, MakeTempDir(std::string("compat_") + c.name));
  if (c.expected.empty()) {
    EXPECT_EQ(run.exit_code, 0) << run.output;
    EXPECT_NE(run.output.find("compatible with"), std::string::npos) << run.output;
    return;
  }
  EXPECT_EQ(run.exit_code, 1) << run.output;
  for (const std::string& phrase : c.expected) {
    EXPECT_NE(run.output.find("error: breaking change against"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find(phrase), std::string::npos) << "expected '" << phrase << "' in:\n"
                                                          << run.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Changes, CheckCompat, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return std::string(param.param.name);
                         });

TEST(CheckCompatCli, AMissingPreviousFileIsAClearError) {
  std::string dir = MakeTempDir("compat_missing");
  WriteFile(dir + "/shop.h", Header("shop", kV1, true));
  CodegenRun run = RunCodegen({"--check-compat", dir + "/nowhere.proto", "-I",
                               std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("--check-compat: cannot read '" + dir + "/nowhere.proto'"),
            std::string::npos)
      << run.output;
}

TEST(CheckCompatCli, APreviousFileThatIsNotProtoIsAClearError) {
  std::string dir = MakeTempDir("compat_garbage");
  WriteFile(dir + "/shop.h", Header("shop", kV1, true));
  WriteFile(dir + "/old.proto", "this is { not proto");
  CodegenRun run = RunCodegen({"--check-compat", dir + "/old.proto", "-I",
                               std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("--check-compat: " + dir + "/old.proto:1:"), std::string::npos)
      << run.output;
}

// The previous file is read with a bound: a device given by mistake is an error, not a process
// that reads until memory runs out.
TEST(CheckCompatCli, APreviousFileIsReadUpTo64Mebibytes) {
  std::string dir = MakeTempDir("compat_endless");
  WriteFile(dir + "/shop.h", Header("shop", kV1, true));
  CodegenRun run = RunCodegen(
      {"--check-compat", "/dev/zero", "-I", std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("--check-compat: '/dev/zero' is larger than 64 MiB"), std::string::npos)
      << run.output;
}

// Messages nested 100,000 deep in 1.3 MB would take protobuf's parser minutes and gigabytes
// (each nested message's full name); the nesting is refused in one pass instead.
TEST(CheckCompatCli, APreviousFileNestedThousandsDeepIsAClearError) {
  std::string dir = MakeTempDir("compat_nested");
  WriteFile(dir + "/shop.h", Header("shop", kV1, true));
  std::string proto = "syntax = \"proto3\";\n";
  for (int i = 0; i < 100000; ++i) proto += "message M" + std::to_string(i) + " {";
  proto += std::string(100000, '}') + "\n";
  WriteFile(dir + "/old.proto", proto);
  CodegenRun run = RunCodegen({"--check-compat", dir + "/old.proto", "-I",
                               std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("--check-compat: " + dir +
                            "/old.proto:2:2704: declarations nested more than 200 deep"),
            std::string::npos)
      << run.output;
}

TEST(CheckCompatCli, ADirectoryAndTheThriftPathWork) {
  std::string dir = MakeTempDir("compat_dir");
  WriteFile(dir + "/shop.h", Header("shop", kV1, true));
  std::filesystem::create_directories(dir + "/v1");
  ASSERT_EQ(RunCodegen({"-o", dir + "/v1", "-I", std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"})
                .exit_code,
            0);
  for (const std::string& previous : {dir + "/v1", dir + "/v1/shop.thrift"}) {
    CodegenRun run = RunCodegen(
        {"--check-compat", previous, "-I", std::string(RPCBOOT_SOURCE_DIR), dir + "/shop.h"});
    EXPECT_EQ(run.exit_code, 0) << previous << ": " << run.output;
  }
}

}  // namespace
}  // namespace rpcboot::testing
