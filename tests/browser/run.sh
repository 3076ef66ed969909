#!/usr/bin/env bash
# Browser tests: two real HelpDesk nodes, Debian's Chromium driven by Python Playwright.
# Needs `swift build` first (.build/debug/helpdesk), the test Redis and PostgreSQL
# (HELPDESK_TEST_REDIS_URL, HELPDESK_TEST_DATABASE_URL) and /usr/bin/chromium.
# Extra arguments go to pytest (e.g. -k chat -x).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=.build/browser-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
want=$(sha256sum tests/browser/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
    echo "$want" > "$VENV/.requirements.sha256"
fi

if [ ! -x .build/debug/helpdesk ]; then
    echo "tests/browser: .build/debug/helpdesk is missing; run 'swift build' first" >&2
    exit 1
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "tests/browser: /usr/bin/chromium is missing (apt-get install chromium)" >&2
    exit 1
fi

export HELPDESK_TEST_REDIS_URL="${HELPDESK_TEST_REDIS_URL:-redis://127.0.0.1:6391}"
export HELPDESK_TEST_DATABASE_URL="${HELPDESK_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5491/helpdesk_test}"
export HELPDESK_TEST_OUTPUT="${HELPDESK_TEST_OUTPUT:-$PWD/.build/test-output}"
mkdir -p "$HELPDESK_TEST_OUTPUT"
exec "$VENV/bin/python" -m pytest tests/browser "$@"
