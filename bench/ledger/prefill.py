"""A large community, already on the ledger: stores that hold a large state before a run.

``prefill(genesis, keys, operator, store_urls, households)`` builds real, certified blocks after
genesis and appends them, with their state changes, to every validator's store, so that the
validators start on a state of about ``7 x households`` keys, every key put there by a
transaction the validators' own rules executed. Per household, the grid operator:

* registers it (``account.register``: ``acct/``), tops it up (``credit.issue``: ``bal/``) and
  assigns its feeder (``grid.feeder.assign``: ``grid/feeder/``);
* registers a meter for it (``meter.register``, 15-minute interval: ``meter/<id>``,
  ``meter/key/<public_key>``, ``meter/owner/<address>``);
* relays its device's reading of the interval under way (``meter.readings``: the meter's window
  ``meter/window/<id>``).

That is what a household keeps in the live state since ledger protocol 3, where settled
history leaves it (a day of readings no longer piles up): 142,858 households give about
1,000,000 keys. The blocks are executed once, here, with ``ledger.application.execute`` and the
product's registry; each is signed by its proposer and certified by every validator, dated just
after genesis, so ``ledger verify`` accepts the stores and the validators continue from their
tip.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

from bench.common import APPLICATIONS, log
from ledger import application
from ledger.blocks import Block, propose_block, sign_commit
from ledger.crypto import Transaction, sign_transaction
from ledger.genesis import Genesis
from ledger.identity import KeyPair
from ledger.registry import build_registry
from ledger.store import open_store
from meters.chain.metering import device_message

BLOCK_TRANSACTIONS = 2_000
INTERVAL_S = 900


def _key(label: str) -> KeyPair:
    return KeyPair(private_key=hashlib.sha256(label.encode()).digest())


def _transactions(genesis: Genesis, operator: KeyPair, households: int) -> Iterator[Transaction]:
    nonce = 0

    def signed(type_: str, payload: dict[str, Any]) -> Transaction:
        nonlocal nonce
        tx = sign_transaction(
            keypair=operator, chain=genesis.chain, type=type_, nonce=nonce, payload=payload
        )
        nonce += 1
        return tx

    interval_ms = INTERVAL_S * 1000
    now = genesis.timestamp_ms // interval_ms * interval_ms  # the interval under way
    start = datetime.datetime.fromtimestamp(now / 1000, tz=datetime.UTC)
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    t = genesis.timestamp_ms // 1000
    for h in range(households):
        household = _key(f"prefill household {h}")
        device = _key(f"prefill meter {h}")
        meter = f"m{h:06d}"
        address = household.address
        yield signed(
            "account.register",
            {"address": address, "public_key": household.public_key_hex, "role": "household"},
        )
        yield signed("credit.issue", {"to": address, "amount": 10_000 + h % 1_000})
        yield signed("grid.feeder.assign", {"address": address, "feeder": f"f{h % 10}"})
        yield signed(
            "meter.register",
            {
                "meter": meter,
                "owner": address,
                "kind": "bidirectional",
                "public_key": device.public_key_hex,
                "feeder": f"f{h % 10}",
                "interval_s": INTERVAL_S,
            },
        )
        reading = {
            "start": stamp,
            "duration_s": INTERVAL_S,
            "import_wh": (h * 7) % 900,
            "export_wh": (h * 11) % 700,
            "quality": "actual",
        }
        body = json.dumps({"readings": [reading]}, separators=(",", ":"))
        signature = device.sign(device_message(t, body.encode()))
        yield signed(
            "meter.readings", {"meter": meter, "t": t, "body": body, "signature": signature}
        )


def prefill(
    genesis: Genesis,
    genesis_block: Block,
    keys: Sequence[KeyPair],
    operator: KeyPair,
    store_urls: Sequence[str],
    households: int,
) -> dict[str, Any]:
    """Append the prefill blocks to every store; return what was built and how long it took."""
    started = time.perf_counter()
    registry = build_registry(APPLICATIONS)
    state = genesis.genesis_state()
    state.take_changes()
    stores = [open_store(url) for url in store_urls]
    previous = genesis_block
    txs = list(_transactions(genesis, operator, households))
    signed_s = time.perf_counter() - started
    blocks = 0
    try:
        for start in range(0, len(txs), BLOCK_TRANSACTIONS):
            batch = txs[start : start + BLOCK_TRANSACTIONS]
            height = previous.height + 1
            timestamp = genesis.timestamp_ms + height  # just after genesis, 1 ms apart
            events: list[application.Event] = []
            results = application.execute(
                state,
                registry,
                batch,
                chain=genesis.chain,
                height=height,
                timestamp_ms=timestamp,
                events=events,
            )
            refused = [r for r in results if r != "ok"]
            if refused:
                raise RuntimeError(f"prefill block {height}: {len(refused)} refused: {refused[:3]}")
            proposer = height % len(keys)
            block = propose_block(
                keypair=keys[proposer],
                chain=genesis.chain,
                height=height,
                previous_hash=previous.hash,
                timestamp_ms=timestamp,
                proposer=proposer,
                transactions=batch,
                results=results,
                events=events,
                state_root=state.root(),
            )
            votes = tuple(
                sign_commit(keypair=pair, validator=i, header=block.header)
                for i, pair in enumerate(keys)
            )
            block = dataclasses.replace(block, certificate=votes)
            changes = state.take_changes()
            for store in stores:
                store.append(block, changes)
            previous = block
            blocks += 1
            log(f"prefill: block {height}, {len(state._data):,} keys")
    finally:
        for store in stores:
            store.close()
    return {
        "households": households,
        "transactions": len(txs),
        "blocks": blocks,
        "state_keys": len(state._data),
        "sign_s": signed_s,
        "total_s": time.perf_counter() - started,
        "tip_state_root": previous.header.state_root,
    }
