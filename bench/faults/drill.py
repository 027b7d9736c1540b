#!/usr/bin/env python
"""The fault drill: the whole system as `make run` starts it, households trading, faults injected.

    DEBUG=1 .venv/bin/python bench/faults/drill.py [--services private|embedded] [--pause 5]

Starts ``manage.py runsystem --demo`` (the demo community, its simulator reporting meters and
trading, four validators, web, worker, beat, under the process supervisor) in a fresh directory
(``VAR_DIR``). With ``--services private`` (the default) the site's database is a PostgreSQL
cluster and its broker a Redis server that the drill starts for itself, as a deployment has
them; with ``embedded``, the embedded defaults (SQLite, embedded Redis). Each validator's store
is a SQLite file in a directory of its own; validator 3's is a small disk of its own (a tmpfs).
While three demo households place a small buy order every 0.4 s through the REST API and
``/healthz`` is read every 0.2 s, it injects, one after another:

* ``kill -9`` of each process kind in turn: web, worker, beat, each validator, the simulator;
* a restart of the Redis server (down a few seconds; it keeps nothing on disk, so every queued
  message is lost) and of the PostgreSQL server (``pg_ctl restart -m fast``), with
  ``--services private``;
* a full disk under validator 3's store for ``--full-disk-s`` seconds, then room again;
* a burst of hostile requests (JSON nested 1,000 deep, bodies that are not JSON, duplicate keys,
  wrong content types, bad paging) from 8 threads.

For each fault it reports whether the load held, the requests that failed and how (HTTP status
or connection error), and the time until the system was back. At the end it waits for every
transaction the API acknowledged (202) to be committed, and reports how many were lost (must be
0). The private servers and the small disk need root and the PostgreSQL server binaries; a fault
that cannot be arranged is reported as not injected, with the reason. Results:
``results/drill-<date>.json``; docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
from bench.faults.services import (  # noqa: E402
    PostgresCluster,
    RedisServer,
    SmallDisk,
    Unavailable,
    free_port,
)

RESULTS = Path(__file__).resolve().parent / "results"
KILLED = ["web", "worker", "beat", "validator-0", "validator-1", "validator-2", "validator-3"]
KILLED += ["simulator"]


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
    def __init__(self, var: Path, port: int, env: dict[str, str]) -> None:
        self.var, self.port = var, port
        self.base = f"http://127.0.0.1:{port}"
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
        self.acknowledged: list[tuple[float, str]] = []  # (time, transaction id)
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
                self.acknowledged.append((time.monotonic(), json.loads(raw)["transaction"]))
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


class Drill:
    """The system under load, and what to measure a fault by."""

    def __init__(self, system: System, load: Load, stores: Path) -> None:
        self.system, self.load, self.stores = system, load, stores

    def height(self, node: int) -> int:
        from ledger.store import open_store

        try:
            with open_store(f"sqlite:///{self.stores}/node-{node}/store.sqlite3") as store:
                return int(store.height())
        except Exception:  # a store being written at this instant: asked again
            return -1

    def committed(self, ids: list[str]) -> int:
        from django.db import close_old_connections

        from ledger.models import TransactionRecord

        close_old_connections()  # the site's database may have restarted under this one
        try:
            return int(TransactionRecord.objects.filter(tx_id__in=ids).count())
        except Exception:
            close_old_connections()
            return -1

    def serving(self, since: float) -> bool:
        """The site answers, and an order acknowledged after ``since`` is committed."""
        later = [tx for at, tx in self.load.acknowledged if at > since]
        return self.system.healthy() and bool(later) and self.committed(later[:1]) == 1

    def window(self, fault: str, started: float, **extra: Any) -> dict[str, Any]:
        entry = {
            "fault": fault,
            **extra,
            "requests": self.load.count(started, time.monotonic()),
            "failed": self.load.failures(started, time.monotonic()),
            "system_kept_running": self.system.process.poll() is None,
        }
        log(f"{fault}: {extra}, failed {entry['failed']}")
        return entry


def _kill(drill: Drill, name: str, pause: float) -> dict[str, Any]:
    system = drill.system
    pid = system.pid(name)
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    recovered = _until(lambda: system.back(name, pid), 120)
    time.sleep(pause)
    return drill.window(f"kill -9 {name}", started, recovered_s=_round(recovered))


def _server_restart(drill: Drill, fault: str, restart: Any) -> dict[str, Any]:
    """Restart a server; measure until the ledger commits again (validator 0's store grows) and
    until an order taken after the restart is committed in the site's read model."""
    height = drill.height(0)
    started = time.monotonic()
    restart()
    up = time.monotonic()
    ledger_back = _until(lambda: drill.height(0) > height, 180)
    ledger_back_s = None if ledger_back is None else time.monotonic() - started
    recovered = _until(lambda: drill.serving(up), 180)
    total = None if recovered is None else time.monotonic() - started
    return drill.window(
        fault,
        started,
        down_s=round(up - started, 1),
        ledger_committing_after_s=_round(ledger_back_s),
        recovered_s=_round(total),
    )


def _full_disk(drill: Drill, disk: SmallDisk, hold_s: float) -> dict[str, Any]:
    log_file = drill.system.var / "log" / "validator-3.log"
    stops_before = log_file.read_text(errors="replace").count("validator stops")
    pid = drill.system.pid("validator-3")
    started = time.monotonic()
    disk.fill()
    time.sleep(hold_s)
    held = drill.height(0)
    restarts = drill.system.pid("validator-3") != pid
    disk.free()
    freed = time.monotonic()
    caught_up = _until(lambda: drill.height(3) >= held and drill.system.running("validator-3"), 180)
    stops = log_file.read_text(errors="replace").count("validator stops") - stops_before
    return drill.window(
        f"full disk under validator-3's store for {hold_s:g} s",
        started,
        validator_3_stopped=stops,
        validator_3_restarted=restarts,
        ledger_height_while_full=held,
        caught_up_after_room_s=None if caught_up is None else round(time.monotonic() - freed, 1),
    )


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", choices=["private", "embedded"], default="private")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between faults")
    parser.add_argument("--redis-down-s", type=float, default=3.0)
    parser.add_argument("--full-disk-s", type=float, default=20.0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="fault-drill-"))
    directory.chmod(0o755)  # the PostgreSQL cluster's user passes through it
    var, stores = directory / "var", directory / "stores"
    result: dict[str, Any] = {"machine": machine(), "services": args.services, "faults": []}
    not_injected: dict[str, str] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DEBUG="1", VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    env["LEDGER_STORE_URL"] = f"sqlite:///{stores}/node-{{node}}/store.sqlite3"
    for node in range(3):
        (stores / f"node-{node}").mkdir(parents=True)
    redis = postgres = disk = None
    try:
        disk = SmallDisk(stores / "node-3", size_mb=256)
    except Unavailable as why:
        (stores / "node-3").mkdir(parents=True, exist_ok=True)
        not_injected["full disk"] = str(why)
    if args.services == "private":
        for name, make in (("Redis restart", RedisServer), ("PostgreSQL restart", PostgresCluster)):
            try:
                server = make(directory / name.split()[0].lower())
            except Unavailable as why:
                not_injected[name] = str(why)
                continue
            if isinstance(server, RedisServer):
                redis, env["REDIS_URL"] = server, server.url
            else:
                postgres, env["DATABASE_URL"] = server, server.url
    else:
        not_injected["Redis restart"] = "the embedded Redis belongs to the run command"
        not_injected["PostgreSQL restart"] = "the embedded default is SQLite"
    result["not_injected"] = not_injected
    os.environ.clear()
    os.environ.update(env, DJANGO_SETTINGS_MODULE="gridplatform.settings")
    system = System(var, free_port(), env)
    try:
        log(f"starting the system as `make run` does, in {var} ({args.services} services)")
        up = _until(lambda: "simulator entered RUNNING" in system.text(), 300)
        if up is None:
            raise SystemExit("the system did not start:\n" + system.text()[-3000:])
        log(f"system up in {up:.0f} s")
        import django

        django.setup()  # the system's own database and Redis
        from gridplatform.accounts.models import Role, User
        from gridplatform.accounts.services import api_token_create
        from meters.selectors import network_slot_ms

        households = User.objects.filter(role=Role.HOUSEHOLD).order_by("email")[:3]
        tokens = [api_token_create(user=h, name="fault drill")[1] for h in households]
        slot_ms = network_slot_ms()
        slot = (int(time.time() * 1000) // slot_ms + 8) * slot_ms  # well before its gate
        slot_iso = datetime.fromtimestamp(slot / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
        load = Load(system, tokens, slot_iso)
        drill = Drill(system, load, stores)
        load.start()
        time.sleep(args.pause)
        faults = result["faults"]
        for name in KILLED:
            faults.append(_kill(drill, name, args.pause))
        if redis is not None:
            fault = f"Redis restart (down {args.redis_down_s:g} s, nothing kept)"
            faults.append(_server_restart(drill, fault, lambda: redis.restart(args.redis_down_s)))
            time.sleep(args.pause)
        if postgres is not None:
            fault = "PostgreSQL restart (-m fast)"
            faults.append(_server_restart(drill, fault, postgres.restart))
            time.sleep(args.pause)
        if disk is not None:
            faults.append(_full_disk(drill, disk, args.full_disk_s))
            time.sleep(args.pause)
        started = time.monotonic()
        hostile = _hostile(system, tokens[0])
        faults.append(
            drill.window("hostile burst (280 requests, 8 threads)", started, answers=hostile)
        )
        load.stop()
        acknowledged = [tx for _, tx in load.acknowledged]
        log(f"{len(acknowledged)} transactions acknowledged; waiting for their commits")
        _until(lambda: drill.committed(acknowledged) == len(acknowledged), 240)
        committed = drill.committed(acknowledged)
        result["acknowledged"] = len(acknowledged)
        result["committed"] = committed
        result["lost"] = len(acknowledged) - committed
        result["requests"] = len(load.answers)
        log(f"acknowledged {len(acknowledged)}, committed {committed}, lost {result['lost']}")
    finally:
        system.stop()
        for part in (redis, postgres):
            if part is not None:
                part.stop()
        if disk is not None:
            disk.unmount()
    out = args.output or RESULTS / f"drill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"results: {out}")


if __name__ == "__main__":
    main()
