#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster from Debian's packages, for tests and samples.
#
#   scripts/postgres.sh start DIR [PORT]   create the cluster in DIR/data (the first time) and
#                                          start it on 127.0.0.1:PORT (0 or absent: a free
#                                          port), with a database "rpcboot"; prints "port=<port>"
#                                          and "dsn=<libpq connection string>" once it accepts
#                                          connections
#   scripts/postgres.sh stop DIR           stop the server started in DIR (pg_ctl, then its pid)
#   scripts/postgres.sh remove DIR         stop it and remove its cluster when it lives under /tmp
#   scripts/postgres.sh status DIR         exit 0 when it accepts connections
#
# PostgreSQL refuses to run as root: started by root, the cluster runs as the system user
# rpcboot-pg (created here when missing), and DIR is given to it; when that user cannot reach DIR
# (a checkout under /root), the cluster lives in a directory of its own under /tmp instead, named
# in DIR/pg.base and removed by stop. Connections from 127.0.0.1 are
# trusted (user "rpcboot"): a test cluster, never a server to keep data in. Starting again in the
# same DIR keeps the data. Needs the postgresql package (./scripts/setup.sh).
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR | remove DIR | status DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2 port=${3:-0}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
check_install() {
  [ -n "$bin" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] ||
    { echo "postgres.sh: no PostgreSQL server in /usr/lib/postgresql: apt-get install postgresql (./scripts/setup.sh)" >&2; exit 1; }
  command -v psql >/dev/null ||
    { echo "postgres.sh: psql missing: apt-get install postgresql-client" >&2; exit 1; }
}

# Runs a command as the cluster's owner: rpcboot-pg under root, the caller otherwise.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u rpcboot-pg -- "$@"
  else
    "$@"
  fi
}

accepts() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2; }

# Where the cluster lives: DIR, or the directory DIR/pg.base names.
base_of() { if [ -f "$1/pg.base" ]; then cat "$1/pg.base"; else echo "$1"; fi; }

case "$cmd" in
  start)
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -le 65535 ] || { echo "postgres.sh: port '$port' is not a number in 0-65535" >&2; exit 2; }
    check_install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    base=$(base_of "$dir")
    if [ -f "$base/data/postmaster.pid" ] && kill -0 "$(head -1 "$base/data/postmaster.pid")" 2>/dev/null; then
      echo "postgres.sh: already running in $base (pid $(head -1 "$base/data/postmaster.pid"))" >&2; exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
      id rpcboot-pg >/dev/null 2>&1 ||
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rpcboot-pg
      if [ "$base" = "$dir" ] && ! runuser -u rpcboot-pg -- test -x "$dir/.."; then
        base=$(mktemp -d /tmp/rpcboot-pg.XXXXXX)
        chmod 755 "$base"
        echo "$base" > "$dir/pg.base"
      fi
      chown -R rpcboot-pg "$base"
    fi
    if [ ! -f "$base/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$base/data" -U rpcboot --auth=trust --no-sync -E UTF8 \
        >"$base/initdb.log" 2>&1 || { tail -20 "$base/initdb.log" >&2; echo "postgres.sh: initdb failed in $base/data" >&2; exit 1; }
    fi
    if [ "$port" = 0 ]; then
      port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    elif nc -z 127.0.0.1 "$port" 2>/dev/null; then
      echo "postgres.sh: port $port on 127.0.0.1 is already in use; stop what holds it or pick another port" >&2
      exit 1
    fi
    echo "$port" > "$dir/pg.port"
    # The socket directory is the cluster's own, not /var/run/postgresql (root's, and shared).
    as_owner "$bin/pg_ctl" -D "$base/data" -l "$base/pg.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c fsync=off -c max_connections=200" start >/dev/null ||
      { tail -20 "$base/pg.log" >&2; echo "postgres.sh: the server in $base did not start (log: $base/pg.log)" >&2; exit 1; }
    for _ in $(seq 100); do accepts "$port" && break; sleep 0.1; done
    accepts "$port" || { echo "postgres.sh: 127.0.0.1:$port does not accept connections (log: $base/pg.log)" >&2; exit 1; }
    if ! psql -h 127.0.0.1 -p "$port" -U rpcboot -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'rpcboot'" | grep -q 1; then
      psql -q -h 127.0.0.1 -p "$port" -U rpcboot -d postgres -c "CREATE DATABASE rpcboot" >/dev/null
    fi
    echo "port=$port"
    echo "dsn=host=127.0.0.1 port=$port dbname=rpcboot user=rpcboot"
    ;;
  stop)
    base=$(base_of "$dir")
    if [ -f "$base/data/postmaster.pid" ]; then
      check_install
      pid=$(head -1 "$base/data/postmaster.pid")
      as_owner "$bin/pg_ctl" -D "$base/data" -m fast -w -t 10 stop >/dev/null 2>&1 || true
      if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$base/data/postmaster.pid"
      fi
    fi
    ;;
  remove)  # stop, then remove a cluster kept under /tmp (DIR/pg.base)
    "$0" stop "$dir"
    if [ -f "$dir/pg.base" ]; then
      case "$(cat "$dir/pg.base")" in /tmp/rpcboot-pg.*) rm -rf "$(cat "$dir/pg.base")" ;; esac
      rm -f "$dir/pg.base"
    fi
    ;;
  status)
    check_install
    [ -f "$dir/pg.port" ] && accepts "$(cat "$dir/pg.port")"
    ;;
  *) usage ;;
esac
