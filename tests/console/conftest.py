"""The web console in a real browser: Debian's Chromium (/usr/bin/chromium) driven by
Playwright's sync API, against one ``promenade up`` for the whole session.

- ``console``: that server, set up through the API (``ConsoleServer`` in
  tests/support/browser.py: the project ``shop``, its greeter and build 1.0.0 deployed nowhere,
  Production behind one APPROVER's approval, and the reviewer's token).
- ``browser``: the headless Chromium, for this folder's tests (package scope: Playwright's
  running event loop would break the asyncio tests after them); a test fails (never skips)
  when it is not installed.
- ``page_for``: ``page_for(token) -> Page``, a page in a context of its own, signed in with
  ``token``; ``page_for.recorded(page)`` is what it received (response bodies, websocket
  frames).
- ``screenshot``: ``screenshot(page, name) -> Path``, into PROMENADE_SCREENSHOT_DIR when set,
  else the test's tmp_path.

Their marks, ``processes`` and ``browser``, come from this folder (tests/support/markers.py):
``make test-fast`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.processes import free_port, kill_instances, running_promenade
from tests.support.browser import (
    CHROMIUM,
    ConsoleServer,
    Pages,
    launch_chromium,
    set_up_console,
)
from tests.support.browser import screenshot as save_screenshot


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """One ``promenade up`` whose console the tests open; every integration it started is gone
    after."""
    data_dir = tmp_path_factory.mktemp("console")
    gateway_port = free_port()
    try:
        with running_promenade(
            "up", data_dir, {"PROMENADE_GATEWAY_PORT": str(gateway_port)}
        ) as promenade:
            admin_token = promenade.first_stdout_line()
            yield set_up_console(
                promenade.url, f"http://127.0.0.1:{gateway_port}", data_dir, admin_token
            )
    finally:
        kill_instances(data_dir / "runtime")


# Package scope, not session: while Playwright's sync API is started, its event loop counts as
# running in this thread, and every asyncio test after it would fail (asyncio.run() cannot be
# called from a running event loop). It stops once the last test of tests/console has run.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the tests of this folder."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"no {CHROMIUM}: the console's tests drive Debian's Chromium; run "
            "scripts/test-services as root, or apt-get install chromium chromium-driver "
            "fonts-dejavu-core"
        )
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page_for(browser: Browser, console: ConsoleServer) -> Iterator[Pages]:
    """``page_for(token)``: a new page (and context) signed in with ``token``; closed after the
    test."""
    pages = Pages(browser, console.url)
    yield pages
    pages.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], Path]:
    """``screenshot(page, name)``: ``name``.png into PROMENADE_SCREENSHOT_DIR, else tmp_path."""

    def take(page: Page, name: str) -> Path:
        return save_screenshot(page, name, tmp_path)

    return take
