#!/usr/bin/python3
"""HTTP/2 rapid reset (CVE-2023-44487) against rpcboot's gRPC port.

Raw HTTP/2 connections (python3-h2, a stack rpcboot did not write):
1. An attacker opens 20,000 calls and resets each at once (HEADERS, then RST_STREAM), so no
   call stays open and the stream limit never applies. gRPC 1.51 reads them faster than it frees
   them (~9 KB each: 20,000 took a server from 23 MB to 200 MB). The server closes the connection
   and says why; its resident memory grows by less than 30 MB.
2. A client that gives up a minority of its calls at once is served as any other: 3,300 calls
   in one burst (the server's stream limit raised to 4,000 for it), every third reset right
   after it is opened (1,100 resets, more than the bound of 1,000 a second, a third of the
   calls); the rest are answered OK and the connection stays.
3. Another client is served.
Usage: rapid_reset_test.py RICH_SERVER_BINARY
"""
import sys
import time

from interop_util import (ECHO_SCALARS_HEADERS, check_growth, echo_scalars, h2_client, rss_kib,
                          start_rich_server)

try:
    import grpc  # noqa: F401 (echo_scalars)
    import h2.errors
    import h2.exceptions
    import h2.events
except ImportError as e:
    sys.exit(f"rapid_reset_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

ATTACK_CALLS = 20_000
CLIENT_CALLS = 3_300


def fail(message):
    sys.exit(f"rapid_reset_test: FAIL: {message}")


def read_until_ping_ack(sock, conn, on_event):
    """Reads until the server acknowledges a PING sent now: True, or how it closed the
    connection."""
    conn.ping(b"rpcboot!")
    sock.sendall(conn.data_to_send())
    sock.settimeout(20)
    acked = False
    while not acked:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return "reset"
        if not data:
            return "closed"
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            # Frames after the server's GOAWAY (HTTP/2 allows them; python3-h2 refuses them).
            return f"GOAWAY, then {e}"
        for event in events:
            if isinstance(event, h2.events.PingAckReceived):
                acked = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                return f"GOAWAY {event.error_code!r} {event.additional_data!r}"
            else:
                on_event(event)
        sock.sendall(conn.data_to_send())
    return True


def cancelling_client(port):
    sock, conn = h2_client(port, acked=True)
    kept = set()
    for n in range(CLIENT_CALLS):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, ECHO_SCALARS_HEADERS)
        if n % 3 == 0:
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
        else:
            conn.send_data(sid, b"\0\0\0\0\0", end_stream=True)  # an empty EchoScalars request
            kept.add(sid)
    sock.sendall(conn.data_to_send())
    answered = set()

    def on_event(event):
        if isinstance(event, h2.events.TrailersReceived):
            if dict(event.headers).get(b"grpc-status") == b"0":
                answered.add(event.stream_id)

    # A ping is answered in order: calls still running may finish after it, so ask again until
    # every call is answered. The calls are counted, not timed: the deadline only ends the wait
    # for a server that stopped answering (on a loaded machine, under a sanitizer, 50 pings
    # came back before the last of the 2,200 calls did).
    deadline = time.monotonic() + 60
    while not kept <= answered and time.monotonic() < deadline:
        if (how := read_until_ping_ack(sock, conn, on_event)) is not True:
            fail(f"the server closed the connection of a client that reset {CLIENT_CALLS // 3} "
                 f"of its {CLIENT_CALLS} calls ({how})")
    sock.close()
    print(f"{CLIENT_CALLS} calls, {CLIENT_CALLS - len(kept)} reset at once: "
          f"{len(answered & kept)} of the other {len(kept)} answered OK, connection kept")
    if not kept <= answered:
        fail(f"only {len(answered & kept)} of {len(kept)} calls answered OK within 60 s")


def attacker(port, pid):
    before = rss_kib(pid)
    sock, conn = h2_client(port, acked=True)
    sent = 0
    try:
        for n in range(ATTACK_CALLS):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, ECHO_SCALARS_HEADERS)
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            if n % 500 == 499:
                sock.sendall(conn.data_to_send())
                sent = n + 1
        kept = read_until_ping_ack(sock, conn, lambda event: None) is True
    except (BrokenPipeError, ConnectionResetError):
        kept = False
    sock.close()
    after = rss_kib(pid)
    print(f"{sent} calls opened and reset; connection kept: {kept}; "
          f"server RSS {before} -> {after} KiB")
    if kept:
        fail(f"the server kept a connection that opened and reset {ATTACK_CALLS} calls")
    check_growth("rapid_reset_test", after - before, 30 * 1024)


def main():
    server, port = start_rich_server(sys.argv[1], ["grpc_max_concurrent_streams=4000"],
                                     "rapid_reset_test")
    try:
        echo = echo_scalars(port)
        attacker(port, server.pid)
        cancelling_client(port)
        echo(b"", timeout=10)  # others are still served
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    if "rapid reset" not in log:
        fail(f"the server did not log why it closed the connection; its log:\n{log}")
    print("rapid_reset_test: ok")


if __name__ == "__main__":
    main()
