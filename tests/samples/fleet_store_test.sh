#!/usr/bin/env bash
# The delivery service keeps its fleet on disk (settings.fleet.store): a restarted instance finds
# its couriers busy with the orders they carried, answers Track, Assign and Release for them as
# before, and never hands a busy courier to a new order; a courier who delivered waits at the
# door across the restart. A second process on one store, a store with more couriers than the
# setting, a file that is not SQLite and rows that cannot be a fleet are refused at start (exit
# 2), naming what is wrong and leaving the file as it was.
#   fleet_store_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v sqlite3 >/dev/null ||
  { echo "FAIL: the sqlite3 tool is not installed (apt-get install sqlite3; ./scripts/setup.sh does)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
store=$work/fleet.db
fleet="zk://$zk/services/delivery"

start_delivery() {  # LOG [FLAGS...]: sets delivery_pid
  local log=$1
  shift
  start_sample delivery "$log" --settings.fleet.store="$store" "$@"
  delivery_pid=$sample_pid
}
stop_delivery() {
  kill -TERM "$delivery_pid"
  wait "$delivery_pid" || fail "delivery did not exit 0 on SIGTERM"
}
call() {  # OUT METHOD JSON: delivery.DeliveryService/METHOD, which must succeed
  "$build/cli/rpcboot" call "$fleet" "delivery.DeliveryService/$2" "$3" >"$work/$1" 2>&1 ||
    fail "$2 $3: $(cat "$work/$1")"
}
assign() {  # OUT ORDER-ID: from shop 1 (Alexanderplatz) to Wiener Str.
  call "$1" Assign "{\"order_id\": \"$2\", \"pickup\": {\"lat\": 52.5219, \"lng\": 13.4132}, \"dropoff\": {\"lat\": 52.498, \"lng\": 13.43}}"
}
refused() {  # OUT TEXT [FLAGS...]: a start that must stop with exit 2 saying TEXT
  local out=$1 text=$2 rc=0
  shift 2
  "$build/samples/delivery" --config="$src/samples/delivery/delivery.yaml" --registry.zookeeper="$zk" \
    --settings.fleet.store="$store" "$@" >"$work/$out" 2>&1 || rc=$?
  [ $rc = 2 ] && grep -qF -- "$text" "$work/$out" || fail "wanted exit 2 and '$text': exit $rc: $(cat "$work/$out")"
}

# Two couriers; two orders take both, a third finds none; the first is delivered.
start_delivery "$work/delivery1.log" --settings.fleet.couriers=2
grep -qF "delivery: fleet of 2 couriers, kept in $store" "$work/delivery1.log" || fail "the store is not named at start"
assign o1.json o1
assign o2.json o2
x=$(field o1.json courier) y=$(field o2.json courier)
[ -n "$x" ] && [ -n "$y" ] && [ "$x" != "$y" ] || fail "two orders, two couriers: $x, $y"
assign o3.json o3
[ "$(field o3.json courier)" = "" ] || fail "a third order took a busy courier: $(cat "$work/o3.json")"
call o1_done.json Release '{"order_id": "o1", "delivered": true}'
[ "$(field o1_done.json done)" = true ] || fail "release: $(cat "$work/o1_done.json")"

# An order id is at most 128 bytes (each assignment keeps it, on disk too).
rc=0
"$build/cli/rpcboot" call "$fleet" delivery.DeliveryService/Assign \
  "{\"order_id\": \"$(printf 'o%.0s' $(seq 129))\", \"pickup\": {\"lat\": 52.52, \"lng\": 13.41}, \"dropoff\": {\"lat\": 52.5, \"lng\": 13.43}}" \
  >"$work/long_id.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -qF "INVALID_ARGUMENT: order_id is 129 bytes; 1 to 128" "$work/long_id.out" ||
  fail "a 129-byte order id: exit $rc: $(cat "$work/long_id.out")"

# The same store opened by a second process is refused while the first runs.
refused second.out "delivery: settings.fleet.store: $store is in use by another delivery process (pid $delivery_pid): one process per fleet store"

# Restart: o2 is still carried by its courier, o1 is still done, and the new order o3 gets the
# free courier, not the busy one; o2 is released after the restart like before it.
stop_delivery
start_delivery "$work/delivery2.log" --settings.fleet.couriers=2
call o2_track.json Track '{"order_id": "o2"}'
[ "$(field o2_track.json courier)" = "$y" ] && [ "$(field o2_track.json done)" = false ] &&
  [ "$(field o2_track.json eta_minutes)" = "$(field o2.json eta_minutes)" ] ||
  fail "o2 after the restart: $(cat "$work/o2_track.json") (before: $(cat "$work/o2.json"))"
call o1_track.json Track '{"order_id": "o1"}'
[ "$(field o1_track.json done)" = true ] || fail "o1 after the restart: $(cat "$work/o1_track.json")"
assign o2_again.json o2
[ "$(field o2_again.json courier)" = "$y" ] || fail "a repeated Assign after the restart: $(cat "$work/o2_again.json")"
assign o3_now.json o3
[ "$(field o3_now.json courier)" = "$x" ] || fail "o3 after the restart: $(cat "$work/o3_now.json") (free: $x)"
# $x waited at o1's door: the ride to the shop is measured from there.
[ "$(field o3_now.json courier_to_pickup_m)" -gt 2500 ] || fail "courier $x did not wait at o1's door: $(cat "$work/o3_now.json")"
call o2_done.json Release '{"order_id": "o2", "delivered": false}'
[ "$(field o2_done.json done)" = true ] || fail "o2 released after the restart: $(cat "$work/o2_done.json")"
stop_delivery

# On disk, read by SQLite's own tool.
[ "$(sqlite3 "$store" "SELECT COUNT(*) FROM couriers")" = 2 ] || fail "couriers on disk"
[ "$(sqlite3 "$store" "SELECT order_id FROM assignments WHERE done_seq = 0")" = o3 ] || fail "the carried order on disk"
[ "$(sqlite3 "$store" "SELECT printf('%.3f,%.2f', lat, lng) FROM couriers WHERE name = '$x'")" = "52.498,13.43" ] ||
  fail "$x on disk: $(sqlite3 "$store" "SELECT * FROM couriers")"

# The fleet grows; it never shrinks under a store.
refused fewer.out "delivery: settings.fleet.store: $store holds 2 couriers, more than settings.fleet.couriers (1): a fleet store only grows; raise the setting or use a new store" \
  --settings.fleet.couriers=1
start_delivery "$work/delivery3.log" --settings.fleet.couriers=3
call o3_track.json Track '{"order_id": "o3"}'
[ "$(field o3_track.json courier)" = "$x" ] || fail "o3 after growing: $(cat "$work/o3_track.json")"
stop_delivery
[ "$(sqlite3 "$store" "SELECT COUNT(*) FROM couriers")" = 3 ] || fail "the third courier is not on disk"

# Rows that cannot be a fleet, and a file that is not SQLite, are refused and left as they were
# (also when the start would have grown the fleet).
cp "$store" "$work/good.db"
sqlite3 "$store" "UPDATE assignments SET courier_idx = 99 WHERE order_id = 'o3'"
cp "$store" "$work/broken.db"
refused broken.out "delivery: settings.fleet.store: $store: order o3 is carried by courier 99, and the fleet has 4" \
  --settings.fleet.couriers=4
cmp -s "$store" "$work/broken.db" || fail "a refused start changed the store (it would have grown the fleet)"
cp "$work/good.db" "$store"
sqlite3 "$store" "INSERT INTO assignments VALUES ('o4', (SELECT courier_idx FROM assignments WHERE order_id = 'o3'), 1, 1, 52.5, 13.4, 0)"
refused twice.out "delivery: settings.fleet.store: $store: order o4 is carried by courier" --settings.fleet.couriers=3
grep -qF "who already carries order o3" "$work/twice.out" || fail "two orders on one courier: $(cat "$work/twice.out")"
sqlite3 "$store" "DELETE FROM assignments WHERE order_id = 'o4'; UPDATE couriers SET lat = 500 WHERE idx = 1"
refused off_globe.out "delivery: settings.fleet.store: $store: courier 1 has no name or a place off the globe" \
  --settings.fleet.couriers=3
rm -f "$store"-wal "$store"-shm
printf 'couriers: 8\n' >"$store"
refused not_sqlite.out "delivery: settings.fleet.store: $store: is not an SQLite database it can use: file is not a database" \
  --settings.fleet.couriers=3
[ "$(cat "$store")" = "couriers: 8" ] || fail "a refused start changed a file that is not SQLite"
echo "fleet store: OK"
