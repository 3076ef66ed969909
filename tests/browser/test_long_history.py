"""A long conversation's history on the customer page comes in HISTORY pages, one JOIN each; a page
refused for a passing reason (a long history outruns the socket's JOIN budget, a burst of 20) is
asked for again. Only a customer page: the agent must not connect before test_pages' first test."""
from __future__ import annotations

import subprocess

from playwright.sync_api import expect

from test_pages import customer_send, start_chat, wait_for

# 4 pages of 200 after the first message
OLD_MESSAGES = 799


def test_a_refused_history_page_is_asked_again_and_the_history_arrives_whole(cluster, pages):
    node_a = cluster.nodes[0]
    cust = pages.new()
    conv_id = start_chat(cust, node_a.url, "Lena Long", "lena@example.test")
    customer_send(cust, "First words")
    expect(cust.locator("#messages li.mine", has_text="First words").locator(".msg-state")).to_have_text("Delivered")

    # Messages written straight into the conversation's stream (as if sent while this page was
    # away): only a JOIN's HISTORY brings them.
    conv_key = cluster.prefix + "conv:" + conv_id
    redis = cluster._redis_cli()
    customer_id = subprocess.run(redis + ["HGET", conv_key, "customer_id"], capture_output=True, text=True, check=True).stdout.strip()
    assert customer_id
    add = ("local id for i = 1, tonumber(ARGV[2]) do id = redis.call('XADD', KEYS[1], '*', 'sender_id', ARGV[1], "
           "'sender_role', 'customer', 'sender_name', 'Lena Long', 'text', 'old ' .. i, 'client_msg_id', 'old-' .. i, "
           "'internal', '0', 'sent_at', '1700000000000') end return id")
    last = subprocess.run(redis + ["EVAL", add, "1", conv_key + ":msgs", customer_id, str(OLD_MESSAGES)],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert "-" in last

    # As after a RESYNC the socket joins again and pages through the history; the JOIN of its
    # second page is refused once (rate_limited).
    cust.evaluate("""() => {
        const s = HD.debug.socket, real = s.request.bind(s);
        window.pageRefusals = 0;
        s.request = (event, data) => {
            if (event === 'JOIN_CONVERSATION' && data.last_message_id && window.pageRefusals === 0) {
                window.pageRefusals++;
                return Promise.reject({ code: 'rate_limited', message: 'slow down' });
            }
            return real(event, data);
        };
        s.rejoinAll();
    }""")
    wait_for(lambda: cust.evaluate("(id) => HD.debug.socket.conversations.get(id).lastId", conv_id) == last,
             timeout=30, message="the resume point at the last message of the history")
    assert cust.evaluate("window.pageRefusals") == 1, "a page's JOIN went as a request, and was refused once"
    expect(cust.locator("#messages .msg-text", has_text=f"old {OLD_MESSAGES}")).to_have_count(1)
    expect(cust.locator("#messages .msg-text", has_text="First words")).to_have_count(1)
    expect(cust.locator("#messages li.msg")).to_have_count(OLD_MESSAGES + 1)
