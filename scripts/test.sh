#!/usr/bin/env bash
# `make test`: fresh Redis and PostgreSQL under .data/test on their own ports, then the Swift tests.
set -uo pipefail
set -e
cd "$(dirname "$0")/.."
data=.data/test
REDIS_PORT=${TEST_REDIS_PORT:-6391}
PG_PORT=${TEST_PG_PORT:-5491}
scripts/services.sh down "$data" || true
rm -rf "$data"
scripts/services.sh up "$data" "$REDIS_PORT" "$PG_PORT" helpdesk_test test
trap 'scripts/services.sh down "$data"' EXIT
export HELPDESK_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export HELPDESK_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/helpdesk_test
export HELPDESK_TEST_OUTPUT=${HELPDESK_TEST_OUTPUT:-$PWD/.build/test-output}
mkdir -p "$HELPDESK_TEST_OUTPUT"
swift build --build-tests
status=0
# One test at a time: in parallel runs the suite twice stalled with every thread idle (a lock
# ordering problem under investigation, see the closing note); a bound turns any hang into a failure.
timeout 1500 swift test --skip-build --no-parallel 2>&1 | tee "$HELPDESK_TEST_OUTPUT/swift-test.log" || status=1
# Fuzzing: each libFuzzer target over its committed corpus, then 25 s of new inputs (`make fuzz`: 5 min).
FUZZ_SECONDS=${FUZZ_SECONDS:-25} scripts/fuzz.sh 2>&1 | tee "$HELPDESK_TEST_OUTPUT/fuzz-test.log" || status=1
# Browser tests: two real nodes of the binary just built, Debian's Chromium driven by Playwright.
tests/browser/run.sh 2>&1 | tee "$HELPDESK_TEST_OUTPUT/browser-test.log" || status=1
# The API against its own description: schemathesis on /openapi.json, 5 examples per operation.
scripts/api-fuzz.sh 2>&1 | tee "$HELPDESK_TEST_OUTPUT/api-fuzz.log" || status=1
# Calls: WebRTC between two pages, nodes and databases in a loopback-only network namespace.
tests/browser/run_calls.sh 2>&1 | tee "$HELPDESK_TEST_OUTPUT/calls-test.log" || status=1
# Scale-out: three real nodes behind nginx, a drain and a kill during 30 chats.
.build/browser-venv/bin/python -m pytest tests/cluster -q 2>&1 | tee "$HELPDESK_TEST_OUTPUT/cluster-test.log" || status=1
[ "$status" = 0 ] && echo "make test: all passed" || echo "make test: FAILED (logs in $HELPDESK_TEST_OUTPUT)"
exit "$status"
