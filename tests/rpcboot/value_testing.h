// Test helpers over any reflected struct: random values that respect each field's C++ range,
// deep equality, and hex dumps for failure messages.
#ifndef RPCBOOT_TESTS_RPCBOOT_VALUE_TESTING_H_
#define RPCBOOT_TESTS_RPCBOOT_VALUE_TESTING_H_

#include <boost/pfr/core.hpp>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>

#include "rpcboot/codec/type_traits.h"

namespace rpcboot::testing {

struct RandomOptions {
  int max_depth = 3;  // recursion through nested containers and recursive structs
  std::size_t max_elements = 4;
  std::size_t max_unordered = 4;  // unordered maps iterate in no fixed order
  // Thrift carries uint64_t as i64, so stock Thrift code orders uint64_t map keys at or above
  // 2^63 as negative numbers; byte comparisons keep keys below that.
  bool uint64_keys_below_sign_bit = false;
};

class Randomizer {
 public:
  explicit Randomizer(uint64_t seed, RandomOptions options = {}) : rng_(seed), options_(options) {}

  template <class T>
  T Make() {
    T value{};
    Fill(value, 0);
    return value;
  }

  template <class T>
  void Fill(T& v, int depth) {
    using namespace rpcboot::internal;
    if constexpr (kIsBool<T>) {
      v = Coin();
    } else if constexpr (kIsEnum<T>) {
      const auto& values = EnumInfo<T>::kValues;
      v = values[Below(values.size())];
    } else if constexpr (kIsInteger<T>) {
      // Mostly small values (the common case and 1-byte varints), sometimes the extremes.
      switch (Below(4)) {
        case 0:
          v = 0;
          break;
        case 1:
          v = static_cast<T>(Below(100));
          break;
        case 2:
          v = Below(2) ? std::numeric_limits<T>::max() : std::numeric_limits<T>::min();
          break;
        default:
          v = static_cast<T>(rng_());
          break;
      }
    } else if constexpr (kIsFloat<T>) {
      switch (Below(4)) {
        case 0:
          v = 0;
          break;
        case 1:
          v = static_cast<T>(-0.0);
          break;
        default:
          v = static_cast<T>(std::uniform_real_distribution<double>(-1e6, 1e6)(rng_));
          break;
      }
    } else if constexpr (kIsString<T>) {
      static constexpr std::string_view kPieces[] = {"a",    "Z", "0",  " ",  "é",
                                                     "日本", "🍕", "\n", "\\", "\""};
      v.clear();
      for (std::size_t n = Below(8); n > 0; --n) v += kPieces[Below(std::size(kPieces))];
    } else if constexpr (kIsBytes<T>) {
      v.resize(Below(10));
      for (auto& b : v) b = static_cast<uint8_t>(rng_());
    } else if constexpr (kIsOptional<T>) {
      if (Coin()) {
        v.emplace();
        Fill(*v, depth);
      } else {
        v.reset();
      }
    } else if constexpr (kIsList<T>) {
      v.clear();
      std::size_t n = depth >= options_.max_depth ? 0 : Below(options_.max_elements + 1);
      for (std::size_t i = 0; i < n; ++i) {
        typename T::value_type e{};
        Fill(e, depth + 1);
        v.push_back(std::move(e));
      }
    } else if constexpr (kIsMap<T>) {
      v.clear();
      bool unordered = !std::is_same_v<T, std::map<typename T::key_type, typename T::mapped_type>>;
      std::size_t limit = unordered ? options_.max_unordered : options_.max_elements;
      std::size_t n = depth >= options_.max_depth ? 0 : Below(limit + 1);
      for (std::size_t i = 0; i < n; ++i) {
        typename T::key_type key{};
        Fill(key, depth + 1);
        if constexpr (std::is_same_v<typename T::key_type, uint64_t>) {
          if (options_.uint64_keys_below_sign_bit) key &= ~(uint64_t{1} << 63);
        }
        typename T::mapped_type value{};
        Fill(value, depth + 1);
        v.insert_or_assign(std::move(key), std::move(value));
      }
    } else if constexpr (kIsStruct<T>) {
      boost::pfr::for_each_field(v, [&](auto& field) { Fill(field, depth + 1); });
    } else {
      static_assert(kDependentFalse<T>, "no random values for this type");
    }
  }

 private:
  bool Coin() { return (rng_() & 1) != 0; }
  std::size_t Below(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

  std::mt19937_64 rng_;
  RandomOptions options_;
};

template <class T>
bool DeepEqual(const T& a, const T& b);

template <class T, std::size_t... I>
bool DeepEqualFields(const T& a, const T& b, std::index_sequence<I...>) {
  return (DeepEqual(boost::pfr::get<I>(a), boost::pfr::get<I>(b)) && ...);
}

// Field-by-field equality for reflected structs and the standard containers around them.
template <class T>
bool DeepEqual(const T& a, const T& b) {
  using namespace rpcboot::internal;
  if constexpr (kIsOptional<T>) {
    if (a.has_value() != b.has_value()) return false;
    return !a.has_value() || DeepEqual(*a, *b);
  } else if constexpr (kIsList<T>) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!DeepEqual<typename T::value_type>(a[i], b[i])) return false;
    }
    return true;
  } else if constexpr (kIsMap<T>) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, value] : a) {
      auto it = b.find(key);
      if (it == b.end() || !DeepEqual(value, it->second)) return false;
    }
    return true;
  } else if constexpr (kIsStruct<T>) {
    return DeepEqualFields(a, b, std::make_index_sequence<boost::pfr::tuple_size_v<T>>{});
  } else {
    return a == b;
  }
}

inline std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
    out += ' ';
  }
  return out;
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_RPCBOOT_VALUE_TESTING_H_
