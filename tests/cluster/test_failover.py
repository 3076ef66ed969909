"""Scale-out: three real nodes behind Debian's nginx (deploy/nginx.conf). 30 chats run while one
node is drained (SIGTERM) and another killed (SIGKILL). Every message acknowledged to a sender must
reach the other side and PostgreSQL, no customer is assigned twice, and picks follow queue order."""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from cluster import REPO, Cluster, Node, free_port, http  # noqa: E402

CHATS = 30
SEND_SECONDS = 8.0


class Nginx:
    """deploy/nginx.conf with this test's node ports and paths."""

    def __init__(self, nodes: list[Node], directory: Path):
        self.port = free_port()
        self.dir = directory
        conf = (REPO / "deploy" / "nginx.conf").read_text()
        upstreams = "\n".join(f"        server 127.0.0.1:{n.port} max_fails=2 fail_timeout=5s;" for n in nodes)
        lines, skipping = [], False
        for line in conf.splitlines():
            if line.strip().startswith("server 127.0.0.1:808"):
                if not skipping:
                    lines.append(upstreams)
                skipping = True
                continue
            skipping = False
            if line.startswith("pid "):
                line = f"pid {directory}/nginx.pid;"
            elif line.strip().startswith("error_log"):
                line = f"    error_log {directory}/nginx-error.log warn;"
            elif line.strip() == "listen 8080;":
                line = f"        listen 127.0.0.1:{self.port};"
            lines.append(line)
        (directory / "nginx.conf").write_text("\n".join(lines) + "\n")

    def start(self):
        subprocess.run(["nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-e", str(self.dir / "nginx-error.log")], check=True)

    def stop(self):
        subprocess.run(["nginx", "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-s", "quit"], capture_output=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


class Client:
    """A chat participant that behaves like the web client: it reconnects through the balancer
    when its socket closes, re-joins with the last message id it saw, and re-sends every message
    not yet acknowledged under the same client_msg_id."""

    def __init__(self, name: str, base: str, token: str, conversation: str):
        self.name, self.base, self.token, self.conversation = name, base, token, conversation
        self.ws = None
        self.acked: dict[str, str] = {}         # client_msg_id -> message id
        self.unacked: dict[str, str] = {}       # client_msg_id -> text
        self.received: dict[str, str] = {}      # message id -> text (from the other side)
        self.last_id: str | None = None
        self.reconnects = 0
        self.counter = 0
        self.connected = asyncio.Event()
        self.stopping = False

    def ticket(self) -> str:
        return http("POST", self.base + "/api/v1/ws-tickets", {}, self.token)["ticket"]

    async def run(self):
        while not self.stopping:
            try:
                async with websockets.connect(self.base.replace("http", "ws") + "/ws?ticket=" + self.ticket(),
                                              max_size=2 ** 21, open_timeout=5) as ws:
                    self.ws = ws
                    await ws.send(json.dumps({"event": "JOIN_CONVERSATION", "ref": "join",
                                              "data": {"conversation_id": self.conversation, **({"last_message_id": self.last_id} if self.last_id else {})}}))
                    async for raw in ws:
                        frame = json.loads(raw)
                        await self.handle(frame)
            except Exception:
                pass
            self.ws = None
            self.connected.clear()
            if not self.stopping:
                self.reconnects += 1
                await asyncio.sleep(0.1 + random.random() * 0.2)

    async def handle(self, frame):
        event, data = frame["event"], frame.get("data", {})
        if event == "HISTORY":
            for m in data["messages"]:
                self.see(m)
        elif event == "NEW_MESSAGE":
            self.see(data["message"])
        elif event == "ACK" and frame.get("ref") == "join":
            self.connected.set()
            for cid, text in list(self.unacked.items()):   # re-send what was never acknowledged
                await self.ws.send(json.dumps({"event": "SEND_MESSAGE", "ref": cid,
                                               "data": {"conversation_id": self.conversation, "text": text, "client_msg_id": cid}}))
        elif event == "ACK" and frame.get("ref") in self.unacked:
            cid = frame["ref"]
            self.acked[cid] = data["message_id"]
            self.unacked.pop(cid, None)
        elif event == "RESYNC":
            await self.ws.send(json.dumps({"event": "JOIN_CONVERSATION", "ref": "join",
                                           "data": {"conversation_id": self.conversation, "last_message_id": self.last_id}}))

    def see(self, m):
        self.last_id = m["id"]
        if m["client_msg_id"].startswith(self.name + "-"):
            return
        self.received[m["id"]] = m["text"]

    async def send_one(self):
        self.counter += 1
        cid = f"{self.name}-{self.counter}"
        self.unacked[cid] = f"{self.name} says {self.counter}"
        ws = self.ws
        if ws is not None and self.connected.is_set():
            try:
                await ws.send(json.dumps({"event": "SEND_MESSAGE", "ref": cid,
                                          "data": {"conversation_id": self.conversation, "text": self.unacked[cid], "client_msg_id": cid}}))
            except Exception:
                pass  # re-sent after the reconnect


@pytest.fixture
def cluster(tmp_path):
    output = Path(os.environ.get("HELPDESK_TEST_OUTPUT", REPO / ".build" / "test-output")) / "cluster"
    c = Cluster(output)
    c.env.update(HELPDESK_START_LIMIT_PER_IP="100000", HELPDESK_TRUST_PROXY="true", HELPDESK_HEARTBEAT_INTERVAL="0.5",
                 HELPDESK_OUTBOX_CLAIM_IDLE="2", HELPDESK_DRAIN_TIMEOUT="10", HELPDESK_LOG_LEVEL="warning")
    c.nodes = [Node(c, f"node-{i}", free_port()) for i in (1, 2, 3)]
    c.start()
    c.nodes[2].start()
    nginx = Nginx(c.nodes, tmp_path)
    nginx.start()
    c.nginx = nginx
    yield c
    nginx.stop()
    for n in c.nodes:
        if n.proc and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait()
        n.proc = None
    c.stop()


def test_chats_survive_a_drain_and_a_kill(cluster):
    base = cluster.nginx.url
    pw = "cluster-password-1"
    cluster.create_user("admin@example.com", "Admin", pw, "admin")
    admin = http("POST", base + "/api/v1/auth/login", {"email": "admin@example.com", "password": pw})["access_token"]
    agents = []
    for i in range(CHATS):
        email = f"agent{i}@example.com"
        http("POST", base + "/api/v1/users", {"email": email, "name": f"Agent {i}", "password": pw, "role": "agent", "capacity": 1}, admin)
        agents.append(http("POST", base + "/api/v1/auth/login", {"email": email, "password": pw})["access_token"])
    chats = [http("POST", base + "/api/v1/conversations", {"name": f"Customer {i}", "email": f"c{i}@example.com"}) for i in range(CHATS)]
    order = [c["conversation_id"] for c in chats]

    async def scenario():
        # Agents connect through the balancer and pick the fairest conversation, all at once.
        async def pick(token):
            async with websockets.connect(base.replace("http", "ws") + "/ws?ticket=" +
                                          http("POST", base + "/api/v1/ws-tickets", {}, token)["ticket"]) as ws:
                await ws.send(json.dumps({"event": "PICK", "ref": "p", "data": {}}))
                async for raw in ws:
                    f = json.loads(raw)
                    if f.get("ref") == "p":
                        return f
        picks = await asyncio.gather(*(pick(t) for t in agents))
        assert all(p["event"] == "ACK" for p in picks), [p for p in picks if p["event"] != "ACK"]
        assigned = {p["data"]["conversation"]["id"]: i for i, p in enumerate(picks)}
        assert sorted(assigned) == sorted(order), "every customer assigned exactly once"

        pairs = []
        for i, chat in enumerate(chats):
            cid = chat["conversation_id"]
            agent_token = agents[assigned[cid]]
            pairs.append((Client("customer", base, chat["customer_token"], cid), Client("agent", base, agent_token, cid)))
        everyone = [c for pair in pairs for c in pair]
        runners = [asyncio.create_task(c.run()) for c in everyone]
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in everyone)), 30)

        async def talk(client):
            end = time.monotonic() + SEND_SECONDS
            while time.monotonic() < end:
                await client.send_one()
                await asyncio.sleep(0.25 + random.random() * 0.1)
        talking = asyncio.gather(*(talk(c) for c in everyone))
        await asyncio.sleep(2)
        cluster.nodes[0].proc.send_signal(signal.SIGTERM)      # drain node-1
        await asyncio.sleep(2)
        cluster.nodes[1].proc.send_signal(signal.SIGKILL)      # kill node-2
        await talking

        # Everything acknowledged reaches the other side (retries included), within a bound.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if all(not c.unacked for c in everyone) and all(
                    set(a.acked.values()) <= set(b.received) and set(b.acked.values()) <= set(a.received) for a, b in pairs):
                break
            await asyncio.sleep(0.2)
        for a, b in pairs:
            assert not a.unacked and not b.unacked, "every message was eventually acknowledged"
            assert set(a.acked.values()) <= set(b.received), f"{a.conversation}: agent missed customer messages"
            assert set(b.acked.values()) <= set(a.received), f"{a.conversation}: customer missed agent messages"
        assert sum(c.reconnects for c in everyone) > 0, "the drain and the kill moved clients"

        for a, b in pairs:
            b.ws and await b.ws.send(json.dumps({"event": "CLOSE_CONVERSATION", "ref": "close", "data": {"conversation_id": b.conversation}}))
        for c in everyone:
            c.stopping = True
        await asyncio.sleep(1)
        for r in runners:
            r.cancel()
        return pairs

    pairs = asyncio.run(scenario())
    acked = {(a.conversation, mid) for a, b in pairs for mid in list(a.acked.values()) + list(b.acked.values())}

    # Archived: every acknowledged message is in PostgreSQL, once.
    deadline = time.monotonic() + 60
    rows = set()
    while time.monotonic() < deadline:
        out = cluster.psql("SELECT conversation_id || ' ' || id FROM messages")
        rows = {tuple(line.split(" ")) for line in out.splitlines() if line}
        if acked <= rows:
            break
        time.sleep(0.5)
    assert acked <= rows, f"{len(acked - rows)} acknowledged messages not archived"
    dup = cluster.psql("SELECT count(*) FROM (SELECT conversation_id, client_msg_id, sender_id FROM messages GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
    assert dup == "0", "a retried message was stored twice"
    twice = cluster.psql("SELECT count(*) FROM (SELECT conversation_id FROM conversation_events WHERE type = 'assigned' GROUP BY 1 HAVING count(*) > 1) d")
    assert twice == "0", "no customer assigned twice"
    # Queue order: picks served the customers in the order they arrived.
    assigned_order = cluster.psql("SELECT id FROM conversations ORDER BY assigned_at, enqueued_at").splitlines()
    enqueued_order = cluster.psql("SELECT id FROM conversations ORDER BY enqueued_at").splitlines()
    assert assigned_order == enqueued_order
