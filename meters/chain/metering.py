"""Meter data on the ledger: meters registered by the grid operator, and their signed readings.

No Django import. The handlers are deterministic functions of the state and the block
(``context.timestamp_ms`` is the only time): integers only, no floats, no clock, no I/O. The site
(``meters/services.py``) receives readings from the devices; the grid operator relays each batch
to the validators as it arrived, with the device's signature, and **the validators check that
signature themselves**: the grid operator cannot make up or change a reading, it can only pass
on (or withhold) what the device signed.

Meters
======

A meter is named by an id of 1-64 characters of ``[a-z0-9._-]`` starting with ``[a-z0-9]`` (a
lowercase UUID qualifies), so that it fits in a state key. It belongs to one household (its
``owner``) for good; re-registering an id replaces its device key, kind and feeder (a device
replaced) but can change neither its owner nor its reading interval (readings already recorded
would then overlap). A device key belongs to one meter at a time: the signed message does not
name the meter, so a key shared by two meters would let one meter's batch be relayed as the
other's.

The reading interval ``interval_s`` is at least :data:`MIN_INTERVAL_S` and divides the meters'
slot (``meters.chain.options``: the delivery slot), so that every interval lies in exactly one
delivery slot and settling a slot looks up at most ``slot / interval`` readings per meter.

Readings
========

The device signs ``f"{t}.".encode() + body.encode()`` with its Ed25519 key, where ``t`` is the
signing time (unix seconds) and ``body`` the exact request body text, UTF-8::

    {"readings": [{"start": "2026-01-01T12:15:00Z", "duration_s": 300,
                   "import_wh": 0, "export_wh": 412, "quality": "actual"}, ...]}

Parsed strictly (``ledger.crypto.loads``: no floats, no duplicate keys), with the site's rules
(``meters.readings``) and limits, so that whatever the site accepted can be relayed: exactly the
key ``readings``, a list of at most :data:`MAX_READINGS` objects with exactly these five keys, in
at most :data:`MAX_BODY_BYTES` bytes. ``start`` is an RFC 3339 date-time with its zone (``Z`` or
``+hh:mm``), converted here to integer ms since 1970-01-01T00:00Z with integer arithmetic
(:func:`parse_rfc3339_ms`; no float, no local time), at most :data:`MAX_FUTURE_MS` after the
block time (a device's clock may run a little fast); ``duration_s`` is the meter's
``interval_s`` and ``start`` a multiple of it; ``import_wh`` and ``export_wh`` integers from 0
to :data:`MAX_ENERGY_WH`; ``quality`` one of :data:`QUALITIES` (``missing``: the device has no
measurement; settlement counts it as 0). A batch with one bad reading is refused whole.

Each reading is recorded once, per meter and interval, and never changes afterwards (history is
append-only), while settlement may still need it:

* first, the readings of the meter's slots that have **closed** leave the state (the market
  answers through the hook :data:`SLOT_CLOSED` whether a slot is closed: settled, or ended
  with neither a contract nor a recorded reading, so that no settlement can ever need its
  readings; without the hook no
  slot closes), and the meter's watermark moves up over the closed slots;
* a reading of a closed slot is **late**: it is not recorded (no settlement could count it, and
  one that did would settle a slot twice) and the event says so;
* an interval not recorded yet is written; the meter's first reading of a slot also enters
  the slot's index (``meter/inslot/<slot>``), through which the slot's settlement finds every
  meter to settle with the supplier (the index leaves the state with that settlement);
* the same values again (a re-sent batch) are skipped;
* different values for a recorded interval are a **conflict**: the first reading is kept and the
  meter's conflict counter goes up by one.

Only the readings' values and quality are in the state; which block and transaction recorded
them is in the blocks. The state therefore holds, per meter, the readings of a few open slots
(one record, ``meter/window/<id>``), not every reading ever sent.

State keys and events
=====================

Declared, with their records and each family's life, in ``meters.chain.schema``. What a
transaction did is emitted as events (``meters.meter_registered``, ``meters.readings_pruned``,
``meters.readings_recorded``, ``meters.readings_late``, ``meters.reading_conflicts``), with no
energy value in them: readings are personal data, and events are public.

Transaction types
=================

Both are sent by the grid operator only. Codes in the order they are checked; the first that
applies is the result, and a refused transaction changes nothing but the sender's nonce.

``meter.register`` ``{"meter", "owner", "kind", "public_key", "feeder", "interval_s"}``
    ``bad_payload``, ``bad_meter`` (not an id), ``bad_address`` / ``unknown_account`` /
    ``not_household`` (the owner is neither a household nor a storage provider), ``bad_kind``
    (not one of :data:`KINDS`), ``bad_public_key`` (not 64 lowercase hex of an Ed25519 key),
    ``bad_feeder`` (not a name like a meter id),
    ``bad_interval`` (not an integer >= 60 dividing the slot), ``owner_mismatch`` /
    ``interval_mismatch`` (re-registration changing them), ``key_in_use`` (another meter's key),
    ``too_many_meters`` (the owner has :data:`MAX_METERS_PER_OWNER`).
``meter.readings`` ``{"meter", "t": int, "body": str, "signature": 128 hex}``
    ``bad_payload``, ``bad_meter``, ``unknown_meter``, ``bad_time`` (``t`` not an integer
    >= 0), ``bad_body`` (not a string, or longer than :data:`MAX_BODY_BYTES`),
    ``bad_device_signature`` (not 128 lowercase hex, or not the meter's device's signature of
    ``t`` and ``body``), then the body: ``bad_body`` (not JSON of the shape above),
    ``too_many_readings``, ``bad_reading`` (not an object with exactly the five keys),
    ``bad_start``, ``bad_duration``, ``misaligned_reading``, ``bad_energy``, ``bad_quality``,
    ``future_reading``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ledger.application import (
    TRADERS,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import NonCanonicalValue, Transaction, is_lower_hex, is_name, loads
from ledger.identity import BadSignature, IdentityError, public_key_bytes, verify
from ledger.state import State
from meters.chain.options import slot_ms as meters_slot_ms
from meters.chain.schema import (
    METER_REGISTERED,
    READING_CONFLICTS,
    READINGS_LATE,
    READINGS_PRUNED,
    READINGS_RECORDED,
    Meter,
    Reading,
    Window,
    conflicts_key,
    device_key,
    meter,
    meter_key,
    meters_of,
    owner_key,
    reading,
    slot_meters_add,
    window,
    window_save,
)

KINDS = ("pv", "consumption", "bidirectional", "battery", "heat", "thermal_storage")
QUALITIES = ("actual", "estimated", "missing")
MISSING = "missing"
MIN_INTERVAL_S = 60
MAX_METERS_PER_OWNER = 16
# The site's limits (meters.readings), so that every batch the site accepts can be relayed.
MAX_READINGS = 2_000
MAX_BODY_BYTES = 1024 * 1024
# Per interval: far above any household's; sums over a slot stay far below 2**53.
MAX_ENERGY_WH = 10**9
MAX_FUTURE_MS = 300_000  # how far after the block time an interval may start (a fast clock)
READING_FIELDS = frozenset({"start", "duration_s", "import_wh", "export_wh", "quality"})


# The hook an application above offers the meters (the market does): slot_closed(state, slot,
# now_ms) says whether no settlement can ever need the slot's readings any more (settled, or
# ended with no contract and no recorded reading): its readings leave the state and later ones
# are late.
SLOT_CLOSED = "meters.slot_closed"
# How far one batch moves a meter's watermark at most, in slots (each asks SLOT_CLOSED once):
# a meter silent for months catches up over a few batches instead of paying for it in one.
MAX_WATERMARK_STEPS = MAX_READINGS


def _closed_slots(context: Context, state: State) -> Callable[[int], bool]:
    """Whether a slot (its start, ms) is closed at block time, asking each hook once per slot
    and transaction: nothing the meters write changes the answer."""
    hooks = context.hooks.get(SLOT_CLOSED, ())
    now = context.timestamp_ms
    known: dict[int, bool] = {}

    def closed(slot: int) -> bool:
        if slot not in known:
            known[slot] = any(hook(state, slot, now) for hook in hooks)
        return known[slot]

    return closed


# --- RFC 3339 ----------------------------------------------------------------------------------

# ASCII digits only: Python's \d would also take other scripts' digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def parse_rfc3339_ms(text: str) -> int:
    """ms since 1970-01-01T00:00Z of an RFC 3339 date-time with its zone, or ValueError.

    Integer arithmetic only. ``T`` and ``Z`` may be lowercase (RFC 3339 5.6); ``-00:00`` is
    UTC. Refused: a time without a zone, a leap second (``:60``; no interval starts on one), a
    fraction finer than a millisecond, anything RFC 3339 does not allow (``2026-1-1``, a space
    for ``T``, ``+0100``).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 date-time with its zone")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, sign, offset_hour, offset_minute = match.group(7, 8, 9, 10)
    if not 1 <= month <= 12:
        raise ValueError("month out of range")
    days_in_month = 29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days_in_month or hour > 23 or minute > 59 or second > 59:
        raise ValueError("date or time out of range")
    millis = 0
    if fraction:
        if fraction[3:].strip("0"):
            raise ValueError("finer than a millisecond")
        millis = int(fraction[:3].ljust(3, "0"))
    offset_s = 0
    if sign:
        if int(offset_hour) > 23 or int(offset_minute) > 59:
            raise ValueError("offset out of range")
        offset_s = (int(offset_hour) * 3_600 + int(offset_minute) * 60) * (-1 if sign == "-" else 1)
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
    return (seconds - offset_s) * 1_000 + millis


# --- meter.register ----------------------------------------------------------------------------


def _interval(value: Any, slot_ms: int) -> int:
    if type(value) is not int or value < MIN_INTERVAL_S or slot_ms % (value * 1_000):
        raise TxFailed(
            "bad_interval",
            f"the interval is an integer of seconds >= {MIN_INTERVAL_S} that divides the slot",
        )
    return value


def meter_register(state: State, tx: Transaction, context: Context) -> None:
    """``meter.register``: the grid operator records a household's meter and its device key
    (relaying the site's registration); again for the same id, replaces the device.

    Precondition (checked by the registry): the sender is the grid operator.
    """
    meter_id, owner, kind, public_key, feeder, interval_s = payload_fields(
        tx, "meter", "owner", "kind", "public_key", "feeder", "interval_s"
    )
    meter_id = _meter_id(meter_id)
    owner = registered_address(state, owner)
    owner_account = account(state, owner)
    assert owner_account is not None  # registered_address checked it
    if owner_account["role"] not in TRADERS:
        raise TxFailed("not_household")
    if kind not in KINDS:
        raise TxFailed("bad_kind", f"a meter's kind is one of {', '.join(KINDS)}")
    try:
        public_key_bytes(public_key)
    except (IdentityError, TypeError):
        raise TxFailed("bad_public_key") from None
    if not isinstance(feeder, str) or not is_name(feeder):
        raise TxFailed("bad_feeder", "a feeder is named by 1-64 characters of [a-z0-9._-]")
    interval_s = _interval(interval_s, meters_slot_ms(state))
    existing = meter(state, meter_id)
    if existing is not None:
        if existing["owner"] != owner:
            raise TxFailed("owner_mismatch", "a meter stays with its household")
        if existing["interval_s"] != interval_s:
            raise TxFailed("interval_mismatch", "a meter's reading interval cannot change")
    holder = state.get(device_key(public_key))
    if holder is not None and holder != meter_id:
        raise TxFailed("key_in_use", "the device key belongs to another meter")
    owned = meters_of(state, owner)
    if existing is None:
        if len(owned) >= MAX_METERS_PER_OWNER:
            raise TxFailed("too_many_meters")
        state.set(owner_key(owner), sorted([*owned, meter_id]))
        registered_height = context.height
    else:
        state.delete(device_key(existing["public_key"]))  # written again below if kept
        registered_height = existing["registered_height"]
    state.set(device_key(public_key), meter_id)
    record: Meter = {
        "id": meter_id,
        "owner": owner,
        "kind": kind,
        "public_key": public_key,
        "feeder": feeder,
        "interval_s": interval_s,
        "registered_height": registered_height,
        "height": context.height,
    }
    state.set(meter_key(meter_id), record)
    context.emit(METER_REGISTERED, record)


def _meter_id(value: Any) -> str:
    if not isinstance(value, str) or not is_name(value):
        raise TxFailed("bad_meter", "a meter id is 1-64 characters of [a-z0-9._-]")
    return value


# --- meter.readings ----------------------------------------------------------------------------


def _device_signature_valid(public_key: str, message: bytes, signature: str) -> bool:
    # Not cached, unlike transactions' signatures: a body may be a megabyte, and a few relays
    # per meter and hour cost little to verify again when a block is committed.
    try:
        verify(public_key, message, signature)
    except BadSignature:
        return False
    return True


def device_message(t: int, body: bytes) -> bytes:
    """The bytes a device signs: its signing time in unix seconds, a dot, the body's bytes."""
    return f"{t}.".encode() + body


def _readings(body: str) -> list[dict[str, Any]]:
    try:
        parsed = loads(body)
    except NonCanonicalValue:
        raise TxFailed("bad_body", "the body is not JSON without floats") from None
    if type(parsed) is not dict or set(parsed) != {"readings"}:
        raise TxFailed("bad_body", 'the body is {"readings": [...]}')
    readings = parsed["readings"]
    if type(readings) is not list:
        raise TxFailed("bad_body", "readings is a list of readings")
    if len(readings) > MAX_READINGS:
        raise TxFailed("too_many_readings", f"at most {MAX_READINGS} readings in a batch")
    return readings


def _energy(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_ENERGY_WH:
        raise TxFailed("bad_energy", f"energy is an integer of Wh from 0 to {MAX_ENERGY_WH}")
    return value


def _parse_reading(item: Any, interval_s: int, now: int) -> tuple[int, Reading]:
    """One reading of a batch: its start in ms and what is recorded for it."""
    if type(item) is not dict or set(item) != READING_FIELDS:
        raise TxFailed("bad_reading", f"a reading has exactly {sorted(READING_FIELDS)}")
    start = item["start"]
    try:
        start_ms = parse_rfc3339_ms(start) if type(start) is str else -1
    except ValueError:
        start_ms = -1
    if start_ms < 0:
        raise TxFailed("bad_start", "start is an RFC 3339 date-time with its zone, after 1970")
    if type(item["duration_s"]) is not int or item["duration_s"] != interval_s:
        raise TxFailed("bad_duration", f"the meter reads every {interval_s} s")
    if start_ms % (interval_s * 1_000):
        raise TxFailed("misaligned_reading", "an interval starts at a multiple of its duration")
    import_wh, export_wh = _energy(item["import_wh"]), _energy(item["export_wh"])
    if item["quality"] not in QUALITIES:
        raise TxFailed("bad_quality", f"quality is one of {', '.join(QUALITIES)}")
    if start_ms > now + MAX_FUTURE_MS:
        raise TxFailed("future_reading", "the interval starts too far after the block time")
    return start_ms, {"import_wh": import_wh, "export_wh": export_wh, "quality": item["quality"]}


def meter_readings(state: State, tx: Transaction, context: Context) -> None:
    """``meter.readings``: record a batch of interval readings as the device signed it.

    Precondition (checked by the registry): the sender is the grid operator, relaying the body
    and signature the site received. The device's signature is checked here, by every
    validator, against the meter's registered key.
    """
    meter_id, t, body, signature = payload_fields(tx, "meter", "t", "body", "signature")
    meter_id = _meter_id(meter_id)
    registered = meter(state, meter_id)
    if registered is None:
        raise TxFailed("unknown_meter")
    if type(t) is not int or t < 0:
        raise TxFailed("bad_time", "t is the signing time in unix seconds")
    if not isinstance(body, str):
        raise TxFailed("bad_body")
    raw = body.encode()
    if len(raw) > MAX_BODY_BYTES:
        raise TxFailed("bad_body", f"a batch is at most {MAX_BODY_BYTES} bytes")
    if not (
        isinstance(signature, str)
        and is_lower_hex(signature, 128)
        and _device_signature_valid(registered["public_key"], device_message(t, raw), signature)
    ):
        raise TxFailed("bad_device_signature", "the meter's device did not sign this batch")
    interval_s = registered["interval_s"]
    parsed = [_parse_reading(item, interval_s, context.timestamp_ms) for item in _readings(body)]
    _record(state, context, meter_id, parsed)


def slot_flows(state: State, meter: Meter, slot: int, slot_ms: int) -> tuple[int, int]:
    """Wh the meter imported and exported in the slot starting at ``slot``, by its recorded
    readings; a missing interval and a ``missing`` quality count 0. O(intervals in a slot)."""
    imported = exported = 0
    for start in range(slot, slot + slot_ms, meter["interval_s"] * 1_000):
        recorded = reading(state, meter["id"], start)
        if recorded and recorded["quality"] != MISSING:
            imported += recorded["import_wh"]
            exported += recorded["export_wh"]
    return imported, exported


def slot_read_in_full(state: State, meter: Meter, slot: int, slot_ms: int) -> bool:
    """Whether the meter has a reading of a quality other than ``missing`` for every interval
    of the slot starting at ``slot``."""
    for start in range(slot, slot + slot_ms, meter["interval_s"] * 1_000):
        recorded = reading(state, meter["id"], start)
        if recorded is None or recorded["quality"] == MISSING:
            return False
    return True


def _prune(held: Window, slot_ms: int, closed: Callable[[int], bool]) -> tuple[Window, list[int]]:
    """``held`` without the readings of closed slots, its watermark moved up over them; and
    the slots dropped, ascending."""
    slots = sorted({int(start) - int(start) % slot_ms for start in held["readings"]})
    dropped = [slot for slot in slots if closed(slot)]
    if not dropped:
        return held, []
    gone = set(dropped)
    readings = {
        start: value
        for start, value in held["readings"].items()
        if int(start) - int(start) % slot_ms not in gone
    }
    closed_from, watermark = held["closed_from"], held["watermark"]
    if closed_from == watermark:  # nothing known closed yet: the range starts at the first
        closed_from = watermark = dropped[0]
    # Up to the end of the latest dropped slot, but only over closed slots: an earlier slot
    # may still wait for its settlement (a slot without contracts closes before one with).
    target = dropped[-1] + slot_ms
    for _ in range(MAX_WATERMARK_STEPS):
        if watermark >= target or not closed(watermark):
            break
        watermark += slot_ms
    return {"closed_from": closed_from, "watermark": watermark, "readings": readings}, dropped


def _record(
    state: State, context: Context, meter_id: str, parsed: list[tuple[int, Reading]]
) -> None:
    """Prune the meter's window, then record the batch's readings in it (module docstring)."""
    slot_ms = meters_slot_ms(state)
    closed = _closed_slots(context, state)
    held, dropped = _prune(
        window(state, meter_id) or {"closed_from": 0, "watermark": 0, "readings": {}},
        slot_ms,
        closed,
    )
    readings = dict(held["readings"])
    # The open slots the meter has readings of: its first reading of another one indexes it.
    indexed = {int(start) - int(start) % slot_ms for start in readings}
    recorded: list[int] = []
    late: list[int] = []
    conflicting: list[int] = []
    skipped = 0
    for start_ms, values in parsed:
        slot = start_ms - start_ms % slot_ms
        if held["closed_from"] <= start_ms < held["watermark"] or closed(slot):
            late.append(start_ms)
            continue
        existing = readings.get(str(start_ms))
        if existing is None:
            readings[str(start_ms)] = values
            recorded.append(start_ms)
            if slot not in indexed:
                slot_meters_add(state, slot, meter_id)
                indexed.add(slot)
        elif existing == values:
            skipped += 1
        else:
            conflicting.append(start_ms)  # the first reading stands; history is never rewritten
    if dropped or recorded:
        window_save(state, meter_id, {**held, "readings": readings})
    if conflicting:
        count = state.get(conflicts_key(meter_id), 0) + len(conflicting)
        state.set(conflicts_key(meter_id), count)
    if dropped:
        context.emit(
            READINGS_PRUNED, {"meter": meter_id, "slots": dropped, "watermark": held["watermark"]}
        )
    if recorded or skipped:
        context.emit(READINGS_RECORDED, {"meter": meter_id, "starts": recorded, "skipped": skipped})
    if late:
        context.emit(READINGS_LATE, {"meter": meter_id, "starts": late})
    if conflicting:
        context.emit(READING_CONFLICTS, {"meter": meter_id, "starts": conflicting})
