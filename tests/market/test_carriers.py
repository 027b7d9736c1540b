"""Carriers (``market.chain.options``, "Carriers"): heat beside electricity, with real signed
transactions on a pure State. The worked example is docs/market.md's, "Heat: a worked example".

Electricity and heat have separate books, contracts, meters and grid limits: an electricity order
never matches a heat order, a heat contract is delivered by heat meters only, a heat segment's
limit tailors heat matches and never electricity's, and a heat segment's suspension stops heat.
Each has its own tariff and its own residual with the supplier of last resort: docs/market.md,
"Heat with the supplier: a worked example".
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
    DAN_METER,
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
    assert market.contracts() == []
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
    assert made["network_fee"] == 3
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
    assert summary["contracts"] == 0
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


# --- the supplier of last resort, per carrier ---------------------------------------------------

HEAT_BAND = {"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}
POWER_BAND = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 5}


def publish_tariff(market: Market, band: dict[str, int], carrier: str = "heat") -> str:
    payload: dict[str, Any] = {"from_slot": SLOT, "bands": [band]}
    if carrier != "electricity":
        payload["carrier"] = carrier
    return market.send(OPERATOR, "market.tariff.publish", **payload)


def test_a_heat_tariff_is_kept_under_its_own_key(market: Market) -> None:
    assert publish_tariff(market, POWER_BAND, carrier="electricity") == "ok"
    assert publish_tariff(market, HEAT_BAND) == "ok"
    (power,) = market.state.get("market/tariffs")
    (heat,) = market.state.get("market/tariffs/heat")
    assert "carrier" not in power
    assert power["bands"] == [POWER_BAND]
    assert heat["carrier"] == "heat"
    assert heat["bands"] == [HEAT_BAND]
    published = market.emitted("market.tariff_published")
    assert [event.get("carrier") for event in published] == [None, "heat"]


def test_a_heat_tariff_is_refused_where_the_market_does_not_trade_heat() -> None:
    market = Market()
    assert publish_tariff(market, HEAT_BAND) == "bad_carrier"
    assert publish_tariff(market, HEAT_BAND, carrier="gas") == "bad_carrier"
    assert market.state.get("market/tariffs/heat") is None
    assert market.state.get("market/tariffs/gas") is None
    assert publish_tariff(market, POWER_BAND, carrier="electricity") == "ok"


def heat_slot(market: Market) -> None:
    """Ada sells Ben 2,000 Wh thermal at 12; her heat meter feeds in 2,600 Wh and her
    electricity meter 2,700 Wh; Ben's heat meter draws 3,450 Wh."""
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", feeder="loop-a") == "ok"
    assert market.meter(ADA, ADA_PV, "ada-main") == "ok"  # electricity
    assert market.meter(BEN, DAN_METER, "ben-heat", kind="heat", feeder="loop-a") == "ok"
    assert place(market, ADA, "sell", 2_000, 12)[0] == "ok"
    assert place(market, BEN, "buy", 2_000, 12)[0] == "ok"
    heat = batch(*(reading(SLOT + i * STEP, e) for i, e in enumerate((1_000, 900, 700))))
    power = batch(*(reading(SLOT + i * STEP, 900) for i in range(3)))
    drawn = batch(*(reading(SLOT + i * STEP, 0, import_wh=1_150) for i in range(3)))
    assert market.relay("ada-heat", ADA_METER, heat, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ada-main", ADA_PV, power, at=SLOT + SLOT_MS + 1_000) == "ok"
    assert market.relay("ben-heat", DAN_METER, drawn, at=SLOT + SLOT_MS + 2_000) == "ok"


def test_a_heat_slot_settles_its_residual_by_the_worked_example(market: Market) -> None:
    """docs/market.md, "Heat with the supplier: a worked example"."""
    assert publish_tariff(market, HEAT_BAND) == "ok"
    heat_slot(market)
    assert market.settle() == "ok"
    ada, ben = market.emitted("market.residual_settled")  # in the order of their addresses
    if ada["account"] != ADA.address:
        ada, ben = ben, ada
    common = {"slot": SLOT, "carrier": "heat", "retail": 10, "feed_in": 4, "network_fee": 2}
    assert ada == common | {
        "account": ADA.address,
        "import_wh": 0,
        "export_wh": 2_600,  # the heat meter's; the electricity meter's 2,700 never counts
        "p2p_in_wh": 0,
        "p2p_out_wh": 2_000,
        "grid_import_wh": 0,
        "grid_export_wh": 600,
        "import_cost": 0,
        "import_fee": 0,
        "feed_in_paid": 2,  # 600 Wh x 4, rounded down
        "arrears_paid": 0,
        "arrears_added": 0,
        "arrears": 0,
    }
    assert ben == common | {
        "account": BEN.address,
        "import_wh": 3_450,
        "export_wh": 0,
        "p2p_in_wh": 2_000,
        "p2p_out_wh": 0,
        "grid_import_wh": 1_450,
        "grid_export_wh": 0,
        "import_cost": 14,  # 1,450 Wh x 10 = 14.5, rounded down
        "import_fee": 2,  # 1,450 Wh x 2 = 2.9, rounded down
        "feed_in_paid": 0,
        "arrears_paid": 0,
        "arrears_added": 0,
        "arrears": 0,
    }
    summary = market.settlement()
    assert summary is not None
    assert summary["residual"] is None  # no electricity tariff: electricity runs P2P only
    assert summary["heat"]["paid"] == 24
    assert summary["heat"]["fees"] == 6
    assert summary["heat"]["residual"] == {
        "households": 2,
        "grid_import_wh": 1_450,
        "grid_export_wh": 600,
        "import_cost": 14,
        "import_fee": 2,
        "feed_in_paid": 2,
        "arrears_paid": 0,
        "arrears_added": 0,
        "issued": 0,
    }
    assert market.balance(ADA) == CREDITS + 24 + 2
    assert market.balance(BEN) == CREDITS - 24 - 6 - 14 - 2
    assert market.balance(OPERATOR) == 6 + 14 + 2 - 2
    assert market.replay().root() == market.state.root()


def test_without_a_heat_tariff_heat_settles_nothing_with_the_supplier(market: Market) -> None:
    assert publish_tariff(market, POWER_BAND, carrier="electricity") == "ok"
    heat_slot(market)
    assert market.settle() == "ok"
    (power,) = market.emitted("market.residual_settled")  # Ada's electricity only
    assert "carrier" not in power
    assert (power["account"], power["export_wh"], power["grid_export_wh"]) == (
        ADA.address,
        2_700,
        2_700,
    )
    assert power["feed_in_paid"] == 21  # 2,700 Wh x 8 = 21.6, rounded down
    summary = market.settlement()
    assert summary is not None
    assert summary["residual"]["households"] == 1
    assert "residual" not in summary["heat"]
    assert market.balance(BEN) == CREDITS - 24 - 6


def test_electricity_settles_the_same_beside_a_heat_tariff() -> None:
    """Electricity's residual events, totals and balances are the same with and without a
    heat tariff; only heat's are added."""
    outcomes = []
    for with_heat in (False, True):
        market = heat_market()
        assert publish_tariff(market, POWER_BAND, carrier="electricity") == "ok"
        if with_heat:
            assert publish_tariff(market, HEAT_BAND) == "ok"
        heat_slot(market)
        assert market.settle() == "ok"
        power = [e for e in market.emitted("market.residual_settled") if "carrier" not in e]
        summary = market.settlement()
        assert summary is not None
        outcomes.append((power, summary["residual"], market.state.get("market/tariffs")))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0]


def test_heat_arrears_are_one_debt_with_electricitys() -> None:
    """Ben has 5: electricity's residual takes them and leaves 30 owed; heat's finds nothing
    to pay with and adds its 24; his balance never goes below zero."""
    market = Market(**HEAT_OPTIONS)
    market.household(BEN, credits=5)
    assign = {"address": BEN.address, "feeder": "loop-a", "carrier": "heat"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "ok"
    assert publish_tariff(market, POWER_BAND, carrier="electricity") == "ok"
    assert publish_tariff(market, HEAT_BAND) == "ok"
    assert market.meter(BEN, BEN_METER, "ben-main") == "ok"
    assert market.meter(BEN, ADA_METER, "ben-heat", kind="heat", feeder="loop-a") == "ok"
    power = batch(reading(SLOT, 0, import_wh=1_000))  # 30 + 5 to pay: 5 paid, 30 owed
    heat = batch(reading(SLOT, 0, import_wh=2_000))  # 20 + 4 to pay: all owed
    assert market.relay("ben-main", BEN_METER, power, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ben-heat", ADA_METER, heat, at=SLOT + SLOT_MS + 1_000) == "ok"
    assert market.settle() == "ok"
    power_line, heat_line = market.emitted("market.residual_settled")
    assert "carrier" not in power_line
    assert heat_line["carrier"] == "heat"
    assert (power_line["arrears_added"], power_line["arrears"]) == (30, 30)
    assert (heat_line["arrears_added"], heat_line["arrears"]) == (24, 54)
    assert market.balance(BEN) == 0
    assert market.state.get(market_schema.arrears_key(BEN.address)) == 54


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
    drawn_wh=st.integers(0, 200_000),
    tariffs=st.lists(
        st.tuples(
            st.sampled_from(["heat", "electricity"]),
            st.integers(0, 2_000),
            st.integers(0, 2_000),
            st.integers(0, 500),
        ),
        max_size=2,
    ),
)
def test_money_is_conserved_across_carriers(
    trades: list[tuple[str, int, int, int]],
    heat_wh: int,
    power_wh: int,
    drawn_wh: int,
    tariffs: list[tuple[str, int, int, int]],
) -> None:
    """With or without each carrier's tariff, and whatever the residuals buy, sell and leave
    owed, every credit is in a balance and the supply changes by what the supplier issued."""
    market = heat_market()
    for carrier, retail, feed_in, fee in tariffs:
        band = {"from_minute": 0, "retail": retail, "feed_in": feed_in, "network_fee": fee}
        assert publish_tariff(market, band, carrier=carrier) == "ok"
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", feeder="loop-a") == "ok"
    assert market.meter(BEN, BEN_METER, "ben-main") == "ok"
    assert market.meter(BEN, DAN_METER, "ben-heat", kind="heat", feeder="loop-a") == "ok"
    for carrier, energy, price, markup in trades:
        place(market, ADA, "sell", energy, price, carrier=carrier)
        place(market, BEN, "buy", energy, price + markup, carrier=carrier)
    market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT)
    heat = batch(reading(SLOT, heat_wh))
    power = batch(reading(SLOT, 0, import_wh=power_wh))
    assert market.relay("ada-heat", ADA_METER, heat, at=SLOT + SLOT_MS) == "ok"
    assert market.relay("ben-main", BEN_METER, power, at=SLOT + SLOT_MS + 1_000) == "ok"
    drawn = batch(reading(SLOT, 0, import_wh=drawn_wh))  # may be more than Ben can pay
    assert market.relay("ben-heat", DAN_METER, drawn, at=SLOT + SLOT_MS + 2_000) == "ok"
    assert market.settle() == "ok"
    summary = market.settlement()
    assert summary is not None
    residuals = [summary["residual"], summary.get("heat", {}).get("residual")]
    issued = sum(residual["issued"] for residual in residuals if residual)
    state = market.state
    supply = state.get("ledger/supply")
    assert sum(state.get(key) for key in state.keys("bal/")) == supply == 3 * CREDITS + issued
    assert all(state.get(key) >= 0 for key in state.keys("bal/"))
    owed = sum(line["arrears_added"] for line in market.emitted("market.residual_settled"))
    assert sum(state.get(key) for key in state.keys("market/arrears/")) == owed
    assert not list(state.keys("market/locked/"))
    assert state.get(market_schema.contracts_key(SLOT, "heat")) is None
    assert market.replay().root() == state.root()
