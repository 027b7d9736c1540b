"""A carrier's own slot length and energy step (``market.chain.options``, "Carriers"):
heat traded in hourly slots beside 15-minute electricity, and heat in whole kWh.

docs/market.md, "Integrated energy": a heat slot is a whole number of market slots, its orders
start on its own boundaries, its segment's capacity is for its length, and it settles with its
last market slot against every meter interval it spans.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.identity import KeyPair
from market.chain import schema as market_schema
from market.chain.options import Options
from tests.market.support import (
    ADA,
    ADA_METER,
    BEN,
    BEN_METER,
    OPERATOR,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    reading,
)

HOUR_MS = 3_600_000
HEAT = SLOT  # an hour boundary (tests.market.support.T0 is midnight)
CREDITS = 100_000
HOURLY = {"heat": 1, "heat.slot_ms": HOUR_MS}


def heat_market(**extra: int) -> Market:
    market = Market(**HOURLY, **extra)
    for who in (ADA, BEN):
        market.household(who, credits=CREDITS)
        assign = {"address": who.address, "feeder": "loop-a", "carrier": "heat"}
        assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "ok"
    return market


@pytest.fixture
def market() -> Market:
    return heat_market()


def place(
    market: Market,
    who: KeyPair,
    side: str,
    energy_wh: int,
    price: int,
    *,
    slot: int = HEAT,
    carrier: str = "heat",
) -> str:
    payload: dict[str, Any] = {"slot": slot, "side": side, "energy_wh": energy_wh, "price": price}
    if carrier != "electricity":
        payload["carrier"] = carrier
    return market.send(who, "market.order.place", **payload)


def heat_contracts(market: Market, slot: int = HEAT) -> list[dict[str, Any]]:
    count = market.state.get(market_schema.contracts_key(slot, "heat"), 0)
    return [market.contract(market_schema.contract_id(slot, n, "heat")) for n in range(count)]


# --- options -------------------------------------------------------------------------------------


def test_it_takes_heats_slot_length_from_genesis_as_whole_market_slots() -> None:
    def heat_slot(**options: int) -> int:
        given = {"market.heat": 1, **{f"market.heat.{k}": v for k, v in options.items()}}
        return Options.from_genesis(given).carrier("heat").slot_ms

    assert heat_slot() == SLOT_MS  # unset: the market's
    assert heat_slot(slot_ms=HOUR_MS) == HOUR_MS
    assert heat_slot(slot_ms=2_000_000) == 1_800_000  # rounded down to whole market slots
    assert heat_slot(slot_ms=100) == SLOT_MS  # at least one
    assert heat_slot(slot_ms=-5) == SLOT_MS
    options = Options.from_genesis({"market.heat": 1, "market.heat.slot_ms": HOUR_MS})
    assert options.slot_ms == SLOT_MS  # electricity's is the market's
    assert options.ending_with(HEAT) == (("electricity", HEAT, SLOT_MS),)
    assert options.ending_with(HEAT + 3 * SLOT_MS) == (
        ("electricity", HEAT + 3 * SLOT_MS, SLOT_MS),
        ("heat", HEAT, HOUR_MS),
    )


# --- trading -------------------------------------------------------------------------------------


def test_a_heat_order_off_the_hour_is_refused_slot_misaligned(market: Market) -> None:
    assert place(market, ADA, "sell", 1_000, 12, slot=HEAT + SLOT_MS) == "slot_misaligned"
    assert place(market, ADA, "sell", 1_000, 12, slot=HEAT + 2 * SLOT_MS) == "slot_misaligned"
    assert market.locked(ADA) == 0
    assert place(market, ADA, "sell", 1_000, 12) == "ok"
    # Electricity keeps its 15-minute slots.
    assert place(market, ADA, "sell", 1_000, 20, slot=HEAT + SLOT_MS, carrier="electricity") == "ok"


def test_a_heat_offer_off_the_hour_is_refused_slot_misaligned(market: Market) -> None:
    offer = {"energy_wh": 1_000, "price": 12, "buyer": "", "carrier": "heat"}
    assert market.send(ADA, "market.offer.post", slot=HEAT + SLOT_MS, **offer) == "slot_misaligned"
    assert market.send(ADA, "market.offer.post", slot=HEAT, **offer) == "ok"


def test_a_heat_segment_carries_an_hours_worth_in_an_hourly_slot(market: Market) -> None:
    publish = {"feeder": "loop-a", "export_limit_w": 4_000, "import_limit_w": 100_000}
    assert market.send(OPERATOR, "grid.feeder.publish", carrier="heat", **publish) == "ok"
    assert place(market, ADA, "sell", 5_000, 12) == "ok"
    assert place(market, BEN, "buy", 5_000, 14) == "ok"
    (made,) = heat_contracts(market)
    assert made["energy_wh"] == 4_000  # 4 kW for an hour; a 15-minute slot would carry 1,000
    assert made["grid"] == {"requested_wh": 5_000, "constraint": "export:loop-a", "cut_wh": 1_000}


def test_clearing_a_quarter_that_is_not_a_heat_slot_leaves_heat_alone(market: Market) -> None:
    assert place(market, ADA, "sell", 1_000, 12) == "ok"  # rests in heat's hour
    assert place(market, ADA, "sell", 1_000, 20, slot=HEAT + SLOT_MS, carrier="electricity") == "ok"
    gate = HEAT + SLOT_MS - 300_000
    assert market.send(OPERATOR, "market.slot.clear", slot=HEAT + SLOT_MS, at=gate) == "ok"
    assert market.state.get(market_schema.open_key(HEAT, ADA.address, "heat")) is not None
    closed = market.emitted("market.order_closed")
    assert [event.get("carrier", "electricity") for event in closed] == ["electricity"]
    assert market.send(OPERATOR, "market.slot.clear", slot=HEAT) == "ok"
    assert market.state.get(market_schema.open_key(HEAT, ADA.address, "heat")) is None


# --- settlement ----------------------------------------------------------------------------------


def test_an_hourly_heat_contract_settles_against_four_meter_intervals(market: Market) -> None:
    # Ada's heat meter reads every 15 minutes: four intervals in the heat slot.
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", interval_s=900) == "ok"
    assert place(market, ADA, "sell", 3_000, 12) == "ok"
    assert place(market, BEN, "buy", 3_000, 12) == "ok"
    exports = (1_000, 800, 700, 400)
    delay = SLOT_MS  # market.settlement_delay_ms's default
    for quarter, export in enumerate(exports):
        start = HEAT + quarter * SLOT_MS
        # Each quarter's reading arrives as it ends, and the beat settles each quarter when due.
        body = batch(reading(start, export, duration_s=900))
        assert market.relay("ada-heat", ADA_METER, body, at=start + SLOT_MS + 1_000) == "ok"
        assert market.settle(slot=start, at=start + SLOT_MS + delay) == "ok"
        settled = market.emitted("market.contract_settled")
        if quarter < 3:  # the hour has not ended: heat waits, its readings kept
            assert settled == []
            assert heat_contracts(market) != []
    (settled,) = market.emitted("market.contract_settled")
    assert settled["slot"] == HEAT
    assert settled["contract"] == f"heat-{HEAT}-0"
    assert settled["export_wh"] == sum(exports) == 2_900
    assert (settled["delivered_wh"], settled["paid"]) == (2_900, 34)  # 2,900 Wh x 12, down
    summary = market.settlement(HEAT + 3 * SLOT_MS)
    assert summary is not None
    assert summary["heat"]["slot"] == HEAT
    assert summary["heat"]["delivered_wh"] == 2_900
    assert market.state.get(market_schema.contracts_key(HEAT, "heat")) is None
    assert market.locked(ADA) == market.locked(BEN) == 0
    assert market.replay().root() == market.state.root()


def test_an_hourly_heat_slot_settles_its_residual_over_the_hour(market: Market) -> None:
    """With a heat tariff in force, heat's residual waits for the hour and takes every household
    whose heat meters read in any of its quarters: Ben's meter read in the first one only, whose
    own index left the state when that quarter settled."""
    band = {"from_minute": 0, "retail": 10, "feed_in": 4, "network_fee": 2}
    tariff = {"from_slot": HEAT, "carrier": "heat", "bands": [band]}
    assert market.send(OPERATOR, "market.tariff.publish", **tariff) == "ok"
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", interval_s=900) == "ok"
    assert market.meter(BEN, BEN_METER, "ben-heat", kind="heat", interval_s=900) == "ok"
    assert place(market, ADA, "sell", 2_000, 12) == "ok"
    assert place(market, BEN, "buy", 2_000, 12) == "ok"
    delay = SLOT_MS  # market.settlement_delay_ms's default
    for quarter, export in enumerate((1_000, 800, 700, 400)):
        start = HEAT + quarter * SLOT_MS
        read = start + SLOT_MS + 1_000
        body = batch(reading(start, export, duration_s=900))
        assert market.relay("ada-heat", ADA_METER, body, at=read) == "ok"
        if quarter == 0:  # Ben's heat meter reads once: 3,000 Wh drawn in the first quarter
            drawn = batch(reading(start, 0, import_wh=3_000, duration_s=900))
            assert market.relay("ben-heat", BEN_METER, drawn, at=read + 1) == "ok"
        assert market.settle(slot=start, at=start + SLOT_MS + delay) == "ok"
        if quarter < 3:  # the hour goes on: no heat residual yet
            assert market.emitted("market.residual_settled") == []
    kept = f"market/residual-meters/heat/{HEAT}"
    ada, ben = sorted(
        market.emitted("market.residual_settled"), key=lambda r: r["account"] != ADA.address
    )
    assert (ada["account"], ben["account"]) == (ADA.address, BEN.address)
    assert ada["slot"] == ben["slot"] == HEAT
    assert ada["carrier"] == ben["carrier"] == "heat"
    # Ada fed in 2,900 over the hour and sold 2,000: 900 to the supplier at 4, rounded down.
    assert (ada["export_wh"], ada["grid_export_wh"], ada["feed_in_paid"]) == (2_900, 900, 3)
    # Ben drew 3,000 and bought 2,000: 1,000 from the supplier at 10, fee 2.
    assert (ben["import_wh"], ben["grid_import_wh"]) == (3_000, 1_000)
    assert (ben["import_cost"], ben["import_fee"]) == (10, 2)
    summary = market.settlement(HEAT + 3 * SLOT_MS)
    assert summary is not None
    assert summary["heat"]["residual"]["households"] == 2
    assert market.state.get(kept) is None  # taken by the hour's settlement
    assert market.replay().root() == market.state.root()


def test_a_heat_slot_is_not_settled_before_its_hour_ends(market: Market) -> None:
    assert place(market, ADA, "sell", 3_000, 12) == "ok"
    assert place(market, BEN, "buy", 3_000, 12) == "ok"
    # Settling the hour's first quarter is electricity's business: nothing of it to settle.
    assert market.settle(slot=HEAT) == "nothing_to_settle"
    assert market.settle(slot=HEAT + 3 * SLOT_MS) == "ok"
    assert [data["slot"] for data in market.emitted("market.contract_settled")] == [HEAT]


def test_electricity_is_unchanged_beside_hourly_heat(market: Market) -> None:
    plain = Market()
    for m in (market, plain):
        if m is plain:
            for who in (ADA, BEN):
                m.household(who, credits=CREDITS)
        assert place(m, ADA, "sell", 1_000, 20, slot=HEAT + SLOT_MS, carrier="electricity") == "ok"
        assert place(m, BEN, "buy", 1_000, 20, slot=HEAT + SLOT_MS, carrier="electricity") == "ok"
    terms = ("id", "kind", "slot", "energy_wh", "price", "escrow", "deposit", "penalty_bps")
    made = [{name: c[name] for name in terms} for c in market.contracts(HEAT + SLOT_MS)]
    assert made == [{name: c[name] for name in terms} for c in plain.contracts(HEAT + SLOT_MS)]
    assert made[0]["id"] == f"{HEAT + SLOT_MS}-0"


# --- the energy step -----------------------------------------------------------------------------


def test_heat_in_whole_kwh_refuses_other_energies(market: Market) -> None:
    kwh = heat_market(**{"heat.energy_step_wh": 1_000})
    assert place(kwh, ADA, "sell", 1_500, 12) == "energy_not_in_steps"
    assert kwh.locked(ADA) == 0
    assert place(kwh, ADA, "sell", 2_000, 12) == "ok"
    assert place(kwh, ADA, "sell", 1_500, 20, carrier="electricity") == "ok"  # electricity: 1 Wh
    offer = {"slot": HEAT, "energy_wh": 2_500, "price": 12, "buyer": "", "carrier": "heat"}
    assert kwh.send(ADA, "market.offer.post", **offer) == "energy_not_in_steps"
    tx = kwh.tx(ADA, "market.offer.post", **(offer | {"energy_wh": 3_000}))
    assert kwh.run(tx) == ["ok"]
    assert kwh.send(BEN, "market.offer.accept", offer=tx.id, energy_wh=500) == "energy_not_in_steps"
    assert kwh.send(BEN, "market.offer.accept", offer=tx.id, energy_wh=1_000) == "ok"


def test_a_tailored_heat_match_is_rounded_down_to_whole_steps() -> None:
    kwh = heat_market(**{"heat.energy_step_wh": 1_000})
    publish = {"feeder": "loop-a", "export_limit_w": 3_500, "import_limit_w": 100_000}
    assert kwh.send(OPERATOR, "grid.feeder.publish", carrier="heat", **publish) == "ok"
    assert place(kwh, ADA, "sell", 5_000, 12) == "ok"
    assert place(kwh, BEN, "buy", 5_000, 14) == "ok"
    (made,) = heat_contracts(kwh)
    assert made["energy_wh"] == 3_000  # 3,500 Wh of headroom, in whole kWh
    assert made["grid"] == {"requested_wh": 5_000, "constraint": "export:loop-a", "cut_wh": 2_000}


def test_a_call_auctions_heat_allocation_is_rounded_down_to_whole_steps() -> None:
    kwh = heat_market(**{"heat.energy_step_wh": 1_000, "call_auction": 1})
    publish = {"feeder": "loop-a", "export_limit_w": 2_500, "import_limit_w": 100_000}
    assert kwh.send(OPERATOR, "grid.feeder.publish", carrier="heat", **publish) == "ok"
    assert place(kwh, ADA, "sell", 4_000, 12) == "ok"
    assert place(kwh, BEN, "buy", 4_000, 14) == "ok"
    assert kwh.send(OPERATOR, "market.slot.clear", slot=HEAT, at=HEAT - 300_000) == "ok"
    assert [made["energy_wh"] for made in heat_contracts(kwh)] == [2_000]


def test_a_heat_baseline_folds_the_whole_hour_by_heats_slot_of_the_day(market: Market) -> None:
    assert market.send(ADA, "market.flexibility.enroll", carrier="heat") == "ok"
    assert market.meter(ADA, ADA_METER, "ada-heat", kind="heat", interval_s=900) == "ok"
    for quarter, import_wh in enumerate((400, 300, 200, 100)):
        start = HEAT + quarter * SLOT_MS
        body = batch(reading(start, 0, import_wh=import_wh, duration_s=900))
        assert market.relay("ada-heat", ADA_METER, body, at=start + SLOT_MS + 1_000) == "ok"
        assert market.settle(slot=start, at=start + 2 * SLOT_MS) == "ok"
        if quarter < 3:  # heat's hour has not ended: its baseline waits
            assert market.state.get(market_schema.baseline_key(ADA.address, "heat")) == {
                "slots": {}
            }
    record = market.state.get(market_schema.baseline_key(ADA.address, "heat"))
    hour_of_day = str(HEAT % 86_400_000 // HOUR_MS)
    assert record["slots"] == {hour_of_day: [1_000, 0, 1]}  # 400 + 300 + 200 + 100 Wh drawn
    assert record["recent"] == [1_000, 0, 1]


def test_a_thermal_stores_hourly_commitment_is_released_when_its_hour_settles(
    market: Market,
) -> None:
    assert market.meter(ADA, ADA_METER, "ada-tank", kind="thermal_storage", interval_s=900) == "ok"
    store = {"address": ADA.address, "meter": "ada-tank", "capacity_wh": 20_000, "soc_wh": 5_000}
    assert market.send(OPERATOR, "market.storage.register", **store) == "ok"
    assert place(market, ADA, "sell", 3_000, 12) == "ok"
    assert place(market, BEN, "buy", 3_000, 12) == "ok"
    committed = f"market/storage/heat/{ADA.address}/{HEAT}"
    assert market.state.get(committed) is not None
    for quarter in range(4):
        start = HEAT + quarter * SLOT_MS
        body = batch(reading(start, 750, duration_s=900))
        assert market.relay("ada-tank", ADA_METER, body, at=start + SLOT_MS + 1_000) == "ok"
        assert market.settle(slot=start, at=start + 2 * SLOT_MS) == "ok"
        # Each quarter's readings move the charge; the hour's commitment waits for the hour.
        assert (market.state.get(committed) is None) == (quarter == 3)
    tank = market.state.get(f"market/storage/heat/{ADA.address}")
    assert (tank["soc_wh"], tank["sell_wh"]) == (2_000, 0)  # 5,000 - 4 x 750
