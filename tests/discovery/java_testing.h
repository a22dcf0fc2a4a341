// Running the Java checks in tests/discovery/java (Apache Curator from Debian's jars) from a
// test: their class path, compiling them, and a shell helper.
#ifndef RPCBOOT_TESTS_DISCOVERY_JAVA_TESTING_H_
#define RPCBOOT_TESTS_DISCOVERY_JAVA_TESTING_H_

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>

namespace rpcboot::testing {

inline const std::string kJavaJars = "/usr/share/java";

// `classes` plus every jar the checks need.
inline std::string JavaClassPath(const std::string& classes) {
  std::string cp = classes;
  for (const char* jar : {"curator-x-discovery", "curator-recipes", "curator-framework",
                          "curator-client", "jackson-databind", "jackson-core",
                          "jackson-annotations", "guava", "slf4j-api", "zookeeper"}) {
    cp += ":" + kJavaJars + "/" + jar + ".jar";
  }
  return cp;
}

// Runs a shell command; returns its exit status and stdout+stderr.
inline std::pair<int, std::string> RunShell(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// Compiles the checks in `sources` into `classes`; "" on success, else what to install or what
// javac said.
inline std::string CompileJavaChecks(const std::string& sources, const std::string& classes) {
  std::filesystem::create_directories(classes);
  for (const char* tool : {"javac", "java"}) {
    if (RunShell(std::string("command -v ") + tool).first != 0) {
      return std::string(tool) +
             " not found: apt-get install default-jdk-headless (./scripts/setup.sh)";
    }
  }
  for (const char* jar : {"curator-x-discovery", "curator-recipes"}) {
    if (!std::filesystem::exists(kJavaJars + "/" + jar + ".jar")) {
      return std::string(jar) +
             ".jar not found: apt-get install libcurator-discovery-java libcurator-recipes-java "
             "(./scripts/setup.sh)";
    }
  }
  auto [rc, out] =
      RunShell("javac -d " + classes + " -cp " + JavaClassPath(classes) + " " + sources +
               "/CuratorJsonCheck.java " + sources + "/CuratorRegistryCheck.java " + sources +
               "/org/springframework/cloud/zookeeper/discovery/ZookeeperInstance.java");
  return rc == 0 ? "" : "javac failed: " + out;
}

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_DISCOVERY_JAVA_TESTING_H_
