// The benchmarks' command lines: --name=value flags, every value read in full and checked against
// its range. A bad value or an unknown flag ends the program with exit status 2 and a line that
// names the flag and what it takes, before anything is started.
//
//   rpcboot::bench::Flags flags("rpc_bench", "[--seconds=S] [--callers=1,8,64]");
//   for (int i = 1; i < argc; ++i) {
//     std::string_view a = argv[i];
//     if (flags.Number(a, "seconds", 0.01, 30, &seconds) || flags.List(a, "callers", 1, 4096,
//         &callers)) continue;
//     flags.Unknown(a);
//   }
#ifndef RPCBOOT_BENCH_FLAGS_H_
#define RPCBOOT_BENCH_FLAGS_H_

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rpcboot::bench {

class Flags {
 public:
  Flags(const char* program, const char* usage) : program_(program), usage_(usage) {}

  // Whether `arg` is --`name`=...; if so, its value: a whole number in [lo, hi].
  bool Int(std::string_view arg, std::string_view name, long lo, long hi, int* out) const {
    std::string_view value;
    if (!Match(arg, name, &value)) return false;
    long n = 0;
    if (!WholeNumber(value, &n) || n < lo || n > hi) {
      Fail(name, value, "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    *out = static_cast<int>(n);
    return true;
  }

  // A number (a fraction allowed) in [lo, hi].
  bool Number(std::string_view arg, std::string_view name, double lo, double hi,
              double* out) const {
    std::string_view value;
    if (!Match(arg, name, &value)) return false;
    std::string text(value);
    char* end = nullptr;
    errno = 0;
    double n = text.empty() ? 0 : std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(n) || n < lo || n > hi) {
      char range[96];
      std::snprintf(range, sizeof range, "a number from %g to %g", lo, hi);
      Fail(name, value, range);
    }
    *out = n;
    return true;
  }

  // A comma-separated list of whole numbers, each in [lo, hi], at least one.
  bool List(std::string_view arg, std::string_view name, long lo, long hi,
            std::vector<int>* out) const {
    std::string_view value;
    if (!Match(arg, name, &value)) return false;
    std::vector<int> list;
    for (std::string_view rest = value;;) {
      std::size_t comma = rest.find(',');
      long n = 0;
      if (!WholeNumber(rest.substr(0, comma), &n) || n < lo || n > hi) {
        Fail(name, value,
             "a list of whole numbers from " + std::to_string(lo) + " to " + std::to_string(hi) +
                 ", separated by commas");
      }
      list.push_back(static_cast<int>(n));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    *out = std::move(list);
    return true;
  }

  // A comma-separated list of words, each one of `allowed` (space-separated), at least one.
  bool Words(std::string_view arg, std::string_view name, std::string_view allowed,
             std::vector<std::string>* out) const {
    std::string_view value;
    if (!Match(arg, name, &value)) return false;
    std::vector<std::string> words;
    for (std::string_view rest = value;;) {
      std::size_t comma = rest.find(',');
      std::string_view word = rest.substr(0, comma);
      if (!OneOf(word, allowed)) Fail(name, value, "words among: " + std::string(allowed));
      words.emplace_back(word);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    *out = std::move(words);
    return true;
  }

  // Any text that is not empty.
  bool Text(std::string_view arg, std::string_view name, std::string* out) const {
    std::string_view value;
    if (!Match(arg, name, &value)) return false;
    if (value.empty()) Fail(name, value, "a value");
    *out = std::string(value);
    return true;
  }

  // A flag with no value.
  bool Switch(std::string_view arg, std::string_view name, bool* out) const {
    if (arg.size() != name.size() + 2 || arg.substr(0, 2) != "--" || arg.substr(2) != name) {
      return false;
    }
    *out = true;
    return true;
  }

  [[noreturn]] void Unknown(std::string_view arg) const {
    std::fprintf(stderr, "%s: unknown flag '%.*s'\nusage: %s %s\n", program_,
                 static_cast<int>(arg.size()), arg.data(), program_, usage_);
    std::exit(2);
  }

  // A check across flags failed: `message` says which and why.
  [[noreturn]] void Refuse(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n", program_, message.c_str());
    std::exit(2);
  }

 private:
  static bool Match(std::string_view arg, std::string_view name, std::string_view* value) {
    if (arg.size() < name.size() + 3 || arg.substr(0, 2) != "--" ||
        arg.substr(2, name.size()) != name || arg[name.size() + 2] != '=') {
      return false;
    }
    *value = arg.substr(name.size() + 3);
    return true;
  }

  static bool WholeNumber(std::string_view text, long* out) {
    if (text.empty() || text.size() > 18) return false;
    bool negative = text[0] == '-';
    if (negative) text.remove_prefix(1);
    if (text.empty()) return false;
    long n = 0;
    for (char c : text) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + (c - '0');
    }
    *out = negative ? -n : n;
    return true;
  }

  static bool OneOf(std::string_view word, std::string_view allowed) {
    while (!allowed.empty()) {
      std::size_t space = allowed.find(' ');
      if (allowed.substr(0, space) == word) return true;
      if (space == std::string_view::npos) break;
      allowed.remove_prefix(space + 1);
    }
    return false;
  }

  [[noreturn]] void Fail(std::string_view name, std::string_view value,
                         const std::string& takes) const {
    std::fprintf(stderr, "%s: --%.*s takes %s, not '%.*s'\n", program_,
                 static_cast<int>(name.size()), name.data(), takes.c_str(),
                 static_cast<int>(value.size()), value.data());
    std::exit(2);
  }

  const char* program_;
  const char* usage_;
};

}  // namespace rpcboot::bench

#endif  // RPCBOOT_BENCH_FLAGS_H_
