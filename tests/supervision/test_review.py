"""The review rules (``supervision.review``) on pure ledger states: contracts made by real signed
transactions on a single-node market, evaluated without Django."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.identity import KeyPair
from supervision import review
from supervision.chain import schema as supervision_schema
from tests.market.support import ADA, BEN, CAT, DAN, OPERATOR, REGULATOR, SLOT, SLOT_MS, Market

LIMITS = {
    "max_energy_wh": 5_000,
    "price_deviation_bps": 3_000,
    "feeder_load_bps": 8_000,
    "seller_share_bps": 5_000,
}


@pytest.fixture
def market() -> Market:
    """Ada and Cat sell on f1, Ben and Dan buy on f2; f1 exports 8 kW (2,000 Wh per slot), f2
    imports 40 kW (10,000 Wh per slot)."""
    result = Market()
    for feeder, export_w, import_w in (("f1", 8_000, 40_000), ("f2", 40_000, 40_000)):
        payload = {"feeder": feeder, "export_limit_w": export_w, "import_limit_w": import_w}
        assert result.send(OPERATOR, "grid.feeder.publish", **payload) == "ok"
    for who, feeder in ((ADA, "f1"), (CAT, "f1"), (BEN, "f2"), (DAN, "f2")):
        result.household(who, credits=1_000_000, feeder=feeder)
    return result


def trade(market: Market, seller: KeyPair, buyer: KeyPair, energy_wh: int, price: int) -> Any:
    assert market.place(seller, "sell", energy_wh, price)[0] == "ok"
    assert market.place(buyer, "buy", energy_wh, price)[0] == "ok"
    return market.contracts()[-1]


def rules(market: Market, contract: dict[str, Any], **limits: int) -> list[dict[str, str]]:
    return review.evaluate(contract, market.state, LIMITS | limits)


def test_the_median_is_the_middle_one_or_the_mean_of_the_two_rounded_down() -> None:
    assert review.median([130, 100, 120]) == 120
    assert review.median([100, 121]) == 110
    assert review.median([7]) == 7
    with pytest.raises(ValueError, match="the median of nothing"):
        review.median([])


def test_it_flags_a_contract_above_the_size_limit() -> None:
    no_grid = Market()  # no published feeder: only the size rule can trip
    for who in (ADA, BEN):
        no_grid.household(who, credits=1_000_000, feeder="f9")
    at_limit = trade(no_grid, ADA, BEN, 5_000, 100)
    above = trade(no_grid, ADA, BEN, 5_001, 100)
    assert rules(no_grid, at_limit) == []
    assert rules(no_grid, above) == [{"rule": "size", "detail": "5,001 Wh is more than 5,000 Wh"}]


def test_it_flags_a_price_far_from_the_slots_median_so_far(market: Market) -> None:
    first = trade(market, ADA, BEN, 100, 100)
    second = trade(market, CAT, DAN, 100, 100)
    within = trade(market, ADA, BEN, 100, 130)  # median 100: 30 % away, not more
    cheap = trade(market, CAT, DAN, 100, 70)  # median of 100, 100, 130, 70: 100; 30 % away
    far = trade(market, ADA, BEN, 100, 131)  # median of the five: 100; 31 % away
    assert [rules(market, c) for c in (first, second, within, cheap)] == [[], [], [], []]
    assert rules(market, far) == [
        {
            "rule": "price",
            "detail": "131/kWh is 31 % away from the slot's median 100/kWh (more than 30 %)",
        }
    ]
    # Only the contracts made before it count, not those made since.
    assert rules(market, first, price_deviation_bps=0) == []


def test_it_leaves_vetoed_contracts_out_of_the_median(market: Market) -> None:
    cheap = trade(market, ADA, BEN, 100, 50)
    veto = {"contract": cheap["id"], "reason": "wash trade"}
    assert market.send(REGULATOR, "supervision.contract.veto", **veto) == "ok"
    made = trade(market, CAT, DAN, 100, 100)
    assert rules(market, made) == []


@pytest.mark.parametrize(
    ("record", "flagged"),
    [
        ({"unsettled": 1, "shortfalls": 1, "last_slot": SLOT - 200 * SLOT_MS}, True),
        ({"unsettled": 0, "shortfalls": 1, "last_slot": SLOT - 96 * SLOT_MS}, True),
        ({"unsettled": 0, "shortfalls": 3, "last_slot": SLOT - 97 * SLOT_MS}, False),
        ({"unsettled": 0, "shortfalls": 0}, False),
    ],
)
def test_it_flags_parties_with_defaults(
    market: Market, record: dict[str, int], flagged: bool
) -> None:
    made = trade(market, ADA, BEN, 100, 100)
    market.state.set(f"market/defaults/{BEN.address}", record)
    found = rules(market, made)
    assert bool(found) is flagged
    if flagged:
        assert found[0]["rule"] == "defaults"
        assert found[0]["detail"].startswith("the buyer ")


def test_it_flags_a_feeder_loaded_to_the_threshold_right_after_the_contract(
    market: Market,
) -> None:
    below = trade(market, ADA, BEN, 1_599, 100)  # f1 exports 1,599 of 2,000 Wh: 79 %
    assert rules(market, below) == []
    at = trade(market, CAT, DAN, 1, 100)  # 1,600 of 2,000: 80 %
    assert supervision_schema.load(market.state, SLOT, "f1")["export_wh"] == 1_600
    assert rules(market, at) == [
        {
            "rule": "feeder_load",
            "detail": "feeder f1's export is at 80 % of its capacity (1,600 of 2,000 Wh)",
        }
    ]
    # The first contract is judged as the load stood right after it, not as it stands now.
    assert rules(market, below) == []


def test_it_lists_every_rule_a_contract_trips_in_order() -> None:
    big = Market()
    for feeder in ("f1", "f2"):
        payload = {"feeder": feeder, "export_limit_w": 24_000, "import_limit_w": 24_000}
        assert big.send(OPERATOR, "grid.feeder.publish", **payload) == "ok"
    big.household(ADA, credits=1_000_000, feeder="f1")
    big.household(BEN, credits=1_000_000, feeder="f2")
    trade(big, ADA, BEN, 100, 100)
    made = trade(big, ADA, BEN, 5_800, 200)  # f1: 5,900 of 6,000 Wh
    big.state.set(f"market/defaults/{ADA.address}", {"unsettled": 2, "shortfalls": 2})
    assert [r["rule"] for r in rules(big, made)] == ["size", "price", "defaults", "feeder_load"]
    assert rules(big, made)[2]["detail"] == "the seller has 2 unsettled default(s)"


def test_a_blocks_contracts_reviewed_together_get_what_each_gets_alone(market: Market) -> None:
    # Contracts of one slot at spread prices and sizes, across two feeders, one of them vetoed:
    # the projection evaluates a block's new contracts at once (reading the slot once), and
    # must flag each exactly as evaluating it on its own does.
    for seller, buyer, energy_wh, price in (
        (ADA, BEN, 900, 100),
        (CAT, DAN, 400, 300),
        (ADA, DAN, 300, 60),
        (CAT, BEN, 700, 102),
        (ADA, BEN, 600, 99),
    ):
        trade(market, seller, buyer, energy_wh, price)
    made = market.contracts()
    veto = {"contract": made[1]["id"], "reason": "off-market price"}
    assert market.send(REGULATOR, "supervision.contract.veto", **veto) == "ok"
    made = market.contracts()
    alone = {contract["id"]: review.evaluate(contract, market.state, LIMITS) for contract in made}
    assert review.evaluate_made(made, market.state, LIMITS) == alone
    assert sorted({rule["rule"] for rules in alone.values() for rule in rules}) == [
        "feeder_load",
        "price",
    ]


def test_on_a_thin_slot_the_price_is_held_against_the_tariff_band(market: Market) -> None:
    """A contract alone in its slot is its own median, so that rule could never trip on it; with
    a tariff in force the middle of the slot's band stands in until the slot has three."""
    band = {"from_minute": 0, "retail": 30, "feed_in": 10, "network_fee": 5}
    assert market.send(OPERATOR, "market.tariff.publish", from_slot=SLOT, bands=[band]) == "ok"
    alone = trade(market, ADA, BEN, 100, 2_000)  # 100 times the band's middle, 20/kWh
    assert rules(market, alone) == [
        {
            "rule": "price",
            "detail": "2000/kWh is 9900 % away from the middle of the slot's tariff band 20/kWh "
            "(more than 30 %)",
        }
    ]
    near = trade(market, CAT, DAN, 100, 25)  # 25 % from 20: within
    assert rules(market, near) == []
    # A third contract: the slot's own median (25 of 2000, 25, 24) again.
    third = trade(market, ADA, BEN, 100, 24)
    assert rules(market, third) == []
    made = market.contracts()
    assert review.evaluate_made(made, market.state, LIMITS) == {
        contract["id"]: rules(market, contract) for contract in made
    }


def test_without_a_tariff_or_recent_contracts_a_thin_slot_keeps_its_own_median(
    market: Market,
) -> None:
    alone = trade(market, ADA, BEN, 100, 2_000)
    assert rules(market, alone) == []
    assert review.evaluate(alone, market.state, LIMITS, recent=lambda slot, carrier: None) == []


def test_without_a_tariff_a_thin_slot_is_held_against_recent_contracts(market: Market) -> None:
    """No tariff in force: the median price of recent contracts of the carrier (the caller's,
    ``review.Recent``) stands in until the slot has three."""
    asked: list[tuple[int, str]] = []

    def recent(slot: int, carrier: str) -> int:
        asked.append((slot, carrier))
        return 20

    alone = trade(market, ADA, BEN, 100, 2_000)  # 100 times the recent median
    assert review.evaluate(alone, market.state, LIMITS, recent=recent) == [
        {
            "rule": "price",
            "detail": "2000/kWh is 9900 % away from the median of the last day's contracts "
            "20/kWh (more than 30 %)",
        }
    ]
    assert asked == [(SLOT, "electricity")]
    near = trade(market, CAT, DAN, 100, 25)
    third = trade(market, ADA, BEN, 100, 2_000)  # the slot's own median (2000 of 2000, 25, 2000)
    assert [review.evaluate(c, market.state, LIMITS, recent=recent) for c in (near, third)] == [
        [],
        [],
    ]
    made = market.contracts()
    asked.clear()
    assert review.evaluate_made(made, market.state, LIMITS, recent=recent) == {
        contract["id"]: review.evaluate(contract, market.state, LIMITS, recent=recent)
        for contract in made
    }
    assert asked.count((SLOT, "electricity")) == 1 + 2  # once for the block, then per contract


def test_a_tariff_in_force_comes_before_recent_contracts(market: Market) -> None:
    band = {"from_minute": 0, "retail": 30, "feed_in": 10, "network_fee": 5}
    assert market.send(OPERATOR, "market.tariff.publish", from_slot=SLOT, bands=[band]) == "ok"
    alone = trade(market, ADA, BEN, 100, 25)  # 25 % from the band's 20, 75 % from 100
    assert review.evaluate(alone, market.state, LIMITS, recent=lambda slot, carrier: 100) == []


def test_a_flexibility_contract_is_held_to_no_market_price(market: Market) -> None:
    """The grid operator pays for a reduction, not for energy: a flexibility contract's price
    trips no price rule and counts in no median of the slot's energy contracts."""
    from tests.market.support import CAT_METER, INTERVAL_S, T0, batch, reading

    assert market.meter(CAT, CAT_METER, "cat-main", feeder="f1") == "ok"
    assert market.send(CAT, "market.flexibility.enroll") == "ok"
    body = batch(*(reading(T0 + i * INTERVAL_S * 1_000, 0, import_wh=500) for i in range(3)))
    assert market.relay("cat-main", CAT_METER, body, at=T0 + SLOT_MS) == "ok"
    assert market.settle(slot=T0) == "ok"  # Cat's baseline: 1,500 Wh imported
    assert market.send(OPERATOR, "credit.issue", to=OPERATOR.address, amount=10_000) == "ok"

    energy = [trade(market, ADA, BEN, 100, 100), trade(market, ADA, BEN, 100, 100)]
    post = market.tx(
        OPERATOR,
        "market.requirement.post",
        slot=SLOT,
        feeder="f1",
        direction="import",
        energy_wh=1_000,
        price=300,
    )
    assert market.run(post) == ["ok"]
    answer = market.tx(
        CAT, "market.requirement.answer", requirement=post.id, energy_wh=600, price=300
    )
    assert market.run(answer) == ["ok"]
    for _ in range(2):  # two acceptances of one answer: two flexibility contracts
        accept = {"answer": answer.id, "energy_wh": 300}
        assert market.send(OPERATOR, "market.requirement.accept", **accept) == "ok"
    after = trade(market, ADA, BEN, 100, 131)
    flexibility = market.contracts()[2:4]
    assert [c["kind"] for c in flexibility] == ["flexibility", "flexibility"]

    assert [rules(market, c) for c in flexibility] == [[], []]
    # 131 is held against the energy contracts' median, 100, not against 131 (the median with
    # the two flexibility contracts' 300 in it).
    assert [r["rule"] for r in rules(market, after)] == ["price"]
    made = [*energy, *flexibility, after]
    alone = {contract["id"]: review.evaluate(contract, market.state, LIMITS) for contract in made}
    assert review.evaluate_made(made, market.state, LIMITS) == alone
