"""What a test needs beyond Python, as markers derived from its fixtures and its folder (not
written by hand): `make test-fast` runs the tests that need none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
NEEDS = {
    "postgres": "needs PostgreSQL (the PostgreSQL run of a database test)",
    "rabbitmq": "needs RabbitMQ",
    "docker": "needs a Docker Engine",
    "processes": "runs the promenade command, its servers and workers as processes, or Node.js "
    "clients",
    "browser": "drives Debian's Chromium (/usr/bin/chromium) with Playwright: tests/console "
    "(scripts/test-services installs it as root)",
    "kubernetes": "needs a Kubernetes cluster (PROMENADE_TEST_KUBECONFIG): run by make "
    "test-kubernetes, never by make test",
}
# Fixtures that bring a service or run the `promenade` command, and the marker each one means.
SERVICE_FIXTURES = {
    "postgres_url": "postgres",
    "amqp_url": "rabbitmq",
    "docker_engine": "docker",
    "promenade_command": "processes",
    "browser": "browser",
    # tests/console: one `promenade up` whose console the browser tests open.
    "console": "processes",
}
SERVICE_PARAMS = {"postgres": "postgres", "rabbit": "rabbitmq"}
# Folders and modules whose tests run the `promenade` command itself, its servers and workers.
# tests/client/test_cli_client.py runs `promenade up` and a `promenade` process per client
# command: a quarter of the fast tier's time (81 of 310 s of test time on 2 loaded cores).
# tests/console drives the web console of one `promenade up` in a browser.
PROCESS_PATHS = {
    "e2e",
    "live",
    "console",
    "test_cli.py",
    "test_walkthrough.py",
    "test_cli_client.py",
}
# The folder of the tests in a real browser (Playwright and Debian's Chromium).
BROWSER_PATH = "console"
# The folder of the tests against a real Kubernetes cluster.
KUBERNETES_PATH = "kubernetes"


def needs(item: pytest.Item) -> set[str]:
    """The markers of what the test needs."""
    fixtures = set(getattr(item, "fixturenames", ()))
    found = {marker for name, marker in SERVICE_FIXTURES.items() if name in fixtures}
    # Fixtures that run each test twice (SQLite and PostgreSQL, in-process bus and RabbitMQ)
    # fetch the service only in the run that needs it.
    callspec = getattr(item, "callspec", None)
    params = list(callspec.params.values()) if callspec is not None else []
    found.update(marker for param, marker in SERVICE_PARAMS.items() if param in params)
    parts = item.path.relative_to(TESTS).parts
    if PROCESS_PATHS & set(parts):
        found.add("processes")
    if parts[0] == KUBERNETES_PATH:
        found.add("kubernetes")
    if parts[0] == BROWSER_PATH:
        found.add("browser")
    return found
