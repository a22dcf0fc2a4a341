#!/usr/bin/python3
"""THeader's zlib transform on rpcboot's Thrift port (server.thrift_compression), with peers
rpcboot did not write: Python's THeaderProtocol with THeaderTransport's ZLIB transform, and
frames built here from thrift-compiler's Python code (the bytes on the wire).

- zlib: compressed calls are served; the reply goes back zlib-compressed, as THeaderTransport
  answers, and smaller than plain.
- A zlib bomb (a frame of about 64 KiB that inflates to 64 MiB) is answered RESOURCE_EXHAUSTED
  once its output passes max_message_bytes; the server's memory stays near that, and the
  connection serves on.
- thrift_inflated_quota: a request that would inflate past it is RESOURCE_EXHAUSTED naming the
  setting; one within it is served.
- off (the default): a compressed call is answered UNIMPLEMENTED naming the setting, without
  running, and the connection serves on; a transform other than zlib, or bytes that do not
  inflate, close the connection.
Usage: thrift_compression_test.py RICH_SERVER_BINARY IDL_DIR WORK_DIR (the Python code is
generated from IDL_DIR's emitted .thrift files into WORK_DIR by thrift-compiler)
"""
import re
import socket
import struct
import subprocess
import sys
import zlib

import glob
import os
import shutil

server_bin, idl_dir, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
for idl in glob.glob(idl_dir + "/*.thrift"):
    if subprocess.run(["thrift", "--gen", "py", "-out", work, idl]).returncode != 0:
        sys.exit(f"thrift_compression_test: thrift --gen py {idl} failed (apt-get install thrift-compiler)")
sys.path[:0] = [work]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interop_util import check_growth, status_kib

try:
    from thrift.protocol import TCompactProtocol, THeaderProtocol
    from thrift.transport import THeaderTransport, TSocket, TTransport
except ImportError as e:
    sys.exit(f"thrift_compression_test: {e.name} is missing: apt-get install python3-thrift")

from common_types import ttypes as common_ttypes
from rich_service import RichService
from rich_service import ttypes as rich_ttypes

TEST = "thrift_compression_test"


def fail(why):
    sys.exit(f"{TEST}: FAIL: {why}")


def short(value):
    """A value as the failure says it: its first 200 characters."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def start(*args):
    server = subprocess.Popen([server_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    match = re.search(r"thrift=(\d+)", server.stdout.readline())
    if not match:
        server.kill()
        fail(f"rich_server {' '.join(args)} did not print its ports: {server.stderr.read()}")
    return server, int(match.group(1))


def stop(server):
    server.terminate()
    server.wait(timeout=30)


def call_message(method, *args, seqid=1):
    """The compact call message thrift-compiler's client writes for `method`."""
    buffer = TTransport.TMemoryBuffer()
    client = RichService.Client(TCompactProtocol.TCompactProtocol(buffer))
    client._seqid = seqid - 1
    getattr(client, "send_" + method)(*args)
    return buffer.getvalue()


def frame(message, transforms=(1,)):
    """A THeader frame around `message`: compact, the transforms applied (1: zlib)."""
    header = bytes([2, len(transforms)]) + bytes(transforms)
    header += b"\0" * (-len(header) % 4)
    body = zlib.compress(message) if 1 in transforms else message
    out = struct.pack(">HHiH", 0x0FFF, 0, 1, len(header) // 4) + header + body
    return struct.pack(">i", len(out)) + out


def read_frame(sock):
    """The next reply frame: (its transforms, its message inflated); None once closed."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    prefix = exactly(4)
    if prefix is None:
        return None
    body = exactly(struct.unpack(">i", prefix)[0])
    magic, _, _, words = struct.unpack(">HHiH", body[:10])
    if magic != 0x0FFF:
        fail(f"a reply that is not THeader: {body[:16]!r}")
    header = body[10:10 + 4 * words]
    count = header[1]
    transforms = list(header[2:2 + count])
    message = body[10 + 4 * words:]
    return transforms, (zlib.decompress(message) if 1 in transforms else message), len(body)


def result(method, message):
    """What thrift-compiler's client reads from `message`: the value, or the exception raised."""
    client = RichService.Client(TCompactProtocol.TCompactProtocol(TTransport.TMemoryBuffer(message)))
    try:
        return getattr(client, "recv_" + method)()
    except rich_ttypes.RpcError as e:
        return e


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def mix_still_served(sock, what):
    sock.sendall(frame(call_message("Mix", common_ttypes.Color.kRed, common_ttypes.Color.kGreen), ()))
    reply = read_frame(sock)
    if reply is None or result("Mix", reply[1]) != common_ttypes.Color.kBlue:
        fail(f"{what}: the connection does not serve on")


checks = 0

# ---- zlib ----
server, port = start("thrift_compression=zlib")
try:
    # The stock client, transform on: every call goes compressed and is answered.
    sock = TSocket.TSocket("127.0.0.1", port)
    protocol = THeaderProtocol.THeaderProtocol(sock, [THeaderTransport.THeaderClientType.HEADERS],
                                               THeaderTransport.THeaderSubprotocolID.COMPACT)
    protocol.trans.add_transform(THeaderTransport.THeaderTransformID.ZLIB)
    rich = RichService.Client(protocol)
    sock.open()
    if rich.Mix(common_ttypes.Color.kRed, common_ttypes.Color.kGreen) != common_ttypes.Color.kBlue:
        fail("Mix over zlib")
    text = ("order-line " * 100000)[:1 << 20]
    back = rich.EchoScalars(common_ttypes.Scalars(text=text))
    if back.text != text:
        fail("EchoScalars of 1 MiB over zlib")
    sock.close()
    checks += 2

    # On the wire: the reply lists the transform and is much smaller than the text.
    raw = connect(port)
    raw.sendall(frame(call_message("EchoScalars", common_ttypes.Scalars(text=text))))
    transforms, message, size = read_frame(raw)
    if transforms != [1] or size > len(text) // 10 or result("EchoScalars", message).text != text:
        fail(f"the reply to a zlib call: transforms {transforms}, {size} bytes")
    checks += 1

    # A bomb: 64 MiB of zeros in a string, compressed to about 64 KiB.
    bomb = frame(call_message("EchoScalars", common_ttypes.Scalars(text="\0" * (64 << 20))))
    if len(bomb) > 256 << 10:
        fail(f"the bomb is {len(bomb)} bytes")
    before = status_kib(server.pid, "VmHWM")
    raw.sendall(bomb)
    reply = read_frame(raw)
    if reply is None:
        fail("the bomb closed the connection instead of being answered")
    error = result("EchoScalars", reply[1])
    if not isinstance(error, rich_ttypes.RpcError) or error.code != 8 or \
            "inflates past the limit of 16777216" not in error.message:
        fail(f"the bomb was answered {short(error)}")
    check_growth(TEST, status_kib(server.pid, "VmHWM") - before, 24 * 1024)
    mix_still_served(raw, "after the bomb")
    checks += 2

    # Bytes that do not inflate: nothing says whom to answer, so the connection closes.
    raw.sendall(struct.pack(">i", 20) + struct.pack(">HHiH", 0x0FFF, 0, 1, 1) + bytes([2, 1, 1, 0]) +
                b"not zlib")
    if read_frame(raw) is not None:
        fail("a frame that does not inflate was answered")
    raw.close()
    checks += 1
finally:
    stop(server)

# ---- the quota ----
server, port = start("thrift_compression=zlib", "thrift_inflated_quota=1048576")
try:
    raw = connect(port)
    raw.sendall(frame(call_message("EchoScalars", common_ttypes.Scalars(text="q" * (2 << 20)))))
    error = result("EchoScalars", read_frame(raw)[1])
    if not isinstance(error, rich_ttypes.RpcError) or error.code != 8 or \
            "server.thrift_inflated_quota" not in error.message:
        fail(f"a request past the quota was answered {short(error)}")
    for _ in range(3):
        raw.sendall(frame(call_message("EchoScalars", common_ttypes.Scalars(text="q" * (512 << 10)))))
        back = result("EchoScalars", read_frame(raw)[1])
        if getattr(back, "text", None) != "q" * (512 << 10):
            fail(f"a request within the quota was answered {short(back)}: the refused one's bytes kept?")
    raw.close()
    checks += 2
finally:
    stop(server)

# ---- off ----
server, port = start()
try:
    raw = connect(port)
    raw.sendall(frame(call_message("Count")))
    transforms, message, _ = read_frame(raw)
    error = result("Count", message)
    if transforms or not isinstance(error, rich_ttypes.RpcError) or error.code != 12 or \
            "server.thrift_compression" not in error.message:
        fail(f"a zlib call to a server with compression off was answered {short(error)} {transforms}")
    mix_still_served(raw, "after a refused zlib call")
    count = result("Count", (raw.sendall(frame(call_message("Count"), ())) or read_frame(raw))[1])
    if count != 1:
        fail(f"the refused call ran (Count is {count})")
    raw.close()
    # Another transform (snappy, 3) cannot be read: the connection closes.
    raw = connect(port)
    raw.sendall(frame(call_message("Count"), (3,)))
    if read_frame(raw) is not None:
        fail("a frame with transform 3 was answered")
    raw.close()
    mix_still_served(connect(port), "after a connection closed for its transform")
    checks += 3
finally:
    stop(server)

print(f"{TEST}: {checks} checks passed")
