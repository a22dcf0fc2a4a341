// Runs the rpcboot-codegen binary the build produced, as a user would, and captures its output.
#ifndef RPCBOOT_TESTS_CODEGEN_CODEGEN_RUNNER_H_
#define RPCBOOT_TESTS_CODEGEN_CODEGEN_RUNNER_H_

#include <string>
#include <vector>

namespace rpcboot::testing {

struct CodegenRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// A fresh, empty directory under the test's temporary directory.
std::string MakeTempDir(const std::string& name);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

CodegenRun RunCodegen(const std::vector<std::string>& args);

}  // namespace rpcboot::testing

#endif  // RPCBOOT_TESTS_CODEGEN_CODEGEN_RUNNER_H_
