#!/usr/bin/python3
"""gRPC compression on rpcboot's native server (server.grpc_compression), with peers rpcboot did
not write: grpcio (gzip and deflate requests, gzip replies inflated by grpcio itself) and
python3-h2 (the bytes on the wire: the compressed flag, grpc-encoding, malformed messages).

- gzip: compressed requests are served; a reply of 1 KiB or more goes gzip to a caller that
  lists gzip in grpc-accept-encoding, and plain to one that does not or when it is small.
- A request that does not inflate, or whose encoding the server does not know, is answered
  (INTERNAL, UNIMPLEMENTED listing what it takes) and the connection serves on.
- A gzip bomb (64 KiB that inflates to 64 MiB) is refused RESOURCE_EXHAUSTED once its output
  passes max_message_bytes; the server's memory stays near that, and it serves on.
- accept: compressed requests are served, replies stay plain.
- On gRPC's library (grpc_server grpcpp) the setting is refused at start, naming it.
Usage: compression_test.py RICH_SERVER_BINARY
"""
import gzip
import os
import subprocess
import sys
import zlib

from interop_util import (ECHO_SCALARS_HEADERS, check_growth, h2_client, start_rich_server,
                          status_kib, varint)

try:
    import grpc
    import h2.events
except ImportError as e:
    sys.exit(f"compression_test: {e.name} is missing: apt-get install python3-grpcio python3-h2")

TEST = "compression_test"


def fail(why):
    sys.exit(f"{TEST}: FAIL: {why}")


def scalars(text):
    """A serialized rich.Scalars with only `text` (field 12) set."""
    return bytes([0x62]) + varint(len(text)) + text


def raw_call(sock, conn, extra_headers, message):
    """One EchoScalars call on a raw HTTP/2 connection: `message` is the whole gRPC message
    (prefix included). Returns (response headers, the reply's bytes, trailers) as dicts of str
    and bytes."""
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, ECHO_SCALARS_HEADERS + extra_headers)
    step = conn.max_outbound_frame_size  # the server's window (1 MiB) takes the rest
    for offset in range(0, len(message), step):
        conn.send_data(sid, message[offset:offset + step],
                       end_stream=offset + step >= len(message))
    sock.sendall(conn.data_to_send())
    headers, trailers, data = {}, {}, b""
    sock.settimeout(20)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            fail("the server closed the connection")
        for event in conn.receive_data(chunk):
            if getattr(event, "stream_id", sid) != sid:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = {k.decode(): v.decode() for k, v in event.headers}
                if "grpc-status" in headers:  # trailers-only
                    return headers, data, headers
            elif isinstance(event, h2.events.DataReceived):
                data += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, sid)
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = {k.decode(): v.decode() for k, v in event.headers}
                return headers, data, trailers
        sock.sendall(conn.data_to_send())


def plain(body):
    return b"\0" + len(body).to_bytes(4, "big") + body


def compressed(body):
    return b"\1" + len(body).to_bytes(4, "big") + body


def check_gzip_mode(server, port):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    echo = channel.unary_unary("/rich.RichService/EchoScalars")
    request = scalars(b"order 4711: two pizzas, one salad; " * 30000)  # ~1 MiB
    expected = echo(request, timeout=10)  # as served uncompressed
    for algorithm in (grpc.Compression.Gzip, grpc.Compression.Deflate):
        reply = echo(request, compression=algorithm, timeout=10)
        if reply != expected:
            fail(f"a {algorithm} request was not echoed ({len(reply)} bytes back)")
    print("grpcio: gzip and deflate requests of 1 MiB served, the gzip replies read")

    sock, conn = h2_client(port, acked=True)
    body = scalars(b"x" * 65536)
    echoed = echo(body, timeout=10)
    headers, data, trailers = raw_call(sock, conn, [("grpc-accept-encoding", "identity,gzip")],
                                       plain(body))
    if trailers.get("grpc-status") != "0":
        fail(f"the call failed: {trailers}")
    if headers.get("grpc-encoding") != "gzip" or data[0] != 1:
        fail(f"a 64 KiB reply to a caller that takes gzip was not compressed: {headers}, "
             f"flag {data[0]}")
    if gzip.decompress(data[5:]) != echoed or len(data) > len(body) // 10:
        fail(f"the compressed reply ({len(data)} bytes) is not the reply gzipped")
    if "gzip" not in headers.get("grpc-accept-encoding", ""):
        fail(f"the server does not say it takes gzip: {headers}")
    print(f"wire: a {len(body)}-byte reply went as {len(data) - 5} bytes of gzip, flag set")

    headers, data, _ = raw_call(sock, conn, [], plain(body))
    if "grpc-encoding" in headers or data[0] != 0 or data[5:] != echoed:
        fail(f"a reply to a caller that takes no gzip was compressed: {headers}")
    headers, data, _ = raw_call(sock, conn, [("grpc-accept-encoding", "gzip")],
                                plain(scalars(b"small")))
    if data[0] != 0:
        fail("a reply under 1 KiB was compressed")
    print("wire: replies to a caller without gzip, and small ones, go plain")

    _, _, trailers = raw_call(sock, conn, [("grpc-encoding", "gzip")],
                              compressed(b"this is not gzip at all"))
    if trailers.get("grpc-status") != "13" or "does not inflate" not in trailers.get(
            "grpc-message", ""):
        fail(f"a message that is not gzip: {trailers}")
    _, _, trailers = raw_call(sock, conn, [("grpc-encoding", "gzip")],
                              compressed(gzip.compress(body)[:-12]))
    if trailers.get("grpc-status") != "13":
        fail(f"a truncated gzip message: {trailers}")
    headers, _, trailers = raw_call(sock, conn, [("grpc-encoding", "snappy")],
                                    compressed(b"whatever"))
    if trailers.get("grpc-status") != "12" or "gzip" not in headers.get(
            "grpc-accept-encoding", ""):
        fail(f"an encoding the server does not take: {headers}")
    _, _, trailers = raw_call(sock, conn, [], compressed(gzip.compress(body)))
    if trailers.get("grpc-status") != "13":
        fail(f"a compressed message without grpc-encoding: {trailers}")
    _, data, trailers = raw_call(sock, conn, [("grpc-encoding", "deflate")],
                                 compressed(zlib.compress(body)))
    if trailers.get("grpc-status") != "0" or data[5:] != echoed:
        fail(f"a deflate message after the refused ones, on the same connection: {trailers}")
    print("wire: not gzip, truncated, snappy, flag without encoding refused (13/13/12/13); "
          "the connection served on")
    sock.close()

    before = status_kib(server.pid, "VmHWM")  # the peak: inflated bytes are freed at once
    bomb = scalars(b"a" * (64 * 1024 * 1024))
    try:
        echo(bomb, compression=grpc.Compression.Gzip, timeout=30)
        fail("a gzip bomb inflating to 64 MiB was served")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "max_message_bytes" not in e.details():
            fail(f"the gzip bomb: {e.code()} {e.details()}")
        print(f"gzip bomb refused: {e.code()} {e.details()[:110]}")
    after = status_kib(server.pid, "VmHWM")
    print(f"server peak RSS {before} -> {after} KiB")
    # Inflating stops at max_message_bytes (16 MiB): the rest of the 64 MiB is never made.
    check_growth(TEST, after - before, 32 * 1024)
    if echo(request, compression=grpc.Compression.Gzip, timeout=10) != expected:
        fail("the server no longer serves after the bomb")


def check_accept_mode(port):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    echo = channel.unary_unary("/rich.RichService/EchoScalars")
    request = scalars(b"y" * 100000)
    expected = echo(request, timeout=10)
    if echo(request, compression=grpc.Compression.Gzip, timeout=10) != expected:
        fail("accept: a gzip request was not echoed")
    sock, conn = h2_client(port, acked=True)
    headers, data, _ = raw_call(sock, conn, [("grpc-accept-encoding", "gzip")], plain(request))
    if "grpc-encoding" in headers or data[0] != 0:
        fail(f"accept: a reply was compressed: {headers}")
    sock.close()
    print("accept: gzip requests served, replies plain")


def check_grpcpp_refuses(binary):
    env = dict(os.environ)
    env.pop("RPCBOOT_TEST_GRPC_SERVER", None)  # gRPC's library
    run = subprocess.run([binary, "grpc_compression=gzip"], env=env, capture_output=True,
                         text=True, timeout=60)
    if run.returncode == 0 or "server.grpc_compression" not in run.stderr:
        fail(f"grpcpp with grpc_compression=gzip: exit {run.returncode}, {run.stderr!r}")
    print(f"grpcpp refuses it: {run.stderr.strip()[:120]}")


def main():
    binary = sys.argv[1]
    os.environ["RPCBOOT_TEST_GRPC_SERVER"] = "native"
    server, port = start_rich_server(binary, ["grpc_compression=gzip"], TEST)
    try:
        check_gzip_mode(server, port)
    finally:
        server.terminate()
        server.wait()
    server, port = start_rich_server(binary, ["grpc_compression=accept"], TEST)
    try:
        check_accept_mode(port)
    finally:
        server.terminate()
        server.wait()
    check_grpcpp_refuses(binary)
    print(f"{TEST}: ok")


if __name__ == "__main__":
    main()
