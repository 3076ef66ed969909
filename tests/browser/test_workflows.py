"""Issue 11's workflows in the pages, on two real nodes: transfer with a note, internal notes,
escalation to the supervisor's inbox, take over, barge, the customer leaving the queue and
reopening, and notices in the order things happened. Alice (the shared agent account) and Bob,
a second agent of Sam's team created here."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from conftest import ACCOUNTS, PASSWORD, login, screenshot
from test_pages import agent_panel, customer_send, start_chat, wait_for

BOB = ("bob@example.test", "Bob Agent")


def bob_account(cluster) -> str:
    """Bob, a second agent in Sam's team (created once per session); returns his id."""
    if BOB[0] not in cluster.users:
        cluster.create_user(*BOB, PASSWORD, "agent", supervisor_email=ACCOUNTS["supervisor"][0], capacity=3)
        cluster.users = {u["email"]: u for u in cluster.nodes[0].api("GET", "/users", token=cluster.admin_token)}
    return str(cluster.users[BOB[0]]["id"])


def login_as(page, email: str):
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")


def transcript(page, selector="#messages"):
    """The transcript's lines in page order: message texts and notices."""
    return page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel + ' > li'),
        (li) => li.classList.contains('notice') ? li.textContent : li.querySelector('.msg-text').textContent)""", selector)


def test_transfer_with_a_note_the_customer_never_sees(cluster, pages):
    node_a, node_b = cluster.nodes
    bob_id = bob_account(cluster)
    cust = pages.new()
    conv_id = start_chat(cust, node_a.url, "Tina Customer", "tina@example.test", topic="Billing", subject="Charged twice")
    expect(cust.locator("#messages .notice").first).to_have_text(re.compile("An agent will be with you shortly"))
    # written while waiting: it comes before the agent's arrival, whatever arrives first later
    customer_send(cust, "I was charged twice")
    expect(cust.locator("#messages li.mine .msg-state")).to_have_text("Delivered")

    bob = pages.new()
    bob.goto(node_a.url + "/agent")
    login_as(bob, BOB[0])
    expect(bob.locator("#me")).to_have_text("Bob Agent")
    alice = pages.new()
    alice.goto(node_b.url + "/agent")
    login(alice, "agent")
    alice.locator("#queue li", has_text="Tina Customer").get_by_role("button", name="Pick Tina Customer").click()
    panel = agent_panel(alice, "Tina Customer")
    expect(panel.locator(".msg-text", has_text="I was charged twice")).to_be_visible()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    panel.locator("textarea").fill("Hi Tina, let me check.")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages .msg-text", has_text="Hi Tina, let me check.")).to_be_visible()

    # An internal note through the composer's toggle: staff only.
    panel.get_by_label("Internal note").check()
    expect(panel.get_by_role("button", name="Add note")).to_be_visible()
    panel.locator("textarea").fill("Card ends 4242, second charge pending")
    panel.locator("textarea").press("Enter")
    expect(panel.locator("li.internal", has_text="Card ends 4242")).to_be_visible()
    expect(panel.locator("li.internal", has_text="Card ends 4242").locator(".msg-state")).to_have_text("Delivered")
    panel.get_by_label("Internal note").uncheck()

    # Transfer to Bob (who has room) with a note for him.
    panel.get_by_role("button", name="Transfer…").click()
    target = panel.locator("select[id^=transfer-target-]")
    expect(target.locator(f'option[value="agent:{bob_id}"]')).to_have_text(re.compile(r"^Bob Agent \(0/3"))
    target.select_option(f"agent:{bob_id}")
    panel.locator("input[id^=transfer-note-]").fill("VIP: refund approved by finance")
    screenshot(alice, "agent-transfer")
    panel.get_by_role("button", name="Transfer", exact=True).click()

    # Alice's tab closes with a notice.
    expect(alice.get_by_role("tab", name=re.compile("Tina Customer"))).to_have_count(0)
    expect(alice.locator("#chat-notice")).to_have_text("Your chat with Tina Customer was transferred to Bob Agent.")
    # Bob has it, with the note and the staff history (internal note included).
    bob_panel = agent_panel(bob, "Tina Customer")
    expect(bob_panel).to_contain_text("Transferred to you with a note: VIP: refund approved by finance")
    expect(bob_panel.locator("li.internal", has_text="Card ends 4242")).to_be_visible()
    expect(bob_panel.locator(".msg-text", has_text="I was charged twice")).to_be_visible()
    # The customer follows the new name.
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Bob Agent")
    bob_panel.locator("textarea").fill("Bob here: your refund is on its way.")
    bob_panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages .msg-text", has_text="Bob here: your refund is on its way.")).to_be_visible()
    # Bob's message came after the transfer: everything before it has arrived, and no note is there.
    seen = cust.locator("#messages").inner_text()
    assert "VIP" not in seen and "4242" not in seen and "finance" not in seen
    # Nor in what REST gives the customer.
    token = cust.evaluate("JSON.parse(sessionStorage.getItem('hd.customer')).token")
    messages = node_a.api("GET", f"/conversations/{conv_id}/messages", token=token)["messages"]
    assert [m["text"] for m in messages] == ["I was charged twice", "Hi Tina, let me check.", "Bob here: your refund is on its way."]

    # Notices and messages in the order they happened, and the same after a reload.
    expected = [
        "An agent will be with you shortly. You can already describe your question here.",
        "I was charged twice", "Alice Agent joined the chat", "Hi Tina, let me check.",
        "You are now chatting with Bob Agent", "Bob here: your refund is on its way.",
    ]
    assert transcript(cust) == expected
    cust.reload()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Bob Agent")
    expect(cust.locator("#messages .msg-text", has_text="Bob here")).to_have_count(1)
    wait_for(lambda: transcript(cust) == expected, message=f"the same order after a reload (now {transcript(cust)})")

    bob_panel.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_be_visible()
    pages.check()


def test_escalation_reaches_the_inbox_and_the_supervisor_takes_over(cluster, pages):
    node_a, node_b = cluster.nodes
    agent_id = str(cluster.users[ACCOUNTS["agent"][0]]["id"])
    sup = pages.new()
    sup.goto(node_a.url + "/supervisor")
    login(sup, "supervisor")
    cust = pages.new()
    start_chat(cust, node_a.url, "Uma Customer", "uma@example.test", subject="Cancel my plan")
    alice = pages.new()
    alice.goto(node_b.url + "/agent")
    login(alice, "agent")
    agent_row = sup.locator(f'#agents tr[data-agent-id="{agent_id}"]')
    expect(agent_row.locator(".agent-status")).to_have_text("online")
    load_before = int(agent_row.locator(".load-text").inner_text().split("/")[0])
    alice.locator("#queue li", has_text="Uma Customer").get_by_role("button", name="Pick Uma Customer").click()
    expect(agent_row.locator(".load-text")).to_have_text(re.compile(f"^{load_before + 1}/"))
    customer_send(cust, "This is unacceptable")
    panel = agent_panel(alice, "Uma Customer")
    expect(panel.locator(".msg-text", has_text="This is unacceptable")).to_be_visible()

    # The agent escalates with a note; the supervisor's inbox shows it live.
    panel.get_by_role("button", name="Escalate…").click()
    panel.locator("input[id^=escalate-note-]").fill("Threatens to cancel, <b>angry</b>")
    panel.get_by_role("button", name="Escalate", exact=True).click()
    expect(panel).to_contain_text("You escalated this chat: Threatens to cancel, <b>angry</b>.")
    expect(panel.locator(".chat-head .badge", has_text="escalated")).to_be_visible()
    item = sup.locator("#escalations li", has_text="Uma Customer")
    expect(item).to_contain_text("“Threatens to cancel, <b>angry</b>”")  # as text, not markup
    expect(item).to_contain_text("with Alice Agent")
    assert sup.locator("#escalations b").count() == 0
    expect(sup.locator("#inbox-count")).to_have_text("1")
    screenshot(sup, "supervisor-escalation-inbox", full_page=True)
    # After a reload the inbox is rebuilt from REST, note included.
    sup.reload()
    expect(item).to_contain_text("Threatens to cancel")

    # Take over from the inbox.
    item.get_by_role("button", name="Take over escalated chat with Uma Customer").click()
    expect(sup.locator("#escalations li", has_text="Uma Customer")).to_have_count(0)
    expect(sup.locator("#monitor-info")).to_contain_text("Uma Customer ↔ you")
    expect(sup.locator("#note-visible")).to_be_checked()
    expect(sup.locator("#monitor-messages .msg-text", has_text="This is unacceptable")).to_be_visible()
    # The agent's tab closes with a notice, and its capacity is freed.
    expect(alice.get_by_role("tab", name=re.compile("Uma Customer"))).to_have_count(0)
    expect(alice.locator("#chat-notice")).to_have_text("Sam Supervisor took over your chat with Uma Customer.")
    expect(agent_row.locator(".load-text")).to_have_text(re.compile(f"^{load_before}/"))
    # The customer sees the new name.
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Sam Supervisor")
    expect(cust.locator("#messages")).to_contain_text("You are now chatting with Sam Supervisor")
    expect(sup.locator("#live tr", has_text="Uma Customer")).to_contain_text("Sam Supervisor")

    # Barge: a message the customer sees, then an internal note the customer does not.
    sup.fill("#note", "Hello Uma, I am Sam, the team lead.")
    sup.press("#note", "Enter")
    barge = cust.locator("#messages li.theirs", has_text="Hello Uma, I am Sam, the team lead.")
    expect(barge).to_be_visible()
    expect(barge.locator(".msg-who")).to_have_text("Sam Supervisor")
    sup.uncheck("#note-visible")
    sup.fill("#note", "Internal: offer 20 percent")
    sup.press("#note", "Enter")
    expect(sup.locator("#monitor-messages li.internal.mine", has_text="offer 20 percent").locator(".msg-state")).to_have_text("Delivered")
    sup.check("#note-visible")
    sup.fill("#note", "Let me fix this for you.")
    sup.press("#note", "Enter")
    expect(cust.locator("#messages .msg-text", has_text="Let me fix this for you.")).to_be_visible()
    assert "offer 20 percent" not in cust.locator("#messages").inner_text()
    customer_send(cust, "Thank you, Sam")
    expect(sup.locator("#monitor-messages .msg-text", has_text="Thank you, Sam")).to_be_visible()
    screenshot(sup, "supervisor-taken-over", full_page=True)
    screenshot(cust, "customer-taken-over")

    # Close from the board.
    sup.fill("#monitor-resolution", "Kept the customer")
    sup.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_have_text("The agent closed this chat. Thank you for contacting us.")
    expect(sup.locator("#monitor-messages")).to_contain_text("Conversation closed: Kept the customer.")
    expect(sup.locator("#live tr", has_text="Uma Customer")).to_have_count(0)
    pages.check()


def test_customer_leaves_the_queue(cluster, pages):
    node_a, node_b = cluster.nodes
    sup = pages.new()
    sup.goto(node_b.url + "/supervisor")
    login(sup, "supervisor")
    cust = pages.new()
    conv_id = start_chat(cust, node_a.url, "Vic Customer", "vic@example.test", subject="Never mind")
    expect(sup.locator("#queue li", has_text="Vic Customer")).to_be_visible()
    expect(cust.locator("#leave")).to_be_visible()

    cust.get_by_role("button", name="Leave the queue").click()
    expect(cust.locator("#closed-text")).to_have_text("You left the queue. You can start a new chat at any time.")
    expect(cust.locator("#composer")).to_be_hidden()
    expect(cust.locator("#leave")).to_be_hidden()
    expect(cust.locator("#rating-form")).to_be_hidden()
    expect(cust.locator("#reopen")).to_be_hidden()
    expect(cust.locator("#status-line")).to_have_text("This chat has ended")
    expect(cust.locator("#messages .notice", has_text="You left the queue")).to_have_count(1)
    screenshot(cust, "customer-left-queue")
    # At once, for everyone: out of the supervisor's queue, archived as abandoned.
    expect(sup.locator("#queue li", has_text="Vic Customer")).to_have_count(0)
    wait_for(lambda: cluster.psql(f"SELECT status || '|' || resolution FROM conversations WHERE id = '{conv_id}'") == "abandoned|abandoned",
             timeout=15, message="the abandoned conversation in PostgreSQL")
    # A new chat can start right away.
    cust.get_by_role("button", name="Start a new chat").click()
    expect(cust.locator("#start")).to_be_visible()
    pages.check()


def test_customer_and_agent_reopen_a_closed_chat(cluster, pages):
    node_a, node_b = cluster.nodes
    cust = pages.new()
    start_chat(cust, node_a.url, "Wes Customer", "wes@example.test", subject="One more thing")
    alice = pages.new()
    alice.goto(node_b.url + "/agent")
    login(alice, "agent")
    alice.locator("#queue li", has_text="Wes Customer").get_by_role("button", name="Pick Wes Customer").click()
    panel = agent_panel(alice, "Wes Customer")
    panel.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_be_visible()

    # The customer reopens within the window: back in the queue.
    cust.get_by_role("button", name="Reopen this chat").click()
    expect(cust.locator("#status-line")).to_have_text("You are number 1 in the queue")
    expect(cust.locator("#composer")).to_be_visible()
    expect(alice.locator("#queue li", has_text="Wes Customer")).to_be_visible()
    alice.locator("#queue li", has_text="Wes Customer").get_by_role("button", name="Pick Wes Customer").click()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    customer_send(cust, "Thanks for reopening")
    panel = agent_panel(alice, "Wes Customer")
    expect(panel.locator(".msg-text", has_text="Thanks for reopening")).to_be_visible()
    panel.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_be_visible()

    # The agent reopens it from "My closed chats" and has it again.
    panel.get_by_role("button", name="Dismiss").click()
    reopen = alice.locator("#history li", has_text="Wes Customer").first.get_by_role("button", name="Reopen chat with Wes Customer")
    expect(reopen).to_be_visible(timeout=15_000)
    reopen.click()
    expect(alice.get_by_role("tab", name=re.compile("Wes Customer"))).to_have_attribute("aria-selected", "true")
    panel = agent_panel(alice, "Wes Customer")
    expect(panel.locator(".msg-text", has_text="Thanks for reopening")).to_be_visible()
    expect(panel.locator("textarea")).to_be_visible()
    panel.get_by_role("button", name="Close chat").click()
    expect(panel).to_contain_text("You closed this chat")
    pages.check()
