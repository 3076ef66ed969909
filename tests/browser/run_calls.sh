#!/usr/bin/env bash
# Call tests (WebRTC): Debian's Chromium with fake camera and microphone, two HelpDesk nodes and their
# own Redis and PostgreSQL, all inside a loopback-only network namespace (`unshare -n`), so the
# browser can offer no address but 127.0.0.1 and sends no mDNS. Needs root (unshare, and PostgreSQL
# run as the `postgres` user), `swift build` first, redis-server and PostgreSQL 15.
# Extra arguments go to pytest (e.g. -k unanswered -x).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.build/browser-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
want=$(sha256sum tests/browser/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
    echo "$want" > "$VENV/.requirements.sha256"
fi

for need in .build/debug/helpdesk /usr/bin/chromium /usr/lib/postgresql/15/bin/pg_ctl; do
    if [ ! -x "$need" ]; then
        echo "tests/browser: $need is missing (swift build; apt-get install chromium postgresql-15)" >&2
        exit 1
    fi
done
command -v redis-server >/dev/null || { echo "tests/browser: redis-server is missing" >&2; exit 1; }

export HELPDESK_TEST_OUTPUT="${HELPDESK_TEST_OUTPUT:-$PWD/.build/test-output}"
mkdir -p "$HELPDESK_TEST_OUTPUT"
# Everything below runs with only `lo` (up) for a network.
exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh \
    "$VENV/bin/python" -m pytest tests/browser/test_calls.py "$@"
