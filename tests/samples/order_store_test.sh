#!/usr/bin/env bash
# The order sample keeps its orders in SQLite (settings.store.* in order.yaml): orders placed
# through the registry are in the shard files (read with the sqlite3 tool, not by the sample),
# survive a restart and keep their ids unique; a PlaceOrder retried with its request_id returns
# the order it placed, also after a restart; a second process on the same directory, a shard
# count that does not match, a file that is not a database, a store path that is a file and a bad
# setting each stop the start with a message naming them; a store damaged under a running process
# fails the one call (INTERNAL, naming the file) and the process keeps serving; a store written
# before the delivery columns existed is upgraded in place.
#   order_store_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v sqlite3 >/dev/null ||
  { echo "FAIL: the sqlite3 tool is not installed (apt-get install sqlite3; ./scripts/setup.sh does)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
tool() { "$build/cli/rpcboot" "$@"; }
store=$work/orders
order_args=(--config="$src/samples/order/order.yaml" --registry.zookeeper="$zk")

start_shop "$work/shop.log"
start_payment "$work/payment.log"

start_order() {  # LOG [FLAGS...]: starts order on $store as order.yaml has it (not samples_common.sh's); sets order_pid
  local log=$1
  shift
  "$build/samples/order" "${order_args[@]}" --settings.store.dir="$store" "$@" >"$log" 2>&1 &
  order_pid=$!
  pids+=($order_pid)
  wait_registered "$log"
}
place() {  # CUSTOMER [DELIVER_TO-JSON]: prints the reply of a PlaceOrder through the registry
  tool call "zk://$zk/services/order" order.OrderService/PlaceOrder \
    "{\"shop_id\": 1, \"customer\": \"$1\", \"lines\": [{\"item_id\": 11, \"quantity\": 2, \"unit_price_cents\": 1250}, {\"item_id\": 13, \"quantity\": 1, \"unit_price_cents\": 250}]${2:+, \"deliver_to\": $2}}"
}
# 2.9 km from shop 1 (Noodle Bar): 199 + 3 x 50 cents for delivery.
wiener='{"street": "Wiener Str. 1", "point": {"lat": 52.498, "lng": 13.43}}'
stored() {  # SQL: the rows of SQL summed over every shard file
  for f in "$store"/shard-*.db; do sqlite3 "$f" "$1"; done
}

start_order "$work/order1.log"
grep -q "order: store $store: 8 shards, 0 orders" "$work/order1.log" || fail "first start: $(head -1 "$work/order1.log")"
ids=()
for n in 1 2 3 4 5 6; do
  # Orders 3 and 5 are delivered, the others picked up.
  place "c$n" "$([ $((n % 2)) = 1 ] && [ $n != 1 ] && echo "$wiener")" >"$work/place$n.json" 2>&1 ||
    fail "PlaceOrder $n: $(cat "$work/place$n.json")"
  ids+=("$(sed -n 's/.*"order_id": "\([^"]*\)".*/\1/p' "$work/place$n.json")")
done
echo "placed: ${ids[*]}"
tag=${ids[0]%-*}
[ "${ids[5]}" = "$tag-6" ] || fail "ids are not <tag>-<sequence>: ${ids[*]}"

# No delivery service runs here: delivered orders stand without a courier, and the log says why.
grep -q "order: ${ids[2]}: no courier assigned: UNAVAILABLE: zk://$zk/services/delivery: no instance to call" \
  "$work/order1.log" || fail "a delivered order without a delivery service: $(grep courier "$work/order1.log")"
grep -q '"courier": ""' "$work/place3.json" || fail "order 3 names a courier: $(cat "$work/place3.json")"

# What is on disk, read by SQLite's own tool.
[ "$(stored 'SELECT COUNT(*) FROM orders' | awk '{s += $1} END {print s}')" = 6 ] || fail "not 6 orders in the shard files"
[ "$(stored 'SELECT COUNT(*) FROM order_lines' | awk '{s += $1} END {print s}')" = 12 ] || fail "not 12 lines in the shard files"
row=$(stored "SELECT customer, total_cents, shop_id, deliver_street, delivery_fee_cents FROM orders WHERE order_id = '${ids[2]}'")
[ "$row" = "c3|3099|1|Wiener Str. 1|349" ] || fail "delivered order ${ids[2]} on disk: '$row'"
row=$(stored "SELECT customer, total_cents, deliver_street, distance_m FROM orders WHERE order_id = '${ids[3]}'")
[ "$row" = "c4|2750||0" ] || fail "picked-up order ${ids[3]} on disk: '$row'"
# Each order is in the shard its reply names, and only there.
for n in 1 2 3 4 5 6; do
  shard=$(sed -n 's/.*"shard": \([0-9]*\).*/\1/p' "$work/place$n.json")
  [ "$(sqlite3 "$store/shard-$shard.db" "SELECT COUNT(*) FROM orders WHERE order_id = '${ids[$((n - 1))]}'")" = 1 ] ||
    fail "order ${ids[$((n - 1))]} is not in shard-$shard.db"
done

# A request_id makes a retried PlaceOrder return the order it placed, never a second one.
keyed() {  # REQUEST-ID QUANTITY: a PlaceOrder with that key
  tool call "zk://$zk/services/order" order.OrderService/PlaceOrder \
    "{\"shop_id\": 2, \"customer\": \"keyed\", \"request_id\": \"$1\", \"lines\": [{\"item_id\": 21, \"quantity\": $2, \"unit_price_cents\": 990}]}"
}
keyed r-1 1 >"$work/keyed1.json" 2>&1 || fail "keyed PlaceOrder: $(cat "$work/keyed1.json")"
keyed_id=$(sed -n 's/.*"order_id": "\([^"]*\)".*/\1/p' "$work/keyed1.json")
[ "$keyed_id" = "$tag-7" ] || fail "keyed order id: $keyed_id"
keyed r-1 1 >"$work/keyed2.json" 2>&1 || fail "the retry: $(cat "$work/keyed2.json")"
diff "$work/keyed1.json" "$work/keyed2.json" >/dev/null || fail "the retry got another answer: $(cat "$work/keyed2.json")"
[ "$(stored 'SELECT COUNT(*) FROM orders' | awk '{s += $1} END {print s}')" = 7 ] || fail "the retry stored a second order"
set +e
keyed r-1 3 >"$work/keyed3.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "a key reused for another request exited $rc: $(cat "$work/keyed3.out")"
grep -q "INVALID_ARGUMENT: request_id 'r-1' placed order $keyed_id for a different request: a retry repeats the request as it was" \
  "$work/keyed3.out" || fail "a key reused for another request: $(cat "$work/keyed3.out")"
set +e
keyed "$(printf 'k%.0s' $(seq 129))" 1 >"$work/keyed4.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] && grep -q "INVALID_ARGUMENT: request_id is 129 bytes; at most 128" "$work/keyed4.out" ||
  fail "a 129-byte request_id: $(cat "$work/keyed4.out")"
# What a stored order may hold is bounded: a peer cannot make the store keep megabytes per order.
line='{"item_id": 21, "quantity": 1, "unit_price_cents": 990}'
fifty_one=$(printf "$line,%.0s" $(seq 50))$line
long129=$(printf 'c%.0s' $(seq 129))
long257=$(printf 's%.0s' $(seq 257))
for case in "customer is 129 bytes; at most 128|\"customer\": \"$long129\", \"lines\": [$line]" \
            "deliver_to.street is 257 bytes; at most 256|\"customer\": \"c\", \"lines\": [$line], \"deliver_to\": {\"street\": \"$long257\"}" \
            "lines is 51 lines; at most 50|\"customer\": \"c\", \"lines\": [$fifty_one]"; do
  rc=0
  tool call "zk://$zk/services/order" order.OrderService/PlaceOrder "{\"shop_id\": 2, ${case#*|}}" \
    >"$work/too_big.out" 2>&1 || rc=$?
  [ $rc = 1 ] && grep -qF "INVALID_ARGUMENT: ${case%%|*}" "$work/too_big.out" ||
    fail "wanted '${case%%|*}': exit $rc: $(cat "$work/too_big.out")"
done
[ "$(stored 'SELECT COUNT(*) FROM orders' | awk '{s += $1} END {print s}')" = 7 ] || fail "an order past a limit was stored"

# A second order process on the same directory is refused; the first keeps serving.
set +e
"$build/samples/order" "${order_args[@]}" --settings.store.dir="$store" --server.thrift_port=0 \
  >"$work/second.out" 2>&1
rc=$?
set -e
[ $rc = 2 ] || fail "a second process on the store exited $rc, not 2"
grep -q "order: settings.store.dir: $store is in use by another order process (pid $order_pid): one process per store directory" \
  "$work/second.out" || fail "second process: $(cat "$work/second.out")"

# Restart: every order reads back as it was placed; new ids continue the sequence.
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"
start_order "$work/order2.log" --settings.store.shrads=4
grep -q "order: store $store: 8 shards, 7 orders" "$work/order2.log" || fail "restart: $(head -1 "$work/order2.log")"
# The retry is answered from the store, before anything that may have changed: even with the
# shop service gone.
kill -TERM "$shop_pid"
wait "$shop_pid" || fail "shop did not exit 0 on SIGTERM"
keyed r-1 1 >"$work/keyed5.json" 2>&1 || fail "the retry after the restart: $(cat "$work/keyed5.json")"
diff "$work/keyed1.json" "$work/keyed5.json" >/dev/null || fail "the retry after the restart: $(cat "$work/keyed5.json")"
start_shop "$work/shop2.log"
grep -q "settings.store.shrads from command line --settings.store.shrads has not been read by the application (misspelt?)" \
  "$work/order2.log" || fail "a misspelt setting was not reported"
for n in 1 2 3 4 5 6; do
  tool call "zk://$zk/services/order" order.OrderService/GetOrder "{\"order_id\": \"${ids[$((n - 1))]}\"}" \
    >"$work/get$n.json" 2>&1 || fail "GetOrder ${ids[$((n - 1))]} after the restart: $(cat "$work/get$n.json")"
  # The shop instance that checked it is stored too, so the reply is the one PlaceOrder gave.
  diff "$work/place$n.json" "$work/get$n.json" >/dev/null ||
    fail "order ${ids[$((n - 1))]} changed across the restart: $(diff "$work/place$n.json" "$work/get$n.json")"
done
place c7 >"$work/place7.json" 2>&1 || fail "PlaceOrder after the restart: $(cat "$work/place7.json")"
grep -q "\"order_id\": \"$tag-8\"" "$work/place7.json" || fail "after the restart: $(grep order_id "$work/place7.json")"

# A store damaged under the running process: the call fails and names it; the process serves on.
# The lowest shard holding an order (a refused start below with 4 shards would reach it).
victim=$(cat "$work"/place[1-6].json | sed -n 's/.*"shard": \([0-9]*\).*/\1/p' | sort -n | head -1)
victim_id=$(grep -l "\"shard\": $victim," "$work"/place[1-6].json | head -1 | xargs sed -n 's/.*"order_id": "\([^"]*\)".*/\1/p')
sqlite3 "$store/shard-$victim.db" 'DROP TABLE order_lines; DROP TABLE orders;'
set +e
tool call "zk://$zk/services/order" order.OrderService/GetOrder "{\"order_id\": \"$victim_id\"}" >"$work/damaged.out" 2>&1
rc=$?
set -e
[ $rc = 1 ] || fail "GetOrder on a damaged shard exited $rc: $(cat "$work/damaged.out")"
grep -q "INTERNAL: order store: $store/shard-$victim.db: cannot read order $victim_id" "$work/damaged.out" ||
  fail "damaged shard: $(cat "$work/damaged.out")"
for n in 1 2 3 4 5 6; do
  shard=$(sed -n 's/.*"shard": \([0-9]*\).*/\1/p' "$work/place$n.json")
  [ "$shard" = "$victim" ] && continue
  tool call "zk://$zk/services/order" order.OrderService/GetOrder "{\"order_id\": \"${ids[$((n - 1))]}\"}" \
    >/dev/null 2>&1 || fail "an order of an intact shard could not be read after another was damaged"
done
kill -0 "$order_pid" || fail "order died after its store was damaged"
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"

# Start-up mistakes: exit 2, one line naming the setting and what is wrong; the store untouched.
dump() { for f in "$store"/shard-*.db; do echo "$f"; sqlite3 "$f" .dump; done; }
before=$(dump)
refused() {  # EXPECTED-MESSAGE FLAGS...
  local expected=$1
  shift
  set +e
  "$build/samples/order" "${order_args[@]}" --server.thrift_port=0 "$@" >"$work/refused.out" 2>&1
  local rc=$?
  set -e
  [ $rc = 2 ] || fail "$* exited $rc, not 2: $(cat "$work/refused.out")"
  grep -qF "$expected" "$work/refused.out" || fail "$*: $(cat "$work/refused.out")"
  echo "refused: $expected"
}
refused "order: settings.store.dir: $store holds 8 shards, not 4 (an order's shard depends on the number: keep settings.store.shards at 8 or use a new directory)" \
  --settings.store.dir="$store" --settings.store.shards=4
mkdir -p "$work/garbage"
head -c 8192 /dev/urandom >"$work/garbage/shard-0.db"
refused "order: settings.store.dir: $work/garbage/shard-0.db: is not an SQLite database it can use: file is not a database" \
  --settings.store.dir="$work/garbage"
echo text >"$work/a_file"
refused "order: settings.store.dir: $work/a_file is not a directory" --settings.store.dir="$work/a_file"
refused "order: settings.store.shards: 'lots' from command line --settings.store.shards is not an integer in 1..64" \
  --settings.store.dir="$store" --settings.store.shards=lots
[ "$(dump)" = "$before" ] || fail "a refused start changed the store"

# A store written before the delivery columns existed: the order process adds them (old rows
# read as pickups) and goes on with the store's own sequence. The old row is put in every shard
# file, so it is found whatever shard its id hashes to.
store=$work/legacy
mkdir -p "$store"
for i in 0 1 2 3 4 5 6 7; do
  sqlite3 "$store/shard-$i.db" "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE orders (order_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, shop_id INTEGER NOT NULL,
      customer TEXT NOT NULL, total_cents INTEGER NOT NULL, shard INTEGER NOT NULL,
      shop_checked_by TEXT NOT NULL, placed_at_ms INTEGER NOT NULL);
    CREATE TABLE order_lines (order_id TEXT NOT NULL, line_no INTEGER NOT NULL,
      item_id INTEGER NOT NULL, quantity INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL,
      PRIMARY KEY (order_id, line_no));
    INSERT INTO orders VALUES ('oabcdef-41', 41, 2, 'old', 990, $i, 'shop@1', 0);
    INSERT INTO order_lines VALUES ('oabcdef-41', 0, 21, 1, 990);"
done
sqlite3 "$store/shard-0.db" "INSERT INTO meta VALUES ('tag', 'abcdef'), ('shards', '8');"
start_order "$work/order3.log"
grep -q "order: store $store: 8 shards, 8 orders" "$work/order3.log" || fail "legacy store: $(head -1 "$work/order3.log")"
tool call "zk://$zk/services/order" order.OrderService/GetOrder '{"order_id": "oabcdef-41"}' \
  >"$work/legacy_get.json" 2>&1 || fail "GetOrder of a legacy order: $(cat "$work/legacy_get.json")"
grep -q '"customer": "old"' "$work/legacy_get.json" || fail "legacy order: $(cat "$work/legacy_get.json")"
grep -q '"delivery_fee_cents": 0' "$work/legacy_get.json" || fail "legacy order not a pickup: $(cat "$work/legacy_get.json")"
place c8 "$wiener" >"$work/place8.json" 2>&1 || fail "PlaceOrder on the legacy store: $(cat "$work/place8.json")"
grep -q '"order_id": "oabcdef-42"' "$work/place8.json" || fail "legacy store's sequence: $(grep order_id "$work/place8.json")"
[ "$(stored "SELECT COUNT(*) FROM orders WHERE delivery_fee_cents = 349" | awk '{s += $1} END {print s}')" = 1 ] ||
  fail "the delivered order on the legacy store"
kill -TERM "$order_pid"
wait "$order_pid" || fail "order did not exit 0 on SIGTERM"
echo "order store: OK"
