#include <google/protobuf/descriptor.pb.h>

#include <cctype>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>

#include "codegen/compat.h"
#include "codegen/emitters.h"

namespace rpcboot::codegen {
namespace {

std::string FullName(const std::string& package, const std::string& name) {
  return package.empty() ? name : package + "." + name;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string NameArray(const std::vector<std::string>& names) {
  std::string out = "std::array<std::string_view, " + std::to_string(names.size()) + ">{";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i > 0 ? ", " : "") + Quoted(names[i]);
  return out + "}";
}

// The emitted .proto of `file` as a serialized FileDescriptorProto (what gRPC server reflection
// hands out), parsed by protobuf's own parser so that it is exactly what protoc would make.
std::string DescriptorBytes(const Model& model, const Plan& plan, int file) {
  google::protobuf::FileDescriptorProto descriptor;
  std::string error;
  if (!ParseProtoText(EmitProto(model, plan, file), &descriptor, &error)) {
    // The emitter wrote a .proto protobuf cannot read: a bug in rpcboot-codegen, not the header.
    throw std::runtime_error("rpcboot-codegen: internal error: the emitted " +
                             model.headers[file].stem + ".proto does not parse: " + error);
  }
  descriptor.set_name(model.headers[file].stem + ".proto");
  return descriptor.SerializeAsString();
}

// `bytes` as a C++ expression of type std::string (octal escapes; NULs kept).
std::string BytesLiteral(const std::string& bytes) {
  std::string out = "std::string(\n      \"";
  std::size_t column = 0;
  for (unsigned char c : bytes) {
    char escaped[8];
    std::snprintf(escaped, sizeof escaped, "\\%03o", c);
    out += escaped;
    if (++column % 24 == 0) out += "\"\n      \"";
  }
  out += "\",\n      " + std::to_string(bytes.size()) + ")";
  return out;
}

// `file` and every file it imports, directly or not, imports first.
std::vector<int> WithImports(const Plan& plan, int file) {
  std::vector<int> order;
  std::vector<bool> seen(plan.files.size(), false);
  std::function<void(int)> visit = [&](int f) {
    if (seen[f]) return;
    seen[f] = true;
    for (int i : plan.files[f].imports) visit(i);
    order.push_back(f);
  };
  visit(file);
  return order;
}

// A type's description is emitted by one generated header only. Two interfaces built apart that
// both reach a type (each emitting it) would otherwise meet as a redefinition error deep in a
// template; this marks the type ("::a::B" -> RPCBOOT_DESCRIBED_1a1B) and says what to do. The
// description follows, closed by "#endif".
std::string DescribedGuard(const std::string& cpp_name, const std::string& header) {
  std::string macro = "RPCBOOT_DESCRIBED_";
  for (std::size_t start = 2; start <= cpp_name.size();) {
    std::size_t end = cpp_name.find("::", start);
    if (end == std::string::npos) end = cpp_name.size();
    macro += std::to_string(end - start) + cpp_name.substr(start, end - start);
    start = end + 2;
  }
  return "\n#ifdef " + macro + "\n#error \"" + cpp_name.substr(2) +
         " is described by two generated headers: " + header +
         " and one included before it. Its interfaces were generated apart: name the one that "
         "declares the type in the other's rpcboot_add_interface(... DEPENDS ...) (rpcboot-codegen "
         "--import), which then imports the type instead of emitting it again\"\n#else\n#define " +
         macro + "\n";
}

}  // namespace

// "::rpcboot::ServiceInfo<::shop::ShopService>::Method<0>"
std::string MethodInfo(const ServiceDecl& d, std::size_t m) {
  return "::rpcboot::ServiceInfo<" + d.cpp_name + ">::Method<" + std::to_string(m) + ">";
}

// The override's declaration: types come from the member function pointer, so they match the
// interface exactly without spelling the user's types again.
std::string ProxySignature(const ServiceDecl& d, std::size_t m, bool qualified) {
  const MethodDecl& md = d.methods[m];
  std::string info = MethodInfo(d, m);
  std::string sig = "typename " + info + "::Return ";
  if (qualified) sig += "Proxy<" + d.cpp_name + ">::";
  sig += md.name + "(";
  for (std::size_t i = 0; i < md.params.size(); ++i) {
    if (i > 0) sig += ", ";
    sig += "std::tuple_element_t<" + std::to_string(i) + ", typename " + info + "::RawParams> a" +
           std::to_string(i);
  }
  sig += ")";
  if (md.is_const) sig += " const";
  return sig;
}

std::string EmitCppHeader(const Model& model, const Plan& plan, int file) {
  const FilePlan& fp = plan.files[file];
  std::ostringstream out;
  out << Banner(model, file, "//");
  out << "// Names, ids and method tables for rpcboot's codecs, servers and client proxies.\n"
         "#pragma once\n\n"
         "#include <array>\n#include <cstddef>\n#include <cstdint>\n#include <memory>\n#include "
         "<string_view>\n"
         "#include <tuple>\n#include <utility>\n\n"
         "#include \"rpcboot/channel.h\"\n"
         "#include \"rpcboot/internal/binding.h\"\n"
         "#include \"rpcboot/reflect.h\"\n"
      << "#include " << Quoted(model.headers[file].include_path) << "\n";
  for (int f : fp.imports)
    out << "#include " << Quoted(model.headers[f].stem + ".rpcboot.h") << "\n";
  out << "\nnamespace rpcboot {\n";
  for (int e : fp.enums) {
    const EnumDecl& d = model.enums[e];
    std::vector<std::string> names;
    for (const auto& v : d.values) names.push_back(v.name);
    out << DescribedGuard(d.cpp_name, model.headers[file].stem + ".rpcboot.h");
    out << "\ntemplate <>\nstruct EnumInfo<" << d.cpp_name << "> {\n"
        << "  static constexpr std::string_view kName = " << Quoted(d.name) << ";\n"
        << "  static constexpr std::string_view kFullName = "
        << Quoted(FullName(fp.package, d.name)) << ";\n"
        << "  static constexpr auto kNames = " << NameArray(names) << ";\n"
        << "  static constexpr std::array<" << d.cpp_name << ", " << d.values.size()
        << "> kValues{";
    for (std::size_t i = 0; i < d.values.size(); ++i)
      out << (i > 0 ? ", " : "") << d.cpp_name << "::" << d.values[i].name;
    out << "};\n"
        << "  static constexpr std::int64_t kMinValue = " << d.min_value << ";\n"
        << "  static constexpr std::int64_t kMaxValue = " << d.max_value << ";\n};\n#endif\n";
  }
  for (int s : fp.structs) {
    const StructDecl& d = model.structs[s];
    std::vector<std::string> names;
    for (const auto& f : d.fields) names.push_back(f.name);
    out << DescribedGuard(d.cpp_name, model.headers[file].stem + ".rpcboot.h");
    out << "\ntemplate <>\nstruct StructInfo<" << d.cpp_name << "> {\n"
        << "  static constexpr std::string_view kName = " << Quoted(d.name) << ";\n"
        << "  static constexpr std::string_view kFullName = "
        << Quoted(FullName(fp.package, d.name)) << ";\n"
        << "  static constexpr auto kFieldNames = " << NameArray(names) << ";\n"
        << "  static constexpr std::array<std::uint16_t, " << d.fields.size() << "> kFieldIds{";
    for (std::size_t i = 0; i < d.fields.size(); ++i) out << (i > 0 ? ", " : "") << d.fields[i].id;
    out << "};\n"
        << "  static constexpr std::array<std::uint8_t, " << d.fields.size()
        << "> kNonZeroDefaults{";
    // What the proto encoder needs of each default member initializer: 0 zero (a zero is left
    // off the wire), 1 not zero (a zero is written), 2 not known here (asked at run time).
    for (std::size_t i = 0; i < d.fields.size(); ++i) {
      const FieldDecl& f = d.fields[i];
      int state = f.type.kind == Kind::kBytes ? 2
                  : f.initial.nonzero         ? (f.initial.known ? 1 : 2)
                                              : 0;
      out << (i > 0 ? ", " : "") << state;
    }
    out << "};\n"
        << "  static constexpr auto kFieldPointers = std::make_tuple(";
    for (std::size_t i = 0; i < d.fields.size(); ++i)
      out << (i > 0 ? ", " : "") << "&" << d.cpp_name << "::" << d.fields[i].name;
    out << ");\n};\n#endif\n";
  }
  for (int s : fp.services) {
    const ServiceDecl& d = model.services[s];
    out << "\ntemplate <>\nstruct ServiceInfo<" << d.cpp_name << "> {\n"
        << "  static constexpr std::string_view kName = " << Quoted(d.name) << ";\n"
        << "  static constexpr std::string_view kFullName = " << Quoted(FullName(d.package, d.name))
        << ";\n"
        << "  static constexpr std::size_t kMethodCount = " << d.methods.size() << ";\n"
        << "  template <std::size_t I>\n  struct Method;\n};\n";
    for (std::size_t m = 0; m < d.methods.size(); ++m) {
      const MethodDecl& md = d.methods[m];
      const MethodPlan& mp = plan.methods[s][m];
      std::vector<std::string> params;
      for (const auto& p : md.params) params.push_back(p.name);
      out << "\ntemplate <>\nstruct ServiceInfo<" << d.cpp_name << ">::Method<" << m << ">\n"
          << "    : MethodTraits<&" << d.cpp_name << "::" << md.name << "> {\n"
          << "  static constexpr std::string_view kName = " << Quoted(md.name) << ";\n"
          << "  static constexpr bool kIdempotent = " << (md.idempotent ? "true" : "false") << ";\n"
          << "  static constexpr auto kParamNames = " << NameArray(params) << ";\n"
          << "  static constexpr bool kProtoRequestIsParam = "
          << (mp.request_is_param ? "true" : "false") << ";\n"
          << "  static constexpr bool kProtoResponseIsReturn = "
          << (mp.response_is_return ? "true" : "false") << ";\n"
          << "  static constexpr std::string_view kProtoRequest = "
          << Quoted(FullName(d.package, mp.request)) << ";\n"
          << "  static constexpr std::string_view kProtoResponse = "
          << Quoted(FullName(d.package, mp.response)) << ";\n};\n";
    }
  }
  out << "\n}  // namespace rpcboot\n";
  if (!fp.services.empty()) out << "\nnamespace rpcboot::internal {\n";
  for (int s : fp.services) {
    const ServiceDecl& d = model.services[s];
    out << "\ntemplate <>\nconst ServiceBinding& BindingOf<" << d.cpp_name << ">();\n";
    out << "\n// Implements " << d.cpp_name.substr(2) << " by calling through a Channel.\n"
        << "template <>\nclass Proxy<" << d.cpp_name << "> final : public " << d.cpp_name
        << " {\n public:\n"
        << "  explicit Proxy(std::shared_ptr<Channel> channel) : channel_(std::move(channel)) {}\n";
    for (std::size_t m = 0; m < d.methods.size(); ++m)
      out << "  " << ProxySignature(d, m, false) << " override;\n";
    out << "\n private:\n  std::shared_ptr<Channel> channel_;\n};\n";
  }
  if (!fp.services.empty()) out << "\n}  // namespace rpcboot::internal\n";
  return out.str();
}

std::string EmitCppSource(const Model& model, const Plan& plan, int file) {
  const FilePlan& fp = plan.files[file];
  std::ostringstream out;
  out << Banner(model, file, "//");
  out << "// Checks, at compile time, that each struct still has the fields rpcboot-codegen read;\n"
         "// defines each service's binding (method table and codec entry points) and its client\n"
         "// proxy's methods.\n"
      << "#include " << Quoted(model.headers[file].stem + ".rpcboot.h") << "\n\n"
      << "#include \"rpcboot/internal/binding_impl.h\"\n";
  if (!fp.structs.empty()) out << "\nnamespace {\n";
  for (int s : fp.structs) {
    const StructDecl& d = model.structs[s];
    // A struct binds to exactly as many names as it has fields: an error on one of these lines
    // says the header has changed since it was read (regenerate from it).
    out << "\n// rpcboot-codegen read " << d.fields.size() << " field(s) of "
        << d.cpp_name.substr(2) << " in " << model.headers[file].include_path
        << "; if this does not compile, regenerate.\n"
        << "[[maybe_unused]] void CheckFieldsOf" << s << "(const " << d.cpp_name << "& v) {\n";
    if (d.fields.empty()) {
      out << "  static_assert(std::is_empty_v<" << d.cpp_name << ">);\n  (void)v;\n";
    } else {
      out << "  [[maybe_unused]] const auto& [";
      for (std::size_t i = 0; i < d.fields.size(); ++i)
        out << (i > 0 ? ", " : "") << "field" << i + 1;
      out << "] = v;\n";
    }
    out << "}\n";
  }
  if (!fp.structs.empty()) out << "\n}  // namespace\n";
  if (!fp.services.empty()) out << "\nnamespace rpcboot::internal {\n";
  for (int s : fp.services) {
    const ServiceDecl& d = model.services[s];
    out << "\ntemplate <>\nconst ServiceBinding& BindingOf<" << d.cpp_name << ">() {\n"
        << "  static const ServiceBinding* binding = [] {\n"
        << "    auto* made = new ServiceBinding(MakeServiceBinding<" << d.cpp_name << ">());\n"
        << "    // The emitted .proto files as FileDescriptorProtos, imports first (for gRPC "
           "server\n"
        << "    // reflection).\n";
    for (int f : WithImports(plan, file)) {
      out << "    made->descriptors.push_back(" << BytesLiteral(DescriptorBytes(model, plan, f))
          << ");\n";
    }
    out << "    // The service's Thrift schema as JSON (served to tools by "
           "rpcboot.ThriftReflection).\n"
        << "    made->thrift_schema = R\"schema(" << EmitThriftSchema(model, plan, s)
        << ")schema\";\n";
    out << "    return made;\n  }();\n  return *binding;\n}\n";
    for (std::size_t m = 0; m < d.methods.size(); ++m) {
      out << "\n"
          << ProxySignature(d, m, true) << " {\n  return CallMethod<" << d.cpp_name << ", " << m
          << ">(*channel_";
      for (std::size_t i = 0; i < d.methods[m].params.size(); ++i) out << ", a" << i;
      out << ");\n}\n";
    }
  }
  if (!fp.services.empty()) out << "\n}  // namespace rpcboot::internal\n";
  return out.str();
}

}  // namespace rpcboot::codegen
