# Sourced by the samples' end-to-end scripts after `src`, `build` and `work` are set: a fresh
# WORK_DIR, a real ZooKeeper on a free port ($zk), processes started in the background stopped
# by pid on exit (add each to `pids`), fail() that shows the tail of every log,
# wait_registered LOG (an instance's "registry: registered" line), and start_sample, start_shop,
# start_order and start_payment (below).
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  "$src/scripts/zookeeper.sh" stop "$work/zk" || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -15 "$f" >&2; done; exit 1; }

port=$("$src/scripts/zookeeper.sh" start "$work/zk" | sed -n 's/^port=//p')
zk=127.0.0.1:$port
wait_registered() {
  for _ in $(seq 150); do grep -q "registry: registered" "$1" && return 0; sleep 0.1; done
  fail "$1 never registered"
}
# The rpcboot tool's replies, read by the sample tests (each defines `call OUT STATUS METHOD JSON`,
# which writes the reply to $work/OUT):
says() {  # OUT TEXT: the output holds TEXT
  grep -qF -- "$2" "$work/$1" || fail "no '$2' in $1: $(cat "$work/$1")"
}
field() {  # OUT NAME: a top-level string, number or boolean field of a reply (the first)
  sed -n "s/^ *\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$work/$1" | head -1
}
courier_of() { call courier.json 0 GetOrder "{\"order_id\": \"$1\"}"; field courier.json courier; }
wait_courier() {  # ORDER-ID NAME: until the dispatcher has given the order that courier
  for _ in $(seq 200); do [ "$(courier_of "$1")" = "$2" ] && return 0; sleep 0.1; done
  fail "order $1 never got courier $2: $(cat "$work/courier.json")"
}
on_disk() {  # SQL: its rows over every shard file of the order store in $store
  for f in "$store"/shard-*.db; do sqlite3 "$f" "$1"; done
}
# start_sample NAME LOG [FLAGS...]: an instance of samples/NAME with its own config, registered
# in this test's ZooKeeper; sets sample_pid.
start_sample() {
  local name=$1 log=$2
  shift 2
  "$build/samples/$name" --config="$src/samples/$name/$name.yaml" --registry.zookeeper="$zk" "$@" \
    >"$log" 2>&1 &
  sample_pid=$!
  pids+=($sample_pid)
  wait_registered "$log"
}
# start_shop LOG [FLAGS...]: a shop instance; sets shop_pid.
start_shop() {
  start_sample shop "$@"
  shop_pid=$sample_pid
}
# start_order LOG [FLAGS...]: an order instance on the store in $store, its dispatcher every
# 100 ms; sets order_pid.
start_order() {
  local log=$1
  shift
  start_sample order "$log" --settings.store.dir="$store" --settings.delivery.dispatch_ms=100 "$@"
  order_pid=$sample_pid
}
# start_payment LOG [FLAGS...]: a payment instance keeping its holds in $work/payments.db (the
# order service holds every order's total through it); sets payment_pid.
start_payment() {
  local log=$1
  shift
  start_sample payment "$log" --settings.payment.store="$work/payments.db" "$@"
  payment_pid=$sample_pid
}
