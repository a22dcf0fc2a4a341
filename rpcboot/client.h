// Client proxies: objects that implement a service interface by calling a server.
//
//   std::shared_ptr<shop::ShopService> shop = rpcboot::MakeClient<shop::ShopService>(channel);
//   shop::Shop s = shop->GetShop({42});  // throws rpcboot::RpcError on failure
//
//   // The same interface bound to a local object, through the same encode/decode path: for
//   // tests, and for moving a call site from in-process to RPC behind a flag.
//   std::shared_ptr<shop::ShopService> local = rpcboot::BindInProcess<shop::ShopService>(impl);
//
// Proxies are thread-safe and cheap to copy (shared_ptr). Include the generated
// <stem>.rpcboot.h of the service's header before calling these.
#ifndef RPCBOOT_CLIENT_H_
#define RPCBOOT_CLIENT_H_

#include <memory>
#include <utility>

#include "rpcboot/channel.h"
#include "rpcboot/internal/binding.h"
#include "rpcboot/status.h"

namespace rpcboot {

template <class S>
std::shared_ptr<S> MakeClient(std::shared_ptr<Channel> channel) {
  return std::make_shared<internal::Proxy<S>>(std::move(channel));
}

// A channel that serves calls with `impl` in the calling thread, encoding and decoding them as
// gRPC would (so copies, errors and limits behave as over the network).
std::shared_ptr<Channel> MakeInProcessChannel(const internal::ServiceBinding& binding,
                                              std::shared_ptr<void> impl);

template <class S>
std::shared_ptr<S> BindInProcess(std::shared_ptr<S> impl) {
  return MakeClient<S>(MakeInProcessChannel(internal::BindingOf<S>(), std::move(impl)));
}

}  // namespace rpcboot

#endif  // RPCBOOT_CLIENT_H_
