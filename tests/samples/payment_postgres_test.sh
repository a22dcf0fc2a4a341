#!/usr/bin/env bash
# Payments in PostgreSQL, shared by two payment instances (a real PostgreSQL server, started by
# scripts/postgres.sh): a customer's holds are counted together whichever instance takes a call,
# so 20 holds sent at once through both never pass the limit; an order held through one instance
# is the same payment through the other; the order service places orders through them; while
# PostgreSQL is down a call is UNAVAILABLE naming it and the instance keeps running, and calls
# succeed again once it is back; bad settings and a table of another shape are refused at start,
# naming what is wrong, and a row no payment has is refused at a call.
#   payment_postgres_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
source "$(dirname "$0")/samples_common.sh"
command -v psql >/dev/null ||
  fail "psql is not installed (apt-get install postgresql; ./scripts/setup.sh does)"
trap 'cleanup; "$src/scripts/postgres.sh" remove "$work/pg" || true' EXIT

pg_out=$("$src/scripts/postgres.sh" start "$work/pg") || fail "PostgreSQL did not start: $pg_out"
pg_port=$(sed -n 's/^port=//p' <<<"$pg_out")
dsn=$(sed -n 's/^dsn=//p' <<<"$pg_out")
sql() { psql "$dsn" -tAq -c "$1"; }

# start_shared LOG [FLAGS...]: a payment instance on the shared database; sets shared_port (its
# gRPC port) and shared_pid.
start_shared() {
  local log=$1
  shift
  start_sample payment "$log" --settings.payment.store= --settings.payment.postgres="$dsn" "$@"
  shared_pid=$sample_pid
  shared_port=$(sed -n 's/.*gRPC listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
}
start_shared "$work/payment1.log" --settings.payment.hold_limit_cents=10000
p1=$shared_port p1_pid=$shared_pid
start_shared "$work/payment2.log" --settings.payment.hold_limit_cents=10000
p2=$shared_port
grep -q "payments kept in PostgreSQL at 127.0.0.1:$pg_port/rpcboot (shared)" "$work/payment1.log" ||
  fail "payment1 does not say where it keeps its payments"

# call OUT STATUS PORT METHOD JSON: the tool calls payment.PaymentService/METHOD on one instance.
call() {
  local rc=0
  "$build/cli/rpcboot" --timeout_ms=10000 call "127.0.0.1:$3" "payment.PaymentService/$4" "$5" \
    >"$work/$1" 2>&1 || rc=$?
  [ "$rc" = "$2" ] || fail "$4 $5 on $3: exit $rc, wanted $2: $(cat "$work/$1")"
}
authorize() {  # ORDER CUSTOMER CENTS
  echo "{\"order_id\": \"$1\", \"customer\": \"$2\", \"amount_cents\": $3}"
}

# 20 holds of 10.00 for one customer at once, half through each instance, limit 100.00: exactly
# 10 are held and 10 declined, whichever instance took them.
callers=()
for i in $(seq 20); do
  port=$p1
  [ $((i % 2)) = 0 ] && port=$p2
  (
    rc=0
    "$build/cli/rpcboot" --timeout_ms=20000 call "127.0.0.1:$port" payment.PaymentService/Authorize \
      "$(authorize "s$i" shared 1000)" >"$work/s$i.json" 2>&1 || rc=$?
    echo "$rc" >"$work/s$i.rc"
  ) &
  callers+=($!)
done
wait "${callers[@]}"
held=0 declined=0
for i in $(seq 20); do
  case "$(cat "$work/s$i.rc")" in
    0) held=$((held + 1)) ;;
    1) grep -q "FAILED_PRECONDITION.*card of shared declined" "$work/s$i.json" ||
         fail "s$i failed otherwise: $(cat "$work/s$i.json")"
       declined=$((declined + 1)) ;;
    *) fail "s$i: exit $(cat "$work/s$i.rc"): $(cat "$work/s$i.json")" ;;
  esac
done
[ "$held" = 10 ] && [ "$declined" = 10 ] || fail "$held held and $declined declined, wanted 10 and 10"
[ "$(sql "SELECT SUM(amount_cents) FROM payments WHERE customer = 'shared' AND status = 0")" = 10000 ] ||
  fail "PostgreSQL holds $(sql "SELECT SUM(amount_cents) FROM payments WHERE customer = 'shared' AND status = 0") for shared, wanted 10000"
echo "20 holds at once through two instances: 10 held, 10 declined, 100.00 held in PostgreSQL"

# One order through both: the same payment, kept once; captured through one, read through the other.
call x1.json 0 "$p1" Authorize "$(authorize ox ana 2500)"
call x2.json 0 "$p2" Authorize "$(authorize ox ana 2500)"
[ "$(field x2.json amount_cents)" = 2500 ] || fail "order ox through payment2: $(cat "$work/x2.json")"
call x3.json 1 "$p2" Authorize "$(authorize ox bob 2500)"
says x3.json "INVALID_ARGUMENT"
says x3.json "was authorized for ana"
[ "$(sql "SELECT COUNT(*) FROM payments WHERE order_id = 'ox'")" = 1 ] || fail "order ox kept twice"
call x4.json 0 "$p2" Settle '{"order_id": "ox", "capture": true}'
call x5.json 0 "$p1" GetPayment '{"order_id": "ox"}'
says x5.json PAYMENT_STATUS_CAPTURED
call x6.json 0 "$p1" Refund '{"order_id": "ox", "amount_cents": 500}'
call x7.json 1 "$p2" Refund '{"order_id": "ox", "amount_cents": 700}'
says x7.json "was refunded 5.00 already"
echo "one order through both instances: one payment, captured through one, read through the other"

# The order service holds, through the shared instances, the totals of the orders it places.
start_shop "$work/shop.log"
start_sample delivery "$work/delivery.log" --settings.fleet.couriers=1 --settings.fleet.store=""
store=$work/orders
start_order "$work/order.log"
for c in o1 o2 o3; do
  rc=0
  "$build/cli/rpcboot" --timeout_ms=10000 call "zk://$zk/services/order" order.OrderService/PlaceOrder \
    "{\"shop_id\": 1, \"customer\": \"$c\", \"lines\": [{\"item_id\": 11, \"quantity\": 1, \"unit_price_cents\": 1250}]}" \
    >"$work/place_$c.json" 2>&1 || rc=$?
  [ "$rc" = 0 ] || fail "PlaceOrder for $c: exit $rc: $(cat "$work/place_$c.json")"
  id=$(field "place_$c.json" order_id)
  [ "$(sql "SELECT customer || ' ' || status FROM payments WHERE order_id = '$id'")" = "$c 0" ] ||
    fail "order $id of $c holds nothing in PostgreSQL: $(sql "SELECT * FROM payments WHERE order_id = '$id'")"
done
echo "the order service's orders are held in PostgreSQL"

# PostgreSQL down: UNAVAILABLE naming it, the instance runs on; back: calls succeed again.
"$src/scripts/postgres.sh" stop "$work/pg"
call down.json 1 "$p1" Authorize "$(authorize od ana 100)"
says down.json "UNAVAILABLE"
says down.json "PostgreSQL at 127.0.0.1:$pg_port/rpcboot"
kill -0 "$p1_pid" || fail "payment1 ended while PostgreSQL was down"
"$src/scripts/postgres.sh" start "$work/pg" "$pg_port" >/dev/null || fail "PostgreSQL did not start again"
call up.json 0 "$p1" Authorize "$(authorize od ana 100)"
call up2.json 0 "$p2" GetPayment '{"order_id": "od"}'
echo "PostgreSQL down: UNAVAILABLE naming it; back: served again"

# A row no payment has is refused at the call, naming it; the instance runs on.
sql "INSERT INTO payments VALUES ('bad', 'eve', 100, 7, 0, 0)"
call bad.json 1 "$p2" GetPayment '{"order_id": "bad"}'
says bad.json "the payment of order bad has status 7"
call ok.json 0 "$p2" GetPayment '{"order_id": "ox"}'

# Bad settings, each refused at start with exit 2 and one line naming it.
refused() {  # WANT-TEXT FLAGS...: the payment process exits 2 saying WANT-TEXT
  local want=$1 rc=0
  shift
  timeout 30 "$build/samples/payment" --config="$src/samples/payment/payment.yaml" \
    --registry.zookeeper="$zk" "$@" >"$work/refused.log" 2>&1 || rc=$?
  [ "$rc" = 2 ] || fail "payment $*: exit $rc, wanted 2: $(cat "$work/refused.log")"
  grep -qF -- "$want" "$work/refused.log" || fail "payment $*: no '$want': $(cat "$work/refused.log")"
}
refused "settings.payment.postgres and settings.payment.store (payments.db) are both set" \
  --settings.payment.postgres="$dsn"
free=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
refused "settings.payment.postgres: cannot connect: connection to server at \"127.0.0.1\", port $free failed" \
  --settings.payment.store= --settings.payment.postgres="host=127.0.0.1 port=$free user=rpcboot"
refused 'settings.payment.postgres: cannot connect: invalid integer value "nine" for connection option "port"' \
  --settings.payment.store= --settings.payment.postgres="host=127.0.0.1 port=nine"
refused 'database "nodb" does not exist' \
  --settings.payment.store= --settings.payment.postgres="host=127.0.0.1 port=$pg_port user=rpcboot dbname=nodb"
psql "$dsn" -q -c "CREATE DATABASE other" && psql "${dsn/dbname=rpcboot/dbname=other}" -q -c "CREATE TABLE payments (id INTEGER)"
refused "cannot use table payments" \
  --settings.payment.store= --settings.payment.postgres="${dsn/dbname=rpcboot/dbname=other}"
[ "$(psql "${dsn/dbname=rpcboot/dbname=other}" -tAq -c "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'payments'")" = 1 ] ||
  fail "the other program's table payments was changed"
echo "bad settings refused at start: both stores, no server, a bad port, no database, a table of another shape"
echo "PASS: payment_postgres_test"
