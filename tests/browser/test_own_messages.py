"""The customer page's own messages with SEND_MESSAGE {echo: false}: each comes back in its ACK,
shows once, never becomes the point the page resumes from (an ACK can overtake earlier messages),
and an ACK that comes after its request timed out still marks it stored. Only a customer page:
the agent must not connect before test_pages' first test."""
from __future__ import annotations

from playwright.sync_api import expect

from test_pages import customer_send, start_chat, wait_for


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
