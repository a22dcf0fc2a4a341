// Reached by rich_service.h but not given to codegen: its types join rich_service's files.
#pragma once

#include <cstdint>
#include <string>

namespace rich {

struct Stamp {
  int64_t seconds = 0;
  int32_t nanos = 0;
  std::string zone;
};

}  // namespace rich
