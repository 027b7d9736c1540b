"""What every benchmark script shares: its log line, a description of the machine for the
result file, and a watchdog that stops a run that hangs."""

from __future__ import annotations

import datetime
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The applications a benchmark's ledger runs: the site's settings.LEDGER_APPLICATIONS, named
# here because the benchmarks that drive the ledger alone do not load Django (a test keeps the
# two lists equal).
APPLICATIONS = ("meters.chain", "market.chain", "supervision.chain")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _first_line_value(path: str, prefix: str = "") -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    """The machine a result was measured on, and how busy it was at the start."""
    return {
        "uname": " ".join(platform.uname()),
        "cpu_model": _first_line_value("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "memory": _first_line_value("/proc/meminfo"),
        "python": sys.version.split()[0],
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "load_average_at_start": os.getloadavg(),
    }


def watchdog(seconds: float, cleanup: Callable[[], object]) -> None:
    """After ``seconds``, clean up and end the process (exit status 3), whatever it is doing."""

    def fire() -> None:
        log(f"watchdog: run exceeded {seconds:.0f} s; stopping everything")
        try:
            cleanup()
        finally:
            os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
