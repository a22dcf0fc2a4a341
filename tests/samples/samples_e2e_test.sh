#!/usr/bin/env bash
# End to end over the samples: a real ZooKeeper (free port), two shop instances (gRPC), one
# delivery instance (gRPC and Thrift), one payment instance (gRPC), one order instance (Thrift),
# the demo client placing orders while one shop instance is stopped, and the Python client
# generated from the emitted IDL. Every process is stopped by pid at the end.
#   samples_e2e_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
source "$(dirname "$0")/samples_common.sh"
for n in 1 2; do
  start_shop "$work/shop$n.log"
  eval "shop$n=$shop_pid"
done
# A fleet setting out of range stops the delivery process at start, naming it.
set +e
"$build/samples/delivery" --config="$src/samples/delivery/delivery.yaml" --registry.zookeeper="$zk" \
  --settings.fleet.couriers=0 >"$work/delivery_refused.out" 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q "delivery: settings.fleet.couriers: '0' from command line --settings.fleet.couriers is not an integer in 1..1000" \
  "$work/delivery_refused.out" || fail "delivery with no couriers: exit $rc: $(cat "$work/delivery_refused.out")"
start_sample delivery "$work/delivery.log" --settings.fleet.store="$work/fleet.db"
start_payment "$work/payment.log"
start_sample order "$work/order.log" --settings.store.dir="$work/orders"

"$build/samples/demo_client" --zookeeper="$zk" --orders=40 --interval_ms=50 >"$work/client.out" 2>"$work/client.log" &
client=$!
sleep 1
kill -TERM "$shop2"
wait "$shop2" || fail "shop 2 did not exit 0 on SIGTERM"
wait "$client" || fail "demo client reported failures: $(tail -12 "$work/client.out")"
cat "$work/client.out"

grep -q "summary: 40 placed, 0 failed, 40 read back, 6/6 invalid orders rejected correctly" "$work/client.out" ||
  fail "unexpected summary"
# Shop lookups spread over both instances before one stopped.
[ "$(grep -c '^  shop instance shop@' "$work/client.out")" = 2 ] || fail "lookups did not reach both shop instances"
grep -qE "a retry of the first order \(request_id demo-[0-9]+-0\) returned o[0-9a-f]{6}-[0-9]+: the same order, not a second one" \
  "$work/client.out" || fail "a retried order with its request_id was not the same order"
grep -q "closed shop   FAILED_PRECONDITION: shop 3 (Night Grill) is closed" "$work/client.out" || fail "closed shop"
grep -q "card declined FAILED_PRECONDITION: payment service: card of big-spender declined: 0.00 held already, and 1250.00 more passes its limit of 200.00" \
  "$work/client.out" || fail "card declined"
grep -q "unknown item  INVALID_ARGUMENT: item 99 is not on the menu of shop 1" "$work/client.out" || fail "unknown item"
grep -q "wrong price   INVALID_ARGUMENT: item 12 (dumplings) costs 650 cents, not 600" "$work/client.out" || fail "wrong price"
grep -q "too far       FAILED_PRECONDITION: Marienplatz 1, Munich is 504.3 km from shop 1 (Noodle Bar); it delivers within 10.0 km" \
  "$work/client.out" || fail "too far"
# Delivered orders carry their distance and fee (199 + 50 per started km, in the total).
# and the courier the delivery service assigned (over Thrift), tracked by the client over gRPC.
grep -qE "^  order o[0-9a-f]{6}-[0-9]+ +shop 1 +[0-9]+ cents  [0-9.]+ km, fee (249|299|349), [A-Z][a-z]+ in [0-9]+ min " "$work/client.out" ||
  fail "no delivered order with its fee and courier"
grep -qE "^tracked o[0-9a-f]{6}-[0-9]+ with the delivery service over gRPC: courier [A-Z][a-z]+, [0-9]+ m from the shop, at the door in [0-9]+ min \(kept by delivery@[0-9]+\)" \
  "$work/client.out" || fail "tracking over gRPC"
grep -qE "^  order o[0-9a-f]{6}-[0-9]+ +shop 2 +990 cents  pickup " "$work/client.out" || fail "no pickup order"
# Every order reaches its end: 8 couriers for 20 delivered orders, so most wait until a delivery
# frees a courier and the order service's dispatcher gives it to them; one is cancelled.
grep -qE "^  19 delivered \([0-9]+ after waiting for a courier\), 20 collected at the shop, 1 cancelled, 3/3 invalid steps refused correctly" \
  "$work/client.out" || fail "not every order reached its end"
grep -qE "^order: o[0-9a-f]{6}-[0-9]+: courier [A-Z][a-z]+ assigned after [0-9.]+ s of waiting" "$work/order.log" ||
  fail "the dispatcher assigned no waiting order"
grep -qE "^cancelled o[0-9a-f]{6}-[0-9]+: the customer changed their mind" "$work/client.out" || fail "no cancelled order"
# Every payment as its order says: the 39 that ended captured, the cancelled one voided.
grep -q "^payments, read from the payment service over gRPC: 39 captured, 1 voided, 0 held; each as its order says" \
  "$work/client.out" || fail "payments: $(grep -A3 '^payments' "$work/client.out")"
# The tracked order's courier gave it up; another courier delivered it.
gave=$(sed -n 's/^\([A-Z][a-z]*\) gave o[0-9a-f]\{6\}-[0-9]* up (a flat tyre): it waits for another courier$/\1/p' "$work/client.out")
[ -n "$gave" ] || fail "no courier gave an order up"
grep -qE "^  o[0-9a-f]{6}-[0-9]+ +[A-Z][a-z]+ +picked up and delivered \(after $gave gave it up\)" "$work/client.out" ||
  fail "the order $gave gave up was not delivered by another courier"
# Every courier is free again, as the delivery service's own gauge says on its /metrics.
delivery_admin=$(sed -n 's|.*admin: status page http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/delivery.log" | head -1)
/usr/bin/python3 - "$delivery_admin" <<'EOF' || fail "delivery's couriers gauge"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10) as r:
    families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
couriers = {s.labels["state"]: s.value for s in families["delivery_couriers"].samples}
assert couriers == {"busy": 0, "free": 8}, couriers
EOF
# One order was given up, as the order service's own counter says.
order_admin=$(sed -n 's|.*admin: status page http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/order.log" | head -1)
/usr/bin/python3 - "$order_admin" <<'EOF' || fail "order's declined counter"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10) as r:
    families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
declined = [s.value for s in families["order_declined"].samples if s.name == "order_declined_total"]
assert declined == [1], declined
EOF

thrift -r -I "$build/samples/geo_types_rpcboot" --gen py -out "$work" "$build/samples/order_interface_rpcboot/order_service.thrift"
/usr/bin/python3 "$src/samples/demo/python_client.py" --zookeeper "$zk" --gen "$work" || fail "python client"
echo "samples end to end: OK"
