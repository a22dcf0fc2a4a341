#!/usr/bin/python3
"""HTTP/2 rapid reset (CVE-2023-44487) against rpcboot's gRPC port.

One HTTP/2 connection (python3-h2, a stack rpcboot did not write) opens 20,000 calls and resets
each at once (HEADERS, then RST_STREAM), so no call stays open and the stream limit never
applies. The server must not keep anything per reset call: its resident memory grows by less
than 50 MB (a kept call costs ~12 KB: 20,000 would be ~240 MB), the connection is still
answered, and another client is served afterwards.
Usage: rapid_reset_test.py RICH_SERVER_BINARY
"""
import sys

from interop_util import (ECHO_SCALARS_HEADERS, check_growth, echo_scalars, h2_client, rss_kib,
                          start_rich_server)

try:
    import grpc  # noqa: F401 (echo_scalars)
    import h2.errors
    import h2.events
except ImportError as e:
    sys.exit(f"rapid_reset_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

CALLS = 20_000


def main():
    server, port = start_rich_server(sys.argv[1], [], "rapid_reset_test")
    try:
        echo = echo_scalars(port)
        before = rss_kib(server.pid)

        sock, conn = h2_client(port)
        for n in range(CALLS):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, ECHO_SCALARS_HEADERS)
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            if n % 500 == 499:
                sock.sendall(conn.data_to_send())
        # The connection still answers: a PING comes back acknowledged.
        conn.ping(b"rpcboot!")
        sock.sendall(conn.data_to_send())
        sock.settimeout(20)
        acked = False
        while not acked:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.PingAckReceived):
                    acked = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    print(f"the server ended the connection: {event.error_code!r}")
            sock.sendall(conn.data_to_send())
        after = rss_kib(server.pid)
        print(f"{CALLS} calls opened and reset; ping acknowledged: {acked}; "
              f"server RSS {before} -> {after} KiB")
        check_growth("rapid_reset_test", after - before, 50 * 1024)
        sock.close()
        echo(b"", timeout=10)  # others are still served
        print("rapid_reset_test: ok")
    finally:
        server.terminate()
        server.communicate(timeout=30)


if __name__ == "__main__":
    main()
