// Moving a call site from an in-process implementation to a service, step by step, behind a
// switch that works while the process runs (docs/migration.md).
//
//   // In App code: register the in-process implementation, then ask for the client as usual.
//   app->Local<shop::ShopService>(std::make_shared<InProcessCatalog>());
//   std::shared_ptr<shop::ShopService> shops = app->Client<shop::ShopService>();
//   // clients.shop.ShopService.mode (config) or the flag node in ZooKeeper picks the side:
//   //   local | remote | shadow[:local|:remote] | percent:N
//
//   // Without App:
//   auto channel = rpcboot::MakeMigrationChannel<shop::ShopService>(
//       std::make_shared<InProcessCatalog>(), rpcboot::MakeChannel(address, protocol));
//   auto shops = rpcboot::MakeClient<shop::ShopService>(channel);
//   channel->SetMode(*rpcboot::MigrationMode::Parse("shadow"), "deploy script");
//
// Each call takes the mode in force when it starts and finishes on the side it started on: a
// switch never drops, repeats or moves a call in flight.
#ifndef RPCBOOT_MIGRATION_H_
#define RPCBOOT_MIGRATION_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rpcboot/channel.h"
#include "rpcboot/internal/binding.h"

namespace rpcboot {

// Which side serves a call.
struct MigrationMode {
  enum class Kind { kLocal, kRemote, kShadow, kPercent };
  Kind kind = Kind::kRemote;
  // kShadow: the side whose answer the caller gets (the other side is only compared).
  bool primary_remote = false;
  // kPercent: the share of calls served remotely, 0 to 100 (two decimals count).
  double percent = 0;

  // "local", "remote", "shadow" (= "shadow:local"), "shadow:remote", "percent:25" (also
  // "percent:12.5"); surrounding blanks are ignored. The error says what was wrong.
  static absl::StatusOr<MigrationMode> Parse(std::string_view text);
  std::string ToString() const;  // the form Parse reads
  bool operator==(const MigrationMode& o) const {
    return kind == o.kind && primary_remote == o.primary_remote && percent == o.percent;
  }
};

// The shadow side: what is compared, and how much of it there may be.
struct ShadowOptions {
  // The share of calls that are also sent to the shadow side, 0 to 100.
  double percent = 100;
  // Shadow calls in flight at once (for this client); one more is skipped, never queued, so a
  // slow shadow side can never grow memory or delay the caller.
  int max_in_flight = 8;
  // Deadline of a shadow call to the remote side.
  std::chrono::milliseconds timeout{std::chrono::seconds(1)};
  // Fields left out of the comparison: "updated_at" (a field of that name anywhere in the
  // reply), "shop.updated_at" (that path; list indexes and map keys left out), either one
  // scoped to a method as "GetShop:updated_at".
  std::vector<std::string> ignore_fields;
  // Methods that are not RPCBOOT_IDEMPOTENT but safe to run twice (no side effects a shadow
  // would repeat); other non-idempotent methods are never shadowed.
  std::vector<std::string> methods;
  // Mismatches logged with their differences per minute (each one is counted).
  int log_per_minute = 10;
};

struct MigrationOptions {
  MigrationMode mode;
  ShadowOptions shadow;
  // A call meant for the remote side that was surely never sent (no instance, circuit open,
  // every connection refused) is served by the local implementation instead; counted and logged.
  bool fallback_to_local = false;
};

// What a migration channel has done (also in Channel::State().migration).
struct MigrationStats {
  MigrationMode mode;
  std::string mode_source;  // who set the mode: "config", "flag <path> version 3", ...
  int64_t switches = 0;
  int64_t local_calls = 0;      // calls whose answer came from the local side
  int64_t remote_calls = 0;     // ... from the remote side
  int64_t local_fallbacks = 0;  // of the local calls: remote calls never sent (fallback_to_local)
  int shadow_in_flight = 0;     // shadow calls sent and not yet compared
  struct Shadow {
    int64_t calls = 0;       // shadow calls completed (compared)
    int64_t matches = 0;     // same reply, or errors with the same code
    int64_t mismatches = 0;  // a field or the code differed
    int64_t errors = 0;      // the shadow side failed to answer (unavailable, deadline)
    int64_t skipped = 0;     // not sent: over max_in_flight
    int64_t unsafe = 0;      // not sent: the method is not idempotent nor in shadow.methods
  };
  Shadow shadow;                                   // all methods
  std::map<std::string, Shadow> shadow_by_method;  // by method name
  std::vector<std::string> recent_mismatches;      // the last few, with their differences
};

class MigrationChannel : public Channel {
 public:
  // Switches the mode for calls that start from now on. `source` says who did it, for the log
  // line and the status page. Modes that need the remote side fail (FailedPrecondition) when
  // there is none, keeping the current one.
  virtual absl::Status SetMode(MigrationMode mode, std::string source) = 0;
  virtual MigrationMode mode() const = 0;
  virtual MigrationStats Stats() const = 0;
  // Whether a remote side exists (remote, shadow and percent need one).
  virtual bool has_remote() const = 0;
};

// `local` implements the service in this process; `remote` (may be null: local mode only)
// reaches it over the network. The local side is called through the remote channel's codec, so
// both answer in the same bytes and a move changes nothing for the caller.
std::shared_ptr<MigrationChannel> MakeMigrationChannel(const internal::ServiceBinding& binding,
                                                       std::shared_ptr<void> local,
                                                       std::shared_ptr<Channel> remote,
                                                       MigrationOptions options = {});

template <class S>
std::shared_ptr<MigrationChannel> MakeMigrationChannel(std::shared_ptr<S> local,
                                                       std::shared_ptr<Channel> remote,
                                                       MigrationOptions options = {}) {
  internal::RequireGenerated<S>();
  return MakeMigrationChannel(internal::BindingOf<S>(),
                              std::shared_ptr<void>(local, static_cast<S*>(local.get())),
                              std::move(remote), std::move(options));
}

}  // namespace rpcboot

#endif  // RPCBOOT_MIGRATION_H_
