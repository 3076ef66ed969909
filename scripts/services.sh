#!/usr/bin/env bash
# Starts or stops a private Redis and PostgreSQL for HelpDesk under a data directory, on loopback.
# Not the system services: each `make` target gets its own ports and data.
#   scripts/services.sh up   DIR REDIS_PORT PG_PORT DBNAME [test]
#   scripts/services.sh down DIR
set -euo pipefail
cmd=$1
dir=$(realpath -m "$2")
PGBIN=/usr/lib/postgresql/15/bin

# PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

up() {
  local rport=$1 pport=$2 db=$3 mode=${4:-}
  mkdir -p "$dir/redis" "$dir/pg" "$dir/pg-run"
  if ! redis-cli -p "$rport" ping >/dev/null 2>&1; then
    local persist=(--appendonly yes --appendfsync everysec)
    [ "$mode" = test ] && persist=(--appendonly no)
    redis-server --bind 127.0.0.1 --port "$rport" --dir "$dir/redis" --daemonize yes --save '' \
      "${persist[@]}" --maxmemory-policy noeviction \
      --logfile "$dir/redis/redis.log" --pidfile "$dir/redis/redis.pid"
  fi
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    chown postgres "$dir/pg" "$dir/pg-run"
  fi
  chmod 700 "$dir/pg"
  if [ ! -f "$dir/pg/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1; then
    local opts="-p $pport -k $dir/pg-run -c listen_addresses=127.0.0.1 -c max_connections=400"
    [ "$mode" = test ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    as_pg "$PGBIN/pg_ctl" -D "$dir/pg" -l "$dir/pg-run/postgres.log" -w -o "$opts" start >/dev/null
  fi
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if ! psql -h 127.0.0.1 -p "$pport" -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql -h 127.0.0.1 -p "$pport" -U postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

down() {
  [ -f "$dir/redis/redis.pid" ] && kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
  if [ -f "$dir/pg/PG_VERSION" ]; then as_pg "$PGBIN/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true; fi
}

case "$cmd" in
  up) shift 2; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up|down DIR ..." >&2; exit 2 ;;
esac
