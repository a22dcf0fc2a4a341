#!/usr/bin/env bash
# The project's ZooKeeper script starts a real server on a free loopback port, reports a taken
# port clearly, and stops the server by its pid.
set -euo pipefail
script=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
trap '"$script" stop "$work/a" || true; "$script" stop "$work/b" || true' EXIT
out=$("$script" start "$work/a")
port=${out#port=}
imok=no
for _ in 1 2 3; do [ "$(echo ruok | nc -w 2 127.0.0.1 "$port")" = "imok" ] && { imok=yes; break; }; sleep 0.2; done
[ $imok = yes ] || { echo "FAIL: no imok on $port"; exit 1; }
"$script" status "$work/a" || { echo "FAIL: status"; exit 1; }
if msg=$("$script" start "$work/b" "$port" 2>&1); then echo "FAIL: a taken port must be refused"; exit 1; fi
[[ "$msg" == *"port $port on 127.0.0.1 is already in use"* ]] || { echo "FAIL: unclear message: $msg"; exit 1; }
pid=$(cat "$work/a/zk.pid")
"$script" stop "$work/a"
if kill -0 "$pid" 2>/dev/null; then echo "FAIL: server $pid still running"; exit 1; fi
if "$script" status "$work/a"; then echo "FAIL: still answering after stop"; exit 1; fi
# Restart in the same directory keeps the data directory and answers again.
out=$("$script" start "$work/a" "$port")
[ "${out#port=}" = "$port" ] || { echo "FAIL: restart on $port gave $out"; exit 1; }
"$script" stop "$work/a"
echo "OK: start, ruok, taken port refused, stop by pid, restart on the same port"
