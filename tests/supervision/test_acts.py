"""Supervision on the ledger: the grid security check, the grid operator's declarations and the
regulators' acts (``supervision.chain.grid``, ``supervision.chain.acts``), with real signed
transactions on a pure State. The examples are those of docs/supervision.md."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import application as app
from ledger.identity import KeyPair
from ledger.state import State
from market.chain import schema as market_schema
from market.chain.pricing import buyer_margin
from supervision.chain import grid
from supervision.chain import network as supervision_network
from supervision.chain import schema as supervision_schema
from tests.market.support import (
    ADA,
    ADA_METER,
    BEN,
    CAT,
    DAN,
    GATE_MS,
    OPERATOR,
    REGULATOR,
    SLOT,
    SLOT_MS,
    Market,
)

CREDITS = 100_000
DUE = SLOT + SLOT_MS + 900_000  # when SLOT may settle (the default settlement delay)


@pytest.fixture
def market() -> Market:
    """Ada and Cat sell on feeder f1 (export limit 8 kW: 2,000 Wh per 15-minute slot), Ben and
    Dan buy on f2 (import limit 6 kW: 1,500 Wh per slot); network fee 5, deposit 20 %."""
    result = Market(network_fee=5)
    assert publish(result, "f1", export_w=8_000, import_w=8_000) == "ok"
    assert publish(result, "f2", export_w=6_000, import_w=6_000) == "ok"
    for who, feeder in ((ADA, "f1"), (CAT, "f1"), (BEN, "f2"), (DAN, "f2")):
        result.household(who, credits=CREDITS, feeder=feeder)
    return result


def publish(market: Market, feeder: str, *, export_w: int, import_w: int) -> str:
    return market.send(
        OPERATOR,
        "grid.feeder.publish",
        feeder=feeder,
        export_limit_w=export_w,
        import_limit_w=import_w,
    )


def act(market: Market, type_: str, who: KeyPair = REGULATOR, **payload: Any) -> str:
    return market.send(who, type_, **({"reason": "a reason"} | payload))


def trade(market: Market, seller: KeyPair, buyer: KeyPair, energy_wh: int, price: int) -> str:
    """A contract between them (its id), the seller's ask resting first."""
    assert market.place(seller, "sell", energy_wh, price)[0] == "ok"
    assert market.place(buyer, "buy", energy_wh, price)[0] == "ok"
    made = market.contracts()[-1]
    assert (made["seller"], made["buyer"]) == (seller.address, buyer.address)
    return str(made["id"])


def load(market: Market, feeder: str) -> dict[str, int]:
    return supervision_schema.load(market.state, SLOT, feeder)


# --- topology and the security check -----------------------------------------------------------


def test_it_publishes_feeders_with_their_limits(market: Market) -> None:
    assert market.state.get(supervision_schema.PUBLISHED_KEY) == 2
    topology = market.state.get(supervision_schema.topology_key("f1"))
    assert (topology["export_limit_w"], topology["import_limit_w"]) == (8_000, 8_000)
    assert topology["by"] == OPERATOR.address
    assert grid.capacity_wh(8_000, SLOT_MS) == 2_000
    assert publish(market, "f1", export_w=4_000, import_w=8_000) == "ok"  # changed
    assert market.state.get(supervision_schema.topology_key("f1"))["export_limit_w"] == 4_000
    assert market.state.get(supervision_schema.PUBLISHED_KEY) == 2


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"feeder": "F 1", "export_limit_w": 1, "import_limit_w": 1}, "bad_feeder"),
        ({"feeder": "f3", "export_limit_w": -1, "import_limit_w": 1}, "bad_limit"),
        ({"feeder": "f3", "export_limit_w": 1, "import_limit_w": "1.5"}, "bad_limit"),
        ({"feeder": "f3", "export_limit_w": 1, "import_limit_w": True}, "bad_limit"),
        ({"feeder": "f3", "export_limit_w": 1}, "bad_payload"),
    ],
)
def test_it_refuses_bad_topology(market: Market, payload: dict[str, Any], code: str) -> None:
    assert market.send(OPERATOR, "grid.feeder.publish", **payload) == code
    assert market.state.get(supervision_schema.topology_key("f3")) is None


def test_it_tailors_a_match_to_the_buyers_import_headroom(market: Market) -> None:
    # Ben's feeder f2 imports at most 1,500 Wh in the slot; Ada offers 1,800.
    market.place(ADA, "sell", 1_800, 100)
    _, bid = market.place(BEN, "buy", 1_800, 100)
    (made,) = market.contracts()
    assert made["energy_wh"] == 1_500
    assert made["grid"] == {"requested_wh": 1_800, "constraint": "import:f2", "cut_wh": 300}
    assert load(market, "f1") == {"export_wh": 1_500, "import_wh": 0}
    assert load(market, "f2") == {"export_wh": 0, "import_wh": 1_500}
    # The rest of the bid rests, with its margin; no one else can import through f2 this slot.
    assert market.order(bid)["remaining_wh"] == 300  # type: ignore[index]
    _, dans = market.place(DAN, "buy", 100, 100)
    assert market.order(dans)["remaining_wh"] == 100  # type: ignore[index]
    assert len(market.contracts()) == 1


def test_it_tailors_a_match_to_the_sellers_export_headroom(market: Market) -> None:
    assert publish(market, "f2", export_w=6_000, import_w=40_000) == "ok"
    trade(market, ADA, BEN, 1_200, 100)
    market.place(CAT, "sell", 1_000, 100)  # f1 has 800 Wh of export left
    market.place(DAN, "buy", 1_000, 100)
    made = market.contracts()[-1]
    assert made["energy_wh"] == 800
    assert made["grid"] == {"requested_wh": 1_000, "constraint": "export:f1", "cut_wh": 200}
    assert load(market, "f1")["export_wh"] == 2_000


def test_it_refuses_an_acceptance_the_feeder_has_no_room_for(market: Market) -> None:
    assert publish(market, "f2", export_w=6_000, import_w=0) == "ok"
    offer = market.tx(ADA, "market.offer.post", slot=SLOT, energy_wh=500, price=100, buyer="")
    assert market.run(offer) == ["ok"]
    assert market.send(BEN, "market.offer.accept", offer=offer.id, energy_wh=500) == (
        "grid_refused"
    )
    assert market.locked(BEN) == 0


def test_it_counts_the_load_per_slot(market: Market) -> None:
    trade(market, ADA, BEN, 1_500, 100)
    later = SLOT + SLOT_MS
    market.place(ADA, "sell", 1_500, 100, slot=later)
    market.place(BEN, "buy", 1_500, 100, slot=later)
    assert [c["energy_wh"] for c in market.contracts(later)] == [1_500]
    assert supervision_schema.load(market.state, later, "f2")["import_wh"] == 1_500


def test_a_contract_records_the_feeders_it_counts_in(market: Market) -> None:
    made = market.contract(trade(market, ADA, BEN, 1_000, 100))
    assert made["feeders"] == {"export": "f1", "import": "f2"}


def test_a_veto_takes_the_load_off_the_feeders_the_contract_counted_in(market: Market) -> None:
    """Moving a household, or publishing its feeder after it traded, changes no contract's
    count: a veto takes the energy off where it was counted, never below zero elsewhere."""
    assert market.send(OPERATOR, "grid.feeder.assign", address=DAN.address, feeder="f3") == "ok"
    dans = trade(market, ADA, DAN, 400, 100)  # f3 is not published: counted on f1 only
    assert market.contract(dans)["feeders"] == {"export": "f1"}
    bens = trade(market, CAT, BEN, 500, 100)
    assert publish(market, "f3", export_w=4_000, import_w=4_000) == "ok"
    assert market.send(OPERATOR, "grid.feeder.assign", address=BEN.address, feeder="f3") == "ok"
    assert act(market, "supervision.contract.veto", contract=dans) == "ok"
    assert act(market, "supervision.contract.curtail", contract=bens, energy_wh=200) == "ok"
    assert load(market, "f1") == {"export_wh": 200, "import_wh": 0}
    assert load(market, "f2") == {"export_wh": 0, "import_wh": 200}
    assert load(market, "f3") == {"export_wh": 0, "import_wh": 0}


def test_a_market_without_published_feeders_records_none(market: Market) -> None:
    bare = Market(network_fee=5)
    for who in (ADA, BEN):
        bare.household(who, credits=CREDITS)
    made = bare.contract(trade(bare, ADA, BEN, 1_000, 100))
    assert "feeders" not in made


# --- the grid operator's declarations -----------------------------------------------------------


def test_a_feeder_under_high_load_stops_new_trading_on_it_until_normal(market: Market) -> None:
    declare = {"scope": "feeder:f1", "state": "high_load", "reason": "transformer at 95 %"}
    assert act(market, "grid.state.declare", OPERATOR, **declare) == "ok"
    assert market.place(ADA, "sell", 100, 100)[0] == "grid_high_load"
    assert market.place(BEN, "buy", 100, 100)[0] == "ok"  # f2 trades on
    assert act(market, "grid.state.declare", OPERATOR, **declare) == "no_change"
    normal = declare | {"state": "normal", "reason": "load back under 60 %"}
    assert act(market, "grid.state.declare", OPERATOR, **normal) == "ok"
    assert market.state.get(supervision_schema.state_key("feeder:f1")) is None
    assert market.state.get(supervision_schema.STOPS_KEY) is None
    assert market.place(ADA, "sell", 100, 100)[0] == "ok"


def test_an_unstable_grid_stops_all_trading(market: Market) -> None:
    declare = {"scope": "grid", "state": "unstable", "reason": "frequency excursion"}
    assert act(market, "grid.state.declare", OPERATOR, **declare) == "ok"
    assert market.place(ADA, "sell", 100, 100)[0] == "grid_unstable"
    assert market.place(BEN, "buy", 100, 100)[0] == "grid_unstable"
    record = market.state.get("grid/state/grid")
    assert (record["state"], record["reason"], record["by"]) == (
        "unstable",
        "frequency excursion",
        OPERATOR.address,
    )


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"scope": "grid", "state": "unstable", "reason": "  "}, "reason_required"),
        ({"scope": "grid", "state": "unstable", "reason": "x" * 501}, "reason_required"),
        ({"scope": "grid", "state": "unstable", "reason": 7}, "reason_required"),
        ({"scope": "feeders", "state": "unstable", "reason": "r"}, "bad_scope"),
        ({"scope": "feeder:F!", "state": "unstable", "reason": "r"}, "bad_scope"),
        ({"scope": "feeder:f9", "state": "unstable", "reason": "r"}, "unknown_feeder"),
        ({"scope": "grid", "state": "storm", "reason": "r"}, "bad_state"),
        ({"scope": "grid", "state": "normal", "reason": "r"}, "no_change"),
    ],
)
def test_it_refuses_bad_declarations(market: Market, payload: dict[str, Any], code: str) -> None:
    assert market.send(OPERATOR, "grid.state.declare", **payload) == code


# --- veto and curtailment ----------------------------------------------------------------------


def test_a_veto_releases_both_margins_and_the_contract_never_settles(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    assert (market.locked(ADA), market.locked(BEN)) == (24, 125)
    assert act(market, "supervision.contract.veto", contract=contract_id, reason="wash trade") == (
        "ok"
    )
    assert (market.locked(ADA), market.locked(BEN)) == (0, 0)
    assert (market.balance(ADA), market.balance(BEN)) == (CREDITS, CREDITS)
    assert load(market, "f1") == load(market, "f2") == {"export_wh": 0, "import_wh": 0}
    (made,) = market.contracts()
    assert (made["vetoed"], made["energy_wh"], made["escrow"], made["deposit"]) == (
        True,
        1_000,
        0,
        0,
    )
    (record,) = made["acts"]
    assert record == {
        "act": "veto",
        "reason": "wash trade",
        "energy_wh_before": 1_000,
        "energy_wh": 0,
        "escrow_released": 125,
        "deposit_released": 24,
        "by": REGULATOR.address,
        "tx": record["tx"],
        "height": market.height,
        "timestamp_ms": market.now,
    }
    # Settlement passes it over, even if the meter exported.
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    assert market.deliver("ada-main", ADA_METER, [400, 400, 400], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    assert market.emitted("market.contract_settled") == []
    assert market.emitted("market.slot_settled")[-1]["contracts"] == 0
    assert (market.balance(ADA), market.balance(BEN)) == (CREDITS, CREDITS)


def test_a_curtailment_releases_margins_pro_rata_and_settles_what_is_left(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    curtail = {"contract": contract_id, "energy_wh": 600, "reason": "feeder f1 at its limit"}
    assert act(market, "supervision.contract.curtail", **curtail) == "ok"
    (made,) = market.contracts()
    assert (made["energy_wh"], made["escrow"], made["deposit"]) == (600, 75, 14)
    assert made["escrow"] == buyer_margin(600, 120, 5)  # 600 Wh x 125 / 1000
    assert made["deposit"] == 24 * 600 // 1_000
    assert (market.locked(ADA), market.locked(BEN)) == (14, 75)
    assert load(market, "f1")["export_wh"] == 600
    assert made["acts"][0]["escrow_released"] == 50
    assert made["acts"][0]["deposit_released"] == 10
    # Ada delivers 500 of the 600 Wh: paid 60, fee 2, penalty 20 % of 100 Wh x 120 = 2.
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    assert market.deliver("ada-main", ADA_METER, [200, 200, 100], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    (line,) = market.emitted("market.contract_settled")
    assert (
        line["energy_wh"],
        line["delivered_wh"],
        line["paid"],
        line["fee"],
        line["penalty"],
    ) == (
        600,
        500,
        60,
        2,
        2,
    )
    assert (market.balance(ADA), market.balance(BEN)) == (CREDITS + 58, CREDITS - 60)
    assert (market.locked(ADA), market.locked(BEN)) == (0, 0)


@pytest.mark.parametrize(
    ("energy_wh", "code"),
    [
        (1_000, "not_a_curtailment"),
        (0, "not_a_curtailment"),
        (1_200, "not_a_curtailment"),
        ("600", "bad_energy"),
    ],
)
def test_it_refuses_what_is_not_a_curtailment(market: Market, energy_wh: Any, code: str) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    payload = {"contract": contract_id, "energy_wh": energy_wh}
    assert act(market, "supervision.contract.curtail", **payload) == code
    assert market.contracts()[0]["energy_wh"] == 1_000


def test_it_refuses_to_veto_or_curtail_once_delivery_has_started(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    before = market.contracts()
    veto = market.tx(REGULATOR, "supervision.contract.veto", contract=contract_id, reason="late")
    assert market.run(veto, at=SLOT) == ["delivery_started"]
    curtail = market.tx(
        REGULATOR,
        "supervision.contract.curtail",
        contract=contract_id,
        energy_wh=10,
        reason="late",
    )
    assert market.run(curtail, at=SLOT + 1) == ["delivery_started"]
    assert market.contracts() == before


def test_it_refuses_vetoing_twice_or_an_unknown_contract(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    assert act(market, "supervision.contract.veto", contract=contract_id) == "ok"
    assert act(market, "supervision.contract.veto", contract=contract_id) == "contract_vetoed"
    payload = {"contract": contract_id, "energy_wh": 10}
    assert act(market, "supervision.contract.curtail", **payload) == "contract_vetoed"
    assert act(market, "supervision.review.clear", contract=contract_id) == "contract_vetoed"
    assert act(market, "supervision.contract.veto", contract=f"{SLOT}-9") == "unknown_contract"
    assert act(market, "supervision.contract.veto", contract=7) == "unknown_contract"


def test_a_review_clears_a_contract_once(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    assert act(market, "supervision.review.clear", contract=contract_id, reason="checked") == "ok"
    assert act(market, "supervision.review.clear", contract=contract_id) == "already_cleared"
    (made,) = market.contracts()
    assert [a["act"] for a in made["acts"]] == ["clear"]
    assert (made["energy_wh"], market.locked(BEN)) == (1_000, 125)


# --- suspension --------------------------------------------------------------------------------


def test_a_suspension_names_its_reason_and_ends_at_its_end(market: Market) -> None:
    until = market.now + 60_000
    payload = {"scope": "feeder:f2", "reason": "storm damage on f2", "until": until}
    assert act(market, "supervision.trading.suspend", **payload) == "ok"
    with pytest.raises(app.TxFailed, match="storm damage on f2") as refused:
        supervision_network.check_feeder(market.state, "f2", market.now)
    assert refused.value.code == "feeder_suspended"
    assert market.place(BEN, "buy", 100, 100)[0] == "feeder_suspended"
    assert market.place(ADA, "sell", 100, 100)[0] == "ok"  # f1 trades on
    order = market.tx(BEN, "market.order.place", slot=SLOT, side="buy", energy_wh=100, price=100)
    assert market.run(order, at=until) == ["ok"]  # the suspension has lapsed


def test_a_resting_order_on_a_suspended_feeder_matches_nothing(market: Market) -> None:
    market.place(ADA, "sell", 500, 100)
    suspend = {"scope": "feeder:f1", "reason": "protection test", "until": 0}
    assert act(market, "supervision.trading.suspend", **suspend) == "ok"
    _, bid = market.place(BEN, "buy", 500, 100)
    assert market.contracts() == []
    assert market.order(bid)["remaining_wh"] == 500  # type: ignore[index]
    assert act(market, "supervision.trading.resume", scope="feeder:f1") == "ok"
    market.place(DAN, "buy", 500, 100)
    assert [c["buyer"] for c in market.contracts()] == [DAN.address]


def test_the_market_suspends_and_resumes(market: Market) -> None:
    suspend = {"scope": "market", "reason": "price manipulation inquiry", "until": 0}
    assert act(market, "supervision.trading.suspend", **suspend) == "ok"
    assert act(market, "supervision.trading.suspend", **suspend) == "already_suspended"
    assert market.place(ADA, "sell", 100, 100)[0] == "market_suspended"
    # The market reads one count on every order, and the stops only when there are any.
    assert market.state.get(supervision_schema.STOPS_KEY) == 1
    assert act(market, "supervision.trading.resume", scope="market") == "ok"
    assert market.state.get(supervision_schema.STOPS_KEY) is None
    assert act(market, "supervision.trading.resume", scope="market") == "not_suspended"
    assert market.place(ADA, "sell", 100, 100)[0] == "ok"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"scope": "market", "reason": "", "until": 0}, "reason_required"),
        ({"scope": "everything", "reason": "r", "until": 0}, "bad_scope"),
        ({"scope": "feeder:f9", "reason": "r", "until": 0}, "unknown_feeder"),
        ({"scope": "market", "reason": "r", "until": -5}, "bad_until"),
        ({"scope": "market", "reason": "r", "until": "tomorrow"}, "bad_until"),
        ({"scope": "market", "reason": "r"}, "bad_payload"),
    ],
)
def test_it_refuses_bad_suspensions(market: Market, payload: dict[str, Any], code: str) -> None:
    assert market.send(REGULATOR, "supervision.trading.suspend", **payload) == code
    assert market.state.get(supervision_schema.MARKET_SUSPENDED_KEY) is None


# --- restriction and defaults -----------------------------------------------------------------


def test_a_restriction_cancels_open_orders_and_offers_and_keeps_contracts(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 500, 100)
    later = SLOT + SLOT_MS
    _, first = market.place(ADA, "sell", 300, 110)
    _, second = market.place(ADA, "sell", 200, 120, slot=later)
    market.place(CAT, "sell", 100, 110)
    offer = market.tx(ADA, "market.offer.post", slot=SLOT, energy_wh=100, price=150, buyer="")
    assert market.run(offer) == ["ok"]
    assert market.locked(ADA) > 10
    assert act(market, "supervision.account.restrict", address=ADA.address, reason="fraud") == (
        "ok"
    )
    record = market.state.get(supervision_schema.restricted_key(ADA.address))
    assert (record["cancelled_orders"], record["cancelled_offers"]) == ([first, second], [offer.id])
    assert market.order(first) is None
    assert market.order(second) is None
    assert market.locked(ADA) == 10  # the contract's deposit only
    assert market.state.get(market_schema.open_key(SLOT, ADA.address)) is None
    assert market.contracts()[0]["id"] == contract_id
    assert market.place(ADA, "sell", 100, 100)[0] == "account_restricted"
    assert market.place(CAT, "sell", 100, 110)[0] == "ok"  # others' orders stay
    assert act(market, "supervision.account.restrict", address=ADA.address) == (
        "already_restricted"
    )
    assert act(market, "supervision.account.reinstate", address=ADA.address) == "ok"
    assert act(market, "supervision.account.reinstate", address=ADA.address) == "not_restricted"
    assert market.place(ADA, "sell", 100, 100)[0] == "ok"


@pytest.mark.parametrize(
    ("address", "code"),
    [("nobody", "bad_address"), (OPERATOR.address, "not_household")],
)
def test_it_restricts_households_only(market: Market, address: str, code: str) -> None:
    assert act(market, "supervision.account.restrict", address=address) == code


def test_a_regulator_resets_unsettled_defaults_and_the_history_stays(market: Market) -> None:
    key = market_schema.defaults_key(ADA.address)
    assert act(market, "supervision.defaults.reset", address=ADA.address) == "no_defaults"
    market.state.set(key, {"unsettled": 2, "shortfalls": 3, "shortfall_wh": 900, "last_slot": 1})
    assert market.place(ADA, "sell", 100, 100)[0] == "too_many_defaults"
    assert act(market, "supervision.defaults.reset", address=ADA.address) == "ok"
    assert market.state.get(key) == {
        "unsettled": 0,
        "shortfalls": 3,
        "shortfall_wh": 900,
        "last_slot": 1,
    }
    assert market.place(ADA, "sell", 100, 100)[0] == "ok"


# --- events: what each act did, in the blocks ---------------------------------------------------


def signed(market: Market, who: KeyPair = REGULATOR) -> dict[str, Any]:
    """Who, in which transaction and block, and when: the last block's only transaction."""
    (tx,) = market.blocks[-1][1]
    return {"by": who.address, "tx": tx.id, "height": market.height, "timestamp_ms": market.now}


def test_the_grid_operators_acts_are_events(market: Market) -> None:
    assert publish(market, "f3", export_w=5_000, import_w=4_000) == "ok"
    published = {"feeder": "f3", "export_limit_w": 5_000, "import_limit_w": 4_000}
    assert market.emitted("grid.topology_published")[-1] == published | signed(market, OPERATOR)
    assert market.send(OPERATOR, "grid.feeder.assign", address=ADA.address, feeder="f2") == "ok"
    assert market.emitted("grid.feeder_assigned")[-1] == {"address": ADA.address, "feeder": "f2"}
    declare = {"scope": "feeder:f2", "state": "high_load", "reason": "heat"}
    assert market.send(OPERATOR, "grid.state.declare", **declare) == "ok"
    assert market.emitted("grid.state_declared")[-1] == declare | signed(market, OPERATOR)
    normal = declare | {"state": "normal", "reason": "cooler"}
    assert market.send(OPERATOR, "grid.state.declare", **normal) == "ok"
    # Nothing stays in the state of a declaration of normal: the event is its only record.
    assert market.state.get("grid/state/feeder/f2") is None
    assert market.emitted("grid.state_declared")[-1] == normal | signed(market, OPERATOR)


def test_the_acts_on_a_contract_are_events_with_what_stands_after_them(market: Market) -> None:
    first = trade(market, ADA, BEN, 1_000, 120)
    second = trade(market, CAT, DAN, 200, 100)
    assert act(market, "supervision.review.clear", contract=first, reason="checked") == "ok"
    assert act(market, "supervision.contract.curtail", contract=first, energy_wh=600) == "ok"
    assert act(market, "supervision.contract.veto", contract=second, reason="wash") == "ok"
    events = [
        (event["type"], event["data"])
        for event in market.events
        if event["type"].startswith("supervision.contract_")
    ]
    made = {c["id"]: c for c in market.contracts()}
    parties = {cid: {"seller": c["seller"], "buyer": c["buyer"]} for cid, c in made.items()}
    assert events == [
        (
            "supervision.contract_cleared",
            {
                "contract": first,
                **parties[first],
                "energy_wh": 1_000,
                "escrow": 125,
                "deposit": 24,
                "vetoed": False,
                "act": made[first]["acts"][0],
            },
        ),
        (
            "supervision.contract_curtailed",
            {
                "contract": first,
                **parties[first],
                "energy_wh": 600,
                "escrow": 75,
                "deposit": 14,
                "vetoed": False,
                "act": made[first]["acts"][1],
            },
        ),
        (
            "supervision.contract_vetoed",
            {
                "contract": second,
                **parties[second],
                "energy_wh": 200,
                "escrow": 0,
                "deposit": 0,
                "vetoed": True,
                "act": made[second]["acts"][0],
            },
        ),
    ]


def test_suspensions_restrictions_and_resets_are_events(market: Market) -> None:
    suspend = {"scope": "market", "reason": "inquiry", "until": 0}
    assert act(market, "supervision.trading.suspend", **suspend) == "ok"
    suspended = market.emitted("supervision.market_suspended")[-1]
    assert suspended == suspend | signed(market)
    assert act(market, "supervision.trading.resume", scope="market", reason="done") == "ok"
    assert market.emitted("supervision.market_resumed") == [
        {"scope": "market", "reason": "done", "suspension": suspended["tx"]} | signed(market)
    ]
    feeder = {"scope": "feeder:f1", "reason": "storm", "until": 0}
    assert act(market, "supervision.trading.suspend", **feeder) == "ok"
    assert market.emitted("supervision.feeder_suspended") == [feeder | signed(market)]
    assert act(market, "supervision.trading.resume", scope="feeder:f1", reason="over") == "ok"
    assert market.emitted("supervision.feeder_resumed")[-1]["scope"] == "feeder:f1"

    _, order = market.place(ADA, "sell", 300, 110)
    assert act(market, "supervision.account.restrict", address=ADA.address, reason="fraud") == "ok"
    restricted = market.emitted("supervision.account_restricted")[-1]
    assert restricted == {
        "address": ADA.address,
        "reason": "fraud",
        "cancelled_orders": [order],
        "cancelled_offers": [],
    } | signed(market)
    assert act(market, "supervision.account.reinstate", address=ADA.address, reason="ok") == "ok"
    assert market.emitted("supervision.account_reinstated") == [
        {"address": ADA.address, "reason": "ok", "restriction": restricted["tx"]} | signed(market)
    ]

    market.state.set(
        market_schema.defaults_key(BEN.address),
        {"unsettled": 2, "shortfalls": 2, "shortfall_wh": 10, "last_slot": 1},
    )
    assert act(market, "supervision.defaults.reset", address=BEN.address, reason="storm") == "ok"
    assert market.emitted("supervision.defaults_reset") == [
        {"address": BEN.address, "reason": "storm", "unsettled": 2} | signed(market)
    ]


def test_a_refused_act_leaves_no_event(market: Market) -> None:
    before = len(market.events)
    assert act(market, "supervision.trading.resume", scope="market") == "not_suspended"
    assert act(market, "supervision.contract.veto", contract=f"{SLOT}-0") == "unknown_contract"
    assert market.events[before:] == []


# --- loads leave the state when their slot settles ---------------------------------------------


def test_a_settled_slots_loads_leave_the_state(market: Market) -> None:
    trade(market, ADA, BEN, 1_000, 120)
    later = SLOT + SLOT_MS
    assert market.place(CAT, "sell", 300, 100, slot=later)[0] == "ok"
    assert market.place(DAN, "buy", 300, 100, slot=later)[0] == "ok"
    assert market.state.get(supervision_schema.load_key(SLOT, "f1")) is not None
    assert market.settle(at=DUE) == "ok"
    assert list(market.state.keys(f"{supervision_schema.LOAD_PREFIX}{SLOT}/")) == []
    assert market.emitted("grid.loads_settled") == [
        {
            "slot": SLOT,
            "loads": {
                "f1": {"export_wh": 1_000, "import_wh": 0},
                "f2": {"export_wh": 0, "import_wh": 1_000},
            },
        }
    ]
    # The next slot's contracts still count where they were made.
    assert supervision_schema.load(market.state, later, "f1") == {"export_wh": 300, "import_wh": 0}


def test_a_slot_whose_contracts_were_all_vetoed_settles_with_no_load_to_remove(
    market: Market,
) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    assert act(market, "supervision.contract.veto", contract=contract_id) == "ok"
    assert market.settle(at=DUE) == "ok"
    assert market.emitted("grid.loads_settled") == []
    assert list(market.state.keys(supervision_schema.LOAD_PREFIX)) == []


# --- what supervisors cannot do ----------------------------------------------------------------


def bumped(state: State, who: KeyPair) -> State:
    """``state`` with only ``who``'s nonce spent: what a refused transaction leaves."""
    copy = State(state.to_json())
    acct = app.account(copy, who.address)
    assert acct is not None
    copy.set(f"acct/{who.address}", acct | {"nonce": acct["nonce"] + 1})
    return copy


FORBIDDEN = [
    # Money: only the grid operator issues; nobody supervising transfers or redeems.
    (REGULATOR, "credit.issue", {"to": ADA.address, "amount": 1}, "not_allowed"),
    (REGULATOR, "credit.transfer", {"to": ADA.address, "amount": 1}, "not_allowed"),
    (REGULATOR, "credit.redeem", {"amount": 1}, "not_allowed"),
    (OPERATOR, "credit.transfer", {"to": ADA.address, "amount": 1}, "not_allowed"),
    (OPERATOR, "credit.redeem", {"amount": 1}, "not_allowed"),
    # Acts belong to regulators: the grid operator and households are not listed as such.
    (OPERATOR, "supervision.contract.veto", {"contract": "C", "reason": "r"}, "not_allowed"),
    (
        ADA,
        "supervision.trading.suspend",
        {"scope": "market", "reason": "r", "until": 0},
        "not_allowed",
    ),
    (
        REGULATOR,
        "grid.feeder.publish",
        {"feeder": "f1", "export_limit_w": 1, "import_limit_w": 1},
        "not_allowed",
    ),
    (
        REGULATOR,
        "account.register",
        {"address": DAN.address, "public_key": DAN.public_key_hex, "role": "regulator"},
        "not_allowed",
    ),
    # History: no type alters or removes a block, a reading, a contract or a settlement.
    (REGULATOR, "ledger.block.remove", {"height": 1}, "unknown_type"),
    (REGULATOR, "meter.reading.amend", {"meter": "ada-main", "export_wh": 0}, "unknown_type"),
    (REGULATOR, "market.contract.amend", {"contract": "C", "price": 1}, "unknown_type"),
    (REGULATOR, "market.settlement.revert", {"slot": SLOT}, "unknown_type"),
    # Acts without a reason.
    (REGULATOR, "supervision.contract.veto", {"contract": "C", "reason": ""}, "reason_required"),
    (
        REGULATOR,
        "supervision.trading.suspend",
        {"scope": "market", "reason": " ", "until": 0},
        "reason_required",
    ),
]


@pytest.mark.parametrize(("who", "type_", "payload", "code"), FORBIDDEN)
def test_supervisors_cannot_act_beyond_their_powers(
    market: Market, who: KeyPair, type_: str, payload: dict[str, Any], code: str
) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    payload = {k: contract_id if v == "C" else v for k, v in payload.items()}
    expected = bumped(market.state, who).root()
    assert market.send(who, type_, **payload) == code
    assert market.state.root() == expected


def test_a_veto_after_delivery_started_changes_nothing_but_the_nonce(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    expected = bumped(market.state, REGULATOR).root()
    veto = market.tx(REGULATOR, "supervision.contract.veto", contract=contract_id, reason="late")
    assert market.run(veto, at=SLOT + 1) == ["delivery_started"]
    assert market.state.root() == expected


def test_a_settled_contract_cannot_be_vetoed(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    market.send(OPERATOR, "market.slot.clear", at=SLOT - GATE_MS, slot=SLOT)
    assert market.settle(at=DUE) == "ok"
    expected = bumped(bumped(market.state, REGULATOR), REGULATOR).root()
    # Settled, it has left the state: its history is in the blocks' events.
    for type_ in ("supervision.contract.veto", "supervision.review.clear"):
        assert act(market, type_, contract=contract_id) == "unknown_contract"
    assert market.state.root() == expected


def test_replaying_the_acts_reproduces_the_state(market: Market) -> None:
    contract_id = trade(market, ADA, BEN, 1_000, 120)
    second = trade(market, CAT, DAN, 200, 100)
    act(market, "supervision.contract.curtail", contract=contract_id, energy_wh=400)
    act(market, "supervision.contract.veto", contract=second)
    act(market, "supervision.trading.suspend", scope="feeder:f1", until=0)
    act(market, "supervision.account.restrict", address=DAN.address)
    declare = {"scope": "feeder:f2", "state": "high_load"}
    act(market, "grid.state.declare", OPERATOR, **declare)
    assert market.replay().root() == market.state.root()
