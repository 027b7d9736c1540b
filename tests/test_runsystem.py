"""The run command keeps the system up: one crash is not an outage.

``manage.py runsystem`` (what ``make run`` starts) runs every process under a process supervisor:
killing a validator with ``kill -9`` is logged as one line, the validator is started again and
the web server keeps answering; each process logs to its own file; Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.live import ROOT, LiveNetwork
from tests.processes import child_env

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http only)
            return bool(response.status == 200)
    except OSError:
        return False


def _until(what: str, condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    network = LiveNetwork(tmp_path / "ledger")  # a genesis and four stores, nothing started
    var = tmp_path / "var"
    port = _free_port()
    output = tmp_path / "runsystem.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runsystem", f"--port={port}"],
            cwd=ROOT,
            env=child_env(
                VAR_DIR=str(var),
                LEDGER_DIR=str(network.directory),
                LEDGER_STORE_URL=network.store_template,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, var, f"http://127.0.0.1:{port}/healthz"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        subprocess.run(["pkill", "-9", "-f", str(var / "run" / "supervisord.conf")], check=False)
        network.drop()
    print(output.read_text()[-3000:])


def _output(var: Path) -> str:
    return (var.parent / "runsystem.out").read_text()


def test_a_killed_validator_is_restarted_and_the_site_keeps_serving(
    system: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    process, var, healthz = system
    _until("the web server answers", lambda: _answers(healthz), 90)
    _until(
        "validator 1 runs",
        lambda: "validator-1 entered RUNNING state" in _output(var),
        90,
    )
    control = [sys.executable, "-m", "supervisor.supervisorctl"]
    control += ["-c", str(var / "run" / "supervisord.conf")]
    pid = int(subprocess.run([*control, "pid", "validator-1"], capture_output=True).stdout)
    os.kill(pid, signal.SIGKILL)
    _until(
        "the crash is reported",
        lambda: "exited: validator-1 (terminated by SIGKILL; not expected)" in _output(var),
        30,
    )
    assert _answers(healthz)  # the rest of the system kept serving
    _until(
        "validator 1 runs again",
        lambda: _output(var).count("validator-1 entered RUNNING state") == 2,
        60,
    )
    again = int(subprocess.run([*control, "pid", "validator-1"], capture_output=True).stdout)
    assert again not in (0, pid)
    assert process.poll() is None
    # Each process writes to its own log file, not to the terminal.
    assert "validator 1 up at height" in (var / "log" / "validator-1.log").read_text()
    assert "celery@" not in _output(var)
    # Ctrl-C reaches the whole foreground group and stops everything.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert "stopped" in _output(var)
    left = subprocess.run(["pgrep", "-f", str(var / "run")], capture_output=True)
    assert left.stdout == b""
