#!/usr/bin/env python
"""State root cost: a block's 2,000 changes on a large state beside a small one, in one run.

    DEBUG=1 .venv/bin/python bench/ledger/trie.py [--large 1000000] [--small 10000]
                                                  [--changes 2000] [--repeats 7]

For each size it builds a ``ledger.state.State`` of that many keys shaped like a real
community's (meter readings, balances, accounts, orders), takes its root once (the trie is built:
what a validator does when it starts, also timed), then ``--repeats`` times writes ``--changes``
keys (two thirds updates of existing keys, one third new keys) and times ``state.root()``, which
re-hashes only what changed. Reports the median of each and the ratio large / small (the bar:
<= 3), with the machine and the date, in ``bench/ledger/results/trie-<date>.json``.

It also reports what protocol 1 cost for the same change (the SHA-256 of the canonical JSON of
the whole map), measured on the same states, so the two can be compared on one machine.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.common import log, machine  # noqa: E402
from ledger.crypto import encode_checked  # noqa: E402
from ledger.state import State  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def community_state(keys: int, seed: int) -> dict[str, Any]:
    """``keys`` state entries in the proportions a community has after a day: mostly readings."""
    rng = random.Random(seed)  # noqa: S311  (benchmark data, not secrets)
    data: dict[str, Any] = {}
    households = max(1, keys // 100)
    for h in range(households):
        address = hashlib.sha256(f"household {h}".encode()).hexdigest()[:50]
        data[f"acct/{address}"] = {
            "nonce": rng.randrange(500),
            "public_key": "ab" * 32,
            "role": "household",
        }
        data[f"bal/{address}"] = rng.randrange(10**6)
    start = 1_767_225_600_000
    i = 0
    while len(data) < keys:
        meter = f"m{i % households:06d}"
        data[f"meter/reading/{meter}/{start + (i // households) * 900_000}"] = {
            "export_wh": rng.randrange(2_000),
            "height": 1 + i // 10_000,
            "import_wh": rng.randrange(2_000),
            "late": False,
            "quality": "actual",
            "tx": hashlib.sha256(str(i).encode()).hexdigest(),
        }
        i += 1
    return data


def changes(data: dict[str, Any], count: int, rng: random.Random, round_: int) -> dict[str, Any]:
    existing = rng.sample(sorted(data), (2 * count) // 3)
    out: dict[str, Any] = {key: {"round": round_, "n": rng.randrange(10**6)} for key in existing}
    for n in range(count - len(out)):
        out[f"market/order/{round_:04d}{n:06d}"] = {"locked": n, "owner": "x" * 50, "price": 20}
    return out


def measure(keys: int, count: int, repeats: int, seed: int) -> dict[str, Any]:
    log(f"{keys:,} keys: building the state ...")
    data = community_state(keys, seed)
    # The values are canonical by construction; skip re-checking a million.
    state = State.encoded({key: encode_checked(value) for key, value in data.items()})
    gc.collect()
    started = time.perf_counter()
    state.root()
    build_s = time.perf_counter() - started
    log(f"{keys:,} keys: first root (builds the trie) {build_s:.2f} s")
    rng = random.Random(seed + 1)  # noqa: S311
    roots, whole = [], []
    for round_ in range(repeats):
        for key, value in changes(data, count, rng, round_).items():
            state.set(key, value)
            data[key] = value
        gc.collect()
        started = time.perf_counter()
        state.root()
        roots.append(time.perf_counter() - started)
        if round_ < 3:  # protocol 1: hash everything (slow on large states: three samples)
            started = time.perf_counter()
            hashlib.sha256(encode_checked(data)).hexdigest()
            whole.append(time.perf_counter() - started)
    result = {
        "keys": len(state._data),
        "first_root_s": build_s,
        "root_after_changes_s": roots,
        "root_after_changes_median_s": statistics.median(roots),
        "protocol_1_whole_hash_median_s": statistics.median(whole),
    }
    median_ms = result["root_after_changes_median_s"] * 1000
    whole_ms = result["protocol_1_whole_hash_median_s"] * 1000
    log(
        f"{keys:,} keys: root after {count:,} changes, median {median_ms:.1f} ms "
        f"(protocol 1: {whole_ms:.0f} ms)"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "state trie root",
        "machine": machine(),
        "config": vars(args),
        "small": measure(args.small, args.changes, args.repeats, args.seed),
    }
    result["large"] = measure(args.large, args.changes, args.repeats, args.seed)
    ratio = (
        result["large"]["root_after_changes_median_s"]
        / result["small"]["root_after_changes_median_s"]
    )
    result["ratio_large_over_small"] = ratio
    result["bar"] = {"ratio_at_most": 3, "met": ratio <= 3}
    log(f"ratio large / small: {ratio:.2f} (bar <= 3: {'met' if ratio <= 3 else 'NOT met'})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    output = Path(args.output) if args.output else RESULTS / f"trie-{stamp}.json"
    output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    log(f"results: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
