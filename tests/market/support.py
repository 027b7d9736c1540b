"""A single-node market for tests: genesis, the full registry, signed transactions, block time.

Every transaction is really signed and executed with ``ledger.application.execute``; every block
is recorded, so that a test can replay them on a fresh genesis state. Meters' devices sign their
batches of readings with their own keys; the grid operator relays them (``Market.relay``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from ledger import application as app
from ledger.crypto import Transaction, sign_transaction
from ledger.identity import KeyPair
from ledger.registry import build_registry
from ledger.state import State
from market.chain import schema as market_schema
from market.chain.options import market_options
from meters.chain import metering as meters

CHAIN = "gridplatform-test"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, on the 15-minute grid
SLOT_MS = 900_000
SLOT = T0 + 4 * SLOT_MS  # an hour ahead of T0: open, gate at SLOT - 5 min
GATE_MS = 300_000

OPERATOR = KeyPair(private_key=bytes(range(40, 72)))
REGULATOR = KeyPair(private_key=bytes(range(41, 73)))
ADA = KeyPair(private_key=bytes(range(42, 74)))  # a seller
BEN = KeyPair(private_key=bytes(range(43, 75)))  # a buyer
CAT = KeyPair(private_key=bytes(range(44, 76)))  # another household
DAN = KeyPair(private_key=bytes(range(45, 77)))  # another household
HOUSEHOLDS = (ADA, BEN, CAT, DAN)
# Meters' devices: their keys sign readings, never transactions.
ADA_METER = KeyPair(private_key=bytes(range(60, 92)))
ADA_PV = KeyPair(private_key=bytes(range(61, 93)))
BEN_METER = KeyPair(private_key=bytes(range(62, 94)))
CAT_METER = KeyPair(private_key=bytes(range(63, 95)))
DAN_METER = KeyPair(private_key=bytes(range(64, 96)))
INTERVAL_S = 300  # the meters' interval in these tests: three readings per slot


def rfc3339(ms: int) -> str:
    """``ms`` since the epoch as an RFC 3339 UTC time, as a device writes it."""
    return datetime.fromtimestamp(ms // 1_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reading(
    start_ms: int,
    export_wh: int,
    *,
    import_wh: int = 0,
    quality: str = "actual",
    duration_s: int = INTERVAL_S,
) -> dict[str, Any]:
    return {
        "start": rfc3339(start_ms),
        "duration_s": duration_s,
        "import_wh": import_wh,
        "export_wh": export_wh,
        "quality": quality,
    }


def batch(*readings: dict[str, Any]) -> str:
    """A request body as a device sends it."""
    return json.dumps({"readings": list(readings)}, separators=(",", ":"))


def device_signature(device: KeyPair, t: int, body: str) -> str:
    return device.sign(meters.device_message(t, body.encode()))


class Market:
    def __init__(self, **options: int) -> None:
        self.options = {f"market.{name}": value for name, value in options.items()}
        self.state = genesis(self.options)
        self.registry = build_registry(settings.LEDGER_APPLICATIONS)
        self.height = 0
        self.now = T0
        self.blocks: list[tuple[int, list[Transaction]]] = []
        # Every event of every block so far, each with its block's "height" added.
        self.events: list[dict[str, Any]] = []

    # --- transactions --------------------------------------------------------------------------

    def tx(self, who: KeyPair, type: str, nonce: int | None = None, **payload: Any) -> Transaction:
        if nonce is None:
            acct = app.account(self.state, who.address)
            nonce = acct["nonce"] if acct else 0
        return sign_transaction(keypair=who, chain=CHAIN, type=type, nonce=nonce, payload=payload)

    def run(self, *txs: Transaction, at: int | None = None) -> list[str]:
        """Execute one block of ``txs`` at block time ``at`` (default: a second after the last)."""
        self.now = self.now + 1_000 if at is None else at
        self.height += 1
        self.blocks.append((self.now, list(txs)))
        events: list[app.Event] = []
        results = app.execute(
            self.state,
            self.registry,
            txs,
            chain=CHAIN,
            height=self.height,
            timestamp_ms=self.now,
            events=events,
        )
        self.events += [event | {"height": self.height} for event in events]
        return results

    def emitted(self, type_: str) -> list[dict[str, Any]]:
        """The data of every event of ``type_`` so far, in order."""
        return [event["data"] for event in self.events if event["type"] == type_]

    def settlement(self, slot: int = SLOT) -> dict[str, Any] | None:
        """The slot's settlement summary (its ``market.slot_settled`` event), None if unsettled."""
        found = [data for data in self.emitted("market.slot_settled") if data["slot"] == slot]
        assert len(found) <= 1  # a slot settles once
        return found[0] if found else None

    def result(self, index: int, slot: int = SLOT) -> dict[str, Any] | None:
        """Contract ``<slot>-<index>``'s settlement result (``market.contract_settled``), less
        its ``slot``, or None."""
        contract = f"{slot}-{index}"
        for data in self.emitted("market.contract_settled"):
            if data["contract"] == contract:
                return {name: value for name, value in data.items() if name != "slot"}
        return None

    def send(self, who: KeyPair, type: str, *, at: int | None = None, **payload: Any) -> str:
        return self.run(self.tx(who, type, **payload), at=at)[0]

    # --- setting up ----------------------------------------------------------------------------

    def household(
        self,
        who: KeyPair,
        *,
        credits: int = 100_000,
        feeder: str = "f1",
        role: str = "household",
    ) -> None:
        """Register ``who`` (as a household, or ``role``), credit it and put it on ``feeder``."""
        payload = {"address": who.address, "public_key": who.public_key_hex, "role": role}
        assert self.send(OPERATOR, "account.register", **payload) == "ok"
        if credits:
            assert self.send(OPERATOR, "credit.issue", to=who.address, amount=credits) == "ok"
        if feeder:
            assert self.send(OPERATOR, "grid.feeder.assign", address=who.address, feeder=feeder)
            assert self.state.get(f"grid/feeder/{who.address}") == feeder

    # --- meters --------------------------------------------------------------------------------

    def meter(
        self,
        who: KeyPair,
        device: KeyPair,
        meter_id: str,
        *,
        kind: str = "bidirectional",
        interval_s: int = INTERVAL_S,
        feeder: str = "f1",
        at: int | None = None,
    ) -> str:
        """The grid operator registers ``who``'s meter ``meter_id`` with ``device``'s key."""
        payload = {
            "meter": meter_id,
            "owner": who.address,
            "kind": kind,
            "public_key": device.public_key_hex,
            "feeder": feeder,
            "interval_s": interval_s,
        }
        return self.send(OPERATOR, "meter.register", at=at, **payload)

    def relay(
        self,
        meter_id: str,
        device: KeyPair,
        body: str,
        *,
        t: int | None = None,
        at: int | None = None,
        signature: str | None = None,
    ) -> str:
        """The grid operator relays a batch ``device`` signed at ``t`` (default: block time)."""
        at = self.now + 1_000 if at is None else at
        t = at // 1_000 if t is None else t
        if signature is None:
            signature = device_signature(device, t, body)
        payload = {"meter": meter_id, "t": t, "body": body, "signature": signature}
        return self.send(OPERATOR, "meter.readings", at=at, **payload)

    def deliver(self, meter_id: str, device: KeyPair, exports: list[int], *, slot: int) -> str:
        """Readings of ``exports`` Wh for the slot's intervals, relayed when the slot has ended."""
        step = INTERVAL_S * 1_000
        body = batch(*(reading(slot + i * step, e) for i, e in enumerate(exports)))
        return self.relay(meter_id, device, body, at=max(self.now + 1_000, slot + SLOT_MS))

    def settle(self, who: KeyPair = OPERATOR, *, slot: int = SLOT, at: int | None = None) -> str:
        """``market.slot.settle``, by default as soon as it is due."""
        due = slot + SLOT_MS + market_options(self.state).settlement_delay_ms
        return self.send(who, "market.slot.settle", slot=slot, at=at or max(self.now + 1_000, due))

    # --- market shortcuts ----------------------------------------------------------------------

    def place(
        self, who: KeyPair, side: str, energy_wh: int, price: int, *, slot: int = SLOT
    ) -> tuple[str, str]:
        """Place an order; its result and its id (the transaction's id)."""
        tx = self.tx(
            who, "market.order.place", slot=slot, side=side, energy_wh=energy_wh, price=price
        )
        return self.run(tx)[0], tx.id

    def order(self, order_id: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.state.get(market_schema.order_key(order_id))
        return value

    def contract(self, contract_id: str) -> dict[str, Any]:
        made: dict[str, Any] = self.state.get(market_schema.contract_key(contract_id))
        return made

    def contracts(self, slot: int = SLOT) -> list[dict[str, Any]]:
        count = self.state.get(market_schema.contracts_key(slot), 0)
        return [self.state.get(market_schema.contract_key(f"{slot}-{n}")) for n in range(count)]

    def locked(self, who: KeyPair) -> int:
        return market_schema.locked(self.state, who.address)

    def balance(self, who: KeyPair) -> int:
        return app.balance(self.state, who.address)

    def free(self, who: KeyPair) -> int:
        return market_schema.free_balance(self.state, who.address)

    def replay(self) -> State:
        """The blocks so far, executed again on a fresh genesis state."""
        state = genesis(self.options)
        registry = build_registry(settings.LEDGER_APPLICATIONS)
        for height, (timestamp, txs) in enumerate(self.blocks, start=1):
            app.execute(state, registry, txs, chain=CHAIN, height=height, timestamp_ms=timestamp)
        return state


def genesis(options: dict[str, int]) -> State:
    return app.genesis_state(
        chain=CHAIN,
        issuer_public_key=OPERATOR.public_key_hex,
        regulator_public_keys=[REGULATOR.public_key_hex],
        options=options,
    )
