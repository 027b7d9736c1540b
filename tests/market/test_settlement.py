"""Settlement (``market.chain.settlement``): contracts paid against meter readings, with real signed
transactions on a pure State. The worked examples are those of docs/market.md, "Settlement"."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import application as app
from ledger.identity import KeyPair
from market.chain import schema as market_schema
from tests.market.support import (
    ADA,
    ADA_METER,
    ADA_PV,
    BEN,
    BEN_METER,
    CAT,
    CAT_METER,
    GATE_MS,
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
DELAY_MS = 900_000  # market.settlement_delay_ms's default
DUE = SLOT + SLOT_MS + DELAY_MS
CREDITS = 100_000


@pytest.fixture
def market() -> Market:
    """Ada sells, Ben and Cat buy; a network fee of 5 per kWh; deposit and penalty 20 %."""
    result = Market(network_fee=5)
    for who in (ADA, BEN, CAT):
        result.household(who, credits=CREDITS)
    assert result.meter(ADA, ADA_METER, "ada-main") == "ok"
    return result


def trade(market: Market, seller: KeyPair, buyer: KeyPair, energy_wh: int, price: int) -> None:
    assert market.place(seller, "sell", energy_wh, price)[0] == "ok"
    assert market.place(buyer, "buy", energy_wh, price)[0] == "ok"


def money(market: Market) -> dict[str, tuple[int, int]]:
    """Each party's (balance, locked), and the grid operator's."""
    parties = {"ada": ADA, "ben": BEN, "cat": CAT, "operator": OPERATOR}
    return {name: (market.balance(who), market.locked(who)) for name, who in parties.items()}


def result(market: Market, index: int, slot: int = SLOT) -> dict[str, Any]:
    value = market.result(index, slot)
    assert value is not None
    return value


def assert_conserved(market: Market, supply: int = 3 * CREDITS) -> None:
    state = market.state
    assert state.get("ledger/supply") == supply
    assert sum(state.get(key) for key in state.keys("bal/")) == supply


# --- the worked examples -----------------------------------------------------------------------


def test_it_pays_a_contract_delivered_in_full(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    assert money(market) == {
        "ada": (100_000, 48),  # deposit: 20 % of 2,000 Wh x 120 = 240
        "ben": (100_000, 250),  # escrow: 2,000 Wh x (120 + 5)
        "cat": (100_000, 0),
        "operator": (0, 0),
    }
    assert market.deliver("ada-main", ADA_METER, [700, 800, 600], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    assert money(market) == {
        "ada": (100_240, 0),
        "ben": (99_750, 0),
        "cat": (100_000, 0),
        "operator": (10, 0),
    }
    assert result(market, 0) == {
        "contract": f"{SLOT}-0",
        "seller": ADA.address,
        "buyer": BEN.address,
        "energy_wh": 2_000,
        "export_wh": 2_100,
        "delivered_wh": 2_000,
        "paid": 240,
        "fee": 10,
        "penalty": 0,
        "escrow_released": 0,
        "deposit_released": 48,
    }
    assert market.state.get(f"market/defaults/{ADA.address}") is None
    assert_conserved(market)


def test_it_pays_what_was_delivered_and_charges_a_penalty_for_the_rest(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    assert market.deliver("ada-main", ADA_METER, [500, 434, 300], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    # 1,234 Wh delivered: 148.08 -> 148 paid, 6.17 -> 6 fee; 766 Wh short: value 91.92 -> 91,
    # penalty 20 % of it, 18.2 -> 18, from the deposit of 48.
    assert money(market) == {
        "ada": (100_130, 0),
        "ben": (99_864, 0),
        "cat": (100_000, 0),
        "operator": (6, 0),
    }
    assert result(market, 0) | {"seller": "", "buyer": ""} == {
        "contract": f"{SLOT}-0",
        "seller": "",
        "buyer": "",
        "energy_wh": 2_000,
        "export_wh": 1_234,
        "delivered_wh": 1_234,
        "paid": 148,
        "fee": 6,
        "penalty": 18,
        "escrow_released": 96,
        "deposit_released": 30,
    }
    assert market.state.get(f"market/defaults/{ADA.address}") == {
        "unsettled": 1,
        "shortfalls": 1,
        "shortfall_wh": 766,
        "last_slot": SLOT,
    }
    assert_conserved(market)


def test_it_counts_no_reading_as_no_delivery(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    assert market.settle(at=DUE) == "ok"
    assert money(market) == {
        "ada": (99_952, 0),
        "ben": (100_048, 0),
        "cat": (100_000, 0),
        "operator": (0, 0),
    }
    assert result(market, 0)["export_wh"] == result(market, 0)["delivered_wh"] == 0
    assert (result(market, 0)["penalty"], result(market, 0)["escrow_released"]) == (48, 250)
    assert result(market, 0)["deposit_released"] == 0
    assert market.state.get(f"market/defaults/{ADA.address}")["shortfall_wh"] == 2_000
    assert_conserved(market)


def test_it_allocates_a_sellers_export_to_its_contracts_in_time_priority(market: Market) -> None:
    assert market.place(ADA, "sell", 1_500, 100)[0] == "ok"
    assert market.place(BEN, "buy", 1_000, 110)[0] == "ok"  # first: 1,000 Wh at Ada's 100
    assert market.place(CAT, "buy", 500, 100)[0] == "ok"  # second: 500 Wh at 100
    assert money(market) == {
        "ada": (100_000, 30),  # deposits 20 + 10
        "ben": (100_000, 105),  # 1,000 Wh x 105 (the 10 its bid locked above 100 went back)
        "cat": (100_000, 52),  # 500 Wh x 105 = 52.5 -> 52
        "operator": (0, 0),
    }
    assert market.deliver("ada-main", ADA_METER, [400, 400, 400], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    assert money(market) == {
        "ada": (100_114, 0),
        "ben": (99_895, 0),
        "cat": (99_985, 0),
        "operator": (6, 0),
    }
    ben, cat = result(market, 0), result(market, 1)
    assert (ben["buyer"], cat["buyer"]) == (BEN.address, CAT.address)
    assert {k: ben[k] for k in ("delivered_wh", "paid", "fee", "penalty")} == {
        "delivered_wh": 1_000,
        "paid": 100,
        "fee": 5,
        "penalty": 0,
    }
    assert (ben["escrow_released"], ben["deposit_released"]) == (0, 20)
    assert {k: cat[k] for k in ("delivered_wh", "paid", "fee", "penalty")} == {
        "delivered_wh": 200,
        "paid": 20,
        "fee": 1,
        "penalty": 6,  # 300 Wh short: value 30, 20 % of it
    }
    assert (cat["escrow_released"], cat["deposit_released"]) == (31, 4)
    assert ben["export_wh"] == cat["export_wh"] == 1_200
    assert market.state.get(f"market/defaults/{ADA.address}")["unsettled"] == 1
    assert market.settlement(SLOT) == {
        "slot": SLOT,
        "contracts": 2,
        "energy_wh": 1_500,
        "delivered_wh": 1_200,
        "paid": 120,
        "fees": 6,
        "penalties": 6,
        "escrow_released": 31,
        "deposit_released": 24,
        "shortfalls": 1,
        "residual": None,  # no tariff: nothing settles with the supplier
        "tx": market.blocks[-1][1][0].id,
        "height": market.height,
        "timestamp_ms": DUE,
    }
    assert_conserved(market)


# --- what counts as delivered ------------------------------------------------------------------


def test_it_counts_missing_quality_as_nothing_and_estimates_as_measured(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    body = batch(
        reading(SLOT, 900, quality="missing"),
        reading(SLOT + STEP, 300, quality="estimated"),
        reading(SLOT + 2 * STEP, 200),
    )
    assert market.relay("ada-main", ADA_METER, body, at=SLOT + SLOT_MS) == "ok"
    assert market.settle() == "ok"
    assert result(market, 0)["delivered_wh"] == 500


def test_it_counts_only_the_readings_of_the_slot(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    body = batch(
        reading(SLOT - STEP, 1_000),  # the slot before
        reading(SLOT + STEP, 100),
        reading(SLOT + SLOT_MS, 1_000),  # the slot after
    )
    assert market.relay("ada-main", ADA_METER, body, at=SLOT + 2 * SLOT_MS) == "ok"
    assert market.settle() == "ok"
    assert result(market, 0)["export_wh"] == 100


def test_it_adds_up_the_export_of_every_meter_the_seller_owns(market: Market) -> None:
    assert market.meter(ADA, ADA_PV, "ada-pv", kind="pv", interval_s=900) == "ok"
    assert market.meter(BEN, BEN_METER, "ben-main") == "ok"  # the buyer's export is not Ada's
    trade(market, ADA, BEN, 2_000, 120)
    assert market.deliver("ada-main", ADA_METER, [100, 200, 300], slot=SLOT) == "ok"
    assert market.relay("ada-pv", ADA_PV, batch(reading(SLOT, 1_000, duration_s=900))) == "ok"
    assert market.deliver("ben-main", BEN_METER, [5_000, 5_000, 5_000], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    assert result(market, 0)["delivered_wh"] == 1_600


def test_it_settles_a_seller_that_also_bought_in_the_slot(market: Market) -> None:
    assert market.meter(CAT, CAT_METER, "cat-main") == "ok"
    trade(market, ADA, BEN, 1_000, 100)  # contract 0: Ada sells
    offer = market.tx(CAT, "market.offer.post", slot=SLOT, energy_wh=500, price=80, buyer="")
    assert market.run(offer) == ["ok"]
    assert market.send(ADA, "market.offer.accept", offer=offer.id, energy_wh=500) == "ok"
    assert market.deliver("ada-main", ADA_METER, [1_000, 0, 0], slot=SLOT) == "ok"
    assert market.deliver("cat-main", CAT_METER, [250], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    # Ada: +100 for contract 0; for contract 1 (250 of 500 Wh at 80) -20 and a fee of 1.25 -> 1,
    # and +4 from Cat's deposit of 8 (20 % of the 20 the missing 250 Wh were worth).
    assert money(market) == {
        "ada": (100_083, 0),
        "ben": (99_895, 0),
        "cat": (100_016, 0),
        "operator": (6, 0),
    }
    assert (result(market, 1)["paid"], result(market, 1)["penalty"]) == (20, 4)
    assert_conserved(market)


def test_it_caps_the_penalty_at_the_deposit(market: Market) -> None:
    # Ben's bid rests at 150; Ada's ask at 100 trades at 150 but her deposit is 20 % of 100.
    assert market.place(BEN, "buy", 1_000, 150)[0] == "ok"
    assert market.place(ADA, "sell", 1_000, 100)[0] == "ok"
    assert market.contracts()[0]["deposit"] == 20
    assert market.settle() == "ok"
    assert result(market, 0)["penalty"] == 20  # not 20 % of 150
    assert money(market)["ada"] == (99_980, 0)
    assert money(market)["ben"] == (100_020, 0)


def test_it_applies_the_contracts_penalty_rate() -> None:
    market = Market(penalty_bps=1_000)
    for who in (ADA, BEN):
        market.household(who, credits=CREDITS)
    trade(market, ADA, BEN, 2_000, 120)
    assert market.settle() == "ok"
    assert result(market, 0)["penalty"] == 24  # 10 % of 240
    assert result(market, 0)["deposit_released"] == 24


# --- late readings, defaults -------------------------------------------------------------------


def test_it_never_settles_a_slot_again_nor_counts_late_readings(market: Market) -> None:
    trade(market, ADA, BEN, 2_000, 120)
    assert market.deliver("ada-main", ADA_METER, [500, 0], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    settled = money(market), result(market, 0), market.settlement(SLOT)
    late = batch(reading(SLOT + 2 * STEP, 1_500), reading(SLOT + SLOT_MS, 7))
    assert market.relay("ada-main", ADA_METER, late, at=DUE + SLOT_MS) == "ok"
    # The slot is settled: its contracts left the state, so it cannot settle again.
    assert market.settle() == "nothing_to_settle"
    assert (money(market), result(market, 0), market.settlement(SLOT)) == settled
    assert len(market.emitted("market.slot_settled")) == 1


def test_a_settled_slots_contracts_leave_the_state_and_stay_in_its_events(market: Market) -> None:
    """History out of the live state: the contracts and their count are deleted when the slot
    settles; the contract as made, its result and the summary are the block's events."""
    trade(market, ADA, BEN, 1_000, 100)
    trade(market, ADA, CAT, 500, 100)
    made = market.contracts()
    assert [c["id"] for c in made] == [f"{SLOT}-0", f"{SLOT}-1"]
    assert market.emitted("market.contract_made") == made
    assert market.deliver("ada-main", ADA_METER, [700, 0], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    assert market.state.get(market_schema.contracts_key(SLOT)) is None
    for contract in made:
        assert market.state.get(market_schema.contract_key(contract["id"])) is None
    assert not [key for key in market.state.keys("market/") if str(SLOT) in key]
    results = market.emitted("market.contract_settled")
    assert [(r["slot"], r["contract"], r["delivered_wh"]) for r in results] == [
        (SLOT, f"{SLOT}-0", 700),
        (SLOT, f"{SLOT}-1", 0),
    ]
    summary = market.settlement(SLOT)
    assert summary is not None
    assert (summary["contracts"], summary["delivered_wh"]) == (2, 700)
    assert_conserved(market)


def test_it_records_defaults_that_keep_a_seller_from_trading(market: Market) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    assert market.place(ADA, "sell", 1_000, 100)[0] == "ok"
    assert market.place(CAT, "buy", 1_000, 100)[0] == "ok"
    assert market.settle() == "ok"  # two shortfalls
    assert market.state.get(f"market/defaults/{ADA.address}") == {
        "unsettled": 2,
        "shortfalls": 2,
        "shortfall_wh": 2_000,
        "last_slot": SLOT,
    }
    next_slot = market.now // SLOT_MS * SLOT_MS + 3 * SLOT_MS
    outcome, _ = market.place(ADA, "sell", 100, 100, slot=next_slot)
    assert outcome == "too_many_defaults"  # market.max_unsettled_defaults is 0
    assert market.place(BEN, "buy", 100, 100, slot=next_slot)[0] == "ok"  # Ben did not default


def test_it_adds_to_a_default_record_it_did_not_write() -> None:
    market = Market(max_unsettled_defaults=5)
    for who in (ADA, BEN):
        market.household(who, credits=CREDITS)
    market.state.set(f"market/defaults/{ADA.address}", {"unsettled": 1, "note": "x"})
    trade(market, ADA, BEN, 1_000, 100)
    assert market.settle() == "ok"
    assert market.state.get(f"market/defaults/{ADA.address}") == {
        "unsettled": 2,
        "note": "x",
        "shortfalls": 1,
        "shortfall_wh": 1_000,
        "last_slot": SLOT,
    }


# --- when a slot settles, and who may settle it ------------------------------------------------


@pytest.mark.parametrize("who", [ADA, BEN, CAT, REGULATOR, OPERATOR])
def test_it_lets_anyone_settle(market: Market, who: KeyPair) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    assert market.settle(who) == "ok"


def test_it_settles_when_the_delay_after_the_slot_has_passed(market: Market) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    assert market.settle(at=SLOT) == "slot_not_ended"
    assert market.settle(at=SLOT + SLOT_MS - 1) == "slot_not_ended"
    assert market.settle(at=SLOT + SLOT_MS) == "settlement_not_due"
    assert market.settle(at=DUE - 1) == "settlement_not_due"
    assert market.settle(at=DUE) == "ok"
    assert market.settle(at=DUE + 1_000) == "nothing_to_settle"  # its contracts are gone


def test_it_takes_the_delay_from_genesis() -> None:
    market = Market(settlement_delay_ms=0)
    for who in (ADA, BEN):
        market.household(who, credits=CREDITS)
    trade(market, ADA, BEN, 1_000, 100)
    assert market.settle(at=SLOT + SLOT_MS) == "ok"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "bad_payload"),
        ({"slot": SLOT, "extra": 1}, "bad_payload"),
        ({"slot": -SLOT_MS}, "bad_slot"),
        ({"slot": str(SLOT)}, "bad_slot"),
        ({"slot": True}, "bad_slot"),
        ({"slot": SLOT + 1}, "slot_misaligned"),
        ({"slot": SLOT + SLOT_MS}, "nothing_to_settle"),
    ],
)
def test_it_refuses_bad_settlements(market: Market, payload: dict[str, Any], code: str) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    assert market.send(OPERATOR, "market.slot.settle", at=DUE + SLOT_MS, **payload) == code
    assert market.settlement(SLOT) is None
    assert money(market)["ben"] == (100_000, 105)


def test_it_settles_a_slot_only_once_it_is_cleared(market: Market) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    assert market.place(CAT, "buy", 300, 90)[0] == "ok"  # rests, never matched
    assert market.settle() == "slot_not_cleared"
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT) == "ok"
    assert market.settle() == "ok"
    assert money(market)["cat"] == (100_000, 0)


def test_it_waits_for_an_open_offer_to_be_cleared(market: Market) -> None:
    trade(market, ADA, BEN, 1_000, 100)
    offer = {"slot": SLOT, "energy_wh": 500, "price": 80, "buyer": ""}
    assert market.send(CAT, "market.offer.post", **offer) == "ok"
    assert market.settle() == "slot_not_cleared"
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT) == "ok"
    assert market.settle() == "ok"


def test_it_settles_a_call_auctions_contracts_after_clearing() -> None:
    market = Market(call_auction=1)
    for who in (ADA, BEN):
        market.household(who, credits=CREDITS)
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    trade(market, ADA, BEN, 1_000, 100)
    assert market.contracts() == []
    assert market.settle() == "slot_not_cleared"  # clearing would still make the contract
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT) == "ok"
    assert len(market.contracts()) == 1
    assert market.deliver("ada-main", ADA_METER, [1_000], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    assert (market.balance(ADA), market.balance(BEN)) == (100_100, 99_900)


def test_it_refuses_a_slot_without_contracts(market: Market) -> None:
    assert market.place(ADA, "sell", 1_000, 100)[0] == "ok"
    assert market.send(OPERATOR, "market.slot.clear", slot=SLOT, at=SLOT - GATE_MS) == "ok"
    assert market.settle() == "nothing_to_settle"
    assert market.locked(ADA) == 0


def test_it_replays_settlement_to_the_same_state_root(market: Market) -> None:
    assert market.place(ADA, "sell", 1_500, 100)[0] == "ok"
    assert market.place(BEN, "buy", 1_000, 110)[0] == "ok"
    assert market.place(CAT, "buy", 500, 100)[0] == "ok"
    assert market.deliver("ada-main", ADA_METER, [400, 400, 400], slot=SLOT) == "ok"
    assert market.settle() == "ok"
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 401))) == "ok"
    assert market.replay().root() == market.state.root()
    assert app.balance(market.replay(), ADA.address) == 100_114
