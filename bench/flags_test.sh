#!/usr/bin/env bash
# Every benchmark refuses a bad command line before it starts anything: exit status 2 and a line
# that names the flag. Each case below is a command line and a piece of the message it must give.
set -u
dir=${1:?usage: flags_test.sh <directory of the benchmark binaries>}
fail=0
expect() {  # $1: what the message must hold; the rest: the command line
  local want=$1 out rc
  shift
  out=$(timeout 20 "$dir/$1" "${@:2}" 2>&1 </dev/null)
  rc=$?
  if [ "$rc" -ne 2 ] || [[ "$out" != *"$want"* ]]; then
    echo "FAIL: $* -> exit $rc, wanted 2 and a message with '$want'; got:"
    echo "$out" | head -5 | sed 's/^/  /'
    fail=1
  else
    echo "ok: $* -> $(echo "$out" | head -1)"
  fi
}

expect "--seconds takes a number" rpc_bench --seconds=abc
expect "--callers takes a list" rpc_bench --callers=1,x
expect "--callers takes a list" rpc_bench --callers=
expect "unknown flag '--bogus'" rpc_bench --bogus
expect "--seconds takes a number" resilience_bench --seconds=0
expect "--callers takes a list" resilience_bench --callers=8,,64
expect "--parts takes words among" serving_bench --parts=bogus
expect "--idle takes a whole number" serving_bench --idle=-5
expect "--rounds takes a whole number" serving_bench --rounds=16
expect "--seconds takes a number" serving_bench --seconds=nan
expect "--watchers takes a whole number" fleet_bench --watchers=5x
expect "replace more than the 100 instances" fleet_bench --instances=100 --warmup=100
expect "unknown flag '--ensemble=1'" fleet_bench --ensemble=1
expect "--seconds takes a number" discovery_bench --seconds=1x
expect "--changes takes a whole number" discovery_bench --changes=5
expect "--calls takes a whole number" migration_bench --calls=abc
expect "unknown flag '--bogus'" migration_bench --bogus
if [ -x "$dir/order_bench" ]; then  # built with the samples (RPCBOOT_BUILD_SAMPLES)
  expect "--callers takes a list" order_bench --callers=0
  expect "--seconds takes a number" order_bench --seconds=100
fi
expect "unrecognized command-line flag: --bogus" codec_bench --bogus
exit $fail
