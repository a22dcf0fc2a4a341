#include "codegen/plan.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

namespace rpcboot::codegen {

bool IsThriftReserved(const std::string& name) {
  // Thrift's own keywords and the language keywords thrift-compiler 0.17 rejects for its cpp,
  // java and py generators (measured against the compiler).
  static const std::set<std::string> kReserved = {"BEGIN",        "END",          "False",
                                                  "None",         "True",         "__CLASS__",
                                                  "__DIR__",      "__FILE__",     "__FUNCTION__",
                                                  "__LINE__",     "__METHOD__",   "__NAMESPACE__",
                                                  "abstract",     "alias",        "and",
                                                  "args",         "as",           "assert",
                                                  "async",        "begin",        "binary",
                                                  "bool",         "break",        "byte",
                                                  "case",         "catch",        "class",
                                                  "clone",        "const",        "continue",
                                                  "cpp_include",  "cpp_type",     "declare",
                                                  "def",          "default",      "del",
                                                  "delete",       "do",           "double",
                                                  "dynamic",      "elif",         "else",
                                                  "elseif",       "elsif",        "end",
                                                  "enddeclare",   "endfor",       "endforeach",
                                                  "endif",        "endswitch",    "endwhile",
                                                  "ensure",       "enum",         "except",
                                                  "exception",    "exec",         "extends",
                                                  "finally",      "float",        "for",
                                                  "foreach",      "from",         "function",
                                                  "global",       "goto",         "i16",
                                                  "i32",          "i64",          "i8",
                                                  "if",           "implements",   "import",
                                                  "in",           "include",      "inline",
                                                  "instanceof",   "interface",    "is",
                                                  "lambda",       "list",         "map",
                                                  "module",       "namespace",    "native",
                                                  "new",          "next",         "nil",
                                                  "nonlocal",     "not",          "oneway",
                                                  "optional",     "or",           "package",
                                                  "pass",         "print",        "private",
                                                  "protected",    "public",       "raise",
                                                  "redo",         "register",     "required",
                                                  "rescue",       "retry",        "return",
                                                  "self",         "senum",        "service",
                                                  "set",          "sizeof",       "slist",
                                                  "static",       "string",       "struct",
                                                  "super",        "switch",       "synchronized",
                                                  "then",         "this",         "throw",
                                                  "throws",       "transient",    "try",
                                                  "typedef",      "undef",        "union",
                                                  "unless",       "unsigned",     "until",
                                                  "use",          "var",          "virtual",
                                                  "void",         "volatile",     "when",
                                                  "while",        "with",         "xor",
                                                  "xsd_all",      "xsd_attrs",    "xsd_namespace",
                                                  "xsd_nillable", "xsd_optional", "yield"};
  // Keywords thrift-compiler 0.17 lets through but whose generated code then does not compile:
  // Python's await, Java's, and Go's (measured: python3 import, javac; Go by its spec).
  static const std::set<std::string> kGenerated = {
      "await",       "boolean", "final", "strictfp", "null",   "chan", "defer",
      "fallthrough", "func",    "go",    "range",    "select", "type"};
  return kReserved.count(name) != 0 || kGenerated.count(name) != 0;
}

std::string ProtoJsonKey(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string ThriftSafeName(const std::string& name) {
  // Names the code thrift-compiler generates uses itself (measured the same way): a struct's
  // read, write and printTo (C++) and Equals (Go), the isset macro of <sys/param.h> that Thrift's
  // C++ headers include; a client method's seqid, cseqid and sentry (C++), client,
  // resultHandler, protocolFactory, transport and prot (Java's async client) and ctx (Go). Fine
  // as type and method names, not as fields, parameters or enumerators.
  static const std::set<std::string> kUsed = {
      "read",   "write",  "printTo",       "equals",          "isset",     "seqid", "cseqid",
      "sentry", "client", "resultHandler", "protocolFactory", "transport", "prot",  "ctx"};
  return IsThriftReserved(name) || kUsed.count(name) != 0 ? name + "_" : name;
}

std::string ThriftFieldName(const std::string& field, const std::string& owner) {
  return field == owner ? field + "_" : ThriftSafeName(field);
}

std::string RealText(double value, Kind kind) {
  char text[40];
  std::snprintf(text, sizeof text, kind == Kind::kFloat ? "%.9g" : "%.17g", value);
  return text;
}

std::string JavaPackage(const LanguageOptions& options, const std::string& package) {
  if (options.java_package_prefix.empty()) return package;
  return package.empty() ? options.java_package_prefix
                         : options.java_package_prefix + "." + package;
}

std::string GoPackage(const LanguageOptions& options, const std::string& package,
                      const std::string& stem) {
  std::string path = package.empty() ? stem : package;
  std::replace(path.begin(), path.end(), '.', '/');
  std::string name = path.substr(path.rfind('/') + 1);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  if (!options.go_package_prefix.empty()) path = options.go_package_prefix + "/" + path;
  return path + ";" + name;
}

std::string UpperSnake(const std::string& name, bool strip_k_prefix) {
  std::string s = name;
  if (strip_k_prefix && s.size() > 1 && s[0] == 'k' &&
      std::isupper(static_cast<unsigned char>(s[1]))) {
    s = s.substr(1);
  }
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool upper = std::isupper(static_cast<unsigned char>(c));
    if (upper && i > 0 && s[i - 1] != '_') {
      bool prev_lower = std::islower(static_cast<unsigned char>(s[i - 1])) ||
                        std::isdigit(static_cast<unsigned char>(s[i - 1]));
      bool next_lower = i + 1 < s.size() && std::islower(static_cast<unsigned char>(s[i + 1]));
      if (prev_lower || (next_lower && std::isupper(static_cast<unsigned char>(s[i - 1]))))
        out += '_';
    }
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

namespace {

int HeaderIndexOf(const Model& model, const std::string& real_path) {
  for (std::size_t i = 0; i < model.headers.size(); ++i) {
    if (model.headers[i].real_path == real_path) return static_cast<int>(i);
  }
  return -1;
}

class Planner {
 public:
  Planner(const Model& model, Plan* plan, Diagnostics* diags)
      : model_(model), plan_(plan), diags_(diags) {}

  void Run() {
    plan_->files.assign(model_.headers.size(), FilePlan{});
    plan_->enum_file.assign(model_.enums.size(), -1);
    plan_->struct_file.assign(model_.structs.size(), -1);
    for (const Header& h : model_.headers) groups_ = std::max(groups_, h.group + 1);
    // Group by group: an imported interface's types go where its own run put them, whatever
    // the headers that import it reach.
    for (int g = 0; g < groups_; ++g) {
      for (std::size_t s = 0; s < model_.services.size(); ++s) {
        const ServiceDecl& service = model_.services[s];
        if (GroupOf(service.header) != g) continue;
        plan_->files[service.header].services.push_back(static_cast<int>(s));
        for (const MethodDecl& m : service.methods) {
          for (const FieldDecl& p : m.params) Reach(p.type, service.header);
          Reach(m.result, service.header);
        }
      }
      for (std::size_t h = 0; h < model_.headers.size(); ++h) {
        if (GroupOf(static_cast<int>(h)) != g) continue;
        for (const TypeRef& type : model_.headers[h].types) Reach(type, static_cast<int>(h));
      }
    }
    AssignPackages();
    CheckNames();
    PlanMethods();
    PlanEnumValues();
    PlanImports();
  }

 private:
  int GroupOf(int file) const { return model_.headers[file].group; }

  // The file that emits a type first reached from `referrer_file`: the header that declares it
  // when that header is part of the same codegen run (group), else the referrer (a header not
  // given to codegen, or one of another run that did not emit the type itself).
  int OwnerOf(const std::string& declaring_file, int referrer_file) const {
    int owner = HeaderIndexOf(model_, declaring_file);
    return owner >= 0 && GroupOf(owner) == GroupOf(referrer_file) ? owner : referrer_file;
  }

  // Assigns owners and emission order: post-order, so a type comes after everything it uses.
  void Reach(const TypeRef& type, int referrer_file) {
    for (const TypeRef& arg : type.args) Reach(arg, referrer_file);
    if (type.kind == Kind::kEnum && plan_->enum_file[type.decl] < 0) {
      int owner = OwnerOf(model_.enums[type.decl].file, referrer_file);
      plan_->enum_file[type.decl] = owner;
      plan_->files[owner].enums.push_back(type.decl);
    } else if (type.kind == Kind::kStruct && plan_->struct_file[type.decl] < 0) {
      int owner = OwnerOf(model_.structs[type.decl].file, referrer_file);
      plan_->struct_file[type.decl] = owner;  // set first: a struct may reach itself
      for (const FieldDecl& f : model_.structs[type.decl].fields) Reach(f.type, owner);
      plan_->files[owner].structs.push_back(type.decl);
    }
  }

  void AssignPackages() {
    for (std::size_t f = 0; f < plan_->files.size(); ++f) {
      FilePlan& file = plan_->files[f];
      const std::string* package = nullptr;
      for (int s : file.services) {
        const ServiceDecl& service = model_.services[s];
        if (package == nullptr) {
          package = &service.package;
        } else if (*package != service.package) {
          diags_->Error(service.loc,
                        "service '" + service.name + "' is in namespace '" + service.package +
                            "' but an earlier service in the same header is in '" + *package +
                            "'; one header's services share one namespace (the proto package): "
                            "move it to its own header");
        }
      }
      if (package == nullptr && !file.structs.empty())
        package = &model_.structs[file.structs.front()].package;
      if (package == nullptr && !file.enums.empty())
        package = &model_.enums[file.enums.front()].package;
      if (package != nullptr) file.package = *package;
    }
  }

  // Type names are compared folded (ProtoJsonKey): Go's generators, protoc's and Thrift's, turn
  // `Foo_bar` and `FooBar` into one Go name, and the Java files of `Foobar` and `FooBar` are one
  // file on a file system that ignores case (macOS's, Windows').
  void CheckTypeName(const Decl& decl, const char* kind, int file) {
    type_group_.emplace(ProtoJsonKey(decl.name), GroupOf(file));
    if (auto [it, inserted] = type_names_.emplace(ProtoJsonKey(decl.name), &decl); !inserted) {
      const Decl& other = *it->second;
      diags_->Error(decl.loc,
                    std::string(kind) + " '" + decl.cpp_name.substr(2) +
                        (other.name == decl.name
                             ? "' has the same IDL name '" + decl.name + "' as '" +
                                   other.cpp_name.substr(2) + "' (IDL names are unqualified)"
                             : "' is named like '" + other.cpp_name.substr(2) +
                                   "' but for case and underscores, which Go's generated code "
                                   "(protoc's and Thrift's) and Java's files on a file system "
                                   "that ignores case do not tell apart") +
                        "; rename one of them");
    }
    if (decl.name == "RpcError") {
      diags_->Error(
          decl.loc,
          std::string("the name 'RpcError' is reserved for rpcboot's error exception; rename "
                      "this ") +
              kind);
    }
    if (IsThriftReserved(decl.name)) {
      diags_->Error(decl.loc, std::string(kind) + " name '" + decl.name +
                                  "' is a reserved word in Thrift's target languages; rename it");
    }
  }

  // protoc (3.21) rejects two fields of a proto3 message whose names are equal once lowercased
  // and stripped of underscores (their JSON names would clash); newer protoc compares the JSON
  // names exactly, which this rule covers.
  // protoc's C++ code gives every message static descriptor(), default_instance() and
  // internal_default_instance(): a field of one of these names does not compile there.
  void CheckJsonNames(const std::vector<FieldDecl>& fields, const std::string& what) {
    std::map<std::string, const FieldDecl*> seen;
    for (const FieldDecl& f : fields) {
      if (f.name == "descriptor" || f.name == "default_instance" ||
          f.name == "internal_default_instance") {
        diags_->Error(f.loc, "'" + f.name + "' of " + what + " clashes with the static " + f.name +
                                 "() protoc's C++ code gives every message; rename it");
      }
      if (auto [it, inserted] = seen.emplace(ProtoJsonKey(f.name), &f); !inserted) {
        diags_->Error(f.loc, "'" + f.name + "' and '" + it->second->name + "' of " + what +
                                 " get the same JSON name in the .proto, which protoc rejects "
                                 "('user_id' and 'userId' are one name to it); rename one of them");
      }
    }
    CheckGeneratedAccessors(fields, what);
  }

  // Accessors the IDL compilers generate for one field can be another field's:
  //   - protoc's C++ code names them after the lowercased name, and gives a list or map `x` an
  //     x_size() and a field with presence (a struct, an optional, a default that is not zero:
  //     `optional` in the .proto) a has_x(): so a field x_size or has_x;
  //   - thrift-compiler's Java capitalizes the first letter, and gives a list or map `x`
  //     getXSize() and a list getXIterator(): so a field xSize or xIterator.
  // Either declares a method twice, and the generated code does not compile.
  void CheckGeneratedAccessors(const std::vector<FieldDecl>& fields, const std::string& what) {
    auto lower = [](std::string name) {
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return name;
    };
    auto capitalized = [](std::string name) {
      if (!name.empty())
        name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
      return name;
    };
    std::map<std::string, const FieldDecl*> by_lower, by_capitalized;
    for (const FieldDecl& f : fields) {
      by_lower.emplace(lower(f.name), &f);
      by_capitalized.emplace(capitalized(f.name), &f);
    }
    auto clash = [&](const std::map<std::string, const FieldDecl*>& names, const std::string& name,
                     const std::string& method, const char* compiler, const FieldDecl& owner) {
      auto it = names.find(name);
      if (it == names.end()) return;
      const char* kind = owner.type.kind == Kind::kList  ? "list "
                         : owner.type.kind == Kind::kMap ? "map "
                                                         : "";
      diags_->Error(it->second->loc, "'" + it->second->name + "' of " + what +
                                         " is named like the " + method + "() " + compiler +
                                         " gives " + kind + "field '" + owner.name +
                                         "', and that code would not compile; rename one of them");
    };
    for (const FieldDecl& f : fields) {
      const Kind kind = f.type.kind;
      const std::string low = lower(f.name), cap = capitalized(f.name);
      if (kind == Kind::kList || kind == Kind::kMap) {
        clash(by_lower, low + "_size", low + "_size", "protoc's C++ code", f);
        clash(by_capitalized, cap + "Size", "get" + cap + "Size", "thrift-compiler's Java", f);
      }
      if (kind == Kind::kList)
        clash(by_capitalized, cap + "Iterator", "get" + cap + "Iterator", "thrift-compiler's Java",
              f);
      if (kind == Kind::kStruct || kind == Kind::kOptional || f.initial.nonzero)
        clash(by_lower, "has_" + low, "has_" + low, "protoc's C++ code", f);
    }
  }

  void CheckFiles() {
    for (std::size_t f = 0; f < plan_->files.size(); ++f) {
      const FilePlan& file = plan_->files[f];
      if (model_.headers[f].imported) continue;  // checked by its own run
      if (file.services.empty() && file.structs.empty() && file.enums.empty() &&
          !model_.services.empty()) {
        diags_->Error({}, "the header '" + model_.headers[f].path +
                              "' declares no RPCBOOT_SERVICE class and no type a service uses, so "
                              "nothing would be generated from it; leave it out of the inputs");
      }
    }
  }

  void CheckNames() {
    CheckFiles();
    for (std::size_t i = 0; i < model_.structs.size(); ++i) {
      if (plan_->struct_file[i] >= 0)
        CheckJsonNames(model_.structs[i].fields, "struct '" + model_.structs[i].name + "'");
    }
    for (const ServiceDecl& service : model_.services) {
      for (const MethodDecl& m : service.methods)
        CheckJsonNames(m.params, "method '" + service.name + "::" + m.name + "' (parameters)");
    }
    for (std::size_t i = 0; i < model_.enums.size(); ++i) {
      if (plan_->enum_file[i] >= 0) CheckTypeName(model_.enums[i], "enum", plan_->enum_file[i]);
    }
    for (std::size_t i = 0; i < model_.structs.size(); ++i) {
      if (plan_->struct_file[i] >= 0)
        CheckTypeName(model_.structs[i], "struct", plan_->struct_file[i]);
    }
    for (const ServiceDecl& service : model_.services) {
      CheckTypeName(service, "service", service.header);
      std::map<std::string, const MethodDecl*> folded;
      for (const MethodDecl& m : service.methods) {
        if (auto [it, inserted] = folded.emplace(ProtoJsonKey(m.name), &m); !inserted) {
          diags_->Error(m.loc, "methods '" + service.name + "::" + it->second->name + "' and '" +
                                   service.name + "::" + m.name +
                                   "' differ only in case or underscores, and Go's generated "
                                   "clients (gRPC's and Thrift's) and gRPC's Java stubs give "
                                   "them one name; rename one of them");
        }
        if (IsThriftReserved(m.name)) {
          diags_->Error(
              m.loc,
              "method name '" + m.name +
                  "' is a reserved word in Thrift's target languages (the Thrift message name "
                  "is the method name); rename it");
        }
      }
    }
  }

  // gRPC needs one message in and one out; a single struct parameter and a struct result are used
  // as they are, any other shape gets <Method>Request / <Method>Response, or
  // <Service><Method>Request / ...Response when another method of the package wants the same
  // name or a type has it. The choice never depends on declaration order. An optional result
  // travels in <Method>Response on Thrift too (a Thrift result cannot be absent).
  void PlanMethods() {
    plan_->methods.resize(model_.services.size());
    for (std::size_t s = 0; s < model_.services.size(); ++s) {
      for (const MethodDecl& m : model_.services[s].methods) {
        MethodPlan mp;
        mp.request_is_param = m.params.size() == 1 && m.params[0].type.kind == Kind::kStruct;
        mp.response_is_return = m.result.kind == Kind::kStruct;
        mp.thrift_result_wrapped = m.result.kind == Kind::kOptional;
        plan_->methods[s].push_back(mp);
      }
    }
    // Group by group, each seeing what it and the groups before it declare, as its own run did:
    // an imported interface keeps the names its files already have.
    // Message names are compared folded, as type names are (CheckTypeName).
    std::map<std::string, std::map<std::string, int>> wanted;  // package -> short name -> count
    std::map<std::string, std::set<std::string>> taken;        // package -> names given
    // (package, message name) -> the method it was made for, and its group
    std::map<std::pair<std::string, std::string>, std::pair<std::string, int>> made;
    for (int g = 0; g < groups_; ++g) {
      for (std::size_t s = 0; s < model_.services.size(); ++s) {
        const ServiceDecl& service = model_.services[s];
        if (GroupOf(service.header) != g) continue;
        for (std::size_t i = 0; i < service.methods.size(); ++i) {
          const MethodPlan& mp = plan_->methods[s][i];
          const std::string& name = service.methods[i].name;
          if (!mp.request_is_param) ++wanted[service.package][ProtoJsonKey(name + "Request")];
          if (!mp.response_is_return) ++wanted[service.package][ProtoJsonKey(name + "Response")];
        }
      }
      auto type_named = [&](const std::string& name) {
        auto it = type_group_.find(ProtoJsonKey(name));
        return it != type_group_.end() && it->second <= g;
      };
      for (std::size_t s = 0; s < model_.services.size(); ++s) {
        const ServiceDecl& service = model_.services[s];
        if (GroupOf(service.header) != g) continue;
        for (std::size_t i = 0; i < service.methods.size(); ++i) {
          const MethodDecl& m = service.methods[i];
          MethodPlan& mp = plan_->methods[s][i];
          auto name_for = [&](const std::string& suffix) {
            std::string short_name = m.name + suffix;
            std::string chosen = short_name;
            if (wanted[service.package][ProtoJsonKey(short_name)] != 1 || type_named(short_name)) {
              chosen = service.name + short_name;
              if (type_named(chosen) || wanted[service.package].count(ProtoJsonKey(chosen)) != 0 ||
                  !taken[service.package].insert(ProtoJsonKey(chosen)).second) {
                diags_->Error(m.loc, "cannot name the gRPC message for method '" + service.name +
                                         "::" + m.name + "': '" + short_name + "' and '" + chosen +
                                         "' are both taken by other types or methods of "
                                         "package '" +
                                         service.package + "'; rename the method or the struct");
              }
            }
            made.emplace(std::make_pair(service.package, ProtoJsonKey(chosen)),
                         std::make_pair(service.name + "::" + m.name, g));
            return chosen;
          };
          mp.request = mp.request_is_param ? model_.structs[m.params[0].type.decl].name
                                           : name_for("Request");
          mp.response =
              mp.response_is_return ? model_.structs[m.result.decl].name : name_for("Response");
        }
      }
    }
    // A type of a later group named like a message an imported interface already made.
    auto check = [&](const Decl& decl, int file) {
      auto it = made.find({plan_->files[file].package, ProtoJsonKey(decl.name)});
      if (it == made.end() || it->second.second >= GroupOf(file)) return;
      const std::string& method = it->second.first;
      diags_->Error(decl.loc, "'" + decl.name +
                                  "' is the name of the gRPC message made for method '" + method +
                                  "' of an imported interface in the same package; "
                                  "rename this type");
    };
    for (std::size_t i = 0; i < model_.structs.size(); ++i) {
      if (plan_->struct_file[i] >= 0) check(model_.structs[i], plan_->struct_file[i]);
    }
    for (std::size_t i = 0; i < model_.enums.size(); ++i) {
      if (plan_->enum_file[i] >= 0) check(model_.enums[i], plan_->enum_file[i]);
    }
  }

  // proto3 enum values share the package's scope, so each gets its enum's name as a prefix.
  void PlanEnumValues() {
    plan_->proto_enum_values.resize(model_.enums.size());
    std::map<std::string, std::map<std::string, const EnumDecl*>> seen;  // package -> value -> enum
    for (std::size_t i = 0; i < model_.enums.size(); ++i) {
      if (plan_->enum_file[i] < 0) continue;
      const EnumDecl& e = model_.enums[i];
      std::string prefix = UpperSnake(e.name, false) + "_";
      auto& scope = seen[plan_->files[plan_->enum_file[i]].package];
      for (const Enumerator& v : e.values) {
        std::string value = UpperSnake(v.name, true);
        if (value.rfind(prefix, 0) != 0) value = prefix + value;
        if (auto [it, inserted] = scope.emplace(value, &e); !inserted) {
          diags_->Error(e.loc, "enumerator '" + e.name + "::" + v.name + "' becomes proto value '" +
                                   value + "', which '" + it->second->name +
                                   "' already uses; rename one of the enumerators");
        }
        plan_->proto_enum_values[i].push_back(value);
      }
    }
  }

  void CollectFiles(const TypeRef& type, std::set<int>* files) const {
    if (type.kind == Kind::kEnum) files->insert(plan_->enum_file[type.decl]);
    if (type.kind == Kind::kStruct) files->insert(plan_->struct_file[type.decl]);
    for (const TypeRef& arg : type.args) CollectFiles(arg, files);
  }

  void PlanImports() {
    std::vector<std::set<int>> uses(plan_->files.size());
    for (std::size_t f = 0; f < plan_->files.size(); ++f) {
      for (int s : plan_->files[f].structs) {
        for (const FieldDecl& field : model_.structs[s].fields) CollectFiles(field.type, &uses[f]);
      }
      for (int s : plan_->files[f].services) {
        for (const MethodDecl& m : model_.services[s].methods) {
          for (const FieldDecl& p : m.params) CollectFiles(p.type, &uses[f]);
          CollectFiles(m.result, &uses[f]);
        }
      }
      uses[f].erase(static_cast<int>(f));
      plan_->files[f].imports.assign(uses[f].begin(), uses[f].end());
    }
    PlanThriftErrors();
    // Thrift and protoc reject import cycles.
    std::vector<int> state(plan_->files.size(), 0);
    std::function<bool(int)> cyclic = [&](int f) {
      if (state[f] == 1) return true;
      if (state[f] == 2) return false;
      state[f] = 1;
      for (int g : plan_->files[f].imports) {
        if (cyclic(g)) return true;
      }
      state[f] = 2;
      return false;
    };
    for (std::size_t f = 0; f < plan_->files.size(); ++f) {
      if (cyclic(static_cast<int>(f))) {
        diags_->Error(
            {},
            "the headers '" + model_.headers[f].path +
                "' and another input header use each other's types, and IDL files cannot import "
                "each other; move the shared types into one header");
        return;
      }
    }
  }

  // After PlanImports. Files are visited imports first, so a file sees what its imports chose.
  void PlanThriftErrors() {
    std::vector<int> state(plan_->files.size(), 0);  // 1: visiting (a cycle: reported later)
    std::function<void(int)> visit = [&](int f) {
      if (state[f] != 0) return;
      state[f] = 1;
      for (int i : plan_->files[f].imports) visit(i);
      state[f] = 2;
      if (plan_->files[f].services.empty()) return;
      std::vector<bool> seen(plan_->files.size(), false);
      std::function<int(int)> declared_in = [&](int g) -> int {
        for (int i : plan_->files[g].imports) {
          if (seen[i]) continue;
          seen[i] = true;
          if (plan_->files[i].thrift_error_file == i) return i;
          if (int found = declared_in(i); found >= 0) return found;
        }
        return -1;
      };
      int found = declared_in(f);
      plan_->files[f].thrift_error_file = found >= 0 ? found : f;
    };
    for (std::size_t f = 0; f < plan_->files.size(); ++f) visit(static_cast<int>(f));
  }

  const Model& model_;
  Plan* plan_;
  Diagnostics* diags_;
  // Keyed by the folded name (ProtoJsonKey).
  std::map<std::string, const Decl*> type_names_;
  std::map<std::string, int> type_group_;  // -> group of the file that emits the type
  int groups_ = 0;
};

}  // namespace

bool MakePlan(const Model& model, Plan* plan, Diagnostics* diags) {
  Planner(model, plan, diags).Run();
  return !diags->has_errors();
}

}  // namespace rpcboot::codegen
