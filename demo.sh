#!/usr/bin/env bash
# The order/shop demo, one command on Debian 12: installs what is missing, builds, starts a local
# ZooKeeper, two shop instances (gRPC), a delivery instance (gRPC and Thrift), a payment instance
# (gRPC) and one order instance (Thrift) that starts on its in-process shop catalog and moves to the shop service
# (local, shadow, percent:50, remote through its flag node), then a demo client that places and
# reads orders while one shop instance is stopped, cancels one, and plays the couriers and the
# customers who collect until every order has reached its end, and a Python client generated
# from the emitted IDL. Stops everything it started, also on Ctrl-C.
#
#   ./demo.sh                         ZooKeeper on 127.0.0.1:2181
#   RPCBOOT_DEMO_ZK_PORT=2281 ./demo.sh
set -euo pipefail
cd "$(dirname "$0")"

zk_port=${RPCBOOT_DEMO_ZK_PORT:-2181}
build=build
run=$build/demo-run
zk="127.0.0.1:$zk_port"
pids=()
step() { printf '\n== %s\n' "$*"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/zookeeper.sh stop "$run/zk" 2>/dev/null || true
  [ $rc -eq 0 ] || echo "demo.sh: stopped everything it started (logs in $run/)" >&2
  exit $rc
}
trap cleanup EXIT
trap 'echo; echo "demo.sh: interrupted"; exit 130' INT TERM

step "1/8 install what is missing (scripts/setup.sh)"
./scripts/setup.sh

step "2/8 build the samples ($build/)"
mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target sample_shop sample_order sample_delivery sample_payment \
  demo_client \
  rpcboot_cli
echo "emitted IDL: $build/samples/geo_types_rpcboot/geo.{thrift,proto,thrift.json}"
for i in shop order delivery payment; do
  echo "             $build/samples/${i}_interface_rpcboot/${i}_service.{thrift,proto,thrift.json}"
done

step "3/8 start ZooKeeper on $zk"
rm -rf "$run"
mkdir -p "$run"
if ! scripts/zookeeper.sh start "$run/zk" "$zk_port"; then
  echo "demo.sh: cannot start ZooKeeper on $zk (set RPCBOOT_DEMO_ZK_PORT to use another port)" >&2
  exit 1
fi

wait_registered() {  # LOG NAME
  for _ in $(seq 100); do
    grep -q "registry: registered" "$1" && return 0
    sleep 0.1
  done
  echo "demo.sh: $2 did not register within 10 s:" >&2
  tail -20 "$1" >&2
  exit 1
}

# "status page http://127.0.0.1:PORT/" from an instance's log (admin.port: 0 in the samples).
status_page() { grep -o 'status page http://[^ ]*' "$1" | head -1; }

step "4/8 start two shop instances (gRPC), a delivery instance (gRPC and Thrift), a payment instance (gRPC) and an order instance (Thrift)"
for n in 1 2; do
  "$build/samples/shop" --config=samples/shop/shop.yaml --registry.zookeeper="$zk" \
    >"$run/shop$n.log" 2>&1 &
  pids+=($!)
  eval "shop${n}_pid=$!"
  wait_registered "$run/shop$n.log" "shop $n"
  echo "shop $n: pid $!, $(grep -o 'registered .*' "$run/shop$n.log" | head -1)"
  echo "        $(status_page "$run/shop$n.log")"
done
# The fleet is kept in SQLite for this run (a restarted delivery instance keeps its busy couriers
# busy); each run starts a fresh fleet, as couriers of an interrupted run would stay busy.
"$build/samples/delivery" --config=samples/delivery/delivery.yaml --registry.zookeeper="$zk" \
  --settings.fleet.store="$run/fleet.db" >"$run/delivery.log" 2>&1 &
pids+=($!)
wait_registered "$run/delivery.log" "delivery"
echo "delivery: pid $!, $(grep -o 'registered .*' "$run/delivery.log" | head -1) (gRPC and Thrift)"
echo "        $(grep -o 'fleet of .*' "$run/delivery.log" | head -1) (SQLite, this run)"
echo "        $(status_page "$run/delivery.log")"
# Card holds are kept in SQLite for this run too (each run starts with no holds).
"$build/samples/payment" --config=samples/payment/payment.yaml --registry.zookeeper="$zk" \
  --settings.payment.store="$run/payments.db" >"$run/payment.log" 2>&1 &
pids+=($!)
wait_registered "$run/payment.log" "payment"
echo "payment: pid $!, $(grep -o 'registered .*' "$run/payment.log" | head -1) (gRPC)"
echo "        $(grep -o 'hold limit .*' "$run/payment.log" | head -1) (SQLite, this run)"
echo "        $(status_page "$run/payment.log")"
# order.yaml says remote; the flag node wins while it exists: order starts on its in-process copy.
"$build/cli/rpcboot" flag "zk://$zk" order shop.ShopService local
# Orders are kept in SQLite under build/demo-orders, from one run of the demo to the next.
"$build/samples/order" --config=samples/order/order.yaml --registry.zookeeper="$zk" \
  --settings.store.dir="$build/demo-orders" >"$run/order.log" 2>&1 &
pids+=($!)
wait_registered "$run/order.log" "order"
echo "order:  pid $!, $(grep -o 'registered .*' "$run/order.log" | head -1)"
echo "        $(grep -o 'store .* orders' "$run/order.log" | head -1) (SQLite, kept between runs)"
echo "        $(status_page "$run/order.log")"

step "5/8 order moves from its in-process shop catalog to the shop service, a step at a time"
# The mode order's log reports after a switch ("shadow" reads back as "shadow:local").
wait_mode() {  # MODE
  for _ in $(seq 100); do
    grep -q "migration mode .* -> $1 " "$run/order.log" && return 0
    sleep 0.1
  done
  echo "demo.sh: order did not switch to $1 within 10 s" >&2
  exit 1
}
migration_rc=0
for mode in local shadow percent:50 remote; do
  if [ "$mode" != local ]; then
    "$build/cli/rpcboot" flag "zk://$zk" order shop.ShopService "$mode"
    wait_mode "$([ "$mode" = shadow ] && echo shadow:local || echo "$mode")"
  fi
  echo ">> $mode: 8 orders"
  RPCBOOT_LOG_LEVEL=warning "$build/samples/demo_client" --zookeeper="$zk" --orders=8 \
    --interval_ms=0 >"$run/migration-$mode.log" 2>&1 || migration_rc=1
  grep -E '^  shop instance|^demo client:' "$run/migration-$mode.log" | sed 's/^/   /'
done
sleep 0.5  # shadow comparisons run after the calls return
mismatches=$(grep -c "shadow mismatch" "$run/order.log" || true)
echo ">> shadow mode found $mismatches mismatch(es) between the in-process catalog and the shop service:"
grep -o "shadow mismatch #1 .*" "$run/order.log" | head -1 | cut -c1-160 | sed 's/^/   /'
[ "$mismatches" -gt 0 ] || migration_rc=1

step "6/8 the demo client places orders; shop instance 2 (pid $shop2_pid) is stopped mid-run"
RPCBOOT_LOG_LEVEL=warning "$build/samples/demo_client" --zookeeper="$zk" --orders=30 --interval_ms=100 &
client=$!
pids+=($client)
sleep 1.5
echo ">> stopping shop instance 2 (pid $shop2_pid) with SIGTERM"
kill -TERM "$shop2_pid"
wait "$shop2_pid" && echo ">> shop instance 2 exited 0 (deregistered, drained, stopped)"
set +e
wait "$client"
client_rc=$?
set -e

step "7/8 a Python client from the emitted IDL places an order; the rpcboot tool calls order over Thrift"
thrift -r -I "$build/samples/geo_types_rpcboot" --gen py -out "$run" "$build/samples/order_interface_rpcboot/order_service.thrift"
set +e
/usr/bin/python3 samples/demo/python_client.py --zookeeper "$zk" --gen "$run"
python_rc=$?
set -e
echo ">> the rpcboot tool learns order's schema from its Thrift port and calls it:"
echo "   rpcboot describe zk://$zk/services/order"
"$build/cli/rpcboot" describe "zk://$zk/services/order" | sed -n '1,5p' | sed 's/^/   /'
echo "   rpcboot call zk://$zk/services/order order.OrderService/PlaceOrder '{...}'"
set +e
"$build/cli/rpcboot" call "zk://$zk/services/order" order.OrderService/PlaceOrder \
  '{"shop_id": 1, "customer": "rpcboot-tool", "lines": [{"item_id": 12, "quantity": 1, "unit_price_cents": 650}]}' \
  >"$run/tool.out" 2>&1
tool_rc=$?
set -e
grep -E '"(order_id|total_cents)"' "$run/tool.out" | sed 's/^/   /'

step "8/8 summary"
echo "  ZooKeeper $zk; shop instances 2 (one stopped mid-run), delivery instance 1, payment instance 1, order instance 1"
echo "  order's $(status_page "$run/order.log") (live until the demo ends)"
curl_metrics=$(command -v curl || true)
order_admin=$(status_page "$run/order.log" | sed -n 's|.*http://\([^/]*\)/.*|\1|p')
if [ -n "$curl_metrics" ] && [ -n "$order_admin" ]; then
  echo "  order's /metrics: $(curl -s "http://$order_admin/metrics" | grep -c '^rpcboot_') rpcboot_ samples, e.g.:"
  curl -s "http://$order_admin/metrics" | grep '^rpcboot_server_handled_total.*PlaceOrder.*thrift' | sed 's/^/    /'
fi
echo "  migration local -> shadow -> percent:50 -> remote: $([ $migration_rc -eq 0 ] && echo OK || echo FAILED) ($mismatches shadow mismatches)"
echo "  demo client: $([ $client_rc -eq 0 ] && echo OK || echo FAILED)"
echo "  python client: $([ $python_rc -eq 0 ] && echo OK || echo FAILED)"
echo "  rpcboot tool over Thrift: $([ $tool_rc -eq 0 ] && echo OK || echo FAILED)"
stored=0
for f in "$build"/demo-orders/shard-*.db; do
  stored=$((stored + $(sqlite3 "$f" 'SELECT COUNT(*) FROM orders')))
done
echo "  orders in order's store ($build/demo-orders, SQLite): $stored, read with the sqlite3 tool"
echo "  logs: $run/"
if [ $client_rc -eq 0 ] && [ $python_rc -eq 0 ] && [ $migration_rc -eq 0 ] && [ $tool_rc -eq 0 ]; then
  echo "demo.sh: OK"
else
  echo "demo.sh: FAILED"
  exit 1
fi
