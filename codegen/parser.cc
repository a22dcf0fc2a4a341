#include "codegen/parser.h"

#include <clang-c/Index.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "codegen/regular_files.h"

namespace rpcboot::codegen {
namespace {

// Structs nested within one another in a call, under its arguments or result struct: Thrift's
// C++ reader (TConfiguration's default recursion limit, 64) counts that one too.
constexpr int kMaxStructDepth = 63;
// Types within one another (a list is a message in the .proto when it is itself an element or a
// value): protobuf's parsers refuse messages nested deeper than 100.
constexpr int kMaxTypeDepth = 100;
// A type's spelling in a message is cut after this many characters.
constexpr std::size_t kMaxSpellingInMessages = 200;

// One more level of a recursion, for as long as it lives.
class DepthGuard {
 public:
  explicit DepthGuard(int* depth) : depth_(depth) { ++*depth_; }
  ~DepthGuard() { --*depth_; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;

 private:
  int* depth_;
};

std::string ToString(CXString s) {
  const char* c = clang_getCString(s);
  std::string out = c != nullptr ? c : "";
  clang_disposeString(s);
  return out;
}

SourceLocation LocationOf(CXCursor cursor) {
  CXFile file;
  unsigned line, column, offset;
  clang_getSpellingLocation(clang_getCursorLocation(cursor), &file, &line, &column, &offset);
  SourceLocation loc;
  if (file != nullptr) loc.file = ToString(clang_getFileName(file));
  loc.line = line;
  loc.column = column;
  return loc;
}

std::string RealPathOf(CXCursor cursor) {
  CXFile file;
  clang_getSpellingLocation(clang_getCursorLocation(cursor), &file, nullptr, nullptr, nullptr);
  if (file == nullptr) return "";
  std::string real = ToString(clang_File_tryGetRealPathName(file));
  return real.empty() ? ToString(clang_getFileName(file)) : real;
}

// The text of every annotate attribute on a declaration ("rpcboot_id:4").
std::vector<std::string> AnnotationsOf(CXCursor cursor) {
  std::vector<std::string> out;
  clang_visitChildren(
      cursor,
      [](CXCursor child, CXCursor, CXClientData data) {
        if (clang_getCursorKind(child) == CXCursor_AnnotateAttr)
          static_cast<std::vector<std::string>*>(data)->push_back(
              ToString(clang_getCursorSpelling(child)));
        return CXChildVisit_Continue;
      },
      &out);
  return out;
}

bool HasAnnotation(CXCursor cursor, const char* annotation) {
  std::vector<std::string> all = AnnotationsOf(cursor);
  return std::find(all.begin(), all.end(), annotation) != all.end();
}

// Parses the comma-separated integers of an annotation's argument ("2, 5"); false on anything
// else.
bool ParseIds(const std::string& text, std::vector<long long>* ids) {
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  while (true) {
    skip_space();
    std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 12) ++i;
    if (i == start) return false;
    ids->push_back(std::stoll(text.substr(start, i - start)));
    skip_space();
    if (i == text.size()) return true;
    if (text[i] != ',') return false;
    ++i;
  }
}

std::vector<CXCursor> Children(CXCursor cursor) {
  std::vector<CXCursor> out;
  clang_visitChildren(
      cursor,
      [](CXCursor child, CXCursor, CXClientData data) {
        static_cast<std::vector<CXCursor>*>(data)->push_back(child);
        return CXChildVisit_Continue;
      },
      &out);
  return out;
}

// The tokens a cursor spans, as text.
std::vector<std::string> TokensOf(CXCursor cursor) {
  CXTranslationUnit tu = clang_Cursor_getTranslationUnit(cursor);
  CXToken* tokens = nullptr;
  unsigned count = 0;
  clang_tokenize(tu, clang_getCursorExtent(cursor), &tokens, &count);
  std::vector<std::string> out;
  for (unsigned i = 0; i < count; ++i)
    out.push_back(ToString(clang_getTokenSpelling(tu, tokens[i])));
  clang_disposeTokens(tu, tokens, count);
  return out;
}

// The first string literal under a cursor, as clang folds it (a literal folds where it decays
// to a pointer, not by itself).
std::optional<std::string> StringLiteralIn(CXCursor cursor) {
  std::optional<std::string> found;
  clang_visitChildren(
      cursor,
      [](CXCursor child, CXCursor, CXClientData data) {
        CXEvalResult result = clang_Cursor_Evaluate(child);
        if (result == nullptr) return CXChildVisit_Recurse;
        bool literal = clang_EvalResult_getKind(result) == CXEval_StrLiteral;
        if (literal)
          *static_cast<std::optional<std::string>*>(data) = clang_EvalResult_getAsStr(result);
        clang_EvalResult_dispose(result);
        return literal ? CXChildVisit_Break : CXChildVisit_Recurse;
      },
      &found);
  return found;
}

// What a field's default member initializer holds (see FieldDefault). An initializer clang
// cannot fold counts as not zero: `optional` in the .proto costs nothing on the wire, a zero
// read as the C++ default would.
FieldDefault DefaultOf(CXCursor field, const TypeRef& type) {
  FieldDefault out;
  if (!IsScalar(type) && type.kind != Kind::kString) return out;  // the rest carry presence
  std::optional<CXCursor> init;
  for (CXCursor child : Children(field))
    if (clang_isExpression(clang_getCursorKind(child))) init = child;
  if (!init) return out;  // value-initialized: zero
  out.nonzero = true;
  CXEvalResult result = clang_Cursor_Evaluate(*init);
  CXEvalResultKind kind = result != nullptr ? clang_EvalResult_getKind(result) : CXEval_UnExposed;
  if (kind == CXEval_Int && type.kind != Kind::kString) {
    out.known = true;
    out.integer = clang_EvalResult_isUnsignedInt(result) != 0
                      ? static_cast<int64_t>(clang_EvalResult_getAsUnsigned(result))
                      : clang_EvalResult_getAsLongLong(result);
    if (type.kind == Kind::kBool) out.integer = out.integer != 0;
    if (type.kind == Kind::kFloat || type.kind == Kind::kDouble)
      out.real = static_cast<double>(out.integer);
  } else if (kind == CXEval_Float && (type.kind == Kind::kFloat || type.kind == Kind::kDouble)) {
    out.known = true;
    out.real = clang_EvalResult_getAsDouble(result);
  } else if (type.kind == Kind::kString) {
    // `= "text"`, `{"text"}`, `{}` or `= {}`; anything else (a call, a concatenation) stays
    // unknown.
    std::vector<std::string> tokens = TokensOf(*init);
    if (!tokens.empty() && tokens.front() == "=") tokens.erase(tokens.begin());
    if (tokens.size() >= 2 && tokens.front() == "{" && tokens.back() == "}")
      tokens = std::vector<std::string>(tokens.begin() + 1, tokens.end() - 1);
    if (tokens.empty()) {
      out.known = true;
    } else if (tokens.size() == 1 && tokens[0].front() == '"') {
      if (std::optional<std::string> text = StringLiteralIn(*init)) {
        out.known = true;
        out.text = *text;
      }
    }
  }
  if (result != nullptr) clang_EvalResult_dispose(result);
  if (out.known) {
    // Zero as the codecs see it: a float's bits (-0.0 is not zero), an empty string.
    if (type.kind == Kind::kFloat) {
      float f = static_cast<float>(out.real);
      uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      out.nonzero = bits != 0;
    } else if (type.kind == Kind::kDouble) {
      uint64_t bits;
      std::memcpy(&bits, &out.real, sizeof bits);
      out.nonzero = bits != 0;
    } else if (type.kind == Kind::kString) {
      out.nonzero = !out.text.empty();
    } else {
      out.nonzero = out.integer != 0;
    }
    if (!out.nonzero) out = FieldDefault{};
  }
  return out;
}

// True when a std::optional field starts empty: no default member initializer, or one that says
// so (`{}`, `= std::nullopt`, `{std::nullopt}`). Decoders leave a field the bytes do not hold at
// its initializer, and an empty optional is not sent: one that starts with a value could never
// arrive empty.
bool StartsDisengaged(CXCursor field) {
  std::optional<CXCursor> init;
  for (CXCursor child : Children(field))
    if (clang_isExpression(clang_getCursorKind(child))) init = child;
  if (!init) return true;
  std::vector<std::string> tokens = TokensOf(*init);
  if (!tokens.empty() && tokens.front() == "=") tokens.erase(tokens.begin());
  if (tokens.size() >= 2 && tokens.front() == "{" && tokens.back() == "}")
    tokens = std::vector<std::string>(tokens.begin() + 1, tokens.end() - 1);
  if (!tokens.empty() && tokens.front() == "::") tokens.erase(tokens.begin());
  if (tokens.size() >= 2 && tokens[0] == "std" && tokens[1] == "::")
    tokens.erase(tokens.begin(), tokens.begin() + 2);
  return tokens.empty() || (tokens.size() == 1 && tokens[0] == "nullopt");
}

// Namespaces enclosing a declaration, outermost first, skipping inline namespaces (std::__cxx11).
// `scope` receives the C++ scopes (namespaces and classes) that qualify its name. Sets
// *local when a function encloses it and *anonymous_ns inside an anonymous namespace.
std::vector<std::string> EnclosingNamespaces(CXCursor cursor, bool* local, bool* anonymous_ns,
                                             std::vector<std::string>* scope = nullptr) {
  std::vector<std::string> names;
  std::vector<std::string> scopes;
  *local = false;
  *anonymous_ns = false;
  for (CXCursor p = clang_getCursorSemanticParent(cursor);
       !clang_Cursor_isNull(p) && clang_getCursorKind(p) != CXCursor_TranslationUnit;
       p = clang_getCursorSemanticParent(p)) {
    CXCursorKind kind = clang_getCursorKind(p);
    if (kind == CXCursor_Namespace) {
      if (clang_Cursor_isInlineNamespace(p)) continue;
      if (clang_Cursor_isAnonymous(p)) {
        *anonymous_ns = true;
        continue;
      }
      names.push_back(ToString(clang_getCursorSpelling(p)));
      scopes.push_back(names.back());
    } else if (kind == CXCursor_LinkageSpec) {
      continue;
    } else if (kind == CXCursor_StructDecl || kind == CXCursor_ClassDecl) {
      scopes.push_back(ToString(clang_getCursorSpelling(p)));
    } else {
      *local = true;
    }
  }
  std::reverse(names.begin(), names.end());
  std::reverse(scopes.begin(), scopes.end());
  if (scope != nullptr) *scope = std::move(scopes);
  return names;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string QualifiedTemplateName(CXCursor decl) {
  bool nested, anonymous;
  std::vector<std::string> ns = EnclosingNamespaces(decl, &nested, &anonymous);
  ns.push_back(ToString(clang_getCursorSpelling(decl)));
  return Join(ns, "::");
}

// Where a type is used, for messages and for the rules that depend on position.
enum class Position { kField, kParam, kResult, kElement, kMapKey, kMapValue, kOptionalValue };

class Parser {
 public:
  Parser(Model* model, Diagnostics* diags) : model_(model), diags_(diags) {}

  void VisitTopLevel(CXCursor cursor);
  void CollectDependencies(CXTranslationUnit tu);
  // Classes of the input headers (the last group) with pure virtual methods but no
  // RPCBOOT_SERVICE.
  const std::vector<std::pair<std::string, SourceLocation>>& unannotated() const {
    return unannotated_;
  }
  // A group of headers without a service is an interface of types only (a file of shared
  // messages): every struct and enum its headers declare at namespace scope is resolved and
  // becomes one of its header's `types`. Returns how many the input headers gave.
  int ResolveTypesOnlyGroups();

 private:
  void ParseService(CXCursor cls, int header);
  std::optional<MethodDecl> ParseMethod(CXCursor method, const std::string& service);
  std::optional<TypeRef> Resolve(CXType type, Position pos, const SourceLocation& loc,
                                 const std::string& what);
  std::optional<TypeRef> ResolveRecord(CXType canonical, const std::string& spelling, Position pos,
                                       const SourceLocation& loc, const std::string& what);
  std::optional<int> ResolveStruct(CXCursor decl, const std::string& spelling,
                                   const SourceLocation& use, const std::string& what);
  std::optional<int> ResolveEnum(CXCursor decl, const std::string& spelling,
                                 const SourceLocation& use, const std::string& what);
  bool FillDecl(CXCursor def, const char* what_kind, const std::string& spelling,
                const SourceLocation& use, const std::string& what, Decl* decl);
  int HeaderIndex(const std::string& real_path) const;
  bool AssignFieldIds(CXCursor def, const std::string& name, std::vector<FieldDecl>* fields,
                      std::vector<int>* reserved);

  Model* model_;
  Diagnostics* diags_;
  std::map<std::string, int> struct_by_usr_;
  std::map<std::string, int> enum_by_usr_;
  std::set<std::string> failed_usr_;  // reported once, not again for every use
  int struct_depth_ = 0;              // structs being resolved, one within another
  int type_depth_ = 0;                // types being resolved, one within another
  std::vector<std::pair<std::string, SourceLocation>> unannotated_;
  // Struct and enum definitions at namespace scope, by header, in declaration order.
  std::vector<std::pair<int, CXCursor>> declared_;
};

int Parser::HeaderIndex(const std::string& real_path) const {
  for (std::size_t i = 0; i < model_->headers.size(); ++i) {
    if (model_->headers[i].real_path == real_path) return static_cast<int>(i);
  }
  return -1;
}

void Parser::VisitTopLevel(CXCursor cursor) {
  for (CXCursor child : Children(cursor)) {
    CXCursorKind kind = clang_getCursorKind(child);
    if (kind == CXCursor_Namespace || kind == CXCursor_LinkageSpec) {
      VisitTopLevel(child);
      continue;
    }
    bool is_class = kind == CXCursor_ClassDecl || kind == CXCursor_StructDecl;
    bool is_template = kind == CXCursor_ClassTemplate;
    if (kind == CXCursor_EnumDecl && clang_isCursorDefinition(child)) {
      if (int header = HeaderIndex(RealPathOf(child)); header >= 0)
        declared_.emplace_back(header, child);
      continue;
    }
    if (!is_class && !is_template) continue;
    int header = HeaderIndex(RealPathOf(child));
    if (header < 0 || !clang_isCursorDefinition(child)) continue;
    if (!HasAnnotation(child, "rpcboot_service")) {
      bool abstract = false;
      for (CXCursor member : Children(child))
        abstract |= clang_getCursorKind(member) == CXCursor_CXXMethod &&
                    clang_CXXMethod_isPureVirtual(member);
      if (abstract && !model_->headers[header].imported) {
        unannotated_.emplace_back(ToString(clang_getCursorSpelling(child)), LocationOf(child));
      } else if (!abstract && is_class) {
        declared_.emplace_back(header, child);
      }
      continue;
    }
    if (is_template) {
      diags_->Error(LocationOf(child),
                    "service '" + ToString(clang_getCursorSpelling(child)) +
                        "' is a class template; an RPCBOOT_SERVICE must be a plain class");
      continue;
    }
    ParseService(child, header);
  }
}

int Parser::ResolveTypesOnlyGroups() {
  std::set<int> with_services;
  for (const ServiceDecl& service : model_->services)
    with_services.insert(model_->headers[service.header].group);
  int input_types = 0;
  for (const auto& [header, cursor] : declared_) {
    Header& h = model_->headers[header];
    if (with_services.count(h.group) != 0) continue;
    std::string spelling = ToString(clang_getCursorSpelling(cursor));
    std::string what = "the types-only header " + h.path;
    SourceLocation loc = LocationOf(cursor);
    TypeRef type;
    if (clang_getCursorKind(cursor) == CXCursor_EnumDecl) {
      std::optional<int> index = ResolveEnum(cursor, spelling, loc, what);
      if (!index) continue;
      type.kind = Kind::kEnum;
      type.decl = *index;
    } else {
      std::optional<int> index = ResolveStruct(cursor, spelling, loc, what);
      if (!index) continue;
      type.kind = Kind::kStruct;
      type.decl = *index;
    }
    h.types.push_back(type);
    if (!h.imported) ++input_types;
  }
  return input_types;
}

void Parser::ParseService(CXCursor cls, int header) {
  ServiceDecl service;
  bool nested, anonymous;
  std::vector<std::string> ns = EnclosingNamespaces(cls, &nested, &anonymous);
  service.name = ToString(clang_getCursorSpelling(cls));
  service.package = Join(ns, ".");
  service.cpp_name = "::" + (ns.empty() ? service.name : Join(ns, "::") + "::" + service.name);
  service.loc = LocationOf(cls);
  service.file = model_->headers[header].real_path;
  service.header = header;
  if (nested || anonymous) {
    diags_->Error(service.loc,
                  "service '" + service.name +
                      "' is declared inside a class or an anonymous namespace; declare it at "
                      "namespace scope");
    return;
  }
  std::set<std::string> seen;
  for (CXCursor child : Children(cls)) {
    SourceLocation loc = LocationOf(child);
    switch (clang_getCursorKind(child)) {
      case CXCursor_CXXBaseSpecifier:
        diags_->Error(
            loc, "service '" + service.name +
                     "' has a base class; services cannot inherit: declare every RPC method in '" +
                     service.name + "' itself");
        break;
      case CXCursor_FieldDecl:
        diags_->Error(
            loc,
            "service '" + service.name + "' has a data member '" +
                ToString(clang_getCursorSpelling(child)) +
                "'; a service holds only pure virtual methods: keep state in the implementation");
        break;
      case CXCursor_FunctionTemplate:
        diags_->Error(loc, "method template '" + ToString(clang_getCursorSpelling(child)) +
                               "' in service '" + service.name +
                               "'; RPC methods must be plain pure virtual methods");
        break;
      case CXCursor_CXXMethod: {
        std::string name = ToString(clang_getCursorSpelling(child));
        if (!seen.insert(name).second) {
          diags_->Error(
              loc,
              "method '" + name + "' of service '" + service.name +
                  "' is overloaded; RPC method names must be unique: give each overload its own "
                  "name (for example '" +
                  name + "ById')");
          break;
        }
        if (auto method = ParseMethod(child, service.name))
          service.methods.push_back(std::move(*method));
        break;
      }
      default:
        break;  // destructor, constructors, nested types, access specifiers, attributes
    }
  }
  if (service.methods.empty() && !diags_->has_errors()) {
    diags_->Error(service.loc, "service '" + service.name +
                                   "' has no methods; declare at least one RPC method, "
                                   "'virtual <result> Name(<parameters>) = 0'");
  }
  model_->services.push_back(std::move(service));
}

std::optional<MethodDecl> Parser::ParseMethod(CXCursor method, const std::string& service) {
  MethodDecl m;
  m.name = ToString(clang_getCursorSpelling(method));
  m.loc = LocationOf(method);
  std::string what = "method '" + service + "::" + m.name + "'";
  if (clang_CXXMethod_isStatic(method)) {
    diags_->Error(m.loc, what + " is static; RPC methods must be 'virtual ... = 0'");
    return std::nullopt;
  }
  if (!clang_CXXMethod_isPureVirtual(method)) {
    diags_->Error(
        m.loc,
        what + " is not pure virtual; declare it 'virtual <result> " + m.name +
            "(...) = 0' (a service holds only RPC methods; put helpers in the implementation)");
    return std::nullopt;
  }
  if (clang_getCXXAccessSpecifier(method) != CX_CXXPublic) {
    diags_->Error(m.loc, what + " is not public; RPC methods must be declared under 'public:'");
    return std::nullopt;
  }
  CXType fn = clang_getCursorType(method);
  if (clang_isFunctionTypeVariadic(fn)) {
    diags_->Error(m.loc, what + " is variadic; declare each parameter");
    return std::nullopt;
  }
  if (clang_Type_getCXXRefQualifier(fn) != CXRefQualifier_None) {
    diags_->Error(m.loc, what +
                             " has a ref-qualifier ('&' or '&&' after the parameters); a "
                             "client proxy is called like any object: remove it");
    return std::nullopt;
  }
  m.idempotent = HasAnnotation(method, "rpcboot_idempotent");
  m.is_const = clang_CXXMethod_isConst(method) != 0;
  // A call through the client proxy can fail (the network, the peer, a deadline) and says so by
  // throwing rpcboot::RpcError; a noexcept proxy could only end the process instead.
  CXCursor_ExceptionSpecificationKind spec = static_cast<CXCursor_ExceptionSpecificationKind>(
      clang_getCursorExceptionSpecificationType(method));
  bool no_throw = spec == CXCursor_ExceptionSpecificationKind_BasicNoexcept ||
                  spec == CXCursor_ExceptionSpecificationKind_DynamicNone;
  if (spec == CXCursor_ExceptionSpecificationKind_ComputedNoexcept) {
    std::vector<std::string> tokens = TokensOf(method);
    auto at = std::find(tokens.begin(), tokens.end(), "noexcept");
    no_throw = !(tokens.end() - at >= 4 && at[1] == "(" && at[2] == "false" && at[3] == ")");
  }
  if (no_throw) {
    diags_->Error(m.loc, what +
                             " is noexcept; a remote call can fail, and the client proxy says so "
                             "by throwing rpcboot::RpcError: remove 'noexcept'");
    return std::nullopt;
  }
  bool ok = true;
  int nargs = clang_Cursor_getNumArguments(method);
  for (int i = 0; i < nargs; ++i) {
    CXCursor arg = clang_Cursor_getArgument(method, static_cast<unsigned>(i));
    FieldDecl param;
    param.name = ToString(clang_getCursorSpelling(arg));
    if (param.name.empty()) param.name = "arg" + std::to_string(i + 1);
    param.loc = LocationOf(arg);
    if (param.loc.file.empty()) param.loc = m.loc;
    std::string pwhat = "parameter '" + param.name + "' of " + what;
    CXType type = clang_getCursorType(arg);
    CXType canonical = clang_getCanonicalType(type);
    if (canonical.kind == CXType_LValueReference) {
      CXType pointee = clang_getPointeeType(canonical);
      if (!clang_isConstQualifiedType(pointee)) {
        diags_->Error(param.loc,
                      pwhat +
                          " is a non-const reference; take it by value or by const& (results "
                          "travel back as the return value)");
        ok = false;
        continue;
      }
      type = clang_getPointeeType(type);
    } else if (canonical.kind == CXType_RValueReference) {
      diags_->Error(param.loc, pwhat + " is an rvalue reference; take it by value or by const&");
      ok = false;
      continue;
    }
    auto resolved = Resolve(type, Position::kParam, param.loc, pwhat);
    if (!resolved) {
      ok = false;
      continue;
    }
    param.type = *resolved;
    param.id = i + 1;
    m.params.push_back(std::move(param));
  }
  CXType result = clang_getResultType(fn);
  if (clang_getCanonicalType(result).kind != CXType_Void) {
    auto resolved = Resolve(result, Position::kResult, m.loc, "result of " + what);
    if (!resolved) {
      ok = false;
    } else {
      m.result = *resolved;
    }
  }
  if (!ok) return std::nullopt;
  return m;
}

std::optional<TypeRef> Parser::Resolve(CXType type, Position pos, const SourceLocation& loc,
                                       const std::string& what) {
  std::string spelling = ToString(clang_getTypeSpelling(type));
  if (spelling.size() > kMaxSpellingInMessages)  // the spelling goes into messages only
    spelling = spelling.substr(0, kMaxSpellingInMessages) + "...";
  CXType c = clang_getCanonicalType(type);
  auto fail = [&](const std::string& message) -> std::optional<TypeRef> {
    diags_->Error(loc, what + " has type '" + spelling + "': " + message);
    return std::nullopt;
  };
  DepthGuard depth_guard(&type_depth_);
  if (type_depth_ > kMaxTypeDepth) {
    return fail("types nest more than " + std::to_string(kMaxTypeDepth) +
                " deep here (structs, lists, maps and optionals within one another); protobuf "
                "parsers refuse messages nested deeper than 100: flatten the types");
  }
  if (clang_isConstQualifiedType(c) && pos != Position::kParam && pos != Position::kResult) {
    return fail("const members and elements cannot be decoded into; drop the const");
  }
  if (clang_isVolatileQualifiedType(c)) return fail("volatile is not supported; drop it");
  TypeRef t;
  switch (c.kind) {
    case CXType_Bool:
      t.kind = Kind::kBool;
      return t;
    case CXType_SChar:
      t.kind = Kind::kInt8;
      return t;
    case CXType_UChar:
      t.kind = Kind::kUint8;
      return t;
    case CXType_Short:
      t.kind = Kind::kInt16;
      return t;
    case CXType_UShort:
      t.kind = Kind::kUint16;
      return t;
    case CXType_Int:
      t.kind = Kind::kInt32;
      return t;
    case CXType_UInt:
      t.kind = Kind::kUint32;
      return t;
    case CXType_Long:
    case CXType_LongLong:
      t.kind = clang_Type_getSizeOf(c) == 8 ? Kind::kInt64 : Kind::kInt32;
      return t;
    case CXType_ULong:
    case CXType_ULongLong:
      t.kind = clang_Type_getSizeOf(c) == 8 ? Kind::kUint64 : Kind::kUint32;
      return t;
    case CXType_Float:
      t.kind = Kind::kFloat;
      return t;
    case CXType_Double:
      t.kind = Kind::kDouble;
      return t;
    case CXType_Char_S:
    case CXType_Char_U:
      return fail(
          "plain 'char' has no wire mapping; use int8_t for a number or std::string for text");
    case CXType_LongDouble:
      return fail("long double has no wire mapping; use double");
    case CXType_WChar:
    case CXType_Char16:
    case CXType_Char32:
      return fail("wide characters have no wire mapping; use std::string (UTF-8)");
    case CXType_Int128:
    case CXType_UInt128:
      return fail("128-bit integers have no wire mapping; use int64_t, or two fields");
    case CXType_Pointer:
    case CXType_MemberPointer:
    case CXType_BlockPointer:
      return fail(
          "pointers cannot cross the wire; hold the value itself, std::optional<T> for an optional "
          "value, or std::vector<T> for several");
    case CXType_LValueReference:
    case CXType_RValueReference:
      return fail("references cannot cross the wire; hold the value itself");
    case CXType_ConstantArray:
    case CXType_IncompleteArray:
    case CXType_VariableArray:
    case CXType_DependentSizedArray:
      return fail("C arrays are not supported (Boost.PFR cannot reflect them); use std::vector<T>");
    case CXType_Enum: {
      auto index = ResolveEnum(clang_getTypeDeclaration(c), spelling, loc, what);
      if (!index) return std::nullopt;
      t.kind = Kind::kEnum;
      t.decl = *index;
      if (pos == Position::kMapKey) {
        return fail(
            "enum map keys are not allowed in proto3; key the map by an integer or std::string");
      }
      return t;
    }
    case CXType_Record:
      return ResolveRecord(c, spelling, pos, loc, what);
    default:
      return fail("this type is not in rpcboot's type mapping (see docs/annotations.md)");
  }
}

std::optional<TypeRef> Parser::ResolveRecord(CXType c, const std::string& spelling, Position pos,
                                             const SourceLocation& loc, const std::string& what) {
  auto fail = [&](const std::string& message) -> std::optional<TypeRef> {
    diags_->Error(loc, what + " has type '" + spelling + "': " + message);
    return std::nullopt;
  };
  CXCursor decl = clang_getTypeDeclaration(c);
  CXCursor templ = clang_getSpecializedCursorTemplate(decl);
  TypeRef t;
  if (!clang_Cursor_isNull(templ)) {
    std::string name = QualifiedTemplateName(templ);
    int nargs = clang_Type_getNumTemplateArguments(c);
    auto arg = [&](unsigned i) { return clang_Type_getTemplateArgumentAsType(c, i); };
    if (name == "std::basic_string") {
      if (nargs < 1 || clang_getCanonicalType(arg(0)).kind != CXType_Char_S) {
        if (clang_getCanonicalType(arg(0)).kind != CXType_Char_U) {
          return fail("only std::string is supported among string types");
        }
      }
      t.kind = Kind::kString;
      return t;
    }
    if (name == "std::vector") {
      CXType elem = arg(0);
      if (clang_getCanonicalType(elem).kind == CXType_UChar) {
        t.kind = Kind::kBytes;
        return t;
      }
      auto e = Resolve(elem, Position::kElement, loc, "element of " + what);
      if (!e) return std::nullopt;
      if (e->kind == Kind::kOptional) return fail("std::optional elements are not supported");
      t.kind = Kind::kList;
      t.args.push_back(*e);
      return t;
    }
    if (name == "std::map" || name == "std::unordered_map") {
      auto k = Resolve(arg(0), Position::kMapKey, loc, "key of " + what);
      if (!k) return std::nullopt;
      bool key_ok = k->kind == Kind::kString || k->kind == Kind::kBool ||
                    (IsScalar(*k) && k->kind != Kind::kFloat && k->kind != Kind::kDouble);
      if (!key_ok) return fail("map keys must be integers, bool or std::string");
      auto v = Resolve(arg(1), Position::kMapValue, loc, "value of " + what);
      if (!v) return std::nullopt;
      if (v->kind == Kind::kOptional) return fail("std::optional map values are not supported");
      t.kind = Kind::kMap;
      t.args = {*k, *v};
      return t;
    }
    if (name == "std::optional") {
      if (pos == Position::kOptionalValue) {
        return fail(
            "an optional of an optional cannot be said on either wire; use one std::optional");
      }
      auto v = Resolve(arg(0), Position::kOptionalValue, loc, "value of " + what);
      if (!v) return std::nullopt;
      t.kind = Kind::kOptional;
      t.args.push_back(*v);
      return t;
    }
    return fail("template '" + name +
                "' is not supported; use std::vector<T>, std::map<K, V>, std::unordered_map<K, V>, "
                "std::optional<T> or a plain struct");
  }
  auto index = ResolveStruct(decl, spelling, loc, what);
  if (!index) return std::nullopt;
  t.kind = Kind::kStruct;
  t.decl = *index;
  return t;
}

bool Parser::FillDecl(CXCursor def, const char* what_kind, const std::string& spelling,
                      const SourceLocation& use, const std::string& what, Decl* decl) {
  decl->name = ToString(clang_getCursorSpelling(def));
  decl->loc = LocationOf(def);
  decl->file = RealPathOf(def);
  if (clang_Location_isInSystemHeader(clang_getCursorLocation(def))) {
    diags_->Error(
        use, what + " has type '" + spelling + "', a " + what_kind +
                 " from a system or library header; rpcboot maps only the project's own structs "
                 "and enums and the standard types in docs/annotations.md");
    return false;
  }
  bool local, anonymous;
  std::vector<std::string> scope;
  std::vector<std::string> ns = EnclosingNamespaces(def, &local, &anonymous, &scope);
  if (decl->name.empty() || clang_Cursor_isAnonymous(def)) {
    diags_->Error(decl->loc,
                  std::string("anonymous ") + what_kind + " used by " + what + "; give it a name");
    return false;
  }
  if (local || anonymous) {
    diags_->Error(decl->loc,
                  std::string(what_kind) + " '" + decl->name + "' (used by " + what +
                      ") is declared inside a function or an anonymous namespace; declare it in a "
                      "named namespace");
    return false;
  }
  decl->package = Join(ns, ".");
  // Nested declarations (struct Shop { struct Address {...}; }) keep their C++ scope; their IDL
  // name is the simple name, unique like every other.
  decl->cpp_name = "::" + (scope.empty() ? decl->name : Join(scope, "::") + "::" + decl->name);
  return true;
}

std::optional<int> Parser::ResolveEnum(CXCursor decl, const std::string& spelling,
                                       const SourceLocation& use, const std::string& what) {
  CXCursor def = clang_getCursorDefinition(decl);
  if (clang_Cursor_isNull(def)) def = decl;
  std::string usr = ToString(clang_getCursorUSR(def));
  if (auto it = enum_by_usr_.find(usr); it != enum_by_usr_.end()) return it->second;
  if (failed_usr_.count(usr) != 0) return std::nullopt;
  EnumDecl e;
  if (!FillDecl(def, "enum", spelling, use, what, &e)) {
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  bool ok = true;
  CXType underlying = clang_getCanonicalType(clang_getEnumDeclIntegerType(def));
  bool is_signed = underlying.kind == CXType_SChar || underlying.kind == CXType_Short ||
                   underlying.kind == CXType_Int || underlying.kind == CXType_Long ||
                   underlying.kind == CXType_LongLong || underlying.kind == CXType_Char_S;
  for (CXCursor child : Children(def)) {
    if (clang_getCursorKind(child) != CXCursor_EnumConstantDecl) continue;
    Enumerator value{ToString(clang_getCursorSpelling(child)), 0};
    if (is_signed) {
      value.value = clang_getEnumConstantDeclValue(child);
    } else {
      unsigned long long u = clang_getEnumConstantDeclUnsignedValue(child);
      value.value =
          u > static_cast<unsigned long long>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
    }
    if (value.value < INT32_MIN || value.value > INT32_MAX) {
      diags_->Error(LocationOf(child),
                    "enumerator '" + e.name + "::" + value.name +
                        "' = " + std::to_string(value.value) +
                        " does not fit in 32 bits; Thrift and proto enums are int32");
      ok = false;
    }
    e.values.push_back(value);
  }
  if (!ok) {
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  // The values a decoder may store. A scoped enum holds every value of its underlying type (int32
  // on the wire caps it); an unscoped one may hold only the smallest bit-field range covering its
  // enumerators ([dcl.enum]), which is also safe when it has a fixed type.
  long long bits = clang_Type_getSizeOf(underlying) * 8;
  if (clang_EnumDecl_isScoped(def)) {
    int64_t lo = is_signed ? -(int64_t{1} << (std::min<long long>(bits, 33) - 1)) : 0;
    int64_t hi = is_signed ? (int64_t{1} << (std::min<long long>(bits, 33) - 1)) - 1
                           : (int64_t{1} << std::min<long long>(bits, 32)) - 1;
    e.min_value = std::max<int64_t>(lo, INT32_MIN);
    e.max_value = std::min<int64_t>(hi, INT32_MAX);
  } else {
    int64_t lo = 0, hi = 0;
    for (const auto& v : e.values) {
      lo = std::min(lo, v.value);
      hi = std::max(hi, v.value);
    }
    int m = 0;
    while (!(hi <= (int64_t{1} << m) - 1 && (lo >= 0 || lo >= -(int64_t{1} << m)))) ++m;
    e.min_value = lo < 0 ? -(int64_t{1} << m) : 0;
    e.max_value = (int64_t{1} << m) - 1;
  }
  int index = static_cast<int>(model_->enums.size());
  enum_by_usr_[usr] = index;
  model_->enums.push_back(std::move(e));
  return index;
}

std::optional<int> Parser::ResolveStruct(CXCursor decl, const std::string& spelling,
                                         const SourceLocation& use, const std::string& what) {
  CXCursor def = clang_getCursorDefinition(decl);
  std::string usr = ToString(clang_getCursorUSR(clang_Cursor_isNull(def) ? decl : def));
  if (auto it = struct_by_usr_.find(usr); it != struct_by_usr_.end()) return it->second;
  if (failed_usr_.count(usr) != 0) return std::nullopt;
  if (clang_Cursor_isNull(def)) {
    diags_->Error(
        use, what + " has type '" + spelling +
                 "', which is only declared; define the struct in a header rpcboot-codegen reads");
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  if (clang_getCursorKind(def) == CXCursor_UnionDecl) {
    diags_->Error(use,
                  what + " has type '" + spelling +
                      "', a union; unions are not supported: use a struct of std::optional fields");
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  // Resolving recurses once per struct within a struct, so the depth is bounded: a header of
  // thousands of nested structs is an error, not a stack overflow. Thrift's C++ reader refuses
  // structs nested deeper than 64, the call's arguments or result counting as one.
  if (struct_depth_ >= kMaxStructDepth) {
    diags_->Error(use, what + " has type '" + spelling + "', the struct " +
                           std::to_string(kMaxStructDepth + 1) +
                           " deep where they nest within one another (through fields, lists, "
                           "maps and optionals); Thrift refuses structs nested deeper than " +
                           std::to_string(kMaxStructDepth) +
                           " within a call's arguments: flatten the types");
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  DepthGuard depth_guard(&struct_depth_);
  StructDecl s;
  if (!FillDecl(def, "struct", spelling, use, what, &s)) {
    failed_usr_.insert(usr);
    return std::nullopt;
  }
  // Register before the fields so that a struct reaching itself through a vector resolves.
  int index = static_cast<int>(model_->structs.size());
  struct_by_usr_[usr] = index;
  model_->structs.push_back(s);
  bool ok = true;
  std::vector<FieldDecl> fields;
  for (CXCursor child : Children(def)) {
    SourceLocation loc = LocationOf(child);
    switch (clang_getCursorKind(child)) {
      case CXCursor_CXXBaseSpecifier:
        diags_->Error(loc, "struct '" + s.name +
                               "' has a base class; rpcboot structs are aggregates without "
                               "bases (Boost.PFR): copy the base's fields into '" +
                               s.name + "' or hold the base as a member");
        ok = false;
        break;
      case CXCursor_Constructor:
        diags_->Error(
            loc,
            "struct '" + s.name +
                "' declares a constructor; rpcboot structs are aggregates (Boost.PFR): remove the "
                "constructor and give fields default member initializers (int64_t id = 0;)");
        ok = false;
        break;
      case CXCursor_CXXMethod:
        if (clang_CXXMethod_isVirtual(child)) {
          diags_->Error(loc, "struct '" + s.name + "' has a virtual method '" +
                                 ToString(clang_getCursorSpelling(child)) +
                                 "'; rpcboot structs are aggregates: remove 'virtual'");
          ok = false;
        }
        break;
      case CXCursor_FieldDecl: {
        FieldDecl field;
        field.name = ToString(clang_getCursorSpelling(child));
        field.loc = loc;
        std::string fwhat = "field '" + field.name + "' of struct '" + s.name + "'";
        if (clang_getCXXAccessSpecifier(child) != CX_CXXPublic) {
          diags_->Error(
              loc,
              fwhat + " is not public; rpcboot structs are aggregates: make every field public");
          ok = false;
          break;
        }
        if (clang_Cursor_isBitField(child)) {
          diags_->Error(loc, fwhat + " is a bit-field; use a plain integer field");
          ok = false;
          break;
        }
        if (field.name.empty()) {
          diags_->Error(loc, "struct '" + s.name + "' has an anonymous member; name it");
          ok = false;
          break;
        }
        auto type = Resolve(clang_getCursorType(child), Position::kField, loc, fwhat);
        if (!type) {
          ok = false;
          break;
        }
        field.type = *type;
        field.initial = DefaultOf(child, field.type);
        if (field.type.kind == Kind::kOptional && !StartsDisengaged(child)) {
          diags_->Error(loc, fwhat +
                                 " is a std::optional whose default member initializer may hold a "
                                 "value: std::nullopt is not sent, so a receiver would read that "
                                 "default in its place; leave the optional without an initializer "
                                 "(or = std::nullopt) and apply the default where you read it, or "
                                 "make it a plain field with that default");
          ok = false;
          break;
        }
        for (const std::string& a : AnnotationsOf(child)) {
          if (a.rfind("rpcboot_id:", 0) != 0) continue;
          std::vector<long long> ids;
          if (!ParseIds(a.substr(11), &ids) || ids.size() != 1) {
            diags_->Error(loc, fwhat + " has RPCBOOT_ID(" + a.substr(11) +
                                   "); the id must be one integer literal, RPCBOOT_ID(4)");
            ok = false;
            break;
          }
          field.id = static_cast<int>(std::min<long long>(ids[0], INT32_MAX));
          field.explicit_id = true;
        }
        fields.push_back(std::move(field));
        break;
      }
      default:
        break;
    }
  }
  if (ok) ok = AssignFieldIds(def, s.name, &fields, &model_->structs[index].reserved);
  if (!ok) {
    failed_usr_.insert(usr);
    struct_by_usr_.erase(usr);
    return std::nullopt;
  }
  model_->structs[index].fields = std::move(fields);
  return index;
}

// Field ids: RPCBOOT_ID on every field or on none (then declaration index + 1); each id in
// range for both wires, used once, and not among the struct's RPCBOOT_RESERVED ids.
bool Parser::AssignFieldIds(CXCursor def, const std::string& name, std::vector<FieldDecl>* fields,
                            std::vector<int>* reserved) {
  bool ok = true;
  SourceLocation where = LocationOf(def);
  auto valid = [](long long id) { return id >= 1 && id <= 32767 && !(id >= 19000 && id <= 19999); };
  const char* kRange =
      " is out of range: ids are 1..32767 (Thrift's i16), and proto reserves 19000..19999";
  for (const std::string& a : AnnotationsOf(def)) {
    if (a.rfind("rpcboot_reserved:", 0) != 0) continue;
    std::vector<long long> ids;
    if (!ParseIds(a.substr(17), &ids)) {
      diags_->Error(where,
                    "struct '" + name + "' has RPCBOOT_RESERVED(" + a.substr(17) +
                        "); list the removed ids as integer literals, RPCBOOT_RESERVED(2, 5)");
      return false;
    }
    for (long long id : ids) {
      if (!valid(id)) {
        diags_->Error(where,
                      "reserved id " + std::to_string(id) + " of struct '" + name + "'" + kRange);
        ok = false;
      } else {
        reserved->push_back(static_cast<int>(id));
      }
    }
  }
  std::size_t explicit_count = 0;
  for (const FieldDecl& f : *fields) explicit_count += f.explicit_id ? 1 : 0;
  if (explicit_count != 0 && explicit_count != fields->size()) {
    for (const FieldDecl& f : *fields) {
      if (f.explicit_id) continue;
      diags_->Error(f.loc, "field '" + f.name + "' of struct '" + name +
                               "' has no RPCBOOT_ID while other fields have one; give every "
                               "field of a struct an id, or none");
      return false;
    }
  }
  std::map<int, std::string> used;
  for (std::size_t i = 0; i < fields->size(); ++i) {
    FieldDecl& f = (*fields)[i];
    if (!f.explicit_id) f.id = static_cast<int>(i + 1);
    std::string fwhat = "field '" + f.name + "' of struct '" + name + "'";
    if (!valid(f.id)) {
      diags_->Error(f.loc, fwhat + " has id " + std::to_string(f.id) + ", which" + kRange);
      ok = false;
      continue;
    }
    if (auto [it, inserted] = used.emplace(f.id, f.name); !inserted) {
      diags_->Error(f.loc, fwhat + " has id " + std::to_string(f.id) + ", which field '" +
                               it->second + "' already has; every field needs its own id");
      ok = false;
    }
    if (std::find(reserved->begin(), reserved->end(), f.id) != reserved->end()) {
      diags_->Error(f.loc, fwhat + " has id " + std::to_string(f.id) +
                               ", which is reserved (RPCBOOT_RESERVED): it belonged to a removed "
                               "field, and peers built before may still send it; use a new id");
      ok = false;
    }
  }
  if (!reserved->empty() && explicit_count == 0 && !fields->empty()) {
    // Reserved ids with implicit ids: removing a field renumbers the ones after it, so reserving
    // cannot help; say so rather than emit IDL that only looks safe.
    diags_->Error(where, "struct '" + name +
                             "' reserves ids but its fields have none of their own; with "
                             "declaration-order ids a removed field shifts every later one: give "
                             "every field an RPCBOOT_ID");
    ok = false;
  }
  std::sort(reserved->begin(), reserved->end());
  reserved->erase(std::unique(reserved->begin(), reserved->end()), reserved->end());
  return ok;
}

void Parser::CollectDependencies(CXTranslationUnit tu) {
  struct State {
    CXTranslationUnit tu;
    Model* model;
  } state{tu, model_};
  clang_getInclusions(
      tu,
      [](CXFile file, CXSourceLocation*, unsigned, CXClientData data) {
        auto* s = static_cast<State*>(data);
        std::string name = ToString(clang_getFileName(file));
        // System headers do not change between builds; the synthetic input is not a file.
        if (name.empty() || name.find("rpcboot_codegen_input") != std::string::npos ||
            clang_Location_isInSystemHeader(clang_getLocationForOffset(s->tu, file, 0))) {
          return;
        }
        std::string real = ToString(clang_File_tryGetRealPathName(file));
        s->model->dependencies.push_back(real.empty() ? name : real);
      },
      &state);
  std::sort(model_->dependencies.begin(), model_->dependencies.end());
  model_->dependencies.erase(std::unique(model_->dependencies.begin(), model_->dependencies.end()),
                             model_->dependencies.end());
}

}  // namespace

bool ParseHeaders(const std::vector<std::string>& clang_args, Model* model, Diagnostics* diags) {
  std::string source;
  for (const auto& h : model->headers) source += "#include \"" + h.real_path + "\"\n";
  const char* kInputName = "rpcboot_codegen_input.cc";
  CXUnsavedFile unsaved{kInputName, source.c_str(), static_cast<unsigned long>(source.size())};

  std::vector<const char*> argv = {"-x", "c++", "-std=c++17", "-fsyntax-only", "-Wno-everything"};
  for (const auto& a : clang_args) argv.push_back(a.c_str());

  std::unique_ptr<void, void (*)(CXIndex)> index(clang_createIndex(0, 0), clang_disposeIndex);
  CXTranslationUnit tu = nullptr;
  std::vector<RegularFilesOnly::Refused> refused;
  CXErrorCode rc;
  {
    RegularFilesOnly guard;
    rc = clang_parseTranslationUnit2(index.get(), kInputName, argv.data(),
                                     static_cast<int>(argv.size()), &unsaved, 1,
                                     CXTranslationUnit_SkipFunctionBodies, &tu);
    refused = guard.refused();
  }
  std::set<std::string> refusal_said;
  auto refusal = [&](const RegularFilesOnly::Refused& file) {
    refusal_said.insert(file.path);
    return "cannot open file '" + file.path + "': it is " + file.kind +
           ", not a regular file; rpcboot-codegen reads headers only from regular files (a "
           "device never ends, a named pipe waits for a writer)";
  };
  if (rc != CXError_Success || tu == nullptr) {
    diags->Error({},
                 "libclang could not parse the headers (error code " + std::to_string(rc) + ")");
    return false;
  }
  std::unique_ptr<CXTranslationUnitImpl, void (*)(CXTranslationUnit)> tu_owner(
      tu, clang_disposeTranslationUnit);

  bool clang_failed = false;
  for (unsigned i = 0, n = clang_getNumDiagnostics(tu); i < n; ++i) {
    CXDiagnostic d = clang_getDiagnostic(tu, i);
    CXDiagnosticSeverity severity = clang_getDiagnosticSeverity(d);
    if (severity >= CXDiagnostic_Error) {
      CXFile file;
      unsigned line, column;
      clang_getSpellingLocation(clang_getDiagnosticLocation(d), &file, &line, &column, nullptr);
      SourceLocation loc;
      if (file != nullptr) loc = {ToString(clang_getFileName(file)), line, column};
      std::string message = ToString(clang_getDiagnosticSpelling(d));
      for (const RegularFilesOnly::Refused& special : refused) {
        if (message.rfind("cannot open file '" + special.path + "'", 0) == 0) {
          message = refusal(special);
        }
      }
      if (message.find("file not found") != std::string::npos) {
        message +=
            "; add the directory that holds it with -I (INCLUDE_DIRS in rpcboot_add_interface)";
      }
      if (message.find("RPCBOOT_") != std::string::npos) {
        message += "; the RPCBOOT_ annotations come from #include \"rpcboot/annotations.h\"";
      }
      diags->Error(loc, message);
      clang_failed = true;
    }
    clang_disposeDiagnostic(d);
  }
  for (const RegularFilesOnly::Refused& file : refused) {  // opened after a fatal error
    if (refusal_said.count(file.path) == 0) diags->Error({}, refusal(file));
    clang_failed = true;
  }
  if (clang_failed) return false;

  Parser parser(model, diags);
  parser.VisitTopLevel(clang_getTranslationUnitCursor(tu));
  parser.CollectDependencies(tu);
  bool input_services = false;
  for (const ServiceDecl& service : model->services)
    input_services |= !model->headers[service.header].imported;
  // A class that looks like a service but is not marked is a mistake, never a types-only header.
  if (!input_services && !diags->has_errors()) {
    for (const auto& [name, loc] : parser.unannotated()) {
      diags->Error(loc, "class '" + name +
                            "' has pure virtual methods but no RPCBOOT_SERVICE annotation, and "
                            "no input header declares a service; write 'class RPCBOOT_SERVICE " +
                            name + "' to serve it");
    }
  }
  if (diags->has_errors()) return false;
  int input_types = parser.ResolveTypesOnlyGroups();
  if (!input_services && input_types == 0 && !diags->has_errors()) {
    diags->Error({},
                 "no RPCBOOT_SERVICE class and no struct or enum in the input headers; mark the "
                 "interface class 'class RPCBOOT_SERVICE Name { ... }' (rpcboot/annotations.h), "
                 "or declare the types a header of types only shares");
  }
  return !diags->has_errors();
}

}  // namespace rpcboot::codegen
