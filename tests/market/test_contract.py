"""The market's contract logic, rule by rule, with real signed transactions on a pure State."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import application as app
from ledger.identity import KeyPair
from market.chain import book
from market.chain import schema as market_schema
from market.chain.auction import Clearing, clearing_price
from market.chain.network import Allowance
from market.chain.options import PRICE_LIMIT, Options, market_options
from market.chain.pricing import buyer_margin, seller_deposit, value
from supervision.chain import grid
from supervision.chain import schema as supervision_schema
from tests.market.support import (
    ADA,
    BEN,
    CAT,
    DAN,
    GATE_MS,
    OPERATOR,
    REGULATOR,
    SLOT,
    SLOT_MS,
    T0,
    Market,
)


@pytest.fixture
def market() -> Market:
    result = Market()
    for who in (ADA, BEN, CAT):
        result.household(who)
    return result


def place_payload(**changes: Any) -> dict[str, Any]:
    return {"slot": SLOT, "side": "buy", "energy_wh": 1_000, "price": 100} | changes


# --- options and the rounding rule -------------------------------------------------------------


def test_it_reads_options_from_genesis_and_defaults_the_others() -> None:
    options = market_options(Market(slot_ms=3_600_000, call_auction=1, network_fee=7).state)
    assert options == Options(slot_ms=3_600_000, call_auction=1, network_fee=7)
    assert market_options(Market().state) == Options()
    assert Options().slot_ms == 900_000
    assert Options().horizon_ms == 86_400_000


def test_it_clamps_options_the_market_cannot_work_with() -> None:
    options = market_options(Market(price_max=2**40, slot_ms=0, deposit_bps=20_000).state)
    assert (options.price_max, options.slot_ms, options.deposit_bps) == (PRICE_LIMIT, 1, 10_000)


def test_it_rounds_every_value_down() -> None:
    assert value(1, 999) == 0
    assert value(1_500, 1_001) == 1_501  # 1501.5
    assert value(3, 500) == 1  # 1.5
    assert buyer_margin(1_000, 100, 7) == 107
    assert seller_deposit(1_000, 100, 2_000) == 20
    assert seller_deposit(999, 1, 2_000) == 0  # 0.1998


@pytest.mark.parametrize(
    ("energy_wh", "price", "parts"),
    [(3, 500, [1, 1, 1]), (1_000, 333, [1] * 10 + [990]), (7, 999, [2, 2, 3])],
)
def test_it_never_charges_a_split_order_more_than_the_whole(
    energy_wh: int, price: int, parts: list[int]
) -> None:
    assert sum(parts) == energy_wh
    assert sum(value(part, price) for part in parts) <= value(energy_wh, price)


# --- feeders -----------------------------------------------------------------------------------


def test_it_lets_the_grid_operator_assign_and_move_feeders(market: Market) -> None:
    assert market.send(OPERATOR, "grid.feeder.assign", address=ADA.address, feeder="f2") == "ok"
    assert supervision_schema.feeder_of(market.state, ADA.address) == "f2"


@pytest.mark.parametrize("who", [ADA, REGULATOR])
def test_it_refuses_feeder_assignment_by_anyone_else(market: Market, who: KeyPair) -> None:
    result = market.send(who, "grid.feeder.assign", address=ADA.address, feeder="f9")
    assert result == "not_allowed"
    assert supervision_schema.feeder_of(market.state, ADA.address) == "f1"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"address": ADA.address, "feeder": "F 1"}, "bad_feeder"),
        ({"address": ADA.address, "feeder": 3}, "bad_feeder"),
        ({"address": REGULATOR.address, "feeder": "f1"}, "not_household"),
        ({"address": DAN.address, "feeder": "f1"}, "unknown_account"),
        ({"address": "nonsense", "feeder": "f1"}, "bad_address"),
        ({"address": ADA.address}, "bad_payload"),
    ],
)
def test_it_refuses_bad_feeder_assignments(
    market: Market, payload: dict[str, Any], code: str
) -> None:
    assert market.send(OPERATOR, "grid.feeder.assign", **payload) == code
    assert supervision_schema.feeder_of(market.state, ADA.address) == "f1"


# --- publishing orders -------------------------------------------------------------------------


def test_it_locks_the_full_price_plus_network_fee_for_a_bid() -> None:
    market = Market(network_fee=5)
    market.household(BEN, credits=1_000)
    result, order_id = market.place(BEN, "buy", 2_000, 100)
    assert result == "ok"
    assert market.locked(BEN) == 210  # 2 kWh x (100 + 5)
    assert market.free(BEN) == 790
    assert market.balance(BEN) == 1_000  # nothing is paid yet
    order = market.order(order_id)
    assert order is not None
    assert (order["remaining_wh"], order["locked"], order["owner"]) == (2_000, 210, BEN.address)
    assert book.best_price(market.state, SLOT, "buy") == 100
    assert market.state.get(market_schema.open_key(SLOT, BEN.address)) == {
        "side": "buy",
        "count": 1,
    }


def test_it_locks_a_security_deposit_for_an_ask(market: Market) -> None:
    result, order_id = market.place(ADA, "sell", 5_000, 120)
    assert result == "ok"
    assert market.locked(ADA) == 120  # 20 % of 5 kWh x 120
    assert book.best_price(market.state, SLOT, "sell") == 120
    assert market.order(order_id)["locked"] == 120  # type: ignore[index]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"slot": SLOT, "side": "buy", "energy_wh": 1_000}, "bad_payload"),
        (place_payload(memo="hi"), "bad_payload"),
        (place_payload(slot="1767229200000"), "bad_slot"),
        (place_payload(slot=-SLOT_MS), "bad_slot"),
        (place_payload(side="bid"), "bad_side"),
        (place_payload(energy_wh=True), "bad_energy"),
        (place_payload(energy_wh="1000"), "bad_energy"),
        (place_payload(price=[100]), "bad_price"),
        (place_payload(slot=SLOT + 60_000), "slot_misaligned"),
        (place_payload(slot=T0), "slot_past"),
        (place_payload(slot=T0 + SLOT_MS), "slot_closed"),  # 15 min ahead, gate after 10 min
        (place_payload(slot=T0 + 97 * SLOT_MS), "beyond_horizon"),
        (place_payload(energy_wh=0), "energy_out_of_bounds"),
        (place_payload(energy_wh=1_000_001), "energy_out_of_bounds"),
        (place_payload(price=0), "price_out_of_bounds"),
        (place_payload(price=100_001), "price_out_of_bounds"),
    ],
)
def test_it_refuses_malformed_or_untimely_orders(
    market: Market, payload: dict[str, Any], code: str
) -> None:
    market.now = T0 + SLOT_MS - GATE_MS - 1_000  # the next block is at the gate of T0 + 15 min
    assert market.send(BEN, "market.order.place", **payload) == code
    assert market.locked(BEN) == 0
    assert list(market.state.keys("market/")) == []


def test_it_accepts_a_slot_until_its_gate_closes_and_up_to_the_horizon(market: Market) -> None:
    last_moment = SLOT - GATE_MS - 1
    assert market.send(BEN, "market.order.place", at=last_moment, **place_payload()) == "ok"
    assert market.send(BEN, "market.order.place", at=SLOT - GATE_MS, **place_payload()) == (
        "slot_closed"
    )
    horizon = SLOT - GATE_MS + 86_400_000 - SLOT_MS // 3
    far = place_payload(slot=SLOT + 96 * SLOT_MS)
    assert market.send(BEN, "market.order.place", at=horizon, **far) == "ok"


def test_it_uses_the_slot_grid_of_the_genesis_options() -> None:
    market = Market(slot_ms=3_600_000, gate_closure_ms=0)
    market.household(BEN)
    hour = T0 + 3_600_000
    assert market.send(BEN, "market.order.place", **place_payload(slot=hour)) == "ok"
    assert market.send(BEN, "market.order.place", **place_payload(slot=SLOT - SLOT_MS)) == (
        "slot_misaligned"
    )


@pytest.mark.parametrize(
    ("act", "code"),
    [
        (
            {"type": "supervision.trading.suspend", "scope": "market", "until": 0},
            "market_suspended",
        ),
        ({"type": "supervision.account.restrict", "address": BEN.address}, "account_restricted"),
        (
            {"type": "supervision.trading.suspend", "scope": "feeder:f1", "until": 0},
            "feeder_suspended",
        ),
    ],
)
def test_it_refuses_orders_under_supervision(
    market: Market, act: dict[str, Any], code: str
) -> None:
    publish = {"feeder": "f1", "export_limit_w": 10**6, "import_limit_w": 10**6}
    assert market.send(OPERATOR, "grid.feeder.publish", **publish) == "ok"
    payload = {k: v for k, v in act.items() if k != "type"} | {"reason": "audit"}
    assert market.send(REGULATOR, act["type"], **payload) == "ok"
    assert market.send(BEN, "market.order.place", **place_payload()) == code
    assert market.locked(BEN) == 0


def test_it_refuses_households_without_a_feeder(market: Market) -> None:
    market.household(DAN, feeder="")
    assert market.send(DAN, "market.order.place", **place_payload()) == "no_feeder"
    assert market.send(OPERATOR, "grid.feeder.assign", address=DAN.address, feeder="f7") == "ok"
    assert market.send(DAN, "market.order.place", **place_payload()) == "ok"


def test_it_refuses_accounts_with_too_many_unsettled_defaults() -> None:
    market = Market(max_unsettled_defaults=1)
    market.household(BEN)
    market.state.set(f"market/defaults/{BEN.address}", {"unsettled": 2})
    assert market.send(BEN, "market.order.place", **place_payload()) == "too_many_defaults"
    market.state.set(f"market/defaults/{BEN.address}", {"unsettled": 1})
    assert market.send(BEN, "market.order.place", **place_payload()) == "ok"


def test_it_refuses_an_order_the_free_balance_cannot_cover(market: Market) -> None:
    market.household(DAN, credits=150)
    assert market.place(DAN, "buy", 1_000, 100)[0] == "ok"  # locks 100 of 150
    assert market.place(DAN, "buy", 1_000, 51)[0] == "insufficient_free_balance"
    assert market.place(DAN, "buy", 1_000, 50)[0] == "ok"
    assert (market.locked(DAN), market.free(DAN)) == (150, 0)


def test_it_refuses_orders_on_both_sides_of_a_slot(market: Market) -> None:
    assert market.place(ADA, "sell", 1_000, 200)[0] == "ok"
    assert market.place(ADA, "buy", 1_000, 100)[0] == "opposite_side_open"
    assert market.place(ADA, "buy", 1_000, 100, slot=SLOT + SLOT_MS)[0] == "ok"
    # Once nothing of its sell rests any more, the account may buy in the slot.
    assert market.place(BEN, "buy", 1_000, 200)[0] == "ok"
    assert market.state.get(market_schema.open_key(SLOT, ADA.address)) is None
    assert market.place(ADA, "buy", 1_000, 100)[0] == "ok"


@pytest.mark.parametrize("who", [OPERATOR, REGULATOR])
def test_it_lets_only_households_trade(market: Market, who: KeyPair) -> None:
    assert market.send(who, "market.order.place", **place_payload()) == "not_allowed"


# --- continuous matching -----------------------------------------------------------------------


def test_it_trades_at_the_resting_orders_price_and_releases_the_improvement(
    market: Market,
) -> None:
    _, ask = market.place(ADA, "sell", 1_000, 100)
    result, bid = market.place(BEN, "buy", 400, 130)
    assert result == "ok"
    (made,) = market.contracts()
    assert made == {
        "id": f"{SLOT}-0",
        "kind": "order",
        "slot": SLOT,
        "index": 0,
        "seller": ADA.address,
        "buyer": BEN.address,
        "energy_wh": 400,
        "price": 100,
        "network_fee": 0,
        "penalty_bps": 2_000,
        "escrow": 40,
        "deposit": 8,
        "seller_tx": ask,
        "buyer_tx": bid,
        "tx": bid,
        "height": market.height,
        "timestamp_ms": market.now,
    }
    assert market.order(bid) is None  # filled at once, never rested
    assert market.order(ask)["remaining_wh"] == 600  # type: ignore[index]
    assert market.locked(BEN) == 40  # 52 locked for the bid, 12 released
    assert market.locked(ADA) == 20  # 12 for the rest of the ask, 8 in the contract
    assert market.balance(ADA) == market.balance(BEN) == 100_000
    assert market.state.get(market_schema.level_key(SLOT, "sell", 100))["count"] == 1


def test_it_gives_priority_to_price_then_time(market: Market) -> None:
    market.household(DAN)
    _, first = market.place(ADA, "sell", 500, 110)
    _, second = market.place(CAT, "sell", 500, 110)
    _, cheapest = market.place(DAN, "sell", 500, 105)
    market.place(BEN, "buy", 1_200, 120)
    contracts = market.contracts()
    assert [(c["seller_tx"], c["energy_wh"], c["price"]) for c in contracts] == [
        (cheapest, 500, 105),
        (first, 500, 110),
        (second, 200, 110),
    ]
    assert market.order(first) is None
    assert market.order(cheapest) is None
    assert market.order(second)["remaining_wh"] == 300  # type: ignore[index]
    assert book.best_price(market.state, SLOT, "sell") == 110
    assert market.state.get(market_schema.open_key(SLOT, ADA.address)) is None


def test_it_rests_what_does_not_cross(market: Market) -> None:
    market.place(ADA, "sell", 500, 110)
    result, bid = market.place(BEN, "buy", 800, 109)
    assert result == "ok"
    assert market.contracts() == []
    assert book.best_price(market.state, SLOT, "buy") == 109
    assert book.best_price(market.state, SLOT, "sell") == 110
    # A seller crossing the bid trades at the bid's price.
    _, cat_ask = market.place(CAT, "sell", 1_000, 90)
    (made,) = market.contracts()
    assert (made["seller_tx"], made["buyer_tx"], made["price"], made["energy_wh"]) == (
        cat_ask,
        bid,
        109,
        800,
    )
    assert market.order(cat_ask)["remaining_wh"] == 200  # type: ignore[index]
    assert book.best_price(market.state, SLOT, "sell") == 90
    assert book.best_price(market.state, SLOT, "buy") is None
    assert market.locked(BEN) == value(800, 109)


def test_it_never_fills_an_order_beyond_its_quantity(market: Market) -> None:
    _, ask = market.place(ADA, "sell", 300, 100)
    market.place(BEN, "buy", 200, 100)
    market.place(CAT, "buy", 200, 100)
    assert [c["energy_wh"] for c in market.contracts()] == [200, 100]
    assert market.order(ask) is None
    assert book.best_price(market.state, SLOT, "buy") == 100  # Cat's remaining 100 Wh rests


# --- cancelling --------------------------------------------------------------------------------


def test_it_cancels_the_remainder_and_releases_its_margin(market: Market) -> None:
    _, ask = market.place(ADA, "sell", 1_000, 100)
    market.place(BEN, "buy", 400, 100)
    assert market.send(ADA, "market.order.cancel", order=ask) == "ok"
    assert market.order(ask) is None
    assert market.locked(ADA) == 8  # only the contract's deposit stays locked
    assert book.best_price(market.state, SLOT, "sell") is None
    assert market.state.get(market_schema.level_key(SLOT, "sell", 100)) is None
    assert list(market.state.keys(f"market/book/{SLOT}/")) == []
    assert market.send(ADA, "market.order.cancel", order=ask) == "unknown_order"


def test_it_keeps_time_priority_when_orders_leave_a_level_from_the_middle_or_head(
    market: Market,
) -> None:
    market.household(DAN)
    _, first = market.place(ADA, "sell", 100, 100)
    _, middle = market.place(CAT, "sell", 100, 100)
    _, last = market.place(DAN, "sell", 100, 100)
    key = market_schema.level_key(SLOT, "sell", 100)
    assert market.send(CAT, "market.order.cancel", order=middle) == "ok"
    assert market.state.get(key) == {"head": 0, "next": 3, "count": 2}
    assert market.state.get(f"{key}/1") is None
    assert market.send(ADA, "market.order.cancel", order=first) == "ok"
    assert market.state.get(key) == {"head": 2, "next": 3, "count": 1}  # skipped the gap
    _, again = market.place(ADA, "sell", 100, 100)
    assert market.order(again)["seq"] == 3  # type: ignore[index]
    market.place(BEN, "buy", 200, 100)
    assert [c["seller_tx"] for c in market.contracts()] == [last, again]
    assert market.state.get(key) is None
    assert [k for k in market.state.keys("market/level/")] == []


def test_it_lets_only_the_owner_cancel(market: Market) -> None:
    _, ask = market.place(ADA, "sell", 1_000, 100)
    assert market.send(BEN, "market.order.cancel", order=ask) == "not_owner"
    assert market.send(BEN, "market.order.cancel", order=7) == "unknown_order"
    assert market.order(ask) is not None
    assert market.locked(ADA) == 20


def test_it_refuses_cancelling_after_gate_closure(market: Market) -> None:
    _, ask = market.place(ADA, "sell", 1_000, 100)
    assert market.send(ADA, "market.order.cancel", at=SLOT - GATE_MS, order=ask) == "slot_closed"
    assert market.send(ADA, "market.order.cancel", at=SLOT, order=ask) == "slot_past"
    assert market.locked(ADA) == 20


# --- money ------------------------------------------------------------------------------------


def test_it_refuses_transferring_or_redeeming_locked_money(market: Market) -> None:
    market.place(BEN, "buy", 100_000, 900)  # locks 90,000 of 100,000
    assert market.send(BEN, "credit.transfer", to=ADA.address, amount=10_001) == (
        "insufficient_free_balance"
    )
    assert market.send(BEN, "credit.redeem", amount=10_001) == "insufficient_free_balance"
    assert market.balance(BEN) == 100_000
    assert market.send(BEN, "credit.transfer", to=ADA.address, amount=10_000) == "ok"
    assert (market.balance(BEN), market.free(BEN)) == (90_000, 0)
    assert market.send(BEN, "credit.redeem", amount=1) == "insufficient_free_balance"
    assert market.send(BEN, "credit.redeem", amount=10**9) == "insufficient_balance"


# --- the grid check hook -----------------------------------------------------------------------


def test_it_records_the_binding_constraint_when_the_grid_tailors_a_match(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, int, int]] = []

    def tailor(state: Any, *, seller: str, buyer: str, slot: int, energy_wh: int, **_: Any) -> Any:
        calls.append((seller, buyer, slot, energy_wh))
        return Allowance(min(energy_wh, 300), "export:f1")

    monkeypatch.setattr(grid, "grid_check", tailor)
    _, ask = market.place(ADA, "sell", 1_000, 100)
    _, bid = market.place(BEN, "buy", 800, 100)
    assert calls == [(ADA.address, BEN.address, SLOT, 800)]
    (made,) = market.contracts()
    assert made["energy_wh"] == 300
    assert made["grid"] == {"requested_wh": 800, "constraint": "export:f1", "cut_wh": 500}
    assert market.order(bid)["remaining_wh"] == 500  # type: ignore[index]
    assert market.order(ask)["remaining_wh"] == 700  # type: ignore[index]
    assert market.locked(BEN) == 30 + 50  # escrow + the resting remainder


def test_it_rests_an_order_whose_match_the_grid_refuses(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grid, "grid_check", lambda *a, **k: Allowance(0, "import:f1"))
    market.place(ADA, "sell", 1_000, 100)
    _, bid = market.place(BEN, "buy", 800, 100)
    assert market.contracts() == []
    assert market.order(bid)["remaining_wh"] == 800  # type: ignore[index]


def test_it_allows_every_match_on_feeders_without_published_limits(market: Market) -> None:
    allowance = grid.grid_check(
        market.state, seller=ADA.address, buyer=BEN.address, slot=SLOT, energy_wh=1_234
    )
    assert allowance == Allowance(1_234, "")


# --- bilateral offers --------------------------------------------------------------------------


def post(market: Market, buyer: str = "", **changes: Any) -> tuple[str, str]:
    payload = {"slot": SLOT, "energy_wh": 1_000, "price": 150, "buyer": buyer} | changes
    tx = market.tx(ADA, "market.offer.post", **payload)
    return market.run(tx)[0], tx.id


def test_it_makes_a_contract_when_a_buyer_accepts_part_of_an_offer(market: Market) -> None:
    result, offer_id = post(market)
    assert result == "ok"
    assert market.locked(ADA) == 30
    accept = market.tx(BEN, "market.offer.accept", offer=offer_id, energy_wh=400)
    assert market.run(accept) == ["ok"]
    (made,) = market.contracts()
    assert made["kind"] == "offer"
    assert (made["seller_tx"], made["buyer_tx"], made["tx"]) == (offer_id, accept.id, accept.id)
    assert (made["energy_wh"], made["price"], made["escrow"], made["deposit"]) == (400, 150, 60, 12)
    assert market.locked(BEN) == 60
    assert market.locked(ADA) == 30  # 18 on the rest of the offer, 12 in the contract
    offer = market.state.get(market_schema.OFFER_PREFIX + offer_id)
    assert (offer["remaining_wh"], offer["locked"]) == (600, 18)
    assert market.send(CAT, "market.offer.accept", offer=offer_id, energy_wh=600) == "ok"
    assert market.state.get(market_schema.OFFER_PREFIX + offer_id) is None
    assert market.state.get(market_schema.offers_key(SLOT)) is None


def test_it_offers_to_a_named_buyer_only(market: Market) -> None:
    _, offer_id = post(market, buyer=BEN.address)
    assert market.send(CAT, "market.offer.accept", offer=offer_id, energy_wh=1) == (
        "not_offered_to_you"
    )
    assert market.send(BEN, "market.offer.accept", offer=offer_id, energy_wh=1) == "ok"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"buyer": ADA.address}, "own_offer"),
        ({"buyer": DAN.address}, "unknown_account"),
        ({"buyer": OPERATOR.address}, "not_household"),
        ({"buyer": 5}, "bad_address"),
        ({"price": 0}, "price_out_of_bounds"),
        ({"slot": SLOT + 1}, "slot_misaligned"),
        ({"energy_wh": 10**9}, "energy_out_of_bounds"),
    ],
)
def test_it_refuses_bad_offers(market: Market, changes: dict[str, Any], code: str) -> None:
    assert post(market, **changes)[0] == code
    assert market.locked(ADA) == 0


@pytest.mark.parametrize(
    ("who", "energy_wh", "code"),
    [
        (ADA, 100, "own_offer"),
        (BEN, 1_001, "exceeds_offer"),
        (BEN, 0, "bad_energy"),
        (BEN, "100", "bad_energy"),
    ],
)
def test_it_refuses_bad_acceptances(
    market: Market, who: KeyPair, energy_wh: Any, code: str
) -> None:
    _, offer_id = post(market)
    assert market.send(who, "market.offer.accept", offer=offer_id, energy_wh=energy_wh) == code
    assert market.send(BEN, "market.offer.accept", offer="0" * 64, energy_wh=1) == "unknown_offer"
    assert market.contracts() == []


def test_it_audits_the_buyer_and_the_sellers_feeder_on_acceptance(market: Market) -> None:
    market.household(DAN, credits=10, feeder="f2")
    _, offer_id = post(market)
    assert market.send(DAN, "market.offer.accept", offer=offer_id, energy_wh=100) == (
        "insufficient_free_balance"
    )
    publish = {"feeder": "f1", "export_limit_w": 10**6, "import_limit_w": 10**6}
    assert market.send(OPERATOR, "grid.feeder.publish", **publish) == "ok"
    suspend = {"scope": "feeder:f1", "reason": "works", "until": 0}  # the seller's feeder
    assert market.send(REGULATOR, "supervision.trading.suspend", **suspend) == "ok"
    assert market.send(DAN, "market.offer.accept", offer=offer_id, energy_wh=10) == (
        "feeder_suspended"
    )
    restrict = {"address": DAN.address, "reason": "audit"}
    assert market.send(REGULATOR, "supervision.account.restrict", **restrict) == "ok"
    assert market.send(DAN, "market.offer.accept", offer=offer_id, energy_wh=10) == (
        "account_restricted"
    )
    assert market.contracts() == []


def test_it_refuses_an_acceptance_the_grid_refuses(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, offer_id = post(market)
    monkeypatch.setattr(grid, "grid_check", lambda *a, **k: Allowance(0, "import:f1"))
    assert market.send(BEN, "market.offer.accept", offer=offer_id, energy_wh=10) == "grid_refused"
    assert market.locked(BEN) == 0


def test_it_refuses_acceptance_after_gate_closure(market: Market) -> None:
    _, offer_id = post(market)
    at = SLOT - GATE_MS
    assert market.send(BEN, "market.offer.accept", at=at, offer=offer_id, energy_wh=1) == (
        "slot_closed"
    )


def test_it_lets_only_the_seller_withdraw_an_offer(market: Market) -> None:
    _, offer_id = post(market)
    assert market.send(BEN, "market.offer.withdraw", offer=offer_id) == "not_owner"
    assert market.send(ADA, "market.offer.withdraw", offer=offer_id) == "ok"
    assert market.locked(ADA) == 0
    assert market.send(ADA, "market.offer.withdraw", offer=offer_id) == "unknown_offer"
    assert market.state.get(market_schema.offers_key(SLOT)) is None


# --- the end of trading for a slot -------------------------------------------------------------


def test_it_expires_unmatched_orders_and_offers_at_clearing(market: Market) -> None:
    market.place(ADA, "sell", 1_000, 100)
    market.place(BEN, "buy", 400, 100)
    market.place(CAT, "buy", 500, 90)
    post(market, slot=SLOT)
    assert market.send(CAT, "market.slot.clear", slot=SLOT) == "slot_open"
    assert market.send(REGULATOR, "market.slot.clear", at=SLOT - GATE_MS, slot=SLOT) == "ok"
    assert market.locked(ADA) == 8  # the contract's deposit
    assert market.locked(BEN) == 40  # the contract's escrow
    assert market.locked(CAT) == 0
    left = {key for key in market.state.keys("market/") if "contract" not in key}
    assert left == {f"market/locked/{BEN.address}", f"market/locked/{ADA.address}"}
    assert len(market.contracts()) == 1
    assert market.send(CAT, "market.slot.clear", slot=SLOT) == "nothing_to_clear"


@pytest.mark.parametrize(
    ("slot", "code"), [("x", "bad_slot"), (-1, "bad_slot"), (SLOT + 5, "slot_misaligned")]
)
def test_it_refuses_bad_clearings(market: Market, slot: Any, code: str) -> None:
    assert market.send(OPERATOR, "market.slot.clear", at=SLOT, slot=slot) == code


def auction_market() -> Market:
    market = Market(call_auction=1)
    for who in (ADA, BEN, CAT, DAN):
        market.household(who)
    return market


def test_it_clears_a_call_auction_at_one_price() -> None:
    market = auction_market()
    _, ada = market.place(ADA, "sell", 1_000, 80)
    _, cat = market.place(CAT, "sell", 500, 100)
    _, ben = market.place(BEN, "buy", 1_500, 130)
    market.place(DAN, "buy", 1_000, 90)
    assert market.contracts() == []  # nothing matches before gate closure
    assert market.send(OPERATOR, "market.slot.clear", at=SLOT - GATE_MS, slot=SLOT) == "ok"
    # Ben (130) takes Ada's 1,000 (80) and Cat's 500 (100); Dan (90) is below Cat's price.
    # Range: from the last matched ask (100; Dan's unmatched 90 is lower) to the last matched
    # bid (130; no ask is left to cap it): [100, 130] -> midpoint 115.
    contracts = market.contracts()
    assert [(c["seller_tx"], c["buyer_tx"], c["energy_wh"], c["price"]) for c in contracts] == [
        (ada, ben, 1_000, 115),
        (cat, ben, 500, 115),
    ]
    assert all(c["kind"] == "auction" for c in contracts)
    (auction,) = market.emitted("market.auction_cleared")  # an event: no state key
    assert auction == {"slot": SLOT, "price": 115, "volume_wh": 1_500, "contracts": 2}
    assert market.locked(BEN) == 115 + 57  # escrows at the clearing price, not the bid
    assert market.locked(DAN) == 0
    assert market.locked(CAT) == 10
    assert market.locked(ADA) == 16


def test_it_rations_the_long_side_of_an_auction_by_time() -> None:
    market = auction_market()
    market.place(ADA, "sell", 1_000, 100)
    _, ben = market.place(BEN, "buy", 600, 100)
    _, cat = market.place(CAT, "buy", 600, 100)
    market.send(OPERATOR, "market.slot.clear", at=SLOT - GATE_MS, slot=SLOT)
    assert [(c["buyer_tx"], c["energy_wh"], c["price"]) for c in market.contracts()] == [
        (ben, 600, 100),
        (cat, 400, 100),
    ]
    assert market.locked(CAT) == 40


def test_it_runs_no_auction_while_the_market_is_suspended() -> None:
    market = auction_market()
    market.place(ADA, "sell", 1_000, 80)
    market.place(BEN, "buy", 1_000, 130)
    suspend = {"scope": "market", "reason": "price spike", "until": 0}
    assert market.send(REGULATOR, "supervision.trading.suspend", **suspend) == "ok"
    assert market.send(OPERATOR, "market.slot.clear", at=SLOT - GATE_MS, slot=SLOT) == "ok"
    assert market.contracts() == []
    assert market.locked(ADA) == market.locked(BEN) == 0
    assert market.emitted("market.auction_cleared") == []


@pytest.mark.parametrize(
    ("bids", "asks", "expected"),
    [
        ([(100, 10)], [(50, 10)], Clearing(75, 10)),
        ([(101, 10)], [(50, 10)], Clearing(75, 10)),  # 75.5 rounds down
        ([(100, 10)], [(100, 10)], Clearing(100, 10)),
        ([(100, 10)], [(50, 4), (70, 4)], Clearing(100, 8)),  # 2 Wh of the bid left: [100, 100]
        ([(100, 10), (60, 10)], [(50, 10), (70, 10)], Clearing(65, 10)),  # [60, 70]
        ([(100, 5)], [(50, 10), (90, 3)], Clearing(50, 5)),  # excess supply at 50: [50, 50]
        ([(40, 10)], [(50, 10)], None),
        ([], [(50, 10)], None),
    ],
)
def test_it_picks_the_midpoint_of_the_clearing_range(
    bids: list[tuple[int, int]], asks: list[tuple[int, int]], expected: Clearing | None
) -> None:
    assert clearing_price(bids, asks) == expected


# --- determinism -------------------------------------------------------------------------------


def test_it_replays_to_the_same_state_root(market: Market) -> None:
    market.place(ADA, "sell", 1_000, 100)
    market.place(BEN, "buy", 400, 120)
    post(market)
    market.send(OPERATOR, "market.slot.clear", at=SLOT, slot=SLOT)
    replayed = market.replay()
    assert replayed.root() == market.state.root()
    assert replayed.get(market_schema.contract_key(f"{SLOT}-0")) is not None


def test_it_keeps_the_ledgers_types_and_adds_the_markets() -> None:
    types = set(Market().registry.types)
    assert {"credit.issue", "credit.transfer", "credit.redeem", "account.register"} <= types
    assert {
        "grid.feeder.assign",
        "market.order.place",
        "market.order.cancel",
        "market.offer.post",
        "market.offer.accept",
        "market.offer.withdraw",
        "market.slot.clear",
    } <= types
    assert Market().registry.types["grid.feeder.assign"].senders == {app.GRID_OPERATOR}
