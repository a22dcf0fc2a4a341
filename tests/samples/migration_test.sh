#!/usr/bin/env bash
# The order sample moves from its in-process shop catalog to the shop service through its flag
# node, as ./demo.sh shows it: local, shadow (the one item name the two catalogs disagree on is
# reported, field named), percent:50 (exactly half the shop checks remote), remote, then a
# rollback to local and `clear` (back to order.yaml's remote). No order fails at any step.
#   migration_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
source "$(dirname "$0")/samples_common.sh"
tool=$build/cli/rpcboot

start_shop "$work/shop.log"
# Delivered orders never end in this test (no delivery instance), so the holds only grow: a limit
# above them (at most 10 orders of 46.00 a customer), below the demo's big spender (1,250.00).
start_payment "$work/payment.log" --settings.payment.hold_limit_cents=100000
"$tool" flag "zk://$zk" order shop.ShopService local >"$work/flag.out" || fail "rpcboot flag"
start_sample order "$work/order.log" --settings.store.dir="$work/orders"
grep -q "migration mode remote -> local (flag /rpcboot/migration/order/shop.ShopService version 0)" \
  "$work/order.log" || fail "order did not start on the flag's mode"

# Switches the flag and waits for order's log to report the switch.
switch() {  # VALUE MODE_AS_LOGGED
  "$tool" flag "zk://$zk" order shop.ShopService "$1" >>"$work/flag.out" || fail "rpcboot flag $1"
  for _ in $(seq 100); do grep -q "migration mode .* -> $2 " "$work/order.log" && return 0; sleep 0.1; done
  fail "order did not switch to $2"
}
# Places 8 orders; prints how many each side checked.
orders() {  # STEP
  "$build/samples/demo_client" --zookeeper="$zk" --orders=8 --interval_ms=0 >"$work/$1.out" 2>&1 ||
    { cat "$work/$1.out"; fail "orders failed in step $1"; }
  local_n=$(grep -c "checked by order (in-process catalog)" "$work/$1.out" || true)
  remote_n=$(grep -c "checked by shop@" "$work/$1.out" || true)
  echo "$1: $local_n in-process, $remote_n shop service"
}

orders local
[ "$local_n" = 8 ] && [ "$remote_n" = 0 ] || fail "local: $local_n/$remote_n"
switch shadow shadow:local
orders shadow
[ "$local_n" = 8 ] && [ "$remote_n" = 0 ] || fail "shadow (local answers): $local_n/$remote_n"
for _ in $(seq 50); do grep -q "shadow mismatch" "$work/order.log" && break; sleep 0.1; done
grep -q 'shadow mismatch #1 in shop.ShopService/GetShop (local vs remote): menu\[2\].name: "tea" vs "green tea"' \
  "$work/order.log" || fail "the shadow mismatch was not reported with its field"
grep "shadow mismatch" "$work/order.log" | grep -q served_by && fail "served_by is ignored, yet reported"
switch percent:50 percent:50
orders percent
[ "$local_n" = 4 ] && [ "$remote_n" = 4 ] || fail "percent:50: $local_n/$remote_n"
switch remote remote
orders remote
[ "$local_n" = 0 ] && [ "$remote_n" = 8 ] || fail "remote: $local_n/$remote_n"
switch local local
orders rollback
[ "$local_n" = 8 ] || fail "rollback: $local_n/$remote_n"
"$tool" flag "zk://$zk" order shop.ShopService clear >>"$work/flag.out" || fail "rpcboot flag clear"
for _ in $(seq 100); do grep -q "deleted: the configured mode" "$work/order.log" && break; sleep 0.1; done
grep -q "migration mode local -> remote (flag /rpcboot/migration/order/shop.ShopService deleted" \
  "$work/order.log" || fail "clear did not bring back order.yaml's remote"
echo "order sample migration local -> shadow -> percent:50 -> remote -> local -> clear: OK"
