#!/usr/bin/python3
"""A gzip bomb against rpcboot's gRPC port: a ~64 KiB request that would inflate to 64 MiB.

grpcio (a client rpcboot did not write) sends it compressed. The server must refuse it without
inflating it: the call fails (compression is off on rpcboot's servers) and the server's resident
memory stays where it was. Usage: gzip_bomb_test.py RICH_SERVER_BINARY
"""
import re
import subprocess
import sys

from interop_util import rss_kib, varint

try:
    import grpc
except ImportError:
    sys.exit("gzip_bomb_test: python3-grpcio is missing: apt-get install python3-grpcio")


def main():
    server = subprocess.Popen([sys.argv[1]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        match = re.search(r"grpc=(\d+)", server.stdout.readline())
        if not match:
            sys.exit("gzip_bomb_test: the server did not print its ports")
        channel = grpc.insecure_channel(f"127.0.0.1:{match.group(1)}")
        echo = channel.unary_unary("/rich.RichService/EchoScalars")
        echo(b"", timeout=10)  # served normally: the server is up
        before = rss_kib(server.pid)
        text = b"a" * (64 * 1024 * 1024)  # Scalars.text (field 12)
        bomb = bytes([0x62]) + varint(len(text)) + text
        try:
            echo(bomb, compression=grpc.Compression.Gzip, timeout=30)
            sys.exit("gzip_bomb_test: FAIL: the compressed 64 MiB request was served")
        except grpc.RpcError as e:
            print(f"refused: {e.code()} {e.details()[:100]}")
        after = rss_kib(server.pid)
        print(f"server RSS {before} -> {after} KiB")
        if after - before > 32 * 1024:
            sys.exit(f"gzip_bomb_test: FAIL: the server grew by {after - before} KiB")
        echo(b"", timeout=10)  # and it still serves
        print("gzip_bomb_test: ok")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
