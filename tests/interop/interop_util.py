"""Helpers the interop scripts share: rich_server, a process's memory and protobuf varints."""
import os
import re
import subprocess
import sys


def start_rich_server(binary, args, test):
    """Starts rich_server with `args`; returns the process and its gRPC port (exits if none)."""
    server = subprocess.Popen([binary] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    match = re.search(r"grpc=(\d+)", server.stdout.readline())
    if not match:
        server.kill()
        sys.exit(f"{test}: the server did not print its ports")
    if os.environ.get("RPCBOOT_TEST_GRPC_SERVER") == "native":
        # The run against rpcboot's native gRPC server: its start-up line says so.
        for _ in range(20):
            line = server.stderr.readline()
            if "gRPC listening" in line:
                break
        if "native HTTP/2" not in line:
            server.kill()
            sys.exit(f"{test}: FAIL: the server is not on the native gRPC server: {line!r}")
    return server, int(match.group(1))


def status_kib(pid, field):
    """A figure of process `pid` from /proc (`field` "VmRSS", "VmHWM", ...), in KiB, or -1."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def rss_kib(pid):
    """The resident set size of process `pid`, in KiB, or -1."""
    return status_kib(pid, "VmRSS")


def varint(n):
    """`n` as a protobuf base-128 varint."""
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


# The request headers of a gRPC call of rich.RichService/EchoScalars, for a raw HTTP/2 peer.
ECHO_SCALARS_HEADERS = [(":method", "POST"), (":scheme", "http"),
                        (":path", "/rich.RichService/EchoScalars"), (":authority", "rpcboot"),
                        ("content-type", "application/grpc"), ("te", "trailers")]


def h2_client(port, acked=False):
    """A raw HTTP/2 client connection (python3-h2) to 127.0.0.1:`port`, preface sent; `acked`:
    the server's SETTINGS read and acknowledged too (as stock clients do before their first
    call), so its stream limit holds."""
    import socket

    import h2.config
    import h2.connection
    import h2.events
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sock.settimeout(20)
    while acked:
        data = sock.recv(65536)
        if not data:
            sys.exit("h2_client: the server closed the connection before its SETTINGS")
        acked = not any(isinstance(event, h2.events.RemoteSettingsChanged)
                        for event in conn.receive_data(data))
        sock.sendall(conn.data_to_send())  # the acknowledgement
    sock.settimeout(None)
    return sock, conn


def echo_scalars(port):
    """A stock grpcio caller of EchoScalars on 127.0.0.1:`port`, called once: the server is up."""
    import grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    echo = channel.unary_unary("/rich.RichService/EchoScalars")
    echo(b"", timeout=10)
    return echo


def check_growth(test, grown_kib, limit_kib):
    """Fails `test` when the server grew by more than `limit_kib` KiB; not checked under a
    sanitizer, whose quarantine keeps freed memory resident."""
    if os.environ.get("RPCBOOT_SANITIZED"):
        print("sanitizer build: its quarantine keeps freed memory resident; RSS not checked")
    elif grown_kib > limit_kib:
        sys.exit(f"{test}: FAIL: the server grew by {grown_kib} KiB")
