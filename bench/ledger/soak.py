#!/usr/bin/env python
"""Ledger soak: a community trading, reading and settling for days, through the 4 real validators.

    DEBUG=1 .venv/bin/python bench/ledger/soak.py                         # 2,000 households, 7 days
    DEBUG=1 .venv/bin/python bench/ledger/soak.py --days 1 --households 200   # a smoke run
    #   other options: --rate 360 --order-share 5 --relay-hours 2 --seed 1 --keep --output FILE

Does the ledger stay the same size and speed as it ages? The four validators run as in
``bench/ledger/run.py`` (``manage.py run_validator --node K``, real Celery workers on the local
Redis, SQLite stores in a fresh temporary directory, all removed at the end), on an accelerated
clock (``ledger.runtime``): ``LEDGER_CLOCK_RATE`` = ``--rate`` and ``LEDGER_CLOCK_START_MS`` =
the moment they start. The default rate is 360 for 2,000 households (a simulated day in 4
minutes, a week in 28), and proportionally faster for fewer, up to 1,440 (200 households: a day
in a minute), so that the offered load stays near 140 transactions a second. The loader reads the
same clock (``ledger.runtime.now_ms``) and acts at every 15-minute boundary of simulated time:

* **Setup** (before day 1): the grid operator registers ``--households`` households, issues
  them credits, puts them on 40 feeders and registers a 15-minute bidirectional meter for each
  (4 transactions a household); 40 % of them have PV and export between 07:00 and 17:00 UTC.
* **Readings**: every ``--relay-hours`` (2) each meter's device signs its intervals since its
  last batch and the grid operator relays them (``meter.readings``: 8 readings a transaction), an
  eighth of the meters at each boundary (meter ``i`` when ``boundary / 15 min = i`` mod 8). A
  batch is sent only once the clock has passed the end of its last interval (the
  ``future_reading`` rule).
* **Orders**: at each boundary ``--order-share`` % of the households (5) place one order for
  the slot an hour ahead (open: gate closure is 5 minutes before it): PV households in their
  daylight sell three quarters of what their meter will export in that slot, so that every
  contract is delivered in full; everyone else buys 100-600 Wh. Asks 80-105, bids 90-125 minor
  units per kWh, so that about half of them cross.
* **Clearing and settlement**: at boundary ``b`` the grid operator sends ``market.slot.clear``
  for the slot starting at ``b`` (its gate closed 5 minutes ago) and ``market.slot.settle`` for
  the slot that started a relay period (2 hours) ago, when every meter has relayed its readings
  for it (the default ``market.settlement_delay_ms``, 15 minutes, has long passed). The
  operator's transactions are one nonce sequence, so a validator always executes a slot's
  readings before its settlement.

At 2,000 households that is about 350 transactions a simulated quarter hour (250 relays, 100
orders, a clearing and a settlement). A relay costs each validator about 1 ms of CPU (measured
with 4 readings: two Ed25519 verifications, the readings parsed and written), and 4 validators
share 2 cores: relaying every hour at this rate (240 tx/s) kept up on day 1 of a trial and fell
behind on day 2 (as the state grew, on a machine shared with a test run); every 2 hours leaves
room.

The loader never has more than 10,000 transactions submitted and not committed (half a
validator's pool: a refused transaction would break its sender's nonces); when the validators
fall behind it waits while the simulated clock runs on. Each day says how late the loader was
and how many transactions were outstanding, at worst; a validator that lags commits orders
after their slot closed (``slot_closed``, ``slot_past`` in the results by type). At the end of
each simulated day (before the next day's first transactions) it records:

* **state keys**: rows of validator 0's ``state`` table (the live state after its tip), in all
  and by family (the first two parts of the key, ``meter/reading``, ``market/contract``, ...);
* **RSS** of each validator process (``VmRSS`` in ``/proc/<pid>/status``), its CPU seconds that day;
* transactions submitted and committed (validator 0), height, the loader's lateness and the
  most transactions outstanding that day.

After the last day, per day (blocks by their header time): blocks, transactions, the results by
transaction type, blocks proposed after a view change, and the **block time**: for each block, from
its proposal (the header's timestamp, mapped back to the wall clock) to its commit as logged by
each validator ("validator K committed block H", log lines with ms); p50 and p95 at validator 0,
p95 at each. It includes the proposer's execution, the votes, each validator's check and its store
append, and any wait in a validator's queue. It then reports day-N / day-1 ratios of the state keys
(bar <= 1.1) and of the p95 block time (bar <= 1.25), and writes
``bench/ledger/results/soak-<stamp>.json``. A watchdog stops the run after ``900 s + 2 x days x
86,400 / rate``; a run whose validators commit nothing for 60 s while transactions are outstanding
stops with an error.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import log, machine, watchdog  # noqa: E402
from bench.ledger.run import (  # noqa: E402
    CHAIN,
    VALIDATORS,
    Network,
    Reader,
    cleanup_once,
    cpu_seconds,
    percentile,
    prepare_environment,
    rss_mb,
)

RESULTS = Path(__file__).resolve().parent / "results"
INTERVAL_MS = 900_000  # meter interval = delivery slot (the market's default)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
ORDER_LEAD_MS = HOUR_MS  # orders go to the slot an hour ahead
FEEDERS = 40
CREDITS = 10**9
BATCH = 2_000
MAX_OUTSTANDING = 10_000  # half a validator's pool (LEDGER_POOL_LIMIT, 20,000)
STALL_S = 60.0
RATE = 360  # the default for 2,000 households; fewer run proportionally faster, up to MAX_RATE
MAX_RATE = 1_440
STATE_BAR = 1.1
BLOCK_TIME_BAR = 1.25
COMMIT_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}): \w+/\w+\] validator \d+ committed block (\d+) "
)


def _key(label: str) -> Any:
    from ledger.identity import KeyPair

    return KeyPair(private_key=hashlib.sha256(label.encode()).digest())


def _rfc3339(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def drop_site_messages() -> None:
    """The validators tell the site of every block on the default queue, which no worker
    consumes here: drop them, so that Redis does not hold a week of blocks."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("celery", *client.scan_iter("celery*"))
    client.close()


class Community:
    """The grid operator, the households and their meters' devices, and what each one signs."""

    def __init__(self, households: int, seed: int) -> None:
        self.operator = _key(f"soak operator {seed}")
        self.operator_address = self.operator.address
        self.people = [_key(f"soak household {seed} {i}") for i in range(households)]
        self.addresses = [person.address for person in self.people]
        self.devices = [_key(f"soak meter {seed} {i}") for i in range(households)]
        self.pv = {i for i in range(households) if i % 5 < 2}
        self.nonces = [0] * households
        self.operator_nonce = 0
        self.rng = random.Random(seed)  # noqa: S311  # benchmark data

    def _signed(self, who: Any, sender: str, nonce: int, type_: str, payload: Any) -> Any:
        from ledger.crypto import sign_transaction

        return sign_transaction(
            keypair=who, chain=CHAIN, type=type_, nonce=nonce, payload=payload, sender=sender
        )

    def operator_tx(self, type_: str, payload: dict[str, Any]) -> Any:
        tx = self._signed(self.operator, self.operator_address, self.operator_nonce, type_, payload)
        self.operator_nonce += 1
        return tx

    def household_tx(self, i: int, type_: str, payload: dict[str, Any]) -> Any:
        tx = self._signed(self.people[i], self.addresses[i], self.nonces[i], type_, payload)
        self.nonces[i] += 1
        return tx

    def setup(self) -> list[Any]:
        txs = []
        for i, (person, address) in enumerate(zip(self.people, self.addresses, strict=True)):
            feeder = f"f{i % FEEDERS}"
            txs += [
                self.operator_tx(
                    "account.register",
                    {"address": address, "public_key": person.public_key_hex, "role": "household"},
                ),
                self.operator_tx("credit.issue", {"to": address, "amount": CREDITS}),
                self.operator_tx("grid.feeder.assign", {"address": address, "feeder": feeder}),
                self.operator_tx(
                    "meter.register",
                    {
                        "meter": f"m{i:06d}",
                        "owner": address,
                        "kind": "bidirectional",
                        "public_key": self.devices[i].public_key_hex,
                        "feeder": feeder,
                        "interval_s": INTERVAL_MS // 1000,
                    },
                ),
            ]
        return txs

    def export_wh(self, i: int, start_ms: int) -> int:
        """What meter ``i`` exports in the interval: PV households in daylight (UTC)."""
        if i not in self.pv or not 7 <= start_ms // HOUR_MS % 24 < 17:
            return 0
        return 100 + (i * 37 + start_ms // INTERVAL_MS * 11) % 400

    def relays(self, boundary: int, every_ms: int, first_ms: int, now_ms: int) -> list[Any]:
        """The batches due at ``boundary``, each meter relaying every ``every_ms``: those of the
        meters whose turn it is, each with its intervals of the last ``every_ms`` that start at
        ``first_ms`` or later."""
        from meters.chain.metering import device_message

        turns = every_ms // INTERVAL_MS
        starts = [s for s in range(boundary - every_ms, boundary, INTERVAL_MS) if s >= first_ms]
        if not starts:
            return []
        t = now_ms // 1000
        txs = []
        for i in range(boundary // INTERVAL_MS % turns, len(self.people), turns):
            readings = []
            for start in starts:
                export = self.export_wh(i, start)
                imported = 0 if export else 50 + (i * 13 + start // INTERVAL_MS * 7) % 300
                readings.append(
                    {
                        "start": _rfc3339(start),
                        "duration_s": INTERVAL_MS // 1000,
                        "import_wh": imported,
                        "export_wh": export,
                        "quality": "actual",
                    }
                )
            body = json.dumps({"readings": readings}, separators=(",", ":"))
            signature = self.devices[i].sign(device_message(t, body.encode()))
            payload = {"meter": f"m{i:06d}", "t": t, "body": body, "signature": signature}
            txs.append(self.operator_tx("meter.readings", payload))
        return txs

    def orders(self, slot: int, share_pct: int) -> list[Any]:
        count = max(1, len(self.people) * share_pct // 100)
        txs = []
        for i in sorted(self.rng.sample(range(len(self.people)), count)):
            export = self.export_wh(i, slot)
            if export:
                side, energy, price = "sell", max(1, export * 3 // 4), self.rng.randint(80, 105)
            else:
                side, energy, price = "buy", self.rng.randint(100, 600), self.rng.randint(90, 125)
            payload = {"slot": slot, "side": side, "energy_wh": energy, "price": price}
            txs.append(self.household_tx(i, "market.order.place", payload))
        return txs


class Soak:
    def __init__(self, args: argparse.Namespace, network: Network, community: Community) -> None:
        from ledger import runtime

        self.args = args
        self.network = network
        self.community = community
        self.clock = runtime.clock()
        self.now_ms = runtime.now_ms
        self.reader = Reader(network.url(0))
        self.submitted = 0
        self.progress = (0, time.monotonic())  # (committed, when it last moved)
        self.late_ms = 0  # how far behind the simulated clock the loader acted, at worst
        self.backlog = 0  # the most transactions submitted and not committed, at worst
        self.cpu_mark: dict[int, float] = {}  # each validator's CPU seconds at the last snapshot
        self.days: list[dict[str, Any]] = []  # a snapshot at the end of each simulated day

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, txs: list[Any]) -> None:
        """Send ``txs`` to every validator, in pieces of at most BATCH, each only once at most
        MAX_OUTSTANDING transactions are submitted and not committed: a validator refuses what
        overflows its pool, and one refused transaction would break its sender's nonces for
        good. While the loader waits, the simulated clock runs on (see ``late_ms``)."""
        from ledger.services import transactions_submit

        for start in range(0, len(txs), BATCH):
            piece = txs[start : start + BATCH]
            while self.submitted + len(piece) - self.committed() > MAX_OUTSTANDING:
                time.sleep(0.25)
            transactions_submit(transactions=piece, validators=range(VALIDATORS))
            self.submitted += len(piece)

    def committed(self) -> int:
        """Transactions in validator 0's store; stops the run when they stall."""
        count = self.reader.tx_count()
        self.backlog = max(self.backlog, self.submitted - count)
        if count != self.progress[0]:
            self.progress = (count, time.monotonic())
        elif count < self.submitted and time.monotonic() - self.progress[1] > STALL_S:
            raise RuntimeError(
                f"the validators committed nothing for {STALL_S:.0f} s with "
                f"{self.submitted - count} transactions outstanding"
            )
        self.network.check_alive()
        return count

    def wait_committed(self, what: str, timeout: float) -> float:
        started = time.monotonic()
        while self.committed() < self.submitted:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{what}: not committed within {timeout:.0f} s")
            time.sleep(0.25)
        return time.monotonic() - started

    def wait_until(self, moment_ms: int) -> None:
        """Until the simulated clock reaches ``moment_ms``; notes how late the loader is."""
        while True:
            ahead = moment_ms - self.now_ms()
            if ahead <= 0:
                self.late_ms = max(self.late_ms, -ahead)
                return
            time.sleep(min(0.05, ahead / self.clock.rate / 1000))

    # -- measuring ----------------------------------------------------------------------------

    def snapshot(self, day: int) -> dict[str, Any]:
        families = self.reader.all(
            "SELECT CASE WHEN instr(rest, '/') > 0 THEN substr(key, 1, instr(key, '/') "
            "+ instr(rest, '/') - 1) ELSE substr(key, 1, instr(key, '/') - 1) END AS family, "
            "COUNT(*) FROM (SELECT key, substr(key, instr(key, '/') + 1) AS rest FROM state) "
            "GROUP BY family ORDER BY COUNT(*) DESC"
        )
        committed = self.committed()
        pids = self.network.pids()
        cpu = {index: cpu_seconds(pid) for index, pid in pids.items()}
        spent = {index: seconds - self.cpu_mark.get(index, 0.0) for index, seconds in cpu.items()}
        self.cpu_mark = cpu
        late, self.late_ms = self.late_ms, 0
        backlog, self.backlog = self.backlog, 0
        return {
            "day": day,
            "simulated_ms": self.now_ms(),
            "wall_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "state_keys": sum(int(count) for _, count in families),
            "state_keys_by_family": {str(name): int(count) for name, count in families},
            "validator_rss_mb": {index: rss_mb(pid) for index, pid in pids.items()},
            "validator_cpu_s_in_day": spent,
            "loader_late_at_worst_simulated_min": late / 60_000,
            "submitted": self.submitted,
            "committed": committed,
            "outstanding": self.submitted - committed,
            "outstanding_at_worst": backlog,
            "height": self.reader.height(),
        }

    def commit_times(self) -> list[dict[int, float]]:
        """Per validator: height -> wall-clock time (s) of its "committed block" log line."""
        out: list[dict[int, float]] = []
        for index in range(VALIDATORS):
            times: dict[int, float] = {}
            text = (self.network.directory / f"validator-{index}.log").read_text(errors="replace")
            for line in text.splitlines():
                match = COMMIT_LINE.match(line)
                if match:  # logging writes local time, which mktime reads back
                    stamp = time.mktime(time.strptime(match[1], "%Y-%m-%d %H:%M:%S"))
                    times.setdefault(int(match[3]), stamp + int(match[2]) / 1000)
            out.append(times)
        return out

    def blocks_by_day(self, first_ms: int, days: int, after: int) -> list[dict[str, Any]]:
        """Per simulated day from ``first_ms``: the blocks above height ``after`` whose header
        time falls on it, their transactions' results by type, and their block times."""
        rate, start = self.clock.rate, self.clock.start_ms
        commits = self.commit_times()
        found: list[dict[str, Any]] = [
            {"sizes": [], "latencies": [[] for _ in range(VALIDATORS)], "results": {}, "views": 0}
            for _ in range(days)
        ]
        tip = self.reader.height()
        for low in range(after + 1, tip + 1, 100):
            for height, body in self.reader.all(
                "SELECT height, body FROM blocks WHERE height >= ? AND height < ?",
                (low, low + 100),
            ):
                block = json.loads(body)
                timestamp = block["header"]["timestamp_ms"]
                day = (timestamp - first_ms) // DAY_MS
                if not 0 <= day < days:
                    continue
                into = found[day]
                into["sizes"].append(len(block["transactions"]))
                # Proposed by another than view 0's proposer: a view change at that height.
                into["views"] += block["header"]["proposer"] != int(height) % VALIDATORS
                results = into["results"]
                for tx, outcome in zip(block["transactions"], block["results"], strict=True):
                    counts = results.setdefault(tx["type"], collections.Counter())
                    counts[outcome] += 1
                proposed = (start + (timestamp - start) / rate) / 1000
                for index, times in enumerate(commits):
                    if int(height) in times:
                        into["latencies"][index].append(times[int(height)] - proposed)
        out = []
        for day, into in enumerate(found, start=1):
            sizes, latencies = into["sizes"], into["latencies"]
            out.append(
                {
                    "blocks": len(sizes),
                    "transactions": sum(sizes),
                    "mean_block_tx": sum(sizes) / len(sizes) if sizes else 0,
                    "max_block_tx": max(sizes, default=0),
                    "blocks_after_a_view_change": into["views"],
                    "results_by_type": {
                        name: dict(sorted(counts.items()))
                        for name, counts in sorted(into["results"].items())
                    },
                    "block_time_p50_s": percentile(latencies[0], 0.50),
                    "block_time_p95_s": percentile(latencies[0], 0.95),
                    "block_time_max_s": max(latencies[0], default=float("nan")),
                    "block_time_p95_s_each_validator": [
                        percentile(values, 0.95) for values in latencies
                    ],
                    "blocks_timed_each_validator": [len(values) for values in latencies],
                }
            )
            log(
                f"day {day}: {len(sizes)} blocks, {sum(sizes):,} tx; block time p50 "
                f"{out[-1]['block_time_p50_s']:.3f} s, p95 {out[-1]['block_time_p95_s']:.3f} s"
            )
        return out

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        args, community = self.args, self.community
        started = time.monotonic()
        self.submit(community.setup())
        setup_s = self.wait_committed("setup", timeout=600)
        setup_height = self.reader.height()
        log(f"setup: {len(community.people):,} households and meters in {setup_s:.1f} s")
        # Day 1 starts at the next whole simulated hour (meters relay by the hour).
        first = (self.now_ms() + 60_000 + HOUR_MS - 1) // HOUR_MS * HOUR_MS
        self.cpu_mark = {i: cpu_seconds(pid) for i, pid in self.network.pids().items()}
        self.late_ms = self.backlog = 0  # day 1 counts from here, not from the setup
        end = first + args.days * DAY_MS
        relay_ms = args.relay_hours * HOUR_MS
        days = self.days
        boundary = first
        while boundary <= end:
            self.wait_until(boundary)
            if boundary > first and (boundary - first) % DAY_MS == 0:
                days.append(self.snapshot((boundary - first) // DAY_MS))
                self.log_day(days[-1])
            if boundary == end:
                break
            txs = community.relays(boundary, relay_ms, first, self.now_ms())
            if boundary >= first + ORDER_LEAD_MS:
                txs.append(community.operator_tx("market.slot.clear", {"slot": boundary}))
            if boundary - relay_ms >= first + ORDER_LEAD_MS:
                # Every meter has relayed the slot that started a relay period ago (the last one
                # at this boundary, just above), and it ended long enough ago to settle.
                slot = boundary - relay_ms
                txs.append(community.operator_tx("market.slot.settle", {"slot": slot}))
            if boundary + ORDER_LEAD_MS < end:
                txs += community.orders(boundary + ORDER_LEAD_MS, args.order_share)
            self.submit(txs)
            self.committed()
            drop_site_messages()
            boundary += INTERVAL_MS
        drain_s = self.wait_committed("the last day", timeout=300)
        by_day = self.blocks_by_day(first, args.days, setup_height)
        for snapshot, blocks in zip(days, by_day, strict=True):
            snapshot.update(blocks)
        return {
            "setup_s": setup_s,
            "setup_height": setup_height,
            "first_day_simulated_utc": _rfc3339(first),
            "run_s": time.monotonic() - started,
            "drain_after_last_day_s": drain_s,
            "transactions_submitted": self.submitted,
            "days": days,
            "ratios": ratios(days),
        }

    def log_day(self, day: dict[str, Any]) -> None:
        rss = ", ".join(f"{mb:.0f}" for mb in day["validator_rss_mb"].values())
        log(
            f"day {day['day']}: {day['state_keys']:,} state keys; RSS {rss} MB; height "
            f"{day['height']}; {day['committed']:,} tx committed, {day['outstanding']} "
            f"outstanding; loader late {day['loader_late_at_worst_simulated_min']:.1f} min at worst"
        )


def ratios(days: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = days[0], days[-1]
    state = last["state_keys"] / first["state_keys"]
    p95 = last["block_time_p95_s"] / first["block_time_p95_s"]
    return {
        "days": [first["day"], last["day"]],
        "state_keys": state,
        "state_keys_bar": {"at_most": STATE_BAR, "met": state <= STATE_BAR},
        "block_time_p95": p95,
        "block_time_p95_bar": {"at_most": BLOCK_TIME_BAR, "met": p95 <= BLOCK_TIME_BAR},
        "validator_rss_mb_max": [
            max(first["validator_rss_mb"].values()),
            max(last["validator_rss_mb"].values()),
        ],
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=7, help="simulated days")
    parser.add_argument(
        "--rate",
        type=int,
        default=0,
        help="simulated time per real time; default 360 x 2,000 / households, at most 1,440 "
        "(2,000 households: a day in 4 min, a week in 28)",
    )
    parser.add_argument(
        "--order-share", type=int, default=5, help="%% of households ordering at each boundary"
    )
    parser.add_argument(
        "--relay-hours", type=int, default=2, help="each meter's readings are relayed this often"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--output", help="result file (default: results/soak-<stamp>.json)")
    args = parser.parse_args()
    if (
        args.households < 4
        or args.days < 1
        or args.rate < 0
        or not 0 < args.order_share <= 100
        or not 1 <= args.relay_hours <= 6
    ):
        parser.error(
            "--households >= 4, --days >= 1, --rate >= 1, 0 < --order-share <= 100, "
            "1 <= --relay-hours <= 6"
        )
    if not args.rate:  # about 240 tx/s offered, whatever the size (docs/benchmarks.md)
        args.rate = max(1, min(MAX_RATE, RATE * 2_000 // args.households))
    return args


def main() -> int:
    args = parse()
    tag = uuid.uuid4().hex[:8]
    directory = Path(tempfile.mkdtemp(prefix=f"bench-soak-{tag}-"))
    template = prepare_environment(directory, "sqlite", tag)

    import django

    django.setup()
    from ledger import runtime

    network = Network(directory, template)
    cleanup = cleanup_once(network, directory, keep=args.keep, purge=drop_site_messages)

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    watchdog(900 + 2 * args.days * DAY_MS / 1000 / args.rate, cleanup)
    result: dict[str, Any] = {
        "benchmark": "ledger-soak",
        "machine": machine(),
        "config": {
            "validators": VALIDATORS,
            "store": "sqlite",
            "households": args.households,
            "days": args.days,
            "clock_rate": args.rate,
            "order_share_pct": args.order_share,
            "seed": args.seed,
            "meter_interval_s": INTERVAL_MS // 1000,
            "relay_every_h": args.relay_hours,
            "redis": os.environ["REDIS_URL"],
            "block_time": "header time (the proposal) to each validator's 'committed' log line",
        },
    }
    log(
        f"machine: {result['machine']['cpu_model']}, {result['machine']['cores']} cores; "
        f"{args.households:,} households for {args.days} simulated days at {args.rate}x "
        f"(about {args.days * DAY_MS / 1000 / args.rate / 60:.0f} min); dir {directory}"
    )
    soak: Soak | None = None
    try:
        community = Community(args.households, args.seed)
        network.create(community.operator)
        os.environ[runtime.CLOCK_RATE_VARIABLE] = str(args.rate)
        os.environ[runtime.CLOCK_START_VARIABLE] = str(runtime.wall_ms())
        network.purge_queues()
        network.start()
        log("4 validators up")
        soak = Soak(args, network, community)
        result.update(soak.run())
    except Exception as error:  # keep the days measured so far, and say why it stopped
        log(f"the run failed: {error!r}")
        result.update(error=repr(error), days=soak.days if soak else [])
    finally:
        cleanup()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    output = Path(args.output) if args.output else RESULTS / f"soak-{stamp}.json"
    output.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    if "error" in result:
        log(f"partial results: {output}")
        return 1
    print_summary(result)
    log(f"results: {output}")
    return 0


def print_summary(result: dict[str, Any]) -> None:
    m, r = result["machine"], result["ratios"]
    print()
    print(f"  machine  {m['cpu_model']}, {m['cores']} cores, Python {m['python']}; {m['date_utc']}")
    print(
        f"  {result['config']['households']:,} households, {result['config']['days']} days at "
        f"{result['config']['clock_rate']}x; {result['transactions_submitted']:,} transactions"
    )
    print()
    print("  day  state keys  RSS max MB  blocks       tx  block time p50 / p95 s  late min")
    for day in result["days"]:
        rss = max(day["validator_rss_mb"].values())
        p50, p95 = day["block_time_p50_s"], day["block_time_p95_s"]
        print(
            f"  {day['day']:>3}  {day['state_keys']:>10,}  {rss:>10.0f}  {day['blocks']:>6}  "
            f"{day['transactions']:>7,}  {p50:>12.3f} / {p95:.3f}  "
            f"{day['loader_late_at_worst_simulated_min']:>8.1f}"
        )
    print()
    for name, bar in (("state keys", "state_keys"), ("p95 block time", "block_time_p95")):
        verdict = "MET" if r[f"{bar}_bar"]["met"] else "NOT MET"
        print(
            f"  day {r['days'][1]} / day {r['days'][0]} {name}: {r[bar]:.2f} "
            f"(bar <= {r[f'{bar}_bar']['at_most']}): {verdict}"
        )
    print()


if __name__ == "__main__":
    sys.exit(main())
