#!/usr/bin/env bash
# The yardstick: `helpdesk-bench relay` against two plain Python relays (tests/bench/python_relay.py:
# aiohttp + redis-py, XADD + PUBLISH per message) on the private Redis of `make bench`, at the
# maximum (closed loop) and at half of it, with the same CPU accounting as for the real nodes.
#   scripts/bench-python-relay.sh [extra relay options]
set -euo pipefail
cd "$(dirname "$0")/.."
data=.data/bench
REDIS_PORT=${BENCH_REDIS_PORT:-6393}
PG_PORT=${BENCH_PG_PORT:-5493}
PORT_A=${BENCH_PORT_A:-8181}
PORT_B=${BENCH_PORT_B:-8182}
CONVERSATIONS=${BENCH_CONVERSATIONS:-50}
DURATION=${BENCH_DURATION:-10}
venv=.build/bench-venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q aiohttp redis; }
swift build -c release --product helpdesk-bench
bin=$(swift build -c release --show-bin-path)
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk
redis_pid=$(cat "$data/redis/redis.pid")
"$venv/bin/python" tests/bench/python_relay.py --port "$PORT_A" --redis "redis://127.0.0.1:$REDIS_PORT" & a=$!
"$venv/bin/python" tests/bench/python_relay.py --port "$PORT_B" --redis "redis://127.0.0.1:$REDIS_PORT" & b=$!
trap 'kill $a $b 2>/dev/null; wait $a $b 2>/dev/null; scripts/services.sh down "$data"' EXIT
for port in "$PORT_A" "$PORT_B"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
relay() {
  "$bin/helpdesk-bench" relay --customer-node "http://127.0.0.1:$PORT_A" --agent-node "http://127.0.0.1:$PORT_B" \
    --admin-email x@example.com --admin-password x --node-pid "$a" --node-pid "$b" --redis-pid "$redis_pid" \
    --conversations "$CONVERSATIONS" --duration "$DURATION" "$@"
}
out=$(relay --max --label python-max "$@" | tee /dev/stderr)
max=$(echo "$out" | grep '^summary' | tr ' ' '\n' | awk -F= '$1 == "delivered_per_s" {print $2}')
relay --rate "$(awk -v m="$max" -v n="$CONVERSATIONS" 'BEGIN {printf "%.2f", m / 2 / n}')" --label python-half "$@"
