#!/usr/bin/env bash
# `make bench`: release build, a private Redis + PostgreSQL under .data/bench, two nodes
# (:8181 customers, :8182 agents), then every bench, each against freshly started nodes with
# their own key prefix, and a summary table:
#   relay at its maximum (closed loop), relay at half that rate, conns (idle sockets' RSS),
#   pick (racing agents), and Redis's own ceilings (scripts/bench-ceilings.sh, scripts/bench-send.sh).
# With arguments, only the relay runs, with those arguments added (CPU pids are passed for you):
#   scripts/bench.sh --conversations 50 --rate 10 --duration 10
#   make bench ARGS="--max --conversations 50"
# Then pick.lua's ceiling (helpdesk-bench pick-ceiling) and the flush (helpdesk-bench flush).
# Environment: BENCH_REDIS_PORT (6393), BENCH_PG_PORT (5493), BENCH_PORT_A/B (8181/8182),
#   BENCH_CONVERSATIONS (50), BENCH_DURATION (10), BENCH_SOCKETS (10000), BENCH_CUSTOMERS (2000), BENCH_AGENTS (40),
#   BENCH_RELAY_RUNS (5: runs of each relay bench; the summary takes the median), BENCH_HELPDESK and BENCH_LUA_DIR (below).
set -euo pipefail
cd "$(dirname "$0")/.."
data=.data/bench
REDIS_PORT=${BENCH_REDIS_PORT:-6393}
PG_PORT=${BENCH_PG_PORT:-5493}
PORT_A=${BENCH_PORT_A:-8181}
PORT_B=${BENCH_PORT_B:-8182}
CONVERSATIONS=${BENCH_CONVERSATIONS:-50}
DURATION=${BENCH_DURATION:-10}
SOCKETS=${BENCH_SOCKETS:-10000}
CUSTOMERS=${BENCH_CUSTOMERS:-2000}
AGENTS=${BENCH_AGENTS:-40}
RUNS=${BENCH_RELAY_RUNS:-5}

swift build -c release --product helpdesk
swift build -c release --product helpdesk-bench
bin=$(swift build -c release --show-bin-path)
# BENCH_HELPDESK: another build's `helpdesk` for the nodes, BENCH_LUA_DIR: another lua/ for them
# (an A/B against a saved binary and its scripts, or a Lua variant: a copy of lua/ whose LAYOUT
# matches the binary's, or the nodes refuse to start). Only the nodes take them: the
# ceilings and the other benches use this build and lua/.
node_bin=${BENCH_HELPDESK:-$bin/helpdesk}
node_lua=${BENCH_LUA_DIR:-${HELPDESK_LUA_DIR:-$PWD/lua}}
mkdir -p "$data"
# Disposable data: Redis without persistence (a leftover append-only file would make Redis answer
# LOADING for a while), PostgreSQL without fsync (as the test services).
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk test
redis_pid=$(cat "$data/redis/redis.pid")
export HELPDESK_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export HELPDESK_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/helpdesk
export HELPDESK_JWT_SECRET=bench-secret-0123456789abcdef
export HELPDESK_START_LIMIT_PER_IP=1000000
export HELPDESK_MAX_SOCKETS_PER_IP=1000000
export HELPDESK_MAX_SOCKETS_PER_USER=1000000
# The relay at its maximum sends far faster than a person: lift the per-socket message limit.
export HELPDESK_SOCKET_MESSAGE_RATE=1000000
export HELPDESK_SOCKET_MESSAGE_BURST=1000000
# The pick bench's agents race far faster than a person too: without this, an agent refused as
# rate_limited 21 times in a minute is closed (1008) and its share of the queue is never picked.
export HELPDESK_SOCKET_EVENT_RATE=1000000
export HELPDESK_SOCKET_EVENT_BURST=1000000
# ... and the cap on a conversation's messages: a relay run by hand (2 s warmup, 15 s window) at
# 30,000 msg/s over 50 conversations reached 10,000 each, and the refused sends stopped the closed
# loop (seen as `lost` and server errors).
export HELPDESK_MAX_MESSAGES_PER_CONVERSATION=100000000
export HELPDESK_LOG_LEVEL=warning
# 10,000 idle sockets on one node, plus its Redis and PostgreSQL connections.
ulimit -n "$(ulimit -Hn)"
"$bin/helpdesk" migrate >/dev/null
"$bin/helpdesk" user create --email bench-admin@example.com --name "Bench Admin" --password bench-admin-password --role admin >/dev/null 2>&1 || true
admin=(--admin-email bench-admin@example.com --admin-password bench-admin-password)

pid_a='' pid_b=''
# Two nodes with a fresh key prefix, so each bench starts from an empty deployment.
start_nodes() {
  export HELPDESK_KEY_PREFIX="hd:{bench$(date +%s%N)}:"
  HELPDESK_NODE_ID=bench-a HELPDESK_LUA_DIR=$node_lua "$node_bin" serve --port "$PORT_A" & pid_a=$!
  HELPDESK_NODE_ID=bench-b HELPDESK_LUA_DIR=$node_lua "$node_bin" serve --port "$PORT_B" & pid_b=$!
  for port in "$PORT_A" "$PORT_B"; do
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  done
}
stop_nodes() {
  [ -n "$pid_a$pid_b" ] || return 0
  kill $pid_a $pid_b 2>/dev/null || true
  wait $pid_a $pid_b 2>/dev/null || true
  pid_a='' pid_b=''
}
trap 'stop_nodes; scripts/services.sh down "$data"' EXIT

relay() {
  "$bin/helpdesk-bench" relay --customer-node "http://127.0.0.1:$PORT_A" --agent-node "http://127.0.0.1:$PORT_B" "${admin[@]}" \
    --node-pid "$pid_a" --node-pid "$pid_b" --redis-pid "$redis_pid" "$@"
}

if [ $# -gt 0 ]; then
  start_nodes
  relay "$@"
  exit
fi

log="$data/bench-$(date +%Y%m%d-%H%M%S).log"
echo "make bench: full run, log in $log"
# Other processes on the box skew every figure: say how busy it was.
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
field() { grep "^summary $1" "$log" | tail -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

# The relay's figures move from run to run on a full box (BENCHMARKS.md, fourth round): each is run
# RUNS times and the summary takes the median run (by msg per node-core-s at the maximum, by p99 at
# half), written again under the plain label; the range goes into the table.
median_of() {  # median_of LABEL KEY: copies the median run's summary line as "label=LABEL" (none if no run gave one)
  local line
  line=$( (grep "^summary relay label=$1-" "$log" || true) | awk -v k="$2" '{for (i = 1; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2], $0}}' \
    | sort -g | awk '{lines[NR] = $0} END {print lines[int((NR + 1) / 2)]}' | cut -d' ' -f2-)
  [ -n "$line" ] && echo "$line" | sed "s/label=$1-[0-9]*/label=$1/" >> "$log"
  return 0
}
# values KIND LABEL KEY: one figure of every run's summary line ("summary KIND label=LABEL-<run> ..."), sorted
values() { (grep "^summary $1 label=$2-" "$log" || true) | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k && $2 != "none" {print $2}' | sort -g; }
range_of() { values relay "$1" "$2" | paste -sd' ' | awk '{print $1 "–" $NF}'; }
# The median of one figure over the runs (Redis's cost per message moves apart from the nodes' figure
# that picks the median run).
median_value() { values relay "$1" "$2" | awk '{v[NR] = $0} END {print v[int((NR + 1) / 2)]}'; }
# The XADD + PUBLISH pair (scripts/bench-ceilings.sh) measured right after a relay run, and that run's
# Redis cost per message against it: the box's speed moves both by ±25 % from hour to hour, so a
# pair measured minutes apart from the run says little about the run (BENCHMARKS.md, eighth round).
pair_after() {  # pair_after LABEL
  local pair relay_us
  pair=$( (CEILING_ONLY=pair HELPDESK_BIN="$bin/helpdesk" scripts/bench-ceilings.sh "$REDIS_PORT" "$redis_pid" || true) \
    | (grep '^summary ceiling' || true) | tr ' ' '\n' | awk -F= '$1 == "redis_us_per_op" {s += $2; n++} END {if (n == 2) printf "%.1f", s}')
  relay_us=$( (grep "^summary relay label=$1 " "$log" || true) | tail -1 | tr ' ' '\n' | awk -F= '$1 == "redis_us_per_msg" {print $2}')
  echo "summary pair label=$1 pair_us=${pair:-none} relay_redis_us=${relay_us:-none} ratio=$(awk -v r="$relay_us" -v p="$pair" 'BEGIN {if (p > 0 && r != "") printf "%.2f", r / p; else print "none"}')" | tee -a "$log"
}
for run in $(seq "$RUNS"); do
  start_nodes
  relay --max --conversations "$CONVERSATIONS" --duration "$DURATION" --label "max-$run" | tee -a "$log" || true
  stop_nodes
  pair_after "max-$run" || true
done
median_of max msgs_per_node_core_s
max=$(field "relay label=max" delivered_per_s || true)
half_rate=$(awk -v m="$max" -v n="$CONVERSATIONS" 'BEGIN {printf "%.2f", m / 2 / n}')
for run in $(seq "$RUNS"); do
  start_nodes
  relay --conversations "$CONVERSATIONS" --rate "$half_rate" --duration "$DURATION" --label "half-$run" | tee -a "$log" || true
  stop_nodes
done
median_of half p99_ms

start_nodes
"$bin/helpdesk-bench" conns --node "http://127.0.0.1:$PORT_A" "${admin[@]}" --sockets "$SOCKETS" --node-pid "$pid_a" | tee -a "$log" || true
stop_nodes

# Picks through the nodes, each run followed by pick.lua's own ceiling (the node's commands for a
# PICK sent straight to Redis, no node around them). A race of 2,000 picks lasts ~0.3 s on this box
# and its CPU figures are whole clock ticks, and the box's speed drifts over minutes (BENCHMARKS.md,
# tenth round): each run's share is taken against the ceiling measured right after it, and the
# summary gives the median share of RUNS runs.
for run in $(seq "$RUNS"); do
  start_nodes
  "$bin/helpdesk-bench" pick --node "http://127.0.0.1:$PORT_A" --node "http://127.0.0.1:$PORT_B" "${admin[@]}" \
    --customers "$CUSTOMERS" --agents "$AGENTS" --node-pid "$pid_a" --node-pid "$pid_b" --redis-pid "$redis_pid" | tee -a "$log" || true
  stop_nodes
  "$bin/helpdesk-bench" pick-ceiling --customers "$CUSTOMERS" --agents "$AGENTS" --redis-pid "$redis_pid" | tee -a "$log" || true
  picks=$(field "pick agents=" picks_per_s || true) ceiling=$(field "ceiling name=pick" rps || true)
  echo "summary pickshare label=pick-$run picks_per_s=${picks:-none} ceiling_rps=${ceiling:-none} share=$(awk -v p="$picks" -v c="$ceiling" 'BEGIN {if (c > 0 && p != "") printf "%.0f", 100 * p / c; else print "none"}')" | tee -a "$log"
done

# Flush: archived messages/s from the outbox into PostgreSQL (a schema and key prefix of its own).
"$bin/helpdesk-bench" flush --conversations 500 --messages 100 | tee -a "$log" || true

scripts/bench-ceilings.sh "$REDIS_PORT" "$redis_pid" | tee -a "$log" || true
# send.lua as the nodes call it at the maximum: 16 messages per FCALL, measured like the pair above
HELPDESK_BIN="$bin/helpdesk" scripts/bench-send.sh "$REDIS_PORT" lua 10000 16 | tee -a "$log" || true

send_ceiling=$(field "ceiling name=send.lua" rps)
send_us=$(field "ceiling name=send.lua" redis_us_per_op)
send_batch_us=$(field "ceiling name=send-batch" redis_us_per_op)
pick_us=$(field "ceiling name=pick" redis_us_per_op)
# pick: the median of the runs' shares, picks/s and ceilings (each sorted on its own), their ranges,
# and the worst run's double assignments and closed sockets
median_range() { values pickshare pick "$1" | paste -sd' ' | awk '{if (NF) printf "%s (%s–%s)", $(int((NF + 1) / 2)), $1, $NF; else print "none"}'; }
pick_share=$(median_range share)
pick_rate=$(median_range picks_per_s)
pick_ceilings=$(median_range ceiling_rps)
pick_worst() { (grep "^summary pick agents=" "$log" || true) | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {if ($2 > m) m = $2} END {print m + 0}'; }
pair_ratio=$(values pair max ratio | awk '{v[NR] = $0} END {if (NR) print v[int((NR + 1) / 2)] "× (" v[1] "–" v[NR] ")"; else print "none"}')
pair_us=$(awk -v x="$(field "ceiling name=XADD" redis_us_per_op)" -v p="$(field "ceiling name=PUBLISH" redis_us_per_op)" 'BEGIN {printf "%.1f", x + p}')
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
{
  echo
  echo "## make bench summary ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD))"
  echo
  echo "| bench | figure | Redis ceiling (same run) |"
  echo "| --- | --- | --- |"
  echo "| relay max, $CONVERSATIONS conversations (median of $RUNS runs; msg per node-core-s $(range_of max msgs_per_node_core_s)) | $(field "relay label=max" delivered_per_s) msg/s delivered, $(field "relay label=max" msgs_per_node_core_s) msg per node-core-s, Redis $(field "relay label=max" redis_us_per_msg) µs/msg (median of the runs $(median_value max redis_us_per_msg), $(range_of max redis_us_per_msg)), p50 $(field "relay label=max" p50_ms) / p99 $(field "relay label=max" p99_ms) ms, lost $(field "relay label=max" lost) | send.lua $send_ceiling/s at $send_us µs Redis CPU each (one message per call), $send_batch_us µs per message at 16 per call; XADD+PUBLISH pair $pair_us µs; each run's Redis µs/msg against the pair measured right after it: $pair_ratio |"
  echo "| relay at half max ($half_rate msg/s × $CONVERSATIONS; median of $RUNS runs; p99 $(range_of half p99_ms) ms) | $(field "relay label=half" delivered_per_s) msg/s, p50 $(field "relay label=half" p50_ms) / p90 $(field "relay label=half" p90_ms) / p99 $(field "relay label=half" p99_ms) / max $(field "relay label=half" max_ms) ms, $(field "relay label=half" msgs_per_node_core_s) msg per node-core-s, Redis $(field "relay label=half" redis_us_per_msg) µs/msg | |"
  echo "| conns | $(field conns sockets) idle sockets: $(field conns kib_per_socket) KiB RSS per socket (RSS $(field conns rss_before_kib) → $(field conns rss_after_kib) KiB) | |"
  echo "| pick, $AGENTS agents × $CUSTOMERS customers ($RUNS runs, each against the ceiling right after it) | median share of the ceiling $pick_share %; $pick_rate picks/s; double assignments at most $(pick_worst double_acks) (ACKs) / $(pick_worst double_server) (server) in a run; $(field "pick agents=" frames) frames to agents (last run); agents' sockets the server closed at most $(pick_worst closed) | a pick's Redis commands alone: $pick_ceilings/s (last: $pick_us µs Redis CPU each) |"
  echo "| flush, 500 conversations × 100 messages | $(field flush messages_per_s) archived messages/s ($(field flush archived_rows) rows for $(field flush messages) messages) | |"
} | tee -a "$log"
