#!/usr/bin/env bash
# The running samples, seen as an operator sees them: a real ZooKeeper, one shop and one order
# instance, the demo client's orders (some of which fail on purpose); then headless Chromium
# loads the order instance's status page and the test checks the DOM for the served methods,
# the shop instance its client sees and a failed call made just before, and saves a
# screenshot; Python's prometheus_client parses both instances' /metrics; and the rpcboot tool
# lists the registry, asks for health, describes and calls both services (shop over gRPC, the
# Thrift-only order over Thrift), with its bad input answered clearly.
#   operator_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v chromium >/dev/null ||
  { echo "FAIL: chromium is not installed (apt-get install chromium; ./scripts/setup.sh does)" >&2; exit 1; }
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
  { echo "FAIL: python3-prometheus-client is not installed (./scripts/setup.sh installs it)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
admin_port() { sed -n 's|.*admin: status page http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$1" | head -1; }

start_shop "$work/shop.log" --admin.port=0
start_payment "$work/payment.log"
start_sample order "$work/order.log" --settings.store.dir="$work/orders" --admin.port=0
shop_admin=$(admin_port "$work/shop.log")
order_admin=$(admin_port "$work/order.log")
[ -n "$shop_admin" ] && [ -n "$order_admin" ] || fail "no admin port in the logs"
shop_grpc=$(sed -n 's|.*gRPC listening on 127.0.0.1:\([0-9]*\).*|\1|p' "$work/shop.log" | head -1)

"$build/samples/demo_client" --zookeeper="$zk" --orders=6 --interval_ms=10 >"$work/client.out" 2>"$work/client.log" ||
  fail "demo client: $(tail -5 "$work/client.out")"

# The DOM after the page's script ran, then a screenshot for people.
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage
        --user-data-dir="$work/chrome" --window-size=1280,1800)
timeout 120 "${chrome[@]}" --dump-dom "http://127.0.0.1:$order_admin/" >"$work/order_dom.html" 2>"$work/chromium.log" ||
  fail "chromium could not load the status page"
dom="$work/order_dom.html"
check() { grep -q -- "$1" "$dom" || fail "status page DOM lacks $2 ($1)"; }
check '<h1 id="app">order' "the app's name"
check 'id="health">SERVING' "the health state"
check 'order.OrderService/PlaceOrder</td><td>thrift' "the served method PlaceOrder over Thrift"
check 'order.OrderService/GetOrder' "the served method GetOrder"
check 'shop.ShopService/GetShop' "the called method GetShop"
check "127.0.0.1:$shop_grpc</td><td class=\"ok\">healthy" "the shop instance the client sees, healthy"
check 'shop 3 (Night Grill) is closed' "the failed call made just before"
check 'FAILED_PRECONDITION' "the failed call's code"
check '/services/order/' "the registry node"
check '<td>order_placed_total</td><td>kind=pickup</td><td>counter</td><td class="n">3</td>' \
  "the order service's own metrics (rpcboot/metrics.h)"
timeout 120 "${chrome[@]}" --screenshot="$work/status_page.png" "http://127.0.0.1:$order_admin/" \
  >>"$work/chromium.log" 2>&1 || fail "chromium could not take a screenshot"
[ -s "$work/status_page.png" ] || fail "no screenshot"
echo "screenshot: $work/status_page.png"

# Both instances' metrics, read by the Prometheus project's own parser.
/usr/bin/python3 - "$order_admin" "$shop_admin" <<'EOF' || fail "metrics did not parse or count"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families

def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return {f.name: f for f in text_string_to_metric_families(r.read().decode())}

def value(families, family, sample, **labels):
    return sum(s.value for s in families[family].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))

def asked_of(order):
    return value(order, "rpcboot_client_handled", "rpcboot_client_handled_total",
                 service="shop.ShopService", method="GetShop")

def served_of(shop):
    return value(shop, "rpcboot_server_handled", "rpcboot_server_handled_total",
                 service="shop.ShopService", method="GetShop", protocol="grpc")

# The dispatcher asks shop for the orders that wait, once a round (every second): both sides
# are read between two rounds, when order's count is the same before and after shop's.
for _ in range(20):
    order, shop, order_after = scrape(sys.argv[1]), scrape(sys.argv[2]), scrape(sys.argv[1])
    if asked_of(order) == asked_of(order_after):
        break
# The demo placed 6 valid orders, retried one with its request_id (answered OK with the order
# already placed) and sent 6 invalid ones over Thrift; 5 of the invalid ones were refused by order
# itself after asking shop (closed shop, unknown item, wrong price, too far, and a card the
# payment service declined), one named no shop.
placed_ok = value(order, "rpcboot_server_handled", "rpcboot_server_handled_total",
                  method="PlaceOrder", protocol="thrift", code="OK")
placed_all = value(order, "rpcboot_server_handled", "rpcboot_server_handled_total",
                   method="PlaceOrder", protocol="thrift")
assert placed_ok == 7 and placed_all == 13, (placed_ok, placed_all)
# Each order placed held its total once, and the declined card was asked too.
holds = value(order, "rpcboot_client_handled", "rpcboot_client_handled_total",
              service="payment.PaymentService", method="Authorize")
assert holds == 7, holds
asked, served = asked_of(order), served_of(shop)
assert asked == served > 0, (asked, served)
assert order["rpcboot_server_handling_seconds"].type == "histogram"
# The order service's own metrics (rpcboot/metrics.h), beside rpcboot's: 3 delivered orders (no
# delivery instance here: they wait, and the client cancels one) and 3 pickups, collected.
assert value(order, "order_placed", "order_placed_total", kind="delivery") == 3
assert value(order, "order_placed", "order_placed_total", kind="pickup") == 3
assert value(order, "order_status_reached", "order_status_reached_total", status="picked_up") == 3
assert value(order, "order_status_reached", "order_status_reached_total", status="cancelled") == 1
assert order["order_waiting_for_courier"].type == "gauge"
assert value(order, "rpcboot_client_instances", "rpcboot_client_instances",
             service="shop.ShopService") == 1
print(f"metrics: order placed {placed_ok:.0f} of {placed_all:.0f}; "
      f"order asked shop {asked:.0f} times, shop served {served:.0f}")
EOF
# The rpcboot tool: ls and health through the registry, a server and an admin port.
cli="$build/cli/rpcboot"
expect() {  # expect STATUS TEXT -- ARGS...: the tool exits STATUS and says TEXT
  local want=$1 text=$2 rc=0
  shift 3
  "$cli" "$@" >"$work/cli.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "rpcboot $*: exit $rc, wanted $want: $(cat "$work/cli.out")"
  grep -q -- "$text" "$work/cli.out" || fail "rpcboot $*: no '$text' in: $(cat "$work/cli.out")"
}
expect 0 "grpc:$shop_grpc" -- ls "zk://$zk/services"
grep -q "^order .*thrift:.*UP" "$work/cli.out" || fail "ls: no order instance: $(cat "$work/cli.out")"
grep -q "^shop .*grpc:$shop_grpc .*UP .*no *1.0.0" "$work/cli.out" || fail "ls: shop line: $(cat "$work/cli.out")"
expect 0 "^shop " -- ls "zk://$zk/services/shop"
[ "$(grep -c '^shop ' "$work/cli.out")" = 1 ] || fail "ls of one app: $(cat "$work/cli.out")"
expect 0 "127.0.0.1:$shop_grpc: SERVING" -- health "127.0.0.1:$shop_grpc"
expect 0 "SERVING" -- health "127.0.0.1:$shop_grpc" shop.ShopService
expect 1 "SERVICE_UNKNOWN" -- health "127.0.0.1:$shop_grpc" nope.NopeService
expect 0 "at 127.0.0.1:$shop_grpc: SERVING" -- health "zk://$zk/services/shop" shop.ShopService
expect 1 "no gRPC port (Thrift only" -- health "zk://$zk/services/order"
expect 0 "SERVING (HTTP 200)" -- health "http://127.0.0.1:$order_admin"
# Bad input: a clear message and a non-zero exit, never a hang or a crash.
expect 2 "unknown command 'frob'" -- frob
# What the tool prints comes from registrations and servers: a registration carrying terminal
# escape sequences (retitle, clear, a C1 CSI) is printed with them escaped, never raw.
/usr/bin/python3 - "$zk" <<'EOF' || fail "could not register the hostile instance with kazoo"
import json, sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=10)
shop = zk.get_children("/services/shop")[0]
node = json.loads(zk.get("/services/shop/" + shop)[0])
node["name"] = "evil"
node["id"] = "\x1b]0;owned\x07\x1b[2J"
node["payload"]["metadata"]["instance_status"] = "UP\u009b31m"
zk.create("/services/evil/evil-1", json.dumps(node).encode(), makepath=True)
zk.stop()
EOF
expect 0 '\\u001b]0;owned\\u0007\\u001b\[2J' -- ls "zk://$zk/services/evil"
grep -q 'UP\\u009b31m' "$work/cli.out" || fail "ls: no escaped C1 in: $(cat "$work/cli.out")"
if LC_ALL=C grep -q "$(printf '[\033\007]')" "$work/cli.out"; then
  fail "ls wrote a raw escape: $(od -c "$work/cli.out")"
fi
expect 2 "ls reads a registry" -- ls "127.0.0.1:$shop_grpc"
expect 2 "not a number of ms" -- --timeout_ms=soon ls "zk://$zk/services"
expect 2 "'$work/no-such-file' cannot be read" -- --token_file="$work/no-such-file" ls "zk://$zk/services"
printf '\n' > "$work/empty.token"
expect 2 "has no token on its first line" -- --token_file="$work/empty.token" ls "zk://$zk/services"
# A device given as a file is read up to a bound, never until memory runs out.
expect 2 "'/dev/zero' is larger than 64 KiB" -- --token_file=/dev/zero ls "zk://$zk/services"
expect 2 "--tls_ca: '/dev/zero' is larger than 64 MiB" -- --tls_ca=/dev/zero health "127.0.0.1:$shop_grpc"
expect 2 "did not answer within 500 ms" -- --timeout_ms=500 ls "zk://127.0.0.1:1/services"
expect 1 "unreachable" -- --timeout_ms=500 health "127.0.0.1:1"
expect 2 "zk://" -- health "zk://$zk"
expect 2 "address 'http://127.0.0.1:99999': an admin port is http://HOST:PORT" -- health "http://127.0.0.1:99999"
expect 2 "an admin port is http://HOST:PORT" -- health "http://127.0.0.1:$order_admin/health"
# describe and call learn the service through gRPC server reflection: no .proto at hand.
expect 0 "rpc GetShop(shop.GetShopRequest) returns (shop.Shop)" -- describe "zk://$zk/services/shop"
grep -q "int64 shop_id = 1;" "$work/cli.out" || fail "describe: no GetShopRequest fields: $(cat "$work/cli.out")"
expect 0 "shop.ShopService (shop_service.proto)" -- describe "127.0.0.1:$shop_grpc" shop.ShopService
expect 1 "has no service nope.Nope (it serves: shop.ShopService" -- describe "127.0.0.1:$shop_grpc" nope.Nope
expect 0 '"name": "Noodle Bar"' -- call "zk://$zk/services/shop" shop.ShopService/GetShop '{"shop_id": 1}'
expect 0 '"price_cents": "650"' -- call "127.0.0.1:$shop_grpc" shop.ShopService/GetShop '{"shop_id": 1}'
expect 1 "NOT_FOUND: no shop 99" -- call "127.0.0.1:$shop_grpc" shop.ShopService/GetShop '{"shop_id": 99}'
expect 2 "has no method Nope (methods: GetShop, ListShops)" -- call "127.0.0.1:$shop_grpc" shop.ShopService/Nope '{}'
expect 2 "the JSON is not a shop.GetShopRequest" -- call "127.0.0.1:$shop_grpc" shop.ShopService/GetShop '{"shop_id": "x"}'
expect 2 "the JSON is not a shop.GetShopRequest" -- call "127.0.0.1:$shop_grpc" shop.ShopService/GetShop '{bad'
expect 2 "is not package.Service/Method" -- call "127.0.0.1:$shop_grpc" GetShop '{}'
expect 2 "did not answer" -- --timeout_ms=500 call "zk://127.0.0.1:1/services/shop" shop.ShopService/GetShop '{}'
# order serves Thrift only: through zk:// the tool takes its Thrift port and learns the schema
# from the server (rpcboot.ThriftReflection), or from the emitted <stem>.thrift.json.
expect 0 "order.OrderService (Thrift, from rpcboot.ThriftReflection" -- describe "zk://$zk/services/order"
grep -q "order.Order PlaceOrder(1: order.PlaceOrderRequest request)" "$work/cli.out" ||
  fail "describe over Thrift: no PlaceOrder: $(cat "$work/cli.out")"
expect 0 '"total_cents": 1300' -- call "zk://$zk/services/order" order.OrderService/PlaceOrder \
  '{"shop_id": 1, "customer": "cli", "lines": [{"item_id": 12, "quantity": 2, "unit_price_cents": 650}]}'
order_id=$(sed -n 's/.*"order_id": "\([^"]*\)".*/\1/p' "$work/cli.out")
[ -n "$order_id" ] || fail "PlaceOrder over Thrift: no order_id: $(cat "$work/cli.out")"
schema=$(find "$build/samples" -name order_service.thrift.json | head -1)
[ -n "$schema" ] || fail "no order_service.thrift.json in $build/samples"
expect 0 '"customer": "cli"' -- --schema="$schema" call "zk://$zk/services/order" \
  order.OrderService/GetOrder "{\"order_id\": \"$order_id\"}"
expect 1 "INVALID_ARGUMENT: an order needs lines" -- call "zk://$zk/services/order" \
  order.OrderService/PlaceOrder '{"shop_id": 1, "customer": "cli", "lines": []}'
expect 2 "quantity: \"two\" is not an i32" -- call "zk://$zk/services/order" \
  order.OrderService/PlaceOrder '{"shop_id": 1, "lines": [{"quantity": "two"}]}'
expect 2 "no UP instance with a gRPC port" -- --protocol=grpc call "zk://$zk/services/order" \
  order.OrderService/GetOrder '{}'
echo "rpcboot tool: OK"
echo "operator view end to end: OK"
