"""Audio/video calls in a real browser: headless Chromium with fake media devices, the customer page
on node A and the agent console on node B, media peer to peer over loopback, signaling through the
nodes. WebRTC would offer the machine's other addresses and multicast mDNS, so this module runs only
inside a loopback-only network namespace, with its own Redis and PostgreSQL there:

    tests/browser/run_calls.sh          # = unshare -n sh -c 'ip link set lo up && exec pytest test_calls.py'

Outside such a namespace (e.g. tests/browser/run.sh) the module is skipped.
"""
from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from cluster import Cluster
from conftest import ACCOUNTS, OUTPUT, PASSWORD, login, screenshot
from services import LocalServices, loopback_only
from test_pages import agent_panel, start_chat, wait_for

pytestmark = pytest.mark.skipif(not loopback_only(), reason="WebRTC tests run only inside a loopback-only network namespace "
                                                            "(tests/browser/run_calls.sh)")

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
CHROMIUM_ARGS = [
    "--disable-gpu", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

# Inbound RTP of the current call, summed by kind (window.__call is the page's test hook).
STATS = """async () => {
    const call = window.__call;
    if (!call || !call.pc) return null;
    const out = {audioBytes: 0, audioEnergy: 0, videoBytes: 0, videoFrames: 0};
    (await call.pc.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        if (r.kind === 'audio') { out.audioBytes += r.bytesReceived || 0; out.audioEnergy += r.totalAudioEnergy || 0; }
        if (r.kind === 'video') { out.videoBytes += r.bytesReceived || 0; out.videoFrames += r.framesDecoded || 0; }
    });
    return out;
}"""
CALL = "() => window.__call && {id: __call.id, state: __call.state, pc: __call.pc && __call.pc.connectionState, reason: __call.endReason}"


# ---- fixtures: this module's own services, nodes and browser (they override conftest's) ----------

@pytest.fixture(scope="module")
def services():
    s = LocalServices(OUTPUT)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def cluster(services):
    c = Cluster(OUTPUT, redis_url=services.redis_url, database_url=services.database_url)
    for node in c.nodes:
        node.log_path = OUTPUT / f"calls-{node.node_id}.log"
    try:
        c.start()
        c.create_user(*ACCOUNTS["admin"], PASSWORD, "admin")
        c.create_user(*ACCOUNTS["supervisor"], PASSWORD, "supervisor")
        c.create_user(*ACCOUNTS["agent"], PASSWORD, "agent", supervisor_email=ACCOUNTS["supervisor"][0], capacity=5)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


# ---- helpers ------------------------------------------------------------------------------------------

class Side:
    """One page in a call, with every WebSocket frame it sent and received (decoded)."""

    def __init__(self, page, name):
        self.page = page
        self.name = name
        self.frames: list[tuple[str, dict]] = []

        def on_socket(ws):
            ws.on("framesent", lambda f: self.frames.append(("sent", json.loads(f))))
            ws.on("framereceived", lambda f: self.frames.append(("received", json.loads(f))))

        page.on("websocket", on_socket)

    def call(self):
        return self.page.evaluate(CALL)

    def stats(self):
        return self.page.evaluate(STATS)

    def frame(self, direction, event, **match):
        for d, f in self.frames:
            if d == direction and f.get("event") == event and all(f.get("data", {}).get(k) == v for k, v in match.items()):
                return f
        return None

    def wait_frame(self, direction, event, timeout=10.0, **match):
        # Playwright delivers frame events only while it runs: wait in the page, not in time.sleep.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.frame(direction, event, **match)
            if found:
                return found
            self.page.wait_for_timeout(100)
        raise AssertionError(f"timed out waiting for {self.name} {direction} {event} {match}")

    def dump(self, test):
        with open(OUTPUT / f"calls-frames-{test}-{self.name}.jsonl", "w") as out:
            for d, f in self.frames:
                if f.get("event") not in ("PING", "PONG"):
                    out.write(json.dumps([d, f]) + "\n")


def open_chat(cluster, pages, customer_name, email, init_script=None):
    """A customer (node A) chatting with Alice (node B); returns (customer, agent, panel, conversation id)."""
    node_a, node_b = cluster.nodes
    cust_page = pages.new()
    if init_script:
        cust_page.add_init_script(init_script)
    cust = Side(cust_page, "customer")
    conv_id = start_chat(cust_page, node_a.url, customer_name, email)
    agent_page = pages.new()
    agent = Side(agent_page, "agent")
    agent_page.goto(node_b.url + "/agent")
    login(agent_page, "agent")
    agent_page.locator("#queue li", has_text=customer_name).get_by_role("button", name=f"Pick {customer_name}").click()
    expect(cust_page.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    panel = agent_panel(agent_page, customer_name)
    expect(panel).to_be_visible()
    # Call buttons only once the chat is active, and the customer's socket has joined.
    expect(cust_page.get_by_role("button", name="Audio call with the agent")).to_be_enabled()
    cust.wait_frame("sent", "JOIN_CONVERSATION")
    return cust, agent, panel, conv_id


def growing(side, key, message, timeout=15.0):
    """The stat `key` rises over half a second (media is flowing now, not just earlier)."""
    def check():
        first = side.stats()
        time.sleep(0.5)
        second = side.stats()
        return first and second and second[key] > first[key] and second
    return wait_for(check, timeout=timeout, interval=0.1, message=message)


def connected(side):
    return wait_for(lambda: (lambda c: c if c and c["state"] == "connected" and c["pc"] == "connected" else None)(side.call()),
                    timeout=20, message=f"{side.name}: call connected")


def ended(side):
    return wait_for(lambda: (lambda c: c if c and c["state"] == "ended" else None)(side.call()), message=f"{side.name}: call ended")


def call_events(cluster, conv_id):
    """call_* rows of conversation_events, in order, as (type, data dict)."""
    out = cluster.psql(f"SELECT type || '|' || data FROM conversation_events WHERE conversation_id = '{conv_id}' "
                       "AND type LIKE 'call%' ORDER BY at, id")
    rows = []
    for line in out.splitlines():
        kind, _, data = line.partition("|")
        rows.append((kind, json.loads(data) if data else {}))
    return rows


def close_chat(panel, cust):
    panel.get_by_role("button", name="Close chat").click()
    expect(cust.page.locator("#closed-text")).to_be_visible()


# ---- tests ------------------------------------------------------------------------------------------------

def test_audio_call_upgraded_to_video_muted_and_hung_up(cluster, pages, request):
    cust, agent, panel, conv_id = open_chat(cluster, pages, "Carol Customer", "carol@example.test")
    dock_c, dock_a = cust.page.locator("#call-dock"), agent.page.locator("#call-dock")
    try:
        # The customer calls (audio); the invite carries a fresh uuid and the media.
        cust.page.get_by_role("button", name="Audio call with the agent").click()
        invite = cust.wait_frame("sent", "CALL_INVITE")
        call_id = invite["data"]["call_id"]
        assert UUID.fullmatch(call_id), call_id
        assert invite["data"] == {"conversation_id": conv_id, "call_id": call_id, "media": "audio"}
        expect(dock_c).to_be_visible()
        expect(dock_c.locator(".call-status")).to_have_text("Ringing…")
        expect(dock_c.get_by_role("button", name="Cancel call")).to_be_visible()
        expect(cust.page.get_by_role("button", name="Audio call with the agent")).to_be_disabled()

        # The agent (other node) gets the notice with the customer's name and answers.
        ring = agent.page.locator(".call-incoming", has_text="Carol Customer is calling")
        expect(ring).to_contain_text("Audio call")
        received = agent.wait_frame("received", "CALL_INVITE", call_id=call_id)
        assert received["data"]["media"] == "audio"
        assert received["data"]["from"]["role"] == "customer", received
        screenshot(agent.page, "calls-agent-ringing")
        ring.get_by_role("button", name="Accept").click()
        expect(ring).to_have_count(0)

        # Connected: both RTCPeerConnections, audio bytes arriving on both sides, a running timer.
        assert connected(cust)["id"] == call_id
        assert connected(agent)["id"] == call_id
        growing(cust, "audioBytes", "customer: inbound audio")
        growing(agent, "audioBytes", "agent: inbound audio")
        # Both fetched GET /rtc/ice-servers (the nodes here have no STUN/TURN: an empty list).
        for side in (cust, agent):
            assert side.page.evaluate("HD.debug.calls.ice && HD.debug.calls.ice.servers") == [], side.name
        expect(dock_c.locator(".call-timer")).to_have_text(re.compile(r"^00:0\d$"))
        expect(dock_a.locator(".call-timer")).to_be_visible()
        expect(dock_c.locator(".call-local")).to_be_hidden()  # audio only: no picture yet
        assert cust.stats()["videoFrames"] == 0

        # The agent (impolite) turns the call into a video call: a renegotiation it offers.
        offers_before = sum(1 for d, f in agent.frames if d == "sent" and f["event"] == "RTC_SIGNAL" and f["data"]["signal"]["type"] == "offer")
        dock_a.get_by_role("button", name="Start video").click()
        growing(cust, "videoFrames", "customer: inbound video frames after the agent's upgrade")
        expect(dock_c.locator("video.call-remote")).to_be_visible()
        expect(dock_a.locator("video.call-local")).to_be_visible()
        offers_after = sum(1 for d, f in agent.frames if d == "sent" and f["event"] == "RTC_SIGNAL" and f["data"]["signal"]["type"] == "offer")
        assert offers_after > offers_before, "the upgrade was not a new offer from the agent"

        # The customer (polite) turns its camera on too: this time the customer offers.
        cust_offers = sum(1 for d, f in cust.frames if d == "sent" and f["event"] == "RTC_SIGNAL" and f["data"]["signal"]["type"] == "offer")
        dock_c.get_by_role("button", name="Start video").click()
        growing(agent, "videoFrames", "agent: inbound video frames after the customer's camera")
        expect(dock_a.locator("video.call-remote")).to_be_visible()
        assert sum(1 for d, f in cust.frames if d == "sent" and f["event"] == "RTC_SIGNAL" and f["data"]["signal"]["type"] == "offer") > cust_offers
        # Let the fake cameras paint a few frames, then keep a picture of both sides.
        wait_for(lambda: agent.page.evaluate("document.querySelector('#call-dock video.call-remote').videoWidth") > 0, message="agent sees video")
        wait_for(lambda: cust.page.evaluate("document.querySelector('#call-dock video.call-remote').videoWidth") > 0, message="customer sees video")
        time.sleep(0.5)
        screenshot(cust.page, "calls-customer-in-call")
        screenshot(agent.page, "calls-agent-in-call")
        # Phone width: the call fits without sideways scrolling.
        for side in (cust, agent):
            side.page.set_viewport_size({"width": 390, "height": 780})
            wait_for(lambda: side.page.evaluate("document.documentElement.scrollWidth") <= 390, message=f"{side.name} to fit 390 px in a call")
            screenshot(side.page, f"calls-{side.name}-in-call-phone")
            side.page.set_viewport_size({"width": 1280, "height": 860})
        assert connected(cust) and connected(agent)

        # Mute: the agent hears (near) silence from the customer; unmute: sound again.
        dock_c.get_by_role("button", name="Mute").click()
        expect(dock_c.get_by_role("button", name="Unmute")).to_be_visible()
        assert cust.page.evaluate("__call.localStream.getAudioTracks().every((t) => !t.enabled)")

        def energy_gain(side, seconds=1.0):
            """totalAudioEnergy received over `seconds`: the fake microphone's beeps give about 0.2 a
            second, silence about 1e-7."""
            first = side.stats()["audioEnergy"]
            time.sleep(seconds)
            return side.stats()["audioEnergy"] - first

        gains = []
        wait_for(lambda: gains.append(energy_gain(agent)) or gains[-1] < 0.005, message=f"silence while muted (gains {gains})")
        growing(agent, "audioBytes", "agent: audio packets still arrive while muted")
        dock_c.get_by_role("button", name="Unmute").click()
        expect(dock_c.get_by_role("button", name="Mute")).to_be_visible()
        assert cust.page.evaluate("__call.localStream.getAudioTracks().every((t) => t.enabled)")
        wait_for(lambda: gains.append(energy_gain(agent)) or gains[-1] > 0.05, message=f"sound after unmute (gains {gains})")
        print("audio energy gained on the agent's side, muted then unmuted:", ", ".join(f"{g:.2e}" for g in gains))
        growing(agent, "audioBytes", "agent: inbound audio after unmute")

        # Camera off and on again (no renegotiation): the picture-in-picture hides and returns.
        dock_c.get_by_role("button", name="Stop video").click()
        expect(dock_c.locator("video.call-local")).to_be_hidden()
        assert cust.page.evaluate("__call.localStream.getVideoTracks().every((t) => !t.enabled)")
        dock_c.get_by_role("button", name="Start video").click()
        expect(dock_c.locator("video.call-local")).to_be_visible()

        # Minimized call bar: no stage, timer and hang-up still there; then back.
        dock_a.get_by_role("button", name="Minimize").click()
        expect(dock_a).to_have_class(re.compile(r"\bminimized\b"))
        expect(dock_a.locator(".call-stage")).to_be_hidden()
        expect(dock_a.locator(".call-timer")).to_be_visible()
        expect(dock_a.get_by_role("button", name="Hang up")).to_be_visible()
        screenshot(agent.page, "calls-agent-minimized")
        dock_a.get_by_role("button", name="Expand").click()
        expect(dock_a.locator(".call-stage")).to_be_visible()
        growing(agent, "videoFrames", "agent: video still flowing")

        # The customer hangs up: both sides end, with the duration in the transcript.
        time.sleep(1.1)  # a duration of at least a second or two
        dock_c.get_by_role("button", name="Hang up").click()
        ended(cust)
        end_frame = agent.wait_frame("received", "CALL_END", call_id=call_id)
        assert end_frame["data"]["reason"] == "ended", end_frame
        assert isinstance(end_frame["data"].get("duration_s"), (int, float)), end_frame
        assert ended(agent)["reason"] == "ended"
        expect(dock_c).to_be_hidden()
        expect(dock_a).to_be_hidden()
        expect(cust.page.locator("#messages .notice", has_text=re.compile(r"^Call ended · \d+ s$"))).to_have_count(1)
        expect(panel.locator(".notice", has_text=re.compile(r"^Carol Customer ended the call · \d+ s$"))).to_have_count(1)
        assert cust.page.evaluate("__call.pc.connectionState") == "closed"
        assert agent.page.evaluate("__call.pc.connectionState") == "closed"
        assert cust.page.evaluate("__call.localStream.getTracks().every((t) => t.readyState === 'ended')"), "camera/microphone left on"
        expect(cust.page.get_by_role("button", name="Audio call with the agent")).to_be_enabled()
        expect(panel.get_by_role("button", name="Video call with Carol Customer")).to_be_enabled()

        close_chat(panel, cust)
        expect(cust.page.locator("#call-buttons")).to_be_hidden()
        rows = wait_for(lambda: (lambda r: r if any(t == "call_ended" for t, _ in r) else None)(call_events(cluster, conv_id)),
                        timeout=15, message="call events in PostgreSQL")
        assert [t for t, _ in rows] == ["call_started", "call_answered", "call_ended"], rows
        assert all(d.get("call_id") == call_id for _, d in rows), rows
        duration = rows[-1][1].get("duration_s")
        assert isinstance(duration, (int, float)) and 1 <= duration <= 120, rows
        pages.check()
    finally:
        cust.dump(request.node.name)
        agent.dump(request.node.name)


def test_rejected_and_cancelled_calls_end_cleanly_and_closing_the_chat_ends_a_call(cluster, pages, request):
    cust, agent, panel, conv_id = open_chat(cluster, pages, "Erin Customer", "erin@example.test")
    dock_c, dock_a = cust.page.locator("#call-dock"), agent.page.locator("#call-dock")
    try:
        # The agent calls (video); the customer declines.
        panel.get_by_role("button", name="Video call with Erin Customer").click()
        first = agent.wait_frame("sent", "CALL_INVITE")["data"]["call_id"]
        ring = cust.page.locator(".call-incoming", has_text="Alice Agent is calling")
        expect(ring).to_contain_text("Video call")
        assert cust.wait_frame("received", "CALL_INVITE", call_id=first)["data"]["from"]["role"] == "agent"
        ring.get_by_role("button", name="Decline").click()
        expect(ring).to_have_count(0)
        ended(agent)
        assert agent.call()["reason"] == "rejected"
        # The caller hears of it as CALL_REJECT (the brief) or CALL_END {reason: rejected} (lua/call.lua).
        told = wait_for(lambda: agent.call() and agent.frame("received", "CALL_REJECT", call_id=first)
                        or agent.frame("received", "CALL_END", call_id=first, reason="rejected"), message="the caller told of the rejection")
        print("caller learnt of the rejection by", json.dumps(told))
        expect(panel.locator(".notice", has_text="Erin Customer declined the call.")).to_be_visible()
        expect(cust.page.locator("#messages .notice", has_text="You declined the call from Alice Agent.")).to_be_visible()
        expect(dock_a).to_be_hidden()
        expect(dock_c).to_be_hidden()
        assert agent.page.evaluate("__call.localStream.getTracks().every((t) => t.readyState === 'ended')"), "camera left on"

        # Nothing is left ringing: a new call is possible at once. The agent cancels it before an answer.
        panel.get_by_role("button", name="Audio call with Erin Customer").click()
        second = wait_for(lambda: (lambda c: c["id"] if c and c["id"] != first else None)(agent.call()), message="a second call")
        expect(cust.page.locator(".call-incoming", has_text="Alice Agent is calling")).to_be_visible()
        expect(dock_a.locator(".call-status")).to_have_text("Ringing…")
        # While it rings, the customer's call buttons wait, and the server refuses a second call (busy).
        expect(cust.page.get_by_role("button", name="Audio call with the agent")).to_be_disabled()
        refused = cust.page.evaluate("""(id) => HD.debug.socket.request('CALL_INVITE', {conversation_id: id, call_id: HD.uuid(), media: 'audio'})
            .then(() => 'accepted', (e) => e.code)""", conv_id)
        assert refused == "busy", refused
        dock_a.get_by_role("button", name="Cancel call").click()
        expect(cust.page.locator(".call-incoming")).to_have_count(0)
        expect(cust.page.locator("#messages .notice", has_text="Missed call from Alice Agent.")).to_be_visible()
        expect(panel.locator(".notice", has_text="You cancelled the call.")).to_be_visible()
        cust.wait_frame("received", "CALL_END", call_id=second)

        # A third call connects; closing the chat ends it on both sides.
        cust.page.get_by_role("button", name="Audio call with the agent").click()
        ring = agent.page.locator(".call-incoming", has_text="Erin Customer is calling")
        ring.get_by_role("button", name="Accept").click()
        connected(cust)
        third = connected(agent)["id"]
        growing(agent, "audioBytes", "agent: inbound audio")
        time.sleep(1.2)  # a duration of at least a second
        close_chat(panel, cust)
        ended(agent)
        ended(cust)
        expect(dock_a).to_be_hidden()
        expect(dock_c).to_be_hidden()
        expect(panel.get_by_role("button", name="Audio call with Erin Customer")).to_be_hidden()

        rows = wait_for(lambda: (lambda r: r if sum(1 for t, d in r if d.get("call_id") == third and t == "call_ended") else None)(call_events(cluster, conv_id)),
                        timeout=15, message="call events in PostgreSQL")
        by_call = {}
        for t, d in rows:
            by_call.setdefault(d.get("call_id"), []).append(t)
        assert by_call.get(first) == ["call_started", "call_rejected"], rows
        assert by_call.get(second, [])[:1] == ["call_started"] and by_call[second][-1] in ("call_ended", "call_missed"), rows
        assert by_call.get(third) == ["call_started", "call_answered", "call_ended"], rows
        assert rows[-1][1].get("duration_s", 0) >= 1, rows
        pages.check()
    finally:
        cust.dump(request.node.name)
        agent.dump(request.node.name)


# getUserMedia that fails the way a machine without a microphone (or a refused prompt) does.
NO_MEDIA = """(() => {
    const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
        const fail = sessionStorage.getItem('test.media-error');
        if (fail) throw new DOMException(fail === 'NotFoundError' ? 'Requested device not found' : 'Permission denied', fail);
        return gum(constraints);
    };
})();"""

# No ICE candidate crosses between this page and the other side, either way (peer-reflexive
# candidates would otherwise connect a call that only one side filters): no media path is found.
NO_ICE = """(() => {
    const strip = (sdp) => sdp.split('\\r\\n').filter((l) => !l.startsWith('a=candidate')).join('\\r\\n');
    const P = RTCPeerConnection.prototype;
    const setRemote = P.setRemoteDescription;
    P.addIceCandidate = function () { return Promise.resolve(); };
    P.setRemoteDescription = function (d) { return setRemote.call(this, d && d.sdp ? {type: d.type, sdp: strip(d.sdp)} : d); };
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (text) {
        try {
            const frame = JSON.parse(text);
            if (frame.event === 'RTC_SIGNAL') {
                const signal = frame.data.signal;
                if (signal.type === 'ice-candidate') return;
                if (signal.sdp) { signal.sdp = strip(signal.sdp); text = JSON.stringify(frame); }
            }
        } catch (_) { /* not ours */ }
        return send.call(this, text);
    };
    window.HD_CALL_CONNECT_TIMEOUT_MS = 3000;
})();"""


def test_clear_messages_for_no_microphone_permission_denied_and_a_call_that_cannot_connect(cluster, pages, request):
    cust, agent, panel, conv_id = open_chat(cluster, pages, "Gina Customer", "gina@example.test", init_script=NO_MEDIA + NO_ICE)
    messages = cust.page.locator("#messages")
    try:
        # No microphone: nothing is sent, the customer is told why.
        cust.page.evaluate("sessionStorage.setItem('test.media-error', 'NotFoundError')")
        cust.page.get_by_role("button", name="Audio call with the agent").click()
        expect(messages.locator(".notice.bad", has_text="No microphone was found. Connect a microphone or headset and try again.")).to_be_visible()
        expect(cust.page.locator("#toasts")).to_contain_text("No microphone was found")
        # Permission denied.
        cust.page.evaluate("sessionStorage.setItem('test.media-error', 'NotAllowedError')")
        cust.page.get_by_role("button", name="Video call with the agent").click()
        expect(messages.locator(".notice.bad", has_text="Permission to use your microphone was denied.")).to_be_visible()
        assert cust.frame("sent", "CALL_INVITE") is None, "an invite went out without a microphone"
        expect(cust.page.locator("#call-dock")).to_be_hidden()
        expect(agent.page.locator(".call-incoming")).to_have_count(0)

        # Answering without a microphone declines, with the reason on the customer's side.
        cust.page.evaluate("sessionStorage.setItem('test.media-error', 'NotFoundError')")
        panel.get_by_role("button", name="Audio call with Gina Customer").click()
        cust.page.locator(".call-incoming", has_text="Alice Agent is calling").get_by_role("button", name="Accept").click()
        expect(messages.locator(".notice.bad", has_text="You could not join the call. No microphone was found.")).to_be_visible()
        expect(panel.locator(".notice", has_text="Gina Customer declined the call.")).to_be_visible()
        ended(agent)

        # Media works, but no ICE candidate gets through: "could not be connected", and both sides end.
        cust.page.evaluate("sessionStorage.removeItem('test.media-error')")
        cust.page.get_by_role("button", name="Audio call with the agent").click()
        agent.page.locator(".call-incoming", has_text="Gina Customer is calling").get_by_role("button", name="Accept").click()
        wait_for(lambda: (cust.call() or {}).get("pc") in ("new", "checking", "connecting"), message="customer negotiating")
        expect(messages.locator(".notice.bad", has_text="The call could not be connected.")).to_be_visible(timeout=15_000)
        assert cust.call()["reason"] == "failed"
        ended(agent)
        expect(agent.page.locator("#call-dock")).to_be_hidden()
        expect(cust.page.locator("#call-dock")).to_be_hidden()
        screenshot(cust.page, "calls-customer-errors")
        close_chat(panel, cust)
        pages.check()
    finally:
        cust.dump(request.node.name)
        agent.dump(request.node.name)


def test_unanswered_call_is_missed_on_both_sides(cluster, pages, request):
    # Nodes with a 4 s ring timeout (HELPDESK_CALL_TIMEOUT), restarted for this test.
    cluster.env["HELPDESK_CALL_TIMEOUT"] = "4"
    for node in cluster.nodes:
        node.stop()
        node.start()
    cust, agent, panel, conv_id = open_chat(cluster, pages, "Hank Customer", "hank@example.test")
    try:
        cust.page.get_by_role("button", name="Video call with the agent").click()
        call_id = cust.wait_frame("sent", "CALL_INVITE")["data"]["call_id"]
        ring = agent.page.locator(".call-incoming", has_text="Hank Customer is calling")
        expect(ring).to_be_visible()
        started = time.monotonic()
        # Nobody answers: after the timeout both sides get CALL_END {reason: missed}.
        end_c = cust.wait_frame("received", "CALL_END", timeout=15, call_id=call_id)
        end_a = agent.wait_frame("received", "CALL_END", timeout=15, call_id=call_id)
        waited = time.monotonic() - started
        print(f"missed after {waited:.1f} s (HELPDESK_CALL_TIMEOUT=4)")
        assert end_c["data"]["reason"] == "missed" and end_a["data"]["reason"] == "missed", (end_c, end_a)
        assert waited < 12, waited
        ended(cust)
        assert cust.call()["reason"] == "missed"
        expect(ring).to_have_count(0)
        expect(cust.page.locator("#messages .notice", has_text="No answer from Alice Agent.")).to_be_visible()
        expect(panel.locator(".notice", has_text="Missed video call from Hank Customer.")).to_be_visible()
        expect(cust.page.locator("#call-dock")).to_be_hidden()
        assert cust.page.evaluate("__call.localStream.getTracks().every((t) => t.readyState === 'ended')"), "camera left on"
        expect(cust.page.get_by_role("button", name="Audio call with the agent")).to_be_enabled()

        close_chat(panel, cust)
        rows = wait_for(lambda: (lambda r: r if any(t == "call_missed" for t, _ in r) else None)(call_events(cluster, conv_id)),
                        timeout=15, message="call_missed in PostgreSQL")
        assert [t for t, _ in rows] == ["call_started", "call_missed"], rows
        assert all(d.get("call_id") == call_id for _, d in rows), rows
        pages.check()
    finally:
        cust.dump(request.node.name)
        agent.dump(request.node.name)
