#!/usr/bin/env bash
# The order sample against a shop service rpcboot did not write: a stock Python gRPC server
# generated from the emitted shop_service.proto, registered by kazoo as a grpc-spring-boot-starter
# service (gRPC_port, no rpcboot metadata). The order sample finds it through ZooKeeper and calls
# it; the Python order client (from the emitted order_service.thrift) places an order.
#   stock_shop_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
source "$(dirname "$0")/samples_common.sh"
for tool in /usr/bin/grpc_python_plugin protoc thrift; do
  command -v "$tool" >/dev/null || fail "$tool missing: run ./scripts/setup.sh"
done
mkdir -p "$work/gen"
# shop_service.proto imports geo.proto (the types-only interface both samples share).
protoc -I"$build/samples/shop_interface_rpcboot" -I"$build/samples/geo_types_rpcboot" \
  --python_out="$work/gen" --grpc_out="$work/gen" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin shop_service.proto geo.proto
/usr/bin/python3 "$src/tests/samples/stock_shop_server.py" "$work/gen" "$zk" "$work/ready" \
  >"$work/stock_shop.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ -f "$work/ready" ] && break; sleep 0.1; done
[ -f "$work/ready" ] || fail "the stock shop never registered"
start_payment "$work/payment.log"

start_sample order "$work/order.log" --settings.store.dir="$work/orders"

thrift -r -I "$build/samples/geo_types_rpcboot" --gen py -out "$work" "$build/samples/order_interface_rpcboot/order_service.thrift"
/usr/bin/python3 "$src/samples/demo/python_client.py" --zookeeper "$zk" --gen "$work" \
  >"$work/client.out" 2>&1 || { cat "$work/client.out"; fail "python client"; }
cat "$work/client.out"
grep -q "checked by python-stock-shop" "$work/client.out" || fail "the order was not checked by the stock shop"
grep -q "closed shop rejected: code 9, shop 3 (Night Grill) is closed" "$work/client.out" ||
  fail "the stock shop's closed shop was not seen"
echo "order sample with a stock shop: OK"
