"""A network for the site side of requirements, stores and retailers: real certified blocks,
projected into the site's read models, with history.

The genesis is three hours ago (15-minute slots, gate closure 5 minutes, settlement 15 minutes
after a slot ends). ``History`` puts households on the ledger with meters and settles a slot of
their readings in the past, so that an enrolled household has a baseline (its latest settled
slot, ``market.chain.flexibility``); later blocks are dated now, since the site's clock decides
which slots are open.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gridplatform.accounts.models import User
from ledger.blocks import Block
from ledger.crypto import Transaction
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from tests.ledger.chains import CHAIN, OPERATOR, Chain, genesis_of
from tests.ledger.site import Site, give_key, use_network
from tests.market.support import batch, device_signature, reading

SLOT_MS = 900_000
INTERVAL_S = 300
CREDITS = 100_000


def _key(n: int) -> KeyPair:
    return KeyPair(private_key=bytes(range(n, n + 32)))


# Households' keys and their meters' devices (the devices sign readings, never transactions).
ADA, BEN, CAT = _key(150), _key(151), _key(152)
ADA_METER, BEN_METER, CAT_METER, BATTERY = _key(170), _key(171), _key(172), _key(173)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def network(settings: Any, directory: Path, *, heat: bool = False) -> Site:
    """A site whose network began three hours ago, on a whole slot, with block 0 projected."""
    start = (now_ms() - 3 * 3_600_000) // SLOT_MS * SLOT_MS
    options = (("market.heat", 1),) if heat else ()
    genesis, block0 = genesis_of(CHAIN, start, options)
    chain = Chain(genesis, [block0], [genesis.genesis_state()])
    use_network(settings, directory, chain)
    site = Site(chain)
    site.project_all()
    return site


def commit(site: Site, transactions: list[Transaction], *, at: int | None = None) -> Block:
    """A block of ``transactions`` at ``at`` (default: now, and after the last block); each
    must pass."""
    when = max(site.blocks[-1].timestamp_ms + 1, now_ms() if at is None else at)
    block = site.commit(transactions, timestamp_ms=when)
    assert set(block.results) <= {"ok"}, block.results
    return block


def commit_pending(site: Site) -> Block:
    """Commit what the site submitted, in order, as the validators would: it must all pass."""
    rows = SubmittedTransaction.objects.order_by("id")
    block = commit(site, [Transaction.from_json(row.body) for row in rows])
    assert not SubmittedTransaction.objects.exists()
    return block


def user_with_key(user: User, keypair: KeyPair) -> User:
    """``user`` signing with ``keypair`` (sealed as the site seals custodial keys)."""
    give_key(user, keypair)
    user.refresh_from_db()
    return user


class History:
    """What happened on the network before now: households registered with credits on their
    feeders, meters registered, readings relayed and slots settled, at block times in the past."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.at = site.blocks[-1].timestamp_ms

    def commit(self, transactions: list[Transaction], *, at: int | None = None) -> Block:
        self.at = max(self.at + 1_000, at or 0)
        return commit(self.site, transactions, at=self.at)

    def publish(self, *feeders: str, carrier: str = "electricity") -> None:
        """The grid operator publishes ``feeders`` (heat segments for heat), 100 kW each way."""
        limits = {"export_limit_w": 100_000, "import_limit_w": 100_000}
        extra = {} if carrier == "electricity" else {"carrier": carrier}
        self.commit(
            [
                self.site.sign(OPERATOR, "grid.feeder.publish", feeder=name, **limits, **extra)
                for name in feeders
            ]
        )

    def households(self, *who: KeyPair, feeder: str = "north", credits: int = CREDITS) -> None:
        txs = []
        for keypair in who:
            txs += [
                self.site.sign(
                    OPERATOR,
                    "account.register",
                    address=keypair.address,
                    public_key=keypair.public_key_hex,
                    role="household",
                ),
                self.site.sign(OPERATOR, "credit.issue", to=keypair.address, amount=credits),
                self.site.sign(
                    OPERATOR, "grid.feeder.assign", address=keypair.address, feeder=feeder
                ),
            ]
        self.commit(txs)

    def meter(
        self, who: KeyPair, device: KeyPair, meter_id: str, *, kind: str = "bidirectional"
    ) -> None:
        payload = {
            "meter": meter_id,
            "owner": who.address,
            "kind": kind,
            "public_key": device.public_key_hex,
            "feeder": "north",
            "interval_s": INTERVAL_S,
        }
        self.commit([self.site.sign(OPERATOR, "meter.register", **payload)])

    def sign(self, who: KeyPair, type_: str, **payload: Any) -> Transaction:
        return self.site.sign(who, type_, **payload)

    def first_slot(self) -> int:
        """The first whole slot after the last block."""
        return (self.at // SLOT_MS + 1) * SLOT_MS

    def settle(self, slot: int, readings: dict[str, tuple[KeyPair, int, int]]) -> Block:
        """The slot's readings relayed once it ended (per meter: its device and the Wh it
        imported and exported in each of the slot's three intervals), then its settlement."""
        step = INTERVAL_S * 1_000
        txs = []
        at = max(self.at + 1_000, slot + SLOT_MS + 1_000)
        for meter_id, (device, import_wh, export_wh) in readings.items():
            body = batch(
                *(reading(slot + i * step, export_wh, import_wh=import_wh) for i in range(3))
            )
            t = at // 1_000
            payload = {
                "meter": meter_id,
                "t": t,
                "body": body,
                "signature": device_signature(device, t, body),
            }
            txs.append(self.site.sign(OPERATOR, "meter.readings", **payload))
        self.commit(txs, at=at)
        due = slot + 2 * SLOT_MS + 1_000  # the settlement delay: 15 minutes after it ends
        return self.commit([self.site.sign(OPERATOR, "market.slot.settle", slot=slot)], at=due)
