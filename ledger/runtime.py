"""The validator process: one :class:`~ledger.node.Validator`, driven by Celery and a clock.

A validator process is a Celery worker consuming only its own queue (``validator.<index>``), with
the solo pool: one task at a time, in the worker's main thread. A daemon thread ticks the
validator's clock every ``TICK_S`` seconds (view-change timers, retransmission, catch-up live
here, not in Celery ETA tasks, which a Redis restart loses). Both take one lock, so the validator
sees one input at a time.

Messages are sent by task name (``ledger.config.send``) and handled in ``ledger.tasks``. The site
hears from each validator on the default queue (its own worker): ``ledger.block_committed``
with every block it commits, and every ``HEARTBEAT_S`` a ``ledger.validator_status`` heartbeat
(height, view, time), which expires unread after ``HEARTBEAT_EXPIRES_S``.

Accelerated clock (benchmarks only). A validator takes block time from :func:`now_ms`, the wall
clock. A benchmark that runs days of a community in minutes sets, for every validator alike,
``LEDGER_CLOCK_RATE`` (an integer factor N >= 1) and ``LEDGER_CLOCK_START_MS`` (a wall-clock
time, ms since 1970-01-01T00:00Z): from that moment block time runs N times as fast as the wall
clock, ``start + (wall - start) * N``. Both are read once, at the first reading of the clock;
the four validators and the benchmark that feeds them (which calls :func:`now_ms` too) share one
mapping, so block times stay consistent among them. Unset (or N = 1), the clock is the wall
clock. It is refused unless ``DEBUG`` is on: production never runs on a fake clock. Under an
accelerated clock the consensus timers (``ledger.consensus.Config``: view-change timeout,
retransmission, catch-up) are multiplied by N, so that they last as long in real time as
usual, and every message a validator handles is preceded by a clock tick: at N times real speed
the 50 ms between ticks would be N x 50 ms of block time, more than the clock skew a proposal is
allowed (``ledger.node.MAX_CLOCK_SKEW_MS``). Heartbeats carry wall-clock time (the site compares
them with its own clock). The site itself is never accelerated.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any

from django.conf import settings

from ledger import config
from ledger.blocks import Block, block_to_json
from ledger.consensus import Config, Fault
from ledger.genesis import Genesis, read_key_file
from ledger.heap import Heap
from ledger.node import Validator
from ledger.store import Store, StoreFailed, StoreLocked, open_store

log = logging.getLogger(__name__)

TICK_S = 0.05
HEARTBEAT_S = 2.0
HEARTBEAT_EXPIRES_S = 10
INDEX_VARIABLE = "VALIDATOR_INDEX"
FAULT_VARIABLE = "VALIDATOR_FAULT"
CLOCK_RATE_VARIABLE = "LEDGER_CLOCK_RATE"
CLOCK_START_VARIABLE = "LEDGER_CLOCK_START_MS"
EXIT_STORE_LOCKED = 75  # EX_TEMPFAIL: another process holds this validator's store
EXIT_STORE_FAILED = 74  # EX_IOERR: the store failed under a read or write (disk full, ...)

_lock = threading.Lock()
_validator: Validator | None = None
_heap = Heap()


@dataclasses.dataclass(frozen=True)
class Clock:
    """Block time as a function of the wall clock: ``start + (wall - start) * rate``."""

    rate: int = 1
    start_ms: int = 0

    def at(self, wall: int) -> int:
        return wall if self.rate == 1 else self.start_ms + (wall - self.start_ms) * self.rate

    def timing(self) -> dict[str, int]:
        """The consensus timers, in block-time ms, that last their usual real time."""
        return {
            "base_timeout_ms": Config.base_timeout_ms * self.rate,
            "retransmit_ms": Config.retransmit_ms * self.rate,
            "sync_interval_ms": Config.sync_interval_ms * self.rate,
        }


_read: Clock | None = None


def clock() -> Clock:
    """This process's clock, read from the environment once (see the module docstring)."""
    global _read
    if _read is None:
        _read = _read_clock()
    return _read


def _read_clock() -> Clock:
    rate_text = os.environ.get(CLOCK_RATE_VARIABLE, "")
    if not rate_text:
        return Clock()
    if not settings.DEBUG:
        raise RuntimeError(f"{CLOCK_RATE_VARIABLE} is a benchmark-only switch; DEBUG is off")
    try:
        rate = int(rate_text)
        start = int(os.environ[CLOCK_START_VARIABLE])
    except KeyError:
        raise RuntimeError(f"{CLOCK_RATE_VARIABLE} needs {CLOCK_START_VARIABLE}") from None
    except ValueError:
        raise RuntimeError(
            f"{CLOCK_RATE_VARIABLE} and {CLOCK_START_VARIABLE} are integers"
        ) from None
    if rate < 1 or start < 0:
        raise RuntimeError(f"{CLOCK_RATE_VARIABLE} >= 1 and {CLOCK_START_VARIABLE} >= 0")
    return Clock(rate=rate, start_ms=start)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def now_ms() -> int:
    """Block time now: the wall clock, or the accelerated clock of a benchmark."""
    return clock().at(wall_ms())


class CeleryTransport:
    """Consensus messages go to each validator's own durable list queue (never a fanout)."""

    def __init__(self, index: int, validators: int) -> None:
        self.index = index
        self.validators = validators

    def send(self, to: int | None, message: dict[str, Any]) -> None:
        targets = [to] if to is not None else [i for i in range(self.validators) if i != self.index]
        text = config.wire_text(message)
        for target in targets:
            config.send("ledger.deliver", (target, text), queue=config.queue_name(target))

    def committed(self, block: Block) -> None:
        log.info("validator %s committed block %s (%s)", self.index, block.height, block.hash)
        try:
            config.send(
                "ledger.block_committed", (self.index, config.wire_text(block_to_json(block)))
            )
        except Exception:  # the block is stored; the site also hears of it from the others
            log.exception("could not tell the site about block %s", block.height)


def _fault() -> Fault:
    name = os.environ.get(FAULT_VARIABLE, "")
    if not name:
        return Fault.NONE
    if not settings.LEDGER_ALLOW_FAULTS:
        raise RuntimeError(f"{FAULT_VARIABLE} is a test-only switch; LEDGER_ALLOW_FAULTS is off")
    return Fault[name.upper()]


_store: Store | None = None


def claim_store() -> Store:
    """This process's validator store, opened and locked for this process alone (at the worker's
    start, before it takes a message from its queue). If another process holds it, that process
    is this validator already: two would sign conflicting votes with one key and write one
    store. This one then leaves at once, exit status ``EXIT_STORE_LOCKED``."""
    global _store
    if _store is None:
        index = int(os.environ[INDEX_VARIABLE])
        store = open_store(config.store_url(index))
        try:
            store.lock(f"starting validator {index}")
        except StoreLocked as error:
            log.critical("validator %s not started: %s", index, error)
            logging.shutdown()
            os._exit(EXIT_STORE_LOCKED)
        _store = store
    return _store


def _start() -> Validator:
    index = int(os.environ[INDEX_VARIABLE])
    genesis = Genesis.from_json_file(config.genesis_path())
    keys = read_key_file(config.key_path(index)).keypair
    store = claim_store()
    validator = Validator(
        genesis=genesis,
        index=index,
        keys=keys,
        store=store,
        registry=config.registry(),
        transport=CeleryTransport(index, len(genesis.validators)),
        now_ms=now_ms(),
        fault=_fault(),
        timing=clock().timing() if clock().rate > 1 else None,
    )
    # The state and its trie are millions of long-lived objects on a large network; Python's
    # cyclic collector would walk all of them at every full collection (over a second for a
    # million keys), stalling the validator. Nothing in them forms a cycle: leave them out, now
    # and after every block committed (ledger.heap).
    _heap.loaded()
    threading.Thread(target=_clock, name=f"validator-{index}-clock", daemon=True).start()
    if clock().rate > 1:
        log.warning(
            "validator %s runs on a clock %s times as fast as the wall clock", index, clock().rate
        )
    log.info("validator %s up at height %s", index, store.height())
    return validator


def validator() -> Validator:
    global _validator
    if _validator is None:
        _validator = _start()
    return _validator


def run(action: str, *args: Any) -> Any:
    """Call a method of this process's validator under the lock.

    When its store fails (a full disk, an I/O error, its database server restarted), the
    validator's memory may be ahead of what is stored, and what it does next must not depend on
    what was lost: the process leaves at once, before it sends anything more, with status
    ``EXIT_STORE_FAILED``. Its supervisor starts it again; it reloads what is stored and catches
    up from its peers, as after a crash.
    """
    with _lock:
        try:
            current = validator()
            if action != "tick" and clock().rate > 1:
                current.tick(now_ms())  # an accelerated clock is read at every input (see above)
            height = current.node.height
            result = getattr(current, action)(*args)
            if current.node.height > height:  # committed: its state out of the collector's way
                _heap.committed(current.node.height - height)
            return result
        except StoreFailed as error:
            log.critical("validator stops, to start again from its store: %s", error)
            logging.shutdown()
            os._exit(EXIT_STORE_FAILED)


def _heartbeat() -> None:
    """Tell the site this validator's height and view (read under the lock, sent outside it)."""
    with _lock:
        node = validator()
        args = (node.index, node.node.height, node.node.view, wall_ms(), node.genesis.block_hash)
    config.send("ledger.validator_status", args, expires=HEARTBEAT_EXPIRES_S)


def _clock() -> None:
    next_beat = 0.0
    while True:
        time.sleep(TICK_S)
        try:
            run("tick", now_ms())
        except Exception:  # the clock must keep ticking; the failure is logged and retried
            log.exception("validator tick failed")
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + HEARTBEAT_S
            try:
                _heartbeat()
            except Exception:  # a missed heartbeat shows the validator down, nothing worse
                log.exception("validator heartbeat failed")
