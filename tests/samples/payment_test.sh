#!/usr/bin/env bash
# Payments through the registry with the rpcboot tool: an order's total is held on the
# customer's card when it is placed (the payment service, over gRPC), captured when the order is
# delivered or collected and voided when it is cancelled; a card whose holds would pass the limit
# is declined and the order is not placed; while the payment service does not answer, an order
# is refused (nothing stays held: the hold it may have made is voided later) and the capture,
# void or refund of an order is kept on disk and made once it answers; a delivered order is
# refunded in part, once; payments survive a restart; a stock Python gRPC client from the
# emitted .proto calls the payment service; bad requests and bad settings are refused, naming
# what is wrong.
#   payment_test.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
command -v sqlite3 >/dev/null ||
  { echo "FAIL: the sqlite3 tool is not installed (apt-get install sqlite3; ./scripts/setup.sh does)" >&2; exit 1; }
source "$(dirname "$0")/samples_common.sh"
for tool in /usr/bin/grpc_python_plugin protoc; do
  command -v "$tool" >/dev/null || fail "$tool missing: run ./scripts/setup.sh"
done
store=$work/orders

start_shop "$work/shop.log"
start_sample delivery "$work/delivery.log" --settings.fleet.couriers=1 --settings.fleet.store=""
start_payment "$work/payment1.log" --settings.payment.hold_limit_cents=5000
start_order "$work/order.log"

# call OUT STATUS METHOD JSON [payment]: the tool calls order.OrderService/METHOD (or the payment
# service's), exits STATUS (0 or 1).
call() {
  local out=$1 want=$2 method=$3 rc=0 target="zk://$zk/services/order" service=order.OrderService
  [ "${5:-}" = payment ] && target="zk://$zk/services/payment" service=payment.PaymentService
  "$build/cli/rpcboot" --timeout_ms=10000 call "$target" "$service/$method" "$4" >"$work/$out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || fail "$method $4: exit $rc, wanted $want: $(cat "$work/$out")"
}
place() {  # OUT CUSTOMER QUANTITY [DELIVER_TO-JSON]: item 11 of shop 1; prints the order id
  call "$1" 0 PlaceOrder "{\"shop_id\": 1, \"customer\": \"$2\", \"lines\": [{\"item_id\": 11, \"quantity\": $3, \"unit_price_cents\": 1250}]${4:+, \"deliver_to\": $4}}"
  field "$1" order_id
}
payment_of() {  # ORDER-ID: the payment service's status for it (as gRPC's JSON names it)
  call pay.json 0 GetPayment "{\"order_id\": \"$1\"}" payment
  field pay.json status
}
money() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
orders_on_disk() { on_disk "SELECT COUNT(*) FROM orders" | awk '{n += $1} END {print n}'; }
wiener='{"street": "Wiener Str. 1", "point": {"lat": 52.498, "lng": 13.43}}'

# Order a: its total is held on c's card.
a=$(place a.json c 1 "$wiener")
[ "$(field a.json payment)" = kHeld ] || fail "order a holds no payment: $(cat "$work/a.json")"
total_a=$(field a.json total_cents)
[ "$(payment_of "$a")" = PAYMENT_STATUS_AUTHORIZED ] && [ "$(field pay.json amount_cents)" = "$total_a" ] &&
  [ "$(field pay.json customer)" = c ] || fail "the payment of a: $(cat "$work/pay.json")"

# b fits under c's limit of 50.00; x does not: declined, and neither an order nor a hold is kept.
b=$(place b.json c 2 "$wiener")
held=$((total_a + $(field b.json total_cents)))
before=$(orders_on_disk)
call x_declined.json 1 PlaceOrder "{\"shop_id\": 1, \"customer\": \"c\", \"lines\": [{\"item_id\": 11, \"quantity\": 1, \"unit_price_cents\": 1250}], \"deliver_to\": $wiener}"
says x_declined.json "FAILED_PRECONDITION: payment service: card of c declined: $(money $held) held already, and $(money "$total_a") more passes its limit of 50.00"
[ "$(orders_on_disk)" = "$before" ] || fail "a declined order was stored"
[ "$(sqlite3 "$work/payments.db" "SELECT COUNT(*) FROM payments")" = 2 ] || fail "a declined card kept a payment"
# Another customer's card is their own.
p=$(place p.json d 1)
[ "$(field p.json payment)" = kHeld ] || fail "pickup order p: $(cat "$work/p.json")"

# Cancelling b voids its hold, and c can order again.
call b_cancel.json 0 CancelOrder "{\"order_id\": \"$b\"}"
[ "$(field b_cancel.json payment)" = kVoided ] || fail "cancel b: $(cat "$work/b_cancel.json")"
[ "$(payment_of "$b")" = PAYMENT_STATUS_VOIDED ] || fail "the payment of b: $(cat "$work/pay.json")"
x=$(place x.json c 1 "$wiener")
[ "$(field x.json payment)" = kHeld ] || fail "c could not order after b was cancelled: $(cat "$work/x.json")"

# Delivered or collected: captured.
call a_picked.json 0 AdvanceOrder "{\"order_id\": \"$a\", \"status\": 1, \"by\": \"Ana\"}"
[ "$(field a_picked.json payment)" = kHeld ] || fail "picked up is not the end: $(cat "$work/a_picked.json")"
call a_done.json 0 AdvanceOrder "{\"order_id\": \"$a\", \"status\": 2, \"by\": \"Ana\"}"
[ "$(field a_done.json payment)" = kCaptured ] || fail "delivered a: $(cat "$work/a_done.json")"
[ "$(payment_of "$a")" = PAYMENT_STATUS_CAPTURED ] || fail "the payment of a: $(cat "$work/pay.json")"
call p_done.json 0 AdvanceOrder "{\"order_id\": \"$p\", \"status\": 1, \"by\": \"\"}"
[ "$(field p_done.json payment)" = kCaptured ] && [ "$(payment_of "$p")" = PAYMENT_STATUS_CAPTURED ] ||
  fail "collected p: $(cat "$work/p_done.json")"

# A refund of part of a delivered order, told to the payment service at once; the same refund
# again is answered as it is; another amount, too much, or an order not at its end is refused.
call a_refund.json 0 RefundOrder "{\"order_id\": \"$a\", \"amount_cents\": 500, \"reason\": \"cold noodles\"}"
[ "$(field a_refund.json payment)" = kRefunded ] && [ "$(field a_refund.json refunded_cents)" = 500 ] ||
  fail "refund of a: $(cat "$work/a_refund.json")"
[ "$(payment_of "$a")" = PAYMENT_STATUS_CAPTURED ] && [ "$(field pay.json refunded_cents)" = 500 ] ||
  fail "the payment of a after its refund: $(cat "$work/pay.json")"
says order.log "order: $a: 500 cents refunded (cold noodles)"
call a_now.json 0 GetOrder "{\"order_id\": \"$a\"}"
call a_refund2.json 0 RefundOrder "{\"order_id\": \"$a\", \"amount_cents\": 500}"
diff "$work/a_now.json" "$work/a_refund2.json" >/dev/null || fail "the same refund again changed a: $(cat "$work/a_refund2.json")"
call a_refund3.json 1 RefundOrder "{\"order_id\": \"$a\", \"amount_cents\": 600}"
says a_refund3.json "FAILED_PRECONDITION: order $a was refunded 500 cents already"
call x_refund.json 1 RefundOrder "{\"order_id\": \"$x\", \"amount_cents\": 1}"
says x_refund.json "FAILED_PRECONDITION: order $x is placed: only a delivered or collected order is refunded"
call p_refund.json 1 RefundOrder "{\"order_id\": \"$p\", \"amount_cents\": 999999}"
says p_refund.json "INVALID_ARGUMENT: amount_cents 999999 is not in 1..1250 (the order's total)"

# The payment service does not answer (SIGSTOP): a new order is refused and its possible hold is
# kept to void; cancelling x succeeds, its void kept on disk, and so does a refund of p; all are
# made once it answers.
kill -STOP "$payment_pid"
call y.json 1 PlaceOrder "{\"shop_id\": 1, \"customer\": \"c\", \"lines\": [{\"item_id\": 12, \"quantity\": 1, \"unit_price_cents\": 650}]}"
says y.json "UNAVAILABLE: payment service: "
says y.json "; the order is not placed"
y=$(sed -n 's/^order: \([^:]*\): hold not voided yet (the dispatcher tries again): .*/\1/p' "$work/order.log" | head -1)
[ -n "$y" ] || fail "the refused order's hold is not kept to void: $(tail -5 "$work/order.log")"
call x_cancel.json 0 CancelOrder "{\"order_id\": \"$x\"}"
[ "$(field x_cancel.json status)" = kCancelled ] && [ "$(field x_cancel.json payment)" = kHeld ] ||
  fail "cancel x while payment is stopped: $(cat "$work/x_cancel.json")"
call p_refund.json 0 RefundOrder "{\"order_id\": \"$p\", \"amount_cents\": 250}"
[ "$(field p_refund.json payment)" = kCaptured ] && [ "$(field p_refund.json refunded_cents)" = 250 ] ||
  fail "refund p while payment is stopped: $(cat "$work/p_refund.json")"
[ "$(on_disk "SELECT order_id, kind FROM settlements" | sort)" = "$(printf '%s|0\n%s|0\n%s|2' "$x" "$y" "$p" | sort)" ] ||
  fail "the voids and the refund are not kept on disk: $(on_disk "SELECT * FROM settlements")"
kill -CONT "$payment_pid"
for _ in $(seq 300); do [ -z "$(on_disk "SELECT order_id FROM settlements")" ] && break; sleep 0.1; done
[ -z "$(on_disk "SELECT order_id FROM settlements")" ] || fail "the voids were never made: $(on_disk "SELECT * FROM settlements")"
[ "$(payment_of "$x")" = PAYMENT_STATUS_VOIDED ] || fail "the payment of x: $(cat "$work/pay.json")"
[ "$(payment_of "$y")" = PAYMENT_STATUS_VOIDED ] || fail "the payment of the refused order: $(cat "$work/pay.json")"
call x_now.json 0 GetOrder "{\"order_id\": \"$x\"}"
[ "$(field x_now.json payment)" = kVoided ] || fail "order x after the void: $(cat "$work/x_now.json")"
call p_now.json 0 GetOrder "{\"order_id\": \"$p\"}"
[ "$(field p_now.json payment)" = kRefunded ] && [ "$(payment_of "$p")" = PAYMENT_STATUS_CAPTURED ] &&
  [ "$(field pay.json refunded_cents)" = 250 ] || fail "the refund of p was not made: $(cat "$work/pay.json")"
# A late Authorize of the refused order holds nothing.
call y_late.json 1 Authorize "{\"order_id\": \"$y\", \"customer\": \"c\", \"amount_cents\": 650}" payment
says y_late.json "FAILED_PRECONDITION: the payment of order $y was voided"

# Payments survive a restart of the payment service.
kill -TERM "$payment_pid"
wait "$payment_pid" || fail "payment did not exit 0 on SIGTERM"
start_payment "$work/payment2.log" --settings.payment.hold_limit_cents=5000
says payment2.log "payment: hold limit 50.00 a customer, 5 payments kept in $work/payments.db"
[ "$(payment_of "$a")" = PAYMENT_STATUS_CAPTURED ] || fail "the payment of a after a restart: $(cat "$work/pay.json")"
[ "$(sqlite3 "$work/payments.db" "SELECT status, amount_cents FROM payments WHERE order_id = '$a'")" = "1|$total_a" ] ||
  fail "the payment of a on disk"

# Requests the payment service refuses.
call bad1.json 1 Authorize "{\"order_id\": \"n1\", \"customer\": \"c\", \"amount_cents\": 0}" payment
says bad1.json "INVALID_ARGUMENT: amount_cents 0 is not in 1..1000000"
call bad2.json 1 Authorize "{\"order_id\": \"$(printf 'o%.0s' $(seq 129))\", \"customer\": \"c\", \"amount_cents\": 1}" payment
says bad2.json "INVALID_ARGUMENT: order_id is 129 bytes; 1 to 128"
call bad3.json 1 Authorize "{\"order_id\": \"n1\", \"customer\": \"\", \"amount_cents\": 1}" payment
says bad3.json "INVALID_ARGUMENT: customer is 0 bytes; 1 to 128"
call bad4.json 1 Authorize "{\"order_id\": \"$a\", \"customer\": \"c\", \"amount_cents\": 100}" payment
says bad4.json "INVALID_ARGUMENT: order $a was authorized for c and $(money "$total_a"), not for c and 1.00"
call bad5.json 1 Settle "{\"order_id\": \"$a\", \"capture\": false}" payment
says bad5.json "FAILED_PRECONDITION: the payment of order $a is captured: it cannot be voided"
call bad6.json 1 Settle "{\"order_id\": \"nobody\", \"capture\": true}" payment
says bad6.json "NOT_FOUND: no payment for order nobody"
call bad7.json 1 Refund "{\"order_id\": \"$b\", \"amount_cents\": 1}" payment
says bad7.json "FAILED_PRECONDITION: the payment of order $b is voided: only a captured payment is refunded"
call bad8.json 1 Refund "{\"order_id\": \"$a\", \"amount_cents\": $((total_a + 1))}" payment
says bad8.json "INVALID_ARGUMENT: amount_cents $((total_a + 1)) is not in 1..$total_a (what was captured)"
call again.json 0 Authorize "{\"order_id\": \"$a\", \"customer\": \"c\", \"amount_cents\": $total_a}" payment
[ "$(field again.json status)" = PAYMENT_STATUS_CAPTURED ] || fail "Authorize again is not answered as it is: $(cat "$work/again.json")"

# A stock Python gRPC client from the emitted payment_service.proto holds, reads and is declined.
mkdir -p "$work/gen"
protoc -I"$build/samples/payment_interface_rpcboot" --python_out="$work/gen" --grpc_out="$work/gen" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin payment_service.proto ||
  fail "protoc could not compile the emitted payment_service.proto"
payment_grpc=$(sed -n 's|.*gRPC listening on 127.0.0.1:\([0-9]*\).*|\1|p' "$work/payment2.log" | head -1)
/usr/bin/python3 - "$work/gen" "$payment_grpc" <<'PY' || fail "the stock Python client"
import sys
sys.path.insert(0, sys.argv[1])
import grpc
import payment_service_pb2 as pb, payment_service_pb2_grpc as rpc
stub = rpc.PaymentServiceStub(grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}"))
p = stub.Authorize(pb.AuthorizeRequest(order_id="py-1", customer="py", amount_cents=4000), timeout=10)
assert p.status == pb.PAYMENT_STATUS_AUTHORIZED and p.amount_cents == 4000, p
assert stub.GetPayment(pb.GetPaymentRequest(order_id="py-1"), timeout=10).customer == "py"
try:
    stub.Authorize(pb.AuthorizeRequest(order_id="py-2", customer="py", amount_cents=1001), timeout=10)
    raise SystemExit("a hold past the limit was made")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert e.details() == "card of py declined: 40.00 held already, and 10.01 more passes its limit of 50.00", e.details()
p = stub.Settle(pb.SettleRequest(order_id="py-1", capture=False), timeout=10)
assert p.status == pb.PAYMENT_STATUS_VOIDED, p
print("stock Python client: held, read, declined, voided")
PY

# Settings and stores that cannot be used stop the start (exit 2), naming them.
echo "not a database" >"$work/junk.db"
for bad in "--settings.payment.hold_limit_cents=0|payment: settings.payment.hold_limit_cents: '0' from command line --settings.payment.hold_limit_cents is not an integer in 1..100000000" \
           "--settings.payment.store=$work/junk.db|payment: settings.payment.store: $work/junk.db: is not an SQLite database it can use" \
           "--settings.payment.store=$work/payments.db|payment: settings.payment.store: $work/payments.db is in use by another payment process (pid $payment_pid): one process per payment store"; do
  rc=0
  "$build/samples/payment" --config="$src/samples/payment/payment.yaml" --registry.zookeeper="$zk" \
    "${bad%%|*}" >"$work/refused.out" 2>&1 || rc=$?
  [ $rc = 2 ] && grep -qF -- "${bad#*|}" "$work/refused.out" || fail "${bad%%|*}: exit $rc: $(cat "$work/refused.out")"
done
[ "$(cat "$work/junk.db")" = "not a database" ] || fail "a refused store was changed"
echo "payments: OK"
