// Keeps this process's instance node in the registry: <base>/<name>/<id>, ephemeral, with the
// JSON of contract 5 (discovery/instance.h), parents created as container nodes.
//
//   rpcboot::discovery::Registrar registrar(session, "/services", self);
//   registrar.Register();     // now if connected, else as soon as a session is up
//   ...
//   registrar.Deregister();   // delete the node; clients' watches fire
//
// Once registered, the node is put back whenever it goes missing: after a session expiry (a new
// session re-creates it), after a long outage, and when someone else deletes it. A node left by
// an earlier session of this process (same id) is replaced.
//
// Thread-safe. Shares ownership of the session (it keeps it alive) and observes it until
// destroyed; the destructor stops keeping the node but does not delete it (Deregister does, or
// the session's end).
#ifndef RPCBOOT_DISCOVERY_REGISTRAR_H_
#define RPCBOOT_DISCOVERY_REGISTRAR_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "discovery/instance.h"
#include "discovery/session.h"

namespace rpcboot::discovery {

class Registrar final : private Session::Observer {
 public:
  Registrar(std::shared_ptr<Session> session, std::string base_path, Instance self);
  ~Registrar() override;
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

  // Writes the node (OK), or, when ZooKeeper is unreachable, returns Unavailable and keeps
  // trying in the background. Other errors (a permission problem) are returned as they are and
  // retried too.
  absl::Status Register();
  // Deletes the node and stops keeping it.
  absl::Status Deregister();

  // "<base>/<name>/<id>"
  const std::string& path() const { return path_; }
  // The node is known to be in place for the current session.
  bool registered() const;
  // How many times the node has been written (1 after the first registration).
  int writes() const;

 private:
  void OnConnected(bool new_session) override;
  void OnNodeEvent(NodeEvent event, const std::string& path) override;
  void OnTick() override;
  absl::Status Ensure();  // with mu_ held

  std::shared_ptr<Session> session_;
  Instance self_;  // its status may be set by an operator (AdoptStatus)
  std::string data_;
  const std::string path_;
  mutable std::mutex mu_;
  bool wanted_ = false;
  bool in_place_ = false;
  int writes_ = 0;
  // When `data` (the node as someone else wrote it) differs from ours only in its status, takes
  // the status as ours (an operator took the instance out of traffic, or put it back).
  bool AdoptStatus(const std::string& data);
  bool fenced_ = false;  // the application node's ACL was set (with a digest) in this session
  std::string last_error_;
};

}  // namespace rpcboot::discovery

#endif  // RPCBOOT_DISCOVERY_REGISTRAR_H_
