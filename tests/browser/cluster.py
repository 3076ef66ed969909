"""Two real HelpDesk nodes on their own PostgreSQL schema and Redis key prefix.

Used by the pytest fixtures in conftest.py; also runnable by hand to poke at the pages:
    .build/browser-venv/bin/python tests/browser/cluster.py     # prints the URLs, Ctrl-C stops
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / ".build" / "debug" / "helpdesk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(Exception):
    def __init__(self, status: int, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def http(method: str, url: str, body=None, token: str | None = None, timeout: float = 10):
    """One JSON request; returns the decoded body (None for 204) or raises ApiError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            raw = res.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        raise ApiError(e.code, parsed) from None


class Node:
    def __init__(self, cluster: "Cluster", node_id: str, port: int):
        self.cluster = cluster
        self.node_id = node_id
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.started = False
        self.log_path = cluster.output / f"{node_id}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: float = 60):
        log = open(self.log_path, "ab" if self.started else "wb")  # a restart appends
        self.started = True
        env = dict(self.cluster.env, HELPDESK_NODE_ID=self.node_id, HELPDESK_PORT=str(self.port))
        self.proc = subprocess.Popen([str(BINARY), "serve"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as res:
                    if res.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.node_id} not ready after {wait}s; see {self.log_path}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def api(self, method: str, path: str, body=None, token: str | None = None):
        return http(method, self.url + "/api/v1" + path, body, token)


class Cluster:
    """Its own schema `t_<hex>` in the test database and Redis prefix `hd:{b<hex>}:`."""

    def __init__(self, output: Path, redis_url: str | None = None, database_url: str | None = None):
        self.output = output
        self.output.mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(4)
        self.schema = f"t_browser_{tag}"
        self.prefix = f"hd:{{b{tag}}}:"
        self.redis_url = redis_url or os.environ.get("HELPDESK_TEST_REDIS_URL", "redis://127.0.0.1:6391")
        self.database_url = database_url or os.environ.get("HELPDESK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5491/helpdesk_test")
        sep = "&" if "?" in self.database_url else "?"
        self.env = dict(
            os.environ,
            HELPDESK_REDIS_URL=self.redis_url,
            HELPDESK_DATABASE_URL=f"{self.database_url}{sep}options=-csearch_path%3D{self.schema}",
            HELPDESK_JWT_SECRET="browser-tests-" + secrets.token_hex(16),
            HELPDESK_KEY_PREFIX=self.prefix,
            HELPDESK_PUBLIC_DIR=str(REPO / "Public"),
            HELPDESK_LUA_DIR=str(REPO / "lua"),
            HELPDESK_MIGRATIONS_DIR=str(REPO / "migrations"),
            HELPDESK_LOG_LEVEL=os.environ.get("HELPDESK_LOG_LEVEL", "info"),
        )
        self.nodes = [Node(self, "node-a", free_port()), Node(self, "node-b", free_port())]

    # PostgreSQL and Redis -------------------------------------------------

    def _pg_args(self) -> list[str]:
        u = urllib.parse.urlparse(self.database_url)
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
                "-U", u.username or "postgres", "-d", (u.path or "/postgres").lstrip("/")]

    def psql(self, sql: str) -> str:
        """Runs SQL with the schema on the search path; returns unaligned tuples."""
        out = subprocess.run(self._pg_args() + ["-A", "-t", "-c", f"SET search_path TO {self.schema}; {sql}"],
                             check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def redis(self, *args: str) -> str:
        """One redis-cli command against the cluster's Redis; its output."""
        return subprocess.run(self._redis_cli() + list(args), check=True, capture_output=True, text=True).stdout.strip()

    def _redis_cli(self) -> list[str]:
        u = urllib.parse.urlparse(self.redis_url)
        return ["redis-cli", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 6379)]

    # life cycle -------------------------------------------------------------

    def start(self):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `swift build` first")
        subprocess.run(self._pg_args() + ["-c", f"CREATE SCHEMA {self.schema}"], check=True, capture_output=True)
        # The first node migrates the empty schema; the second finds it up to date.
        self.nodes[0].start()
        self.nodes[1].start()

    def stop(self):
        for node in self.nodes:
            node.stop()
        if os.environ.get("HELPDESK_KEEP_TEST_DATA") == "1":
            return
        subprocess.run(self._pg_args() + ["-c", f"DROP SCHEMA IF EXISTS {self.schema} CASCADE"], capture_output=True)
        keys = subprocess.run(self._redis_cli() + ["--scan", "--pattern", self.prefix.replace("{", "\\{").replace("}", "\\}") + "*"],
                              capture_output=True, text=True).stdout.split()
        for i in range(0, len(keys), 500):
            subprocess.run(self._redis_cli() + ["DEL", *keys[i:i + 500]], capture_output=True)

    # accounts ---------------------------------------------------------------

    def create_user(self, email: str, name: str, password: str, role: str, supervisor_email: str | None = None, capacity: int = 3):
        args = [str(BINARY), "user", "create", "--email", email, "--name", name, "--password", password, "--role", role,
                "--capacity", str(capacity)]
        if supervisor_email:
            args += ["--supervisor-email", supervisor_email]
        out = subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"user create failed: {out.stdout}{out.stderr}")
        return out.stdout.strip()

    def login(self, email: str, password: str) -> dict:
        return self.nodes[0].api("POST", "/auth/login", {"email": email, "password": password})


if __name__ == "__main__":
    cluster = Cluster(Path(os.environ.get("HELPDESK_TEST_OUTPUT", REPO / ".build" / "test-output")))
    cluster.start()
    try:
        pw = "correct horse battery"
        cluster.create_user("admin@example.com", "Ada Admin", pw, "admin")
        cluster.create_user("sup@example.com", "Sam Supervisor", pw, "supervisor")
        cluster.create_user("agent@example.com", "Alice Agent", pw, "agent", supervisor_email="sup@example.com")
        admin = cluster.login("admin@example.com", pw)["access_token"]
        for name in ("Billing", "Technical"):
            cluster.nodes[0].api("POST", "/categories", {"name": name}, admin)
        print(f"schema {cluster.schema}, prefix {cluster.prefix}, password {pw!r}")
        for node in cluster.nodes:
            print(node.node_id, node.url)
        sys.stdout.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
