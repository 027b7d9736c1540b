"""A meter's readings stay in the state only while settlement may need them
(``meters.chain.metering``: ``meter/window/<id>``, the watermark, late readings and the events),
with real signed transactions on a pure State: with the market's answer to ``SLOT_CLOSED``, and
with a stand-in that closes the slots a test names."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.registry import build_registry
from meters.chain import schema as meters_schema
from meters.chain.metering import MAX_WATERMARK_STEPS, SLOT_CLOSED
from tests.market.support import (
    ADA,
    ADA_METER,
    BEN,
    INTERVAL_S,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    reading,
)

STEP = INTERVAL_S * 1_000
DELAY_MS = 900_000  # market.settlement_delay_ms's default
DUE = SLOT + SLOT_MS + DELAY_MS  # SLOT may settle; had it no contract, it is closed


def held(market: Market, meter_id: str = "ada-main") -> dict[str, Any] | None:
    value: dict[str, Any] | None = market.state.get(meters_schema.window_key(meter_id))
    return value


def values(export_wh: int) -> dict[str, Any]:
    return {"import_wh": 0, "export_wh": export_wh, "quality": "actual"}


def relay(market: Market, *readings: dict[str, Any], at: int | None = None) -> None:
    assert market.relay("ada-main", ADA_METER, batch(*readings), at=at) == "ok"


# --- with the market ---------------------------------------------------------------------------


@pytest.fixture
def market() -> Market:
    """Ada (with her meter) sells 1,000 Wh to Ben in SLOT."""
    result = Market()
    for who in (ADA, BEN):
        result.household(who)
    assert result.meter(ADA, ADA_METER, "ada-main") == "ok"
    assert result.place(ADA, "sell", 1_000, 100)[0] == "ok"
    assert result.place(BEN, "buy", 1_000, 100)[0] == "ok"
    return result


def test_it_drops_a_settled_slots_readings_at_the_meters_next_batch(market: Market) -> None:
    assert market.deliver("ada-main", ADA_METER, [400, 300, 300], slot=SLOT) == "ok"
    relay(market, reading(SLOT + SLOT_MS, 50))  # the next slot: no contract, not ended
    assert market.settle(at=DUE) == "ok"
    # Settlement read them; they stay until the meter sends again.
    assert meters_schema.reading(market.state, "ada-main", SLOT) == values(400)

    relay(market, reading(SLOT + SLOT_MS + STEP, 60), at=DUE + 1_000)
    assert held(market) == {
        "closed_from": SLOT,
        "watermark": SLOT + SLOT_MS,
        "readings": {
            str(SLOT + SLOT_MS): values(50),
            str(SLOT + SLOT_MS + STEP): values(60),
        },
    }
    for start in (SLOT, SLOT + STEP, SLOT + 2 * STEP):
        assert meters_schema.reading(market.state, "ada-main", start) is None
    assert market.emitted("meters.readings_pruned") == [
        {"meter": "ada-main", "slots": [SLOT], "watermark": SLOT + SLOT_MS}
    ]
    assert list(market.state.keys("meter/reading/")) == []  # the old family is gone for good
    assert market.replay().root() == market.state.root()


def test_a_reading_for_a_settled_slot_is_late_and_never_settled(market: Market) -> None:
    assert market.deliver("ada-main", ADA_METER, [400, 0], slot=SLOT) == "ok"
    assert market.settle(at=DUE) == "ok"
    balances = {who: market.balance(who) for who in (ADA, BEN)}

    late, fresh = SLOT + 2 * STEP, SLOT + 2 * SLOT_MS
    relay(market, reading(late, 1_500), reading(fresh, 7), at=DUE + 1_000)
    assert meters_schema.reading(market.state, "ada-main", late) is None
    assert meters_schema.reading(market.state, "ada-main", fresh) == values(7)
    assert market.emitted("meters.readings_late") == [{"meter": "ada-main", "starts": [late]}]
    assert market.emitted("meters.readings_recorded")[-1] == {
        "meter": "ada-main",
        "starts": [fresh],
        "skipped": 0,
    }
    # Sent again later, it is late again: the watermark says so without asking the market.
    relay(market, reading(late, 1_500))
    assert market.emitted("meters.readings_late")[-1] == {"meter": "ada-main", "starts": [late]}
    assert meters_schema.reading(market.state, "ada-main", late) is None

    assert market.settle(at=DUE + 10_000) != "ok"  # its contracts have left the state
    assert {who: market.balance(who) for who in (ADA, BEN)} == balances


def test_a_slot_without_contracts_or_readings_closes_when_its_settlement_would_be_due() -> None:
    market = Market()
    market.household(ADA)
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    relay(market, reading(SLOT + SLOT_MS, 10), at=DUE)  # the next slot: open
    relay(market, reading(SLOT, 20), at=DUE)  # SLOT had nothing: closed, so this is late
    assert market.emitted("meters.readings_late") == [{"meter": "ada-main", "starts": [SLOT]}]
    assert market.settle(slot=SLOT, at=DUE) == "nothing_to_settle"


def test_a_slot_with_readings_waits_for_its_settlement_even_without_contracts() -> None:
    """Its readings settle with the supplier of last resort (``market.chain.residual``): the
    slot closes when it settles, not before."""
    market = Market()
    market.household(ADA)
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    relay(market, reading(SLOT, 10), at=DUE - 1_000)
    assert meters_schema.slot_meters(market.state, SLOT) == ["ada-main"]

    relay(market, reading(SLOT + STEP, 20), at=DUE + 60_000)  # due, not settled: still counts
    assert meters_schema.reading(market.state, "ada-main", SLOT + STEP) == values(20)
    assert meters_schema.slot_meters(market.state, SLOT) == ["ada-main"]  # indexed once
    assert market.emitted("meters.readings_late") == []

    assert market.settle(slot=SLOT, at=DUE + 120_000) == "ok"
    assert not meters_schema.slot_has_readings(market.state, SLOT)
    relay(market, reading(SLOT + 2 * STEP, 30))
    assert held(market) == {"closed_from": SLOT, "watermark": SLOT + SLOT_MS, "readings": {}}
    assert market.emitted("meters.readings_late") == [
        {"meter": "ada-main", "starts": [SLOT + 2 * STEP]}
    ]
    assert market.settle(slot=SLOT, at=DUE + 180_000) == "nothing_to_settle"
    assert market.replay().root() == market.state.root()


def test_a_refused_batch_leaves_no_event(market: Market) -> None:
    before = len(market.events)
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, -1)), at=DUE) == "bad_energy"
    assert market.events[before:] == []
    assert held(market) is None


# --- with a stand-in for the market ------------------------------------------------------------


class Closing:
    """The meters' and the ledger's rules, and a ``SLOT_CLOSED`` that closes what a test says."""

    def __init__(self) -> None:
        self.closed: set[int] = set()
        self.asked: list[int] = []
        self.market = Market()
        self.market.registry = build_registry(["meters.chain"])
        self.market.registry.hook(SLOT_CLOSED, self.slot_closed)
        self.market.household(ADA, feeder="")
        assert self.market.meter(ADA, ADA_METER, "ada-main") == "ok"

    def slot_closed(self, state: Any, slot: int, now: int) -> bool:
        self.asked.append(slot)
        return slot in self.closed


def test_the_watermark_never_passes_a_slot_still_open() -> None:
    closing = Closing()
    market = closing.market
    s0, s1, s2, s3 = (SLOT + n * SLOT_MS for n in range(4))
    at = s3 + SLOT_MS
    relay(market, reading(s0, 1), reading(s1, 2), reading(s2, 3), at=at)

    # s2 closes before s1 (a slot without contracts closes before one that waits to settle).
    closing.closed |= {s0, s2}
    relay(market, reading(s3, 4))
    assert held(market) == {
        "closed_from": s0,
        "watermark": s1,
        "readings": {str(s1): values(2), str(s3): values(4)},
    }
    assert market.emitted("meters.readings_pruned") == [
        {"meter": "ada-main", "slots": [s0, s2], "watermark": s1}
    ]
    # s1 still counts: its readings are recorded; s0 (the watermark) and s2 (asked) are late.
    relay(market, reading(s0 + STEP, 5), reading(s1 + STEP, 6), reading(s2 + STEP, 7))
    assert meters_schema.reading(market.state, "ada-main", s1 + STEP) == values(6)
    assert market.emitted("meters.readings_late")[-1] == {
        "meter": "ada-main",
        "starts": [s0 + STEP, s2 + STEP],
    }

    closing.closed.add(s1)
    relay(market, reading(s3 + STEP, 8))
    window = held(market)
    assert window is not None
    assert (window["closed_from"], window["watermark"]) == (s0, s2)
    assert sorted(window["readings"]) == [str(s3), str(s3 + STEP)]


def test_a_meter_that_recorded_nothing_has_no_window() -> None:
    closing = Closing()
    closing.closed.add(SLOT)
    relay(closing.market, reading(SLOT, 1), at=SLOT + SLOT_MS)
    assert held(closing.market) is None
    assert closing.market.emitted("meters.readings_late") == [
        {"meter": "ada-main", "starts": [SLOT]}
    ]
    assert closing.market.emitted("meters.readings_recorded") == []


def test_the_state_holds_a_few_slots_of_readings_however_long_a_meter_reports() -> None:
    closing = Closing()
    market = closing.market
    for n in range(40):
        slot = SLOT + n * SLOT_MS
        closing.closed = {s for s in range(SLOT, slot, SLOT_MS) if s < slot - SLOT_MS}
        if n >= 2:  # the slot closing now settles: its index leaves, as the market takes it
            assert meters_schema.slot_meters_take(market.state, slot - 2 * SLOT_MS) == ["ada-main"]
        relay(market, *(reading(slot + i * STEP, n) for i in range(3)), at=slot + SLOT_MS)
        window = held(market)
        assert window is not None
        assert len(window["readings"]) <= 6  # this slot's and the one before
    open_slots = (SLOT + 38 * SLOT_MS, SLOT + 39 * SLOT_MS)  # indexed until they settle
    assert sorted(market.state.keys("meter/")) == sorted(
        [
            "meter/ada-main",
            f"meter/key/{ADA_METER.public_key_hex}",
            f"meter/owner/{ADA.address}",
            "meter/window/ada-main",
            *(meters_schema.inslot_key(slot) for slot in open_slots),
            *(f"{meters_schema.inslot_key(slot)}/0" for slot in open_slots),
        ]
    )
    assert (held(market) or {})["watermark"] == SLOT + 38 * SLOT_MS


def test_one_batch_moves_the_watermark_a_bounded_number_of_slots() -> None:
    closing = Closing()
    market = closing.market
    first, last = SLOT, SLOT + (MAX_WATERMARK_STEPS + 10) * SLOT_MS
    relay(market, reading(first, 1), reading(last, 2), at=last + SLOT_MS)
    closing.closed = set(range(first, last + SLOT_MS, SLOT_MS))
    closing.asked.clear()
    relay(market, reading(last + SLOT_MS, 3))
    window = held(market)
    assert window is not None
    assert window["watermark"] == first + MAX_WATERMARK_STEPS * SLOT_MS
    assert window["readings"] == {str(last + SLOT_MS): values(3)}
    assert len(closing.asked) <= MAX_WATERMARK_STEPS + 3


def test_without_the_hook_no_slot_closes() -> None:
    market = Market()
    market.registry = build_registry(["meters.chain"])
    market.household(ADA, feeder="")
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    relay(market, reading(SLOT, 1), at=SLOT + 100 * SLOT_MS)
    relay(market, reading(SLOT + STEP, 2))
    assert sorted((held(market) or {})["readings"]) == [str(SLOT), str(SLOT + STEP)]
    assert market.emitted("meters.readings_pruned") == []
    assert market.emitted("meters.readings_late") == []
