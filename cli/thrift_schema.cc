#include "cli/thrift_schema.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/protocol/TProtocolException.h>
#include <thrift/transport/TBufferTransports.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot::cli {
namespace {

using Json = nlohmann::ordered_json;
using apache::thrift::protocol::TProtocol;
using apache::thrift::protocol::TType;
using Kind = ThriftType::Kind;

// Values nested deeper than this (a struct that holds itself) are refused, on both ways, and so
// are types (a list of lists ...) in a schema.
constexpr int kMaxDepth = 64;

// What is wrong with a value, at `path`; caught where the request or reply is handled whole.
struct BadValue {
  std::string message;
};

// `text` parsed, or InvalidArgument "<what>: <the parser's words>".
absl::StatusOr<Json> ParseJson(std::string_view text, const std::string& what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    std::string why = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (std::size_t end = why.find("] "); end != std::string::npos) why = why.substr(end + 2);
    return absl::InvalidArgumentError(what + ": " + why);
  }
}

[[noreturn]] void Bad(const std::string& path, const std::string& what) {
  throw BadValue{path.empty() ? what : path + ": " + what};
}

std::string Shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

TType WireType(const ThriftType& t) {
  switch (t.kind) {
    case Kind::kVoid:
      return apache::thrift::protocol::T_VOID;
    case Kind::kBool:
      return apache::thrift::protocol::T_BOOL;
    case Kind::kI8:
      return apache::thrift::protocol::T_BYTE;
    case Kind::kI16:
      return apache::thrift::protocol::T_I16;
    case Kind::kI32:
    case Kind::kEnum:
      return apache::thrift::protocol::T_I32;
    case Kind::kI64:
    case Kind::kU64:
      return apache::thrift::protocol::T_I64;
    case Kind::kDouble:
      return apache::thrift::protocol::T_DOUBLE;
    case Kind::kString:
    case Kind::kBinary:
      return apache::thrift::protocol::T_STRING;
    case Kind::kList:
      return apache::thrift::protocol::T_LIST;
    case Kind::kMap:
      return apache::thrift::protocol::T_MAP;
    case Kind::kStruct:
      return apache::thrift::protocol::T_STRUCT;
  }
  return apache::thrift::protocol::T_VOID;
}

const char* WireTypeName(TType type) {
  switch (type) {
    case apache::thrift::protocol::T_BOOL:
      return "bool";
    case apache::thrift::protocol::T_BYTE:
      return "i8";
    case apache::thrift::protocol::T_I16:
      return "i16";
    case apache::thrift::protocol::T_I32:
      return "i32";
    case apache::thrift::protocol::T_I64:
      return "i64";
    case apache::thrift::protocol::T_DOUBLE:
      return "double";
    case apache::thrift::protocol::T_STRING:
      return "string";
    case apache::thrift::protocol::T_LIST:
      return "list";
    case apache::thrift::protocol::T_SET:
      return "set";
    case apache::thrift::protocol::T_MAP:
      return "map";
    case apache::thrift::protocol::T_STRUCT:
      return "struct";
    default:
      return "unknown type";
  }
}

// `limit`: no string or container read may claim more than this many bytes or elements (the
// reader would otherwise allocate what a hostile length says before finding it is not there).
std::unique_ptr<TProtocol> MakeProtocol(
    WireFormat format, std::shared_ptr<apache::thrift::transport::TMemoryBuffer> buffer,
    int32_t limit = 0) {
  if (format == WireFormat::kThriftBinary)
    return std::make_unique<apache::thrift::protocol::TBinaryProtocol>(std::move(buffer), limit,
                                                                       limit, false, true);
  return std::make_unique<apache::thrift::protocol::TCompactProtocol>(std::move(buffer), limit,
                                                                      limit);
}

// ---- the document ----

const std::map<std::string, Kind>& Primitives() {
  static const auto* primitives = new std::map<std::string, Kind>{
      {"void", Kind::kVoid},     {"bool", Kind::kBool},     {"i8", Kind::kI8},
      {"i16", Kind::kI16},       {"i32", Kind::kI32},       {"i64", Kind::kI64},
      {"u64", Kind::kU64},       {"double", Kind::kDouble}, {"string", Kind::kString},
      {"binary", Kind::kBinary},
  };
  return *primitives;
}

// Types of one service: the names it defines are known before any field is read.
class TypeParser {
 public:
  explicit TypeParser(const ThriftService& service) : service_(service) {}

  ThriftType Parse(const Json& j, const std::string& path, int depth = 0) const {
    if (depth > kMaxDepth) Bad(path, absl::StrCat("a type nested deeper than ", kMaxDepth));
    ThriftType t;
    if (j.is_string()) {
      std::string name = j.get<std::string>();
      if (auto p = Primitives().find(name); p != Primitives().end()) {
        t.kind = p->second;
      } else if (service_.structs.count(name) != 0) {
        t.kind = Kind::kStruct;
        t.name = name;
      } else if (service_.enums.count(name) != 0) {
        t.kind = Kind::kEnum;
        t.name = name;
      } else {
        Bad(path, "type '" + name + "' is not defined in the service's \"types\"");
      }
      return t;
    }
    if (j.is_object() && j.size() == 1 && j.contains("list")) {
      t.kind = Kind::kList;
      t.args.push_back(Parse(j["list"], path + ".list", depth + 1));
    } else if (j.is_object() && j.size() == 1 && j.contains("map") && j["map"].is_array() &&
               j["map"].size() == 2) {
      t.kind = Kind::kMap;
      t.args.push_back(Parse(j["map"][0], path + ".map[0]", depth + 1));
      t.args.push_back(Parse(j["map"][1], path + ".map[1]", depth + 1));
    } else {
      Bad(path, "not a type: " + Shown(j));
    }
    if (t.kind == Kind::kMap && t.args[0].kind == Kind::kVoid) Bad(path, "a map of void keys");
    if (t.kind == Kind::kList && t.args[0].kind == Kind::kVoid) Bad(path, "a list of void");
    return t;
  }

  std::vector<ThriftField> Fields(const Json& j, const std::string& path) const {
    if (!j.is_array()) Bad(path, "not a list of fields");
    std::vector<ThriftField> fields;
    std::set<int> ids;
    for (std::size_t i = 0; i < j.size(); ++i) {
      const Json& f = j[i];
      std::string at = absl::StrCat(path, "[", i, "]");
      if (!f.is_object() || !f.contains("id") || !f["id"].is_number_integer() ||
          !f.contains("name") || !f["name"].is_string() || !f.contains("type")) {
        Bad(at, "a field needs \"id\" (an integer), \"name\" and \"type\"");
      }
      int64_t id = f["id"].get<int64_t>();
      if (id < 1 || id > 32767) Bad(at, absl::StrCat("field id ", id, " is outside 1..32767"));
      if (!ids.insert(static_cast<int>(id)).second)
        Bad(at, absl::StrCat("field id ", id, " is used twice"));
      ThriftField field;
      field.id = static_cast<int16_t>(id);
      field.name = f["name"].get<std::string>();
      field.type = Parse(f["type"], at + ".type");
      if (field.type.kind == Kind::kVoid) Bad(at, "a field of type void");
      field.optional =
          f.contains("optional") && f["optional"].is_boolean() && f["optional"].get<bool>();
      fields.push_back(std::move(field));
    }
    return fields;
  }

 private:
  const ThriftService& service_;
};

ThriftService ParseService(const Json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string())
    Bad(path, "a service needs a \"name\"");
  ThriftService service;
  service.name = j["name"].get<std::string>();
  if (!j.contains("methods")) return service;  // listed by name only: no schema embedded
  const Json& types = j.contains("types") ? j["types"] : Json::object();
  if (!types.is_object()) Bad(path + ".types", "not an object");
  // Names first, so that fields may name any type (and a struct itself).
  for (const auto& [name, definition] : types.items()) {
    if (definition.is_object() && definition.contains("struct")) {
      service.structs[name];
    } else if (definition.is_object() && definition.contains("enum") &&
               definition["enum"].is_array()) {
      auto& values = service.enums[name];
      for (const Json& v : definition["enum"]) {
        if (!v.is_array() || v.size() != 2 || !v[0].is_string() || !v[1].is_number_integer())
          Bad(path + ".types." + name, "an enum value is not [\"NAME\", number]");
        values.emplace_back(v[0].get<std::string>(), v[1].get<int64_t>());
      }
    } else {
      Bad(path + ".types." + name, "neither {\"struct\": [...]} nor {\"enum\": [...]}");
    }
  }
  TypeParser parser(service);
  for (const auto& [name, definition] : types.items()) {
    if (definition.contains("struct"))
      service.structs[name] = parser.Fields(definition["struct"], path + ".types." + name);
  }
  if (!j["methods"].is_array()) Bad(path + ".methods", "not a list");
  for (std::size_t i = 0; i < j["methods"].size(); ++i) {
    const Json& m = j["methods"][i];
    std::string at = absl::StrCat(path, ".methods[", i, "]");
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("result"))
      Bad(at, "a method needs a \"name\" and a \"result\"");
    ThriftMethod method;
    method.name = m["name"].get<std::string>();
    method.idempotent =
        m.contains("idempotent") && m["idempotent"].is_boolean() && m["idempotent"].get<bool>();
    method.params =
        parser.Fields(m.contains("params") ? m["params"] : Json::array(), at + ".params");
    method.result = parser.Parse(m["result"], at + ".result");
    service.methods.push_back(std::move(method));
  }
  return service;
}

// ---- JSON to Thrift ----

// Whether a request's key names field `f`: its .thrift name, or the C++ name of a field the
// .thrift renamed (a Thrift keyword, such as "end", is written "end_" there).
bool Named(const ThriftField& f, const std::string& key) {
  return f.name == key || (f.name.size() == key.size() + 1 && f.name.back() == '_' &&
                           f.name.compare(0, key.size(), key) == 0);
}

class Encoder {
 public:
  Encoder(const ThriftService& service, TProtocol& p) : service_(service), p_(p) {}

  void Struct(const std::string& what, const std::vector<ThriftField>& fields, const Json& v,
              const std::string& path, int depth) {
    if (depth > kMaxDepth) Bad(path, absl::StrCat("nested deeper than ", kMaxDepth));
    if (!v.is_object()) Bad(path, Shown(v) + " is not an object (" + what + ")");
    for (const auto& [key, value] : v.items()) {
      bool known = false;
      for (const ThriftField& f : fields) known = known || Named(f, key);
      if (!known) {
        std::string names;
        for (const ThriftField& f : fields)
          absl::StrAppend(&names, names.empty() ? "" : ", ", f.name);
        Bad(path, "no field '" + key + "' in " + what +
                      " (fields: " + (names.empty() ? "none" : names) + ")");
      }
    }
    p_.writeStructBegin("");
    for (const ThriftField& f : fields) {
      auto it = v.begin();
      while (it != v.end() && !Named(f, it.key())) ++it;
      if (it == v.end() || it->is_null()) continue;  // absent
      p_.writeFieldBegin(f.name.c_str(), WireType(f.type), f.id);
      Value(f.type, *it, path.empty() ? f.name : path + "." + f.name, depth + 1);
      p_.writeFieldEnd();
    }
    p_.writeFieldStop();
    p_.writeStructEnd();
  }

  void Value(const ThriftType& t, const Json& v, const std::string& path, int depth) {
    switch (t.kind) {
      case Kind::kVoid:
        Bad(path, "void has no value");
      case Kind::kBool:
        if (!v.is_boolean()) Bad(path, Shown(v) + " is not a bool (true or false)");
        p_.writeBool(v.get<bool>());
        return;
      case Kind::kI8:
        p_.writeByte(static_cast<int8_t>(Integer(v, INT8_MIN, INT8_MAX, "an i8", path)));
        return;
      case Kind::kI16:
        p_.writeI16(static_cast<int16_t>(Integer(v, INT16_MIN, INT16_MAX, "an i16", path)));
        return;
      case Kind::kI32:
        p_.writeI32(static_cast<int32_t>(Integer(v, INT32_MIN, INT32_MAX, "an i32", path)));
        return;
      case Kind::kI64:
        p_.writeI64(Integer(v, INT64_MIN, INT64_MAX, "an i64", path));
        return;
      case Kind::kU64:
        p_.writeI64(static_cast<int64_t>(Unsigned(v, path)));
        return;
      case Kind::kDouble:
        p_.writeDouble(Double(v, path));
        return;
      case Kind::kString:
        if (!v.is_string()) Bad(path, Shown(v) + " is not a string");
        p_.writeString(v.get<std::string>());
        return;
      case Kind::kBinary: {
        std::string bytes;
        if (!v.is_string() || (!absl::Base64Unescape(v.get<std::string>(), &bytes) &&
                               !absl::WebSafeBase64Unescape(v.get<std::string>(), &bytes))) {
          Bad(path, Shown(v) + " is not binary (a base64 string)");
        }
        p_.writeBinary(bytes);
        return;
      }
      case Kind::kEnum: {
        const auto& values = service_.enums.at(t.name);
        if (v.is_string()) {
          for (const auto& [name, number] : values) {
            if (name == v.get<std::string>()) {
              p_.writeI32(static_cast<int32_t>(number));
              return;
            }
          }
          std::string names;
          for (const auto& value : values)
            absl::StrAppend(&names, names.empty() ? "" : ", ", value.first);
          Bad(path, Shown(v) + " is not a value of " + t.name + " (" + names + ")");
        }
        if (!v.is_number_integer()) Bad(path, Shown(v) + " is not a value of " + t.name);
        p_.writeI32(static_cast<int32_t>(Integer(v, INT32_MIN, INT32_MAX, "an enum value", path)));
        return;
      }
      case Kind::kList: {
        if (!v.is_array()) Bad(path, Shown(v) + " is not a list (a JSON array)");
        p_.writeListBegin(WireType(t.args[0]), static_cast<uint32_t>(v.size()));
        for (std::size_t i = 0; i < v.size(); ++i)
          Value(t.args[0], v[i], absl::StrCat(path, "[", i, "]"), depth + 1);
        p_.writeListEnd();
        return;
      }
      case Kind::kMap: {
        if (!v.is_object()) Bad(path, Shown(v) + " is not a map (a JSON object)");
        p_.writeMapBegin(WireType(t.args[0]), WireType(t.args[1]), static_cast<uint32_t>(v.size()));
        for (const auto& [key, value] : v.items()) {
          std::string at = path + "[" + Json(key).dump() + "]";
          Value(t.args[0], Key(t.args[0], key, at), at, depth + 1);
          Value(t.args[1], value, at, depth + 1);
        }
        p_.writeMapEnd();
        return;
      }
      case Kind::kStruct:
        Struct(t.name, service_.structs.at(t.name), v, path, depth + 1);
        return;
    }
  }

 private:
  // A map key, which JSON writes as a string, as the value the key type reads.
  static Json Key(const ThriftType& t, const std::string& key, const std::string& path) {
    if (t.kind == Kind::kBool) {
      if (key != "true" && key != "false") Bad(path, "map key '" + key + "' is not a bool");
      return key == "true";
    }
    if (t.kind == Kind::kStruct || t.kind == Kind::kList || t.kind == Kind::kMap) {
      Bad(path, "map keys of type " + ThriftSchema::TypeName(t) + " cannot be written as JSON");
    }
    return key;  // numbers, enums, doubles and strings all read a string
  }

  static int64_t Integer(const Json& v, int64_t lo, int64_t hi, const char* what,
                         const std::string& path) {
    int64_t x = 0;
    bool ok = false;
    if (v.is_number_unsigned()) {
      ok = v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
      x = static_cast<int64_t>(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      ok = true;
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::trunc(d) != d) Bad(path, Shown(v) + " is not " + what + " (an integer)");
      ok = d >= -9.2e18 && d <= 9.2e18;
      x = ok ? static_cast<int64_t>(d) : 0;
    } else if (v.is_string()) {
      if (!absl::SimpleAtoi(v.get<std::string>(), &x)) {
        uint64_t big = 0;  // digits past int64's range are out of range, not "not a number"
        if (!absl::SimpleAtoi(v.get<std::string>(), &big))
          Bad(path, Shown(v) + " is not " + what + " (an integer)");
      } else {
        ok = true;
      }
    } else {
      Bad(path, Shown(v) + " is not " + what + " (an integer)");
    }
    if (!ok || x < lo || x > hi)
      Bad(path, absl::StrCat(Shown(v), " is out of range for ", what, " (", lo, "..", hi, ")"));
    return x;
  }

  static uint64_t Unsigned(const Json& v, const std::string& path) {
    uint64_t x = 0;
    bool ok = false;
    if (v.is_number_unsigned()) {
      ok = true;
      x = v.get<uint64_t>();
    } else if (v.is_number_integer()) {
      ok = v.get<int64_t>() >= 0;
      x = static_cast<uint64_t>(v.get<int64_t>());
    } else if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::trunc(d) != d) Bad(path, Shown(v) + " is not an unsigned integer");
      ok = d >= 0 && d <= 1.8e19;
      x = ok ? static_cast<uint64_t>(d) : 0;
    } else if (v.is_string()) {
      int64_t negative = 0;
      ok = absl::SimpleAtoi(v.get<std::string>(), &x) && v.get<std::string>()[0] != '-';
      if (!ok && !absl::SimpleAtoi(v.get<std::string>(), &negative))
        Bad(path, Shown(v) + " is not an unsigned integer");
    } else {
      Bad(path, Shown(v) + " is not an unsigned integer");
    }
    if (!ok) Bad(path, Shown(v) + " is out of range for an unsigned i64 (0..18446744073709551615)");
    return x;
  }

  static double Double(const Json& v, const std::string& path) {
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
      if (s == "Infinity") return std::numeric_limits<double>::infinity();
      if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
      double d = 0;
      if (absl::SimpleAtod(s, &d)) return d;
    }
    Bad(path, Shown(v) + " is not a double (a number, \"NaN\", \"Infinity\" or \"-Infinity\")");
  }

  const ThriftService& service_;
  TProtocol& p_;
};

// ---- Thrift to JSON ----

class Decoder {
 public:
  Decoder(const ThriftService& service, TProtocol& p) : service_(service), p_(p) {}

  Json Struct(const std::vector<ThriftField>& fields, const std::string& path, int depth) {
    if (depth > kMaxDepth) Bad(path, absl::StrCat("nested deeper than ", kMaxDepth));
    std::map<int16_t, Json> seen;
    std::string ignored;
    TType type;
    int16_t id;
    p_.readStructBegin(ignored);
    while (true) {
      p_.readFieldBegin(ignored, type, id);
      if (type == apache::thrift::protocol::T_STOP) break;
      const ThriftField* field = nullptr;
      for (const ThriftField& f : fields) field = f.id == id ? &f : field;
      if (field == nullptr) {
        p_.skip(type);  // a field this schema does not know: a newer server
      } else {
        std::string at = path.empty() ? field->name : path + "." + field->name;
        Expect(field->type, type, at);
        seen[id] = Value(field->type, at, depth + 1);
      }
      p_.readFieldEnd();
    }
    p_.readStructEnd();
    Json out = Json::object();
    for (const ThriftField& f : fields) {
      if (auto it = seen.find(f.id); it != seen.end()) out[f.name] = std::move(it->second);
    }
    return out;
  }

  Json Value(const ThriftType& t, const std::string& path, int depth) {
    switch (t.kind) {
      case Kind::kVoid:
        return Json::object();
      case Kind::kBool: {
        bool b = false;
        p_.readBool(b);
        return b;
      }
      case Kind::kI8: {
        int8_t x = 0;
        p_.readByte(x);
        return x;
      }
      case Kind::kI16: {
        int16_t x = 0;
        p_.readI16(x);
        return x;
      }
      case Kind::kI32: {
        int32_t x = 0;
        p_.readI32(x);
        return x;
      }
      case Kind::kI64: {
        int64_t x = 0;
        p_.readI64(x);
        return x;
      }
      case Kind::kU64: {
        int64_t x = 0;
        p_.readI64(x);
        return static_cast<uint64_t>(x);
      }
      case Kind::kDouble: {
        double x = 0;
        p_.readDouble(x);
        if (std::isnan(x)) return "NaN";
        if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
        return x;
      }
      case Kind::kString: {
        std::string s;
        p_.readString(s);
        return s;
      }
      case Kind::kBinary: {
        std::string s;
        p_.readBinary(s);
        return absl::Base64Escape(s);
      }
      case Kind::kEnum: {
        int32_t x = 0;
        p_.readI32(x);
        for (const auto& [name, number] : service_.enums.at(t.name)) {
          if (number == x) return name;
        }
        return x;  // a value this schema does not name
      }
      case Kind::kList: {
        TType element;
        uint32_t size = 0;
        p_.readListBegin(element, size);
        if (size > 0) Expect(t.args[0], element, path + "[]");
        Json out = Json::array();
        for (uint32_t i = 0; i < size; ++i)
          out.push_back(Value(t.args[0], absl::StrCat(path, "[", i, "]"), depth + 1));
        p_.readListEnd();
        return out;
      }
      case Kind::kMap: {
        TType key_type, value_type;
        uint32_t size = 0;
        p_.readMapBegin(key_type, value_type, size);
        if (size > 0) {
          Expect(t.args[0], key_type, path + " key");
          Expect(t.args[1], value_type, path + " value");
        }
        Json out = Json::object();
        for (uint32_t i = 0; i < size; ++i) {
          Json key = Value(t.args[0], path, depth + 1);
          std::string text = key.is_string() ? key.get<std::string>() : key.dump();
          out[text] = Value(t.args[1], path + "[" + Json(text).dump() + "]", depth + 1);
        }
        p_.readMapEnd();
        return out;
      }
      case Kind::kStruct:
        return Struct(service_.structs.at(t.name), path, depth + 1);
    }
    return nullptr;
  }

  static void Expect(const ThriftType& t, TType got, const std::string& path) {
    if (WireType(t) == got) return;
    // Thrift writers may send the element type of an empty container as anything; only
    // non-empty ones are checked (see callers).
    std::string sent = WireTypeName(got);
    Bad(path, absl::StrCat("the server sent ", sent[0] == 'i' ? "an " : "a ", sent,
                           " where the schema says ", ThriftSchema::TypeName(t),
                           ": the schema does not match the server"));
  }

 private:
  const ThriftService& service_;
  TProtocol& p_;
};

}  // namespace

const ThriftMethod* ThriftService::Find(std::string_view method) const {
  for (const ThriftMethod& m : methods) {
    if (m.name == method) return &m;
  }
  return nullptr;
}

absl::StatusOr<ThriftSchema> ThriftSchema::Parse(std::string_view document) {
  absl::StatusOr<Json> parsed = ParseJson(document, "the schema is not JSON");
  if (!parsed.ok()) return parsed.status();
  Json j = *std::move(parsed);
  if (!j.is_object() || !j.contains("rpcboot_thrift_schema"))
    return absl::InvalidArgumentError(
        "not an rpcboot Thrift schema (no \"rpcboot_thrift_schema\" key; rpcboot-codegen writes "
        "one as <stem>.thrift.json)");
  if (!j["rpcboot_thrift_schema"].is_number_integer() || j["rpcboot_thrift_schema"] != 1)
    return absl::InvalidArgumentError(
        "schema version " + Shown(j["rpcboot_thrift_schema"]) +
        " is not one this tool reads (1): use the rpcboot tool of the server's release");
  if (!j.contains("services") || !j["services"].is_array())
    return absl::InvalidArgumentError("the schema has no \"services\" list");
  ThriftSchema schema;
  try {
    for (std::size_t i = 0; i < j["services"].size(); ++i)
      schema.services_.push_back(ParseService(j["services"][i], absl::StrCat("services[", i, "]")));
  } catch (const BadValue& bad) {
    return absl::InvalidArgumentError("the schema is not valid: " + bad.message);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(std::string("the schema is not valid: ") + e.what());
  }
  return schema;
}

const ThriftService* ThriftSchema::Find(std::string_view service) const {
  for (const ThriftService& s : services_) {
    if (s.name == service) return &s;
  }
  return nullptr;
}

std::string ThriftSchema::TypeName(const ThriftType& t) {
  switch (t.kind) {
    case Kind::kVoid:
      return "void";
    case Kind::kBool:
      return "bool";
    case Kind::kI8:
      return "i8";
    case Kind::kI16:
      return "i16";
    case Kind::kI32:
      return "i32";
    case Kind::kI64:
    case Kind::kU64:
      return "i64";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBinary:
      return "binary";
    case Kind::kList:
      return "list<" + TypeName(t.args[0]) + ">";
    case Kind::kMap:
      return "map<" + TypeName(t.args[0]) + ", " + TypeName(t.args[1]) + ">";
    case Kind::kStruct:
    case Kind::kEnum:
      return t.name;
  }
  return "";
}

std::string ThriftSchema::Describe(const ThriftService& service) {
  std::string out = "service " + service.name + " {\n";
  for (const ThriftMethod& m : service.methods) {
    absl::StrAppend(&out, "  ", TypeName(m.result), " ", m.name, "(");
    for (std::size_t i = 0; i < m.params.size(); ++i) {
      const ThriftField& p = m.params[i];
      absl::StrAppend(&out, i > 0 ? ", " : "", p.id, ": ", p.optional ? "optional " : "",
                      TypeName(p.type), " ", p.name);
    }
    absl::StrAppend(&out, ")", m.idempotent ? "  // idempotent" : "", "\n");
  }
  out += "}\n";
  for (const auto& [name, fields] : service.structs) {
    absl::StrAppend(&out, "\nstruct ", name, " {\n");
    for (const ThriftField& f : fields) {
      absl::StrAppend(&out, "  ", f.id, ": ", f.optional ? "optional " : "", TypeName(f.type), " ",
                      f.name, f.type.kind == Kind::kU64 ? "  // unsigned" : "", "\n");
    }
    out += "}\n";
  }
  for (const auto& [name, values] : service.enums) {
    absl::StrAppend(&out, "\nenum ", name, " {\n");
    for (const auto& [value, number] : values)
      absl::StrAppend(&out, "  ", value, " = ", number, "\n");
    out += "}\n";
  }
  return out;
}

absl::StatusOr<std::string> ThriftSchema::EncodeArgs(const ThriftService& service,
                                                     const ThriftMethod& method,
                                                     std::string_view json, WireFormat format) {
  absl::StatusOr<Json> parsed = ParseJson(json, "not JSON");
  if (!parsed.ok()) return parsed.status();
  Json request = *std::move(parsed);
  // One struct parameter: its fields may stand for the whole request, as on gRPC.
  bool names_param = false;
  if (request.is_object()) {
    for (const auto& item : request.items())
      names_param = names_param || (!method.params.empty() && Named(method.params[0], item.key()));
  }
  if (method.params.size() == 1 && method.params[0].type.kind == Kind::kStruct &&
      request.is_object() && !names_param) {
    request = Json::object({{method.params[0].name, std::move(request)}});
  }
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>();
  std::unique_ptr<TProtocol> protocol = MakeProtocol(format, buffer);
  try {
    Encoder(service, *protocol)
        .Struct("the parameters of " + method.name, method.params, request, "", 0);
  } catch (const BadValue& bad) {
    return absl::InvalidArgumentError(bad.message);
  }
  return buffer->getBufferAsString();
}

absl::StatusOr<ThriftReply> ThriftSchema::DecodeResult(const ThriftService& service,
                                                       const ThriftMethod& method,
                                                       std::string_view result, WireFormat format) {
  auto buffer = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(result.data())),
      static_cast<uint32_t>(result.size()), apache::thrift::transport::TMemoryBuffer::OBSERVE);
  // Nothing in the reply is longer than the reply (at least 1: 0 means no limit).
  std::unique_ptr<TProtocol> protocol =
      MakeProtocol(format, buffer, static_cast<int32_t>(std::max<std::size_t>(result.size(), 1)));
  TProtocol& p = *protocol;
  ThriftReply reply;
  // An error (RpcError in field 1) is read as every rpcboot channel reads it.
  if (internal::ThriftResultError(format, result, &reply.code, &reply.message)) {
    reply.ok = false;
    return reply;
  }
  bool has_result = false;
  Json value;
  try {
    Decoder decoder(service, p);
    std::string ignored;
    TType type;
    int16_t id;
    p.readStructBegin(ignored);
    while (true) {
      p.readFieldBegin(ignored, type, id);
      if (type == apache::thrift::protocol::T_STOP) break;
      if (id == 0 && method.result.kind != Kind::kVoid) {
        Decoder::Expect(method.result, type, "result");
        value = decoder.Value(method.result, "result", 0);
        has_result = true;
      } else {
        p.skip(type);
      }
      p.readFieldEnd();
    }
    p.readStructEnd();
  } catch (const BadValue& bad) {
    return absl::InvalidArgumentError("the reply does not fit the schema: " + bad.message);
  } catch (const apache::thrift::TException& e) {
    return absl::DataLossError(std::string("the reply does not decode: ") + e.what());
  }
  if (method.result.kind == Kind::kVoid) {
    reply.json = "{}";
  } else if (!has_result) {
    return absl::DataLossError("the reply carries no result (field 0) and no error");
  } else {
    reply.json = value.dump(2, ' ', false, Json::error_handler_t::replace);
  }
  return reply;
}

}  // namespace rpcboot::cli
