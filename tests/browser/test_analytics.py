"""Team analytics (issue 12 #3) in the browser: the supervisor board's team view and the admin's
per-supervisor table render their numbers and Chart.js charts; the CSV export downloads."""
from __future__ import annotations

import csv
import io

from playwright.sync_api import expect

from conftest import ACCOUNTS, login, screenshot
from test_pages import wait_for

WINDOW = ("2021-05-03", "2021-05-05")


def seed(cluster):
    """Two conversations of Alice (Sam's team) in May 2021, one of nobody's (abandoned)."""
    alice = cluster.users[ACCOUNTS["agent"][0]]["id"]
    cluster.psql(f"""
        INSERT INTO customers (id, email, name) VALUES ('00000000-0000-4000-8000-0000000000b1', 'team@example.test', '=Team, "Seed"')
          ON CONFLICT DO NOTHING;
        INSERT INTO conversations (id, customer_id, category_id, subject, priority, status, agent_id, created_at, enqueued_at,
                                   assigned_at, closed_at, rating) VALUES
          ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000b1', 3, 'Refund', 'normal', 'closed', {alice},
           '2021-05-03 09:00Z', '2021-05-03 09:00Z', '2021-05-03 09:01Z', '2021-05-03 09:10Z', 5),
          ('00000000-0000-4000-8000-0000000000c2', '00000000-0000-4000-8000-0000000000b1', 2, 'Broken', 'urgent', 'closed', {alice},
           '2021-05-04 09:00Z', '2021-05-04 09:00Z', '2021-05-04 09:00:30Z', '2021-05-04 09:20Z', 3),
          ('00000000-0000-4000-8000-0000000000c3', '00000000-0000-4000-8000-0000000000b1', NULL, 'Gone', 'low', 'abandoned', NULL,
           '2021-05-05 09:00Z', '2021-05-05 09:00Z', NULL, '2021-05-05 09:01Z', NULL);
        INSERT INTO messages (conversation_id, id, ms, seq, sender_id, sender_role, sender_name, body, client_msg_id, internal, sent_at) VALUES
          ('00000000-0000-4000-8000-0000000000c1', '1620032480000-0', 1620032480000, 0, '{alice}', 'agent', 'Alice', 'note', 'n1', true,
           '2021-05-03 09:01:20Z'),
          ('00000000-0000-4000-8000-0000000000c1', '1620032520000-0', 1620032520000, 0, '{alice}', 'agent', 'Alice', 'hi', 'm1', false,
           '2021-05-03 09:02Z'),
          ('00000000-0000-4000-8000-0000000000c2', '1620118920000-0', 1620118920000, 0, '{alice}', 'agent', 'Alice', 'hi', 'm2', false,
           '2021-05-04 09:02Z');
    """)


def chart_drawn(page, canvas_selector: str) -> bool:
    """True when Chart.js has a chart on the canvas and it has a size."""
    return page.eval_on_selector(canvas_selector, """c => {
        const chart = window.Chart && Chart.getChart(c);
        return !!chart && c.width > 0 && c.height > 0 && chart.data.datasets.length > 0;
    }""")


def show_window(page, prefix: str):
    page.fill(f"#{prefix}-from", WINDOW[0])
    page.fill(f"#{prefix}-to", WINDOW[1])
    page.locator(f"#{prefix}-from").locator("xpath=ancestor::form").get_by_role("button", name="Show").click()


def test_team_analytics_on_the_supervisor_board_and_for_admins(cluster, pages):
    seed(cluster)
    node_a, node_b = cluster.nodes
    sup = pages.new(viewport={"width": 1280, "height": 1600})
    sup.goto(node_a.url + "/supervisor")
    login(sup, "supervisor")
    team = sup.locator("#team-analytics")
    expect(team).to_be_visible()
    expect(team.locator("h2")).to_have_text("Team of Sam Supervisor")
    prefix = team.locator("input[type=date]").first.get_attribute("id").rsplit("-", 1)[0]
    show_window(sup, prefix)
    row = team.locator("tr[data-agent-id]", has_text="Alice Agent")
    # 2 handled and closed; first responses 60 s and 90 s (the internal note does not count); handle 9 min and 19.5 min.
    expect(row.locator("td").nth(1)).to_have_text("2")
    expect(row.locator("td").nth(2)).to_have_text("2")
    expect(row.locator("td").nth(5)).to_have_text("4.00 (2)")
    # Targets: normal 300 s met (120 s after queueing); urgent 60 s missed (120 s).
    expect(row.locator("td").nth(6)).to_have_text("50.0 % (1/2)")
    for name in ("days", "status", "category", "sla"):
        wait_for(lambda: chart_drawn(sup, f"#{prefix}-{name}"), message=f"the {name} chart")
    days = sup.evaluate(f"Chart.getChart(document.querySelector('#{prefix}-days')).data")
    assert days["labels"] == ["2021-05-03", "2021-05-04", "2021-05-05"]
    assert [d["label"] for d in days["datasets"]] == ["Created", "Closed"]
    assert days["datasets"][0]["data"] == [1, 1, 0] and days["datasets"][1]["data"] == [1, 1, 0]
    assert sup.evaluate(f"Chart.getChart(document.querySelector('#{prefix}-days')).config.type") == "line"
    status = sup.evaluate(f"Chart.getChart(document.querySelector('#{prefix}-status')).data")
    assert status["labels"] == ["closed"] and status["datasets"][0]["data"] == [2]
    assert sup.evaluate(f"Chart.getChart(document.querySelector('#{prefix}-status')).config.type") == "pie"
    # Refunds (3) rolls up into Billing (1).
    category = sup.evaluate(f"Chart.getChart(document.querySelector('#{prefix}-category')).data")
    assert sorted(zip(category["labels"], category["datasets"][0]["data"])) == [("Billing", 1), ("Technical", 1)]
    team.scroll_into_view_if_needed()
    screenshot(sup, "supervisor-team-analytics", full_page=True)

    # CSV export of the same window: Alice's two conversations, the formula neutralised.
    with sup.expect_download() as download:
        team.get_by_role("button", name="Export CSV").click()
    assert download.value.suggested_filename == "conversations-2021-05-03-2021-05-05.csv"
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][:4] == ["id", "created_at", "closed_at", "status"]
    assert [r[0] for r in rows[1:]] == ["00000000-0000-4000-8000-0000000000c1", "00000000-0000-4000-8000-0000000000c2"]
    assert rows[1][8] == "'=Team, \"Seed\"" and rows[1][5:7] == ["Billing", "Refunds"]

    # Admins: one row per supervisor; a row opens its team.
    admin = pages.new(viewport={"width": 1280, "height": 1600})
    admin.goto(node_b.url + "/admin#analytics")
    login(admin, "admin")
    teams = admin.locator("#supervisor-analytics")
    expect(teams.locator("tr[data-supervisor-id]").first).to_be_visible()
    admin_prefix = teams.locator("input[type=date]").first.get_attribute("id").rsplit("-", 1)[0]
    show_window(admin, admin_prefix)
    sam = teams.locator("tr[data-supervisor-id]", has_text="Sam Supervisor")
    expect(sam.locator("td").nth(2)).to_have_text("2")
    expect(sam.locator("td").nth(3)).to_have_text("2")
    sam.get_by_role("button", name="Open team").click()
    opened = teams.locator("[id$='-team']")
    expect(opened.locator("h2")).to_have_text("Team of Sam Supervisor")
    opened_prefix = opened.locator("input[type=date]").first.get_attribute("id").rsplit("-", 1)[0]
    wait_for(lambda: chart_drawn(admin, f"#{opened_prefix}-days"), message="the team's days chart")
    assert chart_drawn(admin, f"#{opened_prefix}-status")
    screenshot(admin, "admin-teams", full_page=True)
