#!/usr/bin/env bash
# Starts and stops a local ZooKeeper server from Debian's jars, for tests and the demo.
#
#   scripts/zookeeper.sh start DIR [PORT]   start on 127.0.0.1:PORT (0 or absent: a free port);
#                                           prints "port=<port>" once it answers ruok with imok
#                                           and serves requests
#   scripts/zookeeper.sh stop DIR           stop the server started in DIR, by its pid
#   scripts/zookeeper.sh status DIR         exit 0 when it answers ruok
#   scripts/zookeeper.sh ensemble DIR       start a 3-node ensemble on 127.0.0.1 in DIR/1..3
#                                           (free ports); prints "connect=h:p,h:p,h:p" once a
#                                           leader serves; stop or restart members with
#                                           "stop DIR/N" and "start DIR/N"
#   scripts/zookeeper.sh mode DIR           prints leader, follower or standalone
#
# DIR holds zoo.cfg, the data, zk.pid, zk.port and zk.log. Starting again in the same DIR keeps
# the data (restart tests). Needs the zookeeper package and a Java runtime (./scripts/setup.sh).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR | status DIR | ensemble DIR | mode DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2 port=${3:-0}

jars=/usr/share/java
classpath=$jars/zookeeper.jar:$jars/zookeeper-jute.jar:$jars/slf4j-api.jar:$jars/slf4j-simple.jar:$jars/metrics-core.jar:$jars/commons-io.jar

ruok() { [ "$(echo ruok | nc -w 2 127.0.0.1 "$1" 2>/dev/null)" = "imok" ]; }
# A busy machine can be slow to answer: a few tries before saying no.
ruok_retry() { for _ in 1 2 3; do ruok "$1" && return 0; sleep 0.2; done; return 1; }

check_install() {
  for f in zookeeper.jar zookeeper-jute.jar slf4j-api.jar; do
    [ -f "$jars/$f" ] || { echo "zookeeper.sh: $jars/$f missing: apt-get install zookeeper (./scripts/setup.sh)" >&2; exit 1; }
  done
  command -v java >/dev/null || { echo "zookeeper.sh: java missing: apt-get install default-jre-headless" >&2; exit 1; }
}

# "leader", "follower", "standalone", or nothing when the server does not serve.
mode_of() { echo srvr | nc -w 2 127.0.0.1 "$1" 2>/dev/null | sed -n 's/^Mode: //p'; }

write_cfg() {  # DIR CLIENT_PORT
  cat > "$1/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$1/data
clientPort=$2
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
minSessionTimeout=1000
maxSessionTimeout=30000
# Every test client connects from 127.0.0.1: no cap per address (the default is 60).
maxClientCnxns=0
CFG
}

start_java() {  # DIR MAIN_CLASS
  # Empty container nodes go after a second, not a minute (tests watch for it).
  java -Xmx128m -Dznode.container.checkIntervalMs=1000 -cp "$classpath" "$2" "$1/zoo.cfg" > "$1/zk.log" 2>&1 < /dev/null &
  echo $! > "$1/zk.pid"
}

wait_ruok() {  # DIR PORT: until it answers ruok and serves requests (srvr shows a mode)
  for _ in $(seq 150); do
    if ruok "$2" && [ -n "$(mode_of "$2")" ]; then echo "port=$2"; return 0; fi
    kill -0 "$(cat "$1/zk.pid")" 2>/dev/null || { tail -20 "$1/zk.log" >&2; echo "zookeeper.sh: server exited" >&2; return 1; }
    sleep 0.1
  done
  echo "zookeeper.sh: no imok from 127.0.0.1:$2 after 15 s (log: $1/zk.log)" >&2
  kill "$(cat "$1/zk.pid")" 2>/dev/null || true
  return 1
}

case "$cmd" in
  start)
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -le 65535 ] || { echo "zookeeper.sh: port '$port' is not a number in 0-65535" >&2; exit 2; }
    check_install
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/zk.pid" ] && kill -0 "$(cat "$dir/zk.pid")" 2>/dev/null; then
      echo "zookeeper.sh: already running in $dir (pid $(cat "$dir/zk.pid"))" >&2; exit 1
    fi
    if [ -f "$dir/myid" ]; then
      start_java "$dir" org.apache.zookeeper.server.quorum.QuorumPeerMain
      wait_ruok "$dir" "$(cat "$dir/zk.port")"
      exit $?
    fi
    if [ "$port" = 0 ]; then
      port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    elif nc -z 127.0.0.1 "$port" 2>/dev/null; then
      echo "zookeeper.sh: port $port on 127.0.0.1 is already in use; stop what holds it or pick another port" >&2
      exit 1
    fi
    write_cfg "$dir" "$port"
    echo "$port" > "$dir/zk.port"
    start_java "$dir" org.apache.zookeeper.server.ZooKeeperServerMain
    wait_ruok "$dir" "$port"
    ;;
  ensemble)
    check_install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    ports=$(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
    read -r -a p <<< "$ports"
    connect=""
    for n in 1 2 3; do
      node=$dir/$n
      if [ -f "$node/zk.pid" ] && kill -0 "$(cat "$node/zk.pid")" 2>/dev/null; then
        echo "zookeeper.sh: already running in $node (pid $(cat "$node/zk.pid"))" >&2; exit 1
      fi
      mkdir -p "$node/data"
      echo "$n" > "$node/data/myid"
      echo "$n" > "$node/myid"
      client=${p[$(( (n - 1) * 3 ))]}
      echo "$client" > "$node/zk.port"
      write_cfg "$node" "$client"
      for m in 1 2 3; do
        echo "server.$m=127.0.0.1:${p[$(( (m - 1) * 3 + 1 ))]}:${p[$(( (m - 1) * 3 + 2 ))]}" >> "$node/zoo.cfg"
      done
      connect=$connect${connect:+,}127.0.0.1:$client
    done
    for n in 1 2 3; do start_java "$dir/$n" org.apache.zookeeper.server.quorum.QuorumPeerMain; done
    for _ in $(seq 300); do
      serving=0
      for n in 1 2 3; do
        mode_of "$(cat "$dir/$n/zk.port")" | grep -qE 'leader|follower' && serving=$((serving + 1))
      done
      if [ "$serving" = 3 ]; then echo "connect=$connect"; exit 0; fi
      sleep 0.1
    done
    echo "zookeeper.sh: the ensemble in $dir did not elect a leader within 30 s (logs: $dir/*/zk.log)" >&2
    for n in 1 2 3; do "$0" stop "$dir/$n"; done
    exit 1
    ;;
  mode)
    [ -f "$dir/zk.port" ] || { echo "zookeeper.sh: no server in $dir" >&2; exit 1; }
    mode_of "$(cat "$dir/zk.port")"
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
