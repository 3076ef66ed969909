"""The customer page's own messages with SEND_MESSAGE {echo: false}: each comes back in its ACK,
shows once, never becomes the point the page resumes from (an ACK can overtake earlier messages),
an ACK that comes after its request timed out still marks it stored, and a message refused for a
passing reason is sent again on the socket that stays open. Only a customer page:
the agent must not connect before test_pages' first test."""
from __future__ import annotations

from playwright.sync_api import expect

from test_pages import customer_send, record_frames, refuse_once, start_chat, wait_for


def test_own_messages_come_from_their_ack_and_are_not_a_resume_point(cluster, pages):
    node_a = cluster.nodes[0]
    cust = pages.new()
    conv_id = start_chat(cust, node_a.url, "Olive Own", "olive@example.test")

    customer_send(cust, "My own words")
    mine = cust.locator("#messages li.mine", has_text="My own words")
    expect(mine.locator(".msg-state")).to_have_text("Delivered")
    expect(cust.locator("#messages .msg-text", has_text="My own words")).to_have_count(1)
    kept = cust.evaluate("JSON.parse(sessionStorage.getItem('hd.customer')).messages")
    assert [(m["text"], m.get("via_ack")) for m in kept] == [("My own words", True)]
    stored_id = kept[0]["id"]
    # No message came in stream order yet: the socket would resume from the start.
    assert cust.evaluate("(id) => HD.debug.socket.conversations.get(id).lastId", conv_id) is None

    # A reload resumes from before it (the page's lastId skips it): HISTORY brings it, shown once,
    # and now in stream order it moves the socket's resume point.
    cust.reload()
    expect(cust.locator("#messages .msg-text", has_text="My own words")).to_have_count(1)
    wait_for(lambda: cust.evaluate("(id) => HD.debug.socket.conversations.get(id).lastId", conv_id) == stored_id,
             message="the resume point at the message HISTORY brought")

    # The ACK of a message whose request timed out (the outbox still holds it) still marks it
    # stored and shows it: with echo: false no NEW_MESSAGE would.
    late = cust.evaluate("""(id) => {
        const s = HD.debug.socket;
        s.outbox.set('late-1', { conversation_id: id, text: 'Late but stored', internal: false, attachment_ids: [] });
        const me = s.hello.user;
        const message = { id: '9999999999999-0', sender: { id: me.id, role: me.role, name: me.name }, text: 'Late but stored',
                          sent_at: Date.now(), client_msg_id: 'late-1', internal: false };
        s.receive(JSON.stringify({ event: 'ACK', data: { conversation_id: id, message_id: message.id, client_msg_id: 'late-1',
                                                         duplicate: false, message } }));
        return { inOutbox: s.outbox.has('late-1'), lastId: s.conversations.get(id).lastId };
    }""", conv_id)
    assert late == {"inOutbox": False, "lastId": stored_id}
    expect(cust.locator("#messages .msg-text", has_text="Late but stored")).to_have_count(1)


def test_a_refused_join_is_retried_and_a_left_conversation_is_not_brought_back(cluster, pages):
    node_a = cluster.nodes[0]
    cust = pages.new()
    sent = record_frames(cust, "framesent")
    conv_id = start_chat(cust, node_a.url, "Rita Retry", "rita@example.test")
    wait_for(lambda: cust.evaluate("0") == 0 and any(f["event"] == "JOIN_CONVERSATION" for f in sent), message="the first JOIN")

    # The next JOIN is refused for a passing reason (as after a RESYNC storm): the socket asks
    # again by itself, within a few seconds.
    joins_before = sum(f["event"] == "JOIN_CONVERSATION" for f in sent)
    refuse_once(cust, "JOIN_CONVERSATION", "unavailable")
    cust.evaluate("(id) => HD.debug.socket.sendJoin(id)", conv_id)
    # (Playwright hands over frame events only during its own calls: the evaluate lets them in.)
    wait_for(lambda: cust.evaluate("0") == 0 and sum(f["event"] == "JOIN_CONVERSATION" for f in sent) > joins_before,
             message="the JOIN asked again")

    # A frame already on its way for a conversation the page let go of does not bring it back (a
    # later join would have resumed from that frame's id).
    assert cust.evaluate("""(id) => {
        const s = HD.debug.socket;
        s.leave(id);
        s.conversations.delete(id);
        s.receive(JSON.stringify({ event: 'NEW_MESSAGE', data: { conversation_id: id, message: {
            id: '9999999999999-1', sender: { id: '1', role: 'agent', name: 'A' }, text: 'late', sent_at: Date.now(),
            client_msg_id: 'x', internal: false } } }));
        return s.conversations.has(id);
    }""", conv_id) is False


def test_a_message_refused_for_a_passing_reason_is_sent_again_on_the_open_socket(cluster, pages):
    node_a = cluster.nodes[0]
    cust = pages.new()
    received = record_frames(cust)
    start_chat(cust, node_a.url, "Uma Unavailable", "uma@example.test")
    wait_for(lambda: cust.evaluate("0") == 0 and any(f.get("event") == "HELLO" for f in received), message="HELLO")

    # The first SEND_MESSAGE meets passing trouble (Redis away a moment: ERROR unavailable) on a
    # connection that stays open: the socket sends it again by itself, with the same client_msg_id.
    refuse_once(cust, "SEND_MESSAGE", "unavailable")
    customer_send(cust, "Through a blip")
    mine = cust.locator("#messages li.mine", has_text="Through a blip")
    expect(mine.locator(".msg-state")).to_have_text("Delivered")
    expect(cust.locator("#messages .msg-text", has_text="Through a blip")).to_have_count(1)
    assert len(cust.evaluate("window.refused")) == 1
    assert sum(f.get("event") == "HELLO" for f in received) == 1, "no reconnect was needed"
