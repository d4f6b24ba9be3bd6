"""The web console in Chromium, as a person uses it: sign in with a token, deploy the greeter,
promote it with an override to the protected Production and watch its card change without a
reload while a reviewer approves it in a second browser; configuration with write-only
secrets, errors next to their fields, freezes, rollback, the audit log; and no secret value in
the page or in anything the browser received. The screenshots in the README come from here
(``make screenshots``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.browser import ConsoleServer, Pages, deploy, new_integration

Screenshot = Callable[[Page, str], Path]

# A deployment's change runs on the server's worker: starting a greeter takes seconds.
LIVE_MS = 45_000


def pipeline_url(console: ConsoleServer, integration_id: str) -> str:
    return f"{console.url}/#/{console.organization}/projects/{console.project_id}/{integration_id}"


def card(page: Page, environment: str) -> Locator:
    return page.locator(f'li.card[data-environment="{environment}"]')


def mark_page(page: Page) -> None:
    """A value in the page's window: still there later means the page was never reloaded."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def assert_secret_never_seen(pages: Pages, page: Page, secret: str) -> None:
    recorded = pages.recorded(page)
    assert secret not in page.content(), "the secret is in the page's DOM"
    assert not [body for body in recorded.responses if secret in body], "a response has it"
    assert not [frame for frame in recorded.frames if secret in frame], "a frame has it"


@pytest.fixture
def admin(page_for: Pages, console: ConsoleServer) -> Page:
    return page_for(console.admin_token)


def test_signing_in_keeps_the_token_for_the_tab_only(
    page_for: Pages, console: ConsoleServer
) -> None:
    page = page_for(None)
    page.goto(console.url + "/")
    page.get_by_label("API token").fill("prm_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted.")

    page.get_by_label("API token").fill(console.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    expect(page.get_by_role("link", name="shop")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('promenade.token')") == console.admin_token
    assert page.evaluate("localStorage.length") == 0
    assert console.admin_token not in page.url

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('promenade.token')") is None


def test_deploy_promote_with_an_override_and_approve_live(
    page_for: Pages, console: ConsoleServer, admin: Page, screenshot: Screenshot
) -> None:
    secret = "console-secret-0f5e2a"
    integration_id, _ = new_integration(console, "Greeter Live")
    admin.goto(pipeline_url(console, integration_id))
    mark_page(admin)
    development, production = card(admin, "Development"), card(admin, "Production")
    expect(development.get_by_text("Not deployed here yet.")).to_be_visible()

    # Deploy 1.0.0 into Development: the dialog asks for the required values first.
    development.get_by_role("button", name="Deploy a build").click()
    dialog = admin.get_by_role("dialog")
    dialog.get_by_label("GREETING").fill("Hello from Development")
    dialog.get_by_label("API_KEY (secret)").fill(secret)
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    expect(development.locator(".build")).to_have_text("1.0.0")
    expect(development.get_by_role("link", name="/dev/")).to_be_visible()

    # The plan of Production names its missing values; promoting without them shows each one
    # next to its field.
    development.get_by_role("button", name="Promote to Production").click()
    dialog = admin.get_by_role("dialog", name="Promote Greeter Live to Production")
    expect(dialog.locator(".plan-missing")).to_contain_text("GREETING, API_KEY")
    expect(dialog.locator(".plan")).to_contain_text("waits for approval")
    admin.set_viewport_size({"width": 1280, "height": 1200})  # the whole dialog in the picture
    screenshot(admin, "console-promote")
    admin.set_viewport_size({"width": 1280, "height": 800})
    dialog.get_by_role("button", name="Promote to Production").click()
    expect(dialog.get_by_role("alert")).to_contain_text(
        "Set these values for Production first: GREETING, API_KEY."
    )
    expect(dialog.locator("#override-GREETING-error")).to_have_text("Required: set a value.")
    expect(dialog.get_by_label("API_KEY (secret)")).to_have_attribute("aria-invalid", "true")

    dialog.get_by_label("GREETING").fill("Hello from the console")
    dialog.get_by_label("API_KEY (secret)").fill(secret)
    dialog.get_by_label("Message (optional)").fill("first release")
    dialog.get_by_role("button", name="Promote to Production").click()
    expect(dialog.locator(".follow-status")).to_contain_text("Waiting for approval")
    assert dialog.get_by_label("API_KEY (secret)").count() == 0  # the form and its values gone
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(production.locator(".card-status")).to_have_text("Not deployed")
    expect(production.locator(".requests")).to_have_text("Promotion of 1.0.0: Waiting for approval")

    # A reviewer, in a browser of their own, approves it.
    reviewer = page_for(console.approver_token)
    reviewer.goto(f"{console.url}/#/{console.organization}/approvals")
    request = reviewer.get_by_role("article").filter(has_text="Greeter Live 1.0.0")
    expect(request).to_contain_text("Development → Production")
    expect(request).to_contain_text("Requested by Admin")
    screenshot(reviewer, "console-approvals")
    request.get_by_label("Comment (optional)").fill("looks good")
    request.get_by_role("button", name="Approve").click()
    expect(request).to_be_hidden(timeout=LIVE_MS)

    # The admin's card changes live, on the same page.
    expect(production.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    expect(production.locator(".build")).to_have_text("1.0.0")
    expect(production.locator(".requests")).to_have_count(0, timeout=LIVE_MS)
    assert_not_reloaded(admin)
    # Told over the websocket (the page also reads again now and then, for what events miss).
    frames = page_for.recorded(admin).frames
    events = [
        message["payload"]["data"]["deploymentEvents"]
        for message in map(json.loads, frames)
        if message.get("type") == "next" and "deploymentEvents" in message["payload"]["data"]
    ]
    assert {"environmentId": console.environments["Production"], "status": "ACTIVE"} in [
        {"environmentId": e["environmentId"], "status": e["status"]} for e in events
    ], events
    endpoint = production.get_by_role("link", name="/prod/").get_attribute("href")
    assert endpoint is not None
    answer = httpx.get(endpoint, timeout=10, trust_env=False).json()
    assert answer["greeting"] == "Hello from the console" and answer["has_api_key"] is True
    screenshot(admin, "console-pipeline")

    for page in (admin, reviewer):
        assert_secret_never_seen(page_for, page, secret)


def test_configuration_keeps_secrets_write_only_and_errors_by_their_field(
    page_for: Pages, console: ConsoleServer, admin: Page
) -> None:
    old, new = "old-secret-93c1", "new-secret-5d27"
    integration_id, build_id = new_integration(console, "Greeter Config")
    deploy(console, integration_id, build_id, GREETING="Hi", API_KEY=old)
    admin.goto(pipeline_url(console, integration_id))
    development = card(admin, "Development")
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    expect(development.locator(".revision")).to_have_text("1")

    development.get_by_role("button", name="Configure").click()
    dialog = admin.get_by_role("dialog")
    expect(dialog.get_by_label("GREETING")).to_have_value("Hi")
    secret_field = dialog.get_by_label("API_KEY (secret)")
    expect(secret_field).to_have_value("")
    expect(secret_field).to_have_attribute("type", "password")
    expect(dialog).to_contain_text("Value set; type a new value to replace it.")

    # A bad value: the API's error is shown next to the field it names, and nothing changes.
    dialog.get_by_label("REPEAT").fill("many")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator("#config-REPEAT-error")).to_be_visible()
    expect(dialog.get_by_label("REPEAT")).to_have_attribute("aria-invalid", "true")

    dialog.get_by_label("REPEAT").fill("2")
    secret_field.fill(new)
    dialog.get_by_label("Restart now, so that the change takes effect").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(development.locator(".revision")).to_have_text("2", timeout=LIVE_MS)

    endpoint = development.get_by_role("link", name="/dev/").get_attribute("href")
    assert endpoint is not None
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    assert httpx.get(endpoint, timeout=10, trust_env=False).json()["repeat"] == 2
    for secret in (old, new):
        assert_secret_never_seen(page_for, admin, secret)


def test_suspend_resume_and_rollback_from_the_history(console: ConsoleServer, admin: Page) -> None:
    integration_id, build_id = new_integration(console, "Greeter Ops")
    deployment_id = deploy(console, integration_id, build_id, GREETING="One", API_KEY="k")
    admin.goto(pipeline_url(console, integration_id))
    development = card(admin, "Development")
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)

    development.get_by_role("button", name="Suspend in Development").click()
    expect(development.locator(".card-status")).to_have_text("Suspended", timeout=LIVE_MS)
    development.get_by_role("button", name="Resume in Development").click()
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)

    console.graphql(
        """mutation($input: SetConfigurationInput!) { setConfiguration(input: $input) {
            __typename } }""",
        {
            "input": {
                "integrationId": integration_id,
                "environmentId": console.environments["Development"],
                "entries": [{"key": "GREETING", "value": "Two"}],
                "restart": True,
            }
        },
    )
    revision = development.locator(".revision")
    expect(revision).not_to_have_text("1", timeout=LIVE_MS)
    current = int(revision.inner_text())

    development.get_by_role("button", name="History").click()
    dialog = admin.get_by_role("dialog", name="History in Development")
    expect(dialog.get_by_role("row").filter(has_text="Current")).to_contain_text(str(current))
    dialog.get_by_role("button", name="Roll back to 1").click()
    expect(dialog).to_be_hidden()
    expect(revision).to_have_text(str(current + 1), timeout=LIVE_MS)
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    history = console.graphql(
        """query($id: ID!) { deployment(id: $id) { history(first: 1) {
            edges { node { cause } } } } }""",
        {"id": deployment_id},
    )
    assert history["deployment"]["history"]["edges"][0]["node"]["cause"] == "ROLLBACK"


@pytest.fixture
def unfrozen(console: ConsoleServer) -> Iterator[None]:
    """Production open again after the test, whatever it did."""
    yield
    console.graphql(
        "mutation($id: ID!) { unfreezeEnvironment(id: $id) { __typename } }",
        {"id": console.environments["Production"]},
    )


def test_admins_freeze_and_the_plan_says_it_is_frozen(
    page_for: Pages, console: ConsoleServer, admin: Page, unfrozen: None
) -> None:
    # A reviewer sees the environments but may not freeze them.
    reviewer = page_for(console.approver_token)
    reviewer.goto(f"{console.url}/#/{console.organization}/environments")
    expect(reviewer.get_by_role("heading", name="Production")).to_be_visible()
    assert reviewer.get_by_role("button", name="Freeze").count() == 0

    admin.goto(f"{console.url}/#/{console.organization}/environments")
    admin.get_by_role("button", name="Freeze").last.click()  # the reason is required
    assert admin.evaluate("document.activeElement.id").startswith("freeze-reason-")
    admin.get_by_label("Reason to freeze Production").fill("quarter close")
    admin.get_by_label("Reason to freeze Production").press("Enter")
    expect(admin.get_by_text("Frozen: quarter close")).to_be_visible()

    integration_id, build_id = new_integration(console, "Greeter Frozen")
    deploy(console, integration_id, build_id, GREETING="Hi", API_KEY="k")
    admin.goto(pipeline_url(console, integration_id))
    development, production = card(admin, "Development"), card(admin, "Production")
    expect(production).to_contain_text("Frozen: quarter close")
    expect(development.locator(".card-status")).to_have_text("Active", timeout=LIVE_MS)
    # By keyboard: the dialog takes the focus, Escape closes it.
    development.get_by_role("button", name="Promote to Production").focus()
    admin.keyboard.press("Enter")
    dialog = admin.get_by_role("dialog")
    expect(dialog.locator(".blockers")).to_contain_text("The target environment is frozen.")
    admin.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


def test_the_audit_log_is_for_admins(page_for: Pages, console: ConsoleServer, admin: Page) -> None:
    admin.goto(f"{console.url}/#/{console.organization}/audit")
    table = admin.get_by_role("table")
    expect(table).to_contain_text("approval_policy")
    expect(table).to_contain_text("admin@localhost")

    reviewer = page_for(console.approver_token)
    reviewer.goto(f"{console.url}/#/{console.organization}/projects")
    expect(reviewer.get_by_role("link", name="Approvals")).to_be_visible()
    assert reviewer.get_by_role("link", name="Audit log").count() == 0
    reviewer.goto(f"{console.url}/#/{console.organization}/audit")
    expect(reviewer.get_by_role("alert")).to_contain_text("the audit log is visible to ADMIN")


def test_a_narrow_screen_needs_no_sideways_scrolling(
    page_for: Pages, console: ConsoleServer
) -> None:
    page = page_for(console.admin_token)
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(pipeline_url(console, console.integration_id))
    expect(card(page, "Production")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow}px wider than the screen"
