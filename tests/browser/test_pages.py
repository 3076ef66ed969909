"""The four pages in a real browser against two real nodes: the customer on node A, the agent on
node B, the supervisor watching, the admin managing. Tests run in file order (the first one needs
the agent never to have connected before)."""
from __future__ import annotations

import json
import re
import time

from playwright.sync_api import expect

from conftest import ACCOUNTS, login, screenshot

XSS = "<img src=x onerror=alert(1)>"


def wait_for(predicate, timeout=10.0, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


def record_frames(page, direction="framereceived"):
    """Every frame the page's sockets receive ("framesent": send) from now on, decoded, in order.
    (Playwright hands frame events over only during its own calls, e.g. an evaluate.)"""
    frames = []
    page.on("websocket", lambda ws: ws.on(direction, lambda f: frames.append(json.loads(f))))
    return frames


def refuse_once(page, event, code):
    """The page's socket has its next `event` request refused with `code`, as the server would,
    without sending it; later ones go through. `window.refused` holds the refused request's data."""
    page.evaluate("""([event, code]) => {
        const s = HD.debug.socket, real = s.request.bind(s);
        window.refused = [];
        s.request = (e, data) => {
            if (e === event && window.refused.length === 0) {
                window.refused.push(data);
                return Promise.reject({ code, message: 'refused by the test' });
            }
            return real(e, data);
        };
    }""", [event, code])


def start_chat(page, url, name, email, topic=None, subject=None):
    page.goto(url + "/")
    page.fill("#name", name)
    page.fill("#email", email)
    if topic:
        page.select_option("#category", label=topic)
    if subject:
        page.fill("#subject", subject)
    page.click("#start-button")
    expect(page.locator("#chat")).to_be_visible()
    return page.evaluate("JSON.parse(sessionStorage.getItem('hd.customer')).conversation_id")


def customer_send(page, text):
    page.fill("#text", text)
    page.press("#text", "Enter")


def agent_panel(page, customer_name):
    return page.locator("#panels [role=tabpanel]:not([hidden])").filter(has_text=customer_name)


def test_chat_between_customer_on_node_a_and_agent_on_node_b(cluster, pages):
    node_a, node_b = cluster.nodes
    agent_id = str(cluster.users[ACCOUNTS["agent"][0]]["id"])

    # The supervisor watches from node A before the agent ever connects.
    sup = pages.new()
    sup.goto(node_a.url + "/supervisor")
    login(sup, "supervisor")
    agent_row = sup.locator(f'#agents tr[data-agent-id="{agent_id}"]')
    expect(agent_row.locator(".agent-name")).to_have_text("Alice Agent")
    expect(agent_row.locator(".agent-status")).to_have_text("offline")
    expect(agent_row.locator(".load-text")).to_have_text("0/3")

    # The customer starts a chat on node A and sees its place in the queue.
    cust = pages.new()
    conv_id = start_chat(cust, node_a.url, "Carol Customer", "carol@example.test", topic="Billing", subject="Invoice question")
    expect(cust.locator("#status-line")).to_have_text("You are number 1 in the queue")
    expect(cust.locator("#wait-line")).to_contain_text("Estimated wait")
    expect(cust.locator("#banner")).to_be_hidden()

    # The supervisor sees the customer waiting, coloured against the target (green under 60 s).
    sup_item = sup.locator("#queue li", has_text="Carol Customer")
    expect(sup_item.locator(".wait")).to_have_class(re.compile(r"\bok\b"))
    screenshot(cust, "customer-waiting")
    screenshot(sup, "supervisor-waiting")

    # The agent signs in on node B (desktop alerts allowed) and sees the customer in the queue.
    agent = pages.new(permissions=["notifications"], origin=node_b.url)
    agent.goto(node_b.url + "/agent")
    login(agent, "agent")
    expect(agent.locator("#me")).to_have_text("Alice Agent")
    queue_item = agent.locator("#queue li", has_text="Carol Customer")
    expect(queue_item).to_contain_text("Billing · Invoice question")

    # The supervisor sees the agent come online on node B with no load.
    expect(agent_row.locator(".agent-status")).to_have_text("online")
    expect(agent_row).to_contain_text("node-b")
    expect(agent_row.locator(".load-text")).to_have_text("0/3")

    queue_item.get_by_role("button", name="Pick Carol Customer").click()
    expect(agent.get_by_role("tab", name=re.compile("Carol Customer"))).to_have_attribute("aria-selected", "true")
    expect(agent.locator("#queue li", has_text="Carol Customer")).to_have_count(0)
    # Assignment: a beep and a desktop notification.
    wait_for(lambda: agent.evaluate("HD.debug.beeps") >= 1, message="a beep")
    wait_for(lambda: agent.evaluate("HD.debug.notifications") >= 1, message="a desktop notification")

    # Load 0/3 -> 1/3 on the board; the customer learns the agent's name.
    expect(agent_row.locator(".load-text")).to_have_text("1/3")
    expect(sup.locator("#queue li", has_text="Carol Customer")).to_have_count(0)
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    expect(cust.locator("#messages")).to_contain_text("Alice Agent joined the chat")

    # Typing indicator customer -> agent.
    panel = agent_panel(agent, "Carol Customer")
    cust.fill("#text", "Hello, I have a")
    cust.locator("#text").press("Space")
    expect(panel.locator(".typing")).to_have_text("Carol Customer is typing…")

    # Customer -> agent, with delivery state on the customer's side.
    customer_send(cust, "Hello from the customer")
    mine = cust.locator("#messages li.mine", has_text="Hello from the customer")
    expect(mine.locator(".msg-state")).to_have_text("Delivered")
    expect(panel.locator("ol.messages li.theirs", has_text="Hello from the customer")).to_be_visible()
    expect(panel.locator(".typing")).to_be_hidden()

    # Agent -> customer.
    panel.locator("textarea").fill("Hi Carol, Alice here. How can I help?")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages li.theirs", has_text="Hi Carol, Alice here. How can I help?")).to_be_visible()
    expect(cust.locator("#messages li.theirs .msg-who").last).to_have_text("Alice Agent")
    expect(panel.locator("ol.messages li.mine .msg-state").last).to_have_text("Delivered")

    # A JOIN refused for a passing reason (rate_limited: many chats' histories loading at once)
    # does not end the chat on the agent's page; the socket asks again by itself.
    agent.evaluate("(id) => HD.debug.socket.onEvent('JOIN_FAILED', { conversation_id: id, code: 'rate_limited', message: 'slow down' }, null)",
                   conv_id)
    expect(panel.locator("textarea")).to_be_visible()

    # Markup in a message is text, on both sides, and runs nothing.
    customer_send(cust, XSS)
    expect(panel.locator("ol.messages .msg-text", has_text=XSS)).to_have_text(XSS)
    expect(cust.locator("#messages .msg-text", has_text=XSS)).to_have_text(XSS)
    assert agent.locator("#panels img").count() == 0
    assert cust.locator("#messages img").count() == 0

    # The supervisor monitors silently and leaves an internal note the customer never sees.
    sup.locator("#live tr", has_text="Carol Customer").get_by_role("button", name="Monitor chat with Carol Customer").click()
    expect(sup.locator("#monitor-messages")).to_contain_text("Hello from the customer")
    expect(sup.locator("#monitor-messages .msg-text", has_text=XSS)).to_have_text(XSS)
    sup.fill("#note", "Internal: offer a voucher")
    sup.press("#note", "Enter")
    expect(panel.locator("ol.messages li.internal", has_text="Internal: offer a voucher")).to_be_visible()
    expect(sup.locator("#monitor-messages li.internal.mine .msg-state")).to_have_text("Delivered")
    panel.locator("textarea").fill("I can offer you a voucher.")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages", has_text="I can offer you a voucher.")).to_be_visible()
    expect(sup.locator("#monitor-messages")).to_contain_text("I can offer you a voucher.")
    assert "offer a voucher" not in cust.locator("#messages").inner_text().replace("I can offer you a voucher.", "")
    assert sup.locator("#monitor-messages img").count() == 0

    screenshot(cust, "customer")
    screenshot(agent, "agent")
    screenshot(sup, "supervisor")

    # A reload keeps the chat (sessionStorage) and rejoins from the last message id.
    cust.reload()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    for text in ("Hello from the customer", "Hi Carol, Alice here. How can I help?", XSS, "I can offer you a voucher."):
        expect(cust.locator("#messages .msg-text", has_text=text)).to_have_count(1)
    panel.locator("textarea").fill("Still there after your reload?")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages .msg-text", has_text="Still there after your reload?")).to_have_count(1)
    customer_send(cust, "Yes, thanks!")
    expect(panel.locator("ol.messages .msg-text", has_text="Yes, thanks!")).to_have_count(1)

    # Phone width: every page still fits (no sideways scrolling).
    phone = pages.new(viewport={"width": 390, "height": 780})
    phone.goto(node_a.url + "/")
    expect(phone.locator("#start-button")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(phone, "customer-phone")
    for page, name in ((cust, "customer-chat-phone"), (agent, "agent-phone"), (sup, "supervisor-phone")):
        page.set_viewport_size({"width": 390, "height": 780})
        # Layout settles over a frame or two after a resize (Chart.js redraws on the next one).
        wait_for(lambda: page.evaluate("document.documentElement.scrollWidth") <= 390, message=f"{name} to fit 390 px without sideways scrolling")
        screenshot(page, name, full_page=True)
        page.set_viewport_size({"width": 1280, "height": 860})

    # The agent closes with a resolution; the customer sees it and rates.
    panel.locator("input[id^=resolution-]").fill("Voucher offered")
    panel.get_by_role("button", name="Close chat").click()
    expect(panel).to_contain_text("You closed this chat: Voucher offered.")
    expect(cust.locator("#closed-text")).to_have_text("The agent closed this chat. Thank you for contacting us.")
    expect(cust.locator("#composer")).to_be_hidden()
    expect(agent_row.locator(".load-text")).to_have_text("0/3")
    cust.locator(".stars label", has_text="5").click()
    cust.fill("#comment", "Very helpful")
    cust.get_by_role("button", name="Send rating").click()
    expect(cust.locator("#rating-thanks")).to_be_visible()
    screenshot(cust, "customer-closed")

    # The rating is stored (the flusher archives the conversation within about a second).
    wait_for(lambda: cluster.psql(f"SELECT rating || '|' || rating_comment FROM conversations WHERE id = '{conv_id}'") == "5|Very helpful",
             timeout=15, message="the rating in PostgreSQL")
    # And the agent's history lists the closed chat.
    expect(agent.locator("#history li", has_text="Carol Customer")).to_contain_text("Voucher offered", timeout=15_000)
    # Dismiss the closed tab, then read the transcript again from the history (GET /conversations/{id}/messages).
    panel.get_by_role("button", name="Dismiss").click()
    expect(agent.get_by_role("tab", name=re.compile("Carol Customer"))).to_have_count(0)
    agent.get_by_role("button", name="View chat with Carol Customer").click()
    archived = agent_panel(agent, "Carol Customer")
    expect(archived.locator(".msg-text", has_text="Yes, thanks!")).to_be_visible()
    expect(archived.locator(".msg-text", has_text=XSS)).to_have_text(XSS)
    expect(archived.locator("li.internal", has_text="Internal: offer a voucher")).to_be_visible()
    expect(archived).to_contain_text("Closed: Voucher offered")
    expect(archived.locator("textarea")).to_be_hidden()
    assert agent.locator("#panels img").count() == 0
    pages.check()


def test_supervisor_assigns_and_sees_presence_changes(cluster, pages):
    node_a, node_b = cluster.nodes
    agent_id = str(cluster.users[ACCOUNTS["agent"][0]]["id"])
    sup = pages.new()
    sup.goto(node_a.url + "/supervisor")
    login(sup, "supervisor")
    agent = pages.new()
    agent.goto(node_b.url + "/agent")
    login(agent, "agent")
    agent_row = sup.locator(f'#agents tr[data-agent-id="{agent_id}"]')
    expect(agent_row.locator(".agent-status")).to_have_text("online")

    # Away: the board shows it, and picking is refused with a helpful message.
    agent.select_option("#presence", "away")
    expect(agent_row.locator(".agent-status")).to_have_text("away")
    cust = pages.new()
    start_chat(cust, node_a.url, "Erin Customer", "erin@example.test", subject="Password reset")
    item = agent.locator("#queue li", has_text="Erin Customer")
    item.get_by_role("button", name="Pick Erin Customer").click()
    expect(agent.locator("#toasts")).to_contain_text("Set your status to Online to pick customers.")
    expect(item).to_be_visible()

    # The target is a visible setting: 5 s turns this wait amber soon.
    sup.fill("#target", "5")
    expect(sup.locator("#target-legend")).to_have_text("Green under 5 s, amber under 15 s, red above.")
    sup_item = sup.locator("#queue li", has_text="Erin Customer")
    expect(sup_item.locator(".wait")).to_have_class(re.compile(r"\bwarn\b"))

    # The supervisor assigns Erin to Alice (away agents may be assigned to).
    beeps = agent.evaluate("HD.debug.beeps")
    sup_item.locator("select").select_option(agent_id)
    sup_item.get_by_role("button", name="Assign").click()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    expect(agent.get_by_role("tab", name=re.compile("Erin Customer"))).to_be_visible()
    wait_for(lambda: agent.evaluate("HD.debug.beeps") > beeps, message="a beep on assignment")
    expect(agent.locator("#queue li", has_text="Erin Customer")).to_have_count(0)
    expect(agent_row.locator(".load-text")).to_have_text("1/3")
    expect(sup.locator("#live tr", has_text="Erin Customer")).to_contain_text("Alice Agent")

    agent.select_option("#presence", "online")
    expect(agent_row.locator(".agent-status")).to_have_text("online")

    # A second chat opens as a second tab; a message in the other tab counts as unread there.
    frank = pages.new()
    start_chat(frank, node_b.url, "Frank Customer", "frank@example.test")
    agent.get_by_role("button", name="Pick next").click()
    frank_tab = agent.get_by_role("tab", name=re.compile("Frank Customer"))
    erin_tab = agent.get_by_role("tab", name=re.compile("Erin Customer"))
    expect(frank_tab).to_have_attribute("aria-selected", "true")
    expect(agent_row.locator(".load-text")).to_have_text("2/3")
    customer_send(cust, "Are you still there?")
    customer_send(cust, "Hello?")
    expect(erin_tab.locator(".unread")).to_have_text("2")
    expect(erin_tab).to_have_attribute("aria-label", "Erin Customer, 2 unread")
    frank_tab.focus()
    agent.keyboard.press("ArrowLeft")  # keyboard: arrows move between tabs
    expect(erin_tab).to_have_attribute("aria-selected", "true")
    expect(erin_tab.locator(".unread")).to_be_hidden()
    expect(erin_tab).to_have_attribute("aria-label", "Erin Customer")
    agent.keyboard.press("ArrowRight")
    expect(frank_tab).to_have_attribute("aria-selected", "true")
    agent.keyboard.press("ArrowLeft")
    expect(erin_tab).to_have_attribute("aria-selected", "true")
    expect(agent_panel(agent, "Erin Customer").locator(".msg-text", has_text="Hello?")).to_be_visible()

    agent_panel(agent, "Erin Customer").get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_be_visible()
    frank_tab.click()
    agent_panel(agent, "Frank Customer").get_by_role("button", name="Close chat").click()
    expect(frank.locator("#closed-text")).to_be_visible()
    expect(agent_row.locator(".load-text")).to_have_text("0/3")
    expect(sup.locator("#live tr", has_text="Erin Customer")).to_have_count(0)
    pages.check()


def test_reconnecting_banner_and_catch_up_after_a_node_restart(cluster, pages):
    node_a, node_b = cluster.nodes
    cust = pages.new()
    sent = []  # every frame the customer's sockets send, decoded
    cust.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(json.loads(f))))
    start_chat(cust, node_a.url, "Dave Customer", "dave@example.test", topic="Technical")
    agent = pages.new()
    agent.goto(node_b.url + "/agent")
    login(agent, "agent")
    agent.locator("#queue li", has_text="Dave Customer").get_by_role("button", name="Pick Dave Customer").click()
    expect(cust.locator("#status-line")).to_have_text("You are chatting with Alice Agent")
    panel = agent_panel(agent, "Dave Customer")

    panel.locator("textarea").fill("Hello Dave")
    panel.locator("textarea").press("Enter")
    theirs = cust.locator("#messages li.theirs", has_text="Hello Dave")
    expect(theirs).to_have_count(1)
    customer_send(cust, "Before the outage")
    expect(panel.locator("ol.messages .msg-text", has_text="Before the outage")).to_have_count(1)
    mine = cust.locator("#messages li.mine", has_text="Before the outage")
    expect(mine.locator(".msg-state")).to_have_text("Delivered")
    theirs_id, mine_id = theirs.get_attribute("data-id"), mine.get_attribute("data-id")
    assert re.fullmatch(r"\d+-\d+", theirs_id) and re.fullmatch(r"\d+-\d+", mine_id)

    # RESYNC (a node lost Redis): the page re-joins from the last message that came in stream
    # order, the agent's; not from its own newer one, which came in its ACK (echo: false) and may
    # have overtaken messages still on their way.
    sent.clear()
    cust.evaluate("""() => HD.debug.socket.receive('{"event":"RESYNC","data":{}}')""")
    join = wait_for(lambda: next((f for f in sent if f["event"] == "JOIN_CONVERSATION"), None), message="a JOIN after RESYNC")
    assert join["data"]["last_message_id"] == theirs_id
    # The HISTORY it brings holds our own message (shown once): from now on the resume point.
    wait_for(lambda: cust.evaluate("(id) => HD.debug.socket.conversations.get(id).lastId", join["data"]["conversation_id"]) == mine_id,
             message="HISTORY to move the resume point to our own message")
    expect(cust.locator("#messages .msg-text", has_text="Before the outage")).to_have_count(1)
    last_id = mine_id
    sent.clear()

    # Node A goes away: the customer sees the banner; the agent (node B) keeps writing.
    node_a.stop()
    expect(cust.locator("#banner")).to_be_visible()
    expect(cust.locator("#banner")).to_contain_text("reconnecting")
    panel.locator("textarea").fill("Sent while your node was down")
    panel.locator("textarea").press("Enter")
    expect(panel.locator("ol.messages li.mine .msg-state").last).to_have_text("Delivered")
    # The customer writes offline too: the message waits in "Sending…".
    customer_send(cust, "Typed while offline")
    expect(cust.locator("#messages li.mine", has_text="Typed while offline").locator(".msg-state")).to_have_text("Sending…")
    screenshot(cust, "customer-reconnecting")

    node_a.start()
    # Back: banner gone, the missed message arrives exactly once, the offline one is delivered once.
    expect(cust.locator("#banner")).to_be_hidden(timeout=20_000)
    join = wait_for(lambda: next((f for f in sent if f["event"] == "JOIN_CONVERSATION"), None), message="a JOIN after the reconnect")
    assert join["data"] == {"conversation_id": join["data"]["conversation_id"], "last_message_id": last_id}
    expect(cust.locator("#messages .msg-text", has_text="Sent while your node was down")).to_have_count(1)
    expect(cust.locator("#messages li.mine", has_text="Typed while offline").locator(".msg-state")).to_have_text("Delivered")
    expect(panel.locator("ol.messages .msg-text", has_text="Typed while offline")).to_have_count(1)
    expect(cust.locator("#messages .msg-text", has_text="Before the outage")).to_have_count(1)

    panel.get_by_role("button", name="Close chat").click()
    expect(cust.locator("#closed-text")).to_be_visible()
    pages.check()


def test_admin_staff_categories_and_analytics(cluster, pages):
    node_a, node_b = cluster.nodes
    # Archived conversations in a fixed past window, so the charts have known numbers.
    cluster.psql("""
        INSERT INTO customers (id, email, name) VALUES ('00000000-0000-4000-8000-000000000001', 'seed@example.test', 'Seed');
        INSERT INTO conversations (id, customer_id, category_id, priority, status, created_at, enqueued_at, assigned_at,
                                   first_response_at, closed_at, rating) VALUES
          ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 1, 'normal', 'closed',
           '2020-03-02 09:00Z', '2020-03-02 09:00Z', '2020-03-02 09:01Z', '2020-03-02 09:02Z', '2020-03-02 09:10Z', 5),
          ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-000000000001', 2, 'high', 'closed',
           '2020-03-03 09:00Z', '2020-03-03 09:00Z', '2020-03-03 09:03Z', '2020-03-03 09:04Z', '2020-03-03 09:20Z', 4),
          ('00000000-0000-4000-8000-0000000000a3', '00000000-0000-4000-8000-000000000001', 1, 'normal', 'closed',
           '2020-03-03 10:00Z', '2020-03-03 10:00Z', '2020-03-03 10:02Z', '2020-03-03 10:03Z', '2020-03-03 10:30Z', NULL),
          ('00000000-0000-4000-8000-0000000000a4', '00000000-0000-4000-8000-000000000001', 2, 'low', 'abandoned',
           '2020-03-04 09:00Z', '2020-03-04 09:00Z', NULL, NULL, '2020-03-04 09:05Z', NULL);
    """)
    admin = pages.new(viewport={"width": 1280, "height": 1000})
    admin.goto(node_b.url + "/admin")
    login(admin, "admin")
    users = admin.locator("#users tbody")
    expect(users.locator("tr", has_text="Alice Agent")).to_contain_text("Sam Supervisor")

    # An expired or bad access token is refreshed with the refresh token (POST /auth/refresh) on 401.
    admin.evaluate("""() => {
        const s = JSON.parse(sessionStorage.getItem('hd.staff'));
        s.access_token = 'not.a.token';
        sessionStorage.setItem('hd.staff', JSON.stringify(s));
    }""")
    admin.reload()
    expect(users.locator("tr", has_text="Alice Agent")).to_be_visible()
    assert admin.locator("#login-email").count() == 0
    assert admin.evaluate("JSON.parse(sessionStorage.getItem('hd.staff')).access_token") != "not.a.token"
    expect(users.locator("tr", has_text="Ada Admin")).to_contain_text("admin")

    # Create an agent with a supervisor, a capacity and a category.
    admin.get_by_role("button", name="New account").click()
    admin.fill("#u-name", "Dan Agent")
    admin.fill("#u-email", "dan@example.test")
    admin.fill("#u-password", "dan-password-1")
    admin.select_option("#u-role", "agent")
    admin.select_option("#u-supervisor", label="Sam Supervisor")
    admin.fill("#u-capacity", "2")
    admin.get_by_label("Billing", exact=True).check()
    admin.get_by_role("button", name="Create account").click()
    row = users.locator("tr", has_text="Dan Agent")
    expect(row).to_contain_text("dan@example.test")
    expect(row).to_contain_text("Billing")
    dan = next(u for u in node_a.api("GET", "/users", token=cluster.admin_token) if u["email"] == "dan@example.test")
    assert dan["role"] == "agent" and dan["capacity"] == 2 and dan["active"]
    assert dan["supervisor_id"] == cluster.users[ACCOUNTS["supervisor"][0]]["id"]
    assert len(dan["category_ids"]) == 1
    assert cluster.login("dan@example.test", "dan-password-1")["user"]["name"] == "Dan Agent"

    # Edit the capacity, then deactivate.
    row.get_by_role("button", name="Edit Dan Agent").click()
    expect(admin.locator("#u-name")).to_have_value("Dan Agent")
    admin.fill("#u-capacity", "5")
    admin.get_by_role("button", name="Save changes").click()
    expect(row.locator("td").nth(4)).to_have_text("5")
    row.get_by_role("button", name="Deactivate Dan Agent").click()
    expect(users.locator("tr", has_text="Dan Agent")).to_have_count(0)
    admin.check("#show-inactive")
    expect(users.locator("tr", has_text="Dan Agent")).to_contain_text("deactivated")
    dan = node_a.api("GET", f"/users/{dan['id']}", token=cluster.admin_token)
    assert dan["active"] is False and dan["capacity"] == 5
    screenshot(admin, "admin-staff")

    # Categories: add, add a subcategory, rename, deactivate.
    admin.get_by_role("tab", name="Categories").click()
    tree = admin.locator("#category-tree")
    expect(tree.locator("li.sub", has_text="Refunds")).to_be_visible()
    admin.fill("#c-name", "Shipping")
    admin.press("#c-name", "Enter")
    expect(tree.locator("li", has_text="Shipping")).to_be_visible()
    admin.fill("#c-name", "Returns")
    admin.select_option("#c-parent", label="Under Billing")
    admin.get_by_role("button", name="Add", exact=True).click()
    expect(tree.locator("li.sub", has_text="Returns")).to_be_visible()
    tree.get_by_role("button", name="Rename Shipping").click()
    admin.get_by_label("New name for Shipping").fill("Delivery")
    admin.get_by_label("New name for Shipping").press("Enter")
    expect(tree.locator("li", has_text="Delivery")).to_be_visible()
    names = {c["name"]: c for c in node_a.api("GET", "/categories")}
    assert "Delivery" in names and "Shipping" not in names
    assert names["Returns"]["parent_id"] == names["Billing"]["id"]
    screenshot(admin, "admin-categories")
    tree.get_by_role("button", name="Deactivate Delivery").click()
    expect(tree.locator("li", has_text="Delivery")).to_have_count(0)
    assert "Delivery" not in {c["name"] for c in node_a.api("GET", "/categories")}

    # Analytics over the seeded window: 3 closed + 1 abandoned, ratings 5 and 4.
    admin.get_by_role("tab", name="Analytics").click()
    admin.fill("#a-from", "2020-03-01")
    admin.fill("#a-to", "2020-03-05")
    admin.locator("#range").get_by_role("button", name="Show").click()
    kpis = admin.locator("#kpis")
    expect(kpis.locator(".kpi", has_text="Average rating")).to_contain_text("4.50 / 5 (2)")
    expect(kpis.locator(".kpi", has_text="Abandonment rate")).to_contain_text("25.0 %")
    expect(kpis.locator(".kpi", has_text="Average wait").locator(".value")).to_have_text("2 min")
    days = wait_for(lambda: admin.evaluate("""() => {
        const c = Chart.getChart('chart-days');
        return c && c.data.labels.length ? {labels: c.data.labels, closed: c.data.datasets[0].data, abandoned: c.data.datasets[1].data} : null;
    }"""), message="the per-day chart")
    assert days == {"labels": ["2020-03-02", "2020-03-03", "2020-03-04"], "closed": [1, 2, 0], "abandoned": [0, 0, 1]}
    by_category = admin.evaluate("""() => { const c = Chart.getChart('chart-category'); return Object.fromEntries(c.data.labels.map((l, i) => [l, c.data.datasets[0].data[i]])); }""")
    assert by_category == {"Billing": 2, "Technical": 2}
    for chart in ("chart-status", "chart-priority"):
        assert admin.evaluate(f"Chart.getChart('{chart}').data.labels.length") > 0
    screenshot(admin, "admin-analytics", full_page=True)
    pages.check()
