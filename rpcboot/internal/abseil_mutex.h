// Abseil's lock-order checker, which the Abseil of Debian 12 runs on every absl::Mutex lock.
//
// Abseil checks lock order only in a build without NDEBUG, and Debian builds its Abseil without
// it. Each lock of an absl::Mutex then takes one spin lock shared by the whole process and looks
// the mutex up in a graph of every mutex locked so far (inserting it on first use, removing it when
// the mutex is destroyed); gRPC's core, built on that Abseil, takes 20-30 such locks per call in
// a server. rpcboot turns the checker off, as a release build of Abseil has it, once per process,
// before it makes its first gRPC server or channel.
//
// RPCBOOT_ABSL_DEADLOCK_DETECTION=1 leaves the checker as Abseil's build set it (a program that
// debugs its own lock order); 0 or unset turns it off; any other value is named in a warning and
// turns it off.
#ifndef RPCBOOT_INTERNAL_ABSEIL_MUTEX_H_
#define RPCBOOT_INTERNAL_ABSEIL_MUTEX_H_

namespace rpcboot::internal {

// Once per process (later calls do nothing); thread-safe.
void SettleAbseilDeadlockDetection();

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_ABSEIL_MUTEX_H_
