#!/usr/bin/python3
"""A gRPC peer that never reads its replies, against rpcboot's gRPC port.

One HTTP/2 connection (python3-h2, a stack rpcboot did not write) opens 100 calls of ~1 MB whose
replies are as large, and never grants flow-control credit, so no reply can leave the server. The
server runs with server.grpc_max_unsent_bytes = 4,000,000: it may hold 3 such replies; every
later one must be answered RESOURCE_EXHAUSTED (trailers need no credit) instead of held. Checked
by count (the statuses this peer finally reads) and by the server's resident memory, which stays
below the 100 MB the replies alone would take. Another client is served normally all along.
Usage: slow_reader_test.py RICH_SERVER_BINARY
"""
import sys

from interop_util import (ECHO_SCALARS_HEADERS, check_growth, echo_scalars, h2_client, rss_kib,
                          start_rich_server, varint)

try:
    import grpc  # noqa: F401 (echo_scalars)
    import h2.events
except ImportError as e:
    sys.exit(f"slow_reader_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

STREAMS = 100
SIZE = 1_000_000
LIMIT = 4_000_000


def statuses(conn, sock, events, seen):
    """Records the grpc-status of every stream that ended in `events`."""
    for event in events:
        if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
            for name, value in event.headers:
                if name == b"grpc-status":
                    seen[event.stream_id] = int(value)


def main():
    server, port = start_rich_server(sys.argv[1], [f"grpc_max_unsent_bytes={LIMIT}"],
                                     "slow_reader_test")
    try:
        echo = echo_scalars(port)
        before = rss_kib(server.pid)

        sock, conn = h2_client(port)
        seen = {}
        text = b"a" * SIZE
        body = bytes([0x62]) + varint(len(text)) + text  # Scalars.text (field 12)
        message = b"\0" + len(body).to_bytes(4, "big") + body
        for _ in range(STREAMS):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, ECHO_SCALARS_HEADERS)
            offset = 0
            while offset < len(message):
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window == 0:  # wait for the server's credit; take nothing of its replies
                    statuses(conn, sock, conn.receive_data(sock.recv(65536)), seen)
                    sock.sendall(conn.data_to_send())
                    continue
                n = min(window, len(message) - offset)
                conn.send_data(sid, message[offset:offset + n],
                               end_stream=offset + n == len(message))
                offset += n
                sock.sendall(conn.data_to_send())
        # Every call has been sent. The server answers all but the held ones at once.
        sock.settimeout(20)
        while len(seen) < STREAMS - 3:
            data = sock.recv(65536)
            if not data:
                break
            statuses(conn, sock, conn.receive_data(data), seen)
            sock.sendall(conn.data_to_send())
        refused = sum(1 for code in seen.values() if code == 8)  # RESOURCE_EXHAUSTED
        after = rss_kib(server.pid)
        print(f"{len(seen)} of {STREAMS} calls answered, {refused} RESOURCE_EXHAUSTED; "
              f"server RSS {before} -> {after} KiB")
        if refused < STREAMS - 3:
            sys.exit(f"slow_reader_test: FAIL: expected {STREAMS - 3} replies refused, got {refused}")
        # Holding the replies would cost at least STREAMS x SIZE (about 240 MB measured without
        # the cap); the requests' own buffers come and go (30-55 MB measured).
        check_growth("slow_reader_test", after - before, STREAMS * SIZE // 1024)
        echo(b"", timeout=10)  # others are still served
        sock.close()
        print("slow_reader_test: ok")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
        if "server.grpc_max_unsent_bytes" not in err:
            print(err[-2000:])
            sys.exit("slow_reader_test: FAIL: the server logged no refused reply")


if __name__ == "__main__":
    main()
