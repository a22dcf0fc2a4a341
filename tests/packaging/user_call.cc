// What a user's file looks like: the generated header, the client API, one proxy call. The
// compile-time check (user_compile_test.sh) builds it and lists what it pulls in.
#include "rich_service.rpcboot.h"
#include "rpcboot/client.h"

int main() {
  auto rich = rpcboot::MakeClient<rich::RichService>(rpcboot::MakeGrpcChannel("127.0.0.1:1"));
  return static_cast<int>(rich->Count());
}
