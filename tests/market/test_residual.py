"""The residual with the supplier of last resort (``market.chain.residual``), settled with each
slot: real signed transactions on a pure State. The worked examples are those of docs/market.md,
"The grid behind the market", with the same numbers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.identity import KeyPair
from market.chain import schema as market_schema
from meters.chain import schema as meters_schema
from tests.market.support import (
    ADA,
    ADA_METER,
    BEN,
    BEN_METER,
    CAT,
    CAT_METER,
    DAN,
    DAN_METER,
    INTERVAL_S,
    OPERATOR,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    reading,
)

STEP = INTERVAL_S * 1_000
DUE = SLOT + SLOT_MS + 900_000  # market.settlement_delay_ms's default
CREDITS = 100_000
# The supplier's tariff in these examples: one band all day, minor units (cents) per kWh.
TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}
METERS = {"ada": (ADA, ADA_METER), "ben": (BEN, BEN_METER), "cat": (CAT, CAT_METER)}


def community(*, tariff: bool = True, credits: dict[str, int] | None = None) -> Market:
    """Ada, Ben and Cat, each with a meter; P2P network fee 5 per kWh, deposit and penalty 20 %;
    the tariff above in force from SLOT on."""
    market = Market(network_fee=5)
    for name, (who, device) in METERS.items():
        market.household(who, credits=(credits or {}).get(name, CREDITS))
        assert market.meter(who, device, f"{name}-main") == "ok"
    if tariff:
        assert market.send(OPERATOR, "market.tariff.publish", from_slot=SLOT, bands=[TARIFF]) == (
            "ok"
        )
    return market


def metered(market: Market, name: str, *, export_wh: int = 0, import_wh: int = 0) -> None:
    """``name``'s meter reads the slot in three intervals (the first takes the remainders)."""
    _, device = METERS[name]

    def part(total: int, i: int) -> int:
        return total // 3 + (total % 3 if i == 0 else 0)

    body = batch(
        *(
            reading(SLOT + i * STEP, part(export_wh, i), import_wh=part(import_wh, i))
            for i in range(3)
        )
    )
    assert market.relay(f"{name}-main", device, body, at=max(market.now + 1_000, SLOT + SLOT_MS))


def trade(market: Market, seller: KeyPair, buyer: KeyPair, energy_wh: int, price: int) -> None:
    assert market.place(seller, "sell", energy_wh, price)[0] == "ok"
    assert market.place(buyer, "buy", energy_wh, price)[0] == "ok"


def residual(market: Market, who: KeyPair) -> dict[str, Any]:
    (found,) = [
        data for data in market.emitted("market.residual_settled") if data["account"] == who.address
    ]
    return found


def balances(market: Market) -> dict[str, int]:
    named = {"ada": ADA, "ben": BEN, "cat": CAT, "supplier": OPERATOR}
    return {name: market.balance(who) for name, who in named.items()}


def assert_conserved(market: Market) -> None:
    """Money is conserved: every balance sums to what is in circulation, none below its
    margins, and no arrears are negative."""
    state = market.state
    assert sum(state.get(key) for key in state.keys("bal/")) == state.get("ledger/supply")
    for key in state.keys("bal/"):
        address = key.removeprefix("bal/")
        assert market_schema.free_balance(state, address) >= 0
        assert market_schema.arrears(state, address) >= 0
    assert market.replay().root() == state.root()


# --- the worked examples -----------------------------------------------------------------------


def test_a_prosumer_sells_part_of_its_surplus_and_a_consumer_is_half_covered() -> None:
    """Ada exports 3,000 Wh and sells 2,000 of them to Ben at 20; Ben imports 4,000 Wh."""
    market = community()
    trade(market, ADA, BEN, 2_000, 20)
    metered(market, "ada", export_wh=3_000)
    metered(market, "ben", import_wh=4_000)
    assert market.settle(at=DUE) == "ok"

    ada, ben = residual(market, ADA), residual(market, BEN)
    assert (ada["p2p_out_wh"], ada["grid_export_wh"], ada["feed_in_paid"]) == (2_000, 1_000, 8)
    assert (ada["grid_import_wh"], ada["import_cost"], ada["import_fee"]) == (0, 0, 0)
    assert ben == {
        "slot": SLOT,
        "account": BEN.address,
        "import_wh": 4_000,
        "export_wh": 0,
        "p2p_in_wh": 2_000,
        "p2p_out_wh": 0,
        "grid_import_wh": 2_000,
        "grid_export_wh": 0,
        "retail": 30,
        "feed_in": 8,
        "network_fee": 6,
        "import_cost": 60,  # 2,000 Wh x 30 / 1,000
        "import_fee": 12,  # 2,000 Wh x 6 / 1,000
        "feed_in_paid": 0,
        "arrears_paid": 0,
        "arrears_added": 0,
        "arrears": 0,
    }
    # Ada: +40 from Ben, +8 feed-in. Ben: -40 - 10 (P2P fee) - 60 - 12. Supplier: 10 + 72 - 8.
    assert balances(market) == {"ada": 100_048, "ben": 99_878, "cat": CREDITS, "supplier": 74}
    assert market.settlement()["residual"] == {  # type: ignore[index]
        "households": 2,
        "grid_import_wh": 2_000,
        "grid_export_wh": 1_000,
        "import_cost": 60,
        "import_fee": 12,
        "feed_in_paid": 8,
        "arrears_paid": 0,
        "arrears_added": 0,
        "issued": 0,
    }
    assert_conserved(market)


def test_a_seller_who_under_delivers_buys_its_own_import_and_its_buyer_the_rest() -> None:
    """Ada sold 2,000 Wh to Ben at 20 but exported 1,200 (and imported 300); Ben imports 2,000."""
    market = community()
    trade(market, ADA, BEN, 2_000, 20)
    metered(market, "ada", export_wh=1_200, import_wh=300)
    metered(market, "ben", import_wh=2_000)
    assert market.settle(at=DUE) == "ok"

    contract = market.result(0)
    assert contract is not None
    assert (contract["delivered_wh"], contract["paid"], contract["fee"], contract["penalty"]) == (
        1_200,
        24,
        6,
        3,  # 20 % of the 800 Wh missing at 20 = 3.2, rounded down
    )
    ada, ben = residual(market, ADA), residual(market, BEN)
    assert (ada["grid_export_wh"], ada["grid_import_wh"]) == (0, 300)
    assert (ada["import_cost"], ada["import_fee"]) == (9, 1)  # 300 x 6 / 1,000 = 1.8 -> 1
    assert (ben["p2p_in_wh"], ben["grid_import_wh"]) == (1_200, 800)
    assert (ben["import_cost"], ben["import_fee"]) == (24, 4)  # 800 x 6 / 1,000 = 4.8 -> 4
    # Ada: +24 - 3 - 10; Ben: -24 - 6 + 3 - 28; supplier: 6 + 10 + 28.
    assert balances(market) == {"ada": 100_011, "ben": 99_945, "cat": CREDITS, "supplier": 44}
    assert_conserved(market)


def test_a_household_with_no_reading_settles_nothing_with_the_supplier() -> None:
    """Ada sold 1,000 Wh to Ben at 20 and her meter sent nothing; Ben imports 1,500 Wh."""
    market = community()
    trade(market, ADA, BEN, 1_000, 20)
    metered(market, "ben", import_wh=1_500)
    assert market.settle(at=DUE) == "ok"

    contract = market.result(0)
    assert contract is not None
    assert (contract["delivered_wh"], contract["penalty"]) == (0, 4)  # 20 % of 20
    assert [data["account"] for data in market.emitted("market.residual_settled")] == [BEN.address]
    assert (residual(market, BEN)["import_cost"], residual(market, BEN)["import_fee"]) == (45, 9)
    # Ada: -4 (penalty); Ben: +4 - 45 - 9; supplier: 54.
    assert balances(market) == {"ada": 99_996, "ben": 99_950, "cat": CREDITS, "supplier": 54}
    assert_conserved(market)


def test_what_a_household_cannot_pay_becomes_arrears_paid_first_from_its_next_top_up() -> None:
    """Cat has 40, of which 30 are locked by a buy order for a later slot; she imports
    2,000 Wh (60 + 12 = 72 due). She pays her free 10; 62 are arrears; a top-up of 100 pays
    them first."""
    market = community(credits={"cat": 40})
    assert market.place(CAT, "buy", 1_000, 25, slot=SLOT + SLOT_MS)[0] == "ok"
    assert market.locked(CAT) == 30  # 1,000 Wh x (25 + 5)
    metered(market, "cat", import_wh=2_000)
    assert market.settle(at=DUE) == "ok"

    cat = residual(market, CAT)
    assert (cat["import_cost"], cat["import_fee"]) == (60, 12)
    assert (cat["arrears_paid"], cat["arrears_added"], cat["arrears"]) == (0, 62, 62)
    assert (market.balance(CAT), market.locked(CAT)) == (30, 30)  # the margin stays covered
    assert market_schema.arrears(market.state, CAT.address) == 62
    assert market.balance(OPERATOR) == 10

    assert market.send(OPERATOR, "credit.issue", to=CAT.address, amount=100) == "ok"
    assert market.emitted("market.arrears_paid") == [
        {"account": CAT.address, "paid": 62, "arrears": 0, "tx": market.blocks[-1][1][0].id}
    ]
    assert (market.balance(CAT), market.free(CAT)) == (68, 38)
    assert market_schema.arrears_key(CAT.address) not in market.state.keys("market/arrears/")
    assert market.balance(OPERATOR) == 72
    assert_conserved(market)


def test_arrears_are_paid_first_from_what_a_later_slot_brings_in() -> None:
    market = community(credits={"cat": 0})
    metered(market, "cat", import_wh=300)  # 9 + 1 due, nothing to pay with
    assert market.settle(at=DUE) == "ok"
    assert market_schema.arrears(market.state, CAT.address) == 10

    later = SLOT + SLOT_MS
    body = batch(*(reading(later + i * STEP, 1_000) for i in range(3)))  # 3,000 Wh out: 24
    assert market.relay("cat-main", CAT_METER, body, at=later + SLOT_MS) == "ok"
    assert market.settle(slot=later, at=later + SLOT_MS + 900_000) == "ok"
    (_, second) = market.emitted("market.residual_settled")
    assert (second["feed_in_paid"], second["arrears_paid"], second["arrears"]) == (24, 10, 0)
    assert market.balance(CAT) == 14
    assert_conserved(market)


def test_the_supplier_issues_the_feed_in_its_balance_does_not_cover() -> None:
    market = community()
    metered(market, "ada", export_wh=3_000)  # 24 of feed-in; the supplier holds nothing
    supply = market.state.get("ledger/supply")
    assert market.settle(at=DUE) == "ok"
    assert market.settlement()["residual"]["issued"] == 24  # type: ignore[index]
    assert market.state.get("ledger/supply") == supply + 24
    assert (market.balance(ADA), market.balance(OPERATOR)) == (CREDITS + 24, 0)
    assert_conserved(market)


def test_without_a_tariff_a_slot_settles_p2p_only_and_still_closes() -> None:
    market = community(tariff=False)
    metered(market, "ben", import_wh=900)
    assert market.settle(at=DUE) == "ok"
    assert market.settlement()["residual"] is None  # type: ignore[index]
    assert market.emitted("market.residual_settled") == []
    assert market.balance(BEN) == CREDITS
    assert not meters_schema.slot_has_readings(market.state, SLOT)
    assert market.settle(at=DUE + 1_000) == "nothing_to_settle"


def test_a_slot_with_readings_and_no_contract_is_due_only_after_its_delay() -> None:
    market = community()
    metered(market, "ben", import_wh=900)
    assert market.settle(at=DUE - 1_000) == "settlement_not_due"
    assert market.settle(at=DUE) == "ok"
    assert market.balance(BEN) == CREDITS - 27 - 5  # 900 Wh x 30 and x 6 / 1,000
    # Every household counted once, whatever its meters: the index leaves the state.
    assert list(market.state.keys("meter/inslot/")) == []


# --- money is conserved, whatever happens ------------------------------------------------------


readings_of = st.integers(min_value=0, max_value=3_000)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    credits=st.lists(st.integers(min_value=0, max_value=300), min_size=4, max_size=4),
    flows=st.lists(st.tuples(readings_of, readings_of), min_size=4, max_size=4),
    trades=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=1, max_value=4_000),
            st.integers(min_value=1, max_value=60),
        ),
        max_size=4,
    ),
    retail=st.integers(min_value=0, max_value=80),
    feed_in=st.integers(min_value=0, max_value=40),
    fee=st.integers(min_value=0, max_value=20),
    top_up=st.integers(min_value=1, max_value=200),
)
def test_money_is_conserved_and_no_balance_goes_negative(
    credits: list[int],
    flows: list[tuple[int, int]],
    trades: list[tuple[int, int, int, int]],
    retail: int,
    feed_in: int,
    fee: int,
    top_up: int,
) -> None:
    people = [(ADA, ADA_METER), (BEN, BEN_METER), (CAT, CAT_METER), (DAN, DAN_METER)]
    market = Market(network_fee=5)
    for (who, device), amount in zip(people, credits, strict=True):
        market.household(who, credits=amount)
        assert market.meter(who, device, who.address[-8:].lower()) == "ok"
    band = {"from_minute": 0, "retail": retail, "feed_in": feed_in, "network_fee": fee}
    assert market.send(OPERATOR, "market.tariff.publish", from_slot=SLOT, bands=[band]) == "ok"
    for seller, buyer, energy, price in trades:
        if seller != buyer:  # an order may be refused (no money for its margin): that is fine
            market.place(people[seller][0], "sell", energy, price)
            market.place(people[buyer][0], "buy", energy, price)
    cleared = market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT)
    assert cleared in ("ok", "nothing_to_clear")
    for (who, device), (exported, imported) in zip(people, flows, strict=True):
        body = batch(reading(SLOT, exported, import_wh=imported))
        assert market.relay(who.address[-8:].lower(), device, body, at=SLOT + SLOT_MS) == "ok"
    before = market.state.get("ledger/supply")
    assert market.settle(at=DUE) == "ok"

    results = market.emitted("market.residual_settled")
    summary = market.settlement()
    assert summary is not None
    assert summary["residual"] is not None
    assert market.state.get("ledger/supply") == before + summary["residual"]["issued"]
    for data in results:
        assert data["grid_import_wh"] >= 0
        assert data["grid_export_wh"] >= 0
        due = data["import_cost"] + data["import_fee"]
        assert data["arrears_added"] <= due
        assert data["arrears"] == market_schema.arrears(market.state, data["account"])
    assert_conserved(market)

    for who, _ in people:
        owed = market_schema.arrears(market.state, who.address)
        balance, free = market.balance(who), market.free(who)
        assert market.send(OPERATOR, "credit.issue", to=who.address, amount=top_up) == "ok"
        paid = min(owed, free + top_up)  # the arrears first, as far as the money goes
        assert market_schema.arrears(market.state, who.address) == owed - paid
        assert market.balance(who) == balance + top_up - paid
    assert_conserved(market)


@pytest.mark.parametrize("name", ["ada", "ben"])
def test_a_household_counts_once_however_many_batches_its_meter_sends(name: str) -> None:
    market = community()
    who, device = METERS[name]
    for i in range(3):  # three batches, one reading each
        body = batch(reading(SLOT + i * STEP, 100, import_wh=200))
        assert market.relay(f"{name}-main", device, body, at=SLOT + SLOT_MS + i * 1_000) == "ok"
    assert meters_schema.slot_meters(market.state, SLOT) == [f"{name}-main"]
    assert market.settle(at=DUE) == "ok"
    found = residual(market, who)
    assert (found["import_wh"], found["export_wh"]) == (600, 300)
