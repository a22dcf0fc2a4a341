#include "discovery/instance.h"

#include <locale.h>
#include <stdlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rpcboot::discovery {

using Json = nlohmann::ordered_json;

namespace {
constexpr const char* kPayloadClass =
    "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance";

std::optional<int> ParseInt(const std::string& s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}
}  // namespace

bool Instance::IsUp() const {
  auto it = metadata.find(std::string(kStatusKey));
  return it == metadata.end() || it->second == "UP";
}

bool Instance::IsForeign() const { return metadata.count(std::string(kProtocolsKey)) == 0; }

std::optional<int> Instance::PortFor(std::string_view protocol, bool foreign) const {
  auto valid = [](std::optional<int> number) -> std::optional<int> {
    if (!number || *number <= 0 || *number > 65535) return std::nullopt;
    return number;
  };
  auto protocols = metadata.find(std::string(kProtocolsKey));
  if (protocols == metadata.end()) {
    // Not an rpcboot instance. grpc-spring-boot-starter publishes its gRPC port as gRPC_port
    // (earlier versions: gRPC.port): such an instance says it speaks gRPC there.
    if (protocol == "grpc") {
      for (std::string_view key : {kSpringGrpcPortKey, kSpringGrpcPortLegacyKey}) {
        auto it = metadata.find(std::string(key));
        if (it != metadata.end()) return valid(ParseInt(it->second));
      }
    }
    return foreign ? valid(port) : std::nullopt;
  }
  // "grpc,thrift", tolerantly: "thrift, grpc" and "GRPC" list the same protocols.
  bool listed = false;
  for (absl::string_view entry : absl::StrSplit(protocols->second, ',')) {
    listed |= absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(entry),
                                     absl::string_view(protocol.data(), protocol.size()));
  }
  if (!listed) return std::nullopt;
  auto port_entry = metadata.find("rpcboot." + std::string(protocol) + ".port");
  if (port_entry == metadata.end()) return std::nullopt;
  return valid(ParseInt(port_entry->second));
}

bool Instance::SpeaksTHeader() const {
  auto it = metadata.find(std::string(kThriftHeaderKey));
  return it != metadata.end() && absl::EqualsIgnoreCase(it->second, "true");
}

bool Instance::ServesTls() const {
  auto it = metadata.find(std::string(kTlsKey));
  return it != metadata.end() && absl::EqualsIgnoreCase(it->second, "true");
}

int Instance::Weight() const {
  auto it = metadata.find(std::string(kWeightKey));
  if (it == metadata.end()) return 100;
  std::optional<int> value = ParseInt(it->second);
  return value && *value >= 0 ? *value : 100;
}

std::string ToJson(const Instance& instance) {
  Json metadata = Json::object();
  for (const auto& [key, value] : instance.metadata) metadata[key] = value;
  auto part = [](const char* value, bool variable) {
    return Json{{"value", value}, {"variable", variable}};
  };
  Json j;
  j["name"] = instance.name;
  j["id"] = instance.id;
  j["address"] = instance.address;
  j["port"] = instance.port;
  j["sslPort"] = instance.ssl_port ? Json(*instance.ssl_port) : Json(nullptr);
  j["payload"] = Json{{"@class", kPayloadClass},
                      {"id", instance.name + "-" + instance.id},
                      {"name", instance.name},
                      {"metadata", metadata}};
  j["registrationTimeUTC"] = instance.registration_time_ms;
  j["serviceType"] = instance.service_type;
  j["uriSpec"] =
      Json{{"parts", Json::array({part("scheme", true), part("://", false), part("address", true),
                                  part(":", false), part("port", true)})}};
  return j.dump();
}

namespace {

// JSON (RFC 8259) read in one pass, told to `sax` as it goes: null(), boolean(), integer(int64_t),
// unsigned_integer(uint64_t) (above INT64_MAX), number() (any other number), string(s), key(s),
// start_object(), end_object(), start_array(), end_array(). Strings arrive unescaped, and only
// as valid UTF-8. No recursion: nesting costs a byte of heap per level, whatever the input.
template <typename Sax>
class JsonReader {
 public:
  // `open` and `str` are the reader's stack and string buffer, lent by the caller (and kept
  // from one text to the next: no allocation once they have grown).
  JsonReader(std::string_view text, Sax& sax, std::vector<char>& open, std::string& str)
      : p_(text.data()), end_(text.data() + text.size()), sax_(sax), open_(open), str_(str) {
    open_.clear();
  }

  // False when the text is not one JSON value (then `sax` may have seen a part of it).
  bool Read() {
    // A byte order mark before the text is skipped, as common JSON readers do.
    if (end_ - p_ >= 3 && std::string_view(p_, 3) == "\xEF\xBB\xBF") p_ += 3;
    while (true) {
      bool opened = false;
      if (!Value(&opened)) return false;
      if (opened) continue;  // its first value follows
      // After a value: the end of the text, or what follows it in its object or array.
      while (true) {
        Space();
        if (open_.empty()) return p_ == end_;
        if (p_ == end_) return false;
        const char c = *p_++;
        if (c == ',') {
          if (open_.back() == '{' && !Key()) return false;
          break;  // the next value
        }
        if (c != (open_.back() == '{' ? '}' : ']')) return false;
        Closed(open_.back());
        open_.pop_back();
      }
    }
  }

 private:
  // A scalar, an empty object or array, or the opening of one (`opened`; then its first key, if
  // an object, is read too, and the next value is its first).
  bool Value(bool* opened) {
    Space();
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
      case '[': {
        const char bracket = *p_++;
        if (bracket == '{') {
          sax_.start_object();
        } else {
          sax_.start_array();
        }
        Space();
        if (p_ < end_ && *p_ == (bracket == '{' ? '}' : ']')) {
          ++p_;
          Closed(bracket);
          return true;
        }
        open_.push_back(bracket);
        *opened = true;
        return bracket == '[' || Key();
      }
      case '"':
        if (!String()) return false;
        sax_.string(str_);
        return true;
      case 't':
      case 'f':
        if (Literal("true")) {
          sax_.boolean(true);
        } else if (Literal("false")) {
          sax_.boolean(false);
        } else {
          return false;
        }
        return true;
      case 'n':
        if (!Literal("null")) return false;
        sax_.null();
        return true;
      default:
        return Number();
    }
  }

  // The object or array opened by `bracket` has ended.
  void Closed(char bracket) {
    if (bracket == '{') {
      sax_.end_object();
    } else {
      sax_.end_array();
    }
  }

  void Space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool Literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word)
      return false;
    p_ += word.size();
    return true;
  }

  // After '{' or ',' in an object: the key and its colon.
  bool Key() {
    Space();
    if (p_ == end_ || *p_ != '"' || !String()) return false;
    sax_.key(str_);
    Space();
    if (p_ == end_ || *p_ != ':') return false;
    ++p_;
    return true;
  }

  bool Digits() {
    const char* from = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > from;
  }

  bool Number() {
    const char* from = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (!(*p_ >= '1' && *p_ <= '9') || !Digits()) {
      return false;
    }
    bool integer = true;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (!Digits()) return false;
      integer = false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!Digits()) return false;
      integer = false;
    }
    if (integer) {
      int64_t v;
      if (auto [at, ec] = std::from_chars(from, p_, v); ec == std::errc() && at == p_) {
        sax_.integer(v);
        return true;
      }
      uint64_t u;
      if (auto [at, ec] = std::from_chars(from, p_, u); ec == std::errc() && at == p_) {
        sax_.unsigned_integer(u);
        return true;
      }
    }
    // Any other number must be finite as a double (JSON readers refuse the rest), read in the
    // C locale whatever the process's is.
    static const locale_t c_locale = ::newlocale(LC_NUMERIC_MASK, "C", static_cast<locale_t>(0));
    const std::string token(from, p_);
    if (!std::isfinite(::strtod_l(token.c_str(), nullptr, c_locale))) return false;
    sax_.number();
    return true;
  }

  // Four hex digits of a \u escape.
  bool Hex4(uint32_t* v) {
    if (end_ - p_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      const char c = *p_;
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return false;
      *v = *v << 4 | static_cast<uint32_t>(d);
    }
    return true;
  }

  void PutUtf8(uint32_t cp) {
    if (cp < 0x80) {
      str_.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      str_.push_back(static_cast<char>(0xC0 | cp >> 6));
      str_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      str_.push_back(static_cast<char>(0xE0 | cp >> 12));
      str_.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      str_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      str_.push_back(static_cast<char>(0xF0 | cp >> 18));
      str_.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
      str_.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      str_.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // After a backslash in a string.
  bool Escape() {
    if (p_ == end_) return false;
    const char e = *p_++;
    // The one-character escapes, and what each stands for.
    constexpr std::string_view kEscapes = "\"\\/bfnrt", kMeanings = "\"\\/\b\f\n\r\t";
    if (std::size_t i = kEscapes.find(e); i != std::string_view::npos) {
      str_.push_back(kMeanings[i]);
      return true;
    }
    if (e != 'u') return false;
    uint32_t cp;
    if (!Hex4(&cp) || (cp >= 0xDC00 && cp <= 0xDFFF)) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low one must follow
      uint32_t low;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
      p_ += 2;
      if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    PutUtf8(cp);
    return true;
  }

  // A multi-byte UTF-8 sequence, at its lead byte: the continuation bytes' ranges (the
  // second's narrowed by the lead) rule out overlong forms, surrogates and code points past
  // U+10FFFF.
  bool Utf8() {
    const auto c = static_cast<unsigned char>(*p_);
    int more;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      more = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      more = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      more = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (end_ - p_ <= more) return false;
    for (int i = 1; i <= more; ++i) {
      const auto b = static_cast<unsigned char>(p_[i]);
      if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return false;
    }
    str_.append(p_, static_cast<std::size_t>(more + 1));
    p_ += more + 1;
    return true;
  }

  // Whether any of the 8 bytes of `v` is below 0x20 or above 0x7F, or is '"' or '\\': the
  // bytes a string cannot take as they are (exact for the word as a whole).
  static bool AnySpecial(uint64_t v) {
    constexpr uint64_t kOnes = 0x0101010101010101u, kHighs = 0x8080808080808080u;
    auto any_zero = [&](uint64_t x) { return (x - kOnes) & ~x & kHighs; };
    return ((v - 0x20 * kOnes) & ~v & kHighs) != 0 || (v & kHighs) != 0 ||
           any_zero(v ^ ('"' * kOnes)) != 0 || any_zero(v ^ ('\\' * kOnes)) != 0;
  }

  // A string, at its opening quote, into str_.
  bool String() {
    ++p_;
    str_.clear();
    while (true) {
      const char* run = p_;
      // Eight plain bytes at a time, then byte by byte up to the next special one.
      for (uint64_t word; end_ - p_ >= 8; p_ += 8) {
        std::memcpy(&word, p_, 8);
        if (AnySpecial(word)) break;
      }
      while (p_ < end_ && static_cast<unsigned char>(*p_) >= 0x20 &&
             static_cast<unsigned char>(*p_) < 0x80 && *p_ != '"' && *p_ != '\\') {
        ++p_;
      }
      str_.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++p_;
        if (!Escape()) return false;
      } else if (!Utf8()) {
        return false;
      }
    }
  }

  const char* p_;
  const char* const end_;
  Sax& sax_;
  std::vector<char>& open_;  // '{' or '[' per level
  std::string& str_;
};

// Reads an instance's JSON as it is lexed, without building a document: a watcher of a large
// application parses every instance that joins it. The same reading as a document would give:
// the last of a repeated key counts, and a value of another type than expected counts as absent.
class InstanceReader {
 public:
  // Which object a value belongs to.
  enum class Place { kTop, kPayload, kMetadata, kOther };
  // What the current key names, worked out once per key (a value is then told where it goes
  // without comparing the key again).
  enum class Field {
    kNone,
    kName,
    kId,
    kAddress,
    kServiceType,
    kPort,
    kSslPort,
    kTime,
    kPayload,   // at the top
    kMetadata,  // in the payload
  };
  struct Frame {
    Place place = Place::kOther;
    bool array = false;
    std::string key;  // objects: the key of the value being read
    Field field = Field::kNone;
  };

  // `frames` is lent by the caller, as JsonReader's buffers are: a frame's key keeps its room.
  explicit InstanceReader(std::vector<Frame>& frames) : frames_(frames) {}
  void null() { Other(); }
  void boolean(bool) { Other(); }
  void integer(int64_t v) { Integer(v, true); }
  void unsigned_integer(uint64_t) { Integer(0, false); }
  void number() { Other(); }
  void string(std::string& v) {
    if (depth_ == 0 || top().array) return;
    const Frame& frame = top();
    if (frame.place == Place::kMetadata) {
      out_.metadata[frame.key] = v;
      return;
    }
    Other();
    if (frame.field == Field::kServiceType) {
      out_.service_type = v;
    } else if (auto [text, given] = StringOf(frame.field); text != nullptr) {
      *text = v;
      *given = true;
    }
  }
  void start_object() { Open(false); }
  void start_array() { Open(true); }
  void end_object() { --depth_; }
  void end_array() { --depth_; }
  void key(const std::string& v) {
    Frame& frame = top();
    frame.key = v;
    frame.field = FieldOf(frame.place, v);
  }

  absl::StatusOr<Instance> Finish(bool parsed) && {
    if (!parsed) return absl::InvalidArgumentError("instance data is not JSON");
    if (!object_) return absl::InvalidArgumentError("instance data is not a JSON object");
    for (auto [key, has] :
         {std::pair{"name", has_name_}, {"id", has_id_}, {"address", has_address_}}) {
      if (!has) {
        return absl::InvalidArgumentError(
            absl::StrCat("instance field '", key, "' is missing or not a string"));
      }
    }
    if (!port_.has_value() || *port_ < 0 || *port_ > 65535) {
      return absl::InvalidArgumentError("instance field 'port' is missing or not a port number");
    }
    out_.port = static_cast<int>(*port_);
    if (ssl_port_.has_value()) out_.ssl_port = static_cast<int>(*ssl_port_);
    if (time_.has_value()) out_.registration_time_ms = *time_;
    return std::move(out_);
  }

 private:
  static Field FieldOf(Place place, std::string_view key) {
    if (place == Place::kPayload) return key == "metadata" ? Field::kMetadata : Field::kNone;
    if (place != Place::kTop) return Field::kNone;
    static constexpr std::pair<std::string_view, Field> kTopFields[] = {
        {"name", Field::kName},
        {"id", Field::kId},
        {"address", Field::kAddress},
        {"serviceType", Field::kServiceType},
        {"port", Field::kPort},
        {"sslPort", Field::kSslPort},
        {"registrationTimeUTC", Field::kTime},
        {"payload", Field::kPayload},
    };
    for (const auto& [name, field] : kTopFields) {
      if (key == name) return field;
    }
    return Field::kNone;
  }

  // The innermost object's current key gets a value: whatever that key held before is gone
  // (the caller then keeps the value if it is of the type wanted).
  void Other() {
    if (depth_ == 0 || top().array) return;
    const Frame& frame = top();
    if (frame.place == Place::kMetadata) {
      out_.metadata.erase(frame.key);
      return;
    }
    if (std::optional<int64_t>* integer = IntegerOf(frame.field)) {
      integer->reset();
    } else if (bool* given = StringOf(frame.field).second) {
      *given = false;
    } else if (frame.field == Field::kServiceType) {
      out_.service_type = Instance().service_type;
    } else if (frame.field == Field::kPayload || frame.field == Field::kMetadata) {
      out_.metadata.clear();
    }
  }
  // Where the string a required field names goes, and its flag; nulls for other fields.
  std::pair<std::string*, bool*> StringOf(Field field) {
    switch (field) {
      case Field::kName:
        return {&out_.name, &has_name_};
      case Field::kId:
        return {&out_.id, &has_id_};
      case Field::kAddress:
        return {&out_.address, &has_address_};
      default:
        return {nullptr, nullptr};
    }
  }
  // Where the integer a field names goes; null for other fields.
  std::optional<int64_t>* IntegerOf(Field field) {
    return field == Field::kPort      ? &port_
           : field == Field::kSslPort ? &ssl_port_
           : field == Field::kTime    ? &time_
                                      : nullptr;
  }
  // An integer (`fits`: in int64_t).
  void Integer(int64_t v, bool fits) {
    Other();
    if (!fits || depth_ == 0 || top().array) return;
    if (std::optional<int64_t>* integer = IntegerOf(top().field)) *integer = v;
  }
  void Open(bool array) {
    Place place = Place::kOther;
    if (depth_ == 0) {
      object_ = !array;
      place = Place::kTop;
    } else if (!top().array) {
      Other();  // an object or array replaces whatever the key held
      const Field field = top().field;
      if (!array && field == Field::kPayload) place = Place::kPayload;
      if (!array && field == Field::kMetadata) place = Place::kMetadata;
    }
    if (depth_ == frames_.size()) frames_.emplace_back();
    Frame& frame = frames_[depth_++];
    frame.place = place;
    frame.array = array;
    frame.key.clear();
    frame.field = Field::kNone;
  }

  Instance out_;
  bool object_ = false;
  bool has_name_ = false, has_id_ = false, has_address_ = false;
  std::optional<int64_t> port_, ssl_port_, time_;
  Frame& top() { return frames_[depth_ - 1]; }

  std::vector<Frame>& frames_;
  std::size_t depth_ = 0;  // frames_[0, depth_) are the open objects and arrays
};

}  // namespace

absl::StatusOr<Instance> ParseInstance(std::string_view text) {
  // The readers' stacks and string buffer, kept on each thread from one instance to the next (a
  // watcher reads thousands in a row); let go of when a text made them large.
  thread_local std::vector<char> open;
  thread_local std::string str;
  thread_local std::vector<InstanceReader::Frame> frames;
  InstanceReader reader(frames);
  bool parsed = JsonReader<InstanceReader>(text, reader, open, str).Read();
  absl::StatusOr<Instance> instance = std::move(reader).Finish(parsed);
  if (open.capacity() > 256 || frames.capacity() > 256 || str.capacity() > 4096) {
    open = {};
    frames = {};
    str = {};
  }
  return instance;
}

std::string NewInstanceId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

Instance MakeServingInstance(const Serving& serving) {
  Instance self;
  self.name = serving.app;
  self.id = NewInstanceId();
  self.address = serving.address;
  std::vector<std::string> protocols;
  self.metadata[std::string(kStatusKey)] = "UP";
  if (serving.grpc_port > 0) {
    protocols.push_back("grpc");
    self.metadata[std::string(kGrpcPortKey)] = std::to_string(serving.grpc_port);
    // For grpc-spring-boot-starter clients, which read their own key.
    self.metadata[std::string(kSpringGrpcPortKey)] = std::to_string(serving.grpc_port);
  }
  if (serving.thrift_port > 0) {
    protocols.push_back("thrift");
    self.metadata[std::string(kThriftPortKey)] = std::to_string(serving.thrift_port);
    self.metadata[std::string(kThriftHeaderKey)] = "true";
  }
  self.port = serving.grpc_port > 0 ? serving.grpc_port : std::max(serving.thrift_port, 0);
  self.metadata[std::string(kServicesKey)] = absl::StrJoin(serving.services, ",");
  self.metadata[std::string(kProtocolsKey)] = absl::StrJoin(protocols, ",");
  self.metadata[std::string(kWeightKey)] = std::to_string(serving.weight);
  self.metadata[std::string(kVersionKey)] = serving.version;
  if (!serving.zone.empty()) self.metadata[std::string(kZoneKey)] = serving.zone;
  if (serving.tls) self.metadata[std::string(kTlsKey)] = "true";
  self.registration_time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  return self;
}

namespace {

// Items per chunk when a list is built; a chunk that grows to twice this splits in two.
constexpr std::size_t kChunk = 64;

bool ById(const Instance* a, const Instance* b) { return a->id < b->id; }

}  // namespace

// What a builder let go of between two publications (chunks replaced by copies, instances
// erased), kept for the lists published before it; and the next such record, which those lists
// may show too. A list holds the record opened when it was published.
struct InstanceView::Retired {
  std::vector<std::unique_ptr<Chunk>> chunks;
  Items instances;
  std::shared_ptr<Retired> next;

  ~Retired() {
    // A long chain (a list kept across many publications) goes link by link, not recursively.
    std::shared_ptr<Retired> link = std::move(next);
    while (link != nullptr && link.use_count() == 1) link = std::move(link->next);
  }
};

InstanceView::InstanceView(std::vector<Instance> instances) {
  Items items;
  items.reserve(instances.size());
  for (Instance& instance : instances) {
    items.push_back(std::make_shared<const Instance>(std::move(instance)));
  }
  Builder builder;
  builder.Assign(std::move(items));
  *this = *builder.Publish();
}

InstanceView::InstanceView(std::initializer_list<Instance> instances)
    : InstanceView(std::vector<Instance>(instances)) {}

InstanceView::const_iterator InstanceView::At(std::size_t i) const {
  if (i >= size()) {
    return chunks_.empty() ? const_iterator(this, 0, 0)
                           : const_iterator(this, chunks_.size() - 1, chunks_.back()->size());
  }
  std::size_t c =
      static_cast<std::size_t>(std::upper_bound(ends_.begin(), ends_.end(), i) - ends_.begin());
  return const_iterator(this, c, i - Start(c));
}

void InstanceView::Builder::Reindex(std::size_t from) {
  // The sizes come from keys_, side by side: a chunk's own size is a cache miss per chunk.
  std::vector<std::size_t>& ends = view_.ends_;
  ends.resize(keys_.size());
  std::size_t end = view_.Start(from);
  for (std::size_t c = from; c < keys_.size(); ++c) ends[c] = end += keys_[c].size();
}

InstanceView::Builder::Builder() : retired_(std::make_shared<Retired>()) {}

InstanceView::Builder::~Builder() {
  for (std::size_t c = 0; c < chunks_.size(); ++c) Retire(c, true);
}

void InstanceView::Builder::Retire(std::size_t c, bool instances) {
  retired_->chunks.push_back(std::move(chunks_[c]));
  if (instances) {
    for (Item& item : owners_[c]) retired_->instances.push_back(std::move(item));
  }
}

InstanceView::Builder::Key InstanceView::Builder::KeyOf(const Instance& instance) {
  Key key = 0;
  const std::size_t n = std::min<std::size_t>(8, instance.id.size());
  for (std::size_t i = 0; i < 8; ++i) {
    key = key << 8 | (i < n ? static_cast<uint8_t>(instance.id[i]) : 0u);
  }
  return key;
}

namespace {
// (key, instance) pairs ordered as their ids are (std::string compares bytes as unsigned, as
// the keys do).
bool Before(uint64_t a_key, const Instance* a, uint64_t b_key, const Instance* b) {
  return a_key != b_key ? a_key < b_key : a->id < b->id;
}

// The first of positions 0 to n - 1 at or after which `past` holds (n when none): a binary
// search over the items' (key, instance) at `at(i)`, for the first that sorts after `x`
// (`upper`) or not before it.
template <typename At>
std::size_t Search(std::size_t n, uint64_t key, const Instance* x, bool upper, At at) {
  std::size_t low = 0, high = n;
  while (low < high) {
    const std::size_t mid = low + (high - low) / 2;
    const auto [mid_key, mid_item] = at(mid);
    if (upper ? Before(key, x, mid_key, mid_item) : !Before(mid_key, mid_item, key, x)) {
      high = mid;
    } else {
      low = mid + 1;
    }
  }
  return low;
}
}  // namespace

std::size_t InstanceView::Builder::FindChunk(Key key, const Instance* x, bool upper) const {
  return Search(chunks_.size(), key, x, upper, [&](std::size_t c) {
    return std::pair<Key, const Instance*>(last_keys_[c], chunks_[c]->back());
  });
}

std::size_t InstanceView::Builder::FindInChunk(std::size_t c, Key key, const Instance* x,
                                               bool upper) const {
  return Search(chunks_[c]->size(), key, x, upper, [&](std::size_t i) {
    return std::pair<Key, const Instance*>(keys_[c][i], (*chunks_[c])[i]);
  });
}

void InstanceView::Builder::Assign(Items items) {
  for (std::size_t c = 0; c < chunks_.size(); ++c) Retire(c, true);
  chunks_.clear();
  owners_.clear();
  keys_.clear();
  last_keys_.clear();
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return ById(a.get(), b.get()); });
  for (std::size_t at = 0; at < items.size(); at += kChunk) {
    auto first = items.begin() + static_cast<std::ptrdiff_t>(at);
    auto last = items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), at + kChunk));
    auto chunk = std::make_unique<Chunk>();
    chunk->reserve(static_cast<std::size_t>(last - first));
    std::vector<Key> keys;
    keys.reserve(chunk->capacity());
    for (auto it = first; it != last; ++it) {
      chunk->push_back(it->get());
      keys.push_back(KeyOf(**it));
    }
    chunks_.push_back(std::move(chunk));
    last_keys_.push_back(keys.back());
    keys_.push_back(std::move(keys));
    owners_.emplace_back(std::make_move_iterator(first), std::make_move_iterator(last));
  }
  published_.assign(chunks_.size(), false);
  view_.chunks_.clear();
  for (const auto& chunk : chunks_) view_.chunks_.push_back(chunk.get());
  size_ = items.size();
  stale_ = 0;
}

InstanceView::Chunk& InstanceView::Builder::Own(std::size_t c) {
  if (published_[c]) {
    auto copy = std::make_unique<Chunk>(*chunks_[c]);
    Retire(c, false);  // its instances are still here, in the copy
    chunks_[c] = std::move(copy);
    view_.chunks_[c] = chunks_[c].get();
    published_[c] = false;
  }
  return *chunks_[c];
}

void InstanceView::Builder::SplitIfLarge(std::size_t c) {
  Chunk& items = *chunks_[c];
  if (items.size() < 2 * kChunk) return;
  const auto half = static_cast<std::ptrdiff_t>(items.size() / 2);
  auto second = std::make_unique<Chunk>(items.begin() + half, items.end());
  items.erase(items.begin() + half, items.end());
  Items& owners = owners_[c];
  Items second_owners(std::make_move_iterator(owners.begin() + half),
                      std::make_move_iterator(owners.end()));
  owners.erase(owners.begin() + half, owners.end());
  std::vector<Key>& keys = keys_[c];
  std::vector<Key> second_keys(keys.begin() + half, keys.end());
  keys.erase(keys.begin() + half, keys.end());
  const auto at = static_cast<std::ptrdiff_t>(c) + 1;
  view_.chunks_.insert(view_.chunks_.begin() + at, second.get());
  chunks_.insert(chunks_.begin() + at, std::move(second));
  owners_.insert(owners_.begin() + at, std::move(second_owners));
  last_keys_[c] = keys.back();
  last_keys_.insert(last_keys_.begin() + at, second_keys.back());
  keys_.insert(keys_.begin() + at, std::move(second_keys));
  published_.insert(published_.begin() + at, false);
}

void InstanceView::Builder::Insert(Item item) {
  const Key key = KeyOf(*item);
  if (chunks_.empty()) {
    chunks_.push_back(std::make_unique<Chunk>(Chunk{item.get()}));
    owners_.push_back(Items{std::move(item)});
    keys_.push_back({key});
    last_keys_.assign(1, key);
    published_.assign(1, false);
    view_.chunks_.assign(1, chunks_.back().get());
    size_ = 1;
    stale_ = 0;
    return;
  }
  // The first chunk whose last item sorts after it (or the last chunk).
  const Instance* x = item.get();
  const std::size_t c = std::min(FindChunk(key, x, true), chunks_.size() - 1);
  const auto at = static_cast<std::ptrdiff_t>(FindInChunk(c, key, x, true));
  Chunk& items = Own(c);
  items.insert(items.begin() + at, x);
  owners_[c].insert(owners_[c].begin() + at, std::move(item));
  keys_[c].insert(keys_[c].begin() + at, key);
  last_keys_[c] = keys_[c].back();
  SplitIfLarge(c);
  ++size_;
  stale_ = std::min(stale_, c);
}

void InstanceView::Builder::Erase(const Item& item) {
  const Instance* x = item.get();
  const Key key = KeyOf(*x);
  // Items with its id may span chunks: from the first chunk whose last item is not before it.
  for (std::size_t c = FindChunk(key, x, false); c < chunks_.size(); ++c) {
    const Chunk& items = *chunks_[c];
    std::size_t i = FindInChunk(c, key, x, false);
    while (i < items.size() && items[i]->id == x->id && items[i] != x) ++i;
    if (i == items.size()) continue;  // perhaps in the next chunk
    if (items[i] != x) return;        // past the items with its id
    const auto at = static_cast<std::ptrdiff_t>(i);
    Chunk& owned = Own(c);
    owned.erase(owned.begin() + at);
    retired_->instances.push_back(std::move(owners_[c][i]));
    owners_[c].erase(owners_[c].begin() + at);
    keys_[c].erase(keys_[c].begin() + at);
    if (owned.empty()) {  // a copy no list shows, or a chunk never published: gone
      const auto n = static_cast<std::ptrdiff_t>(c);
      chunks_.erase(chunks_.begin() + n);
      owners_.erase(owners_.begin() + n);
      keys_.erase(keys_.begin() + n);
      last_keys_.erase(last_keys_.begin() + n);
      published_.erase(published_.begin() + n);
      view_.chunks_.erase(view_.chunks_.begin() + n);
    } else {
      last_keys_[c] = keys_[c].back();
    }
    --size_;
    stale_ = std::min(stale_, c);
    return;
  }
}

std::shared_ptr<const InstanceView> InstanceView::Builder::Publish() {
  // The list holds the record of what is let go of from now on; the record before it leads to
  // this one, for the lists before.
  auto next = std::make_shared<Retired>();
  retired_->next = next;
  retired_ = std::move(next);
  view_.keep_ = retired_;
  if (stale_ != std::string::npos) Reindex(stale_);
  stale_ = std::string::npos;
  published_.assign(published_.size(), true);
  return std::make_shared<const InstanceView>(view_);
}

}  // namespace rpcboot::discovery
