#!/usr/bin/env bash
# Redis's CPU per chat message for `FCALL send` carrying BATCH messages per call (as a node sends the
# messages of one event-loop tick), two subscribers on every conversation's channel (as the two
# nodes of the relay). For A/B runs of send.lua variants: point LUA_DIR at a copy of lua/ and
# interleave runs, since a single run moves by ±10 % on this box (BENCHMARKS.md, sixth round), and
# alternate which side runs first (a pair's first run can be favoured: seventh round). The
# variant must take send.lua's present arguments (scripts/send-message.sh): a copy of lua/ from
# before 48cfc94 reads the first as the conversation id, and the copy needs lua/LAYOUT with the
# binary's number (`helpdesk scripts` refuses it otherwise).
#   scripts/bench-send.sh REDIS_PORT [LUA_DIR (lua)] [CALLS (10000)] [BATCH (16)]
# Prints Redis's CPU (utime+stime from /proc) and the time inside FCALL (INFO commandstats), each
# per message, and a `summary ceiling name=send-batch ...` line (make bench's table). Runs against
# a Redis of your own (no persistence needed); leaves no keys behind.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$1; dir=${2:-lua}; calls=${3:-10000}; batch=${4:-16}
rc() { redis-cli -p "$port" "$@"; }
pid=$(rc INFO server | tr -d '\r' | awk -F: '$1 == "process_id" {print $2}')
bin=${HELPDESK_BIN:-$(swift build -c release --show-bin-path)/helpdesk}
version=$(HELPDESK_JWT_SECRET=bench-secret-0123456789abcdef HELPDESK_LUA_DIR=$dir HELPDESK_REDIS_URL=redis://127.0.0.1:$port \
  HELPDESK_LOG_LEVEL=error "$bin" scripts)
P="hd:{sendbench$(date +%s%N)}:"
# BATCH active conversations, one message to each per call (scripts/send-message.sh)
source scripts/send-message.sh
message_keys=() message_args=() channels=()
for i in $(seq "$batch"); do
  send_conversation rc "$P" "c$i" "cu$i" "ag$i"
  send_message "$P" "c$i" "cu$i"
  channels+=("${P}ch:conv:c$i")
done
subs=()
for _ in 1 2; do redis-cli -p "$port" SUBSCRIBE "${channels[@]}" >/dev/null & subs+=($!); done
trap 'kill "${subs[@]}" 2>/dev/null || true' EXIT
sleep 0.3
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rc CONFIG RESETSTAT >/dev/null
t0=$(ticks)
redis-benchmark -p "$port" -n "$calls" -c 8 -r 1000000000 --csv FCALL "send_$version" $((4 * batch)) "${message_keys[@]}" "" "${message_args[@]}" >/dev/null
t1=$(ticks)
inside=$(rc INFO commandstats | tr -d '\r' | awk -F'[=,]' '/^cmdstat_fcall:/ {print $4}')
awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n=$((calls * batch)) -v u="$inside" -v dir="$dir" -v b="$batch" \
  'BEGIN {printf "send (%s, %d per call): Redis CPU %.1f us per message, %.1f us inside FCALL\n", dir, b, d * 1e6 / hz / n, u / n;
         printf "summary ceiling name=send-batch redis_us_per_op=%.1f fcall_us_per_op=%.1f batch=%d\n", d * 1e6 / hz / n, u / n, b}'
rc EVAL "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('UNLINK', k) end" 0 "$P" >/dev/null
