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
// Gives a struct field its own wire id (1..32767, not 19000..19999), so that fields may be
// reordered and removed without breaking deployed peers. A struct gives every field an id or
// none (then id = declaration index + 1).
//   RPCBOOT_ID(4) std::string note;
#define RPCBOOT_ID(id) __attribute__((annotate("rpcboot_id:" #id)))
// On a struct: ids of removed fields, never to be used again (emitted as proto `reserved`).
//   struct RPCBOOT_RESERVED(2, 3) Order { ... };
#define RPCBOOT_RESERVED(...) __attribute__((annotate("rpcboot_reserved:" #__VA_ARGS__)))
#else
#define RPCBOOT_SERVICE
#define RPCBOOT_IDEMPOTENT
#define RPCBOOT_ID(id)
#define RPCBOOT_RESERVED(...)
#endif

#endif  // RPCBOOT_ANNOTATIONS_H_
