// Bad input to rpcboot-codegen: each case gets `file:line:col: error: ...` naming the construct
// and what to write instead, a non-zero exit, and no output files.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "codegen_runner.h"

namespace rpcboot::testing {
namespace {

struct Expected {
  std::string location;  // "bad.h:7:3"
  CodegenRun run;
  std::string out_dir;
};

// Writes `source` as <name>.h; '@' marks where the error must point (it is removed; none for a
// header that must pass). Runs codegen on it.
Expected RunOn(const std::string& name, std::string source) {
  std::size_t at = source.find('@');
  unsigned line = 1, col = 1;
  for (std::size_t i = 0; i < std::min(at, source.size()); ++i) {
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

// A proxy reports a failed call by throwing: a noexcept method could only end the process.
TEST(CodegenDiagnostics, NoexceptMethod) {
  ExpectError(
      RunOn("noexcept_method", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual int32_t @Count() const noexcept = 0;
};
)"),
      "method 'S::Count' is noexcept; a remote call can fail, and the client proxy says so by "
      "throwing rpcboot::RpcError: remove 'noexcept'");
  // noexcept(false) says the method may throw: accepted.
  Expected accepted = RunOn("noexcept_false", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual int32_t Count() noexcept(false) = 0;
};
)");
  EXPECT_EQ(accepted.run.exit_code, 0) << accepted.run.output;
}

TEST(CodegenDiagnostics, RefQualifiedMethod) {
  ExpectError(RunOn("ref_qualified", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual int32_t @Count() & = 0;
};
)"),
              "method 'S::Count' has a ref-qualifier ('&' or '&&' after the parameters); a client "
              "proxy is called like any object: remove it");
}

// A chain of `depth` structs, S0 holding S1 holding ... (S0 the outermost), with a service that
// takes and returns S0. '@' marks where S{mark - 1} holds S{mark}; mark < 0: no mark.
std::string NestedStructs(int depth, int mark) {
  std::string source =
      "namespace deep {\nstruct S" + std::to_string(depth - 1) + " { int32_t value = 0; };\n";
  for (int i = depth - 2; i >= 0; --i) {
    source += "struct S" + std::to_string(i) + " { S" + std::to_string(i + 1) + " " +
              (i + 1 == mark ? "@" : "") + "next; };\n";
  }
  return source +
         "class RPCBOOT_SERVICE Deep {\n public:\n  virtual ~Deep() = default;\n"
         "  virtual S0 Get(const S0& s) = 0;\n};\n}  // namespace deep\n";
}

// Thrift's C++ reader refuses structs nested deeper than 64 with the call's arguments counted:
// 63 of a header's structs within one another pass, 64 are an error naming the 64th, and so are
// thousands (which overflowed codegen's stack before).
TEST(CodegenDiagnostics, StructsNestedDeeperThanThriftReadsAreAnError) {
  Expected fits = RunOn("nested_63", NestedStructs(63, -1));
  EXPECT_EQ(fits.run.exit_code, 0) << fits.run.output;
  const std::string phrase =
      "field 'next' of struct 'S62' has type 'deep::S63', the struct 64 deep where they nest "
      "within one another (through fields, lists, maps and optionals); Thrift refuses structs "
      "nested deeper than 63 within a call's arguments: flatten the types";
  ExpectError(RunOn("nested_64", NestedStructs(64, 63)), phrase);
  Expected deep = RunOn("nested_5000", NestedStructs(5000, 63));
  ExpectError(deep, phrase);
  EXPECT_NE(deep.run.output.find("1 error generated"), std::string::npos) << deep.run.output;
}

// A list `depth` deep, written through aliases so that no bracket nests: libclang spells it by
// recursing through every level (which overflowed codegen's stack at some 30,000 before).
std::string NestedLists(int depth) {
  std::string source = "namespace lists {\nusing V0 = std::vector<int32_t>;\n";
  for (int i = 1; i < depth; ++i) {
    source += "using V" + std::to_string(i) + " = std::vector<V" + std::to_string(i - 1) + ">;\n";
  }
  return source + "struct R { V" + std::to_string(depth - 1) +
         " @v; };\nclass RPCBOOT_SERVICE S {\n public:\n  virtual ~S() = default;\n"
         "  virtual R Get() = 0;\n};\n}  // namespace lists\n";
}

TEST(CodegenDiagnostics, TypesNestedDeeperThanProtobufReadsAreAnError) {
  Expected fits = RunOn("lists_20", NestedLists(20));
  EXPECT_EQ(fits.run.exit_code, 0) << fits.run.output;
  Expected deep = RunOn("lists_3000", NestedLists(3000));
  ExpectError(deep,
              "has type 'std::vector<std::vector<std::vector<std::vector<std::vector<std::vector<"
              "std::vector<std::vector<std::vector<std::vector<std::vector<std::vector<std::vector<"
              "std::vector<std::vector<std::vector<std::vec...': types nest more than 100 deep "
              "here (structs, lists, maps and optionals within one another); protobuf parsers "
              "refuse messages nested deeper than 100: flatten the types");
  EXPECT_NE(deep.run.output.find("element of field 'v' of struct 'R' has type"), std::string::npos)
      << deep.run.output;
  EXPECT_NE(deep.run.output.find("1 error generated"), std::string::npos) << deep.run.output;
}

// A field named like its struct is legal C++; thrift-compiler's C++ struct could not name its
// own type, so the .thrift (only) renames the field, as it renames keywords.
TEST(CodegenDiagnostics, FieldNamedLikeItsStructIsRenamedInTheThriftFileOnly) {
  Expected run = RunOn("self_named_field", R"(
namespace self {
struct Box { int32_t Box = 0; int32_t size = 0; };
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual Box Get() = 0;
};
}
)");
  ASSERT_EQ(run.run.exit_code, 0) << run.run.output;
  std::string thrift = ReadFile(run.out_dir + "/self_named_field.thrift");
  EXPECT_NE(thrift.find("  1: i32 Box_,\n  2: i32 size,\n"), std::string::npos) << thrift;
  EXPECT_NE(ReadFile(run.out_dir + "/self_named_field.thrift.json").find("\"name\": \"Box_\""),
            std::string::npos);
  EXPECT_NE(ReadFile(run.out_dir + "/self_named_field.proto").find("  int32 Box = 1;\n"),
            std::string::npos);
}

TEST(CodegenDiagnostics, FieldNamedLikeAProtobufMessageMethod) {
  ExpectError(RunOn("descriptor_field", R"(
struct Doc { int32_t @descriptor = 0; };
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(const Doc& doc) = 0;
};
)"),
              "'descriptor' of struct 'Doc' clashes with the static descriptor() protoc's C++ "
              "code gives every message; rename it");
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

TEST(CodegenDiagnostics, OptionalOfOptional) {
  ExpectError(RunOn("optional_optional", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(std::optional<std::optional<int32_t>> @value) = 0;
};
)"),
              "an optional of an optional cannot be said on either wire");
}

// Decoders leave a field the bytes do not hold at its initializer, and an empty optional is not
// sent: an optional that starts with a value could never arrive empty.
TEST(CodegenDiagnostics, OptionalThatStartsWithAValue) {
  ExpectError(RunOn("optional_initialized", R"(
struct Opts { std::optional<int32_t> @retries = 5; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Opts Get() = 0; };
)"),
              "field 'retries' of struct 'Opts' is a std::optional whose default member "
              "initializer may hold a value: std::nullopt is not sent");
  ExpectError(RunOn("optional_struct_initialized", R"(
struct Page { int32_t size = 0; };
struct Opts { std::optional<Page> @page{Page{20}}; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Opts Get() = 0; };
)"),
              "field 'page' of struct 'Opts' is a std::optional whose default member initializer");
  Expected empty = RunOn("optional_empty_initializers", R"(
struct Opts {
  std::optional<int32_t> a;
  std::optional<int32_t> b{};
  std::optional<int32_t> c = {};
  std::optional<std::string> d = std::nullopt;
  std::optional<int64_t> e{std::nullopt};
  std::optional<bool> f = ::std::nullopt;
};
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual Opts Get() = 0; };
)");
  EXPECT_EQ(empty.run.exit_code, 0) << empty.run.output;
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

// Go's generated code (protoc's and Thrift's) gives names that differ only in case or underscores
// one Go name; Java's files for them are one file where case is ignored.
TEST(CodegenDiagnostics, TypeNamesEqualButForCase) {
  ExpectError(RunOn("folded_type", R"(
struct @FooBar { int32_t x; };
struct Foo_bar { int32_t y; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual FooBar Get(Foo_bar f) = 0; };
)"),
              "struct 'FooBar' is named like 'Foo_bar' but for case and underscores");
  ExpectError(RunOn("folded_service", R"(
class RPCBOOT_SERVICE ShopApi { public: virtual ~ShopApi() = default; virtual void A() = 0; };
class RPCBOOT_SERVICE @Shop_api { public: virtual ~Shop_api() = default; virtual void B() = 0; };
)"),
              "service 'Shop_api' is named like 'ShopApi' but for case and underscores");
}

TEST(CodegenDiagnostics, MethodNamesEqualButForCase) {
  ExpectError(RunOn("folded_method", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual int32_t GetShop(int32_t id) = 0;
  virtual int32_t @get_shop(int32_t id) = 0;
};
)"),
              "methods 'S::GetShop' and 'S::get_shop' differ only in case or underscores");
}

// protoc's C++ code gives a list `items` an items_size() and a field with presence `coupon`
// a has_coupon(), thrift-compiler's Java a list getItemsSize() and getItemsIterator(): fields
// of those names beside them would declare them twice.
TEST(CodegenDiagnostics, FieldsNamedLikeProtocAccessors) {
  ExpectError(RunOn("size_accessor", R"(
struct Cart { std::vector<int64_t> items; int32_t @items_size = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Cart c) = 0; };
)"),
              "'items_size' of struct 'Cart' is named like the items_size() protoc's C++ code "
              "gives list field 'items'");
  ExpectError(RunOn("has_accessor", R"(
struct Coupon { int32_t percent = 0; };
struct Order { bool @has_coupon = false; std::optional<Coupon> coupon; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Order o) = 0; };
)"),
              "'has_coupon' of struct 'Order' is named like the has_coupon() protoc's C++ code "
              "gives field 'coupon'");
  ExpectError(RunOn("size_of_param", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(std::map<std::string, int32_t> Tags, int32_t @tags_size) = 0;
};
)"),
              "'tags_size' of method 'S::Put' (parameters) is named like the tags_size() "
              "protoc's C++ code gives map field 'Tags'");
  // A default that is not zero makes the field `optional` in the .proto: it has presence too.
  ExpectError(RunOn("has_nonzero", R"(
struct Page { int32_t size = 20; bool @has_size = false; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Page p) = 0; };
)"),
              "'has_size' of struct 'Page' is named like the has_size() protoc's C++ code gives "
              "field 'size'");
  // thrift-compiler's Java gives a list `items` getItemsSize() and getItemsIterator().
  ExpectError(RunOn("java_size", R"(
struct Cart { std::vector<int64_t> items; int32_t @itemsSize = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Cart c) = 0; };
)"),
              "'itemsSize' of struct 'Cart' is named like the getItemsSize() thrift-compiler's "
              "Java gives list field 'items'");
  ExpectError(RunOn("java_iterator", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(std::vector<std::string> lines, int64_t @LinesIterator) = 0;
};
)"),
              "'LinesIterator' of method 'S::Put' (parameters) is named like the "
              "getLinesIterator() thrift-compiler's Java gives list field 'lines'");
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

TEST(CodegenDiagnostics, JsonNameClashInStruct) {
  ExpectError(RunOn("json_clash", R"(
struct User { int64_t user_id = 0; int64_t @userId = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(User u) = 0; };
)"),
              "'userId' and 'user_id' of struct 'User' get the same JSON name in the .proto");
}

TEST(CodegenDiagnostics, JsonNameClashInParameters) {
  ExpectError(RunOn("json_clash_params", R"(
class RPCBOOT_SERVICE S {
 public:
  virtual ~S() = default;
  virtual void Put(int32_t shop_id, int32_t @shopId) = 0;
};
)"),
              "'shopId' and 'shop_id' of method 'S::Put' (parameters) get the same JSON name");
}

TEST(CodegenDiagnostics, EmptyService) {
  ExpectError(RunOn("empty_service", R"(
class RPCBOOT_SERVICE @S { public: virtual ~S() = default; };
)"),
              "service 'S' has no methods; declare at least one RPC method");
}

TEST(CodegenDiagnostics, ClassWithoutTheAnnotation) {
  ExpectError(RunOn("no_annotation", R"(
class @Shop { public: virtual ~Shop() = default; virtual int32_t Get(int32_t id) = 0; };
)"),
              "class 'Shop' has pure virtual methods but no RPCBOOT_SERVICE annotation");
}

TEST(CodegenDiagnostics, HeaderWithNeitherAServiceNorAType) {
  std::string dir = MakeTempDir("diag_no_service");
  WriteFile(dir + "/nothing.h",
            "#include <cstdint>\ninline int32_t Twice(int32_t x) { return 2 * x; }\n");
  CodegenRun run = RunCodegen({"-o", dir, dir + "/nothing.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("error: no RPCBOOT_SERVICE class and no struct or enum in the input "
                            "headers"),
            std::string::npos)
      << run.output;
}

// A header without a service is an interface of types only (a shared common.proto): every
// struct and enum it declares is emitted, reached or not, with no service and no RpcError.
TEST(CodegenDiagnostics, HeaderOfTypesOnlyEmitsEveryType) {
  std::string dir = MakeTempDir("types_only");
  WriteFile(dir + "/types.h",
            "#include <cstdint>\n#include <vector>\nnamespace shared {\nenum class Tier { kFree, "
            "kGold };\nstruct Item { int32_t id = 0; Tier tier = Tier::kGold; };\nstruct Basket { "
            "std::vector<Item> items; };\nstruct Item;\n}\n");
  std::filesystem::create_directories(dir + "/out");
  CodegenRun run = RunCodegen({"-o", dir + "/out", dir + "/types.h"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  std::string proto = ReadFile(dir + "/out/types.proto");
  std::string thrift = ReadFile(dir + "/out/types.thrift");
  for (const char* type : {"enum Tier", "message Item", "message Basket"})
    EXPECT_NE(proto.find(type), std::string::npos) << type << "\n" << proto;
  EXPECT_LT(proto.find("message Item"), proto.find("message Basket")) << proto;
  EXPECT_EQ(proto.find("service"), std::string::npos) << proto;
  EXPECT_NE(thrift.find("struct Basket"), std::string::npos) << thrift;
  EXPECT_EQ(thrift.find("RpcError"), std::string::npos) << thrift;
}

TEST(CodegenDiagnostics, TypesOnlyHeaderWithATypeThatCannotCross) {
  ExpectError(RunOn("types_only_pointer", R"(
struct Item { int64_t id; Item* @next_item; };
)"),
              "pointers cannot cross the wire");
}

TEST(CodegenDiagnostics, TypesOnlyHeaderBesideAnUnmarkedService) {
  ExpectError(RunOn("types_only_unmarked", R"(
struct Item { int64_t id; };
class @Shop { public: virtual ~Shop() = default; virtual Item Get(int64_t id) = 0; };
)"),
              "class 'Shop' has pure virtual methods but no RPCBOOT_SERVICE annotation");
}

TEST(CodegenDiagnostics, HeaderThatContributesNothing) {
  std::string dir = MakeTempDir("diag_unused_header");
  WriteFile(dir + "/unused.h", "#include <cstdint>\nstruct Lone { int32_t id = 0; };\n");
  WriteFile(dir + "/svc.h",
            "#include \"rpcboot/annotations.h\"\nclass RPCBOOT_SERVICE S { public: virtual ~S() = "
            "default; virtual void Ping() = 0; };\n");
  CodegenRun run = RunCodegen(
      {"-o", dir, "-I", std::string(RPCBOOT_SOURCE_DIR), dir + "/svc.h", dir + "/unused.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("the header '" + dir +
                            "/unused.h' declares no RPCBOOT_SERVICE class and no type a service "
                            "uses"),
            std::string::npos)
      << run.output;
}

TEST(CodegenDiagnostics, AnnotationsHeaderNotIncluded) {
  std::string dir = MakeTempDir("diag_no_annotations_include");
  WriteFile(dir + "/svc.h",
            "class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Ping() = 0; "
            "};\n");
  CodegenRun run = RunCodegen({"-o", dir, dir + "/svc.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(
      run.output.find("the RPCBOOT_ annotations come from #include \"rpcboot/annotations.h\""),
      std::string::npos)
      << run.output;
}

TEST(CodegenDiagnostics, FieldIdsOnSomeFieldsOnly) {
  ExpectError(RunOn("ids_mixed", R"(
struct Item { RPCBOOT_ID(1) int32_t id = 0; std::string @name; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "field 'name' of struct 'Item' has no RPCBOOT_ID while other fields have one");
}

TEST(CodegenDiagnostics, DuplicateFieldId) {
  ExpectError(RunOn("ids_duplicate", R"(
struct Item { RPCBOOT_ID(2) int32_t id = 0; RPCBOOT_ID(2) std::string @name; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "field 'name' of struct 'Item' has id 2, which field 'id' already has");
}

TEST(CodegenDiagnostics, FieldIdOutOfRange) {
  ExpectError(RunOn("ids_range", R"(
struct Item { RPCBOOT_ID(19500) int32_t @id = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "has id 19500, which is out of range: ids are 1..32767");
}

TEST(CodegenDiagnostics, FieldIdNotALiteral) {
  ExpectError(RunOn("ids_literal", R"(
struct Item { RPCBOOT_ID(kId) int32_t @id = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "has RPCBOOT_ID(kId); the id must be one integer literal");
}

TEST(CodegenDiagnostics, ReservedIdReused) {
  ExpectError(RunOn("ids_reserved", R"(
struct RPCBOOT_RESERVED(2, 3) Item { RPCBOOT_ID(1) int32_t id = 0; RPCBOOT_ID(3) int32_t @qty = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "field 'qty' of struct 'Item' has id 3, which is reserved (RPCBOOT_RESERVED)");
}

TEST(CodegenDiagnostics, ReservedIdsWithoutFieldIds) {
  ExpectError(RunOn("ids_reserved_implicit", R"(
struct RPCBOOT_RESERVED(2) @Item { int32_t id = 0; };
class RPCBOOT_SERVICE S { public: virtual ~S() = default; virtual void Put(Item i) = 0; };
)"),
              "struct 'Item' reserves ids but its fields have none of their own");
}

TEST(CodegenCli, BadLanguageOptionsAreUsageErrors) {
  CodegenRun run = RunCodegen({"--java-package-prefix", "com..example", "x.h"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("option '--java-package-prefix' needs a Java package name"),
            std::string::npos)
      << run.output;
  run = RunCodegen({"--go-package-prefix", "example.com/gen;x", "x.h"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("option '--go-package-prefix' needs a Go import path"),
            std::string::npos)
      << run.output;
}

TEST(CodegenCli, UnknownOptionIsAUsageError) {
  CodegenRun run = RunCodegen({"--frobnicate", "x.h"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("error: unknown option '--frobnicate'"), std::string::npos)
      << run.output;
}

// libclang refuses a C dialect or a standard it does not know with no words of its own; the
// option is named instead. -std=c++23 is what libclang 14 calls c++2b.
TEST(CodegenCli, AStandardLibclangCannotParseIsAUsageError) {
  for (const char* option : {"-std=c99", "-std=c++14", "-std=c++26", "-std=gnu++11"}) {
    CodegenRun run = RunCodegen({option, "x.h"});
    EXPECT_EQ(run.exit_code, 2) << option;
    EXPECT_NE(run.output.find(std::string("error: option '") + option +
                              "' is not a C++ standard rpcboot-codegen parses"),
              std::string::npos)
        << run.output;
  }
  std::string dir = ::testing::TempDir() + "/codegen_std";
  std::filesystem::create_directories(dir);
  std::string header = dir + "/s.h";
  std::ofstream(header) << "#include \"rpcboot/annotations.h\"\n"
                           "class RPCBOOT_SERVICE S { public: virtual ~S() = default; "
                           "virtual void Ping() = 0; };\n";
  for (const char* option : {"-std=c++17", "-std=gnu++20", "-std=c++23"}) {
    CodegenRun run = RunCodegen({"--check", option, "-I", std::string(RPCBOOT_SOURCE_DIR), header});
    EXPECT_EQ(run.exit_code, 0) << option << ": " << run.output;
  }
}

// A header that is a directory, a device or a pipe is named; /dev/zero made clang read until
// memory ran out, and a pipe waits for a writer forever.
TEST(CodegenCli, AHeaderThatIsNotARegularFileIsAnError) {
  std::string dir = ::testing::TempDir() + "/codegen_not_a_file";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ASSERT_EQ(::mkfifo((dir + "/pipe.h").c_str(), 0600), 0);
  for (const std::string& path : {dir, std::string("/dev/zero"), dir + "/pipe.h"}) {
    CodegenRun run = RunCodegen({"--check", path});
    EXPECT_EQ(run.exit_code, 1) << path;
    EXPECT_NE(run.output.find("error: header '" + path + "' is not a regular file"),
              std::string::npos)
        << run.output;
  }
}

// A header may include only regular files: clang read an included /dev/zero until memory ran
// out (24 GiB on the test machine) and waited forever on an included pipe. Each is refused when
// clang opens it, and named with what it is, also through a symbolic link and after clang's
// first fatal error.
TEST(CodegenCli, AnIncludedDeviceOrPipeIsAnError) {
  std::string dir =
      std::filesystem::path(::testing::TempDir() + "/codegen_includes_a_device").lexically_normal();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ASSERT_EQ(::mkfifo((dir + "/pipe.h").c_str(), 0600), 0);
  std::filesystem::create_symlink("/dev/urandom", dir + "/random.h");
  std::string header = dir + "/service.h";
  std::ofstream(header) << "#include \"/dev/zero\"\n"
                           "#include \"pipe.h\"\n"
                           "#include \"random.h\"\n";
  CodegenRun run = RunCodegen({"--check", header});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find(header + ":1:10: error: cannot open file '/dev/zero': it is a "
                                     "character device, not a regular file; rpcboot-codegen "
                                     "reads headers only from regular files"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("cannot open file '" + dir + "/pipe.h': it is a named pipe"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("cannot open file '" + dir + "/random.h': it is a character device"),
            std::string::npos)
      << run.output;

  // A regular header beside them is read as before.
  std::ofstream(dir + "/types.h") << "#pragma once\nstruct Ping { int a; };\n";
  std::ofstream(header) << "#include \"rpcboot/annotations.h\"\n#include \"types.h\"\n"
                           "class RPCBOOT_SERVICE S { public: virtual ~S() = default; "
                           "virtual void Send(const Ping& ping) = 0; };\n";
  run = RunCodegen({"--check", "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  EXPECT_EQ(run.exit_code, 0) << run.output;
}

TEST(CodegenCli, NoHeadersIsAUsageError) {
  CodegenRun run = RunCodegen({"-o", "/tmp"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("error: no input headers"), std::string::npos) << run.output;
}

TEST(CodegenCli, MissingOutputDirectoryIsAUsageError) {
  std::string dir = ::testing::TempDir() + "/codegen_no_out_dir";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string header = dir + "/s.h";
  std::ofstream(header) << "#include \"rpcboot/annotations.h\"\n"
                           "class RPCBOOT_SERVICE S { public: virtual ~S() = default; "
                           "virtual void Ping() = 0; };\n";
  CodegenRun run =
      RunCodegen({"-o", dir + "/missing", "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("output directory '" + dir + "/missing': No such file or directory"),
            std::string::npos)
      << run.output;
  run = RunCodegen({"-o", header, "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("output directory '" + header + "' is not a directory"),
            std::string::npos)
      << run.output;
  // An existing directory that cannot be written names the reason per file.
  std::filesystem::create_directories(dir + "/locked");
  std::filesystem::create_directories(dir + "/locked/s.thrift");  // a directory in a file's place
  run = RunCodegen({"-o", dir + "/locked", "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("cannot write '" + dir + "/locked/s.thrift': Is a directory"),
            std::string::npos)
      << run.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/locked/s.proto")) << "the other outputs are written";
  // --check writes nothing and needs no output directory.
  run = RunCodegen(
      {"--check", "-o", dir + "/missing", "-I", std::string(RPCBOOT_SOURCE_DIR), header});
  EXPECT_EQ(run.exit_code, 0) << run.output;
}

TEST(CodegenCli, OptionMissingItsValue) {
  CodegenRun run = RunCodegen({"x.h", "--out-dir"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("option '--out-dir' needs a directory"), std::string::npos)
      << run.output;
}

// --import: the headers of an interface generated apart. Each mistake is named.
TEST(CodegenCli, ImportMistakes) {
  std::string dir = MakeTempDir("diag_import");
  std::string inc = std::string(RPCBOOT_SOURCE_DIR);
  WriteFile(dir + "/money.h",
            "#pragma once\n#include <cstdint>\n#include \"rpcboot/annotations.h\"\n"
            "namespace p { struct Money { int64_t cents = 0; };\n"
            "class RPCBOOT_SERVICE Wallet { public: virtual ~Wallet() = default;\n"
            "  virtual Money Get(int64_t user) = 0; }; }\n");
  WriteFile(dir + "/order.h",
            "#pragma once\n#include \"money.h\"\nnamespace p {\n"
            "class RPCBOOT_SERVICE Orders { public: virtual ~Orders() = default;\n"
            "  virtual Money Total(int64_t order) = 0; }; }\n");
  CodegenRun run =
      RunCodegen({"--check", "--import", dir + "/money.h,", "-I", inc, dir + "/order.h"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.output.find("option '--import' needs the headers of one dependency, separated by "
                            "commas (no empty entries)"),
            std::string::npos)
      << run.output;
  run = RunCodegen({"--check", "--import", dir + "/nothere.h", "-I", inc, dir + "/order.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("cannot read imported header '" + dir + "/nothere.h': no such file"),
            std::string::npos)
      << run.output;
  run = RunCodegen({"--check", "--import", dir + "/money.h", "-I", inc, dir + "/money.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("header '" + dir + "/money.h' is given twice"), std::string::npos)
      << run.output;
  std::filesystem::create_directories(dir + "/other");
  WriteFile(dir + "/other/order.h", "#pragma once\n#include \"../money.h\"\n");
  run = RunCodegen({"--check", "--import", dir + "/other/order.h", "-I", inc, dir + "/order.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("are both named 'order', and IDL files include and import each other "
                            "by name ('order.proto'); rename one of them"),
            std::string::npos)
      << run.output;
  // A type of the importing header named like a message the imported interface made (Wallet's
  // Get made GetRequest in package p).
  WriteFile(dir + "/clash.h",
            "#pragma once\n#include \"money.h\"\nnamespace p {\nstruct GetRequest { int32_t a = 0; "
            "};\n"
            "class RPCBOOT_SERVICE Shop { public: virtual ~Shop() = default;\n"
            "  virtual Money Price(const GetRequest& r) = 0; }; }\n");
  run = RunCodegen({"--check", "--import", dir + "/money.h", "-I", inc, dir + "/clash.h"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.output.find("clash.h:4:8: error: 'GetRequest' is the name of the gRPC message made "
                            "for method 'Wallet::Get' of an imported interface in the same "
                            "package; rename this type"),
            std::string::npos)
      << run.output;
  // Imported properly, the same headers pass, and only the input's files are written.
  std::string out = dir + "/out";
  std::filesystem::create_directories(out);
  run = RunCodegen({"-o", out, "--import", dir + "/money.h", "-I", inc, dir + "/order.h"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(std::filesystem::exists(out + "/order.proto"));
  EXPECT_FALSE(std::filesystem::exists(out + "/money.proto")) << "an imported header's files are "
                                                                 "its own run's";
}

}  // namespace
}  // namespace rpcboot::testing
