"""A shop service rpcboot did not write: grpcio's server from the emitted shop_service.proto,
registered in ZooKeeper by kazoo the way a grpc-spring-boot-starter service registered by Spring
Cloud Zookeeper looks (Curator JSON, Spring payload, gRPC_port, no rpcboot metadata).

usage: stock_shop_server.py GEN_DIR ZK_CONNECT READY_FILE
Writes "grpc=<port>" to READY_FILE once serving and registered; runs until killed.
"""
import json
import os
import sys
import time
import uuid
from concurrent import futures

gen_dir, zk_connect, ready_file = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, gen_dir)
try:
    import grpc
    from kazoo.client import KazooClient
except ImportError as e:
    sys.exit(f"FAIL: {e}: install python3-grpcio and python3-kazoo (run with /usr/bin/python3)")
import geo_pb2  # the types-only interface shop_service.proto imports
import shop_service_pb2 as pb
import shop_service_pb2_grpc

SHOPS = {
    1: ("Noodle Bar", pb.SHOP_STATUS_OPEN, [(11, "beef noodles", 1250), (12, "dumplings", 650)],
        (52.5200, 13.4050)),
    2: ("Pizza Corner", pb.SHOP_STATUS_OPEN, [(21, "margherita", 990), (22, "quattro formaggi", 1290)],
        (52.4990, 13.4180)),
    3: ("Night Grill", pb.SHOP_STATUS_CLOSED, [(31, "skewers", 800)], (52.5300, 13.3850)),
}


def make_shop(shop_id):
    name, status, menu, (lat, lng) = SHOPS[shop_id]
    return pb.Shop(id=shop_id, name=name, status=status, served_by="python-stock-shop",
                   menu=[pb.MenuItem(id=i, name=n, price_cents=p) for i, n, p in menu],
                   location=geo_pb2.GeoPoint(lat=lat, lng=lng))


class ShopService(shop_service_pb2_grpc.ShopServiceServicer):
    def GetShop(self, request, context):
        if request.shop_id not in SHOPS:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no shop {request.shop_id}")
        return make_shop(request.shop_id)

    def ListShops(self, request, context):
        return pb.ListShopsResponse(value=[make_shop(i) for i in sorted(SHOPS)])


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
shop_service_pb2_grpc.add_ShopServiceServicer_to_server(ShopService(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()

instance_id = str(uuid.uuid4())
data = {"name": "shop", "id": instance_id, "address": "127.0.0.1", "port": port, "sslPort": None,
        "payload": {"@class": "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",
                    "id": f"shop-{instance_id}", "name": "shop",
                    "metadata": {"instance_status": "UP", "gRPC_port": str(port)}},
        "registrationTimeUTC": int(time.time() * 1000), "serviceType": "DYNAMIC",
        "uriSpec": {"parts": [{"value": "scheme", "variable": True}, {"value": "://", "variable": False},
                              {"value": "address", "variable": True}, {"value": ":", "variable": False},
                              {"value": "port", "variable": True}]}}
zk = KazooClient(hosts=zk_connect)
zk.start(timeout=30)
zk.create(f"/services/shop/{instance_id}", json.dumps(data).encode(), ephemeral=True, makepath=True)
with open(ready_file + ".tmp", "w") as f:
    f.write(f"grpc={port}\n")
os.rename(ready_file + ".tmp", ready_file)
while True:
    time.sleep(3600)
