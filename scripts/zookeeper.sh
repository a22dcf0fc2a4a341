#!/usr/bin/env bash
# Starts and stops a local ZooKeeper server from Debian's jars, for tests and the demo.
#
#   scripts/zookeeper.sh start DIR [PORT]   start on 127.0.0.1:PORT (0 or absent: a free port);
#                                           prints "port=<port>" once it answers ruok with imok
#   scripts/zookeeper.sh stop DIR           stop the server started in DIR, by its pid
#   scripts/zookeeper.sh status DIR         exit 0 when it answers ruok
#
# DIR holds zoo.cfg, the data, zk.pid, zk.port and zk.log. Starting again in the same DIR keeps
# the data (restart tests). Needs the zookeeper package and a Java runtime (./scripts/setup.sh).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR | status DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2 port=${3:-0}

jars=/usr/share/java
classpath=$jars/zookeeper.jar:$jars/zookeeper-jute.jar:$jars/slf4j-api.jar:$jars/slf4j-simple.jar:$jars/metrics-core.jar:$jars/commons-io.jar

ruok() { [ "$(echo ruok | nc -w 2 127.0.0.1 "$1" 2>/dev/null)" = "imok" ]; }
# A busy machine can be slow to answer: a few tries before saying no.
ruok_retry() { for _ in 1 2 3; do ruok "$1" && return 0; sleep 0.2; done; return 1; }

case "$cmd" in
  start)
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -le 65535 ] || { echo "zookeeper.sh: port '$port' is not a number in 0-65535" >&2; exit 2; }
    for f in zookeeper.jar zookeeper-jute.jar slf4j-api.jar; do
      [ -f "$jars/$f" ] || { echo "zookeeper.sh: $jars/$f missing: apt-get install zookeeper (./scripts/setup.sh)" >&2; exit 1; }
    done
    command -v java >/dev/null || { echo "zookeeper.sh: java missing: apt-get install default-jre-headless" >&2; exit 1; }
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
      echo "zookeeper.sh: already running in $dir (pid $(cat "$dir/zk.pid"))" >&2; exit 1
    fi
    if [ "$port" = 0 ]; then
      port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    elif nc -z 127.0.0.1 "$port" 2>/dev/null; then
      echo "zookeeper.sh: port $port on 127.0.0.1 is already in use; stop what holds it or pick another port" >&2
      exit 1
    fi
    cat > "$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
minSessionTimeout=1000
maxSessionTimeout=30000
CFG
    java -Xmx128m -cp "$classpath" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
      > "$dir/zk.log" 2>&1 < /dev/null &
    echo $! > "$dir/zk.pid"
    echo "$port" > "$dir/zk.port"
    for _ in $(seq 150); do
      if ruok "$port"; then echo "port=$port"; exit 0; fi
      kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null || { tail -20 "$dir/zk.log" >&2; echo "zookeeper.sh: server exited" >&2; exit 1; }
      sleep 0.1
    done
    echo "zookeeper.sh: no imok from 127.0.0.1:$port after 15 s (log: $dir/zk.log)" >&2
    kill "$(cat "$dir/zk.pid")" 2>/dev/null || true
    exit 1
    ;;
  stop)
    [ -f "$dir/zk.pid" ] || exit 0
    pid=$(cat "$dir/zk.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/zk.pid"
    ;;
  status)
    [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null && ruok_retry "$(cat "$dir/zk.port")"
    ;;
  *) usage ;;
esac
