#include "discovery/registrar.h"

#include <atomic>

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
  static std::atomic<bool> warned{false};
  if (session_->options().digest.empty() && !warned.exchange(true)) {
    Log(LogLevel::kWarning,
        "registry: no registry.digest: anyone who can reach ZooKeeper can add, change or remove "
        "instances (and steer calls to their own); set registry.digest (docs/registry.md)");
  }
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
  if (s.ok() && !fenced_) {
    // With a digest, the application's node lets only this identity add or remove instances:
    // no rogue sibling, no deletion by others.
    const std::string parent = path_.substr(0, path_.rfind('/'));
    absl::Status fence = session_->Fence(parent);
    fenced_ = fence.ok();
    if (!fence.ok()) {
      Log(LogLevel::kError,
          absl::StrCat("registry: cannot protect ", parent, " (", fence.message(),
                       "): another identity owns it, so others may add instances beside this one "
                       "(registry.digest)"));
    }
  }
  if (s.ok()) {
    // The data watch that tells us when someone else deletes or changes the node.
    absl::StatusOr<Session::Node> node = session_->Get(path_, /*watch=*/true);
    s = node.status();
    if (absl::IsNotFound(s)) s = absl::NotFoundError("deleted while registering");
    if (node.ok() && node->data != data_ && AdoptStatus(node->data)) {
      // An operator's status change (OUT_OF_SERVICE, UP) is kept: it only takes the instance
      // out of traffic or back in. Anything else (address, ports, services) is put back.
    } else if (node.ok() && node->data != data_) {
      Log(LogLevel::kWarning,
          "registry: " + path_ + " was changed by someone else; writing it again");
      s = session_->Set(path_, data_);
      if (s.ok()) {
        ++writes_;
        absl::StatusOr<Session::Node> again = session_->Get(path_, /*watch=*/true);  // re-arm
        s = again.status();
      }
    }
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

bool Registrar::AdoptStatus(const std::string& data) {
  absl::StatusOr<Instance> changed = ParseInstance(data);
  if (!changed.ok()) return false;
  Instance same = self_;
  auto status = changed->metadata.find(std::string(kStatusKey));
  if (status == changed->metadata.end()) return false;
  same.metadata[std::string(kStatusKey)] = status->second;
  if (ToJson(same) != ToJson(*changed)) return false;
  Log(LogLevel::kWarning, absl::StrCat("registry: ", path_, ": status set to ", status->second,
                                       " by someone else; kept"));
  self_ = std::move(same);
  data_ = ToJson(self_);
  return true;
}

void Registrar::OnConnected(bool new_session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (new_session) fenced_ = false;
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
