"""The web console's pages checked by axe-core (console/node_modules/axe-core, a devDependency
of the console) against WCAG 2.0 and 2.1, levels A and AA: the sign-in form, the projects, an
integration's pipeline (light and dark, and on a 360px-wide screen), the promote dialog, the
approvals as a reviewer, the environments and the audit log. Each has no violation.

axe is added to the page as a script of its own, which the page's Content-Security-Policy
forbids: these pages' contexts do not enforce it (``page_for(token, bypass_csp=True)``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.browser import ConsoleServer, Pages, deploy, new_integration

AXE = Path(__file__).resolve().parents[2] / "console" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
LIVE_MS = 45_000  # a deployment's change runs on the server's worker


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds in the page as it is now, against ``WCAG_TAGS``."""
    if not AXE.exists():
        pytest.fail(f"no {AXE}: run `make console` (it installs the console's packages)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=AXE)
    results: dict[str, Any] = page.evaluate(
        """(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})""", WCAG_TAGS
    )
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            lines.append(f"    {json.dumps(node['target'])}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


def assert_accessible(page: Page, view: str) -> None:
    violations = axe_violations(page)
    assert not violations, f"{view}: {len(violations)} axe violation(s)\n{describe(violations)}"


def pipeline_url(console: ConsoleServer, integration_id: str) -> str:
    return f"{console.url}/#/{console.organization}/projects/{console.project_id}/{integration_id}"


def card(page: Page, environment: str) -> Locator:
    return page.locator(f'li.card[data-environment="{environment}"]')


@pytest.fixture(scope="module")
def deployed(console: ConsoleServer) -> str:
    """An integration of its own deployed in Development (its change may still be running)."""
    integration_id, build_id = new_integration(console, "Greeter Accessible")
    deploy(console, integration_id, build_id, GREETING="Hi", API_KEY="k")
    return integration_id


def open_pipeline(page: Page, console: ConsoleServer, integration_id: str) -> None:
    page.goto(pipeline_url(console, integration_id))
    expect(card(page, "Development").locator(".card-status")).to_have_text(
        "Active", timeout=LIVE_MS
    )
    expect(card(page, "Production")).to_be_visible()


def test_the_sign_in_form(page_for: Pages, console: ConsoleServer) -> None:
    page = page_for(None, bypass_csp=True)
    page.goto(console.url + "/")
    expect(page.get_by_label("API token")).to_be_visible()
    assert_accessible(page, "the sign-in form")


def test_the_projects_page(page_for: Pages, console: ConsoleServer) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    page.goto(f"{console.url}/#/{console.organization}/projects")
    expect(page.get_by_role("link", name="shop")).to_be_visible()
    assert_accessible(page, "the projects page")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_the_pipeline_page(
    page_for: Pages,
    console: ConsoleServer,
    deployed: str,
    color_scheme: Literal["light", "dark"],
) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    page.emulate_media(color_scheme=color_scheme)
    open_pipeline(page, console, deployed)
    assert_accessible(page, f"the pipeline page ({color_scheme})")


def test_the_promote_dialog(page_for: Pages, console: ConsoleServer, deployed: str) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    open_pipeline(page, console, deployed)
    card(page, "Development").get_by_role("button", name="Promote to Production").click()
    dialog = page.get_by_role("dialog", name="Promote Greeter Accessible to Production")
    expect(dialog.locator(".plan")).to_contain_text("waits for approval")
    assert_accessible(page, "the promote dialog")


def test_the_pipeline_page_on_a_narrow_screen(
    page_for: Pages, console: ConsoleServer, deployed: str
) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    page.set_viewport_size({"width": 360, "height": 740})
    open_pipeline(page, console, deployed)
    assert_accessible(page, "the pipeline page at 360px")


def test_the_approvals_page_as_the_reviewer(
    page_for: Pages, console: ConsoleServer, deployed: str
) -> None:
    # A request to review: the promotion of the deployed build into Production.
    admin = page_for(console.admin_token)
    open_pipeline(admin, console, deployed)
    promotion = console.graphql(
        """mutation($input: PromoteInput!) { promote(input: $input) {
            __typename ... on Error { message } } }""",
        {
            "input": {
                "integrationId": deployed,
                "sourceEnvironmentId": console.environments["Development"],
                "overrides": [
                    {"key": "GREETING", "value": "Hi"},
                    {"key": "API_KEY", "value": "k"},
                ],
            }
        },
    )
    assert promotion["promote"]["__typename"] == "Promotion", promotion

    page = page_for(console.approver_token, bypass_csp=True)
    page.goto(f"{console.url}/#/{console.organization}/approvals")
    request = page.get_by_role("article").filter(has_text="Greeter Accessible 1.0.0")
    expect(request.get_by_role("button", name="Approve")).to_be_visible()
    assert_accessible(page, "the approvals page")


def test_the_environments_page(page_for: Pages, console: ConsoleServer) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    page.goto(f"{console.url}/#/{console.organization}/environments")
    expect(page.get_by_role("heading", name="Production")).to_be_visible()
    assert_accessible(page, "the environments page")


def test_the_audit_log(page_for: Pages, console: ConsoleServer) -> None:
    page = page_for(console.admin_token, bypass_csp=True)
    page.goto(f"{console.url}/#/{console.organization}/audit")
    expect(page.get_by_role("table")).to_contain_text("admin@localhost")
    assert_accessible(page, "the audit log")
