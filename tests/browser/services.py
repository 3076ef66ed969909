"""A private Redis and PostgreSQL for tests that run inside a loopback-only network namespace
(`unshare -n`), where the shared test services on the host's 127.0.0.1 cannot be reached.

Both listen on 127.0.0.1 of the namespace on free ports and live in a temporary directory that is
removed on stop(). PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cluster import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def loopback_only() -> bool:
    """True inside a network namespace whose only interface is `lo` (/proc/net/dev is per
    namespace; /sys/class/net would still show the host's unless sysfs is remounted)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


class LocalServices:
    def __init__(self, output: Path):
        self.output = output
        self.dir = Path(tempfile.mkdtemp(prefix="hd-calls-"))
        self.redis: subprocess.Popen | None = None
        self.redis_port = free_port()
        self.pg_port = free_port()
        self.pg_data = self.dir / "pg"
        self.pg_started = False
        self.as_postgres = os.geteuid() == 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/helpdesk_test"

    def _pg(self, *args: str, **kwargs):
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)

    def start(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=open(self.output / "calls-redis.log", "wb"), stderr=subprocess.STDOUT)

        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)  # the socket directory too
        self._pg("initdb", "-D", str(self.pg_data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        log = self.dir / "postgres.log"
        self._pg("pg_ctl", "-D", str(self.pg_data), "-l", str(log), "-w", "-t", "30", "-o",
                 f"-k {self.dir} -c listen_addresses=127.0.0.1 -p {self.pg_port} -c fsync=off "
                 "-c synchronous_commit=off -c full_page_writes=off", "start")
        self.pg_started = True
        self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "helpdesk_test")

        deadline = time.monotonic() + 10
        while True:
            ping = subprocess.run(["redis-cli", "-p", str(self.redis_port), "PING"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start; see calls-redis.log")
            time.sleep(0.05)

    def stop(self):
        if self.pg_started:
            log = self.dir / "postgres.log"
            if log.exists():
                shutil.copy(log, self.output / "calls-postgres.log")
            try:
                self._pg("pg_ctl", "-D", str(self.pg_data), "-m", "immediate", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
            self.pg_started = False
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(5)
            except subprocess.TimeoutExpired:
                self.redis.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
