"""The market's invariants, as Hypothesis state machines over real signed transactions.

After every step: money is conserved (balances sum to ``ledger/supply``, which moves only by what
was issued and redeemed), no balance, locked amount or free balance is negative, every account's
locked amount is exactly what its orders, offers and contracts hold, every resting order's and
offer's margin is exactly the margin of its remainder, and nothing is filled beyond its quantity
(what an order or offer has left plus its contracts is exactly what it was for). At the end, an
independent execution of the same blocks on a fresh genesis state gives the same state root.
"""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gridplatform.identity import KeyPair
from market import book, contract, grid
from market.options import market_options
from market.pricing import buyer_margin, seller_deposit
from tests.market.support import (
    ADA,
    DAN,
    GATE_MS,
    HOUSEHOLDS,
    OPERATOR,
    REGULATOR,
    SLOT_MS,
    Market,
)

households = st.sampled_from(HOUSEHOLDS)
energies = st.integers(min_value=1, max_value=2_000)
prices = st.integers(min_value=90, max_value=110) | st.integers(min_value=1, max_value=300)
ahead = st.integers(min_value=0, max_value=1)  # which open slot: the first or the next


class MarketMachine(RuleBasedStateMachine):
    options: ClassVar[dict[str, int]] = {"network_fee": 3, "deposit_bps": 2_500}

    def __init__(self) -> None:
        super().__init__()
        self.market = Market(**self.options)
        for who, credits in zip(HOUSEHOLDS, (50_000, 20_000, 5_000, 300), strict=True):
            self.market.household(who, credits=credits, feeder="f1" if who != DAN else "f2")
        self.supply = self.market.state.get("ledger/supply")
        self.orders: dict[str, int] = {}  # every order placed: id -> energy ordered
        self.offers: dict[str, int] = {}
        self.acceptances: dict[str, int] = {}  # accepted offers: acceptance id -> energy asked
        self.slots: set[int] = set()

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

    @precondition(lambda self: self.offers)
    @rule(data=st.data(), who=households, percent=st.integers(min_value=1, max_value=110))
    def accept(self, data: st.DataObject, who: KeyPair, percent: int) -> None:
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        offer = self.market.state.get(contract.OFFER_PREFIX + offer_id)
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

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def money_is_conserved_and_never_negative(self) -> None:
        state = self.market.state
        balances = {k[len("bal/") :]: state.get(k) for k in state.keys("bal/")}
        assert sum(balances.values()) == state.get("ledger/supply") == self.supply
        for who in HOUSEHOLDS:
            balance, locked = self.market.balance(who), self.market.locked(who)
            assert balance >= 0
            assert locked >= 0
            assert balance - locked >= 0

    @invariant()
    def locked_amounts_are_exactly_what_orders_offers_and_contracts_hold(self) -> None:
        state = self.market.state
        options = market_options(state)
        held: collections.Counter[str] = collections.Counter()
        for key in state.keys(book.ORDER_PREFIX):
            order = state.get(key)
            held[order["owner"]] += order["locked"]
            margin = (
                buyer_margin(order["remaining_wh"], order["price"], options.network_fee)
                if order["side"] == "buy"
                else seller_deposit(order["remaining_wh"], order["price"], options.deposit_bps)
            )
            assert order["locked"] == margin
        for key in state.keys(contract.OFFER_PREFIX):
            offer = state.get(key)
            held[offer["owner"]] += offer["locked"]
            deposit = seller_deposit(offer["remaining_wh"], offer["price"], options.deposit_bps)
            assert offer["locked"] == deposit
        for key in state.keys("market/contract/"):
            made = state.get(key)
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
                resting = state.get(book.order_key(tx_id)) or state.get(
                    contract.OFFER_PREFIX + tx_id
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
                    level = state.get(book.level_key(slot, side, price))
                    orders = book.queue_items(
                        state, book.level_key(slot, side, price), "market/order/"
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
    state: Any, *, seller: str, buyer: str, slot: int, energy_wh: int
) -> grid.GridAllowance:
    """A deterministic stand-in for the grid security check that tailors and refuses."""
    if energy_wh % 7 == 0:
        return grid.GridAllowance(0, "import:test")
    if energy_wh % 3 == 0:
        return grid.GridAllowance(energy_wh // 2, "export:test")
    return grid.GridAllowance(energy_wh)


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
