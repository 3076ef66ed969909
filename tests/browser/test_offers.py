"""Offer routing in the pages (issue 11): the admin turns a category into an offer category with a
wrap-up; its customer (on node A) is offered to an agent (on node B) whose page shows a card with a
countdown and a chime; Accept opens the chat; closing it starts the wrap-up, during which the next
customer waits; Ready ends it and the next offer arrives; Decline sends it on.

Uses its own agent and category, and leaves nobody waiting, so test_pages.py (run after it, whose
first test needs its agent never to have connected) is not disturbed."""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from conftest import PASSWORD, login, screenshot
from test_pages import agent_panel, start_chat, wait_for

AGENT = ("olivia@example.test", "Olivia Offers")
CATEGORY = "Renewals desk"


def agent_login(page, email):
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")


def test_offer_accepted_in_the_agent_page_then_wrap_up(cluster, pages):
    node_a, node_b = cluster.nodes
    token = cluster.admin_token

    # The admin page: a new category offered to agents, with 10 s of wrap-up.
    admin = pages.new()
    admin.goto(node_a.url + "/admin")
    login(admin, "admin")
    admin.get_by_role("tab", name="Categories").click()
    expect(admin.locator("#uncategorised li")).to_contain_text("Chats without a category")
    admin.fill("#c-name", CATEGORY)
    admin.select_option("#c-routing", "offer")
    admin.get_by_role("button", name="Add", exact=True).click()
    item = admin.locator("#category-tree li", has_text=CATEGORY)
    expect(item.get_by_label(f"Routing of {CATEGORY}")).to_have_value("offer")
    item.get_by_label(f"Wrap-up seconds of {CATEGORY}").fill("10")
    item.get_by_label(f"Wrap-up seconds of {CATEGORY}").press("Tab")
    category = wait_for(lambda: next((c for c in node_a.api("GET", "/categories") if c["name"] == CATEGORY and c["wrap_up_s"] == 10), None),
                        message="the wrap-up saved")
    assert category["routing"] == "offer"
    screenshot(admin, "offers-admin-categories")

    # An agent of that category only, on node B.
    cluster.create_user(AGENT[0], AGENT[1], PASSWORD, "agent", capacity=2)
    olivia = next(u for u in node_a.api("GET", "/users", token=token) if u["email"] == AGENT[0])
    node_a.api("PATCH", f"/users/{olivia['id']}", {"category_ids": [category["id"]]}, token)
    agent = pages.new()
    agent.goto(node_b.url + "/agent")
    agent_login(agent, AGENT[0])
    expect(agent.locator("#me")).to_have_text(AGENT[1])

    # A customer of the category on node A: offered to Olivia, not listed in her queue.
    cust = pages.new()
    start_chat(cust, node_a.url, "Oscar Offered", "oscar@example.test", topic=CATEGORY, subject="Renew my plan")
    card = agent.locator(".offer-card")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Oscar Offered")
    expect(card).to_contain_text(f"{CATEGORY} · Renew my plan")
    expect(card.locator(".offer-left")).to_have_text(re.compile(r"^\d+ s$"))
    first = int(card.locator(".offer-left").inner_text().split()[0])
    assert 15 <= first <= 20
    wait_for(lambda: agent.evaluate("HD.debug.offerChimes") >= 1, message="the offer chime")
    expect(agent.locator("#queue li", has_text="Oscar Offered")).to_have_count(0)
    time.sleep(1.3)
    assert int(card.locator(".offer-left").inner_text().split()[0]) < first, "the countdown runs"
    screenshot(agent, "offers-agent-offer")

    card.get_by_role("button", name="Accept Oscar Offered").click()
    expect(card).to_have_count(0)
    expect(agent.get_by_role("tab", name=re.compile("Oscar Offered"))).to_have_attribute("aria-selected", "true")
    expect(cust.locator("#status-line")).to_have_text(f"You are chatting with {AGENT[1]}")
    panel = agent_panel(agent, "Oscar Offered")
    panel.locator("textarea").fill("Hi Oscar, let's renew it.")
    panel.locator("textarea").press("Enter")
    expect(cust.locator("#messages li.theirs", has_text="Hi Oscar, let's renew it.")).to_be_visible()

    # Closing starts the wrap-up; the next customer waits for it.
    panel.locator("input[id^=resolution-]").fill("renewed")
    panel.get_by_role("button", name="Close chat").click()
    wrapup = agent.locator(".wrapup-card")
    expect(wrapup).to_be_visible()
    expect(wrapup).to_contain_text("Wrap-up")
    expect(wrapup.locator(".wrapup-left")).to_have_text(re.compile(r"\d+ s left"))
    cust2 = pages.new()
    start_chat(cust2, node_a.url, "Paula Pending", "paula@example.test", topic=CATEGORY)
    time.sleep(1)
    expect(agent.locator(".offer-card")).to_have_count(0)
    screenshot(agent, "offers-agent-wrap-up")
    wrapup.get_by_role("button", name="Ready").click()
    expect(wrapup).to_have_count(0)
    card = agent.locator(".offer-card", has_text="Paula Pending")
    expect(card).to_be_visible()

    # Decline: the card goes; nobody else serves the category, so she waits (closed here by the admin).
    card.get_by_role("button", name="Decline Paula Pending").click()
    expect(agent.locator(".offer-card")).to_have_count(0)
    paula = cust2.evaluate("JSON.parse(sessionStorage.getItem('hd.customer')).conversation_id")
    assert node_a.api("GET", f"/conversations/{paula}", token=token)["status"] == "waiting"
    node_a.api("POST", f"/conversations/{paula}/close", {"resolution": "test over"}, token)
    assert node_a.api("GET", f"/conversations/{paula}", token=token)["status"] == "closed"
    # her page is left Online with nothing waiting
    expect(agent.locator("#presence")).to_have_value("online")
