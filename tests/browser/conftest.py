"""Browser tests: the real ASGI site in a daphne process, driven by the system Chromium.

Playwright's sync API keeps an asyncio event loop running in the test thread for as long as it
is started. Two consequences shape this file:

* Django refuses ORM calls from a thread with a running loop (SynchronousOnlyOperation). The
  loop is Playwright's, not the code under test's, so while Playwright runs the test process sets
  DJANGO_ALLOW_ASYNC_UNSAFE, the usual practice for Playwright with Django. The server process
  does not inherit it (see support.py). ``async_to_sync`` cannot be allowed the same way: code
  that uses it is called through ``support.outside_event_loop``.
* The loop would still be running in every test after the first browser test, breaking the ORM,
  ``async_to_sync`` and ``asyncio.run`` there. So the browser tests run last.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.support import ASYNC_UNSAFE, LiveServer, server_with_environment

CHROMIUM = "/usr/bin/chromium"
# We run as root; without the networking flags Chromium tries to reach the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    # Marked before the other hooks run, so that `-m "not browser"` deselects these tests.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)
    result = yield
    # Moved last after the others ran (pytest-django sorts by kind of database access).
    others = [item for item in items if not item.path.is_relative_to(HERE)]
    items[:] = others + [item for item in items if item.path.is_relative_to(HERE)]
    return result


@pytest.fixture(autouse=True)
def _fast_password_hashing() -> None:
    """Overrides the fixture of tests/conftest.py: accounts made here log in on the server.

    The server uses the site's hashers (Argon2), which do not include the fast MD5 hasher that
    fixture installs; a password hashed with it could not be checked there.
    """


@pytest.fixture(scope="module")
def _live_server(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # After django_db_setup the connection's settings name the test database. The server has no
    # ledger network unless a module gives it one (server_for_network): never the checkout's
    # own, which `make run` leaves under var/ledger.
    empty = tmp_path_factory.mktemp("no-network")
    server = server_with_environment(
        LEDGER_DIR=str(empty), LEDGER_STORE_URL=f"sqlite:///{empty}/store-{{node}}.sqlite3"
    )
    yield server
    server.stop()


@pytest.fixture
def live_server_url(_live_server: LiveServer, transactional_db: None) -> str:
    """The URL of the site, running against the test database.

    The test's writes are committed (transactional_db), so the server sees them; the database is
    flushed after each test while the server keeps running for the whole module.
    """
    return _live_server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def new_page(browser: Browser, live_server_url: str) -> Iterator[Callable[..., Page]]:
    """Pages in browser contexts of their own: separate cookies, as in another browser.

    Relative URLs (``page.goto("/accounts/login/")``) go to the live server.
    """
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> Page:
        """``options``: Playwright's for the context, e.g. ``timezone_id``."""
        context = browser.new_context(base_url=live_server_url, **options)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
