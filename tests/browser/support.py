"""Support for the browser tests: the real site in a daphne process, and ORM calls off the loop.

The spawned server process unpickles the callables below by importing this module before Django
is set up, so nothing here may import models (or anything that does) at module level.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from daphne.testing import DaphneProcess

HOST = "127.0.0.1"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
_SPAWN = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1

T = TypeVar("T")


def build_application(*, database_name: str, host: str) -> Any:
    """Runs in the server process: point Django at the test database, then build the site.

    Settings are changed before ``gridplatform.asgi`` is imported, so that everything built from
    them (the WebSocket origin check copies ALLOWED_HOSTS) sees the changed values.
    """
    _die_with_parent()
    # The test process lets the ORM run beside Playwright's event loop (see conftest.py); the
    # server keeps Django's check that no coroutine calls the ORM, as in production.
    os.environ.pop(ASYNC_UNSAFE, None)

    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = database_name
    if host not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, host]

    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from gridplatform.asgi import application

    # As Channels' own live server test case does: static files served from the finders.
    return ASGIStaticFilesHandler(application)


def _die_with_parent() -> None:
    """On Linux, the server is killed if the test process dies without stopping it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class SpawnedDaphneProcess(DaphneProcess):
    """Daphne's test process, started in a fresh interpreter rather than forked.

    A fork would inherit the test process's open database connections, Playwright's pipes and
    running event loop, and settings overridden by fixtures; a spawned server reads the site's
    settings from the environment as production does, and is told only the test database.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Shared with a spawned child, these must come from the spawn context.
        self.port = _SPAWN.Value("i", self.port.value)
        self.ready = _SPAWN.Event()
        self.errors = _SPAWN.Queue()

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # multiprocessing's own name
        return _SPAWN.Process._Popen(process_obj)


class LiveServer:
    """The ASGI application (HTTP and WebSockets) on a free port of ``HOST``."""

    def __init__(self, *, database_name: str, startup_timeout_s: float = 60.0) -> None:
        self.process = SpawnedDaphneProcess(
            HOST, partial(build_application, database_name=database_name, host=HOST)
        )
        self.process.daemon = True
        self.process.start()
        deadline = time.monotonic() + startup_timeout_s
        while not self.process.ready.wait(timeout=0.2):
            if not self.process.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the test server did not start: {self._error()}")
        self.url = f"http://{HOST}:{self.process.port.value}"

    def _error(self) -> str:
        try:
            _error, trace = self.process.errors.get(timeout=1)
        except queue.Empty:
            return f"exit code {self.process.exitcode}; see its output above"
        return str(trace)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def server_with_environment(**environment: str) -> LiveServer:
    """A test server started with ``environment`` added to its own: the spawned server reads
    its settings (the ledger's place) from the environment, set here only while it starts."""
    from django.db import connection

    # Its mail goes to files of its own, which its outbox page (/outbox/) shows: the inbox a
    # household of these tests reads its registration link from.
    environment = {"MAIL_DIR": tempfile.mkdtemp(prefix="mail-"), "EMAIL_URL": ""} | environment
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        return LiveServer(database_name=str(connection.settings_dict["NAME"]))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def server_for_network(network: Any) -> LiveServer:
    """A test server whose processes sign and submit to ``network`` (a ``LiveNetwork``)."""
    return server_with_environment(
        LEDGER_DIR=str(network.directory), LEDGER_STORE_URL=network.store_template
    )


def check_while_live(page: Any, locator: Any, attempts: int = 3) -> None:
    """Check a radio or checkbox on a page whose live regions may swap at any moment.

    A block that commits while the test fills a form makes the regions above it re-fetch
    themselves; when one grows, the form moves down between Playwright's aim and its click, and
    the click lands beside the input ("did not change its state"). Wait for htmx to be idle and
    try again; the input must end up checked.
    """
    from playwright.sync_api import Error, expect

    idle = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    for attempt in range(attempts):
        page.wait_for_function(idle)
        try:
            locator.check()
            break
        except Error:
            if attempt == attempts - 1:
                raise
    expect(locator).to_be_checked()


def outside_event_loop(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call ``function`` in a thread of its own, where Playwright's event loop is not running.

    For code that uses ``async_to_sync``, which refuses to run in a thread with a running loop:
    creating an account pushes a live hint to the consoles once it commits. The thread's
    database connection is closed before it ends, so none is left open on the test database.
    """

    def call() -> T:
        from django.db import connections

        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call).result()
