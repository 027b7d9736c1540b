"""The processes of the system, named once: the run command and docker/compose.yaml run these.

``bench``, ``tests/test_docker.py`` and the compose file all refer to these commands, so a
process is renamed or reconfigured here and nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path


def commands(
    *, host: str, port: int, var_dir: Path, behind_proxy: bool = False
) -> dict[str, list[str]]:
    """The argv of each long-running process, keyed by its name.

    ``behind_proxy`` makes the web server take the client's address from the reverse proxy's
    X-Forwarded-For. Only behind a proxy: elsewhere a client could forge its address and so
    dodge the login lockout, which counts failures per email and address.
    """
    python = sys.executable
    proxy = ["--proxy-headers"] if behind_proxy else []
    return {
        "web": [
            python,
            "-m",
            "daphne",
            "-b",
            host,
            "-p",
            str(port),
            *proxy,
            "gridplatform.asgi:application",
        ],
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "gridplatform",
            "worker",
            "--loglevel=INFO",
            "--concurrency=1",
            "--hostname=worker@%h",
        ],
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "gridplatform",
            "beat",
            "--loglevel=INFO",
            f"--schedule={var_dir / 'celerybeat-schedule'}",
        ],
    }
