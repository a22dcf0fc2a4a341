// Annotations that turn a plain C++ interface into an rpcboot service.
//
//   class RPCBOOT_SERVICE ShopService {
//    public:
//     virtual ~ShopService() = default;
//     RPCBOOT_IDEMPOTENT virtual Shop GetShop(const GetShopRequest& request) = 0;
//   };
//
// rpcboot-codegen (libclang) reads the annotations from the header; ordinary compilers see
// nothing. The attributes exist only under clang so that g++ builds stay free of
// unknown-attribute warnings.
#ifndef RPCBOOT_ANNOTATIONS_H_
#define RPCBOOT_ANNOTATIONS_H_

#if defined(__clang__)
// Marks a class whose pure virtual methods form an RPC service.
#define RPCBOOT_SERVICE __attribute__((annotate("rpcboot_service")))
// Marks a method that is safe to retry on another instance.
#define RPCBOOT_IDEMPOTENT __attribute__((annotate("rpcboot_idempotent")))
#else
#define RPCBOOT_SERVICE
#define RPCBOOT_IDEMPOTENT
#endif

#endif  // RPCBOOT_ANNOTATIONS_H_
