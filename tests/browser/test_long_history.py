"""A long conversation's history on the customer page comes in HISTORY pages, one JOIN each, and
outruns the socket's JOIN budget (a burst of 20, then 2 a second): the refused page is asked for
again, and the pages after it go no faster than the budget refills, so the socket does not collect
refusals (each counts against its error budget, 20 a minute close it). Only a customer page: the
agent must not connect before test_pages' first test."""
from __future__ import annotations

from playwright.sync_api import expect

from test_pages import customer_send, record_frames, start_chat, wait_for

# 60 pages of 200: 40 past the JOIN burst
OLD_MESSAGES = 11999


def test_a_history_longer_than_the_join_budget_arrives_whole_with_at_most_one_refusal(cluster, pages):
    node_a = cluster.nodes[0]
    cust = pages.new()
    received = record_frames(cust)
    conv_id = start_chat(cust, node_a.url, "Lena Long", "lena@example.test")
    customer_send(cust, "First words")
    expect(cust.locator("#messages li.mine", has_text="First words").locator(".msg-state")).to_have_text("Delivered")

    # Messages written straight into the conversation's stream (as if sent while this page was
    # away): only a JOIN's HISTORY brings them.
    conv_key = cluster.prefix + "conv:" + conv_id
    customer_id = cluster.redis("HGET", conv_key, "customer_id")
    assert customer_id
    add = ("local id for i = 1, tonumber(ARGV[2]) do id = redis.call('XADD', KEYS[1], '*', 'sender_id', ARGV[1], "
           "'sender_role', 'customer', 'sender_name', 'Lena Long', 'text', 'old ' .. i, 'client_msg_id', 'old-' .. i, "
           "'internal', '0', 'sent_at', '1700000000000') end return id")
    last = cluster.redis("EVAL", add, "1", conv_key + ":msgs", customer_id, str(OLD_MESSAGES))
    assert "-" in last

    # As after a RESYNC: the socket joins again and pages through the history.
    cust.evaluate("HD.debug.socket.rejoinAll()")
    wait_for(lambda: cust.evaluate("(id) => HD.debug.socket.conversations.get(id).lastId", conv_id) == last,
             timeout=90, message="the resume point at the last message of the history")
    refusals = [f for f in received if f.get("event") == "ERROR" and f.get("data", {}).get("code") == "rate_limited"]
    assert len(refusals) <= 1, f"at most one page refused, the rest paced: {len(refusals)} refusals"
    assert not any(f.get("event") == "HELLO" for f in received[2:]), "the socket was not closed and opened again"
    expect(cust.locator("#messages .msg-text", has_text=f"old {OLD_MESSAGES}")).to_have_count(1)
    expect(cust.locator("#messages li.msg")).to_have_count(OLD_MESSAGES + 1)

    # The pacing belongs to one connection's JOIN budget: a new connection (a fresh budget) pages
    # at once again.
    if refusals:
        assert cust.evaluate("HD.debug.socket.pagesPaced") is True, "the refusal paced the pages"
    cust.evaluate("HD.debug.socket.pagesPaced = true")
    cust.evaluate("HD.debug.socket.hello = null; HD.debug.socket.ws.close()")
    wait_for(lambda: cust.evaluate("HD.debug.socket.hello !== null"), timeout=30, message="a new connection's HELLO")
    assert cust.evaluate("HD.debug.socket.pagesPaced") is False, "a new connection's pages are not paced"

    # A paced page's JOIN still waiting when the connection is replaced is dropped: the reconnect
    # JOINs every conversation at once, so this one is joined once, not again when the timer fires.
    due = cust.evaluate("""(id) => {
        const s = HD.debug.socket;
        s.joinsOf = 0;
        const sendJoin = s.sendJoin.bind(s);
        s.sendJoin = (c) => { if (c === id) s.joinsOf += 1; return sendJoin(c); };
        s.pagesPaced = true;
        const due = Date.now() + 10000;
        s.nextPageAt = due;
        s.nextPage(id);
        return due;
    }""", conv_id)
    assert cust.evaluate("HD.debug.socket.joinsOf") == 0, "the page's JOIN waits for its turn"
    cust.evaluate("HD.debug.socket.hello = null; HD.debug.socket.ws.close()")
    wait_for(lambda: cust.evaluate("HD.debug.socket.hello !== null"), timeout=30, message="a new connection's HELLO")
    wait_for(lambda: cust.evaluate("HD.debug.socket.joinsOf") == 1, timeout=10, message="the reconnect's JOIN")
    assert cust.evaluate("Date.now()") < due, "the new connection came before the paced JOIN was due (else this proves nothing)"
    # The marker: a timer due after the paced one. Timers fire in order, so once it has fired the
    # paced JOIN would have been sent.
    cust.evaluate("(due) => new Promise((done) => setTimeout(done, Math.max(0, due - Date.now()) + 100))", due)
    assert cust.evaluate("HD.debug.socket.joinsOf") == 1, "the paced JOIN of the old connection was not sent on the new one"

    # Two JOINs put off for one conversation are one: the second replaces the first.
    cust.evaluate("""(id) => { const s = HD.debug.socket; s.joinsOf = 0; s.joinLater(id, 200); s.joinLater(id, 300); }""", conv_id)
    cust.evaluate("() => new Promise((done) => setTimeout(done, 400))")
    wait_for(lambda: cust.evaluate("HD.debug.socket.joinsOf") >= 1, timeout=5, message="the JOIN put off")
    assert cust.evaluate("HD.debug.socket.joinsOf") == 1, "one JOIN for the two put off"
