"""GraphiQL (/graphql) in Chromium, beside the console: one sign-in per tab serves both, since
they keep the token under the same key of the tab's sessionStorage."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.support.browser import ConsoleServer, Pages


def test_signing_in_to_the_console_opens_graphiql_in_the_same_tab(
    console: ConsoleServer, page_for: Pages
) -> None:
    page = page_for(None)
    page.goto(f"{console.url}/")
    page.get_by_label("API token").fill(console.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()

    response = page.goto(f"{console.url}/graphql")
    assert response is not None and response.ok, response
    expect(page).to_have_title("Promenade GraphiQL")
    expect(page.locator(".graphiql-container")).to_be_visible(timeout=15_000)
    recorded = page_for.recorded(page)
    recorded.responses.clear()  # the console's own requests, before GraphiQL's
    page.get_by_role("button", name=re.compile("Execute query")).click()
    expect(page.locator(".graphiql-response")).to_contain_text("admin@localhost", timeout=15_000)
    body = recorded.wait_for_response(page, "admin@localhost")
    assert json.loads(body) == {"data": {"viewer": {"user": {"email": "admin@localhost"}}}}
