// rpcboot-codegen: annotated C++ headers in; .thrift, .proto and C++ glue out.
//
//   rpcboot-codegen --out-dir gen -I include include/shop/shop_service.h
//
// Exit status: 0 on success, 1 when a header has errors (printed as file:line:col: error: ...),
// 2 on a bad command line.
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/compat.h"
#include "codegen/diagnostics.h"
#include "codegen/emitters.h"
#include "codegen/parser.h"
#include "codegen/plan.h"
#include "rpcboot/base/internal/read_file.h"

namespace rpcboot::codegen {
namespace {

constexpr const char* kUsage =
    "usage: rpcboot-codegen [options] HEADER...\n"
    "\n"
    "Reads C++ headers that declare RPCBOOT_SERVICE interfaces and writes, for each HEADER,\n"
    "<stem>.thrift, <stem>.proto, <stem>.rpcboot.h and <stem>.rpcboot.cc, and the Thrift\n"
    "schema as JSON for tools (<stem>.thrift.json: rpcboot call --schema).\n"
    "\n"
    "options:\n"
    "  -o, --out-dir DIR   directory for the generated files (default: .)\n"
    "  -I DIR, -IDIR       add an include directory (passed to clang)\n"
    "  -D NAME[=V], -U NAME, -isystem DIR, -std=STD\n"
    "                      passed to clang as they are\n"
    "  --clang-arg ARG     pass any other argument to clang\n"
    "  --depfile FILE      write a Makefile-style dependency file for the build system\n"
    "  --java-package-prefix P\n"
    "                      java_package (and Thrift's Java namespace) = P.<package>\n"
    "  --go-package-prefix P\n"
    "                      go_package = P/<package path>;<name> (default: <package path>,\n"
    "                      none for a one-word package: protoc-gen-go needs a '/' or '.')\n"
    "  --import H[,H...]   headers of an interface this one depends on (its own codegen\n"
    "                      run's inputs, comma-separated): their types are referred to\n"
    "                      (include, import, #include) instead of emitted again. Once per\n"
    "                      dependency, dependencies of dependencies first\n"
    "  --check             report errors only, write nothing\n"
    "  --check-compat PREV compare with the IDL emitted before (a .proto file, or a directory\n"
    "                      holding <stem>.proto for each header) and fail with a list of the\n"
    "                      changes that break deployed peers; writes nothing\n"
    "  -h, --help          show this help\n"
    "  --version           show the version\n";

int UsageError(const std::string& message) {
  std::cerr << "rpcboot-codegen: error: " << message << "\nTry 'rpcboot-codegen --help'.\n";
  return 2;
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

std::string Stem(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  std::size_t dot = base.find('.');
  return dot == std::string::npos ? base : base.substr(0, dot);
}

// Writes only when the content changed, so unchanged outputs keep their timestamps and the build
// system does not rebuild what depends on them.
bool WriteIfChanged(const std::string& path, const std::string& content) {
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream existing;
      existing << in.rdbuf();
      if (existing.str() == content) return true;
    }
  }
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) {
    out << content;
    out.close();
  }
  if (!out) {
    std::string reason = errno != 0 ? std::strerror(errno) : "write failed";
    std::cerr << "rpcboot-codegen: error: cannot write '" << path << "': " << reason << "\n";
    return false;
  }
  return true;
}

bool ValidJavaPackage(const std::string& p) {
  bool start = true;
  for (char c : p) {
    if (c == '.') {
      if (start) return false;
      start = true;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
               (!start && std::isdigit(static_cast<unsigned char>(c)))) {
      start = false;
    } else {
      return false;
    }
  }
  return !start;
}

bool ValidGoPrefix(const std::string& p) {
  if (p.empty() || p.back() == '/' || p.front() == '/') return false;
  for (char c : p) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == ';' || c == '\\')
      return false;
  }
  return true;
}

// A previous .proto is read up to this size: --check-compat /dev/zero (or a log given by
// mistake) must not read until memory runs out.
constexpr std::size_t kMaxPreviousIdlBytes = 64 << 20;

// A -std= option as libclang 14 takes it ("-std=c++23" is "-std=c++2b" to it), or "" for one it
// cannot parse rpcboot's headers in: a C dialect, C++ before 17, a standard newer than clang 14.
std::string ClangStd(const std::string& arg) {
  for (const char* dialect : {"c++", "gnu++"}) {
    std::string prefix = std::string("-std=") + dialect;
    if (arg.rfind(prefix, 0) != 0) continue;
    std::string version = arg.substr(prefix.size());
    if (version == "23") return prefix + "2b";
    for (const char* known : {"17", "1z", "20", "2a", "2b"}) {
      if (version == known) return arg;
    }
  }
  return "";
}

// --check-compat: each header's emitted .proto against the previous one. A .thrift path is
// answered by the .proto rpcboot emitted beside it (the two carry the same ids, names, types).
int CheckCompat(const Model& model, const Plan& plan, const std::string& previous) {
  struct stat st {};
  if (::stat(previous.c_str(), &st) != 0) {
    std::cerr << "rpcboot-codegen: error: --check-compat: cannot read '" << previous
              << "': no such file or directory\n";
    return 1;
  }
  bool is_dir = S_ISDIR(st.st_mode);
  std::size_t inputs = 0;
  for (const Header& h : model.headers) inputs += h.imported ? 0 : 1;
  if (!is_dir && inputs != 1) {
    std::cerr << "rpcboot-codegen: error: --check-compat: '" << previous << "' is one file but "
              << inputs << " headers were given; pass the directory that holds the previous IDL\n";
    return 1;
  }
  int breaking = 0;
  for (std::size_t f = 0; f < model.headers.size(); ++f) {
    if (model.headers[f].imported) continue;
    std::string path = is_dir ? previous + "/" + model.headers[f].stem + ".proto" : previous;
    if (path.size() > 7 && path.compare(path.size() - 7, 7, ".thrift") == 0)
      path = path.substr(0, path.size() - 7) + ".proto";
    std::string text, error;
    rpcboot::internal::ReadFileResult read =
        rpcboot::internal::ReadFileUpTo(path, kMaxPreviousIdlBytes, &text);
    if (read == rpcboot::internal::ReadFileResult::kTooLarge) {
      std::cerr << "rpcboot-codegen: error: --check-compat: '" << path << "' "
                << rpcboot::internal::ReadFileProblem(read, kMaxPreviousIdlBytes)
                << ": not a .proto rpcboot emitted\n";
      return 1;
    }
    if (read != rpcboot::internal::ReadFileResult::kOk) {
      if (is_dir && read == rpcboot::internal::ReadFileResult::kCannotRead) {
        std::cout << "rpcboot-codegen: " << model.headers[f].path << ": no previous " << path
                  << ": new, nothing to compare\n";
        continue;
      }
      std::cerr << "rpcboot-codegen: error: --check-compat: cannot read '" << path
                << "' (rpcboot emits it beside the .thrift)\n";
      return 1;
    }
    google::protobuf::FileDescriptorProto before, after;
    if (!ParseProtoText(text, &before, &error)) {
      std::cerr << "rpcboot-codegen: error: --check-compat: " << path << ":" << error << "\n";
      return 1;
    }
    if (!ParseProtoText(EmitProto(model, plan, static_cast<int>(f)), &after, &error)) {
      std::cerr << "rpcboot-codegen: internal error: the emitted .proto does not parse: " << error
                << "\n";
      return 1;
    }
    for (const std::string& change : BreakingChanges(before, after)) {
      std::cerr << model.headers[f].path << ": error: breaking change against " << path << ": "
                << change << "\n";
      ++breaking;
    }
  }
  if (breaking > 0) {
    std::cerr << breaking << (breaking == 1 ? " breaking change" : " breaking changes")
              << " found.\n";
    return 1;
  }
  std::cout << "rpcboot-codegen: compatible with " << previous << "\n";
  return 0;
}

int Run(int argc, char** argv) {
  Plan plan;
  std::string out_dir = ".";
  std::string depfile;
  bool check_only = false;
  std::string compat_with;
  std::vector<std::string> clang_args;
  std::vector<std::string> include_dirs;
  std::vector<std::string> inputs;
  std::vector<std::vector<std::string>> import_groups;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& flag) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--version") {
      std::cout << "rpcboot-codegen " << RPCBOOT_VERSION << "\n";
      return 0;
    } else if (a == "-o" || a == "--out-dir") {
      const char* v = value(a);
      if (v == nullptr) return UsageError("option '" + a + "' needs a directory");
      out_dir = v;
    } else if (a == "--depfile") {
      const char* v = value(a);
      if (v == nullptr) return UsageError("option '--depfile' needs a file name");
      depfile = v;
    } else if (a == "--java-package-prefix") {
      const char* v = value(a);
      if (v == nullptr || !ValidJavaPackage(v)) {
        return UsageError(
            "option '--java-package-prefix' needs a Java package name such as "
            "'com.example' (letters, digits, '_', separated by dots)");
      }
      plan.options.java_package_prefix = v;
    } else if (a == "--go-package-prefix") {
      const char* v = value(a);
      if (v == nullptr || !ValidGoPrefix(v)) {
        return UsageError(
            "option '--go-package-prefix' needs a Go import path such as "
            "'example.com/gen' (no spaces, quotes or ';', no trailing '/')");
      }
      plan.options.go_package_prefix = v;
    } else if (a == "--import") {
      const char* v = value(a);
      std::vector<std::string> group;
      if (v != nullptr) {
        std::string list = v;
        for (std::size_t start = 0;;) {
          std::size_t comma = list.find(',', start);
          group.push_back(list.substr(start, comma - start));
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
      if (group.empty() || std::count(group.begin(), group.end(), "") != 0) {
        return UsageError(
            "option '--import' needs the headers of one dependency, separated by commas "
            "(no empty entries)");
      }
      import_groups.push_back(std::move(group));
    } else if (a == "--check") {
      check_only = true;
    } else if (a == "--check-compat") {
      const char* v = value(a);
      if (v == nullptr)
        return UsageError("option '--check-compat' needs the previous .proto or its directory");
      compat_with = v;
    } else if (a == "--clang-arg") {
      const char* v = value(a);
      if (v == nullptr) return UsageError("option '--clang-arg' needs an argument");
      clang_args.push_back(v);
    } else if (a == "-I" || a == "-D" || a == "-isystem" || a == "-U") {
      const char* v = value(a);
      if (v == nullptr) return UsageError("option '" + a + "' needs an argument");
      clang_args.push_back(a);
      clang_args.push_back(v);
      if (a == "-I") include_dirs.push_back(v);
    } else if (a.rfind("-I", 0) == 0) {
      clang_args.push_back(a);
      include_dirs.push_back(a.substr(2));
    } else if (a.rfind("-std=", 0) == 0) {
      // libclang refuses a C dialect or a name it does not know without saying why.
      std::string clang_std = ClangStd(a);
      if (clang_std.empty()) {
        return UsageError("option '" + a +
                          "' is not a C++ standard rpcboot-codegen parses: -std=c++17, c++20 or "
                          "c++23 (or gnu++17, gnu++20, gnu++23)");
      }
      clang_args.push_back(clang_std);
    } else if (a.rfind("-D", 0) == 0 || a.rfind("-U", 0) == 0) {
      clang_args.push_back(a);
    } else if (!a.empty() && a[0] == '-') {
      return UsageError("unknown option '" + a + "'");
    } else {
      inputs.push_back(a);
    }
  }
  if (inputs.empty()) return UsageError("no input headers");
  if (!check_only && compat_with.empty()) {
    // Checked before the headers are parsed: a typo in the output directory should not cost a
    // parse first, nor end in one "cannot write" per output.
    struct stat st {};
    if (::stat(out_dir.c_str(), &st) != 0) {
      return UsageError("output directory '" + out_dir + "': " + std::strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
      return UsageError("output directory '" + out_dir + "' is not a directory");
  }
  // rpcboot's own headers (rpcboot/annotations.h), searched after everything the user gave:
  // <prefix>/include beside an installed <prefix>/bin/rpcboot-codegen, then the source tree of
  // a build-tree codegen.
  {
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      std::string dir(exe, static_cast<std::size_t>(n));
      dir = dir.substr(0, dir.rfind('/'));
      clang_args.push_back("-idirafter");
      clang_args.push_back(dir + "/../include");
    }
  }
#ifdef RPCBOOT_CODEGEN_INCLUDE_DIR
  clang_args.push_back("-idirafter");
  clang_args.push_back(RPCBOOT_CODEGEN_INCLUDE_DIR);
#endif

  Model model;
  Diagnostics diags;
  std::map<std::string, std::string> stems;  // stem -> header
  std::set<std::string> real_paths;
  std::set<std::string> stems_of_inputs;
  auto add_header = [&](const std::string& path, int group, bool imported) {
    Header h;
    h.path = path;
    h.group = group;
    h.imported = imported;
    const char* role = imported ? "imported header" : "header";
    h.real_path = RealPath(path);
    if (h.real_path.empty()) {
      diags.Error({}, std::string("cannot read ") + role + " '" + path + "': no such file");
      return;
    }
    // A directory, a device (/dev/zero: clang reads until memory runs out) or a pipe.
    if (struct stat st{}; ::stat(h.real_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      diags.Error({}, std::string(role) + " '" + path + "' is not a regular file");
      return;
    }
    if (!real_paths.insert(h.real_path).second) {
      diags.Error({}, "header '" + path +
                          "' is given twice (as an input or with --import); give it once: a "
                          "header's types belong to one interface");
      return;
    }
    h.stem = Stem(path);
    if (auto [it, inserted] = stems.emplace(h.stem, path); !inserted) {
      if (!imported && stems_of_inputs.count(h.stem) != 0) {
        diags.Error({}, "two input headers are named '" + h.stem +
                            "'; outputs are named after the header, so run rpcboot-codegen once "
                            "per header name");
      } else {
        diags.Error({}, "headers '" + it->second + "' and '" + path + "' are both named '" +
                            h.stem + "', and IDL files include and import each other by name ('" +
                            h.stem + ".proto'); rename one of them");
      }
      return;
    }
    if (!imported) stems_of_inputs.insert(h.stem);
    // Generated C++ includes the header by the shortest path an include directory gives, or
    // by its file name (protoc's convention) when none does.
    h.include_path = h.real_path.substr(h.real_path.find_last_of('/') + 1);
    std::size_t best = std::string::npos;
    for (const std::string& dir : include_dirs) {
      std::string real_dir = RealPath(dir);
      if (real_dir.empty()) continue;
      if (h.real_path.rfind(real_dir + "/", 0) == 0) {
        std::string rel = h.real_path.substr(real_dir.size() + 1);
        if (rel.size() < best) {
          best = rel.size();
          h.include_path = rel;
        }
      }
    }
    model.headers.push_back(std::move(h));
  };
  for (std::size_t g = 0; g < import_groups.size(); ++g) {
    for (const std::string& path : import_groups[g]) add_header(path, static_cast<int>(g), true);
  }
  for (const std::string& path : inputs)
    add_header(path, static_cast<int>(import_groups.size()), false);
  if (diags.has_errors()) {
    diags.Print(std::cerr);
    return 1;
  }

  if (!ParseHeaders(clang_args, &model, &diags) || !MakePlan(model, &plan, &diags)) {
    diags.Print(std::cerr);
    return 1;
  }
  if (!compat_with.empty()) return CheckCompat(model, plan, compat_with);
  if (check_only) return 0;

  bool ok = true;
  std::string first_output;
  for (std::size_t f = 0; f < model.headers.size(); ++f) {
    if (model.headers[f].imported) continue;
    int file = static_cast<int>(f);
    std::string base = out_dir + "/" + model.headers[f].stem;
    if (first_output.empty()) first_output = base + ".thrift";
    ok &= WriteIfChanged(base + ".thrift", EmitThrift(model, plan, file));
    ok &= WriteIfChanged(base + ".proto", EmitProto(model, plan, file));
    ok &= WriteIfChanged(base + ".thrift.json", EmitThriftSchemaFile(model, plan, file));
    ok &= WriteIfChanged(base + ".rpcboot.h", EmitCppHeader(model, plan, file));
    ok &= WriteIfChanged(base + ".rpcboot.cc", EmitCppSource(model, plan, file));
  }
  if (!depfile.empty()) {
    std::string deps = first_output + ":";
    for (const std::string& d : model.dependencies) deps += " \\\n  " + d;
    ok &= WriteIfChanged(depfile, deps + "\n");
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace rpcboot::codegen

namespace {

struct MainArgs {
  int argc;
  char** argv;
  int status = 1;
};

void* RunCatching(void* p) {
  auto* args = static_cast<MainArgs*>(p);
  try {
    args->status = rpcboot::codegen::Run(args->argc, args->argv);
  } catch (const std::exception& e) {  // an internal error, named (see DescriptorBytes)
    std::fprintf(stderr, "%s\n", e.what());
    args->status = 1;
  }
  return nullptr;
}

}  // namespace

// Runs on a thread with a large stack: libclang spells a type by recursing through its template
// arguments, so a header's std::vector nested thousands deep (through aliases) would overflow
// the main thread's 8 MiB before codegen could name it. Pages are only touched as used.
int main(int argc, char** argv) {
  MainArgs args{argc, argv};
  pthread_attr_t attr;
  pthread_t thread;
  bool started = pthread_attr_init(&attr) == 0 &&
                 pthread_attr_setstacksize(&attr, std::size_t{512} << 20) == 0 &&
                 pthread_create(&thread, &attr, RunCatching, &args) == 0;
  pthread_attr_destroy(&attr);
  if (started) {
    pthread_join(thread, nullptr);
  } else {
    RunCatching(&args);  // no room for the large stack (a low ulimit -v): the usual one
  }
  return args.status;
}
