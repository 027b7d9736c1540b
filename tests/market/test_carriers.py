"""Carriers (``market.chain.options``, "Carriers"): heat beside electricity, with real signed
transactions on a pure State. The worked example is docs/market.md's, "Heat: a worked example".

Electricity and heat have separate books, contracts, meters and grid limits: an electricity order
never matches a heat order, a heat contract is delivered by heat meters only, a heat segment's
limit tailors heat matches and never electricity's, and a heat segment's suspension stops heat.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.identity import KeyPair
from market.chain import schema as market_schema
from tests.market.support import (
    ADA,
    ADA_METER,
    ADA_PV,
    BEN,
    BEN_METER,
    CAT,
    INTERVAL_S,
    OPERATOR,
    REGULATOR,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    reading,
)

STEP = INTERVAL_S * 1_000
CREDITS = 100_000
HEAT_OPTIONS = {
    "heat": 1,
    "heat.network_fee": 3,
    "heat.deposit_bps": 5_000,
    "heat.penalty_bps": 5_000,
    "heat.price_max": 1_000,
}


def heat_market(**extra: int) -> Market:
    """Ada and Ben on electricity feeder f1 and heat segment loop-a; Cat on f1 only."""
    market = Market(network_fee=5, **HEAT_OPTIONS, **extra)
    for who in (ADA, BEN, CAT):
        market.household(who, credits=CREDITS)
    for who in (ADA, BEN):
        assign = {"address": who.address, "feeder": "loop-a", "carrier": "heat"}
        assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "ok"
    return market


@pytest.fixture
def market() -> Market:
    return heat_market()


def place(
    market: Market, who: KeyPair, side: str, energy_wh: int, price: int, carrier: str = "heat"
) -> tuple[str, str]:
    payload: dict[str, Any] = {"slot": SLOT, "side": side, "energy_wh": energy_wh, "price": price}
    if carrier != "electricity":
        payload["carrier"] = carrier
    tx = market.tx(who, "market.order.place", **payload)
    return market.run(tx)[0], tx.id


def heat_contracts(market: Market) -> list[dict[str, Any]]:
    count = market.state.get(market_schema.contracts_key(SLOT, "heat"), 0)
    return [market.contract(market_schema.contract_id(SLOT, n, "heat")) for n in range(count)]


# --- books and matching --------------------------------------------------------------------------


def test_an_electricity_order_never_matches_a_heat_order(market: Market) -> None:
    assert place(market, ADA, "sell", 3_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 3_000, 40, carrier="electricity")[0] == "ok"
    assert market.contracts() == []  # both rest, apart
    assert heat_contracts(market) == []
    assert market.state.get(market_schema.open_key(SLOT, ADA.address, "heat")) is not None
    assert market.state.get(market_schema.open_key(SLOT, BEN.address)) is not None

    assert place(market, BEN, "buy", 3_000, 14)[0] == "ok"  # Ben's heat bid meets Ada's heat ask
    (made,) = heat_contracts(market)
    assert made["id"] == f"heat-{SLOT}-0"
    assert made["carrier"] == "heat"
    assert (made["seller"], made["buyer"], made["energy_wh"], made["price"]) == (
        ADA.address,
        BEN.address,
        3_000,
        12,
    )
    assert made["network_fee"] == 3  # heat's own, not 5
    assert made["penalty_bps"] == 5_000
    assert market.contracts() == []  # electricity's book made nothing
    placed = market.emitted("market.order_placed")
    assert [event.get("carrier", "electricity") for event in placed] == [
        "heat",
        "electricity",
        "heat",
    ]


def test_an_electricity_record_carries_no_carrier_and_keeps_its_keys() -> None:
    market = heat_market()
    result, order_id = place(market, CAT, "sell", 1_000, 20, carrier="electricity")
    assert result == "ok"
    order = market.order(order_id)
    assert order is not None
    assert "carrier" not in order
    assert market.state.get(f"market/open/{SLOT}/{CAT.address}") == {"side": "sell", "count": 1}


def test_carriers_are_refused_where_the_market_does_not_trade_them() -> None:
    plain = Market()
    plain.household(ADA, credits=CREDITS)
    assert place(plain, ADA, "sell", 1_000, 12)[0] == "bad_carrier"  # no market.heat
    market = heat_market()
    assert place(market, ADA, "sell", 1_000, 12, carrier="gas")[0] == "bad_carrier"
    offer = {"slot": SLOT, "energy_wh": 100, "price": 12, "buyer": "", "carrier": 7}
    assert market.send(ADA, "market.offer.post", **offer) == "bad_carrier"
    assert market.locked(ADA) == 0


def test_heat_has_its_own_bounds(market: Market) -> None:
    assert place(market, ADA, "sell", 1_000, 5_000)[0] == "price_out_of_bounds"  # heat: <= 1,000
    assert place(market, ADA, "sell", 1_000, 5_000, carrier="electricity")[0] == "ok"


def test_a_household_without_a_heat_segment_cannot_trade_heat(market: Market) -> None:
    assert place(market, CAT, "buy", 1_000, 12)[0] == "no_feeder"
    assert place(market, CAT, "buy", 1_000, 12, carrier="electricity")[0] == "ok"


def test_a_heat_offer_is_taken_in_heat_only(market: Market) -> None:
    offer = {"slot": SLOT, "energy_wh": 2_000, "price": 11, "buyer": "", "carrier": "heat"}
    tx = market.tx(ADA, "market.offer.post", **offer)
    assert market.run(tx) == ["ok"]
    assert market.state.get(market_schema.offers_key(SLOT, "heat")) is not None
    assert market.state.get(market_schema.offers_key(SLOT)) is None
    assert market.send(BEN, "market.offer.accept", offer=tx.id, energy_wh=500) == "ok"
    (made,) = heat_contracts(market)
    assert (made["kind"], made["energy_wh"], made["carrier"]) == ("offer", 500, "heat")
    # Cat has no heat segment: the qualification audit is heat's.
    assert market.send(CAT, "market.offer.accept", offer=tx.id, energy_wh=500) == "no_feeder"


# --- the heating network -------------------------------------------------------------------------


def publish_segment(market: Market, name: str, export_w: int, import_w: int) -> str:
    payload = {"feeder": name, "export_limit_w": export_w, "import_limit_w": import_w}
    return market.send(OPERATOR, "grid.feeder.publish", carrier="heat", **payload)


def test_a_heat_match_across_a_constrained_segment_is_tailored(market: Market) -> None:
    # 4 kW thermal out of loop-a: 1,000 Wh in a 15-minute slot.
    assert publish_segment(market, "loop-a", 4_000, 100_000) == "ok"
    assert market.state.get("grid/topology/loop-a")["carrier"] == "heat"
    assert place(market, ADA, "sell", 3_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 3_000, 14)[0] == "ok"
    (made,) = heat_contracts(market)
    assert made["energy_wh"] == 1_000
    assert made["grid"] == {"requested_wh": 3_000, "constraint": "export:loop-a", "cut_wh": 2_000}
    assert made["feeders"] == {"export": "loop-a", "import": "loop-a"}
    assert market.state.get(f"grid/load/{SLOT}/loop-a") == {"export_wh": 1_000, "import_wh": 1_000}
    # Electricity between the same households is not limited by the heat segment.
    assert place(market, ADA, "sell", 3_000, 20, carrier="electricity")[0] == "ok"
    assert place(market, BEN, "buy", 3_000, 20, carrier="electricity")[0] == "ok"
    (power,) = market.contracts()
    assert power["energy_wh"] == 3_000
    assert "grid" not in power


def test_an_electric_feeders_limit_never_binds_heat(market: Market) -> None:
    publish = {"feeder": "f1", "export_limit_w": 0, "import_limit_w": 0}
    assert market.send(OPERATOR, "grid.feeder.publish", **publish) == "ok"
    assert place(market, ADA, "sell", 3_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 3_000, 14)[0] == "ok"
    assert [made["energy_wh"] for made in heat_contracts(market)] == [3_000]


def test_names_are_one_networks_only(market: Market) -> None:
    publish = {"feeder": "f1", "export_limit_w": 10, "import_limit_w": 10}
    assert market.send(OPERATOR, "grid.feeder.publish", **publish) == "ok"
    assign = {"address": CAT.address, "feeder": "f1", "carrier": "heat"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "carrier_mismatch"
    assert publish_segment(market, "f1", 10, 10) == "carrier_mismatch"
    assign = {"address": CAT.address, "feeder": "loop-a", "carrier": "gas"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "bad_carrier"


def test_suspending_a_heat_segment_stops_heat_only(market: Market) -> None:
    assert publish_segment(market, "loop-a", 100_000, 100_000) == "ok"
    suspend = {"scope": "feeder:loop-a", "reason": "pump failure", "until": 0}
    assert market.send(REGULATOR, "supervision.trading.suspend", **suspend) == "ok"
    assert place(market, ADA, "sell", 1_000, 12)[0] == "feeder_suspended"
    assert place(market, ADA, "sell", 1_000, 12, carrier="electricity")[0] == "ok"


def test_a_regulator_vetoes_a_heat_contract(market: Market) -> None:
    assert place(market, ADA, "sell", 3_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 3_000, 14)[0] == "ok"
    veto = {"contract": f"heat-{SLOT}-0", "reason": "metering fault on the loop"}
    assert market.send(REGULATOR, "supervision.contract.veto", **veto) == "ok"
    assert market.contract(f"heat-{SLOT}-0")["vetoed"] is True
    assert market.locked(ADA) == 0
    assert market.locked(BEN) == 0


# --- settlement ----------------------------------------------------------------------------------


def test_a_heat_trade_settles_by_the_worked_example(market: Market) -> None:
    """docs/market.md, "Heat: a worked example"."""
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", feeder="loop-a") == "ok"
    assert market.meter(ADA, ADA_PV, "ada-main") == "ok"  # electricity
    assert place(market, ADA, "sell", 3_000, 12)[0] == "ok"
    assert market.locked(ADA) == 18  # deposit: 50 % of 3,000 Wh x 12
    assert place(market, BEN, "buy", 3_000, 14)[0] == "ok"
    assert market.locked(BEN) == 45  # escrow at the contract price: 3,000 Wh x (12 + 3)
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT) == "nothing_to_clear"
    heat = batch(*(reading(SLOT + i * STEP, e) for i, e in enumerate((1_000, 800, 700))))
    power = batch(*(reading(SLOT + i * STEP, 900) for i in range(3)))
    assert market.relay("ada-heat", ADA_METER, heat, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ada-main", ADA_PV, power, at=SLOT + SLOT_MS + 1_000) == "ok"

    assert market.settle() == "ok"
    (settled,) = market.emitted("market.contract_settled")
    assert settled == {
        "slot": SLOT,
        "contract": f"heat-{SLOT}-0",
        "carrier": "heat",
        "seller": ADA.address,
        "buyer": BEN.address,
        "energy_wh": 3_000,
        "export_wh": 2_500,  # the heat meter's; the electricity meter's 2,700 never counts
        "delivered_wh": 2_500,
        "paid": 30,  # 2,500 Wh x 12
        "fee": 7,  # 2,500 Wh x 3, rounded down
        "penalty": 3,  # 50 % of 500 Wh x 12
        "escrow_released": 8,
        "deposit_released": 15,
    }
    summary = market.settlement()
    assert summary is not None
    assert summary["contracts"] == 0  # electricity's own totals
    assert summary["energy_wh"] == 0
    assert summary["heat"] == {
        "contracts": 1,
        "energy_wh": 3_000,
        "delivered_wh": 2_500,
        "paid": 30,
        "fees": 7,
        "penalties": 3,
        "escrow_released": 8,
        "deposit_released": 15,
        "shortfalls": 1,
    }
    assert (market.balance(ADA), market.locked(ADA)) == (CREDITS + 30 - 3, 0)
    assert (market.balance(BEN), market.locked(BEN)) == (CREDITS - 30 - 7 + 3, 0)
    assert market.balance(OPERATOR) == 7
    assert market.state.get(market_schema.contracts_key(SLOT, "heat")) is None
    assert market.state.get(market_schema.defaults_key(ADA.address))["unsettled"] == 1


def test_heat_and_electricity_contracts_of_a_slot_settle_apart(market: Market) -> None:
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", feeder="loop-a") == "ok"
    assert market.meter(ADA, ADA_PV, "ada-main") == "ok"
    assert place(market, ADA, "sell", 2_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 2_000, 12)[0] == "ok"
    assert place(market, ADA, "sell", 2_000, 30, carrier="electricity")[0] == "ok"
    assert place(market, BEN, "buy", 2_000, 30, carrier="electricity")[0] == "ok"
    heat = batch(*(reading(SLOT + i * STEP, 0) for i in range(3)))  # no heat at all
    power = batch(*(reading(SLOT + i * STEP, 1_000) for i in range(3)))
    assert market.relay("ada-heat", ADA_METER, heat, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ada-main", ADA_PV, power, at=SLOT + SLOT_MS + 1_000) == "ok"
    assert market.settle() == "ok"
    delivered = {
        data["contract"]: data["delivered_wh"] for data in market.emitted("market.contract_settled")
    }
    assert delivered == {f"{SLOT}-0": 2_000, f"heat-{SLOT}-0": 0}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    trades=st.lists(
        st.tuples(
            st.sampled_from(["heat", "electricity"]),
            st.integers(1, 3_000),
            st.integers(1, 200),
            st.integers(0, 60),
        ),
        min_size=1,
        max_size=6,
    ),
    heat_wh=st.integers(0, 3_000),
    power_wh=st.integers(0, 3_000),
)
def test_money_is_conserved_across_carriers(
    trades: list[tuple[str, int, int, int]], heat_wh: int, power_wh: int
) -> None:
    market = heat_market()
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", feeder="loop-a") == "ok"
    assert market.meter(BEN, BEN_METER, "ben-main") == "ok"
    for carrier, energy, price, markup in trades:
        place(market, ADA, "sell", energy, price, carrier=carrier)
        place(market, BEN, "buy", energy, price + markup, carrier=carrier)
    market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT)
    heat = batch(reading(SLOT, heat_wh))
    power = batch(reading(SLOT, 0, import_wh=power_wh))
    assert market.relay("ada-heat", ADA_METER, heat, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ben-main", BEN_METER, power, at=SLOT + SLOT_MS + 1_000) == "ok"
    assert market.settle() == "ok"
    state = market.state
    supply = state.get("ledger/supply")
    assert sum(state.get(key) for key in state.keys("bal/")) == supply == 3 * CREDITS
    assert not list(state.keys("market/locked/"))
    assert state.get(market_schema.contracts_key(SLOT, "heat")) is None
    assert market.replay().root() == state.root()
