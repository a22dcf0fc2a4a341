"""A stock Python service that rpcboot did not write: thrift-compiler's Python server (threaded,
framed, compact) and grpcio's server, generated from rpcboot's emitted rich IDL, registered in
ZooKeeper by kazoo in Curator's JSON (Spring payload) under three applications:

  stock-kazoo    rpcboot metadata: rpcboot.protocols "thrift, GRPC" (read tolerantly), both
                 ports, no rpcboot.thrift.header (a plain framed server)
  stock-plain    no rpcboot metadata at all: a plain Spring service; `port` is the Thrift port
  stock-starter  grpc-spring-boot-starter's gRPC_port only; `port` is the gRPC port

usage: python_stock_server.py GEN_DIR ZK_CONNECT READY_FILE
Writes "grpc=<port> thrift=<port>" to READY_FILE once serving and registered; runs until killed.
"""
import json
import sys
import threading
import time
import uuid
from concurrent import futures

gen_dir, zk_connect, ready_file = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [gen_dir + "/thrift", gen_dir + "/proto"]
try:
    import grpc
    from kazoo.client import KazooClient
    from thrift.protocol import TCompactProtocol
    from thrift.server import TServer
    from thrift.transport import TSocket, TTransport
except ImportError as e:
    sys.exit(f"FAIL: {e}: install python3-grpcio, python3-thrift and python3-kazoo (run with /usr/bin/python3)")

import common_types_pb2
import rich_service_pb2
import rich_service_pb2_grpc
from common_types import ttypes as common_ttypes
from rich_service import RichService
from rich_service import ttypes as rich_ttypes


class ThriftHandler:
    def Mix(self, a, b):
        return a if a == b else common_ttypes.Color.kBlue

    def Lookup(self, key):
        return rich_ttypes.LookupResponse(value=None if key is None else f"python thrift {key}")


class GrpcService(rich_service_pb2_grpc.RichServiceServicer):
    def Mix(self, request, context):
        value = request.a if request.a == request.b else common_types_pb2.COLOR_BLUE
        return rich_service_pb2.MixResponse(value=value)

    def Lookup(self, request, context):
        reply = rich_service_pb2.LookupResponse()
        if request.HasField("key"):
            reply.value = f"python grpc {request.key}"
        return reply


class Listening(TSocket.TServerSocket):
    """Listens once, before serve(), so that the port is known up front."""

    def listen(self):
        if self.handle is None:
            super().listen()


thrift_socket = Listening(host="127.0.0.1", port=0)
thrift_socket.listen()
thrift_port = thrift_socket.handle.getsockname()[1]
thrift_server = TServer.TThreadedServer(RichService.Processor(ThriftHandler()), thrift_socket,
                                        TTransport.TFramedTransportFactory(),
                                        TCompactProtocol.TCompactProtocolFactory(), daemon=True)
threading.Thread(target=thrift_server.serve, daemon=True).start()

grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
rich_service_pb2_grpc.add_RichServiceServicer_to_server(GrpcService(), grpc_server)
grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
grpc_server.start()


def node(app, port, metadata):
    instance_id = str(uuid.uuid4())
    payload = {"@class": "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
               "id": f"{app}-{instance_id}", "name": app, "metadata": metadata}
    data = {"name": app, "id": instance_id, "address": "127.0.0.1", "port": port, "sslPort": None,
            "payload": payload, "registrationTimeUTC": int(time.time() * 1000),
            "serviceType": "DYNAMIC",
            "uriSpec": {"parts": [{"value": "scheme", "variable": True},
                                  {"value": "://", "variable": False},
                                  {"value": "address", "variable": True},
                                  {"value": ":", "variable": False},
                                  {"value": "port", "variable": True}]}}
    return f"/services/{app}/{instance_id}", json.dumps(data).encode()


zk = KazooClient(hosts=zk_connect)
zk.start(timeout=30)
for path, data in [
        node("stock-kazoo", thrift_port, {"instance_status": "UP", "rpcboot.protocols": "thrift, GRPC",
                                          "rpcboot.thrift.port": str(thrift_port),
                                          "rpcboot.grpc.port": str(grpc_port),
                                          "rpcboot.services": "rich.RichService"}),
        node("stock-plain", thrift_port, {"instance_status": "UP"}),
        node("stock-starter", grpc_port, {"instance_status": "UP", "gRPC_port": str(grpc_port)})]:
    zk.create(path, data, ephemeral=True, makepath=True)

with open(ready_file + ".tmp", "w") as f:
    f.write(f"grpc={grpc_port} thrift={thrift_port}\n")
import os  # noqa: E402
os.rename(ready_file + ".tmp", ready_file)
while True:
    time.sleep(3600)
