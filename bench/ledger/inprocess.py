#!/usr/bin/env python
"""The validators' own CPU per transaction, without the network around them.

    DEBUG=1 .venv/bin/python bench/ledger/inprocess.py --households 0,50000 [--blocks 5]
                                                       [--no-gc] [--cprofile]

Four ``ledger.node.Validator`` objects in this one process, on SQLite stores in a temporary
directory, their consensus messages routed in memory and their clock simulated (20 ms a step):
no Celery, no Redis, no operating-system scheduler between them. For each ``--households`` entry
the stores are first prefilled as the ledger benchmark does (``bench.ledger.prefill``: about 7
live keys a household), 200 households are registered and funded, then ``--blocks`` blocks of
2,000 pre-signed transfers are submitted to all four and committed; the figure is this process's
CPU time over those blocks, per transaction (all four validators together). ``--no-gc`` turns
Python's cyclic collector off while measuring; ``--cprofile`` measures under cProfile (the
function profile is written next to the result). Results: ``results/inprocess-<date>.json``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import APPLICATIONS, log, machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CHAIN = "inprocess"
BLOCK = 2_000


def measure(households: int, blocks: int, *, no_gc: bool, profile: bool) -> dict[str, Any]:
    from bench.ledger.prefill import prefill
    from ledger.crypto import sign_transaction
    from ledger.genesis import create_genesis, install_network
    from ledger.identity import KeyPair
    from ledger.node import Validator
    from ledger.registry import build_registry
    from ledger.store import open_store

    directory = Path(tempfile.mkdtemp(prefix="bench-inprocess-"))
    try:
        operator = KeyPair(private_key=hashlib.sha256(b"inprocess operator").digest())
        keys = [KeyPair.generate() for _ in range(4)]
        start_ms = time.time_ns() // 1_000_000
        genesis, block = create_genesis(
            chain=CHAIN,
            timestamp_ms=start_ms,
            validator_keys=keys,
            issuer_public_key=operator.public_key_hex,
        )
        urls = [f"sqlite:///{directory}/store-{i}.sqlite3" for i in range(4)]
        install_network(directory, genesis=genesis, block=block, keys=keys, store_urls=urls)
        nonce = (
            prefill(genesis, block, keys, operator, urls, households)["transactions"]
            if (households)
            else 0
        )
        now = [start_ms + 10_000]
        queue: collections.deque[tuple[int, Any]] = collections.deque()

        class Transport:
            def __init__(self, index: int) -> None:
                self.index = index

            def send(self, to: int | None, message: Any) -> None:
                for target in [to] if to is not None else [i for i in range(4) if i != self.index]:
                    queue.append((target, message))

            def committed(self, block: Any) -> None:
                pass

        registry = build_registry(APPLICATIONS)
        validators = [
            Validator(
                genesis=genesis,
                index=i,
                keys=keys[i],
                store=open_store(urls[i]),
                registry=registry,
                transport=Transport(i),
                now_ms=now[0],
            )
            for i in range(4)
        ]
        gc.freeze()  # as ledger.runtime does once a validator has loaded its state

        def settle() -> None:
            for _ in range(100_000):
                if all(not v.pool for v in validators):
                    return
                for _ in range(len(queue)):
                    target, message = queue.popleft()
                    validators[target].deliver(message)
                now[0] += 20
                for v in validators:
                    v.tick(now[0])
            raise RuntimeError("the validators did not commit their pools")

        def signed(who: KeyPair, type_: str, n: int, **payload: Any) -> Any:
            return sign_transaction(
                keypair=who, chain=CHAIN, type=type_, nonce=n, payload=payload
            ).to_json()

        people = [
            KeyPair(private_key=hashlib.sha256(f"h{i}".encode()).digest()) for i in range(200)
        ]
        setup = []
        for kind in ("account.register", "credit.issue"):
            for person in people:
                payload = (
                    {"address": person.address, "public_key": person.public_key_hex}
                    | {"role": "household"}
                    if kind == "account.register"
                    else {"to": person.address, "amount": 10**12}
                )
                setup.append(signed(operator, kind, nonce, **payload))
                nonce += 1
        for v in validators:
            v.submit_many(setup)
        settle()
        nonces = [0] * len(people)
        transfers = []
        for k in range(blocks * BLOCK):
            a, b = k % len(people), (k + 1) % len(people)
            transfers.append(
                signed(people[a], "credit.transfer", nonces[a], to=people[b].address, amount=1)
            )
            nonces[a] += 1
        first = validators[0].store.height()
        profiler = cProfile.Profile()
        if no_gc:
            gc.disable()
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profiler.enable()
        for i in range(0, len(transfers), BLOCK):
            for v in validators:
                v.submit_many(transfers[i : i + BLOCK])
            settle()
        profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        gc.enable()
        if profile:
            profiler.dump_stats(RESULTS / f"inprocess-{households}.prof")
        return {
            "households": households,
            "state_keys": len(validators[0].state._data),
            "blocks": validators[0].store.height() - first,
            "transactions": len(transfers),
            "cpu_s": cpu,
            "wall_s": wall,
            "cpu_ms_per_tx_all_four": 1e3 * cpu / len(transfers),
            "gc": not no_gc,
            "cprofile": profile,
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", default="0,50000")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridplatform.settings")
    import django

    django.setup()
    result: dict[str, Any] = {"machine": machine(), "runs": []}
    for households in (int(n) for n in args.households.split(",")):
        run = measure(households, args.blocks, no_gc=args.no_gc, profile=args.cprofile)
        log(
            f"{run['households']:,} households ({run['state_keys']:,} keys): "
            f"{run['cpu_ms_per_tx_all_four']:.3f} ms CPU per transaction, all four validators"
        )
        result["runs"].append(run)
    if len(result["runs"]) > 1:
        base = result["runs"][0]["cpu_ms_per_tx_all_four"]
        result["ratios"] = [r["cpu_ms_per_tx_all_four"] / base for r in result["runs"]]
        log("ratios to the first: " + ", ".join(f"{r:.2f}" for r in result["ratios"]))
    out = RESULTS / f"inprocess-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"results: {out}")


if __name__ == "__main__":
    main()
