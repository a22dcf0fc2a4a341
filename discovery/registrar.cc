#include "discovery/registrar.h"

#include "absl/strings/str_cat.h"
#include "rpcboot/base/log.h"

namespace rpcboot::discovery {

using internal::Log;

Registrar::Registrar(std::shared_ptr<Session> session, std::string base_path, Instance self)
    : session_(std::move(session)),
      self_(std::move(self)),
      data_(ToJson(self_)),
      path_(absl::StrCat(base_path == "/" ? "" : base_path, "/", self_.name, "/", self_.id)) {
  session_->AddObserver(this);
}

Registrar::~Registrar() { session_->RemoveObserver(this); }

absl::Status Registrar::Register() {
  std::lock_guard<std::mutex> lock(mu_);
  wanted_ = true;
  return Ensure();
}

absl::Status Registrar::Deregister() {
  std::lock_guard<std::mutex> lock(mu_);
  wanted_ = false;
  in_place_ = false;
  absl::Status s = session_->Delete(path_);
  if (absl::IsNotFound(s)) return absl::OkStatus();
  if (s.ok()) Log(LogLevel::kInfo, "registry: removed " + path_);
  return s;
}

bool Registrar::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_place_;
}

int Registrar::writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return writes_;
}

absl::Status Registrar::Ensure() {
  if (!wanted_) return absl::OkStatus();
  in_place_ = false;
  // The common case first: one round trip.
  absl::Status s = session_->Create(path_, data_, Session::Mode::kEphemeral, true);
  // A parent is missing; ZooKeeper may also remove an empty container parent between the two
  // calls, so try a few times.
  for (int attempt = 0; absl::IsNotFound(s) && attempt < 3; ++attempt) {
    s = session_->CreateParents(path_);
    if (s.ok()) s = session_->Create(path_, data_, Session::Mode::kEphemeral, true);
  }
  if (s.ok()) {
    ++writes_;
    Log(LogLevel::kInfo,
        absl::StrCat("registry: registered ", path_, " (", self_.address, ":", self_.port, ")"));
  } else if (absl::IsAlreadyExists(s)) {
    absl::StatusOr<Session::Node> node = session_->Get(path_, /*watch=*/false);
    s = node.status();
    if (node.ok() && node->ephemeral_owner != session_->session_id()) {
      // Left by an earlier session of this process (same instance id): it would vanish when
      // that session expires, so put a node of the current session in its place.
      s = session_->Delete(path_, node->version);
      if (s.ok() || absl::IsNotFound(s)) {
        s = session_->Create(path_, data_, Session::Mode::kEphemeral, true);
        if (s.ok()) {
          ++writes_;
          Log(LogLevel::kInfo, "registry: registered " + path_ + " again (new session)");
        }
      }
    }
  }
  if (s.ok()) {
    // The watch that tells us when someone else deletes the node.
    absl::StatusOr<bool> exists = session_->Exists(path_, /*watch=*/true);
    s = exists.status();
    if (exists.ok() && !*exists) s = absl::NotFoundError("deleted while registering");
  }
  in_place_ = s.ok();
  if (!s.ok() && std::string(s.message()) != last_error_) {
    last_error_ = std::string(s.message());
    Log(LogLevel::kWarning,
        absl::StrCat("registry: cannot register ", path_, " yet (", s.message(), "); retrying"));
  }
  if (s.ok()) last_error_.clear();
  return s;
}

void Registrar::OnConnected(bool) {
  std::lock_guard<std::mutex> lock(mu_);
  Ensure().IgnoreError();
}

void Registrar::OnNodeEvent(NodeEvent event, const std::string& path) {
  if (path != path_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (event == NodeEvent::kDeleted && wanted_) {
    Log(LogLevel::kWarning, "registry: " + path_ + " was deleted; registering again");
  }
  Ensure().IgnoreError();
}

void Registrar::OnTick() {
  std::lock_guard<std::mutex> lock(mu_);
  if (wanted_ && !in_place_ && session_->connected()) Ensure().IgnoreError();
}

}  // namespace rpcboot::discovery
