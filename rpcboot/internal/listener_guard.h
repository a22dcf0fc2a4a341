// Listening sockets that keep accepting when the process runs out of file descriptors.
//
//   SpareDescriptor spare;               // held from the start
//   if (errno == EMFILE) spare.Shed(fd);  // one pending connection taken off and closed
//
//   GuardGrpcListeners(port, max_connections, tls);  // after grpc::Server started on `port`
//   UnguardGrpcListeners(port);  // before it shuts down
//
// gRPC 1.51 (Debian 12's) gives up on a listening socket the first time accept4 fails for a
// reason other than EAGAIN or ECONNABORTED: once a connection flood has used up the process's
// descriptors, the server never takes another connection, even after they are free again
// (grpc/grpc#16058, #20418). rpcboot therefore defines accept4 for the process: on a socket
// registered here, a failure for want of descriptors or memory takes the pending connection with
// the spare descriptor and closes it (that one connection fails, as on Thrift), and any failure
// reaches gRPC as EAGAIN, so gRPC waits for the next connection instead of closing its
// listener. gRPC 1.51 has no cap on connections either: on a registered socket a connection past
// max_connections is closed at once (that one connection fails). Every other accept4 in the
// process passes through to the C library unchanged. The HTTP/2 frames of the connections a
// registered socket accepts are bounded too (rpcboot/internal/http2_guard.h).
//
// Thread-safe.
#ifndef RPCBOOT_INTERNAL_LISTENER_GUARD_H_
#define RPCBOOT_INTERNAL_LISTENER_GUARD_H_

namespace rpcboot::internal {

// A descriptor held in reserve (on /dev/null). Not thread-safe: one accepting thread uses it.
class SpareDescriptor {
 public:
  SpareDescriptor();
  ~SpareDescriptor();
  SpareDescriptor(const SpareDescriptor&) = delete;
  SpareDescriptor& operator=(const SpareDescriptor&) = delete;

  // Out of descriptors: frees the spare, takes one pending connection of `listen_fd` with it and
  // closes that connection, then takes the spare back. False when no connection was taken.
  bool Shed(int listen_fd);

 private:
  int fd_ = -1;
};

// Registers the listening TCP sockets of this process bound to `port` (gRPC's, found after it
// bound them), each to hold at most `max_connections` connections, their connections' HTTP/2
// frames bounded (`tls`: they speak TLS), or forgets them (before gRPC closes them).
void GuardGrpcListeners(int port, int max_connections, bool tls);
void UnguardGrpcListeners(int port);

}  // namespace rpcboot::internal

#endif  // RPCBOOT_INTERNAL_LISTENER_GUARD_H_
