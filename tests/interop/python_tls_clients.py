"""Stock Python clients call an rpcboot server over mutual TLS: grpcio's secure channel and
thrift's TSSLSocket, with the certificates of scripts/make-test-certs.sh. A client without a
certificate, one with a certificate of another CA, one that trusts another CA, and a plaintext
client all fail, and the server keeps serving.

usage: python_tls_clients.py GEN_DIR GRPC_PORT THRIFT_PORT CERT_DIR
"""
import ssl
import sys

gen_dir, grpc_port, thrift_port, certs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path[:0] = [gen_dir + "/thrift", gen_dir + "/proto"]

try:
    import grpc
    from thrift.protocol import TCompactProtocol, TMultiplexedProtocol
    from thrift.transport import TSocket, TSSLSocket, TTransport
except ImportError as e:
    sys.exit(f"FAIL: {e}: install python3-grpcio, python3-protobuf and python3-thrift (run with /usr/bin/python3)")

import common_types_pb2
import rich_service_pb2
import rich_service_pb2_grpc
from common_types import ttypes as common_ttypes
from rich_service import RichService

checks = 0


def check(condition, what):
    global checks
    if not condition:
        sys.exit(f"FAIL: {what}")
    checks += 1


def read(name):
    with open(f"{certs}/{name}", "rb") as f:
        return f.read()


def grpc_mix(credentials):
    """Mix over a secure channel: (True, None) or (False, the status code)."""
    channel = grpc.secure_channel(f"127.0.0.1:{grpc_port}", credentials)
    try:
        stub = rich_service_pb2_grpc.RichServiceStub(channel)
        reply = stub.Mix(rich_service_pb2.MixRequest(a=common_types_pb2.COLOR_RED, b=common_types_pb2.COLOR_GREEN),
                         timeout=5)
        return reply.value == common_types_pb2.COLOR_BLUE, None
    except grpc.RpcError as e:
        return False, e.code()
    finally:
        channel.close()


def thrift_mix(ca="ca.crt", client="client"):
    """Mix over TSSLSocket; True, or the exception."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(f"{certs}/{ca}")
    if client:
        context.load_cert_chain(f"{certs}/{client}.crt", f"{certs}/{client}.key")
    socket = TSSLSocket.TSSLSocket("127.0.0.1", thrift_port, ssl_context=context, server_hostname="127.0.0.1")
    socket.setTimeout(5000)
    transport = TTransport.TFramedTransport(socket)
    protocol = TCompactProtocol.TCompactProtocol(transport)
    rich = RichService.Client(TMultiplexedProtocol.TMultiplexedProtocol(protocol, "rich.RichService"))
    try:
        transport.open()
        return rich.Mix(common_ttypes.Color.kRed, common_ttypes.Color.kGreen) == common_ttypes.Color.kBlue
    except Exception as e:  # noqa: BLE001 - any failure is the answer here
        return e
    finally:
        try:
            transport.close()
        except AttributeError:  # thrift's TSSLSocket.close fails on a socket that never opened
            pass


good = grpc.ssl_channel_credentials(read("ca.crt"), read("client.key"), read("client.crt"))
check(grpc_mix(good) == (True, None), "grpc over mutual TLS")
check(thrift_mix() is True, "thrift TSSLSocket over mutual TLS")

# Wrong or missing certificates: refused, the server goes on.
ok, code = grpc_mix(grpc.ssl_channel_credentials(read("ca.crt")))
check(not ok and code == grpc.StatusCode.UNAVAILABLE, f"grpc without a client certificate: {code}")
ok, code = grpc_mix(grpc.ssl_channel_credentials(read("ca.crt"), read("rogue.key"), read("rogue.crt")))
check(not ok and code == grpc.StatusCode.UNAVAILABLE, f"grpc with another CA's client certificate: {code}")
ok, code = grpc_mix(grpc.ssl_channel_credentials(read("rogue-ca.crt"), read("client.key"), read("client.crt")))
check(not ok and code == grpc.StatusCode.UNAVAILABLE, f"grpc trusting another CA: {code}")
check(thrift_mix(client=None) is not True, "thrift without a client certificate must fail")
check(thrift_mix(client="rogue") is not True, "thrift with another CA's client certificate must fail")
result = thrift_mix(ca="rogue-ca.crt")
check(isinstance(result, TTransport.TTransportException), f"thrift trusting another CA: {result!r}")

# Plaintext clients on the TLS ports.
channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
try:
    rich_service_pb2_grpc.RichServiceStub(channel).Mix(rich_service_pb2.MixRequest(), timeout=5)
    check(False, "plaintext grpc on a TLS port must fail")
except grpc.RpcError as e:
    check(e.code() == grpc.StatusCode.UNAVAILABLE, f"plaintext grpc: {e.code()}")
channel.close()
transport = TTransport.TFramedTransport(TSocket.TSocket("127.0.0.1", thrift_port))
rich = RichService.Client(TCompactProtocol.TCompactProtocol(transport))
try:
    transport.open()
    rich.Mix(common_ttypes.Color.kRed, common_ttypes.Color.kGreen)
    check(False, "plaintext thrift on a TLS port must fail")
except Exception:  # noqa: BLE001 - the stock client's own error, whatever it is
    checks += 1
transport.close()

check(grpc_mix(good) == (True, None), "grpc still served after the refusals")
check(thrift_mix() is True, "thrift still served after the refusals")
print(f"OK: {checks} checks over TLS (grpcio secure channels, thrift TSSLSocket)")
