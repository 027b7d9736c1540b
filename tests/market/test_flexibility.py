"""The network operators' requirements (``market.chain.flexibility``), with real signed
transactions on a pure State. The worked example is docs/market.md's, "Requirements: a worked
example": Ben's baseline from two days of his meter, a requirement on feeder north, his answer,
the operator's acceptance, and the delivered reduction settled with a penalty."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.identity import KeyPair
from market.chain import schema as market_schema
from market.chain.flexibility import baselines_update
from tests.market.support import (
    BEN,
    BEN_METER,
    CAT,
    CAT_METER,
    DAN,
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
DAY = 86_400_000
S1, S2, S3 = SLOT, SLOT + DAY, SLOT + 2 * DAY  # the same time of day on three days
CREDITS = 100_000


def imports(market: Market, meter_id: str, device: KeyPair, slot: int, wh: int) -> None:
    """The meter's three readings of ``wh`` imported each, relayed when the slot has ended."""
    body = batch(*(reading(slot + i * STEP, 0, import_wh=wh) for i in range(3)))
    at = max(market.now + 1_000, slot + SLOT_MS)
    assert market.relay(meter_id, device, body, at=at) == "ok"


@pytest.fixture
def market() -> Market:
    """Ben and Cat on feeder north with meters, Ben enrolled with two days of history at S3's
    time of day (3,000 then 3,600 Wh imported); Dan on feeder south; 1,000 credits for the
    operator's requirements."""
    result = Market()
    for who in (BEN, CAT):
        result.household(who, credits=CREDITS, feeder="north")
    result.household(DAN, credits=CREDITS, feeder="south")
    assert result.send(OPERATOR, "credit.issue", to=OPERATOR.address, amount=1_000) == "ok"
    assert result.meter(BEN, BEN_METER, "ben-main", feeder="north") == "ok"
    assert result.meter(CAT, CAT_METER, "cat-main", feeder="north") == "ok"
    assert result.send(BEN, "market.flexibility.enroll") == "ok"
    for day, wh in ((S1, 1_000), (S2, 1_200)):
        imports(result, "ben-main", BEN_METER, day, wh)
        assert result.settle(slot=day) == "ok"
    return result


def post(market: Market, **overrides: Any) -> tuple[str, str]:
    payload = {
        "slot": S3,
        "feeder": "north",
        "direction": "import",
        "energy_wh": 2_000,
        "price": 50,
    } | overrides
    tx = market.tx(OPERATOR, "market.requirement.post", **payload)
    return market.run(tx, at=max(market.now + 1_000, S3 - 2 * 3_600_000))[0], tx.id


def answer(
    market: Market, who: KeyPair, requirement: str, energy_wh: int, price: int
) -> tuple[str, str]:
    tx = market.tx(
        who, "market.requirement.answer", requirement=requirement, energy_wh=energy_wh, price=price
    )
    return market.run(tx)[0], tx.id


def test_the_baseline_is_the_mean_of_the_days_seen(market: Market) -> None:
    record = market.state.get(market_schema.baseline_key(BEN.address))
    index = str(S3 % DAY // SLOT_MS)
    # The same slot on two days: (3,000 + 3,600) // 2; and the latest settled slots, the same two.
    assert record == {"slots": {index: [3_300, 0, 2]}, "recent": [3_300, 0, 2]}
    # Cat is not enrolled: her readings keep no baseline.
    assert market.state.get(market_schema.baseline_key(CAT.address)) is None


def test_from_the_seventh_day_the_newest_day_weighs_a_seventh() -> None:
    market = Market()
    market.household(BEN, credits=0, feeder="north")
    assert market.meter(BEN, BEN_METER, "ben-main", feeder="north") == "ok"
    assert market.send(BEN, "market.flexibility.enroll") == "ok"
    index = str(S1 % DAY // SLOT_MS)
    key = market_schema.baseline_key(BEN.address)
    market.state.set(key, {"slots": {index: [700, 0, 7]}, "recent": [1_000, 0, 4]})
    imports(market, "ben-main", BEN_METER, S1, 1_000)  # 3,000 Wh in the slot
    baselines_update(market.state, S1, SLOT_MS, ["ben-main"])
    assert market.state.get(key) == {
        "slots": {index: [(700 * 6 + 3_000) // 7, 0, 7]},
        "recent": [(1_000 * 3 + 3_000) // 4, 0, 4],  # the last 4 slots: the newest weighs 1/4
    }


def test_before_a_day_of_history_the_recent_slots_are_the_baseline(market: Market) -> None:
    """Cat enrols and her meter reads one slot, at another time of day than the requirement's:
    her baseline for it is the recent one until a day has passed."""
    assert market.send(CAT, "market.flexibility.enroll") == "ok"
    earlier = S3 - 4 * SLOT_MS
    imports(market, "cat-main", CAT_METER, earlier, 500)
    assert market.settle(slot=earlier) == "ok"
    record = market.state.get(market_schema.baseline_key(CAT.address))
    assert record["recent"] == [1_500, 0, 1]
    assert str(S3 % DAY // SLOT_MS) not in record["slots"]
    _, requirement = post(market)
    assert answer(market, CAT, requirement, 1_501, 40)[0] == "exceeds_baseline"
    assert answer(market, CAT, requirement, 1_500, 40)[0] == "ok"


def test_a_requirement_is_answered_accepted_delivered_and_settled_by_the_worked_example(
    market: Market,
) -> None:
    """docs/market.md, "Requirements: a worked example"."""
    result, requirement = post(market)
    assert result == "ok"
    assert market.locked(OPERATOR) == 100  # the budget: 2,000 Wh x 50
    result, answer_id = answer(market, BEN, requirement, 1_500, 40)
    assert result == "ok"
    assert market.locked(BEN) == 12  # deposit: 20 % of 1,500 Wh x 40

    accept = {"answer": answer_id, "energy_wh": 1_500}
    assert market.send(OPERATOR, "market.requirement.accept", **accept) == "ok"
    made = market.contract(f"{S3}-0")
    assert {k: made[k] for k in ("kind", "seller", "buyer", "energy_wh", "price")} == {
        "kind": "flexibility",
        "seller": BEN.address,
        "buyer": OPERATOR.address,
        "energy_wh": 1_500,
        "price": 40,
    }
    assert (made["escrow"], made["deposit"], made["network_fee"]) == (60, 12, 0)
    assert (made["requirement"], made["direction"], made["feeder"]) == (
        requirement,
        "import",
        "north",
    )
    assert made["baseline_wh"] == 3_300
    assert "feeders" not in made  # no energy moves: no feeder's load counts it
    # Escrow 60 at Ben's price, and 25 of budget left for the 500 Wh still required.
    assert market.locked(OPERATOR) == 85
    assert market.emitted("market.answer_closed") == [
        {"id": answer_id, "status": "taken", "remaining_wh": 0}
    ]

    assert market.send(OPERATOR, "market.slot.clear", slot=S3, at=S3 - 300_000) == "ok"
    assert market.locked(OPERATOR) == 60  # the requirement's rest expired
    imports(market, "ben-main", BEN_METER, S3, 700)  # 2,100 Wh: 1,200 below the baseline
    assert market.settle(slot=S3) == "ok"
    (settled,) = [r for r in market.emitted("market.contract_settled") if r["slot"] == S3]
    assert settled == {
        "slot": S3,
        "contract": f"{S3}-0",
        "seller": BEN.address,
        "buyer": OPERATOR.address,
        "energy_wh": 1_500,
        "export_wh": 0,
        "measured_wh": 2_100,
        "baseline_wh": 3_300,
        "delivered_wh": 1_200,
        "paid": 48,  # 1,200 Wh x 40
        "fee": 0,
        "penalty": 2,  # 20 % of 300 Wh x 40
        "escrow_released": 12,
        "deposit_released": 10,
    }
    assert (market.balance(BEN), market.locked(BEN)) == (CREDITS + 48 - 2, 0)
    assert (market.balance(OPERATOR), market.locked(OPERATOR)) == (1_000 - 48 + 2, 0)
    assert market.state.get(market_schema.defaults_key(BEN.address))["unsettled"] == 1
    # The settled day joins the baseline: (3,300 x 2 + 2,100) // 3.
    index = str(S3 % DAY // SLOT_MS)
    assert market.state.get(market_schema.baseline_key(BEN.address))["slots"][index] == [
        2_900,
        0,
        3,
    ]
    assert market.state.get(market_schema.baseline_key(BEN.address))["recent"] == [2_900, 0, 3]
    assert market.replay().root() == market.state.root()


@pytest.mark.parametrize("missing", ["no reading", "quality missing"])
def test_a_meter_that_did_not_read_the_whole_slot_delivers_no_reduction(
    market: Market, missing: str
) -> None:
    """A missing interval counts 0 Wh: without this rule it would look like a reduction."""
    _, requirement = post(market)
    _, answer_id = answer(market, BEN, requirement, 1_500, 40)
    accept = {"answer": answer_id, "energy_wh": 1_500}
    assert market.send(OPERATOR, "market.requirement.accept", **accept) == "ok"
    assert market.send(OPERATOR, "market.slot.clear", slot=S3, at=S3 - 300_000) == "ok"
    read = [reading(S3 + i * STEP, 0, import_wh=300) for i in range(2)]
    if missing == "quality missing":
        read.append(reading(S3 + 2 * STEP, 0, quality="missing"))
    assert market.relay("ben-main", BEN_METER, batch(*read), at=S3 + SLOT_MS) == "ok"
    assert market.settle(slot=S3) == "ok"
    (settled,) = [r for r in market.emitted("market.contract_settled") if r["slot"] == S3]
    assert (settled["measured_wh"], settled["delivered_wh"]) == (600, 0)
    assert (settled["paid"], settled["penalty"]) == (0, 12)  # 20 % of 1,500 Wh x 40


def test_answers_are_refused_where_they_cannot_be_measured_or_exceed_the_requirement(
    market: Market,
) -> None:
    result, requirement = post(market)
    assert result == "ok"
    assert answer(market, BEN, requirement, 1_000, 60)[0] == "price_above_requirement"
    assert answer(market, BEN, requirement, 2_500, 40)[0] == "exceeds_requirement"
    assert answer(market, CAT, requirement, 500, 40)[0] == "not_enrolled"
    assert answer(market, DAN, requirement, 500, 40)[0] == "not_on_feeder"
    assert answer(market, BEN, "nope", 500, 40)[0] == "unknown_requirement"
    assert market.send(CAT, "market.flexibility.enroll") == "ok"
    assert market.send(CAT, "market.flexibility.enroll") == "already_enrolled"
    assert answer(market, CAT, requirement, 500, 40)[0] == "no_baseline"
    result, other = post(market, energy_wh=5_000)
    assert result == "ok"
    assert answer(market, BEN, other, 4_000, 40)[0] == "exceeds_baseline"  # baseline 3,300
    assert market.locked(BEN) == market.locked(CAT) == market.locked(DAN) == 0


def test_a_requirement_is_refused_without_the_budget_or_a_sound_payload(market: Market) -> None:
    assert post(market, energy_wh=100_000, price=100)[0] == "insufficient_free_balance"
    assert post(market, direction="both")[0] == "bad_direction"
    assert post(market, feeder="North!")[0] == "bad_feeder"
    assert post(market, carrier="heat")[0] == "bad_carrier"
    assert (
        market.send(
            BEN,
            "market.requirement.post",
            slot=S3,
            feeder="north",
            direction="import",
            energy_wh=1,
            price=1,
        )
        == "not_allowed"
    )
    assert market.locked(OPERATOR) == 0


def test_accepting_more_than_answered_or_left_is_refused(market: Market) -> None:
    _, requirement = post(market, energy_wh=1_000)
    _, first = answer(market, BEN, requirement, 1_000, 40)
    _, second = answer(market, BEN, requirement, 1_000, 40)
    assert market.locked(BEN) == 16  # two deposits of 8: 20 % of 1,000 Wh x 40

    def accept(answer_id: str, energy_wh: int) -> str:
        return market.send(
            OPERATOR, "market.requirement.accept", answer=answer_id, energy_wh=energy_wh
        )

    assert accept(first, 1_001) == "exceeds_answer"
    assert accept(first, 600) == "ok"
    assert accept(second, 401) == "exceeds_requirement"  # 400 Wh are left to require
    assert accept(second, 400) == "ok"
    assert market.emitted("market.requirement_closed") == [
        {"id": requirement, "status": "filled", "remaining_wh": 0}
    ]
    # The first answer's rest expired with the requirement; the contracts keep their deposits:
    # 8 - deposit(400 Wh) = 5 and 8 - deposit(600 Wh) = 4.
    assert [made["deposit"] for made in market.contracts(S3)] == [5, 4]
    assert market.locked(BEN) == 9
    assert market.locked(OPERATOR) == 24 + 16  # the escrows at 40: 600 Wh and 400 Wh
    closed = {data["id"]: data["status"] for data in market.emitted("market.answer_closed")}
    assert closed == {first: "expired", second: "expired"}  # their rests, with the requirement


def test_a_regulator_vetoes_a_flexibility_contract(market: Market) -> None:
    _, requirement = post(market)
    _, answer_id = answer(market, BEN, requirement, 1_500, 40)
    assert (
        market.send(OPERATOR, "market.requirement.accept", answer=answer_id, energy_wh=1_500)
        == "ok"
    )
    veto = {"contract": f"{S3}-0", "reason": "the feeder's limit was lifted"}
    assert market.send(REGULATOR, "supervision.contract.veto", **veto) == "ok"
    assert market.locked(BEN) == 0
    assert market.locked(OPERATOR) == 25  # only the requirement's rest
