#!/usr/bin/env bash
# `make run`: a local Redis and PostgreSQL under .data/run, migrations, demo accounts, one node on :8080.
set -euo pipefail
cd "$(dirname "$0")/.."
data=.data/run
REDIS_PORT=${REDIS_PORT:-6380}
PG_PORT=${PG_PORT:-5433}
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk
# One JWT secret per checkout, kept with the data so sessions survive a restart.
[ -f "$data/jwt-secret" ] || { head -c 32 /dev/urandom | base64 > "$data/jwt-secret"; chmod 600 "$data/jwt-secret"; }
export HELPDESK_REDIS_URL=${HELPDESK_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export HELPDESK_DATABASE_URL=${HELPDESK_DATABASE_URL:-postgresql://postgres@127.0.0.1:$PG_PORT/helpdesk}
export HELPDESK_JWT_SECRET=${HELPDESK_JWT_SECRET:-$(cat "$data/jwt-secret")}
export HELPDESK_PORT=${HELPDESK_PORT:-8080}
bin=.build/debug/helpdesk
$bin migrate
$bin demo-accounts | tee -a "$data/demo-accounts.txt"
echo "HelpDesk on http://127.0.0.1:$HELPDESK_PORT  (Ctrl-C stops the node; Redis and PostgreSQL keep running: make stop)"
exec $bin serve
