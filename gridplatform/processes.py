"""The processes of the system, named once: the run command and docker/compose.yaml run these.

``bench``, ``tests/test_docker.py`` and the compose file all refer to these commands, so a
process is renamed or reconfigured here and nowhere else.
"""

from __future__ import annotations

import shlex
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


# --- supervision under the run command ----------------------------------------------------------

SUPERVISOR_CONF = Path("run") / "supervisord.conf"
SUPERVISOR_SOCKET = Path("run") / "supervisor.sock"


def supervisor_config(var_dir: Path, processes: dict[str, list[str]], *, later: set[str]) -> Path:
    """Write the process supervisor's configuration for ``processes`` and return its path.

    The run command runs ``supervisord`` (the ``supervisor`` package) in the foreground: it
    starts every process, restarts one that exits (at once after a crash; with a growing delay,
    1 s, 2 s, 3 s ..., while it keeps failing within 5 s of starting), writes each process's output
    to ``var/log/<name>.log`` and one line per process event (spawned, exited, restarted) to the
    terminal. Those named in ``later`` are started on request (``supervisorctl start``), e.g. the
    demo's simulator once the demo is on the ledger.
    """
    run, logs = var_dir / "run", var_dir / "log"
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    socket = var_dir / SUPERVISOR_SOCKET
    lines = [
        "[unix_http_server]",
        f"file={socket}",
        "chmod=0700",
        "",
        "[supervisord]",
        "nodaemon=true",
        # In the foreground supervisord also writes each line of this log to the terminal: one
        # line per process event (spawned, exited, stopped).
        f"logfile={logs / 'supervisord.log'}",
        "logfile_maxbytes=5MB",
        "loglevel=info",
        f"pidfile={run / 'supervisord.pid'}",
        f"childlogdir={logs}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{socket}",
    ]
    for name, argv in processes.items():
        lines += [
            "",
            f"[program:{name}]",
            # supervisor reads the command with shlex; % is its own expansion character.
            "command=" + shlex.join(argv).replace("%", "%%"),
            f"autostart={'false' if name in later else 'true'}",
            "autorestart=true",
            "startsecs=5",
            "startretries=1000",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={logs / (name + '.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=3",
        ]
    path = var_dir / SUPERVISOR_CONF
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
