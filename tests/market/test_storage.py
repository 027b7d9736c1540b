"""Energy storage providers (``market.chain.storage``): a store trades both ways within its state
of charge, which its meter moves when a slot settles; real signed transactions on a pure State."""

from __future__ import annotations

import pytest

from market.chain.storage import store
from tests.market.support import (
    ADA,
    ADA_METER,
    ADA_PV,
    BEN,
    INTERVAL_S,
    OPERATOR,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    reading,
)

STEP = INTERVAL_S * 1_000
LATER = SLOT + SLOT_MS


def register(market: Market, meter: str, capacity: int, soc: int) -> str:
    payload = {"address": ADA.address, "meter": meter, "capacity_wh": capacity, "soc_wh": soc}
    return market.send(OPERATOR, "market.storage.register", **payload)


@pytest.fixture
def market() -> Market:
    """Ada runs a 10 kWh battery charged to 4 kWh; Ben buys."""
    result = Market()
    for who in (ADA, BEN):
        result.household(who, credits=100_000)
    assert result.meter(ADA, ADA_METER, "ada-battery", kind="battery") == "ok"
    assert register(result, "ada-battery", 10_000, 4_000) == "ok"
    return result


def test_a_store_sells_no_more_than_its_charge_and_buys_no_more_than_its_room(
    market: Market,
) -> None:
    assert market.place(ADA, "sell", 3_000, 30)[0] == "ok"
    assert market.place(ADA, "sell", 1_500, 30)[0] == "beyond_state_of_charge"
    result, last = market.place(ADA, "sell", 1_000, 30)
    assert result == "ok"  # 4,000 Wh committed: all of the charge
    assert market.place(ADA, "buy", 6_000, 10, slot=LATER)[0] == "ok"  # the room: 10,000 - 4,000
    assert market.place(ADA, "buy", 1, 10, slot=LATER)[0] == "beyond_state_of_charge"
    offer = {"slot": LATER + SLOT_MS, "energy_wh": 1, "price": 30, "buyer": ""}
    assert market.send(ADA, "market.offer.post", **offer) == "beyond_state_of_charge"
    # A cancelled order's energy is no longer committed.
    assert market.send(ADA, "market.order.cancel", order=last) == "ok"
    assert market.place(ADA, "sell", 1_000, 30)[0] == "ok"
    record = store(market.state, ADA.address, "electricity")
    assert record is not None
    assert (record["sell_wh"], record["buy_wh"]) == (4_000, 6_000)


def test_settlement_moves_the_charge_by_the_meter_and_releases_the_slot(market: Market) -> None:
    assert market.place(ADA, "sell", 3_000, 30)[0] == "ok"
    assert market.place(ADA, "sell", 500, 31)[0] == "ok"
    assert market.place(BEN, "buy", 3_000, 30)[0] == "ok"
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT - 60_000) == "ok"
    record = store(market.state, ADA.address, "electricity")
    assert record is not None
    assert record["sell_wh"] == 3_000  # the 500 expired; the contract stays committed
    body = batch(*(reading(SLOT + i * STEP, e) for i, e in enumerate((1_000, 1_200, 800))))
    assert market.relay("ada-battery", ADA_METER, body, at=SLOT + SLOT_MS) == "ok"
    assert market.settle() == "ok"
    record = store(market.state, ADA.address, "electricity")
    assert record is not None
    assert (record["soc_wh"], record["soc_slot"], record["sell_wh"]) == (1_000, SLOT, 0)
    assert market.state.get(f"market/storage/electricity/{ADA.address}/{SLOT}") is None
    assert market.emitted("market.storage_charged") == [
        {
            "account": ADA.address,
            "carrier": "electricity",
            "slot": SLOT,
            "soc_wh": 1_000,
            "import_wh": 0,
            "export_wh": 3_000,
        }
    ]
    later = SLOT + 4 * SLOT_MS
    assert market.place(ADA, "sell", 1_001, 30, slot=later)[0] == "beyond_state_of_charge"
    assert market.place(ADA, "sell", 1_000, 30, slot=later)[0] == "ok"


def test_a_thermal_store_trades_heat_within_its_charge() -> None:
    market = Market(heat=1)
    market.household(ADA, credits=100_000)
    assign = {"address": ADA.address, "feeder": "loop-a", "carrier": "heat"}
    assert market.send(OPERATOR, "grid.feeder.assign", **assign) == "ok"
    assert market.meter(ADA, ADA_METER, "ada-tank", kind="thermal_storage") == "ok"
    assert register(market, "ada-tank", 20_000, 5_000) == "ok"
    order = {"slot": SLOT, "side": "sell", "energy_wh": 5_001, "price": 9, "carrier": "heat"}
    assert market.send(ADA, "market.order.place", **order) == "beyond_state_of_charge"
    assert market.send(ADA, "market.order.place", **(order | {"energy_wh": 5_000})) == "ok"
    # The thermal store bounds heat only: electricity is the household's as before.
    assert market.place(ADA, "sell", 50_000, 30)[0] == "ok"


def test_registering_a_store_is_refused_without_a_store_meter(market: Market) -> None:
    assert market.meter(ADA, ADA_PV, "ada-main") == "ok"
    assert register(market, "ada-main", 10_000, 0) == "not_storage_meter"
    assert register(market, "nope", 10_000, 0) == "unknown_meter"
    assert register(market, "ada-battery", 0, 0) == "bad_capacity"
    assert register(market, "ada-battery", 10_000, 10_001) == "bad_state_of_charge"
    assert register(market, "ada-battery", 10_000, -1) == "bad_state_of_charge"
