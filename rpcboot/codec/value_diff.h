// Field-by-field comparison of two values of one user type, for shadow calls (rpcboot/migration.h):
// the differences are named by field path ("items[2].price: 450 vs 460"), read through the same
// reflection the codecs use (Boost.PFR for the layout, the generated StructInfo for the names).
#ifndef RPCBOOT_CODEC_VALUE_DIFF_H_
#define RPCBOOT_CODEC_VALUE_DIFF_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "rpcboot/codec/type_traits.h"
#include "rpcboot/reflect.h"

namespace rpcboot::internal {

// What a comparison collects, and which fields it leaves out.
class DiffSink {
 public:
  // `ignore`: entries as ShadowOptions::ignore_fields describes them; `method` scopes the
  // "Method:field" ones. At most `limit` differences are kept (the rest only counted).
  DiffSink(std::string_view method, const std::vector<std::string>* ignore, std::size_t limit)
      : method_(method), ignore_(ignore), limit_(limit) {}

  // Whether the field at the current path (just pushed) is left out of the comparison.
  bool Ignored() const;
  void Add(std::string_view what);
  const std::vector<std::string>& differences() const { return differences_; }
  std::size_t count() const { return count_; }

  // The current path, as a stack: "items", "[2]", "price".
  void Push(std::string part) { path_.push_back(std::move(part)); }
  void Pop() { path_.pop_back(); }

 private:
  std::string Path() const;
  std::string_view method_;
  const std::vector<std::string>* ignore_;
  std::size_t limit_;
  std::vector<std::string> path_;
  std::vector<std::string> differences_;
  std::size_t count_ = 0;
};

std::string DiffText(std::string_view s);  // quoted, escaped, cut after 60 bytes
std::string DiffText(bool v);
std::string DiffText(int64_t v);
std::string DiffText(uint64_t v);
std::string DiffText(double v);

template <class T>
std::string DiffValueText(const T& v) {
  if constexpr (kIsString<T>) {
    return DiffText(std::string_view(v));
  } else if constexpr (kIsBool<T>) {
    return DiffText(v);
  } else if constexpr (kIsInteger<T>) {
    if constexpr (std::is_signed_v<T>) {
      return DiffText(static_cast<int64_t>(v));
    } else {
      return DiffText(static_cast<uint64_t>(v));
    }
  } else if constexpr (kIsFloat<T>) {
    return DiffText(static_cast<double>(v));
  } else if constexpr (kIsEnum<T>) {
    auto raw = static_cast<int64_t>(v);
    if constexpr (HasEnumInfo<T>::value) {
      for (std::size_t i = 0; i < EnumInfo<T>::kValues.size(); ++i) {
        if (static_cast<int64_t>(EnumInfo<T>::kValues[i]) == raw)
          return std::string(EnumInfo<T>::kNames[i]);
      }
    }
    return DiffText(raw);
  } else if constexpr (kIsBytes<T>) {
    return std::to_string(v.size()) + " bytes";
  } else if constexpr (kIsList<T> || kIsMap<T>) {
    return std::to_string(v.size()) + " entries";
  } else {
    return "a value";
  }
}

template <class T>
void DiffValues(const T& a, const T& b, DiffSink& sink);

template <class T, std::size_t... I>
void DiffFields(const T& a, const T& b, DiffSink& sink, std::index_sequence<I...>) {
  auto one = [&](auto index) {
    constexpr std::size_t kI = decltype(index)::value;
    std::string name = FieldName<T, kI>();
    sink.Push(name.empty() ? "#" + std::to_string(FieldId<T, kI>()) : std::move(name));
    if (!sink.Ignored()) DiffValues(FieldRef<kI>(a), FieldRef<kI>(b), sink);
    sink.Pop();
  };
  (one(std::integral_constant<std::size_t, I>{}), ...);
}

template <class T>
void DiffValues(const T& a, const T& b, DiffSink& sink) {
  if constexpr (kIsOptional<T>) {
    if (a.has_value() != b.has_value()) {
      sink.Add(std::string(a ? DiffValueText(*a) : "absent") + " vs " +
               (b ? DiffValueText(*b) : "absent"));
    } else if (a) {
      DiffValues(*a, *b, sink);
    }
  } else if constexpr (kIsList<T>) {
    if (a.size() != b.size()) {
      sink.Add(std::to_string(a.size()) + " entries vs " + std::to_string(b.size()));
      return;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      sink.Push("[" + std::to_string(i) + "]");
      DiffValues(a[i], b[i], sink);
      sink.Pop();
    }
  } else if constexpr (kIsMap<T>) {
    for (const auto& [key, value] : a) {
      sink.Push("[" + DiffValueText(key) + "]");
      auto other = b.find(key);
      if (other == b.end()) {
        sink.Add(DiffValueText(value) + " vs absent");
      } else {
        DiffValues(value, other->second, sink);
      }
      sink.Pop();
    }
    for (const auto& [key, value] : b) {
      if (a.find(key) != a.end()) continue;
      sink.Push("[" + DiffValueText(key) + "]");
      sink.Add("absent vs " + DiffValueText(value));
      sink.Pop();
    }
  } else if constexpr (kIsMessage<T> && !kIsBytes<T>) {
    DiffFields(a, b, sink, FieldIndexes<T>{});
  } else if constexpr (kIsFloat<T>) {
    // NaN equals NaN here: the same computation on both sides is not a mismatch.
    if (!(a == b) && !(a != a && b != b)) sink.Add(DiffValueText(a) + " vs " + DiffValueText(b));
  } else {
    if (!(a == b)) sink.Add(DiffValueText(a) + " vs " + DiffValueText(b));
  }
}

}  // namespace rpcboot::internal

#endif  // RPCBOOT_CODEC_VALUE_DIFF_H_
