"""The processes of the system, named once: the run command and docker/compose.yaml run these.

``bench``, ``tests/test_docker.py`` and the compose file all refer to these commands, so a
process is renamed or reconfigured here and nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path

MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"


def validator_command(index: int) -> list[str]:
    """Validator ``index`` as a Celery worker: its own queue only, one task at a time.

    Solo pool, prefetch 1 and late acks (settings) so that an unfinished message is given back
    rather than lost; no gossip or mingle, which validators do not need.
    """
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "gridplatform.celery",
        "worker",
        "--loglevel=INFO",
        f"--queues=validator.{index}",
        "--pool=solo",
        "--concurrency=1",
        "--prefetch-multiplier=1",
        f"--hostname=validator-{index}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def commands(
    *, host: str, port: int, var_dir: Path, behind_proxy: bool = False, validators: int = 0
) -> dict[str, list[str]]:
    """The argv of each long-running process, keyed by its name.

    ``behind_proxy`` makes the web server take the client's address from the reverse proxy's
    X-Forwarded-For. Only behind a proxy: elsewhere a client could forge its address and so
    dodge the login lockout, which counts failures per email and address.
    """
    python = sys.executable
    proxy = ["--proxy-headers"] if behind_proxy else []
    processes = {
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
            "gridplatform.celery",
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
            "gridplatform.celery",
            "beat",
            "--loglevel=INFO",
            f"--schedule={var_dir / 'celerybeat-schedule'}",
        ],
    }
    for index in range(validators):
        processes[f"validator-{index}"] = [
            python,
            str(MANAGE_PY),
            "run_validator",
            f"--node={index}",
        ]
    return processes
