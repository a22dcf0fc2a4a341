#include "codegen/compat.h"

#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <map>

namespace rpcboot::codegen {

namespace pb = google::protobuf;

// Braces nested in a .proto read back: rpcboot nests a wrapper message in the one that uses it,
// and types nest at most 100 deep (parser.cc).
constexpr int kMaxProtoNesting = 200;

bool ParseProtoText(const std::string& text, pb::FileDescriptorProto* file, std::string* error) {
  struct Collector : pb::io::ErrorCollector {
    std::string first;
    void AddError(int line, int column, const std::string& message) override {
      if (first.empty())
        first = std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
    }
  } errors;
  // Braces first, in one pass: protobuf's parser takes time and memory that grow with the square
  // of the nesting (each nested message's full name), so a small file of messages nested
  // thousands deep would take minutes and gigabytes. rpcboot's own nest at most some 100 deep.
  {
    pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
    pb::io::Tokenizer tokenizer(&input, &errors);
    int depth = 0;
    while (tokenizer.Next()) {
      const pb::io::Tokenizer::Token& token = tokenizer.current();
      if (token.type != pb::io::Tokenizer::TYPE_SYMBOL) continue;
      if (token.text == "{" && ++depth > kMaxProtoNesting) {
        *error = std::to_string(token.line + 1) + ":" + std::to_string(token.column + 1) +
                 ": declarations nested more than " + std::to_string(kMaxProtoNesting) + " deep";
        return false;
      }
      if (token.text == "}") --depth;
    }
  }
  pb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  pb::io::Tokenizer tokenizer(&input, &errors);
  pb::compiler::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.Parse(&tokenizer, file)) {
    *error = errors.first.empty() ? "not a .proto file" : errors.first;
    return false;
  }
  return true;
}

namespace {

using Field = pb::FieldDescriptorProto;

// A field's wire shape as one readable string: "optional int64", "repeated .rich.Point".
std::string Shape(const Field& f) {
  static const char* const kTypes[] = {"",         "double",   "float",   "int64",  "uint64",
                                       "int32",    "fixed64",  "fixed32", "bool",   "string",
                                       "group",    "message",  "bytes",   "uint32", "enum",
                                       "sfixed32", "sfixed64", "sint32",  "sint64"};
  // Presence (proto3 `optional`) is not part of the shape: the bytes are the same with or
  // without it.
  std::string out;
  if (f.label() == Field::LABEL_REPEATED) out = "repeated ";
  if (f.has_type_name()) return out + f.type_name();  // a message or an enum, by name
  int t = static_cast<int>(f.type());
  return out + (t > 0 && t < 19 ? kTypes[t] : "?");
}

bool Reserved(const pb::DescriptorProto& m, int number) {
  for (const auto& r : m.reserved_range()) {
    if (number >= r.start() && number < r.end()) return true;
  }
  return false;
}

void CompareMessage(const std::string& name, const pb::DescriptorProto& before,
                    const pb::DescriptorProto& after, std::vector<std::string>* out) {
  std::map<int, const Field*> now;
  for (const Field& f : after.field()) now[f.number()] = &f;
  for (const Field& f : before.field()) {
    std::string what = "field " + std::to_string(f.number()) + " '" + f.name() + "' of " + name;
    auto it = now.find(f.number());
    if (it == now.end()) {
      if (!Reserved(after, f.number())) {
        out->push_back(what +
                       " was removed without reserving its id: peers still send it; keep "
                       "the field, or reserve the id (RPCBOOT_RESERVED(" +
                       std::to_string(f.number()) +
                       ") on the struct, with RPCBOOT_ID on the rest)");
      }
      continue;
    }
    const Field& g = *it->second;
    if (g.name() != f.name()) {
      out->push_back(what + " is now named '" + g.name() +
                     "' (fields moved or were removed without ids of their own?); give the fields "
                     "RPCBOOT_ID with their old ids");
    }
    // Unnamed scalar shapes compare by type, named ones by the type's name (message or enum).
    std::string was = Shape(f), is = Shape(g);
    if (f.has_type_name() != g.has_type_name() || was != is) {
      out->push_back(what + " changed type from '" + was + "' to '" + is + "'");
    }
  }
  std::map<std::string, const pb::DescriptorProto*> nested;
  for (const auto& n : after.nested_type()) nested[n.name()] = &n;
  for (const auto& n : before.nested_type()) {
    auto it = nested.find(n.name());
    if (it != nested.end()) CompareMessage(name + "." + n.name(), n, *it->second, out);
  }
}

}  // namespace

std::vector<std::string> BreakingChanges(const pb::FileDescriptorProto& before,
                                         const pb::FileDescriptorProto& after) {
  std::vector<std::string> out;
  if (before.package() != after.package()) {
    out.push_back("package changed from '" + before.package() + "' to '" + after.package() +
                  "': every gRPC path and Thrift service name changes with it");
  }
  std::map<std::string, const pb::DescriptorProto*> messages;
  for (const auto& m : after.message_type()) messages[m.name()] = &m;
  for (const auto& m : before.message_type()) {
    auto it = messages.find(m.name());
    if (it != messages.end()) CompareMessage(m.name(), m, *it->second, &out);
  }
  std::map<std::string, const pb::EnumDescriptorProto*> enums;
  for (const auto& e : after.enum_type()) enums[e.name()] = &e;
  for (const auto& e : before.enum_type()) {
    auto it = enums.find(e.name());
    if (it == enums.end()) continue;  // a type no longer used: its fields are reported
    std::map<int, std::string> now;
    for (const auto& v : it->second->value()) now.emplace(v.number(), v.name());
    for (const auto& v : e.value()) {
      auto value = now.find(v.number());
      if (value == now.end()) {
        out.push_back("value " + v.name() + " = " + std::to_string(v.number()) + " of enum " +
                      e.name() + " was removed: peers may still send it");
      } else if (value->second != v.name()) {
        out.push_back("value " + std::to_string(v.number()) + " of enum " + e.name() +
                      " was renamed from " + v.name() + " to " + value->second);
      }
    }
  }
  std::map<std::string, const pb::ServiceDescriptorProto*> services;
  for (const auto& s : after.service()) services[s.name()] = &s;
  for (const auto& s : before.service()) {
    auto it = services.find(s.name());
    if (it == services.end()) {
      out.push_back("service " + s.name() + " was removed");
      continue;
    }
    std::map<std::string, const pb::MethodDescriptorProto*> methods;
    for (const auto& m : it->second->method()) methods[m.name()] = &m;
    for (const auto& m : s.method()) {
      auto method = methods.find(m.name());
      if (method == methods.end()) {
        out.push_back("method " + s.name() + "." + m.name() +
                      " was removed: callers get UNIMPLEMENTED");
        continue;
      }
      if (method->second->input_type() != m.input_type() ||
          method->second->output_type() != m.output_type()) {
        out.push_back("method " + s.name() + "." + m.name() + " changed from (" + m.input_type() +
                      ") returns (" + m.output_type() + ") to (" + method->second->input_type() +
                      ") returns (" + method->second->output_type() + ")");
      }
    }
  }
  return out;
}

}  // namespace rpcboot::codegen
