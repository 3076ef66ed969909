"""Fixtures: a two-node cluster with its own schema and Redis prefix, staff accounts and
categories, and Chromium pages that fail the test on any JavaScript dialog or uncaught error."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from cluster import REPO, Cluster

OUTPUT = Path(os.environ.get("HELPDESK_TEST_OUTPUT") or REPO / ".build" / "test-output").resolve()
PASSWORD = "browser-test-password"
ACCOUNTS = {
    "admin": ("admin@example.test", "Ada Admin"),
    "supervisor": ("sam@example.test", "Sam Supervisor"),
    "agent": ("alice@example.test", "Alice Agent"),
}

expect.set_options(timeout=10_000)

OUTPUT.mkdir(parents=True, exist_ok=True)
for stale in [*OUTPUT.glob("failed-*.png"), *OUTPUT.glob("console-*.log")]:
    stale.unlink()  # from an earlier run


@pytest.fixture(scope="session")
def cluster():
    c = Cluster(OUTPUT)
    try:
        c.start()
        c.create_user(*ACCOUNTS["admin"], PASSWORD, "admin")
        c.create_user(*ACCOUNTS["supervisor"], PASSWORD, "supervisor")
        c.create_user(*ACCOUNTS["agent"], PASSWORD, "agent", supervisor_email=ACCOUNTS["supervisor"][0], capacity=3)
        admin = c.login(ACCOUNTS["admin"][0], PASSWORD)["access_token"]
        billing = c.nodes[0].api("POST", "/categories", {"name": "Billing"}, admin)
        c.nodes[0].api("POST", "/categories", {"name": "Technical"}, admin)
        c.nodes[0].api("POST", "/categories", {"name": "Refunds", "parent_id": billing["id"]}, admin)
        c.admin_token = admin
        c.users = {u["email"]: u for u in c.nodes[0].api("GET", "/users", token=admin)}
        yield c
    finally:
        c.stop()


@pytest.fixture(autouse=True)
def no_chats_left_over(cluster):
    """After each test, ends every chat it left waiting or active, so a test that failed halfway
    (with the agent still at its capacity) cannot make the tests after it fail as well."""
    yield
    admin = cluster.login(ACCOUNTS["admin"][0], PASSWORD)["access_token"]
    node = next(n for n in cluster.nodes if n.proc is not None)
    for status in ("waiting", "active"):
        for conversation in node.api("GET", f"/conversations?status={status}&limit=500", token=admin):
            node.api("POST", f"/conversations/{conversation['id']}/close", {"resolution": "test cleanup"}, admin)
    for status in ("waiting", "active"):
        assert node.api("GET", f"/conversations?status={status}", token=admin) == [], f"{status} chats left after cleanup"


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--disable-gpu", "--no-first-run"])
        yield b
        b.close()


class Pages:
    """Opens pages in separate browser contexts (separate sessionStorage, like separate people)."""

    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []  # kept in the output directory, for a look after a run

    def new(self, viewport=None, permissions=None, origin=None):
        context = self.browser.new_context(viewport=viewport or {"width": 1280, "height": 860})
        if permissions:
            context.grant_permissions(permissions, origin=origin)
        self.contexts.append(context)
        context.set_default_timeout(10_000)
        page = context.new_page()

        def on_dialog(dialog):
            # Any alert/confirm/prompt means markup from a message ran: a failure.
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        return page

    def check(self):
        assert not self.dialogs, f"a page opened a dialog: {self.dialogs}"
        assert not self.errors, f"uncaught page errors: {self.errors}"

    def close(self):
        for context in self.contexts:
            context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def pages(browser, request):
    p = Pages(browser)
    yield p
    try:
        if getattr(request.node, "failed_call", False):
            # What each page showed when the test failed.
            for i, context in enumerate(p.contexts):
                for j, page in enumerate(context.pages):
                    try:
                        page.screenshot(path=str(OUTPUT / f"failed-{request.node.name}-{i}-{j}.png"))
                    except Exception:
                        pass
        if p.console:
            (OUTPUT / f"console-{request.node.name}.log").write_text("\n".join(p.console) + "\n")
        p.check()
    finally:
        p.close()


def login(page, role: str):
    email, _ = ACCOUNTS[role]
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")


def screenshot(page, name: str, full_page: bool = False) -> Path:
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
