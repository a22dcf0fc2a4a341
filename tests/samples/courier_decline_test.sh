#!/usr/bin/env bash
# A courier gives an order up (OrderService.DeclineOrder), through the registry with the rpcboot
# tool and two couriers: the order waits and the dispatcher hands it to another courier, never
# one who gave it up, even a nearer one; the courier who gave it up is free for other orders at
# once; a repeated report is answered as it is; both the order store (table declines) and the
# fleet store (the assignment replaced) keep it across restarts; an order every free courier gave
# up waits without holding anyone, and its cancel frees no courier of another order; a
# seventeenth decline is refused; a cancel frees a courier the order service never heard of;
# wrong requests are refused naming what is wrong.
#   courier_decline_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v sqlite3 >/dev/null ||
  { echo "FAIL: the sqlite3 tool is not installed (apt-get install sqlite3; ./scripts/setup.sh does)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
store=$work/orders
orders="zk://$zk/services/order"

start_shop "$work/shop.log"
start_payment "$work/payment.log"

start_delivery() {  # LOG COURIERS: Ana, Ben, ... on the ring; sets delivery_pid
  start_sample delivery "$1" --settings.fleet.couriers="$2" --settings.fleet.store="$work/fleet.db"
  delivery_pid=$sample_pid
}
# call OUT STATUS METHOD JSON [SERVICE]: the tool calls order.OrderService/METHOD (or SERVICE's
# method: delivery.DeliveryService), exits STATUS (0 or 1).
call() {
  local out=$1 want=$2 method=$3 rc=0 target=$orders service=order.OrderService
  [ "${5:-}" = delivery ] && target="zk://$zk/services/delivery" service=delivery.DeliveryService
  "$build/cli/rpcboot" call "$target" "$service/$method" "$4" >"$work/$out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$method $4: exit $rc, wanted $want: $(cat "$work/$out")"
}
declined_by() {  # OUT: the reply's declined_by, as one line of JSON
  tr -d ' \n' <"$work/$1" | grep -o '"declined_by":\[[^]]*\]' || echo none
}
place() {  # OUT [DELIVER_TO-JSON]: a PlaceOrder from shop 1; prints the order id
  call "$1" 0 PlaceOrder "{\"shop_id\": 1, \"customer\": \"c\", \"lines\": [{\"item_id\": 11, \"quantity\": 1, \"unit_price_cents\": 1250}]${2:+, \"deliver_to\": $2}}"
  field "$1" order_id
}
decline() {  # OUT STATUS ORDER-ID BY [REASON]
  call "$1" "$2" DeclineOrder "{\"order_id\": \"$3\", \"by\": \"$4\", \"reason\": \"${5:-}\"}"
}
wiener='{"street": "Wiener Str. 1", "point": {"lat": 52.498, "lng": 13.43}}'

start_order "$work/order1.log"
start_delivery "$work/delivery1.log" 2

# Ben is nearer the shop than Ana: he takes order a.
a=$(place a.json "$wiener")
[ "$(field a.json courier)" = Ben ] || fail "order a did not go to Ben, the nearest: $(cat "$work/a.json")"

# Only the order's courier can give it up.
decline a_ana.json 1 "$a" Ana
says a_ana.json "PERMISSION_DENIED: order $a is carried by Ben, not 'Ana'"
[ "$(courier_of "$a")" = Ben ] || fail "a refused decline changed order a"

# Ben gives it up: the order waits, and the dispatcher gives it to Ana, though Ben is nearer.
decline a_ben.json 0 "$a" Ben "flat tyre"
[ "$(field a_ben.json courier)" = "" ] && [ "$(field a_ben.json status)" = kPlaced ] ||
  fail "a declined order still has its courier: $(cat "$work/a_ben.json")"
[ "$(declined_by a_ben.json)" = '"declined_by":["Ben"]' ] || fail "declined_by: $(declined_by a_ben.json)"
says order1.log "order: $a: Ben gave it up (flat tyre); it waits for another courier"
wait_courier "$a" Ana

# Ben is free at once: the next order takes him while he is still the nearest.
b=$(place b.json "$wiener")
[ "$(field b.json courier)" = Ben ] || fail "Ben was not freed by giving order a up: $(cat "$work/b.json")"

# Ben's report again is answered as it is; he cannot move the order on.
call a_now.json 0 GetOrder "{\"order_id\": \"$a\"}"
decline a_ben2.json 0 "$a" Ben "flat tyre"
diff "$work/a_now.json" "$work/a_ben2.json" >/dev/null || fail "a repeated decline changed order a: $(cat "$work/a_ben2.json")"
call a_step.json 1 AdvanceOrder "{\"order_id\": \"$a\", \"status\": 1, \"by\": \"Ben\"}"
says a_step.json "PERMISSION_DENIED: order $a is carried by Ana, not 'Ben'"

# The fleet store kept the new assignment: a restarted delivery instance has Ana on a, Ben on b.
kill -TERM "$delivery_pid"
wait "$delivery_pid" || fail "delivery did not exit 0 on SIGTERM"
start_delivery "$work/delivery2.log" 2
call track_a.json 0 Track "{\"order_id\": \"$a\"}" delivery
[ "$(field track_a.json courier)" = Ana ] && [ "$(field track_a.json done)" = false ] ||
  fail "after a restart, a is not Ana's: $(cat "$work/track_a.json")"
call track_b.json 0 Track "{\"order_id\": \"$b\"}" delivery
[ "$(field track_b.json courier)" = Ben ] || fail "after a restart, b is not Ben's: $(cat "$work/track_b.json")"

# Ana gives it up too: no courier who has not is free, so a waits, holding no one; Ana takes c.
decline a_ana2.json 0 "$a" Ana
[ "$(declined_by a_ana2.json)" = '"declined_by":["Ben","Ana"]' ] || fail "declined_by: $(declined_by a_ana2.json)"
c=$(place c.json "$wiener")
wait_courier "$c" Ana
[ "$(courier_of "$a")" = "" ] || fail "order a went to a courier who gave it up"
call track_a2.json 1 Track "{\"order_id\": \"$a\"}" delivery
says track_a2.json "NOT_FOUND: order $a was not assigned by delivery@"
decline a_none.json 1 "$a" Cem
says a_none.json "FAILED_PRECONDITION: order $a has no courier yet (the dispatcher assigns one)"

# On disk: who gave a up, in order (sqlite3); the fleet store no longer has an assignment of a.
[ "$(on_disk "SELECT courier FROM declines WHERE order_id = '$a' ORDER BY at_ms, rowid" | tr '\n' ,)" = "Ben,Ana," ] ||
  fail "declines on disk: $(on_disk "SELECT * FROM declines")"
[ -z "$(sqlite3 "$work/fleet.db" "SELECT * FROM assignments WHERE order_id = '$a'")" ] ||
  fail "the fleet store's assignment of a: $(sqlite3 "$work/fleet.db" "SELECT * FROM assignments")"

# The order service restarts: a reads back with who gave it up.
call a_before.json 0 GetOrder "{\"order_id\": \"$a\"}"
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"
start_order "$work/order2.log"
call a_after.json 0 GetOrder "{\"order_id\": \"$a\"}"
diff "$work/a_before.json" "$work/a_after.json" >/dev/null || fail "order a changed across the restart: $(cat "$work/a_after.json")"

# Cancelling a: the release it writes finds no one to free (answered as it is) and goes.
call a_cancel.json 0 CancelOrder "{\"order_id\": \"$a\", \"reason\": \"nobody wants it\"}"
[ "$(field a_cancel.json status)" = kCancelled ] || fail "cancel: $(cat "$work/a_cancel.json")"
[ -z "$(on_disk "SELECT order_id FROM releases")" ] || fail "the release of a is still kept: $(on_disk "SELECT * FROM releases")"
[ "$(courier_of "$b")" = Ben ] && [ "$(courier_of "$c")" = Ana ] || fail "cancelling a freed a courier of another order"
says order2.log "order: $a: nothing to release: NOT_FOUND: order $a was not assigned by delivery@"
call track_b2.json 0 Track "{\"order_id\": \"$b\"}" delivery
[ "$(field track_b2.json done)" = false ] || fail "cancelling a released Ben from b: $(cat "$work/track_b2.json")"

# Too late, not a delivery, or wrong in itself.
call b_picked.json 0 AdvanceOrder "{\"order_id\": \"$b\", \"status\": 1, \"by\": \"Ben\"}"
decline b_late.json 1 "$b" Ben
says b_late.json "FAILED_PRECONDITION: order $b is picked up: too late to give it up"
d=$(place d.json)
decline d_pickup.json 1 "$d" Ana
says d_pickup.json "FAILED_PRECONDITION: order $d is picked up at the shop: no courier carries it"
decline unknown.json 1 "${a%-*}-999" Ana
says unknown.json "NOT_FOUND: no order ${a%-*}-999"
decline long.json 1 "$c" Ana "$(printf 'x%.0s' $(seq 257))"
says long.json "INVALID_ARGUMENT: reason is 257 bytes; at most 256"
[ "$(courier_of "$c")" = Ana ] || fail "a refused decline changed order c"
# A finished assignment stays finished, also when asked with its courier among not_couriers.
call b_done.json 0 AdvanceOrder "{\"order_id\": \"$b\", \"status\": 2, \"by\": \"Ben\"}"
call b_again.json 0 Assign "{\"order_id\": \"$b\", \"pickup\": {\"lat\": 52.52, \"lng\": 13.405}, \"dropoff\": {\"lat\": 52.498, \"lng\": 13.43}, \"not_couriers\": [\"Ben\"]}" delivery
[ "$(field b_again.json courier)" = Ben ] && [ "$(field b_again.json done)" = true ] ||
  fail "a delivered order was carried again: $(cat "$work/b_again.json")"
names=$(printf '"n%s",' $(seq 17))
call many.json 1 Assign "{\"order_id\": \"x\", \"pickup\": {\"lat\": 52.52, \"lng\": 13.405}, \"dropoff\": {\"lat\": 52.5, \"lng\": 13.43}, \"not_couriers\": [${names%,}]}" delivery
says many.json "INVALID_ARGUMENT: not_couriers has 17 names; at most 16"

# A fleet of 19 (Ana busy): sixteen couriers give order e up one after the other, each
# time to one who has not; the seventeenth is refused.
kill -TERM "$delivery_pid"
wait "$delivery_pid" || fail "delivery did not exit 0 on SIGTERM"
start_delivery "$work/delivery3.log" 19
e=$(place e.json "$wiener")
seen=","
for i in $(seq 17); do
  now=""
  for _ in $(seq 200); do now=$(courier_of "$e"); [ -n "$now" ] && break; sleep 0.1; done
  [ -n "$now" ] || fail "order e waits after $((i - 1)) declines: $(cat "$work/courier.json")"
  case "$seen" in *",$now,"*) fail "order e went back to $now, who gave it up" ;; esac
  seen="$seen$now,"
  if [ "$i" -le 16 ]; then decline "e_$i.json" 0 "$e" "$now"; fi
done
decline e_17.json 1 "$e" "$now"
says e_17.json "FAILED_PRECONDITION: order $e was given up by 16 couriers already: cancel it"
# A courier the order service never heard of (an Assign whose answer was lost): the delivery
# service holds one for order w, the order has none, and its dispatcher does not run in this
# window; cancelling w releases that courier all the same.
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"
start_order "$work/order3.log" --settings.delivery.dispatch_ms=600000
kill -STOP "$delivery_pid"
w=$(place w.json "$wiener")
kill -CONT "$delivery_pid"
[ "$(field w.json courier)" = "" ] || fail "order w got a courier from a stopped service: $(cat "$work/w.json")"
call w_assign.json 0 Assign "{\"order_id\": \"$w\", \"pickup\": {\"lat\": 52.52, \"lng\": 13.405}, \"dropoff\": {\"lat\": 52.498, \"lng\": 13.43}}" delivery
[ -n "$(field w_assign.json courier)" ] || fail "the delivery service gave w no courier: $(cat "$work/w_assign.json")"
call w_cancel.json 0 CancelOrder "{\"order_id\": \"$w\"}"
call track_w.json 0 Track "{\"order_id\": \"$w\"}" delivery
[ "$(field track_w.json done)" = true ] || fail "cancelling w left its courier busy: $(cat "$work/track_w.json")"
echo "courier decline: OK"
