#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "codegen/emitters.h"

namespace rpcboot::codegen {
namespace {

// Builds one message: its fields, plus the wrapper messages proto needs for a list or map that
// sits inside another container or an optional. Wrappers are nested in the message that uses
// them, so they never collide across messages or files.
class MessageBuilder {
 public:
  MessageBuilder(const Model& model, const Plan& plan, int file,
                 const std::set<std::string>& global_names)
      : model_(model), plan_(plan), file_(file), global_names_(global_names) {}

  // `initial`: a struct field's default; one that is not zero makes the field `optional` (see
  // FieldDefault), with the default in a comment.
  void AddField(const std::string& name, const TypeRef& t, std::size_t number,
                const FieldDefault& initial = {}) {
    fields_ << "  " << (initial.nonzero ? "optional " : "") << FieldType(t) << " " << name << " = "
            << number << ";";
    if (initial.nonzero) fields_ << "  // unset: " << DefaultText(t, initial);
    fields_ << "\n";
  }

  void Reserve(const std::vector<int>& ids) {
    if (ids.empty()) return;
    fields_ << "  reserved ";
    for (std::size_t i = 0; i < ids.size(); ++i) fields_ << (i > 0 ? ", " : "") << ids[i];
    fields_ << ";\n";
  }

  std::string Finish(const std::string& message_name) const {
    std::string body = nested_ + fields_.str();
    if (body.empty()) return "\nmessage " + message_name + " {}\n";
    return "\nmessage " + message_name + " {\n" + body + "}\n";
  }

 private:
  std::string Ref(const Decl& decl, int owner) const {
    const std::string& package = plan_.files[owner].package;
    if (package == plan_.files[file_].package) return decl.name;
    return "." + (package.empty() ? decl.name : package + "." + decl.name);
  }

  static const char* Scalar(Kind kind) {
    switch (kind) {
      case Kind::kBool:
        return "bool";
      case Kind::kInt8:
      case Kind::kInt16:
      case Kind::kInt32:
        return "int32";
      case Kind::kInt64:
        return "int64";
      case Kind::kUint8:
      case Kind::kUint16:
      case Kind::kUint32:
        return "uint32";
      case Kind::kUint64:
        return "uint64";
      case Kind::kFloat:
        return "float";
      case Kind::kDouble:
        return "double";
      case Kind::kString:
        return "string";
      case Kind::kBytes:
        return "bytes";
      default:
        return nullptr;
    }
  }

  // A default as the reader of the .proto would write it.
  std::string DefaultText(const TypeRef& t, const FieldDefault& d) const {
    if (!d.known) return "the C++ default";
    switch (t.kind) {
      case Kind::kBool:
        return d.integer != 0 ? "true" : "false";
      case Kind::kUint64:
        return std::to_string(static_cast<uint64_t>(d.integer));
      case Kind::kFloat:
      case Kind::kDouble:
        return RealText(d.real, t.kind);
      case Kind::kString: {
        std::string out = "\"";
        for (char c : d.text) {
          auto u = static_cast<unsigned char>(c);
          if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
          } else if (u < 0x20 || u == 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\x%02x", u);
            out += esc;
          } else {
            out += c;
          }
        }
        return out + "\"";
      }
      case Kind::kEnum: {
        const EnumDecl& e = model_.enums[t.decl];
        for (std::size_t i = 0; i < e.values.size(); ++i)
          if (e.values[i].value == d.integer) return plan_.proto_enum_values[t.decl][i];
        return std::to_string(d.integer);
      }
      default:
        return std::to_string(d.integer);
    }
  }

  // A CamelCase name for a type's shape, for wrapper message names.
  std::string Shape(const TypeRef& t) const {
    switch (t.kind) {
      case Kind::kEnum:
        return model_.enums[t.decl].name;
      case Kind::kStruct:
        return model_.structs[t.decl].name;
      case Kind::kList:
        return Shape(t.args[0]) + "List";
      case Kind::kMap:
        return Shape(t.args[0]) + Shape(t.args[1]) + "Map";
      default: {
        std::string s = Scalar(t.kind);
        s[0] = static_cast<char>(s[0] - 'a' + 'A');
        return s;
      }
    }
  }

  // The type of a single value: a repeated element, a map value, an optional's value.
  std::string ValueType(const TypeRef& t) {
    if (t.kind == Kind::kEnum) return Ref(model_.enums[t.decl], plan_.enum_file[t.decl]);
    if (t.kind == Kind::kStruct) return Ref(model_.structs[t.decl], plan_.struct_file[t.decl]);
    if (IsContainer(t)) return Wrapper(t);
    return Scalar(t.kind);
  }

  std::string Wrapper(const TypeRef& t) {
    std::string shape = Shape(t);
    auto it = wrappers_.find(shape);
    if (it != wrappers_.end()) return it->second;
    std::string name = shape;
    while (global_names_.count(name) != 0) name += "_";
    wrappers_[shape] = name;
    std::string field = "    " + FieldType(t) + " values = 1;\n";
    nested_ += "  message " + name + " {\n" + field + "  }\n";
    return name;
  }

  std::string FieldType(const TypeRef& t) {
    switch (t.kind) {
      case Kind::kList:
        return "repeated " + ValueType(t.args[0]);
      case Kind::kMap:
        return "map<" + std::string(Scalar(t.args[0].kind)) + ", " + ValueType(t.args[1]) + ">";
      case Kind::kOptional: {
        const TypeRef& v = t.args[0];
        if (v.kind == Kind::kStruct || IsContainer(v))
          return ValueType(v);  // messages carry presence
        return "optional " + ValueType(v);
      }
      default:
        return ValueType(t);
    }
  }

  const Model& model_;
  const Plan& plan_;
  int file_;
  const std::set<std::string>& global_names_;
  std::map<std::string, std::string> wrappers_;
  std::string nested_;
  std::ostringstream fields_;
};

class ProtoEmitter {
 public:
  ProtoEmitter(const Model& model, const Plan& plan, int file)
      : model_(model), plan_(plan), file_(file) {
    for (const auto& e : model.enums) names_.insert(e.name);
    for (const auto& s : model.structs) names_.insert(s.name);
  }

  std::string Emit() {
    const FilePlan& fp = plan_.files[file_];
    out_ << Banner(model_, file_, "//") << "syntax = \"proto3\";\n";
    if (!fp.package.empty()) out_ << "\npackage " << fp.package << ";\n";
    if (!fp.imports.empty()) out_ << "\n";
    for (int f : fp.imports) out_ << "import \"" << model_.headers[f].stem << ".proto\";\n";
    out_ << "\noption java_package = \""
         << JavaPackage(plan_.options, fp.package.empty() ? model_.headers[file_].stem : fp.package)
         << "\";\noption java_multiple_files = true;\n";
    // protoc-gen-go refuses an import path without a '/' or '.' ("shop"): a one-word package
    // gets a go_package only with --go-package-prefix, and a note where it would be.
    std::string go = GoPackage(plan_.options, fp.package, model_.headers[file_].stem);
    if (go.substr(0, go.find(';')).find_first_of("./") != std::string::npos) {
      out_ << "option go_package = \"" << go << "\";\n";
    } else {
      out_ << "// go_package: run rpcboot-codegen with --go-package-prefix (your Go module path);\n"
              "// protoc-gen-go needs an import path with a '/' or '.'.\n";
    }
    for (int e : fp.enums) EmitEnum(e);
    for (int s : fp.structs) {
      const StructDecl& decl = model_.structs[s];
      MessageBuilder b(model_, plan_, file_, names_);
      for (const FieldDecl& f : decl.fields) b.AddField(f.name, f.type, f.id, f.initial);
      b.Reserve(decl.reserved);
      out_ << b.Finish(decl.name);
    }
    for (int s : fp.services) EmitService(s);
    return out_.str();
  }

 private:
  void EmitEnum(int index) {
    const EnumDecl& e = model_.enums[index];
    const std::vector<std::string>& names = plan_.proto_enum_values[index];
    std::set<int64_t> values;
    bool alias = false;
    for (const Enumerator& v : e.values) alias |= !values.insert(v.value).second;
    out_ << "\nenum " << e.name << " {\n";
    if (alias) out_ << "  option allow_alias = true;\n";
    // proto3 wants the zero value first; a C++ enum without one gets an UNSPECIFIED value.
    if (values.count(0) == 0) {
      std::string zero = UpperSnake(e.name, false) + "_UNSPECIFIED";
      while (std::find(names.begin(), names.end(), zero) != names.end()) zero += "_";
      out_ << "  " << zero << " = 0;\n";
    }
    for (std::size_t i = 0; i < e.values.size(); ++i) {
      if (e.values[i].value == 0) out_ << "  " << names[i] << " = 0;\n";
    }
    for (std::size_t i = 0; i < e.values.size(); ++i) {
      if (e.values[i].value != 0) out_ << "  " << names[i] << " = " << e.values[i].value << ";\n";
    }
    out_ << "}\n";
  }

  void EmitService(int index) {
    const ServiceDecl& service = model_.services[index];
    for (std::size_t m = 0; m < service.methods.size(); ++m) {
      const MethodDecl& method = service.methods[m];
      const MethodPlan& mp = plan_.methods[index][m];
      if (!mp.request_is_param) {
        MessageBuilder b(model_, plan_, file_, names_);
        for (std::size_t i = 0; i < method.params.size(); ++i)
          b.AddField(method.params[i].name, method.params[i].type, i + 1);
        out_ << b.Finish(mp.request);
      }
      if (!mp.response_is_return) {
        MessageBuilder b(model_, plan_, file_, names_);
        if (method.result.kind != Kind::kVoid) b.AddField("value", method.result, 1);
        out_ << b.Finish(mp.response);
      }
    }
    out_ << "\nservice " << service.name << " {\n";
    for (std::size_t m = 0; m < service.methods.size(); ++m) {
      const MethodDecl& method = service.methods[m];
      const MethodPlan& mp = plan_.methods[index][m];
      std::string request = mp.request, response = mp.response;
      if (mp.request_is_param) request = MessageRef(method.params[0].type);
      if (mp.response_is_return) response = MessageRef(method.result);
      out_ << "  rpc " << method.name << "(" << request << ") returns (" << response << ");\n";
    }
    out_ << "}\n";
  }

  std::string MessageRef(const TypeRef& t) const {
    const StructDecl& s = model_.structs[t.decl];
    const std::string& package = plan_.files[plan_.struct_file[t.decl]].package;
    if (package == plan_.files[file_].package) return s.name;
    return "." + (package.empty() ? s.name : package + "." + s.name);
  }

  const Model& model_;
  const Plan& plan_;
  int file_;
  std::set<std::string> names_;
  std::ostringstream out_;
};

}  // namespace

std::string EmitProto(const Model& model, const Plan& plan, int file) {
  return ProtoEmitter(model, plan, file).Emit();
}

}  // namespace rpcboot::codegen
