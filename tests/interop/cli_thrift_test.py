#!/usr/bin/python3
"""`rpcboot describe` and `rpcboot call` over Thrift, against real servers on 127.0.0.1:

- the rpcboot rich server: the tool learns the schema through rpcboot.ThriftReflection, an
  Everything with every row of the type mapping table comes back from Echo exactly as sent, the
  other methods answer what their implementation computes, and bad input gets a clear message
  and exit 2 (a server's error: its code and exit 1);
- a stock Python Thrift server (thrift-compiler's Python code from the emitted IDL, plain
  processor, framed compact) that rpcboot did not write: without a schema the tool says the
  server has no rpcboot.ThriftReflection; with the emitted <stem>.thrift.json it calls it;
- --compression: zlib (THeader) and gzip to rpcboot's server with compression on (and refused by
  one with it off, naming the setting), and zlib to Python's THeader server, which reads the
  compressed request and answers compressed.

usage: cli_thrift_test.py RICH_SERVER RPCBOOT_CLI IDL_DIR WORK_DIR
"""
import json
import os
import re
import subprocess
import sys
import threading

server_bin, cli, idl_dir, work = sys.argv[1:5]
failures = []


def run(*args, want=0, says=None):
    """Runs the tool; checks its exit status and that its output contains `says`."""
    done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    if done.returncode != want:
        failures.append(f"rpcboot {' '.join(args)}: exit {done.returncode}, wanted {want}: {out}")
    elif says is not None and says not in out:
        failures.append(f"rpcboot {' '.join(args)}: no {says!r} in: {out}")
    return done.stdout


EVERYTHING = {
    "id": -9000000000,
    "scalars": {
        "flag": True, "i8_": -128, "i16_": -32768, "i32_": 2147483647,
        "i64_": -9223372036854775808, "u8": 255, "u16": 65535, "u32": 4294967295,
        "u64": 18446744073709551615, "f32": -0.25, "f64": "-Infinity", "text": "caf\u00e9 \u2615",
        "blob": "AAEC/w==", "color": "kBlue", "light": "kOff", "level": "LEVEL_HIGH",
        "tier": "kGold",
    },
    "containers": {
        "ints": [1, -2], "longs": [9007199254740993], "tiny": [-1, 127],
        "unsigned_ints": [4294967295], "doubles": [0.5, "NaN"], "floats": [1.5],
        "flags": [True, False], "names": ["a", ""], "blobs": ["", "/w=="],
        "colors": ["kRed", "kBlue"], "points": [{"x": 1, "y": -1}],
        "counts": {"k": -5}, "points_by_id": {"-7": {"x": 0, "y": 2}},
        "labels": {"9223372036854775807": "max"}, "bits": {"18446744073709551615": True},
        "weights": {"w": 0.125}, "matrix": [[1, 2], []], "tags": {"t": ["x", "y"]},
        "rows": [{"r": 1}, {}],
    },
    "optionals": {"maybe_int": 0, "maybe_text": "", "maybe_point": {"x": 3, "y": 4},
                  "maybe_color": "kGreen", "maybe_list": [], "maybe_double": 2.5,
                  "maybe_flag": False, "maybe_blob": "AA=="},
    "stamp": {"seconds": 1700000000, "nanos": 5},
    "children": [{"id": 2, "scalars": {"text": "child"}, "end_": "inner"}],
    "end_": "fin",
}


def check_subset(sent, got, path="value"):
    """Every field sent comes back with the same value (Echo may add defaults for unsent ones)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            failures.append(f"{path}: sent an object, got {got!r}")
            return
        for key, value in sent.items():
            if key not in got:
                failures.append(f"{path}.{key}: sent {value!r}, not answered")
            else:
                check_subset(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            failures.append(f"{path}: sent {sent!r}, got {got!r}")
            return
        for i, (a, b) in enumerate(zip(sent, got)):
            check_subset(a, b, f"{path}[{i}]")
    elif sent != got:
        failures.append(f"{path}: sent {sent!r}, got {got!r}")


def rpcboot_server_checks(thrift, grpc):
    target = f"127.0.0.1:{thrift}"
    t = ["--protocol=thrift"]
    out = run(*t, "describe", target, says="rich.RichService (Thrift, from rpcboot.ThriftReflection")
    for line in ["  rich.Everything Echo(1: rich.EchoRequest request)  // idempotent",
                 "  rich.LookupResponse Lookup(1: optional i64 key)  // idempotent",
                 "  3: list<i8> tiny", "  7: string end_", "  kBlue = 7",
                 "service rich.AdminService {"]:
        if line not in out:
            failures.append(f"describe: no {line!r} in:\n{out}")
    run(*t, "describe", target, "rich.AdminService", says="  string Version()")
    run(*t, "describe", target, "nope.Nope", want=1,
        says="has no service nope.Nope (it serves: rich.RichService, rich.AdminService)")

    # Every value of the mapping table, sent and answered: exactly what was sent comes back.
    out = run(*t, "call", target, "rich.RichService/Echo", json.dumps({"value": EVERYTHING}))
    try:
        check_subset(EVERYTHING, json.loads(out))
    except json.JSONDecodeError as e:
        failures.append(f"Echo: the answer is not JSON ({e}): {out}")
    # The request struct's fields directly, as on gRPC; C++ names of renamed fields.
    out = run(*t, "call", target, "rich.RichService/EchoScalars", '{"i8": 7, "text": "x"}')
    if '"i8_": 7' not in out or '"text": "x"' not in out:
        failures.append(f"EchoScalars: {out}")
    run(*t, "call", target, "rich.RichService/Mix", '{"a": "kRed", "b": "kGreen"}',
        says='"kBlue"')
    run(*t, "call", target, "rich.RichService/Path",
        '{"points": [{"x": 1}, {"x": 2}], "reversed": true}', says='"x": 2')
    out = run(*t, "call", target, "rich.RichService/Transpose", '{"m": [[1, 2], [3, 4]]}')
    if json.loads(out or "null") != [[1, 3], [2, 4]]:
        failures.append(f"Transpose: {out}")
    out = run(*t, "call", target, "rich.RichService/Histogram", '{"words": ["a", "b", "a"]}')
    if json.loads(out or "null") != {"a": 2, "b": 1}:
        failures.append(f"Histogram: {out}")
    # --metadata: the call's own metadata reaches the handler, over Thrift (THeader) and gRPC.
    # (gRPC prints the reply message, Thrift the method's result.)
    want = {"a": 1, "metadata:x-tenant=acme": 1, "metadata:x-note=a=b": 1}
    for flags, where, shown in [(t, target, want), ([], f"127.0.0.1:{grpc}", {"value": want})]:
        out = run(*flags, "--metadata=x-tenant=acme", "--metadata=x-note=a=b", "call", where,
                  "rich.RichService/Histogram", '{"words": ["a"]}')
        if json.loads(out or "null") != shown:
            failures.append(f"Histogram with --metadata at {where}: {out}")
    # The reply's metadata goes to stderr, the reply's JSON alone to stdout.
    for flags, where in [(t, target), ([], f"127.0.0.1:{grpc}")]:
        out = run(*flags, "call", where, "rich.RichService/Histogram",
                  '{"words": ["reply:x-served-by=cli", "reply:x-blob-bin=00ff0a"]}',
                  says="reply metadata: x-served-by=cli")
        run(*flags, "call", where, "rich.RichService/Histogram", '{"words": ["reply:x-blob-bin=00ff0a"]}',
            says="reply metadata: x-blob-bin=AP8K")
        run(*flags, "call", where, "rich.RichService/Notify", '{"id": -1, "message": "reply:x-why=no"}',
            want=1, says="reply metadata: x-why=no")
        try:
            json.loads(out)
        except json.JSONDecodeError as e:
            failures.append(f"Histogram at {where}: stdout is not JSON alone ({e}): {out}")
    # --compression: the default server takes neither; a zlib call is refused naming the setting
    # (it went compressed), a small one goes plain.
    words = json.dumps({"words": [f"w{i % 50}" for i in range(2000)]})
    run(*t, "--compression=zlib", "call", target, "rich.RichService/Histogram", words, want=1,
        says="server.thrift_compression")
    run(*t, "--compression=zlib", "call", target, "rich.RichService/Mix", '{"a": "kRed", "b": "kRed"}',
        says='"kRed"')
    run("--compression=zlib", "call", f"127.0.0.1:{grpc}", "rich.RichService/Count", "{}", want=2,
        says="--compression=zlib is Thrift's (THeader)")
    run(*t, "--compression=gzip", "call", target, "rich.RichService/Count", "{}", want=2,
        says="--compression=gzip is gRPC's: Thrift takes zlib")
    run("--compression=br", "call", target, "rich.RichService/Count", "{}", want=2,
        says="--compression: 'br' is neither gzip (gRPC) nor zlib (Thrift)")
    run(*t, "--metadata=X-Tenant=acme", "call", target, "rich.RichService/Count", "{}", want=2,
        says="--metadata: call metadata key 'X-Tenant' is not a metadata key")
    run(*t, "--metadata=grpc-timeout=1S", "call", target, "rich.RichService/Count", "{}", want=2,
        says="'grpc-timeout' is the protocol's or rpcboot's own")
    run(*t, "--metadata=x-tenant", "call", target, "rich.RichService/Count", "{}", want=2,
        says="--metadata: 'x-tenant' is not KEY=VALUE")
    run(*t, "call", target, "rich.RichService/Lookup", '{"key": 0}', says='"value": "key 0"')
    # A static:// list: its first endpoint that accepts a connection.
    run(*t, "call", f"static://127.0.0.1:1,{target}", "rich.RichService/Lookup", '{"key": 1}',
        says='"value": "key 1"')
    run(*t, "--timeout_ms=500", "call", "static://127.0.0.1:1,127.0.0.1:2", "rich.RichService/Count",
        "{}", want=2, says="no endpoint of static://127.0.0.1:1,127.0.0.1:2 accepts a connection")
    out = run(*t, "call", target, "rich.RichService/Lookup", "{}")
    if json.loads(out or "null") != {}:
        failures.append(f"Lookup without a key answers no value: {out}")
    run(*t, "call", target, "rich.RichService/Nearest", '{"origin": {"x": 1, "y": 5}}',
        says='"x": 2')
    first = run(*t, "call", target, "rich.RichService/Count", "{}")
    second = run(*t, "call", target, "rich.RichService/Count", "{}")
    if not (first.strip().isdigit() and int(second) == int(first) + 1):
        failures.append(f"Count: {first!r} then {second!r}")
    out = run(*t, "call", target, "rich.RichService/Notify", '{"id": 1, "message": "m"}')
    if out.strip() != "{}":
        failures.append(f"Notify (void): {out!r}")
    run(*t, "call", target, "rich.AdminService/SetLevel", '{"level": "LEVEL_HIGH"}',
        says='"LEVEL_HIGH"')
    # Through the emitted schema file instead of the server's.
    schema = os.path.join(idl_dir, "rich_service.thrift.json")
    run(f"--schema={schema}", "call", target, "rich.RichService/Mix", '{"a": "kBlue", "b": "kBlue"}',
        says='"kBlue"')

    # Bad input: exit 2 and a message naming the problem; nothing is called.
    run(*t, "call", target, "rich.RichService/Nope", "{}", want=2,
        says="rich.RichService has no method Nope (methods: Echo, EchoScalars")
    run(*t, "call", target, "nope.Nope/Get", "{}", want=2, says="no service nope.Nope")
    run(*t, "call", target, "rich.RichService/Mix", "{bad", want=2,
        says="the JSON is not the parameters of rich.RichService/Mix: not JSON")
    run(*t, "call", target, "rich.RichService/Mix", '{"a": "kPink"}', want=2,
        says='a: "kPink" is not a value of rich.Color (kRed, kGreen, kBlue)')
    run(*t, "call", target, "rich.RichService/EchoScalars", '{"i8": 128}', want=2,
        says="scalars.i8_: 128 is out of range for an i8 (-128..127)")
    run(*t, "call", target, "rich.RichService/Path", '{"points": 3}', want=2,
        says="points: 3 is not a list (a JSON array)")
    run(*t, "call", target, "rich.RichService/Notify", '{"idd": 1}', want=2,
        says="no field 'idd' in the parameters of Notify (fields: id, message, color)")
    run("--protocol=thrift", "--timeout_ms=500", "call", "127.0.0.1:1", "rich.RichService/Count",
        "{}", want=2, says="cannot connect to 127.0.0.1:1")
    run(*t, "call", f"127.0.0.1:{grpc}", "rich.RichService/Count", "{}", want=2,
        says="is it a Thrift port?")
    run("--protocol=tcp", "call", target, "rich.RichService/Count", "{}", want=2,
        says="--protocol: 'tcp' is neither grpc nor thrift")
    run("--protocol=grpc", f"--schema={schema}", "call", target, "a.B/C", "{}", want=2,
        says="--schema is a Thrift schema")
    garbage = os.path.join(work, "garbage.json")
    with open(garbage, "w") as f:
        f.write('{"services": []}')
    run(f"--schema={garbage}", "call", target, "rich.RichService/Count", "{}", want=2,
        says="not an rpcboot Thrift schema")
    run(f"--schema={work}/missing.json", "describe", target, want=2, says="cannot be read")
    run("--schema=/dev/zero", "describe", target, want=2,
        says="--schema: '/dev/zero' is larger than 64 MiB")
    run(f"--tls_ca={garbage}", "--protocol=thrift", "describe", target, want=2,
        says=f"tls.ca_file: {garbage} is not a PEM file")
    # A schema that does not match the server: the reply is refused, not misread.
    doc = json.load(open(schema))
    for method in doc["services"][0]["methods"]:
        if method["name"] == "Count":
            method["result"] = "string"
    wrong = os.path.join(work, "wrong.thrift.json")
    with open(wrong, "w") as f:
        json.dump(doc, f)
    run(f"--schema={wrong}", "call", target, "rich.RichService/Count", "{}", want=1,
        says="the server sent an i64 where the schema says string")


def compressing_server_checks():
    """rpcboot's server with server.thrift_compression zlib and grpc_compression accept (which
    its native gRPC server serves)."""
    server = subprocess.Popen([server_bin, "thrift_compression=zlib", "grpc_compression=accept"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, RPCBOOT_TEST_GRPC_SERVER="native"))
    try:
        match = re.search(r"grpc=(\d+) thrift=(\d+)", server.stdout.readline())
        if not match:
            sys.exit("FAIL: the compressing rich server did not print its ports")
        words = json.dumps({"words": [f"w{i % 50}" for i in range(2000)]})
        want = {f"w{i}": 40 for i in range(50)}
        for flags, where, shown in [
                (["--protocol=thrift", "--compression=zlib"], f"127.0.0.1:{match.group(2)}", want),
                (["--compression=gzip"], f"127.0.0.1:{match.group(1)}", {"value": want})]:
            out = run(*flags, "call", where, "rich.RichService/Histogram", words)
            if json.loads(out or "null") != shown:
                failures.append(f"Histogram of 2000 words with {flags} at {where}: {out[:300]}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def stock_header_server_checks(RichService, Handler):
    """Python's THeader server with the zlib transform: it reads compressed requests and writes
    its replies compressed (zlib's default level). The bytes it read show what the tool sent."""
    from thrift.protocol import THeaderProtocol
    from thrift.server import TServer
    from thrift.transport import THeaderTransport, TSocket, TTransport

    class Recording(TTransport.TTransportBase):
        def __init__(self, inner):
            self.inner, self.seen = inner, bytearray()

        def isOpen(self):
            return self.inner.isOpen()

        def read(self, n):
            data = self.inner.read(n)
            self.seen += data
            return data

        def write(self, data):
            self.inner.write(data)

        def flush(self):
            self.inner.flush()

        def close(self):
            self.inner.close()

    class ZlibHeaderFactory(THeaderProtocol.THeaderProtocolFactory):
        def __init__(self):
            super().__init__(allowed_client_types=(THeaderTransport.THeaderClientType.HEADERS,
                                                   THeaderTransport.THeaderClientType.FRAMED_COMPACT))
            self.recordings = []

        def getProtocol(self, trans):
            recording = Recording(trans)
            self.recordings.append(recording)
            protocol = super().getProtocol(recording)
            protocol.trans.add_transform(THeaderTransport.THeaderTransformID.ZLIB)
            return protocol

    factory = ZlibHeaderFactory()
    socket = TSocket.TServerSocket(host="127.0.0.1", port=0)
    server = TServer.TThreadedServer(RichService.Processor(Handler()), socket,
                                     TTransport.TTransportFactoryBase(), factory, daemon=True)
    socket.listen()
    port = socket.handle.getsockname()[1]
    socket.listen = lambda: None  # already listening
    threading.Thread(target=server.serve, daemon=True).start()
    target = f"127.0.0.1:{port}"
    schema = f"--schema={os.path.join(idl_dir, 'rich_service.thrift.json')}"
    words = json.dumps({"words": [f"w{i % 50}" for i in range(2000)]})
    out = run(schema, "--compression=zlib", "call", target, "rich.RichService/Histogram", words)
    if json.loads(out or "null") != {f"w{i}": 40 for i in range(50)}:
        failures.append(f"Histogram through Python's THeader server: {out[:300]}")
    # The request as the server read it: a THeader frame (0x0FFF) whose info lists one
    # transform, zlib (1), after the protocol id: compact (2).
    seen = bytes(factory.recordings[-1].seen) if factory.recordings else b""
    if seen[4:6] != b"\x0f\xff" or seen[14:17] != b"\x02\x01\x01":
        failures.append(f"the tool's request was not a zlib THeader frame: {seen[:20].hex()}")
    # A small call goes plain framed; Python answers a framed caller in kind.
    run(schema, "--compression=zlib", "call", target, "rich.RichService/Mix",
        '{"a": "kRed", "b": "kBlue"}', says='"kGreen"')
    seen = bytes(factory.recordings[-1].seen)
    if seen[4:6] == b"\x0f\xff":
        failures.append(f"a small request went in THeader: {seen[:20].hex()}")


def stock_server_checks():
    """thrift-compiler's Python server, plain processor: rpcboot did not write it."""
    gen = os.path.join(work, "gen-py")
    os.makedirs(gen, exist_ok=True)
    for name in ("common_types.thrift", "rich_service.thrift"):
        subprocess.run(["thrift", "--gen", "py", "-out", gen, os.path.join(idl_dir, name)],
                       check=True, capture_output=True)
    sys.path.insert(0, gen)
    try:
        from thrift.protocol import TCompactProtocol
        from thrift.server import TServer
        from thrift.transport import TSocket, TTransport
    except ImportError as e:
        sys.exit(f"FAIL: {e}: install python3-thrift (run with /usr/bin/python3)")
    from common_types import ttypes as common_ttypes
    from rich_service import RichService
    from rich_service import ttypes as rich_ttypes

    class Handler:
        def Mix(self, a, b):
            return a if a == b else common_ttypes.Color.kGreen

        def Lookup(self, key):
            return rich_ttypes.LookupResponse(value=None if key is None else f"stock {key}")

        def Histogram(self, words):
            counts = {}
            for word in words:
                counts[word] = counts.get(word, 0) + 1
            return counts

    socket = TSocket.TServerSocket(host="127.0.0.1", port=0)
    server = TServer.TThreadedServer(RichService.Processor(Handler()), socket,
                                     TTransport.TFramedTransportFactory(),
                                     TCompactProtocol.TCompactProtocolFactory(), daemon=True)
    socket.listen()
    port = socket.handle.getsockname()[1]
    socket.listen = lambda: None  # already listening
    threading.Thread(target=server.serve, daemon=True).start()
    target = f"127.0.0.1:{port}"
    run("--protocol=thrift", "call", target, "rich.RichService/Mix", '{"a": "kRed"}', want=2,
        says="does not answer rpcboot.ThriftReflection")
    schema = f"--schema={os.path.join(idl_dir, 'rich_service.thrift.json')}"
    run(schema, "call", target, "rich.RichService/Mix", '{"a": "kRed", "b": "kBlue"}',
        says='"kGreen"')
    run(schema, "call", target, "rich.RichService/Lookup", '{"key": 5}', says='"value": "stock 5"')
    run(schema, "describe", target, "rich.RichService", says="(Thrift, from schema file")
    stock_header_server_checks(RichService, Handler)


def main():
    os.makedirs(work, exist_ok=True)
    server = subprocess.Popen([server_bin], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        match = re.search(r"grpc=(\d+) thrift=(\d+)", server.stdout.readline())
        if not match:
            sys.exit("FAIL: the rich server did not print its ports")
        rpcboot_server_checks(match.group(2), match.group(1))
        compressing_server_checks()
        stock_server_checks()
    finally:
        server.terminate()
        server.wait(timeout=30)
    if failures:
        print("\n".join("FAIL: " + f for f in failures))
        sys.exit(1)
    print("rpcboot describe and call over Thrift: OK (rpcboot server and a stock Python server)")


if __name__ == "__main__":
    main()
