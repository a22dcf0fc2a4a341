#!/usr/bin/python3
"""A gRPC call whose request never finishes arriving cannot hold its connection for good.

A raw HTTP/2 peer (python3-h2 for the request, its frames read by hand) opens a call of
EchoScalars and sends 10 of the 100 bytes its message declares, then nothing. gRPC keeps such a
call (and its connection, and the connection's place under max_connections) as long as the peer
keeps the socket: the connection is not idle. With grpc_max_connection_age the server sends
GOAWAY at that age and closes the connection once the grace has passed. A stock grpcio client
calling all along is never failed by the connections it is moved off.
Usage: slow_request_test.py RICH_SERVER_BINARY
"""
import socket
import sys
import time

from interop_util import ECHO_SCALARS_HEADERS, echo_scalars, h2_client, start_rich_server

try:
    import grpc  # noqa: F401 (echo_scalars)
    import h2  # noqa: F401 (h2_client)
except ImportError as e:
    sys.exit(f"slow_request_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

SETTINGS, PING, GOAWAY = 4, 6, 7
ACK = 1


def frames_until_closed(sock):
    """The types of the frames the server sends until it closes; answers SETTINGS and PING."""
    seen, buffer = [], b""
    while True:
        data = sock.recv(65536)
        if not data:
            return seen
        buffer += data
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
            payload, buffer = buffer[9:9 + length], buffer[9 + length:]
            seen.append(kind)
            if kind == SETTINGS and not flags & ACK:
                sock.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
            if kind == PING and not flags & ACK:
                sock.sendall(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + payload)


def main():
    server, port = start_rich_server(
        sys.argv[1], ["grpc_max_connection_age_ms=1000", "grpc_max_connection_age_grace_ms=1000"],
        "slow_request_test")
    try:
        echo = echo_scalars(port)
        sock, conn = h2_client(port)
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, ECHO_SCALARS_HEADERS)
        conn.send_data(stream, b"\x00\x00\x00\x00\x64" + b"\x08" * 10)  # 10 of 100 bytes
        sock.sendall(conn.data_to_send())
        sock.settimeout(60)  # a server that never closes fails the test instead of hanging it
        try:
            seen = frames_until_closed(sock)
        except socket.timeout:
            sys.exit("slow_request_test: the connection of a call that never got its request is "
                     "still open after 60 s (grpc_max_connection_age 1 s, grace 1 s)")
        if GOAWAY not in seen:
            sys.exit(f"slow_request_test: closed without GOAWAY (frame types {seen})")
        # Calls made across several ages of their connections: none fails.
        failed, calls, end = 0, 0, time.monotonic() + 3.5
        while time.monotonic() < end:
            calls += 1
            try:
                echo(b"", timeout=10)
            except grpc.RpcError as e:
                failed += 1
                print(f"slow_request_test: a call failed: {e.code()} {e.details()}")
        if failed:
            sys.exit(f"slow_request_test: {failed} of {calls} calls failed across GOAWAYs")
        if server.poll() is not None:
            sys.exit("slow_request_test: the server exited")
        print(f"slow_request_test: the stalled call's connection got GOAWAY and was closed; "
              f"{calls} calls across later GOAWAYs all succeeded")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
