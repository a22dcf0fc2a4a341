#!/usr/bin/env bash
# An order from placing to its end, through the registry with the rpcboot tool: a delivered
# order placed while no delivery instance runs waits, and the order service's dispatcher gives it
# a courier once one starts; with one courier, a second order waits until the first is delivered
# (or cancelled) and the courier is released; steps go forward only, by the order's own courier,
# and a repeated step is answered as it is; a cancelled order keeps its reason; a pickup order
# ends when the customer collects it; a release the delivery service cannot be told about is
# kept on disk and made later; what changed is on disk (read with sqlite3) and survives a
# restart; an order no courier takes in time is cancelled by the service; bad requests and bad
# settings are refused, naming what is wrong.
#   order_lifecycle_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v sqlite3 >/dev/null ||
  { echo "FAIL: the sqlite3 tool is not installed (apt-get install sqlite3; ./scripts/setup.sh does)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
store=$work/orders
orders="zk://$zk/services/order"

start_shop "$work/shop.log"
start_payment "$work/payment.log"

start_delivery() {  # LOG: one courier (Ana); sets delivery_pid
  start_sample delivery "$1" --settings.fleet.couriers=1 --settings.fleet.store="$work/fleet.db"
  delivery_pid=$sample_pid
}
# call OUT STATUS METHOD JSON: the tool calls order.OrderService/METHOD, exits STATUS (0 or 1).
call() {
  local out=$1 want=$2 method=$3 rc=0
  "$build/cli/rpcboot" call "$orders" "order.OrderService/$method" "$4" >"$work/$out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$method $4: exit $rc, wanted $want: $(cat "$work/$out")"
}
place() {  # OUT [DELIVER_TO-JSON]: a PlaceOrder from shop 1; prints the order id
  call "$1" 0 PlaceOrder "{\"shop_id\": 1, \"customer\": \"c\", \"lines\": [{\"item_id\": 11, \"quantity\": 1, \"unit_price_cents\": 1250}]${2:+, \"deliver_to\": $2}}"
  field "$1" order_id
}
advance() {  # OUT STATUS ORDER-ID STEP BY
  call "$1" "$2" AdvanceOrder "{\"order_id\": \"$3\", \"status\": $4, \"by\": \"$5\"}"
}
wiener='{"street": "Wiener Str. 1", "point": {"lat": 52.498, "lng": 13.43}}'
picked_up=1 delivered=2

start_order "$work/order1.log"

# No delivery instance: the order stands without a courier and cannot be picked up yet.
a=$(place a.json "$wiener")
[ "$(field a.json courier)" = "" ] && [ "$(field a.json status)" = kPlaced ] || fail "order a: $(cat "$work/a.json")"
advance a_early.json 1 "$a" $picked_up Ana
says a_early.json "FAILED_PRECONDITION: order $a has no courier yet (the dispatcher assigns one)"

# A delivery instance with one courier starts: the dispatcher gives her order a.
start_delivery "$work/delivery1.log"
wait_courier "$a" Ana
grep -qE "order: $a: courier Ana assigned after [0-9]+\.[0-9] s of waiting" "$work/order1.log" ||
  fail "the dispatcher's assignment is not logged"

# The only courier is busy: order b waits.
b=$(place b.json "$wiener")
[ "$(field b.json courier)" = "" ] || fail "order b took a busy courier: $(cat "$work/b.json")"
says order1.log "order: $b: every courier is busy; it waits for one"

# Steps: forward only, by the order's courier; a repeated one is answered as it is.
advance a_skip.json 1 "$a" $delivered Ana
says a_skip.json "FAILED_PRECONDITION: order $a is placed, not picked up: it cannot be delivered now"
advance a_other.json 1 "$a" $picked_up Ben
says a_other.json "PERMISSION_DENIED: order $a is carried by Ana, not 'Ben'"
advance a_picked.json 0 "$a" $picked_up Ana
[ "$(field a_picked.json status)" = kPickedUp ] || fail "picked up: $(cat "$work/a_picked.json")"
advance a_again.json 0 "$a" $picked_up Ana
diff "$work/a_picked.json" "$work/a_again.json" >/dev/null || fail "a repeated step changed the order: $(cat "$work/a_again.json")"
call a_cancel.json 1 CancelOrder "{\"order_id\": \"$a\"}"
says a_cancel.json "FAILED_PRECONDITION: order $a is picked up: too late to cancel"
[ "$(field b.json status)" = kPlaced ] && [ "$(courier_of "$b")" = "" ] || fail "order b got a courier before Ana was free"
advance a_done.json 0 "$a" $delivered Ana
[ "$(field a_done.json status)" = kDelivered ] || fail "delivered: $(cat "$work/a_done.json")"
advance a_back.json 1 "$a" $picked_up Ana
says a_back.json "FAILED_PRECONDITION: order $a is delivered, not placed: it cannot be picked up now"

# Delivered: the delivery service released Ana (tracked over gRPC), and the dispatcher gives her b.
"$build/cli/rpcboot" call "zk://$zk/services/delivery" delivery.DeliveryService/Track "{\"order_id\": \"$a\"}" \
  >"$work/track_a.json" 2>&1 || fail "Track $a: $(cat "$work/track_a.json")"
says track_a.json '"done": true'
wait_courier "$b" Ana

# b is cancelled: its reason is kept, a second cancel answers as it is, Ana is free for c at once.
call b_cancel.json 0 CancelOrder "{\"order_id\": \"$b\", \"reason\": \"ordered twice\"}"
[ "$(field b_cancel.json status)" = kCancelled ] && [ "$(field b_cancel.json status_reason)" = "ordered twice" ] ||
  fail "cancel: $(cat "$work/b_cancel.json")"
call b_cancel2.json 0 CancelOrder "{\"order_id\": \"$b\", \"reason\": \"something else\"}"
diff "$work/b_cancel.json" "$work/b_cancel2.json" >/dev/null || fail "a second cancel changed the order: $(cat "$work/b_cancel2.json")"
advance b_after.json 1 "$b" $picked_up Ana
says b_after.json "FAILED_PRECONDITION: order $b was cancelled (ordered twice)"
c=$(place c.json "$wiener")
[ "$(field c.json courier)" = Ana ] || fail "cancelling b did not free Ana for c: $(cat "$work/c.json")"

# The delivery service cannot be told (stopped with SIGSTOP): c is delivered all the same, the
# release is kept on disk with the status change, and the dispatcher makes it once the service
# answers again; then the waiting order f gets Ana.
kill -STOP "$delivery_pid"
advance c_picked.json 0 "$c" $picked_up Ana
advance c_done.json 0 "$c" $delivered Ana
[ "$(field c_done.json status)" = kDelivered ] || fail "c not delivered while delivery is stopped: $(cat "$work/c_done.json")"
says order1.log "order: $c: courier not released yet (the dispatcher tries again): "
[ "$(on_disk "SELECT order_id, delivered FROM releases")" = "$c|1" ] || fail "the release of c is not kept on disk"
f=$(place f.json "$wiener")
[ "$(field f.json courier)" = "" ] || fail "order f got a courier from a stopped service: $(cat "$work/f.json")"
kill -CONT "$delivery_pid"
wait_courier "$f" Ana
[ -z "$(on_disk "SELECT order_id FROM releases")" ] || fail "a release made is still kept: $(on_disk "SELECT * FROM releases")"

# A pickup order ends when the customer collects it; no courier carries it.
d=$(place d.json)
advance d_courier.json 1 "$d" $picked_up Ana
says d_courier.json "PERMISSION_DENIED: order $d is picked up at the shop: no courier ('Ana') carries it"
advance d_delivered.json 1 "$d" $delivered ""
says d_delivered.json "FAILED_PRECONDITION: order $d is picked up at the shop: it is never delivered"
advance d_collected.json 0 "$d" $picked_up ""
[ "$(field d_collected.json status)" = kPickedUp ] || fail "collected: $(cat "$work/d_collected.json")"

# Requests that are wrong in themselves.
advance unknown.json 1 "${a%-*}-999" $picked_up Ana
says unknown.json "NOT_FOUND: no order ${a%-*}-999"
advance placed.json 1 "$c" 0 Ana
says placed.json "INVALID_ARGUMENT: status must be picked up (1) or delivered (2), not 0; CancelOrder cancels"
call long.json 1 CancelOrder "{\"order_id\": \"$c\", \"reason\": \"$(printf 'x%.0s' $(seq 257))\"}"
says long.json "INVALID_ARGUMENT: reason is 257 bytes; at most 256"
[ "$(courier_of "$c")" = Ana ] || fail "a refused request changed order c"

# On disk, read by SQLite's own tool.
[ "$(on_disk "SELECT status, courier FROM orders WHERE order_id = '$a'")" = "2|Ana" ] || fail "order a on disk"
[ "$(on_disk "SELECT status, status_reason FROM orders WHERE order_id = '$b'")" = "3|ordered twice" ] || fail "order b on disk"
[ "$(on_disk "SELECT status FROM orders WHERE order_id = '$d'")" = 1 ] || fail "order d on disk"
call a_before.json 0 GetOrder "{\"order_id\": \"$a\"}"
call b_before.json 0 GetOrder "{\"order_id\": \"$b\"}"

# Restart without a delivery instance, giving up after 1 s: what changed reads back as it was,
# and an order no courier takes is cancelled by the service.
kill -TERM "$order_pid" "$delivery_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"
wait "$delivery_pid" || fail "delivery did not exit 0 on SIGTERM"
start_order "$work/order2.log" --settings.delivery.give_up_s=1
call a_after.json 0 GetOrder "{\"order_id\": \"$a\"}"
diff "$work/a_before.json" "$work/a_after.json" >/dev/null || fail "order a changed across the restart: $(cat "$work/a_after.json")"
call b_after.json 0 GetOrder "{\"order_id\": \"$b\"}"
diff "$work/b_before.json" "$work/b_after.json" >/dev/null || fail "order b changed across the restart: $(cat "$work/b_after.json")"
e=$(place e.json "$wiener")
for _ in $(seq 200); do
  call e_now.json 0 GetOrder "{\"order_id\": \"$e\"}"
  [ "$(field e_now.json status)" = kCancelled ] && break
  sleep 0.1
done
[ "$(field e_now.json status_reason)" = "no courier within 1 s" ] || fail "order e was not given up: $(cat "$work/e_now.json")"
says order2.log "order: $e: cancelled: no courier within 1 s"
# Order c still has Ana: it is not the dispatcher's to touch.
[ "$(courier_of "$c")" = Ana ] || fail "order c lost its courier"
grep -qE "order: dispatcher: [0-9]+ order\(s\) wait for a courier: UNAVAILABLE" "$work/order2.log" ||
  fail "the dispatcher did not say why no courier came"
[ "$(grep -c "order: dispatcher:" "$work/order2.log")" -le 3 ] || fail "the dispatcher repeats itself every round"
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"

# Dispatcher settings out of range stop the start, naming them.
for bad in "dispatch_ms=10:settings.delivery.dispatch_ms: '10' from command line --settings.delivery.dispatch_ms is not an integer in 50..600000" \
           "give_up_s=0:settings.delivery.give_up_s: '0' from command line --settings.delivery.give_up_s is not an integer in 1..86400"; do
  rc=0
  "$build/samples/order" --config="$src/samples/order/order.yaml" --registry.zookeeper="$zk" \
    --settings.store.dir="$store" "--settings.delivery.${bad%%:*}" >"$work/refused.out" 2>&1 || rc=$?
  [ $rc = 2 ] && grep -qF "order: ${bad#*:}" "$work/refused.out" || fail "--settings.delivery.${bad%%:*}: exit $rc: $(cat "$work/refused.out")"
done
echo "order lifecycle: OK"
