"""The web console's tests in a real browser: Debian's Chromium driven by Playwright (sync API),
against one ``promenade up`` set up through the GraphQL API (tests/console/conftest.py).

- ``launch_chromium``: /usr/bin/chromium, headless; Playwright downloads no browser of its own.
- ``Pages``: the ``page_for`` fixture, ``page_for(token) -> Page``; each page has a context of
  its own and records what it received (``page_for.recorded(page)``: response bodies and
  websocket frames).
- ``ConsoleServer`` and ``set_up_console``: what the console's server holds before any test.
- ``screenshot``: a page's picture, into PROMENADE_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Response, WebSocket
from playwright.sync_api import Error as PlaywrightError

from tests.processes import run_promenade
from tests.support.greeter import greeter_artifact

CHROMIUM = Path("/usr/bin/chromium")
# Where a page of the API keeps the signed-in user's API token: in the tab's sessionStorage,
# under this key (GraphiQL's page does, app/graphql/ide_assets/promenade-graphiql.js).
# ``page_for(token)`` puts it there before the test's first navigation.
TOKEN_STORAGE_KEY = "promenade.token"
SCREENSHOT_DIR_VARIABLE = "PROMENADE_SCREENSHOT_DIR"


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's Chromium (``CHROMIUM``), headless."""
    # As root, Chromium refuses to start with its sandbox. Shared memory in /tmp, not in
    # /dev/shm, which containers keep small (Debian's launcher means to decide, but its check
    # misreads findmnt where /dev/shm shows up twice).
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


@dataclass
class Recorded:
    """What a page received, in order: each HTTP response's body (as text; responses without
    one, such as redirects, are left out) and each websocket frame. They reach this process a
    little after the page has them (and shows them): ``wait_for_response`` and
    ``wait_for_frame`` wait for one."""

    responses: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("response", self._response)
        page.on("websocket", self._websocket)

    def _response(self, response: Response) -> None:
        # Not for a redirect, a page gone before its body came, or a binary body.
        with contextlib.suppress(PlaywrightError, UnicodeDecodeError):
            self.responses.append(response.text())

    def _websocket(self, websocket: WebSocket) -> None:
        websocket.on("framereceived", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        self.frames.append(
            payload if isinstance(payload, str) else payload.decode(errors="replace")
        )

    def wait_for_frame(self, page: Page, text: str, timeout_s: float = 10.0) -> str:
        """The first frame that contains ``text``, once ``page`` received it."""
        return self._wait_for(page, self.frames, text, timeout_s, "websocket frame")

    def wait_for_response(self, page: Page, text: str, timeout_s: float = 10.0) -> str:
        """The first response body that contains ``text``, once ``page`` received it."""
        return self._wait_for(page, self.responses, text, timeout_s, "response")

    @staticmethod
    def _wait_for(page: Page, received: list[str], text: str, timeout_s: float, what: str) -> str:
        # Playwright delivers its events while the test waits in one of its calls.
        deadline = time.monotonic() + timeout_s
        while True:
            for item in received:
                if text in item:
                    return item
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} with {text!r} within {timeout_s:g}s: {received}")
            page.wait_for_timeout(50)

    def graphql_responses(self) -> list[dict[str, Any]]:
        """The responses whose bodies are GraphQL results (JSON with data or errors)."""
        results = []
        for body in self.responses:
            try:
                parsed = json.loads(body)
            except ValueError:
                continue
            if isinstance(parsed, dict) and ("data" in parsed or "errors" in parsed):
                results.append(parsed)
        return results


class Pages:
    """``page_for(token)``: a new page in a context of its own (1280x800) whose console is
    signed in with ``token`` (none: signed out); ``page_for(token, bypass_csp=True)``: one whose
    context does not enforce the page's Content-Security-Policy. Every context is closed at the
    test's end."""

    def __init__(self, browser: Browser, console_url: str) -> None:
        self.browser = browser
        self.console_url = console_url
        self._contexts: list[BrowserContext] = []
        self._recorded: dict[int, Recorded] = {}

    def __call__(self, token: str | None = None, *, bypass_csp: bool = False) -> Page:
        # ``bypass_csp``: the page's Content-Security-Policy is not enforced, so that a test may
        # add a script of its own (the accessibility checks inject axe-core).
        context = self.browser.new_context(
            viewport={"width": 1280, "height": 800}, bypass_csp=bypass_csp
        )
        self._contexts.append(context)
        page = context.new_page()
        if token is not None:
            # Once, on a page of the server's origin: the tab's session storage keeps it across
            # the test's navigations, and signing out (removing it) stays signed out.
            page.goto(f"{self.console_url}/healthz")
            page.evaluate(
                "([key, token]) => window.sessionStorage.setItem(key, token)",
                [TOKEN_STORAGE_KEY, token],
            )
        recorded = Recorded()
        recorded.attach(page)
        self._recorded[id(page)] = recorded
        return page

    def recorded(self, page: Page) -> Recorded:
        """What ``page`` (made by this factory) received so far."""
        return self._recorded[id(page)]

    def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(PlaywrightError):  # the browser went first
                context.close()
        self._contexts.clear()
        self._recorded.clear()


def screenshot(page: Page, name: str, default_dir: Path) -> Path:
    """``name``.png of the page (the whole page, not just the viewport), in
    PROMENADE_SCREENSHOT_DIR when it is set, else in ``default_dir``; its path."""
    directory = Path(os.environ.get(SCREENSHOT_DIR_VARIABLE) or default_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


# ---- the console's server, set up through the API ----------------------------------------------

GREETER_CONFIG_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": True},
    {"key": "REPEAT", "type": "INT", "required": False, "defaultValue": "1"},
    {"key": "API_KEY", "type": "STRING", "required": True, "secret": True},
]
REVIEWER_EMAIL = "reviewer@console.test"


@dataclass
class ConsoleServer:
    """One ``promenade up`` (SQLite, its worker and gateway) and what it holds before any test:
    in the organization ``default``, the project ``shop`` with the integration ``Greeter`` (the
    walk-through's configuration schema: GREETING and API_KEY required, API_KEY secret) and
    its build ``1.0.0``, deployed nowhere; Production needs one approval by an APPROVER, and
    ``reviewer@console.test`` is one."""

    url: str  # the API, which serves the console at /
    gateway_url: str
    data_dir: Path
    admin_token: str  # admin@localhost, ADMIN of default
    approver_token: str  # reviewer@console.test, APPROVER of default
    approver_email: str
    organization_id: str
    organization: str  # slug
    environments: dict[str, str]  # name -> id: Development, Production
    project_id: str
    project: str  # slug
    integration_id: str
    integration: str  # slug
    build_id: str  # 1.0.0
    builds: dict[str, str] = field(default_factory=dict)  # version -> id

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """One request as ``token`` (the admin's by default); its data, failing the test on
        errors."""
        return graphql(self.url, token or self.admin_token, query, variables)


def graphql(
    url: str, token: str, query: str, variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A GraphQL request over HTTP (synchronous); its data, failing on errors."""
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": dict(variables or {})},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, (response.status_code, body)
    data: dict[str, Any] = body["data"]
    return data


def ok(url: str, token: str, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The result of a one-field mutation; fails unless it is the success type."""
    (result,) = graphql(url, token, query, variables).values()
    assert isinstance(result, dict) and "message" not in result, result
    return result


def set_up_console(url: str, gateway_url: str, data_dir: Path, admin_token: str) -> ConsoleServer:
    """The organization ``default`` of a new ``promenade up`` as ``ConsoleServer`` describes."""
    organization = graphql(
        url,
        admin_token,
        '{ organization(slug: "default") { id slug environments { id name } } }',
    )["organization"]
    environments = {e["name"]: e["id"] for e in organization["environments"]}
    project = ok(
        url,
        admin_token,
        """mutation($org: ID!) { createProject(input: {organizationId: $org, name: "shop"}) {
            __typename ... on Project { id slug } ... on Error { message } } }""",
        {"org": organization["id"]},
    )
    integration = ok(
        url,
        admin_token,
        """mutation($project: ID!, $schema: [ConfigKeyInput!]!) {
            createIntegration(input: {projectId: $project, name: "Greeter",
                                      configSchema: $schema}) {
            __typename ... on Integration { id slug } ... on Error { message } } }""",
        {"project": project["id"], "schema": GREETER_CONFIG_SCHEMA},
    )
    build = ok(
        url,
        admin_token,
        """mutation($integration: ID!, $artifact: String!) {
            createBuild(input: {integrationId: $integration, version: "1.0.0",
                                artifact: $artifact, commit: "abc1234"}) {
            __typename ... on Build { id version } ... on Error { message } } }""",
        {"integration": integration["id"], "artifact": greeter_artifact()},
    )
    ok(
        url,
        admin_token,
        """mutation($env: ID!) { setApprovalPolicy(input: {environmentId: $env,
            requiredApprovals: 1, approverRoles: [APPROVER]}) {
            __typename ... on Environment { id } ... on Error { message } } }""",
        {"env": environments["Production"]},
    )
    ok(
        url,
        admin_token,
        """mutation($org: ID!, $email: String!) { addMember(input: {organizationId: $org,
            email: $email, name: "Reviewer", role: APPROVER}) {
            __typename ... on Membership { role } ... on Error { message } } }""",
        {"org": organization["id"], "email": REVIEWER_EMAIL},
    )
    output = run_promenade(["bootstrap", "--email", REVIEWER_EMAIL, "--org", "default"], data_dir)
    approver_token = output.strip().splitlines()[-1]
    return ConsoleServer(
        url=url,
        gateway_url=gateway_url,
        data_dir=data_dir,
        admin_token=admin_token,
        approver_token=approver_token,
        approver_email=REVIEWER_EMAIL,
        organization_id=organization["id"],
        organization=organization["slug"],
        environments=environments,
        project_id=project["id"],
        project=project["slug"],
        integration_id=integration["id"],
        integration=integration["slug"],
        build_id=build["id"],
        builds={"1.0.0": build["id"]},
    )


def new_integration(console: ConsoleServer, name: str) -> tuple[str, str]:
    """Another greeter in the project ``shop`` (so that each test has its own), with the same
    schema and a build ``1.0.0``: its id and the build's."""
    integration = ok(
        console.url,
        console.admin_token,
        """mutation($project: ID!, $name: String!, $schema: [ConfigKeyInput!]!) {
            createIntegration(input: {projectId: $project, name: $name, configSchema: $schema}) {
            __typename ... on Integration { id } ... on Error { message } } }""",
        {"project": console.project_id, "name": name, "schema": GREETER_CONFIG_SCHEMA},
    )
    build = ok(
        console.url,
        console.admin_token,
        """mutation($integration: ID!, $artifact: String!) {
            createBuild(input: {integrationId: $integration, version: "1.0.0",
                                artifact: $artifact, commit: "abc1234"}) {
            __typename ... on Build { id } ... on Error { message } } }""",
        {"integration": integration["id"], "artifact": greeter_artifact()},
    )
    return integration["id"], build["id"]


def deploy(console: ConsoleServer, integration_id: str, build_id: str, **values: str) -> str:
    """Deploys the build into Development with ``values``, through the API; the deployment's
    id (its change runs on the server's worker)."""
    deployment = ok(
        console.url,
        console.admin_token,
        """mutation($input: DeployInput!) { deploy(input: $input) {
            __typename ... on Deployment { id } ... on Error { message } } }""",
        {
            "input": {
                "integrationId": integration_id,
                "buildId": build_id,
                "environmentId": console.environments["Development"],
                "configuration": [{"key": k, "value": v} for k, v in values.items()],
            }
        },
    )
    return str(deployment["id"])
