#!/usr/bin/env bash
# `make bench`: release build, a private Redis + PostgreSQL under .data/bench, two nodes
# (customers on :8081, agents on :8082), then `helpdesk-bench relay` with the given arguments.
#   scripts/bench.sh [--conversations N] [--rate R] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/.."
data=.data/bench
REDIS_PORT=6392
PG_PORT=5492
swift build -c release --product helpdesk
swift build -c release --product helpdesk-bench
bin=$(swift build -c release --show-bin-path)
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk
export HELPDESK_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export HELPDESK_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/helpdesk
export HELPDESK_JWT_SECRET=bench-secret-0123456789abcdef
export HELPDESK_START_LIMIT_PER_IP=1000000
export HELPDESK_LOG_LEVEL=warning
export HELPDESK_KEY_PREFIX="hd:{bench$(date +%s)}:"
"$bin/helpdesk" migrate >/dev/null
"$bin/helpdesk" user create --email bench-admin@example.com --name "Bench Admin" --password bench-admin-password --role admin >/dev/null 2>&1 || true
HELPDESK_NODE_ID=bench-a "$bin/helpdesk" serve --port 8081 & a=$!
HELPDESK_NODE_ID=bench-b "$bin/helpdesk" serve --port 8082 & b=$!
trap 'kill $a $b 2>/dev/null; wait $a $b 2>/dev/null; scripts/services.sh down "$data"' EXIT
for port in 8081 8082; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
"$bin/helpdesk-bench" relay --customer-node http://127.0.0.1:8081 --agent-node http://127.0.0.1:8082 \
  --admin-email bench-admin@example.com --admin-password bench-admin-password "$@"
