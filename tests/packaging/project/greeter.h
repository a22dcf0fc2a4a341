#pragma once
#include <cstdint>
#include <string>

#include "rpcboot/annotations.h"

namespace greeter {

struct HelloRequest {
  std::string name;
  int32_t times;
};

struct HelloReply {
  std::string text;
};

class RPCBOOT_SERVICE Greeter {
 public:
  virtual ~Greeter() = default;
  RPCBOOT_IDEMPOTENT virtual HelloReply SayHello(const HelloRequest& request) = 0;
};

}  // namespace greeter
