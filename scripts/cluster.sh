#!/usr/bin/env bash
# `make cluster`: the Redis and PostgreSQL of `make run`, three nodes on 8081-8083 and Debian's
# nginx on :8080 in front (deploy/nginx.conf). Ctrl-C stops nodes and nginx; `make stop` the databases.
set -euo pipefail
cd "$(dirname "$0")/.."
data=.data/run
cluster=.data/cluster
REDIS_PORT=${REDIS_PORT:-6380}
PG_PORT=${PG_PORT:-5433}
mkdir -p "$cluster"
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk
[ -f "$data/jwt-secret" ] || { head -c 32 /dev/urandom | base64 > "$data/jwt-secret"; chmod 600 "$data/jwt-secret"; }
export HELPDESK_REDIS_URL=${HELPDESK_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export HELPDESK_DATABASE_URL=${HELPDESK_DATABASE_URL:-postgresql://postgres@127.0.0.1:$PG_PORT/helpdesk}
export HELPDESK_JWT_SECRET=${HELPDESK_JWT_SECRET:-$(cat "$data/jwt-secret")}
export HELPDESK_TRUST_PROXY=true
bin=.build/debug/helpdesk
$bin migrate
$bin demo-accounts | tee -a "$data/demo-accounts.txt"

pids=()
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  nginx -c "$PWD/$cluster/nginx.conf" -p "$PWD/$cluster" -s quit 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM
for i in 1 2 3; do
  HELPDESK_NODE_ID="node$i" $bin serve --port "808$i" >"$cluster/node$i.log" 2>&1 &
  pids+=($!)
done
# deploy/nginx.conf with this checkout's paths for pid, logs and temp files.
sed -e "s#^pid .*#pid $PWD/$cluster/nginx.pid;#" \
    -e "s#error_log .*#error_log $PWD/$cluster/nginx-error.log warn;#" \
    -e "s#^http {#http {\n    client_body_temp_path $PWD/$cluster/tmp-body;\n    proxy_temp_path $PWD/$cluster/tmp-proxy;#" \
    deploy/nginx.conf > "$cluster/nginx.conf"
nginx -c "$PWD/$cluster/nginx.conf" -p "$PWD/$cluster" -e "$PWD/$cluster/nginx-error.log"
for port in 8081 8082 8083; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
echo "HelpDesk cluster on http://127.0.0.1:8080 (nodes :8081-:8083, logs in $cluster). Ctrl-C stops it."
wait "${pids[@]}"
