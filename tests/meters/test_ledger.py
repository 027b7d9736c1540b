"""Meter data on the ledger (``meters.chain.metering``): registration and relayed, device-signed
readings, with real signed transactions on a pure State."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.identity import KeyPair
from meters.chain import metering as meters
from meters.chain import schema as meters_schema
from tests.market.support import (
    ADA,
    ADA_METER,
    ADA_PV,
    BEN,
    BEN_METER,
    DAN,
    INTERVAL_S,
    OPERATOR,
    REGULATOR,
    SLOT,
    SLOT_MS,
    Market,
    batch,
    device_signature,
    reading,
)

STEP = INTERVAL_S * 1_000
AFTER = SLOT + SLOT_MS  # the slot has ended: its readings may be relayed


@pytest.fixture
def market() -> Market:
    result = Market()
    for who in (ADA, BEN):
        result.household(who)
    assert result.meter(ADA, ADA_METER, "ada-main") == "ok"
    return result


def register_payload(**changes: Any) -> dict[str, Any]:
    return {
        "meter": "ada-pv",
        "owner": ADA.address,
        "kind": "pv",
        "public_key": ADA_PV.public_key_hex,
        "feeder": "f1",
        "interval_s": 300,
    } | changes


def relay_payload(body: str, **changes: Any) -> dict[str, Any]:
    t = AFTER // 1_000
    payload = {
        "meter": "ada-main",
        "t": t,
        "body": body,
        "signature": device_signature(ADA_METER, t, body),
    }
    return payload | changes


def recorded(market: Market, start_ms: int, meter_id: str = "ada-main") -> dict[str, Any] | None:
    value = meters_schema.reading(market.state, meter_id, start_ms)
    return None if value is None else dict(value)


# --- meter.register ----------------------------------------------------------------------------


def test_it_registers_a_households_meter(market: Market) -> None:
    assert market.send(OPERATOR, "meter.register", **register_payload()) == "ok"
    expected = {
        "id": "ada-pv",
        "owner": ADA.address,
        "kind": "pv",
        "public_key": ADA_PV.public_key_hex,
        "feeder": "f1",
        "interval_s": 300,
        "registered_height": market.height,
        "height": market.height,
    }
    assert meters_schema.meter(market.state, "ada-pv") == expected
    assert market.emitted("meters.meter_registered")[-1] == expected
    assert meters_schema.meters_of(market.state, ADA.address) == ["ada-main", "ada-pv"]
    assert market.state.get(f"meter/key/{ADA_PV.public_key_hex}") == "ada-pv"


@pytest.mark.parametrize("who", [ADA, REGULATOR])
def test_it_lets_only_the_grid_operator_register_meters(market: Market, who: KeyPair) -> None:
    assert market.send(who, "meter.register", **register_payload()) == "not_allowed"
    assert meters_schema.meter(market.state, "ada-pv") is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"extra": 1}, "bad_payload"),
        ({"meter": "Ada PV"}, "bad_meter"),
        ({"meter": "ada/pv"}, "bad_meter"),
        ({"meter": ""}, "bad_meter"),
        ({"meter": "a" * 65}, "bad_meter"),
        ({"meter": 7}, "bad_meter"),
        ({"owner": "nonsense"}, "bad_address"),
        ({"owner": ADA.address[:-1] + ("0" if ADA.address[-1] != "0" else "1")}, "bad_address"),
        ({"owner": DAN.address}, "unknown_account"),
        ({"owner": REGULATOR.address}, "not_household"),
        ({"owner": OPERATOR.address}, "not_household"),
        ({"kind": "wind"}, "bad_kind"),
        ({"kind": ["pv"]}, "bad_kind"),
        ({"public_key": "zz" * 32}, "bad_public_key"),
        ({"public_key": ADA_PV.public_key_hex.upper()}, "bad_public_key"),
        ({"public_key": ADA_PV.public_key_hex[:62]}, "bad_public_key"),
        ({"public_key": None}, "bad_public_key"),
        ({"feeder": "F 1"}, "bad_feeder"),
        ({"feeder": 1}, "bad_feeder"),
        ({"interval_s": 59}, "bad_interval"),
        ({"interval_s": 0}, "bad_interval"),
        ({"interval_s": 120}, "bad_interval"),  # 900 s is not a whole number of 120 s
        ({"interval_s": 1_800}, "bad_interval"),  # longer than the slot: in no slot
        ({"interval_s": "300"}, "bad_interval"),
        ({"interval_s": True}, "bad_interval"),
    ],
)
def test_it_refuses_bad_registrations(market: Market, changes: dict[str, Any], code: str) -> None:
    assert market.send(OPERATOR, "meter.register", **register_payload(**changes)) == code
    assert meters_schema.meter(market.state, "ada-pv") is None
    assert meters_schema.meters_of(market.state, ADA.address) == ["ada-main"]


def test_it_refuses_a_payload_without_a_field(market: Market) -> None:
    payload = register_payload()
    del payload["feeder"]
    assert market.send(OPERATOR, "meter.register", **payload) == "bad_payload"


@pytest.mark.parametrize("interval_s", [60, 300, 900])
def test_it_accepts_intervals_that_divide_the_slot(market: Market, interval_s: int) -> None:
    result = market.send(OPERATOR, "meter.register", **register_payload(interval_s=interval_s))
    assert result == "ok"


def test_it_accepts_longer_intervals_with_longer_slots() -> None:
    market = Market(slot_ms=3_600_000)
    market.household(ADA)
    assert market.meter(ADA, ADA_METER, "ada-main", interval_s=1_800) == "ok"


def test_it_replaces_a_meters_device_but_not_its_owner(market: Market) -> None:
    first = meters_schema.meter(market.state, "ada-main")
    assert first is not None
    assert market.meter(ADA, ADA_PV, "ada-main", kind="battery", feeder="f2") == "ok"
    replaced = meters_schema.meter(market.state, "ada-main")
    assert replaced == first | {
        "public_key": ADA_PV.public_key_hex,
        "kind": "battery",
        "feeder": "f2",
        "height": market.height,
    }
    assert market.state.get(f"meter/key/{ADA_METER.public_key_hex}") is None
    assert market.state.get(f"meter/key/{ADA_PV.public_key_hex}") == "ada-main"
    assert meters_schema.meters_of(market.state, ADA.address) == ["ada-main"]

    body = batch(reading(SLOT, 10))
    assert market.relay("ada-main", ADA_METER, body, at=AFTER) == "bad_device_signature"
    assert market.relay("ada-main", ADA_PV, body, at=AFTER) == "ok"
    # The old device's key is free again: another meter may get it.
    assert market.meter(ADA, ADA_METER, "ada-spare") == "ok"


def test_it_accepts_the_same_registration_again(market: Market) -> None:
    assert market.meter(ADA, ADA_METER, "ada-main") == "ok"
    registered = meters_schema.meter(market.state, "ada-main")
    assert registered is not None
    assert registered["registered_height"] < registered["height"] == market.height


def test_it_refuses_moving_a_meter_to_another_household(market: Market) -> None:
    assert market.meter(BEN, ADA_METER, "ada-main") == "owner_mismatch"
    assert market.meter(BEN, BEN_METER, "ada-main") == "owner_mismatch"
    registered = meters_schema.meter(market.state, "ada-main")
    assert registered is not None
    assert registered["owner"] == ADA.address
    assert meters_schema.meters_of(market.state, BEN.address) == []


def test_it_refuses_changing_a_meters_interval(market: Market) -> None:
    assert market.meter(ADA, ADA_PV, "ada-main", interval_s=900) == "interval_mismatch"
    registered = meters_schema.meter(market.state, "ada-main")
    assert registered is not None
    assert (registered["interval_s"], registered["public_key"]) == (300, ADA_METER.public_key_hex)


def test_it_refuses_a_device_key_that_belongs_to_another_meter(market: Market) -> None:
    # The device signs no meter id, so a shared key would let one meter's batch pass as another's.
    assert market.meter(BEN, ADA_METER, "ben-main") == "key_in_use"
    assert meters_schema.meter(market.state, "ben-main") is None


def test_it_limits_the_meters_of_a_household(market: Market) -> None:
    for n in range(1, meters.MAX_METERS_PER_OWNER):
        assert market.meter(ADA, KeyPair(private_key=bytes([n]) * 32), f"ada-{n}") == "ok"
    assert market.meter(ADA, ADA_PV, "ada-one-too-many") == "too_many_meters"
    assert len(meters_schema.meters_of(market.state, ADA.address)) == meters.MAX_METERS_PER_OWNER
    # Replacing the device of one of them is still possible.
    assert market.meter(ADA, ADA_PV, "ada-1") == "ok"


# --- meter.readings ----------------------------------------------------------------------------


def test_it_records_device_signed_readings_per_meter_and_interval(market: Market) -> None:
    body = batch(
        reading(SLOT, 412, import_wh=3),
        reading(SLOT + STEP, 0, import_wh=250, quality="estimated"),
        reading(SLOT + 2 * STEP, 0, quality="missing"),
    )
    tx = market.tx(OPERATOR, "meter.readings", **relay_payload(body))
    assert market.run(tx, at=AFTER) == ["ok"]
    # The values only: which block and transaction recorded them is in the block.
    assert recorded(market, SLOT) == {"import_wh": 3, "export_wh": 412, "quality": "actual"}
    assert recorded(market, SLOT + STEP) == {
        "import_wh": 250,
        "export_wh": 0,
        "quality": "estimated",
    }
    assert recorded(market, SLOT + 2 * STEP) == {
        "import_wh": 0,
        "export_wh": 0,
        "quality": "missing",
    }
    assert market.state.get("meter/conflicts/ada-main") is None
    assert market.emitted("meters.readings_recorded") == [
        {"meter": "ada-main", "starts": [SLOT, SLOT + STEP, SLOT + 2 * STEP], "skipped": 0}
    ]


def test_it_reads_times_in_any_zone_as_the_same_instant(market: Market) -> None:
    body = batch(reading(SLOT, 5) | {"start": "2026-01-01T02:00:00+01:00"})
    assert SLOT == 1_767_229_200_000  # 2026-01-01T01:00:00Z
    assert market.relay("ada-main", ADA_METER, body, at=AFTER) == "ok"
    assert recorded(market, SLOT) is not None


def test_it_lets_only_the_grid_operator_relay_readings(market: Market) -> None:
    payload = relay_payload(batch(reading(SLOT, 10)))
    for who in (ADA, REGULATOR):
        assert market.send(who, "meter.readings", at=AFTER, **payload) == "not_allowed"
    assert recorded(market, SLOT) is None


def test_it_refuses_a_relayed_batch_with_a_tampered_body(market: Market) -> None:
    signed = batch(reading(SLOT, 10))
    payload = relay_payload(signed) | {"body": signed.replace('"export_wh":10', '"export_wh":9000')}
    assert payload["body"] != signed
    assert market.send(OPERATOR, "meter.readings", at=AFTER, **payload) == "bad_device_signature"
    assert recorded(market, SLOT) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"t": AFTER // 1_000 + 1},  # signed at another time
        {"signature": "00" * 64},
        {"signature": "ab"},
        {"signature": 5},
    ],
)
def test_it_refuses_a_batch_its_device_did_not_sign(
    market: Market, changes: dict[str, Any]
) -> None:
    payload = relay_payload(batch(reading(SLOT, 10))) | changes
    assert market.send(OPERATOR, "meter.readings", at=AFTER, **payload) == "bad_device_signature"
    assert recorded(market, SLOT) is None


def test_it_refuses_a_batch_signed_by_another_device(market: Market) -> None:
    body = batch(reading(SLOT, 10))
    assert market.relay("ada-main", BEN_METER, body, at=AFTER) == "bad_device_signature"
    signature = device_signature(ADA_METER, 1, body).upper()
    assert market.relay("ada-main", ADA_METER, body, at=AFTER, t=1, signature=signature) == (
        "bad_device_signature"
    )


def _reading_with(**changes: Any) -> str:
    return batch(reading(SLOT, 10) | changes)


def _reading_without(field: str) -> str:
    item = reading(SLOT, 10)
    del item[field]
    return batch(item)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("", "bad_body"),
        ("not json", "bad_body"),
        ("[]", "bad_body"),
        ('{"readings": {}}', "bad_body"),
        ('{"readings": [], "meter": "ada-main"}', "bad_body"),
        ('{"readings": [], "readings": []}', "bad_body"),  # a repeated key
        (batch(reading(SLOT, 10)).replace('"export_wh":10', '"export_wh":10.0'), "bad_body"),
        (batch(reading(SLOT, 10)).replace('"export_wh":10', '"export_wh":NaN'), "bad_body"),
        (batch(*[reading(SLOT, 0)] * (meters.MAX_READINGS + 1)), "too_many_readings"),
        ('{"readings": [5]}', "bad_reading"),
        (_reading_without("quality"), "bad_reading"),
        (_reading_with(meter="ada-main"), "bad_reading"),
        (_reading_with(start="2026-01-01T01:00:00"), "bad_start"),  # no zone
        (_reading_with(start="2026-01-01 01:00:00Z"), "bad_start"),
        (_reading_with(start="2026-01-01T01:00Z"), "bad_start"),
        (_reading_with(start="2026-01-01T01:00:00+0100"), "bad_start"),
        (_reading_with(start="2026-02-29T01:00:00Z"), "bad_start"),  # 2026 is not a leap year
        (_reading_with(start="2026-12-31T23:59:60Z"), "bad_start"),  # leap second
        (_reading_with(start="2026-01-01T01:00:00.0001Z"), "bad_start"),
        (_reading_with(start="٢٠٢٦-01-01T01:00:00Z"), "bad_start"),  # not ASCII digits
        (_reading_with(start="1969-12-31T23:55:00Z"), "bad_start"),
        (_reading_with(start=1_767_229_200), "bad_start"),
        (_reading_with(duration_s=900), "bad_duration"),
        (_reading_with(duration_s="300"), "bad_duration"),
        (_reading_with(start="2026-01-01T01:01:00Z"), "misaligned_reading"),
        (_reading_with(start="2026-01-01T01:00:00.5Z"), "misaligned_reading"),
        (_reading_with(export_wh=-1), "bad_energy"),
        (_reading_with(import_wh="5"), "bad_energy"),
        (_reading_with(import_wh=True), "bad_energy"),
        (_reading_with(export_wh=10**9 + 1), "bad_energy"),
        (_reading_with(quality="good"), "bad_quality"),
        (_reading_with(start="2026-01-01T02:00:00Z"), "future_reading"),
    ],
)
def test_it_refuses_a_malformed_batch_whole(market: Market, body: str, code: str) -> None:
    good_then_bad = body.replace('{"readings":[', '{"readings":[' + json.dumps(reading(0, 1)) + ",")
    for candidate in {body, good_then_bad}:
        assert market.relay("ada-main", ADA_METER, candidate, at=AFTER) == code
    assert recorded(market, SLOT) is None
    assert recorded(market, 0) is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"extra": 1}, "bad_payload"),
        ({"meter": "Ada"}, "bad_meter"),
        ({"meter": "ben-main"}, "unknown_meter"),
        ({"t": -1}, "bad_time"),
        ({"t": "1767229200"}, "bad_time"),
        ({"t": True}, "bad_time"),
        ({"body": {"readings": []}}, "bad_body"),
        ({"body": "x" * (meters.MAX_BODY_BYTES + 1)}, "bad_body"),
    ],
)
def test_it_refuses_bad_relays(market: Market, changes: dict[str, Any], code: str) -> None:
    payload = relay_payload(batch(reading(SLOT, 10))) | changes
    assert market.send(OPERATOR, "meter.readings", at=AFTER, **payload) == code
    assert recorded(market, SLOT) is None


def test_it_accepts_a_reading_whose_device_clock_runs_a_little_fast(market: Market) -> None:
    # The site accepts an interval starting up to 5 minutes after its clock; so do validators.
    at = SLOT - meters.MAX_FUTURE_MS
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 1)), at=at) == "ok"
    body = batch(reading(SLOT + STEP, 1))
    assert market.relay("ada-main", ADA_METER, body, at=at + 1_000) == "future_reading"


def test_it_skips_readings_recorded_with_the_same_values(market: Market) -> None:
    body = batch(reading(SLOT, 10), reading(SLOT + STEP, 20))
    assert market.relay("ada-main", ADA_METER, body, at=AFTER) == "ok"
    first = recorded(market, SLOT)
    market.state.take_changes()
    assert market.relay("ada-main", ADA_METER, body) == "ok"
    assert set(market.state.take_changes()) == {f"acct/{OPERATOR.address}"}  # its nonce only
    assert recorded(market, SLOT) == first
    assert market.state.get("meter/conflicts/ada-main") is None
    assert market.emitted("meters.readings_recorded")[-1] == {
        "meter": "ada-main",
        "starts": [],
        "skipped": 2,
    }


def test_it_keeps_the_first_reading_and_counts_a_conflict(market: Market) -> None:
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 10)), at=AFTER) == "ok"
    first = recorded(market, SLOT)
    changed = batch(
        reading(SLOT, 11),  # conflict: other energy
        reading(SLOT, 10, quality="estimated"),  # conflict: other quality
        reading(SLOT + STEP, 30),  # new
        reading(SLOT + STEP, 31),  # conflicts with the one just before it in the batch
    )
    assert market.relay("ada-main", ADA_METER, changed) == "ok"
    assert recorded(market, SLOT) == first
    second = recorded(market, SLOT + STEP)
    assert second is not None
    assert second["export_wh"] == 30
    assert market.state.get("meter/conflicts/ada-main") == 3
    assert market.emitted("meters.reading_conflicts") == [
        {"meter": "ada-main", "starts": [SLOT, SLOT, SLOT + STEP]}
    ]
    assert market.emitted("meters.readings_recorded")[-1] == {
        "meter": "ada-main",
        "starts": [SLOT + STEP],
        "skipped": 0,
    }
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 12))) == "ok"
    assert market.state.get("meter/conflicts/ada-main") == 4


def test_it_keeps_meters_readings_apart(market: Market) -> None:
    assert market.meter(BEN, BEN_METER, "ben-main") == "ok"
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 10)), at=AFTER) == "ok"
    assert market.relay("ben-main", BEN_METER, batch(reading(SLOT, 99))) == "ok"
    assert (recorded(market, SLOT) or {})["export_wh"] == 10
    assert (recorded(market, SLOT, "ben-main") or {})["export_wh"] == 99


def test_it_replays_to_the_same_state_root(market: Market) -> None:
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 10)), at=AFTER) == "ok"
    assert market.relay("ada-main", ADA_METER, batch(reading(SLOT, 11))) == "ok"
    assert market.replay().root() == market.state.root()


# --- RFC 3339 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.001Z", 1),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T23:00:00-01:00", 0),
        ("1970-01-01t00:00:00z", 0),
        ("1970-01-01T00:00:00-00:00", 0),
        ("2026-01-01T01:00:00Z", 1_767_229_200_000),
        ("2024-02-29T12:00:00.250000000+05:30", 1_709_188_200_250),
        ("2000-03-01T00:00:00Z", 951_868_800_000),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
    ],
)
def test_it_reads_rfc3339_times_to_the_millisecond(text: str, ms: int) -> None:
    assert meters.parse_rfc3339_ms(text) == ms


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001  (naive bounds; the zone is drawn below)
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    ),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_it_agrees_with_the_standard_library_on_every_instant(
    moment: datetime, offset_minutes: int
) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1_000 * 1_000)
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat(timespec="milliseconds")
    expected = (moment.replace(tzinfo=zone) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    assert meters.parse_rfc3339_ms(text) == expected
