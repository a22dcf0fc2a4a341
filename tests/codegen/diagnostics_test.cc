// Bad input to rpcboot-codegen: each case gets `file:line:col: error: ...` naming the construct
// and what to write instead, a non-zero exit, and no output files.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "codegen_runner.h"

namespace rpcboot::testing {
namespace {

struct Expected {
  std::string location;  // "bad.h:7:3"
  CodegenRun run;
  std::string out_dir;
};

// Writes `source` as <name>.h; '@' marks where the error must point (it is removed). Runs
// codegen on it.
Expected RunOn(const std::string& name, std::string source) {
  std::size_t at = source.find('@');
  unsigned line = 1, col = 1;
  for (std::size_t i = 0; i < at; ++i) {
    if (source[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  if (at != std::string::npos) source.erase(at, 1);
  std::string dir = MakeTempDir("diag_" + name);
  std::string header = dir + "/" + name + ".h";
  WriteFile(
      header,
      "#include <cstdint>\n#include <map>\n#include <optional>\n#include <set>\n#include <string>\n"
      "#include <vector>\n#include \"rpcboot/annotations.h\"\n" +
          source);
  Expected e;
  e.location = name + ".h:" + std::to_string(line + 7) + ":" + std::to_string(col) + ": error: ";
  e.out_dir = dir + "/out";
  std::filesystem::create_directories(e.out_dir);
  e.run = RunCodegen({"-o", e.out_dir, "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  return e;
}

void ExpectError(const Expected& e, const std::string& phrase) {
  EXPECT_EQ(e.run.exit_code, 1) << e.run.output;
  EXPECT_NE(e.run.output.find(e.location), std::string::npos)
      << "expected an error at " << e.location << ", got:\n"
      << e.run.output;
  EXPECT_NE(e.run.output.find(phrase), std::string::npos) << "expected '" << phrase << "' in:\n"
                                                          << e.run.output;
  EXPECT_TRUE(std::filesystem::is_empty(e.out_dir)) << "no files are written when there are errors";
}

TEST(CodegenDiagnostics, PointerMember) {
  ExpectError(RunOn("pointer_member", R"(
struct Item { int64_t id; Item* @next_item; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Item Get(int64_t id) = 0; };
)"),
              "pointers cannot cross the wire; hold the value itself, std::optional<T>");
}

TEST(CodegenDiagnostics, ReferenceMember) {
  ExpectError(RunOn("reference_member", R"(
struct Item { const std::string& @name; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item item) = 0; };
)"),
              "references cannot cross the wire; hold the value itself");
}

TEST(CodegenDiagnostics, StructWithBaseClass) {
  ExpectError(RunOn("base_class", R"(
struct Base { int32_t a; };
struct Derived : @Base { int32_t b; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Derived d) = 0; };
)"),
              "struct 'Derived' has a base class");
}

TEST(CodegenDiagnostics, StructWithConstructor) {
  ExpectError(RunOn("constructor", R"(
struct Money {
  @Money(int64_t c) : cents(c) {}
  int64_t cents;
};
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Money Price() = 0; };
)"),
              "declares a constructor; rpcboot structs are aggregates (Boost.PFR): remove the "
              "constructor and give "
              "fields default member initializers");
}

TEST(CodegenDiagnostics, CArrayMember) {
  ExpectError(RunOn("c_array", R"(
struct Grid { int32_t @cells[9]; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Grid Get() = 0; };
)"),
              "C arrays are not supported (Boost.PFR cannot reflect them); use std::vector<T>");
}

TEST(CodegenDiagnostics, UnsupportedTemplate) {
  ExpectError(RunOn("unsupported_template", R"(
struct Tags { std::set<std::string> @tags; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Tags Get() = 0; };
)"),
              "template 'std::set' is not supported; use std::vector<T>, std::map<K, V>");
}

TEST(CodegenDiagnostics, VirtualButNotPure) {
  ExpectError(
      RunOn("not_pure_virtual", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual int32_t @Count() { return 0; }
};
)"),
      "method 'S::Count' is not pure virtual; declare it 'virtual <result> Count(...) = 0'");
}

TEST(CodegenDiagnostics, NonVirtualHelperMethod) {
  ExpectError(
      RunOn("helper_method", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  int32_t @Helper() { return 1; }
};
)"),
      "method 'S::Helper' is not pure virtual; declare it 'virtual <result> Helper(...) = 0'");
}

TEST(CodegenDiagnostics, OverloadedMethod) {
  ExpectError(RunOn("overloaded", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Find(int64_t id) = 0;
  virtual void @Find(std::string name) = 0;
};
)"),
              "method 'Find' of service 'S' is overloaded; RPC method names must be unique");
}

TEST(CodegenDiagnostics, MissingInclude) {
  ExpectError(RunOn("missing_include", R"(
#include @"no_such_header.h"
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Ping() = 0; };
)"),
              "'no_such_header.h' file not found; add the directory that holds it with -I");
}

TEST(CodegenDiagnostics, MissingInputHeader) {
  std::string dir = MakeTempDir("diag_missing_input");
  CodegenRun run = RunCodegen({"-o", dir, dir + "/does_not_exist.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(
      run.output.find("error: cannot read header '" + dir + "/does_not_exist.h': no such file"),
      std::string::npos)
      << run.output;
}

TEST(CodegenDiagnostics, PlainChar) {
  ExpectError(RunOn("plain_char", R"(
struct Grade { char @letter; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Grade Get() = 0; };
)"),
              "plain 'char' has no wire mapping; use int8_t for a number or std::string for text");
}

TEST(CodegenDiagnostics, NonConstReferenceParameter) {
  ExpectError(RunOn("out_param", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Fill(std::string& @out) = 0;
};
)"),
              "parameter 'out' of method 'S::Fill' is a non-const reference; take it by value or "
              "by const&");
}

TEST(CodegenDiagnostics, PointerParameter) {
  ExpectError(RunOn("pointer_param", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(const int32_t* @values) = 0;
};
)"),
              "pointers cannot cross the wire");
}

TEST(CodegenDiagnostics, OptionalParameter) {
  ExpectError(RunOn("optional_param", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(std::optional<int32_t> @value) = 0;
};
)"),
              "std::optional is supported only as a struct field; wrap the value in a struct");
}

TEST(CodegenDiagnostics, EnumMapKey) {
  ExpectError(RunOn("enum_key", R"(
enum class Color { kRed };
struct Palette { std::map<Color, int32_t> @counts; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Palette Get() = 0; };
)"),
              "enum map keys are not allowed in proto3");
}

TEST(CodegenDiagnostics, PrivateField) {
  ExpectError(RunOn("private_field", R"(
class Secret {
  int64_t @value;
};
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Secret Get() = 0; };
)"),
              "field 'value' of struct 'Secret' is not public");
}

TEST(CodegenDiagnostics, SameNameInTwoNamespaces) {
  ExpectError(RunOn("same_name", R"(
namespace a { struct @Item { int32_t x; }; }
namespace b { struct Item { int32_t y; }; }
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual a::Item Get(b::Item item) = 0; };
)"),
              "has the same IDL name 'Item' as");
}

TEST(CodegenDiagnostics, ThriftReservedMethodName) {
  ExpectError(RunOn("reserved_method", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void @print(std::string text) = 0;
};
)"),
              "method name 'print' is a reserved word in Thrift's target languages");
}

TEST(CodegenDiagnostics, Union) {
  ExpectError(RunOn("union", R"(
union Number { int32_t i; double d; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Number @n) = 0; };
)"),
              "a union; unions are not supported");
}

TEST(CodegenDiagnostics, SyntaxError) {
  ExpectError(RunOn("syntax", R"(
struct Broken { int32_t x@ };
)"),
              "expected ';' at end of declaration list");
}

TEST(CodegenDiagnostics, ServiceWithDataMember) {
  ExpectError(RunOn("service_field", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  int32_t @calls = 0;
};
)"),
              "service 'S' has a data member 'calls'");
}

TEST(CodegenCli, UnknownOptionIsAUsageError) {
  CodegenRun run = RunCodegen({"--frobnicate", "x.h"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("error: unknown option '--frobnicate'"), std::string::npos)
      << run.output;
}

TEST(CodegenCli, NoHeadersIsAUsageError) {
  CodegenRun run = RunCodegen({"-o", "/tmp"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("error: no input headers"), std::string::npos) << run.output;
}

TEST(CodegenCli, OptionMissingItsValue) {
  CodegenRun run = RunCodegen({"x.h", "--out-dir"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("option '--out-dir' needs a directory"), std::string::npos)
      << run.output;
}

}  // namespace
}  // namespace rpcboot::testing
