"""`/docs`: Swagger UI served by the node itself renders `/openapi.json` under the node's
Content-Security-Policy (no inline script or style, nothing from another origin)."""
from __future__ import annotations

import json
import urllib.request

from playwright.sync_api import expect

from conftest import screenshot


def test_docs_page_renders_the_operations_under_the_csp(cluster, pages):
    node = cluster.nodes[0]
    with urllib.request.urlopen(node.url + "/openapi.json") as res:
        document = json.load(res)
    operations = sum(len(methods) for methods in document["paths"].values())

    page = pages.new()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(node.url) and not r.url.startswith("data:") else None)
    response = page.goto(node.url + "/docs")
    assert response is not None and response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("HelpDesk API")
    # Every operation is rendered (tags open by default), the error shape and the bearer scheme with them.
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path[data-path='/api/v1/conversations/{id}/messages']")).to_have_count(2)
    expect(page.locator(".btn.authorize")).to_be_visible()
    expect(page.locator(".models")).to_contain_text("Conversation")
    # One operation opens, with its parameters and responses.
    page.locator("#operations-users-get_users_by_id .opblock-summary").click()
    expect(page.locator("#operations-users-get_users_by_id .responses-table").first).to_contain_text("200")
    screenshot(page, "docs", full_page=False)

    assert violations == [], f"CSP violations: {violations}"
    assert outside == [], f"requests to other origins: {outside}"
