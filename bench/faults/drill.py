#!/usr/bin/env python
"""The fault drill: the whole system as `make run` starts it, households trading, faults injected.

    DEBUG=1 .venv/bin/python bench/faults/drill.py [--pause 5] [--output FILE]

Starts ``manage.py runsystem --demo`` (the demo community, its simulator reporting meters and
trading, four validators, web, worker, beat) on the embedded defaults in a fresh directory
(``VAR_DIR``), and while three demo households place a small buy order every 0.4 s through the
REST API and ``/healthz`` is read every 0.2 s, it injects, one after another:

* ``kill -9`` of each process kind in turn: web, worker, beat, each validator, the simulator;
* a burst of hostile requests (JSON nested 1,000 deep, bodies that are not JSON, duplicate keys,
  wrong content types, bad paging) from 8 threads.

For each fault it reports whether the load held, the requests that failed and how (HTTP status
or connection error), and the time until the killed process ran again and the site answered.
At the end it waits for every transaction the API acknowledged (202) to be committed, and reports
how many were lost (must be 0). Not injected here, and why: a restart of the embedded Redis (it
belongs to the run command: restarting it is restarting the system, docs: what is lost); a
PostgreSQL restart (the drill runs on the embedded SQLite default); a full disk (not safely
arranged on a shared machine). Results: ``results/drill-<date>.json``; docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import log, machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KILLED = ["web", "worker", "beat", "validator-0", "validator-1", "validator-2", "validator-3"]
KILLED += ["simulator"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int | str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except OSError as error:
        return type(error).__name__, b""


class System:
    def __init__(self, var: Path, port: int) -> None:
        self.var, self.port = var, port
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(DEBUG="1", VAR_DIR=str(var), PYTHONUNBUFFERED="1")
        self.output = var.parent / "runsystem.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runsystem", "--demo", f"--port={port}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def control(self, *command: str) -> str:
        conf = self.var / "run" / "supervisord.conf"
        argv = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), *command]
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

    def pid(self, name: str) -> int:
        try:
            return int(self.control("pid", name).strip())
        except ValueError:
            return 0

    def running(self, name: str) -> bool:
        return "RUNNING" in self.control("status", name)

    def back(self, name: str, killed: int) -> bool:
        """``name`` runs again, as a new process, and the site answers (the supervisor calls it
        RUNNING only after 5 s up; this is when it was started again)."""
        return self.pid(name) not in (0, killed) and self.healthy()

    def healthy(self) -> bool:
        return _request(self.base + "/healthz")[0] == 200

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def _until(condition: Any, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    return None


class Load:
    """Households placing small buy orders, and a health probe; every answer, timestamped."""

    def __init__(self, system: System, tokens: list[str], slot: str) -> None:
        self.system, self.tokens, self.slot = system, tokens, slot
        self.answers: list[tuple[float, str, int | str]] = []  # (time, what, status)
        self.acknowledged: list[str] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._orders, daemon=True),
            threading.Thread(target=self._health, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def _orders(self) -> None:
        n = 0
        while not self.stopping.is_set():
            token = self.tokens[n % len(self.tokens)]
            body = {"slot": self.slot, "side": "buy", "energy_wh": 10, "price": 1}
            status, raw = _request(
                self.system.base + "/api/v1/orders",
                json.dumps(body).encode(),
                {"Authorization": f"Token {token}", "Content-Type": "application/json"},
            )
            self.answers.append((time.monotonic(), "order", status))
            if status == 202:
                self.acknowledged.append(json.loads(raw)["transaction"])
            n += 1
            time.sleep(0.4)

    def _health(self) -> None:
        while not self.stopping.is_set():
            status, _ = _request(self.system.base + "/healthz")
            self.answers.append((time.monotonic(), "healthz", status))
            time.sleep(0.2)

    def failures(self, since: float, until: float) -> dict[str, int]:
        failed: dict[str, int] = {}
        for at, what, status in self.answers:
            if since <= at <= until and not (isinstance(status, int) and status < 500):
                failed[f"{what} {status}"] = failed.get(f"{what} {status}", 0) + 1
        return failed

    def count(self, since: float, until: float) -> int:
        return sum(1 for at, _, _ in self.answers if since <= at <= until)


def _hostile(system: System, token: str) -> dict[str, int]:
    url = system.base + "/api/v1/orders"
    auth = {"Authorization": f"Token {token}"}
    cases = [
        (url, ("[" * 1000 + "]" * 1000).encode(), {**auth, "Content-Type": "application/json"}),
        (url, b"{'slot': ", {**auth, "Content-Type": "application/json"}),
        (url, b'{"side": "buy", "side": "sell"}', {**auth, "Content-Type": "application/json"}),
        (url, b"side=buy", {**auth, "Content-Type": "application/x-www-form-urlencoded"}),
        (url + "?limit=abc", None, auth),
        (system.base + "/api/v1/ledger/blocks?offset=-1", None, {}),
        (system.base + "/api/v1/nothing", None, {}),
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda case: _request(*case)[0], cases * 40))
    counted: dict[str, int] = {}
    for status in answers:
        counted[str(status)] = counted.get(str(status), 0) + 1
    return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="fault-drill-"))
    var = directory / "var"
    os.environ.update(DEBUG="1", VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="gridplatform.settings")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    result: dict[str, Any] = {"machine": machine(), "faults": []}
    system = System(var, _free_port())
    try:
        log(f"starting the system as `make run` does, in {var}")
        up = _until(lambda: "simulator entered RUNNING" in system.text(), 240)
        if up is None:
            raise SystemExit("the system did not start:\n" + system.text()[-3000:])
        log(f"system up in {up:.0f} s")
        import django

        django.setup()  # the system's own database and (published) Redis
        from gridplatform.accounts.models import Role, User
        from gridplatform.accounts.services import api_token_create
        from ledger.models import TransactionRecord
        from meters.selectors import network_slot_ms

        households = User.objects.filter(role=Role.HOUSEHOLD).order_by("email")[:3]
        tokens = [api_token_create(user=h, name="fault drill")[1] for h in households]
        slot_ms = network_slot_ms()
        slot = (int(time.time() * 1000) // slot_ms + 6) * slot_ms  # well before its gate
        slot_iso = datetime.fromtimestamp(slot / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
        load = Load(system, tokens, slot_iso)
        load.start()
        time.sleep(args.pause)
        for name in KILLED:
            pid = system.pid(name)
            started = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            recovered = _until(lambda n=name, p=pid: system.back(n, p), 120)
            time.sleep(args.pause)
            entry = {
                "fault": f"kill -9 {name}",
                "recovered_s": None if recovered is None else round(recovered, 1),
                "requests": load.count(started, time.monotonic()),
                "failed": load.failures(started, time.monotonic()),
                "system_kept_running": system.process.poll() is None,
            }
            result["faults"].append(entry)
            log(f"{entry['fault']}: back in {entry['recovered_s']} s, failed {entry['failed']}")
        started = time.monotonic()
        hostile = _hostile(system, tokens[0])
        result["faults"].append(
            {
                "fault": "hostile burst (280 requests, 8 threads)",
                "answers": hostile,
                "requests": load.count(started, time.monotonic()),
                "failed": load.failures(started, time.monotonic()),
                "system_kept_running": system.process.poll() is None,
            }
        )
        log(f"hostile burst: answers {hostile}")
        load.stop()
        acknowledged = list(load.acknowledged)
        log(f"{len(acknowledged)} transactions acknowledged; waiting for their commits")
        _until(
            lambda: (
                TransactionRecord.objects.filter(tx_id__in=acknowledged).count()
                == len(acknowledged)
            ),
            180,
        )
        committed = TransactionRecord.objects.filter(tx_id__in=acknowledged).count()
        result["acknowledged"] = len(acknowledged)
        result["committed"] = committed
        result["lost"] = len(acknowledged) - committed
        result["requests"] = len(load.answers)
        log(f"acknowledged {len(acknowledged)}, committed {committed}, lost {result['lost']}")
    finally:
        system.stop()
    out = args.output or RESULTS / f"drill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"results: {out}")


if __name__ == "__main__":
    main()
