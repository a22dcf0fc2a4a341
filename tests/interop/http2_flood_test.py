#!/usr/bin/python3
"""HTTP/2 floods cannot make rpcboot's gRPC port hold what they send or stop serving others.

gRPC 1.51 keeps a header block (HEADERS, then CONTINUATION frames) whole until END_HEADERS: a
peer that never ends it made a server hold every byte (1.5 GB sent, RSS 1.66 GB). A flood of
empty DATA frames, or of WINDOW_UPDATE frames, on one connection made every other client's call
fail its deadline. A client that never acknowledges the server's SETTINGS is not held to the
stream limit: 20,000 calls opened took a server from 22 MB to 264 MB. rpcboot closes such a
connection (rpcboot/internal/http2_guard.h). Raw peers (frames written by hand, over TCP and
over TLS with ALPN h2) send CONTINUATION frames of 16 KB literal headers and empty ones, empty
DATA frames, WINDOW_UPDATE frames and HEADERS opening calls while a stock grpcio client calls; each flooding connection must be closed by the server long before the flood's
256 MiB are sent, the server must say why in its log, its memory must stay where it was, and
every grpcio call must be served, including during the floods, and one whose metadata is over
gRPC's own limit is answered RESOURCE_EXHAUSTED, as before.
Usage: http2_flood_test.py RICH_SERVER_BINARY
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from interop_util import ECHO_SCALARS_HEADERS, check_growth, rss_kib, start_rich_server

try:
    import grpc
except ImportError:
    sys.exit("http2_flood_test: python3-grpcio is missing: apt-get install python3-grpcio")

DATA, HEADERS, SETTINGS, WINDOW_UPDATE, CONTINUATION = 0, 1, 4, 8, 9
END_HEADERS = 4
FLOOD_LIMIT = 256 << 20
# Each channel its own connection (grpcio shares them between channels to one target).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
HERE = os.path.dirname(os.path.abspath(__file__))


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def hpack_int(n, prefix_bits, first=0):
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([first | n])
    out, n = bytes([first | top]), n - top
    while n >= 128:
        out, n = out + bytes([(n & 0x7F) | 0x80]), n >> 7
    return out + bytes([n])


def literal(name, value):
    """A header field literal without indexing, its name new (RFC 7541, 6.2.2)."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def flood(sock, opening, next_frames):
    """Sends the preface, SETTINGS and `opening`, then `next_frames(i)` until the server closes
    the connection; returns the bytes sent, or None when all FLOOD_LIMIT bytes went out."""
    sent = 0
    try:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, b"") + opening)
        i = 0
        while sent < FLOOD_LIMIT:
            data = next_frames(i)
            sock.sendall(data)
            sent += len(data)
            i += 1
    except (OSError, ssl.SSLError):
        return sent
    return None


CALL_HEADERS = b"".join(literal(n.encode(), v.encode()) for n, v in ECHO_SCALARS_HEADERS)
# (what, the frames that open it, the flood, the server's reason in its log)
FLOODS = [
    ("16 KB headers", frame(HEADERS, 0, 1, CALL_HEADERS),
     lambda i: frame(CONTINUATION, 0, 1, literal(b"x-flood-%d" % i, b"v" * 16000)),
     "a header block of more than 65536 bytes"),
    ("empty CONTINUATION frames", frame(HEADERS, 0, 1, CALL_HEADERS),
     lambda _: frame(CONTINUATION, 0, 1, b"") * 1000, "a header block of more than 64 frames"),
    ("empty DATA frames", frame(HEADERS, END_HEADERS, 1, CALL_HEADERS),
     lambda _: frame(DATA, 0, 1, b"") * 1000, "empty DATA frames in a row"),
    ("WINDOW_UPDATE frames", b"", lambda _: frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x01") * 1000,
     "WINDOW_UPDATE, PING, SETTINGS or empty DATA frames in a second"),
    # Calls opened by a client that never acknowledges the server's SETTINGS (gRPC holds it to
    # the stream limit only once it has).
    ("calls before the SETTINGS ack", b"",
     lambda i: b"".join(frame(HEADERS, END_HEADERS, 2 * (100 * i + k) + 1, CALL_HEADERS)
                        for k in range(100)),
     "calls opened before the client acknowledged the server's SETTINGS"),
]


def expect_closed(what, sent):
    if sent is None:
        sys.exit(f"http2_flood_test: FAIL: {what}: the server took all {FLOOD_LIMIT >> 20} MiB")
    # What the two sockets' buffers hold is all that can go out after the server's close.
    if sent > 64 << 20:
        sys.exit(f"http2_flood_test: FAIL: {what}: {sent >> 20} MiB went out before the close")
    print(f"{what}: closed after {sent >> 10} KiB sent")


def stock_calls(channel):
    """grpcio calls: a plain one and one with 7 KB of metadata are served, one with 16 KB is
    refused RESOURCE_EXHAUSTED by gRPC's own limit (8 KiB), not by the connection's close (gRPC
    then closes that connection itself: the last call takes a new one)."""
    echo = channel().unary_unary("/rich.RichService/EchoScalars")
    echo(b"", timeout=10)
    echo(b"", timeout=10, metadata=[("x-big", "v" * 7000)])
    try:
        echo(b"", timeout=10, metadata=[("x-big", "v" * 16000)])
        sys.exit("http2_flood_test: FAIL: 16 KB of metadata was accepted")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            sys.exit(f"http2_flood_test: FAIL: 16 KB of metadata: {e.code()} {e.details()}")
    channel().unary_unary("/rich.RichService/EchoScalars")(b"", timeout=10)


def run(binary, args, connect, channel, what):
    server, port = start_rich_server(binary, args, "http2_flood_test")
    try:
        stock_calls(lambda: channel(port))
        echo = channel(port).unary_unary("/rich.RichService/EchoScalars")
        before = rss_kib(server.pid)
        for kind, opening, next_frames, _ in FLOODS:
            time.sleep(1.1)  # the server logs one refusal a second: this one's line must show
            for n in range(2):
                result = []
                flooder = threading.Thread(
                    target=lambda: result.append(flood(connect(port), opening, next_frames)))
                flooder.start()
                for _ in range(20):  # a stock client is served during the flood
                    echo(b"", timeout=5)
                flooder.join()
                expect_closed(f"{what} connection {n + 1}, {kind}", result[0])
        grown = rss_kib(server.pid) - before
        print(f"{what}: server RSS grew by {grown} KiB")
        check_growth("http2_flood_test", grown, 32 * 1024)
        stock_calls(lambda: channel(port))
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    for kind, _, _, reason in FLOODS:
        if reason not in log:
            sys.exit(f"http2_flood_test: FAIL: {what}: {kind}: no log line with '{reason}':\n"
                     f"{log[-2000:]}")


def main():
    binary = sys.argv[1]
    run(binary, [], lambda port: socket.create_connection(("127.0.0.1", port)),
        lambda port: grpc.insecure_channel(f"127.0.0.1:{port}", options=OWN_CONNECTION), "plaintext")
    with tempfile.TemporaryDirectory() as certs:
        subprocess.run([os.path.join(HERE, "../../scripts/make-test-certs.sh"), certs], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        context = ssl.create_default_context(cafile=f"{certs}/ca.crt")
        context.load_cert_chain(f"{certs}/client.crt", f"{certs}/client.key")
        context.set_alpn_protocols(["h2"])

        def connect(port):
            sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                       server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                sys.exit("http2_flood_test: FAIL: the TLS server did not choose h2")
            return sock

        def channel(port):
            credentials = grpc.ssl_channel_credentials(
                open(f"{certs}/ca.crt", "rb").read(), open(f"{certs}/client.key", "rb").read(),
                open(f"{certs}/client.crt", "rb").read())
            return grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                                       options=[("grpc.ssl_target_name_override", "localhost")] +
                                       OWN_CONNECTION)

        run(binary, [f"tls_dir={certs}"], connect, channel, "TLS")
    print("http2_flood_test: ok")


if __name__ == "__main__":
    main()
