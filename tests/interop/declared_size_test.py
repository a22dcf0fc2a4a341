#!/usr/bin/python3
"""A gRPC request that declares a message of 2 GB, against rpcboot's gRPC port.

One HTTP/2 connection (python3-h2, a stack rpcboot did not write) sends a call whose 5-byte gRPC
prefix declares 2,000,000,000 bytes (max_message_bytes is 16 MiB) and then sends bytes as fast
as the server grants flow-control credit. gRPC 1.51 buffers a message whole before it applies
the size limit, so what bounds this peer is server.grpc_memory_quota (64 MB here): the stream
must end (reset, or answered with a status) before the peer has sent twice the quota, the
server's peak resident memory must stay within twice the quota of where it started, and another
client is served afterwards.
Usage: declared_size_test.py RICH_SERVER_BINARY
"""
import sys

from interop_util import (ECHO_SCALARS_HEADERS, check_growth, echo_scalars, h2_client, rss_kib,
                          start_rich_server, status_kib)

try:
    import grpc  # noqa: F401 (echo_scalars)
    import h2.events
except ImportError as e:
    sys.exit(f"declared_size_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

QUOTA = 64_000_000
DECLARED = 2_000_000_000


def ended(events):
    """How the stream ended in `events`, or None."""
    for event in events:
        if isinstance(event, h2.events.StreamReset):
            return f"stream reset ({event.error_code!r})"
        if isinstance(event, h2.events.ConnectionTerminated):
            return f"connection ended (GOAWAY {event.error_code!r})"
        if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
            for name, value in event.headers:
                if name == b"grpc-status":
                    return f"answered grpc-status {int(value)}"
    return None


def main():
    server, port = start_rich_server(sys.argv[1], [f"grpc_memory_quota={QUOTA}"],
                                     "declared_size_test")
    try:
        echo = echo_scalars(port)
        before = rss_kib(server.pid)

        sock, conn = h2_client(port)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, ECHO_SCALARS_HEADERS)
        conn.send_data(sid, b"\0" + DECLARED.to_bytes(4, "big"))
        sock.sendall(conn.data_to_send())
        sock.settimeout(20)
        chunk = b"\0" * 16384
        sent, how = 0, None
        while how is None and sent < 2 * QUOTA:
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window < len(chunk):  # wait for the server's credit, or its verdict
                data = sock.recv(65536)
                if not data:
                    how = "connection closed"
                    break
                how = ended(conn.receive_data(data))
                sock.sendall(conn.data_to_send())
                continue
            conn.send_data(sid, chunk)
            sent += len(chunk)
            try:
                sock.sendall(conn.data_to_send())
            except OSError as e:
                how = f"connection ended ({e})"
        peak = status_kib(server.pid, "VmHWM")
        print(f"declared {DECLARED} bytes, sent {sent}: {how}; "
              f"server RSS {before} KiB, peak {peak} KiB")
        if how is None:
            sys.exit(f"declared_size_test: FAIL: the server took {sent} bytes of the message "
                     f"(quota {QUOTA})")
        check_growth("declared_size_test", peak - before, 2 * QUOTA // 1024)
        sock.close()
        echo(b"", timeout=10)  # others are still served
        print("declared_size_test: ok")
    finally:
        server.terminate()
        server.communicate(timeout=30)


if __name__ == "__main__":
    main()
