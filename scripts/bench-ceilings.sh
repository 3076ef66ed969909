#!/usr/bin/env bash
# Redis's own ceiling for the scripts the benches exercise: redis-benchmark runs `FCALL` of each
# script (the node's function library, loaded by `helpdesk scripts`) on keys prepared so it does
# its real work, and Redis's CPU (utime+stime of its process
# from /proc) is read around each run, giving ops/s and Redis CPU µs per op. Also a plain XADD and
# a PUBLISH (the reference pair for Redis's cost per chat message).
#   scripts/bench-ceilings.sh REDIS_PORT [REDIS_PID]
# Environment: CEILING_REQUESTS (100000), CEILING_CLIENTS (50), CEILING_ONLY=pair (only the XADD and
# PUBLISH: bench.sh measures the pair right after each relay run, on the box as it then is). pick.lua's ceiling is
# `helpdesk-bench pick-ceiling` (its keys depend on reads just before it; see the end).
# Prints a table and one `summary ceiling name=... rps=... redis_us_per_op=...` line per run.
#
# The argument lists of each script are in the *_args functions below: when a script's
# signature changes (e.g. every key in KEYS), change them there and only there.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$1
pid=${2:-$(redis-cli -p "$port" INFO server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')}
N=${CEILING_REQUESTS:-100000}
C=${CEILING_CLIENTS:-50}
P="hd:{ceiling$(date +%s)}:"
rc() { redis-cli -p "$port" "$@"; }
# utime + stime in clock ticks; the command name "(redis-server)" has no spaces, so fields split.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

# The library as the node loads it (lua/lib/*.lua once, then every script as a function); prints
# its version: each script is the function <name>_<version>.
# (Not needed for the pair alone.)
bin=${HELPDESK_BIN:-$(swift build -c release --show-bin-path)/helpdesk}
[ "${CEILING_ONLY:-}" = pair ] || version=$(HELPDESK_JWT_SECRET=${HELPDESK_JWT_SECRET:-bench-secret-0123456789abcdef} HELPDESK_REDIS_URL=redis://127.0.0.1:$port HELPDESK_LOG_LEVEL=error "$bin" scripts)

frame='{"event":"NEW_MESSAGE","data":{"conversation_id":"c1","message":{"sender":{"id":"cu1","role":"customer","name":"Bench customer"},"text":"1234567890123456789","client_msg_id":"b1","internal":false,"id":"1700000000000-0","sent_at":1700000000000}}}'

# send.lua: a customer's message in an active conversation, one per call (scripts/send-message.sh).
source scripts/send-message.sh
send_prepare() { send_conversation rc "$P" c1 cu1 ag1; }
send_args() { message_keys=() message_args=(); send_message "$P" c1 cu1; args=(FCALL "send_$version" 4 "${message_keys[@]}" "" "${message_args[@]}"); }
summaries=()
printf '%-28s %12s %18s\n' "Redis ceiling" "ops/s" "Redis CPU µs/op"
# measure NAME REQUESTS ARGS...: one redis-benchmark run, its ops/s and Redis's CPU per op.
measure() {
  local name=$1 n=$2; shift 2
  local t0 t1 rps us
  t0=$(ticks)
  rps=$(redis-benchmark -p "$port" -n "$n" -c "$C" -r 1000000000 --csv "$@" | tail -1 | awk -F'","' '{print $(NF - 6)}')
  t1=$(ticks)
  us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  printf '%-28s %12.0f %18s\n' "$name" "$rps" "$us"
  summaries+=("summary ceiling name=$name rps=$rps redis_us_per_op=$us")
}

# Two subscribers on the conversation's channel, as in the relay (customer's node and agent's node).
subs=()
for _ in 1 2; do redis-cli -p "$port" SUBSCRIBE "${P}ch:conv:c1" >/dev/null & subs+=($!); done
trap 'kill "${subs[@]}" 2>/dev/null || true' EXIT
sleep 0.3

if [ "${CEILING_ONLY:-}" != pair ]; then
  send_prepare
  send_args
  measure send.lua "$N" "${args[@]}"
fi
measure XADD "$N" XADD "${P}conv:x:msgs" '*' sender_id cu1 sender_role customer sender_name "Bench customer" \
  text 1234567890123456789 client_msg_id __rand_int__ internal 0 sent_at 1700000000000
measure PUBLISH "$N" PUBLISH "${P}ch:conv:c1" "msg|a|1700000000000-0
$frame"

# pick.lua's ceiling is not measured here: since every key it touches arrives in KEYS, its arguments
# name the queue heads the node read just before, which a fixed redis-benchmark command cannot
# follow. `helpdesk-bench pick-ceiling` sends the node's own commands straight to Redis instead.
rc EVAL "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('UNLINK', k) end" 0 "$P" >/dev/null
printf '%s\n' "${summaries[@]}"
