"""The market's invariants, as Hypothesis state machines over real signed transactions.

Households trade, their meters' devices sign readings that the grid operator relays (some sent
again, changed or tampered with), and slots settle. After every step: money is conserved
(balances, the grid operator's fees included, sum to ``ledger/supply``, which moves only by what
was issued and redeemed), no balance, locked amount or free balance is negative, every account's
locked amount is exactly what its orders, offers and unsettled contracts hold, every resting
order's and offer's margin is exactly the margin of its remainder, nothing is filled beyond its
quantity (what an order or offer has left plus its contracts is exactly what it was for), every
reading is the first one sent for its interval (none is recorded once its slot closed), and a
settlement, once made, never changes. Each settlement is checked against a model of the rules,
and moves exactly the money its records say. At the end, an independent execution of the same
blocks on a fresh genesis state gives the same state root.
"""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger import application as app
from ledger.identity import KeyPair
from market.chain import book
from market.chain import schema as market_schema
from market.chain.network import Allowance
from market.chain.options import market_options
from market.chain.pricing import buyer_margin, seller_deposit, share, value
from meters.chain import metering as meters
from meters.chain import schema as meters_schema
from supervision.chain import grid
from tests.market.support import (
    ADA,
    ADA_METER,
    BEN_METER,
    CAT_METER,
    DAN,
    DAN_METER,
    GATE_MS,
    HOUSEHOLDS,
    INTERVAL_S,
    OPERATOR,
    REGULATOR,
    SLOT_MS,
    Market,
    batch,
    device_signature,
    reading,
)

households = st.sampled_from(HOUSEHOLDS)
energies = st.integers(min_value=1, max_value=2_000)
prices = st.integers(min_value=90, max_value=110) | st.integers(min_value=1, max_value=300)
ahead = st.integers(min_value=0, max_value=1)  # which open slot: the first or the next
DEVICES = dict(zip(HOUSEHOLDS, (ADA_METER, BEN_METER, CAT_METER, DAN_METER), strict=True))
BY_ADDRESS = {who.address: who for who in HOUSEHOLDS}
INTERVALS = SLOT_MS // (INTERVAL_S * 1_000)
exports = st.integers(min_value=0, max_value=600)
qualities = st.sampled_from(meters.QUALITIES)


def meter_id(who: KeyPair) -> str:
    return f"meter-{who.address[:8]}"


class MarketMachine(RuleBasedStateMachine):
    # A penalty rate above the deposit's, so that the cap at the deposit is exercised.
    options: ClassVar[dict[str, int]] = {
        "network_fee": 3,
        "deposit_bps": 2_500,
        "penalty_bps": 3_000,
    }

    def __init__(self) -> None:
        super().__init__()
        # Shortfalls are frequent here; a seller that defaulted keeps trading, so runs stay rich.
        self.market = Market(**({"max_unsettled_defaults": 10**6} | self.options))
        for who, credits in zip(HOUSEHOLDS, (50_000, 20_000, 5_000, 300), strict=True):
            self.market.household(who, credits=credits, feeder="f1" if who != DAN else "f2")
            assert self.market.meter(who, DEVICES[who], meter_id(who)) == "ok"
        self.supply = self.market.state.get("ledger/supply")
        self.orders: dict[str, int] = {}  # every order placed: id -> energy ordered
        self.offers: dict[str, int] = {}
        self.acceptances: dict[str, int] = {}  # accepted offers: acceptance id -> energy asked
        self.slots: set[int] = set()  # slots with orders or offers that may still be cleared
        self.traded: set[int] = set()  # every slot with an order or an offer
        # The model of meter data: the first reading sent for each (meter, interval start)...
        self.readings: dict[tuple[str, int], dict[str, Any]] = {}
        self.conflicts: collections.Counter[str] = collections.Counter()
        # ... and every settlement as it was made: summary and per-contract results.
        self.settled: dict[int, tuple[Any, list[Any]]] = {}
        self.done: set[int] = set()

    def send(self, who: KeyPair, type: str, **payload: Any) -> tuple[str, str]:
        tx = self.market.tx(who, type, **payload)
        return self.market.run(tx)[0], tx.id

    def open_slot(self, k: int) -> int:
        """The k-th slot still open at the next block's time."""
        now = self.market.now + 1_000
        first = (now + GATE_MS) // SLOT_MS * SLOT_MS + SLOT_MS
        return first + k * SLOT_MS

    @initialize(
        sizes=st.lists(energies, min_size=4, max_size=4),
        limits=st.lists(prices, min_size=4, max_size=4),
    )
    def seed_the_next_slot(self, sizes: list[int], limits: list[int]) -> None:
        """Two asks and two bids in the next slot, so that every run has a book to match."""
        sides = ("sell", "buy", "sell", "buy")
        for who, side, e, p in zip(HOUSEHOLDS, sides, sizes, limits, strict=True):
            self.place(who, 0, side, e, p)
        self.post_offer(ADA, 0, sizes[0], limits[0], None)

    # --- money -----------------------------------------------------------------------------------

    @rule(who=households, amount=st.integers(min_value=1, max_value=5_000))
    def issue(self, who: KeyPair, amount: int) -> None:
        result, _ = self.send(OPERATOR, "credit.issue", to=who.address, amount=amount)
        assert result == "ok"
        self.supply += amount

    @rule(who=households, to=households, amount=st.integers(min_value=1, max_value=3_000))
    def transfer(self, who: KeyPair, to: KeyPair, amount: int) -> None:
        free = self.market.free(who)
        result, _ = self.send(who, "credit.transfer", to=to.address, amount=amount)
        if who != to:
            assert (result == "ok") == (amount <= free)

    @rule(who=households, amount=st.integers(min_value=1, max_value=3_000))
    def redeem(self, who: KeyPair, amount: int) -> None:
        free = self.market.free(who)
        result, _ = self.send(who, "credit.redeem", amount=amount)
        assert (result == "ok") == (amount <= free)
        if result == "ok":
            self.supply -= amount

    # --- trading ---------------------------------------------------------------------------------

    @rule(who=households, k=ahead, e=energies, p=prices)
    def bid(self, who: KeyPair, k: int, e: int, p: int) -> None:
        self.place(who, k, "buy", e, p)

    @rule(who=households, k=ahead, e=energies, p=prices)
    def ask(self, who: KeyPair, k: int, e: int, p: int) -> None:
        self.place(who, k, "sell", e, p)

    def place(self, who: KeyPair, k: int, side: str, e: int, p: int) -> None:
        slot = self.open_slot(k)
        payload = {"slot": slot, "side": side, "energy_wh": e, "price": p}
        result, order_id = self.send(who, "market.order.place", **payload)
        assert result in ("ok", "insufficient_free_balance", "opposite_side_open")
        if result == "ok":
            self.orders[order_id] = e
            self.slots.add(slot)
            self.traded.add(slot)

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), who=households)
    def cancel(self, data: st.DataObject, who: KeyPair) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.market.order(order_id)
        result, _ = self.send(who, "market.order.cancel", order=order_id)
        if order is None:
            assert result == "unknown_order"
        elif order["owner"] != who.address:
            assert result == "not_owner"
        else:
            assert result in ("ok", "slot_closed", "slot_past")

    @rule(who=households, k=ahead, e=energies, p=prices, to=st.none() | households)
    def post_offer(self, who: KeyPair, k: int, e: int, p: int, to: KeyPair | None) -> None:
        slot = self.open_slot(k)
        buyer = to.address if to else ""
        payload = {"slot": slot, "energy_wh": e, "price": p, "buyer": buyer}
        result, offer_id = self.send(who, "market.offer.post", **payload)
        assert result in ("ok", "insufficient_free_balance", "own_offer")
        if result == "ok":
            self.offers[offer_id] = e
            self.slots.add(slot)
            self.traded.add(slot)

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), who=households, percent=st.integers(min_value=1, max_value=110))
    def accept(self, data: st.DataObject, who: KeyPair, percent: int) -> None:
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        offer = self.market.state.get(market_schema.OFFER_PREFIX + offer_id)
        e = max(1, offer["remaining_wh"] * percent // 100) if offer else 1
        result, acceptance = self.send(who, "market.offer.accept", offer=offer_id, energy_wh=e)
        if offer is None:
            assert result == "unknown_offer"
        else:
            assert (result == "exceeds_offer") == (e > offer["remaining_wh"]) or result in (
                "own_offer",
                "not_offered_to_you",
                "slot_closed",
                "slot_past",
            )
        if result == "ok":
            self.acceptances[acceptance] = e

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), who=households)
    def withdraw(self, data: st.DataObject, who: KeyPair) -> None:
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        self.send(who, "market.offer.withdraw", offer=offer_id)

    @rule(minutes=st.integers(min_value=1, max_value=40))
    def wait(self, minutes: int) -> None:
        self.market.run(at=self.market.now + minutes * 60_000)  # an empty block

    @precondition(lambda self: self.slots)
    @rule(data=st.data(), who=st.sampled_from([*HOUSEHOLDS, OPERATOR, REGULATOR]))
    def clear(self, data: st.DataObject, who: KeyPair) -> None:
        slot = data.draw(st.sampled_from(sorted(self.slots)))
        result, _ = self.send(who, "market.slot.clear", slot=slot)
        closed = self.market.now >= slot - GATE_MS
        assert result in (("ok", "nothing_to_clear") if closed else ("slot_open",))

    @precondition(lambda self: self.slots)
    @rule(who=households)
    def close_and_clear_the_next_slot(self, who: KeyPair) -> None:
        slot = min(self.slots)
        at = max(self.market.now + 1_000, slot - GATE_MS)
        result = self.market.run(self.market.tx(who, "market.slot.clear", slot=slot), at=at)
        assert result in (["ok"], ["nothing_to_clear"])
        self.slots.discard(slot)

    # --- meters and settlement ------------------------------------------------------------------

    @precondition(lambda self: self.traded)
    @rule(
        data=st.data(),
        who=households,
        values=st.lists(st.tuples(exports, qualities), min_size=1, max_size=INTERVALS),
        first=st.integers(min_value=0, max_value=INTERVALS - 1),
        tamper=st.booleans(),
    )
    def report(
        self,
        data: st.DataObject,
        who: KeyPair,
        values: list[tuple[int, str]],
        first: int,
        tamper: bool,
    ) -> None:
        """A meter's batch for intervals of a traded slot, relayed once the slot has ended: mostly
        a slot not settled yet and one of its sellers, sometimes any (a late reading)."""
        pending = sorted(self.traded - self.done)
        slot = data.draw(st.sampled_from(pending or sorted(self.traded)))
        if data.draw(st.integers(min_value=0, max_value=3)) == 0:
            slot = data.draw(st.sampled_from(sorted(self.traded)))
        sellers = sorted({made["seller"] for made in self.market.contracts(slot)})
        if sellers and data.draw(st.integers(min_value=0, max_value=3)):
            who = BY_ADDRESS[data.draw(st.sampled_from(sellers))]
        self.relay(who, slot, first, values, tamper=tamper)

    def relay(
        self, who: KeyPair, slot: int, first: int, values: list[tuple[int, str]], *, tamper: bool
    ) -> None:
        """``who``'s device signs readings of ``values`` for the slot's intervals from number
        ``first`` on (wrapping around); the grid operator relays them (changed, if ``tamper``)."""
        step = INTERVAL_S * 1_000
        starts = [slot + (first + i) % INTERVALS * step for i in range(len(values))]
        items = [reading(start, e, quality=q) for start, (e, q) in zip(starts, values, strict=True)]
        at = max(self.market.now + 1_000, slot + SLOT_MS)
        body = batch(*items)
        signature = device_signature(DEVICES[who], at // 1_000, body)
        if tamper:
            body = batch(*items, reading(slot, 1))  # not what the device signed
        payload = {"meter": meter_id(who), "t": at // 1_000, "body": body, "signature": signature}
        result = self.market.run(self.market.tx(OPERATOR, "meter.readings", **payload), at=at)
        if tamper:
            assert result == ["bad_device_signature"]
            return
        assert result == ["ok"]
        if self.closed(slot, at):
            return  # late readings are not recorded, nor counted
        for start, (e, q) in zip(starts, values, strict=True):
            sent = {"import_wh": 0, "export_wh": e, "quality": q}
            first_sent = self.readings.setdefault((meter_id(who), start), sent)
            if first_sent != sent:
                self.conflicts[meter_id(who)] += 1

    def closed(self, slot: int, at: int) -> bool:
        """Whether the slot is closed for meter data at block time ``at``: settled, or ended at
        least the settlement delay ago, cleared, without contracts and without a recorded reading
        to settle with the supplier (docs/meters.md)."""
        state = self.market.state
        due = slot + SLOT_MS + market_options(state).settlement_delay_ms
        cleared = state.get(market_schema.offers_key(slot)) is None and all(
            book.best_price(state, slot, side) is None for side in book.SIDES
        )
        return slot in self.settled or (
            at >= due
            and cleared
            and not self.market.contracts(slot)
            and not meters_schema.slot_has_readings(state, slot)
        )

    @precondition(lambda self: self.traded)
    @rule(data=st.data(), who=st.sampled_from([*HOUSEHOLDS, OPERATOR, REGULATOR]))
    def settle(self, data: st.DataObject, who: KeyPair) -> None:
        """Try to settle a traded slot now, due or not."""
        self.try_settle(who, data.draw(st.sampled_from(sorted(self.traded))), None)

    @precondition(lambda self: self.traded - self.done)
    @rule(data=st.data(), who=households)
    def deliver_clear_and_settle_the_oldest_slot(self, data: st.DataObject, who: KeyPair) -> None:
        """The sellers of the oldest unsettled slot report (or not) what they exported; then the
        slot is cleared and settled when it is due."""
        slot = min(self.traded - self.done)
        for seller in sorted({made["seller"] for made in self.market.contracts(slot)}):
            delivery = st.lists(st.tuples(exports, qualities), max_size=INTERVALS)
            self.relay(BY_ADDRESS[seller], slot, 0, data.draw(delivery), tamper=False)
        options = market_options(self.market.state)
        due = slot + SLOT_MS + options.settlement_delay_ms
        at = max(self.market.now + 1_000, due)
        result = self.market.run(self.market.tx(who, "market.slot.clear", slot=slot), at=at)
        assert result in (["ok"], ["nothing_to_clear"])
        self.slots.discard(slot)
        assert self.try_settle(who, slot, at + 1_000) in ("ok", "nothing_to_settle")
        self.done.add(slot)  # settled, or without contracts for good: its gate has closed

    def try_settle(self, who: KeyPair, slot: int, at: int | None) -> str:
        state = self.market.state
        options = market_options(state)
        contracts = self.market.contracts(slot)
        expected = self.expected_settlement(slot, contracts)
        before = {
            a: (app.balance(state, a), market_schema.locked(state, a)) for a in self.addresses
        }
        uncleared = state.get(market_schema.offers_key(slot)) is not None or any(
            book.best_price(state, slot, side) is not None for side in book.SIDES
        )
        metered = meters_schema.slot_has_readings(state, slot)
        result, _ = self.send_at(who, "market.slot.settle", at, slot=slot)
        now = self.market.now
        if now < slot + SLOT_MS:
            assert result == "slot_not_ended"
        elif now < slot + SLOT_MS + options.settlement_delay_ms:
            assert result == "settlement_not_due"
        elif slot in self.settled:
            assert result == "nothing_to_settle"  # its contracts left the state
        elif uncleared:
            assert result == "slot_not_cleared"
        else:
            assert result == ("ok" if contracts or metered else "nothing_to_settle")
        if result != "ok":
            return result
        results = [self.market.result(n, slot) for n in range(len(contracts))]
        assert results == expected
        self.settled[slot] = (self.market.settlement(slot), results)
        self.done.add(slot)
        # The money moved is exactly what the records say.
        moved: collections.Counter[str] = collections.Counter()
        unlocked: collections.Counter[str] = collections.Counter()
        for made, outcome in zip(contracts, results, strict=True):
            moved[made["buyer"]] += outcome["penalty"] - outcome["paid"] - outcome["fee"]
            moved[made["seller"]] += outcome["paid"] - outcome["penalty"]
            moved[OPERATOR.address] += outcome["fee"]
            unlocked[made["buyer"]] += made["escrow"]
            unlocked[made["seller"]] += made["deposit"]
        for address, (balance, locked) in before.items():
            assert app.balance(state, address) == balance + moved[address]
            assert market_schema.locked(state, address) == locked - unlocked[address]
        return result

    def expected_settlement(self, slot: int, contracts: list[Any]) -> list[dict[str, Any]]:
        """The rules of docs/market.md, "Settlement", on the model's readings."""
        step = INTERVAL_S * 1_000
        export = {
            who.address: sum(
                sent["export_wh"]
                for start in range(slot, slot + SLOT_MS, step)
                if (sent := self.readings.get((meter_id(who), start)))
                and sent["quality"] != "missing"
            )
            for who in HOUSEHOLDS
        }
        left = dict(export)
        expected = []
        for made in contracts:
            delivered = min(left[made["seller"]], made["energy_wh"])
            left[made["seller"]] -= delivered
            paid, fee = value(delivered, made["price"]), value(delivered, made["network_fee"])
            short = value(made["energy_wh"] - delivered, made["price"])
            penalty = min(made["deposit"], share(short, made["penalty_bps"]))
            expected.append(
                {
                    "contract": made["id"],
                    "seller": made["seller"],
                    "buyer": made["buyer"],
                    "energy_wh": made["energy_wh"],
                    "export_wh": export[made["seller"]],
                    "delivered_wh": delivered,
                    "paid": paid,
                    "fee": fee,
                    "penalty": penalty,
                    "escrow_released": made["escrow"] - paid - fee,
                    "deposit_released": made["deposit"] - penalty,
                }
            )
        return expected

    def send_at(self, who: KeyPair, type: str, at: int | None, **payload: Any) -> tuple[str, str]:
        tx = self.market.tx(who, type, **payload)
        return self.market.run(tx, at=at)[0], tx.id

    @property
    def addresses(self) -> list[str]:
        return [who.address for who in (*HOUSEHOLDS, OPERATOR)]

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def money_is_conserved_and_never_negative(self) -> None:
        state = self.market.state
        balances = {k[len("bal/") :]: state.get(k) for k in state.keys("bal/")}
        assert sum(balances.values()) == state.get("ledger/supply") == self.supply
        for who in (*HOUSEHOLDS, OPERATOR):
            balance, locked = self.market.balance(who), self.market.locked(who)
            assert balance >= 0
            assert locked >= 0
            assert balance - locked >= 0
        assert self.market.locked(OPERATOR) == 0

    @invariant()
    def readings_are_the_first_sent_and_settlements_never_change(self) -> None:
        state = self.market.state
        for (meter, start), sent in self.readings.items():
            stored = meters_schema.reading(state, meter, start)
            if stored is None and self.closed(start - start % SLOT_MS, self.market.now):
                continue  # its slot is closed: its readings may have left the state
            assert stored is not None
            assert {k: stored[k] for k in sent} == sent
        for who in HOUSEHOLDS:
            conflicts = state.get(meters_schema.conflicts_key(meter_id(who)), 0)
            assert conflicts == self.conflicts[meter_id(who)]
        for slot, (summary, results) in self.settled.items():
            assert self.market.settlement(slot) == summary
            assert [self.market.result(n, slot) for n in range(len(results))] == results
            assert state.get(market_schema.contracts_key(slot)) is None  # history left

    @invariant()
    def locked_amounts_are_exactly_what_orders_offers_and_contracts_hold(self) -> None:
        state = self.market.state
        options = market_options(state)
        held: collections.Counter[str] = collections.Counter()
        for key in state.keys(market_schema.ORDER_PREFIX):
            order = state.get(key)
            held[order["owner"]] += order["locked"]
            margin = (
                buyer_margin(order["remaining_wh"], order["price"], options.network_fee)
                if order["side"] == "buy"
                else seller_deposit(order["remaining_wh"], order["price"], options.deposit_bps)
            )
            assert order["locked"] == margin
        for key in state.keys(market_schema.OFFER_PREFIX):
            offer = state.get(key)
            held[offer["owner"]] += offer["locked"]
            deposit = seller_deposit(offer["remaining_wh"], offer["price"], options.deposit_bps)
            assert offer["locked"] == deposit
        for key in state.keys("market/contract/"):
            made = state.get(key)
            if made["slot"] not in self.settled:  # settlement released its margins
                held[made["buyer"]] += made["escrow"]
                held[made["seller"]] += made["deposit"]
            assert made["escrow"] == buyer_margin(
                made["energy_wh"], made["price"], made["network_fee"]
            )
            assert made["energy_wh"] > 0
            assert made["seller"] != made["buyer"]
        for who in HOUSEHOLDS:
            assert self.market.locked(who) == held[who.address]

    @invariant()
    def nothing_is_filled_beyond_its_quantity(self) -> None:
        state = self.market.state
        filled: collections.Counter[str] = collections.Counter()
        for key in state.keys("market/contract/"):
            made = state.get(key)
            filled[made["seller_tx"]] += made["energy_wh"]
            filled[made["buyer_tx"]] += made["energy_wh"]
        for placed in (self.orders, self.offers, self.acceptances):
            for tx_id, energy in placed.items():
                assert filled[tx_id] <= energy
                resting = state.get(market_schema.order_key(tx_id)) or state.get(
                    market_schema.OFFER_PREFIX + tx_id
                )
                if resting is not None:
                    assert 0 < resting["remaining_wh"] == energy - filled[tx_id]
        assert set(filled) <= set(self.orders) | set(self.offers) | set(self.acceptances)

    @invariant()
    def books_are_consistent(self) -> None:
        state = self.market.state
        for slot in self.slots:
            for side in book.SIDES:
                levels = list(book.prices(state, slot, side))
                assert book.best_price(state, slot, side) == (levels[0] if levels else None)
                for price in levels:
                    level = state.get(market_schema.level_key(slot, side, price))
                    orders = book.queue_items(
                        state, market_schema.level_key(slot, side, price), "market/order/"
                    )
                    assert level["count"] == len(orders) > 0
                    assert level["head"] == orders[0]["seq"]
                    assert level["next"] > orders[-1]["seq"]
                    assert [o["seq"] for o in orders] == sorted(o["seq"] for o in orders)
                    assert {o["price"] for o in orders} == {price}
                    assert all(o["remaining_wh"] > 0 and o["slot"] == slot for o in orders)

    def teardown(self) -> None:
        replayed = self.market.replay()
        assert replayed.root() == self.market.state.root()


class CallAuctionMachine(MarketMachine):
    options: ClassVar[dict[str, int]] = {"call_auction": 1, "network_fee": 2}


def _tailoring_grid_check(
    state: Any, *, seller: str, buyer: str, slot: int, energy_wh: int, **_: Any
) -> Allowance:
    """A deterministic stand-in for the grid security check that tailors and refuses."""
    if energy_wh % 7 == 0:
        return Allowance(0, "import:test")
    if energy_wh % 3 == 0:
        return Allowance(energy_wh // 2, "export:test")
    return Allowance(energy_wh)


class TailoringGridMachine(MarketMachine):
    """The continuous market with a grid check that tailors and refuses matches."""

    def __init__(self) -> None:
        self._real_grid_check = grid.grid_check
        grid.grid_check = _tailoring_grid_check
        super().__init__()

    def teardown(self) -> None:
        try:
            super().teardown()  # the replay runs under the same grid check
        finally:
            grid.grid_check = self._real_grid_check


class TailoringCallAuctionMachine(TailoringGridMachine):
    options: ClassVar[dict[str, int]] = {"call_auction": 1}


MACHINE_SETTINGS = settings(max_examples=40, stateful_step_count=40, deadline=None)
TestContinuousMarket = MarketMachine.TestCase
TestContinuousMarket.settings = MACHINE_SETTINGS
TestCallAuction = CallAuctionMachine.TestCase
TestCallAuction.settings = MACHINE_SETTINGS
TestTailoringGrid = TailoringGridMachine.TestCase
TestTailoringGrid.settings = MACHINE_SETTINGS
TestTailoringGridCallAuction = TailoringCallAuctionMachine.TestCase
TestTailoringGridCallAuction.settings = MACHINE_SETTINGS
