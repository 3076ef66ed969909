#!/usr/bin/env bash
# Schemathesis against /openapi.json: one real node (its own schema and Redis prefix, as the
# browser tests make them), an admin's bearer token on every request, a few examples per operation.
# Checks: no 5xx (not_a_server_error) and every documented answer matches its schema
# (response_schema_conformance; every error must be the error object). Needs `swift build`
# (.build/debug/helpdesk) and the test Redis and PostgreSQL (HELPDESK_TEST_REDIS_URL, _DATABASE_URL).
# API_FUZZ_EXAMPLES (default 5) examples per operation; extra arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.build/browser-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
fi
if [ ! -x .build/debug/helpdesk ]; then
    echo "api-fuzz: .build/debug/helpdesk is missing; run 'swift build' first" >&2
    exit 1
fi
export HELPDESK_TEST_REDIS_URL="${HELPDESK_TEST_REDIS_URL:-redis://127.0.0.1:6391}"
export HELPDESK_TEST_DATABASE_URL="${HELPDESK_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5491/helpdesk_test}"
export HELPDESK_TEST_OUTPUT="${HELPDESK_TEST_OUTPUT:-$PWD/.build/test-output}"
mkdir -p "$HELPDESK_TEST_OUTPUT"

exec "$VENV/bin/python" - "$@" <<'PY'
import os, subprocess, sys
from pathlib import Path
sys.path.insert(0, "tests/browser")
from cluster import Cluster

output = Path(os.environ["HELPDESK_TEST_OUTPUT"]) / "api-fuzz"
cluster = Cluster(output)
node = cluster.nodes[0]
status = 1
try:
    subprocess.run(cluster._pg_args() + ["-c", f"CREATE SCHEMA {cluster.schema}"], check=True, capture_output=True)
    node.start()
    password = "api-fuzz-" + os.urandom(8).hex()
    cluster.create_user("admin@example.test", "Ada Admin", password, "admin")
    cluster.create_user("sup@example.test", "Sam Supervisor", password, "supervisor")
    cluster.create_user("agent@example.test", "Alice Agent", password, "agent", supervisor_email="sup@example.test")
    token = cluster.login("admin@example.test", password)["access_token"]
    node.api("POST", "/categories", {"name": "Billing"}, token)
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", node.url + "/openapi.json",
        "--url", node.url,
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", os.environ.get("API_FUZZ_EXAMPLES", "5"),
        "--seed", os.environ.get("API_FUZZ_SEED", "1"),
        "--header", f"Authorization: Bearer {token}",
        # One worker: with threads, Hypothesis's lambda descriptions (ast.parse) race on CPython 3.11
        # ("AST constructor recursion depth mismatch", an error of the tool, not of the API).
        "--workers", "1",
        "--report", "junit", "--report-dir", str(output),
        *sys.argv[1:],
    ]
    # In the output directory: schemathesis keeps its example database (.schemathesis/) where it runs.
    status = subprocess.run(command, cwd=output).returncode
finally:
    cluster.stop()
    # Cluster.stop drops the schema and keys; the node's log stays in the output directory.
print(f"api-fuzz: {'passed' if status == 0 else 'FAILED'} (node log in {output})")
sys.exit(status)
PY
