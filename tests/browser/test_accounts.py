"""Customer accounts and attachments in a real browser against two real nodes: a customer
registers on node A, chats (with a screenshot attached) with an agent on node B, and finds the
closed conversation and its transcript under "My conversations"; another customer does not.
Uses an agent of its own, so the board of test_pages.py (Alice never connected) is untouched."""
from __future__ import annotations

import re
import secrets
import struct
import time
import zlib

from playwright.sync_api import expect

from conftest import PASSWORD, screenshot


def tiny_png(width=3, height=2) -> bytes:
    """A valid PNG (red pixels), so the preview really decodes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def register(page, url, name, email, password):
    page.goto(url + "/")
    expect(page.locator("#account")).to_be_visible()
    page.click("#account-register")
    page.fill("#account-name", name)
    page.fill("#account-email", email)
    page.fill("#account-password", password)
    page.click("#account-submit")
    expect(page.locator("#account-who")).to_contain_text("Signed in as " + name)


def test_register_chat_with_attachment_close_and_find_it_in_my_conversations(cluster, pages):
    node_a, node_b = cluster.nodes
    tag = secrets.token_hex(3)
    agent_email, agent_name = f"ivy-{tag}@example.test", f"Ivy Agent {tag}"
    cluster.create_user(agent_email, agent_name, PASSWORD, "agent", capacity=3)
    email, name = f"dora-{tag}@example.test", f"Dora {tag}"

    # Register on node A: the start form takes the account's name and e-mail.
    cust = pages.new()
    register(cust, node_a.url, name, email, "dora password")
    expect(cust.locator("#name")).to_have_value(name)
    expect(cust.locator("#email")).to_have_value(email)
    cust.fill("#subject", "Broken invoice")
    cust.click("#start-button")
    expect(cust.locator("#chat")).to_be_visible()
    conv_id = cust.evaluate("JSON.parse(sessionStorage.getItem('hd.customer')).conversation_id")

    # The agent signs in on node B and picks the chat.
    agent = pages.new()
    agent.goto(node_b.url + "/agent")
    agent.fill("#login-email", agent_email)
    agent.fill("#login-password", PASSWORD)
    agent.press("#login-password", "Enter")
    expect(agent.locator("#me")).to_have_text(agent_name)
    agent.locator("#queue li", has_text=name).get_by_role("button", name=f"Pick {name}").click()
    panel = agent.locator("#panels [role=tabpanel]:not([hidden])").filter(has_text=name)
    expect(cust.locator("#status-line")).to_have_text(f"You are chatting with {agent_name}")

    # The customer attaches a screenshot with the file button and sends it with a line of text.
    file_name = "shot <img src=x onerror=alert(1)>.png"  # markup in a file name stays text
    cust.locator("#composer input[type=file]").set_input_files(
        files=[{"name": file_name, "mimeType": "image/png", "buffer": tiny_png()}])
    expect(cust.locator(".attach-chip")).to_contain_text(file_name)
    expect(cust.locator(".attach-chip.uploading")).to_have_count(0)
    cust.fill("#text", "Here is what I see")
    cust.locator("#composer button[type=submit]").click()
    expect(cust.locator(".attach-chip")).to_have_count(0)

    # The agent sees the message with the image previewed (fetched with its token, shown as a blob).
    mine = panel.locator("ol.messages li.theirs", has_text="Here is what I see")
    expect(mine).to_be_visible()
    image = mine.locator("img.msg-image")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    deadline = time.monotonic() + 10
    while image.evaluate("img => img.complete && img.naturalWidth") != 3:
        assert time.monotonic() < deadline, "the preview never decoded"
        time.sleep(0.1)
    expect(mine.locator(".file-link")).to_have_text(file_name + " (73 B)")
    assert panel.locator("img:not(.msg-image)").count() == 0  # the name is text, never markup
    # and its own copy shows the file too once delivered
    expect(cust.locator("#messages li.mine", has_text="Here is what I see").locator("img.msg-image")).to_have_attribute("src", re.compile(r"^blob:"))

    panel.locator("textarea").fill("Thanks Dora, fixed.")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages li.theirs", has_text="Thanks Dora, fixed.")).to_be_visible()
    panel.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed")).to_be_visible()

    # "My conversations": the closed chat, and its transcript with the attachment.
    cust.click("#my-conversations")
    item = cust.locator(f'#my-conversation-list li[data-conversation-id="{conv_id}"]')
    expect(item).to_contain_text("Broken invoice")
    expect(item.locator(".badge")).to_have_text("closed")
    item.get_by_role("button", name="Broken invoice").click()
    transcript = cust.locator("#transcript")
    expect(transcript).to_contain_text("Here is what I see")
    expect(transcript).to_contain_text("Thanks Dora, fixed.")
    expect(transcript.locator("img.msg-image")).to_have_attribute("src", re.compile(r"^blob:"))
    screenshot(cust, "customer-my-conversations")

    # Signed in again elsewhere (node B, a new tab): the same list.
    again = pages.new()
    again.goto(node_b.url + "/")
    again.click("#account-signin")
    again.fill("#account-email", email)
    again.fill("#account-password", "dora password")
    again.click("#account-submit")
    again.click("#my-conversations")
    expect(again.locator(f'#my-conversation-list li[data-conversation-id="{conv_id}"]')).to_be_visible()

    # Another customer: nothing listed, and the conversation and its file are 404 for it.
    other = pages.new()
    register(other, node_a.url, f"Otto {tag}", f"otto-{tag}@example.test", "otto password")
    other.click("#my-conversations")
    expect(other.locator("#my-conversation-list")).to_contain_text("No conversations yet.")
    status = other.evaluate("""async (id) => {
        const token = JSON.parse(sessionStorage.getItem('hd.account')).access_token;
        const r = await fetch('/api/v1/conversations/' + id + '/messages', { headers: { Authorization: 'Bearer ' + token } });
        return r.status;
    }""", conv_id)
    assert status == 404

    # Signing out leaves an anonymous start form that works as before.
    cust.click("#account-signout")
    expect(cust.locator("#account-signin")).to_be_visible()
    expect(cust.locator("#name")).not_to_have_attribute("readonly", "")
