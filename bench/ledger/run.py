#!/usr/bin/env python
"""Ledger benchmark: 4 validators as real Celery worker processes on this machine.

    DEBUG=1 .venv/bin/python bench/ledger/run.py [--duration 60] [--rate 200]
                                                 [--store sqlite|postgres] [--profile]

Measures, in one run (see docs/benchmarks.md for the figures and how to read them):

1. the Ed25519 verification rate of one core (``cryptography``), and the bound it implies for
   the ledger: ``cores x verifications/s / validators`` (every validator verifies every
   transaction's signature at least once);
2. latency at a fixed offered load (``--rate`` tx/s for ``--duration`` s): submit time (just
   before ``ledger.services.transaction_submit``) to commit time (the first poll, every ~20 ms,
   that sees the transaction's block in validator 0's store), p50/p95/p99;
3. sustained throughput: a closed-loop loader keeps at most ``--window`` submitted but not yet
   committed transactions in flight (so the validators' pools, 20,000, never overflow) and
   submits as fast as the validators commit, for ``--warmup`` + ``--duration`` s; committed
   tx/s is counted on validator 0's store over the ``--duration`` s steady window (the other
   validators are reported too).

Everything is the product's own path: transactions are signed with ``ledger.crypto``,
submitted with ``ledger.services.transaction_submit`` (one Celery task per validator queue),
and the validators are ``manage.py run_validator --node K``. The benchmark only reads the stores
(read-only connections). It runs on a fresh temporary directory (genesis, key files, SQLite
stores or fresh PostgreSQL databases), on a Redis database of 127.0.0.1:6379 that holds no keys
(so its queues are fresh), and removes all of it afterwards. A watchdog ends the run, whatever
happens, after a bounded time.

``--profile`` also samples validator 0 and this loader with py-spy (if installed) during the
throughput phase and prints the functions where the time goes (raw stacks in results/).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import log, machine, watchdog  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VALIDATORS = 4
CHAIN = "bench-ledger"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"


# --- environment (before Django is imported) ---------------------------------------------------


def pick_redis_db() -> int:
    """A Redis database that holds no keys: fresh queues, shared with nobody."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        try:
            if client.dbsize() == 0:
                return db
        finally:
            client.close()
    raise SystemExit("no empty Redis database on 127.0.0.1:6379 (databases 1-15 all hold keys)")


def prepare_environment(directory: Path, store: str, tag: str) -> str:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DEBUG", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "gridplatform.settings"
    db = pick_redis_db()
    os.environ["REDIS_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    os.environ["DATABASE_URL"] = f"sqlite:///{directory / 'site.sqlite3'}"  # never used
    os.environ["LEDGER_DIR"] = str(directory)
    os.environ["LEDGER_VALIDATORS"] = str(VALIDATORS)
    os.environ["LEDGER_CHAIN_ID"] = CHAIN
    os.environ["PYTHONUNBUFFERED"] = "1"
    if store == "sqlite":
        template = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    else:
        template = f"{POSTGRES_SERVER}/bench_ledger_{tag}_{{node}}"
    os.environ["LEDGER_STORE_URL"] = template
    return template


# --- machine ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- 1. Ed25519 ---------------------------------------------------------------------------------


def ed25519_rate(seconds: float = 3.0) -> dict[str, float]:
    """Verifications per second on one core: raw ``cryptography`` and the product's wrapper."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.identity import KeyPair, verify

    message = os.urandom(300)  # about the size of a transaction's signing bytes
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    signature = private.sign(message)

    def rate(call: Any, budget: float, samples: int = 5) -> float:
        """The best of ``samples`` timings (others' load on a shared machine only slows)."""
        best = 0.0
        for _ in range(samples):
            count, started = 0, time.perf_counter()
            while True:
                for _ in range(200):
                    call()
                count += 200
                elapsed = time.perf_counter() - started
                if elapsed >= budget / samples:
                    break
            best = max(best, count / elapsed)
        return best

    raw = rate(lambda: public.verify(signature, message), seconds)
    pair = KeyPair.generate()
    signature_hex = pair.sign(message)
    wrapped = rate(lambda: verify(pair.public_key_hex, message, signature_hex), seconds / 2)
    sign = rate(lambda: private.sign(message), seconds / 3)
    cores = os.cpu_count() or 1
    return {
        "verify_per_s_one_core": raw,
        "verify_us": 1e6 / raw,
        "product_verify_per_s_one_core": wrapped,
        "sign_per_s_one_core": sign,
        "cores": cores,
        "validators": VALIDATORS,
        "implied_bound_tx_per_s": cores * raw / VALIDATORS,
    }


# --- signing (in worker processes) --------------------------------------------------------------

_KEYS: list[Any] = []


def _init_signer(private_keys: list[bytes]) -> None:
    from ledger.identity import KeyPair

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    _KEYS[:] = [KeyPair(private_key=key) for key in private_keys]


def _sign_chunk(job: tuple[list[tuple[int, int]], list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """Sign credit.transfer transactions: (household, nonce) -> (id, JSON); ``addresses`` of
    the households, each sending 1 credit to the next one."""
    from ledger.crypto import sign_transaction

    items, addresses = job
    out = []
    for who, nonce in items:
        tx = sign_transaction(
            keypair=_KEYS[who],
            chain=CHAIN,
            type="credit.transfer",
            nonce=nonce,
            payload={"to": addresses[(who + 1) % len(addresses)], "amount": 1},
        )
        out.append((tx.id, tx.to_json()))
    return out


# --- reading the stores, read-only --------------------------------------------------------------


class Reader:
    """A read-only connection to one validator's store."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._counted: tuple[int, int] | None = None  # (the highest block counted, its total)
        if url.startswith("sqlite://"):
            path = "/" + url[len("sqlite://") :].lstrip("/")
            self._conn: Any = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10
            )
            self._ph = "?"
        else:
            import psycopg

            self._conn = psycopg.connect(url, autocommit=True)
            self._conn.execute("SET default_transaction_read_only = on")
            self._ph = "%s"

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._conn.execute(sql.replace("?", self._ph), params).fetchone()[0]

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self._conn.execute(sql.replace("?", self._ph), params).fetchall())

    def height(self) -> int:
        value = self.one("SELECT MAX(height) FROM blocks")
        return -1 if value is None else int(value)

    def tx_count(self) -> int:
        """Transactions in the store's blocks. Counted whole once, then only in the blocks
        appended since (on the height index): a COUNT(*) of the whole index at every poll would
        scan a large store's 700,000 rows 20 times a second and load the machine it measures."""
        if self._counted is None:
            rows = self.all("SELECT COALESCE(MAX(height), -1), COUNT(*) FROM tx_index")
            self._counted = (int(rows[0][0]), int(rows[0][1]))
        height, total = self._counted
        for block, count in self.all(
            "SELECT height, COUNT(*) FROM tx_index WHERE height > ? GROUP BY height", (height,)
        ):
            height, total = max(height, int(block)), total + int(count)
        self._counted = (height, total)
        return total

    def tx_heights(self, from_height: int) -> dict[str, int]:
        rows = self.all("SELECT tx_id, height FROM tx_index WHERE height >= ?", (from_height,))
        return {str(tx_id): int(height) for tx_id, height in rows}

    def block_sizes(self, from_height: int, to_height: int) -> list[int]:
        rows = self.all(
            "SELECT height, COUNT(*) FROM tx_index WHERE height >= ? AND height <= ?"
            " GROUP BY height ORDER BY height",
            (from_height, to_height),
        )
        return [int(count) for _, count in rows]

    def results(self, from_height: int) -> collections.Counter[str]:
        from ledger.crypto import loads

        counter: collections.Counter[str] = collections.Counter()
        for (body,) in self.all("SELECT body FROM blocks WHERE height >= ?", (from_height,)):
            counter.update(loads(body)["results"])
        return counter

    def close(self) -> None:
        self._conn.close()


class HeightWatcher(threading.Thread):
    """Polls validator 0's tip every ``interval`` s; records when each height was first seen."""

    def __init__(self, reader: Reader, interval: float = 0.02) -> None:
        super().__init__(name="height-watcher", daemon=True)
        self.reader = reader
        self.interval = interval
        self.seen: dict[int, float] = {}
        self.tip = reader.height()
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                tip = self.reader.height()
            except Exception:  # a busy SQLite read, retried at the next poll
                tip = self.tip
            now = time.time()
            for height in range(self.tip + 1, tip + 1):
                self.seen[height] = now
            self.tip = max(self.tip, tip)
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


# --- the network --------------------------------------------------------------------------------


class Network:
    def __init__(self, directory: Path, template: str) -> None:
        self.directory = directory
        self.template = template
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.created: list[str] = []

    def url(self, index: int) -> str:
        return self.template.replace("{node}", str(index))

    def create(self, operator: Any) -> None:
        from ledger.genesis import create_genesis, install_network
        from ledger.identity import KeyPair

        keys = [KeyPair.generate() for _ in range(VALIDATORS)]
        genesis, block = create_genesis(
            chain=CHAIN,
            timestamp_ms=time.time_ns() // 1_000_000,
            validator_keys=keys,
            issuer_public_key=operator.public_key_hex,
        )
        urls = [self.url(index) for index in range(VALIDATORS)]
        self.created.extend(urls)  # dropped at the end, even if installing fails half-way
        install_network(self.directory, genesis=genesis, block=block, keys=keys, store_urls=urls)
        self.genesis, self.genesis_block, self.keys = genesis, block, keys

    def purge_queues(self) -> None:
        import redis
        from django.conf import settings

        from ledger import config

        client = redis.Redis.from_url(settings.REDIS_URL)
        # The queues, and what kombu keeps beside them (bindings, unacked messages).
        names = [config.queue_name(i) for i in range(VALIDATORS)]
        names += [key.decode() for key in client.scan_iter("_kombu.binding*")]
        names += ["unacked", "unacked_index", "unacked_mutex"]
        client.delete(*names)
        client.close()

    def start(self) -> None:
        env = dict(os.environ)
        for index in range(VALIDATORS):
            out = open(self.directory / f"validator-{index}.log", "ab")
            self.processes[index] = subprocess.Popen(
                [sys.executable, "manage.py", "run_validator", f"--node={index}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Up: the validator has loaded its store, built its state trie and checked the root
        # (ledger.node.Validator), which on a large state takes a while.
        deadline = time.monotonic() + 900
        while True:
            ready = [
                "up at height"
                in (self.directory / f"validator-{i}.log").read_text(errors="replace")
                for i in range(VALIDATORS)
            ]
            if all(ready):
                return
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"validators not up within 900 s: {ready}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        for index, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.directory / f"validator-{index}.log").read_text(errors="replace")
                raise RuntimeError(f"validator {index} died:\n{tail[-3000:]}")

    def pids(self) -> dict[int, int]:
        return {index: process.pid for index, process in self.processes.items()}

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        self.processes.clear()

    def drop(self) -> None:
        from ledger.store import drop_database

        for url in self.created:
            if not url.startswith("sqlite"):
                try:
                    drop_database(url, force=True)
                except Exception as error:  # report, keep cleaning
                    log(f"could not drop {url}: {error}")


# --- the benchmark ------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, network: Network) -> None:
        from ledger.identity import KeyPair

        self.args = args
        self.network = network
        self.operator = KeyPair.generate()
        self.households = [KeyPair.generate() for _ in range(args.households)]
        self.addresses = [h.address for h in self.households]
        self.nonces = [0] * args.households
        self.operator_nonce = 0
        self.readers: list[Reader] = []
        self.submitted_total = 0
        self.submit_seconds: list[float] = []
        self.submit_sizes: list[int] = []

    # submission: the product's own path, one message per validator per batch
    def submit(self, txs: list[Any]) -> None:
        from ledger.services import transactions_submit

        if not txs:
            return
        started = time.perf_counter()
        transactions_submit(transactions=txs, validators=range(VALIDATORS))
        self.submit_seconds.append(time.perf_counter() - started)
        self.submit_sizes.append(len(txs))
        self.submitted_total += len(txs)

    def operator_tx(self, type_: str, payload: dict[str, Any]) -> Any:
        from ledger.crypto import sign_transaction

        tx = sign_transaction(
            keypair=self.operator,
            chain=CHAIN,
            type=type_,
            nonce=self.operator_nonce,
            payload=payload,
        )
        self.operator_nonce += 1
        return tx

    def presign(self, count: int) -> list[tuple[str, Any]]:
        """``count`` transfers, round-robin over the households (each in nonce order), signed
        by worker processes on every core while the validators are idle."""
        from ledger.crypto import Transaction

        items = []
        for i in range(count):
            who = i % len(self.households)
            items.append((who, self.nonces[who]))
            self.nonces[who] += 1
        chunk = 500
        jobs = [(items[i : i + chunk], self.addresses) for i in range(0, len(items), chunk)]
        started = time.perf_counter()
        keys = [h.private_key for h in self.households]
        context = multiprocessing.get_context("fork")
        with context.Pool(os.cpu_count() or 1, _init_signer, (keys,)) as pool:
            signed = [pair for part in pool.map(_sign_chunk, jobs) for pair in part]
        out = [(tx_id, Transaction.from_json(data)) for tx_id, data in signed]
        log(f"pre-signed {count} transfers in {time.perf_counter() - started:.1f} s")
        return out

    def counts(self) -> list[int]:
        return [reader.tx_count() for reader in self.readers]

    def wait_all_committed(self, what: str, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            counts = self.counts()
            if all(c >= self.submitted_total for c in counts):
                return time.monotonic() - started
            self.network.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{what}: not committed within {timeout:.0f} s: stores hold {counts} of "
                    f"{self.submitted_total} transactions"
                )
            time.sleep(0.25)

    def setup_accounts(self) -> dict[str, Any]:
        started = time.monotonic()
        registrations = [
            self.operator_tx(
                "account.register",
                {
                    "address": household.address,
                    "public_key": household.public_key_hex,
                    "role": "household",
                },
            )
            for household in self.households
        ]
        top_ups = [
            self.operator_tx("credit.issue", {"to": household.address, "amount": 10**12})
            for household in self.households
        ]
        self.submit(registrations + top_ups)
        self.wait_all_committed("registrations and top-ups", timeout=180)
        elapsed = time.monotonic() - started
        log(f"{len(self.households)} households registered and topped up in {elapsed:.1f} s")
        return {
            "households": len(self.households),
            "setup_tx": 2 * len(self.households),
            "setup_s": elapsed,
        }

    # 2. latency at a fixed offered load
    def latency(self) -> dict[str, Any]:
        args = self.args
        count = int(args.rate * args.duration)
        txs = self.presign(count)
        start_height = self.readers[0].height() + 1
        watcher = HeightWatcher(self.readers[0])
        watcher.start()
        sent: dict[str, float] = {}
        late = 0
        mark = len(self.submit_sizes)
        busy0, total0 = machine_busy()
        started = time.time()
        tick = args.batch_ms / 1000
        i = 0
        while i < len(txs):
            now = time.time()
            if now - started >= args.duration:
                break  # the submission path could not offer the rate: bounded in time anyway
            # Everything due by now goes in one batch (one message per validator).
            due_count = min(len(txs), int((now - started) * args.rate) + 1)
            if due_count <= i:
                time.sleep(min(tick, (i / args.rate) - (now - started)))
                continue
            if now - (started + i / args.rate) > tick + 0.05:
                late += due_count - i
            batch = txs[i:due_count]
            at = time.time()
            for tx_id, _ in batch:
                sent[tx_id] = at
            self.submit([tx for _, tx in batch])
            i = due_count
            self.network.check_alive()
            time.sleep(tick)
        offered_s = time.time() - started
        count = len(sent)
        calls = len(self.submit_sizes) - mark
        self.latency_submit_s = statistics.fmean(self.submit_seconds[-calls:])
        self.skipped = txs[count:]
        busy1, total1 = machine_busy()
        drain_s = self.wait_all_committed("latency phase", timeout=120)
        time.sleep(0.1)
        watcher.stop()
        heights = self.readers[0].tx_heights(start_height)
        latencies = []
        missing = 0
        for tx_id, at in sent.items():
            height = heights.get(tx_id)
            if height is None or height not in watcher.seen:
                missing += 1
                continue
            latencies.append(watcher.seen[height] - at)
        sizes = self.readers[0].block_sizes(start_height, watcher.tip)
        return {
            "offered_rate_tx_per_s": args.rate,
            "achieved_offered_rate_tx_per_s": count / offered_s,
            "duration_s": offered_s,
            "transactions": count,
            "batch_ms": args.batch_ms,
            "submit_calls": calls,
            "mean_batch_tx": count / max(1, calls),
            "submit_call_mean_ms": 1e3 * self.latency_submit_s,
            "submitted_late_over_batch_plus_50ms": late,
            "unmatched": missing,
            "p50_s": percentile(latencies, 0.50),
            "p95_s": percentile(latencies, 0.95),
            "p99_s": percentile(latencies, 0.99),
            "max_s": max(latencies) if latencies else math.nan,
            "mean_s": statistics.fmean(latencies) if latencies else math.nan,
            "blocks": len(sizes),
            "mean_block_tx": statistics.fmean(sizes) if sizes else 0,
            "drain_after_last_submit_s": drain_s,
            "machine_cpu_busy_fraction": (busy1 - busy0) / max(1, total1 - total0),
            "results": dict(self.readers[0].results(start_height)),
        }

    # 3. sustained throughput, closed loop
    def throughput(self) -> dict[str, Any]:
        args = self.args
        total_s = args.warmup + args.duration
        rate = args.presign_rate if args.presign_rate > 0 else 2500.0
        count = int(rate * total_s) + args.window
        txs = getattr(self, "skipped", []) + self.presign(count)
        base = self.counts()
        start_height = self.readers[0].height() + 1
        committed = [base[0]]
        stop = threading.Event()

        def follow() -> None:  # validator 0's committed count, every 50 ms
            reader = Reader(self.network.url(0))
            while not stop.is_set():
                try:
                    committed[0] = reader.tx_count()
                except Exception:  # a busy read: the next poll retries
                    committed[0] = committed[0]
                stop.wait(0.05)
            reader.close()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        pids = {f"validator-{i}": pid for i, pid in self.network.pids().items()}
        pids["loader"] = os.getpid()
        profilers = self.start_profilers(args.warmup, args.duration) if args.profile else []
        started = time.monotonic()
        window_start = started + args.warmup
        window_end = window_start + args.duration
        marks: dict[str, Any] = {}
        submitted_phase = 0
        exhausted = False
        blocked_s = 0.0
        submit_mark = len(self.submit_seconds)
        i = 0
        while True:
            now = time.monotonic()
            if "start" not in marks and now >= window_start:
                marks["start"] = self.snapshot(pids, submitted_phase)
                submit_mark = len(self.submit_seconds)
                window_end = marks["start"]["t"] + args.duration  # a full window, however late
            if now >= window_end:
                marks["end"] = self.snapshot(pids, submitted_phase)
                break
            if i >= len(txs):
                exhausted = True
                time.sleep(0.01)
                continue
            in_flight = base[0] + submitted_phase - committed[0]
            room = min(args.window - in_flight, len(txs) - i)
            if room <= 0:
                t = time.perf_counter()
                time.sleep(0.005)
                blocked_s += time.perf_counter() - t
                continue
            self.submit([tx for _, tx in txs[i : i + room]])
            i += room
            submitted_phase += room
            self.network.check_alive()
            time.sleep(args.batch_ms / 1000)
        window_submit = self.submit_seconds[submit_mark:]
        stop.set()
        follower.join(timeout=5)
        for profiler in profilers:
            try:
                profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        drain_s = self.wait_all_committed("throughput phase", timeout=180)
        a, b = marks["start"], marks["end"]
        span = b["t"] - a["t"]
        per_validator = [(b["counts"][k] - a["counts"][k]) / span for k in range(VALIDATORS)]
        heights = (a["heights"][0], b["heights"][0])
        cpu = {name: (b["cpu"][name] - a["cpu"][name]) / span for name in pids}
        committed_window = b["counts"][0] - a["counts"][0]
        sizes = self.readers[0].block_sizes(heights[0] + 1, heights[1])
        return {
            "window": args.window,
            "warmup_s": args.warmup,
            "steady_window_s": span,
            "committed_tx_per_s": per_validator[0],
            "committed_tx_per_s_each_validator": per_validator,
            "committed_in_window": committed_window,
            "submitted_per_s_in_window": (b["submitted"] - a["submitted"]) / span,
            "blocks_per_s": (heights[1] - heights[0]) / span,
            "mean_block_tx": statistics.fmean(sizes) if sizes else 0,
            "max_block_tx": max(sizes) if sizes else 0,
            "loader_exhausted": exhausted,
            "loader_blocked_by_window_s": blocked_s,
            "submit_call_mean_ms": 1e3 * statistics.fmean(window_submit) if window_submit else 0,
            "submit_calls_per_s": len(window_submit) / span,
            "cpu_cores_used": cpu,
            "cpu_ms_per_committed_tx": {
                name: 1e3 * value * span / max(1, committed_window) for name, value in cpu.items()
            },
            "machine_cpu_busy_fraction": (b["busy"][0] - a["busy"][0])
            / max(1, b["busy"][1] - a["busy"][1]),
            "drain_after_stop_s": drain_s,
            "results": dict(self.readers[0].results(start_height)),
        }

    def snapshot(self, pids: dict[str, int], submitted: int) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "counts": self.counts(),
            "heights": [reader.height() for reader in self.readers],
            "cpu": {name: cpu_seconds(pid) for name, pid in pids.items()},
            "busy": machine_busy(),
            "submitted": submitted,
        }

    def start_profilers(self, delay: float, duration: float) -> list[subprocess.Popen[bytes]]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            log("py-spy not installed: no profile (pip install py-spy)")
            return []
        RESULTS.mkdir(parents=True, exist_ok=True)
        targets = {"validator-0": self.network.pids()[0], "loader": os.getpid()}
        processes = []
        for name, pid in targets.items():
            out = RESULTS / f"profile-{self.args.store}-{name}.txt"
            self.args.profile_files[name] = str(out)
            command = [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(duration)),
                "--rate",
                "100",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out),
            ]
            if name == "loader":
                command.append("--threads")
            # Start after the warm-up, so the profile covers the steady window only.
            processes.append(
                subprocess.Popen(
                    ["sh", "-c", f'sleep {delay} && exec "$@"', "sh", *command],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return processes


def summarize_profile(path: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function, from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(inclusive)}


# --- main ---------------------------------------------------------------------------------------


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds per measured phase")
    parser.add_argument("--rate", type=float, default=200, help="offered tx/s, latency phase")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument(
        "--window",
        type=int,
        default=4000,
        help="throughput phase: at most this many submitted, uncommitted tx",
    )
    parser.add_argument(
        "--batch-ms",
        type=int,
        default=50,
        help="the loader sends what is due every this many ms, one message per validator",
    )
    parser.add_argument("--warmup", type=float, default=10, help="throughput warm-up, seconds")
    parser.add_argument(
        "--presign-rate",
        type=float,
        default=0,
        help="throughput phase: pre-sign this many tx per second of phase (default 2500)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy validator 0 and loader")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--state-households",
        default="0",
        type=lambda text: [int(n) for n in text.split(",")],
        help="comma-separated: one network per entry, its stores prefilled with that many "
        "households (~7 live state keys each: account, balance, feeder, meter, its window; "
        "142858 = 1,000,000 keys); e.g. 0,142858 measures an empty and a large state side by "
        "side",
    )
    parser.add_argument("--output", help="result file (default: results/<date>-<store>.json)")
    args = parser.parse_args()
    args.profile_files = {}
    return args


def run_network(args: argparse.Namespace, network: Network, households: int) -> dict[str, Any]:
    """One network: created, prefilled with ``households`` households (0: an empty state),
    started, measured, stopped."""
    from bench.ledger.prefill import prefill

    run: dict[str, Any] = {"state_households": households}
    bench = Bench(args, network)
    network.create(bench.operator)
    if households:
        log(f"prefill: {households:,} households with a meter each ...")
        run["prefill"] = prefill(
            network.genesis,
            network.genesis_block,
            network.keys,
            bench.operator,
            [network.url(i) for i in range(VALIDATORS)],
            households,
        )
        bench.operator_nonce = run["prefill"]["transactions"]
        log(f"prefill: {run['prefill']['state_keys']:,} keys in {run['prefill']['total_s']:.0f} s")
    network.purge_queues()
    started = time.monotonic()
    network.start()
    run["validators_ready_s"] = time.monotonic() - started  # restart on that state
    bench.readers = [Reader(network.url(i)) for i in range(VALIDATORS)]
    log(f"4 validators up in {run['validators_ready_s']:.1f} s")
    run["setup"] = bench.setup_accounts()
    if not args.skip_latency:
        log(f"latency phase: {args.rate:.0f} tx/s for {args.duration:.0f} s ...")
        run["latency"] = bench.latency()
        lat = run["latency"]
        log(f"latency p50 {lat['p50_s']:.3f} s, p95 {lat['p95_s']:.3f} s, p99 {lat['p99_s']:.3f} s")
    if not args.skip_throughput:
        log(f"throughput phase: {args.warmup:.0f} s warm-up + {args.duration:.0f} s ...")
        server_before = postgres_server_counters() if args.store == "postgres" else {}
        run["throughput"] = bench.throughput()
        if server_before:
            after = postgres_server_counters()
            run["postgres_server"] = {name: after[name] - server_before[name] for name in after}
            log(f"PostgreSQL server during the throughput phase: {run['postgres_server']}")
        log(f"throughput {run['throughput']['committed_tx_per_s']:.1f} tx/s committed")
    run["validator_rss_mb"] = {index: rss_mb(pid) for index, pid in network.pids().items()}
    for reader in bench.readers:
        reader.close()
    return run


def postgres_server_counters() -> dict[str, float]:
    """What the PostgreSQL server has written so far (cumulative, server-wide): WAL records,
    full-page images and bytes (``pg_stat_wal``), checkpoints and buffers written by them and by
    backends (``pg_stat_bgwriter``). The difference over a phase says where its time went."""
    import psycopg

    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as conn:
        wal = conn.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
        writer = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req, buffers_checkpoint, buffers_backend, "
            "buffers_clean FROM pg_stat_bgwriter"
        ).fetchone()
    if wal is None or writer is None:
        raise RuntimeError("the server's statistics views are empty")
    names = ("wal_records", "wal_fpi", "wal_bytes", "checkpoints", "buffers_checkpoint")
    names += ("buffers_backend", "buffers_clean")
    return {name: float(value) for name, value in zip(names, (*wal, *writer), strict=True)}


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cleanup_network(network: Network) -> None:
    """Stop the validators and drop their stores, so that the next run starts afresh."""
    network.stop()
    network.purge_queues()
    network.drop()
    network.created.clear()
    for path in network.directory.glob("*"):
        if path.is_file():
            path.unlink()


def compare(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "throughput" in small and "throughput" in large:
        ratio = (
            large["throughput"]["committed_tx_per_s"] / small["throughput"]["committed_tx_per_s"]
        )
        out["throughput_ratio"] = ratio
        out["throughput_bar"] = {"at_least": 0.9, "met": ratio >= 0.9}
    if "latency" in small and "latency" in large:
        out["p95_s"] = {"small": small["latency"]["p95_s"], "large": large["latency"]["p95_s"]}
        out["p95_bar"] = {
            "at_most_s": 0.5,
            "met": max(out["p95_s"].values()) <= 0.5,
        }
    out["validators_ready_s"] = {
        "small": small["validators_ready_s"],
        "large": large["validators_ready_s"],
    }
    return out


def cleanup_once(
    network: Network, directory: Path, *, keep: bool, purge: Callable[[], None] = lambda: None
) -> Callable[[], None]:
    """What stops a benchmark's network and removes what it made, safe to call more than once
    (the watchdog, a signal and the normal end may all call it): the validators stopped, their
    queues purged (and ``purge``: anything else the benchmark sent), the databases dropped, the
    directory removed unless ``keep``."""
    cleaned = threading.Lock()

    def cleanup() -> None:
        if not cleaned.acquire(blocking=False):
            return
        network.stop()
        try:
            network.purge_queues()
            purge()
        except Exception as error:
            log(f"could not purge the queues: {error}")
        network.drop()
        if keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)

    return cleanup


def main() -> int:
    args = parse()
    tag = uuid.uuid4().hex[:8]
    directory = Path(tempfile.mkdtemp(prefix=f"bench-ledger-{tag}-"))
    template = prepare_environment(directory, args.store, tag)

    import django

    django.setup()

    network = Network(directory, template)
    cleanup = cleanup_once(network, directory, keep=args.keep)

    main_pid = os.getpid()

    def on_term(*_: Any) -> None:
        if os.getpid() != main_pid:
            os._exit(1)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Setup, pre-signing, two phases, drains, per network; a prefill and its start besides.
    watchdog(
        sum(900 + 4 * args.duration + households * 0.2 for households in args.state_households),
        cleanup,
    )
    result: dict[str, Any] = {
        "benchmark": "ledger",
        "machine": machine(),
        "config": {
            "validators": VALIDATORS,
            "store": args.store,
            "duration_s": args.duration,
            "rate": args.rate,
            "households": args.households,
            "window": args.window,
            "warmup_s": args.warmup,
            "redis": os.environ["REDIS_URL"],
            "profile": args.profile,
            "submission_path": "ledger.services.transaction_submit (one Celery task per validator)",
        },
    }
    log(
        f"machine: {result['machine']['cpu_model']}, {result['machine']['cores']} cores; "
        f"store {args.store}; redis {os.environ['REDIS_URL']}; dir {directory}"
    )
    try:
        log("measuring Ed25519 (one core) ...")
        result["ed25519"] = ed25519_rate()
        e = result["ed25519"]
        log(
            f"Ed25519 verify: {e['verify_per_s_one_core']:,.0f}/s/core; bound "
            f"{e['cores']} x rate / {VALIDATORS} = {e['implied_bound_tx_per_s']:,.0f} tx/s"
        )
        runs = []
        for households in args.state_households:
            runs.append(run_network(args, network, households))
            cleanup_network(network)
        result["runs"] = runs
        # The first run's figures stay where earlier result files had them.
        result.update({k: v for k, v in runs[0].items() if k in ("setup", "latency", "throughput")})
        if len(runs) > 1:
            result["large_over_small"] = compare(runs[0], runs[-1])
        for name, path in args.profile_files.items():
            result.setdefault("profile", {})[name] = {
                "file": os.path.relpath(path, ROOT),
                **summarize_profile(path),
            }
    finally:
        cleanup()
    result["bars"] = bars(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    output = Path(args.output) if args.output else RESULTS / f"{stamp}-{args.store}.json"
    output.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    print_summary(result)
    log(f"results: {output}")
    return 0


def bars(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    throughput = result.get("throughput")
    if throughput:
        out["throughput_1000_tx_per_s_sustained_60s"] = bool(
            throughput["committed_tx_per_s"] >= 1000 and throughput["steady_window_s"] >= 60
        )
    latency = result.get("latency")
    if latency:
        out["p95_le_1s_at_200_tx_per_s"] = bool(
            latency["p95_s"] <= 1.0
            and latency["offered_rate_tx_per_s"] >= 200
            and latency["duration_s"] >= 60
            and latency["unmatched"] == 0
        )
    return out


def print_summary(result: dict[str, Any]) -> None:
    m, e = result["machine"], result["ed25519"]
    rows = [
        ("machine", f"{m['cpu_model']}, {m['cores']} cores, Python {m['python']}"),
        ("store", result["config"]["store"]),
        (
            "Ed25519 verify, 1 core",
            f"{e['verify_per_s_one_core']:,.0f} /s ({e['verify_us']:.1f} us)",
        ),
        ("bound cores x verify/s / 4", f"{e['implied_bound_tx_per_s']:,.0f} tx/s"),
    ]
    if "latency" in result:
        lat = result["latency"]
        rows += [
            (
                "offered load",
                f"{lat['achieved_offered_rate_tx_per_s']:.1f} tx/s for "
                f"{lat['duration_s']:.0f} s ({lat['transactions']} tx)",
            ),
            (
                "commit latency p50/p95/p99",
                f"{lat['p50_s']:.3f} / {lat['p95_s']:.3f} / "
                f"{lat['p99_s']:.3f} s (max {lat['max_s']:.3f})",
            ),
            ("  blocks, mean tx/block", f"{lat['blocks']}, {lat['mean_block_tx']:.1f}"),
        ]
    if "throughput" in result:
        t = result["throughput"]
        rows += [
            (
                "sustained committed tx/s",
                f"{t['committed_tx_per_s']:.1f} over {t['steady_window_s']:.0f} s (validator 0)",
            ),
            (
                "  each validator",
                ", ".join(f"{v:.1f}" for v in t["committed_tx_per_s_each_validator"]),
            ),
            ("  blocks/s, mean tx/block", f"{t['blocks_per_s']:.2f}, {t['mean_block_tx']:.0f}"),
            (
                "  submit call (one batch, 4 Celery tasks)",
                f"{t['submit_call_mean_ms']:.2f} ms ({t['submit_calls_per_s']:.1f} calls/s)",
            ),
            ("  CPU cores used", ", ".join(f"{k} {v:.2f}" for k, v in t["cpu_cores_used"].items())),
            ("  machine CPU busy", f"{100 * t['machine_cpu_busy_fraction']:.0f} %"),
        ]
    for name, ok in result.get("bars", {}).items():
        rows.append((f"bar {name}", "MET" if ok else "NOT MET"))
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
    for name, profile in result.get("profile", {}).items():
        print(f"\n  py-spy {name}: {profile.get('samples', 0)} samples; top inclusive:")
        for frame, pct in profile.get("inclusive_pct", [])[:15]:
            print(f"    {pct:5.1f}%  {frame}")
        print("  top self:")
        for frame, pct in profile.get("self_pct", [])[:12]:
            print(f"    {pct:5.1f}%  {frame}")
    print()


if __name__ == "__main__":
    sys.exit(main())
