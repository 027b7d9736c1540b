"""The meters' namespace on the ledger: every state key they own, the records stored there, and
the events the meters emit.

No Django import. ``meters.chain.metering`` is the only writer of these keys; the market reads
them (a seller's measured export) through the accessors here, never by spelling a key.

The state holds only what settlement may still need: a meter's readings of slots that are not
closed (``metering.SLOT_CLOSED``). A reading's history (which block and transaction recorded it)
is in the blocks: the ``meter.readings`` transaction's body and the events below.

==================================  =========================================================
key                                 record; created by, read by, removed by
==================================  =========================================================
``meter/<id>``                      :class:`Meter` (``height``: of the last registration).
                                    Written by ``meter.register`` (again on a re-registration);
                                    read by ``meter.readings`` and settlement (:func:`meter`);
                                    never removed (one per meter)
``meter/key/<public_key>``          the id of the meter the device key belongs to. Written by
                                    ``meter.register``; read by it (a key in use); removed when
                                    a re-registration replaces the device
``meter/owner/<address>``           list of the ids of the household's meters, sorted. Written
                                    by a household's first registration of each meter; read by
                                    settlement (:func:`meters_of`); never removed (at most
                                    ``metering.MAX_METERS_PER_OWNER`` ids)
``meter/window/<id>``               :class:`Window`: the meter's readings of slots not closed,
                                    and its watermark. Written by ``meter.readings`` (the first
                                    batch that records a reading creates it); read by it and
                                    settlement (:func:`reading`); a reading leaves it at the
                                    meter's first batch after its slot closed; the key stays
                                    (one per meter: its watermark)
``meter/conflicts/<id>``            int: readings refused because their interval was recorded
                                    with other values. Written by ``meter.readings`` at the
                                    first conflict; never removed (one per meter)
``meter/inslot/<slot>``             int: how many meters have readings recorded in the slot
``meter/inslot/<slot>/<n>``         the id of the n-th meter (from 0) that recorded a reading in
                                    the slot. Both written by ``meter.readings`` when a meter
                                    records its first reading of an open slot; read and removed
                                    by the application that closes slots, as it settles the slot
                                    (``market.slot.settle``: :func:`slot_meters_take`), so that a
                                    settlement finds every metered household without scanning
                                    the state. At most one entry per meter and open slot
==================================  =========================================================

Events (``context.emit``; public: no energy value is ever in one, readings are personal data and
stay in the transaction's body, which the public API withholds):

============================  ====================================================================
``meters.meter_registered``   :class:`Meter`, as stored (also for a re-registration: ``height``
                              then differs from ``registered_height``)
``meters.readings_pruned``    ``{"meter", "slots": [ms, ...], "watermark": ms}``: the readings
                              of these closed slots left the window (slots ascending)
``meters.readings_recorded``  ``{"meter", "starts": [ms, ...], "skipped": int}``: the intervals
                              recorded (in the batch's order) and how many readings repeated a
                              recorded one with the same values
``meters.readings_late``      ``{"meter", "starts": [ms, ...]}``: readings of closed slots, not
                              recorded (no settlement can count them)
``meters.reading_conflicts``  ``{"meter", "starts": [ms, ...]}``: readings refused because their
                              interval is recorded with other values (the first one stands)
============================  ====================================================================

Each batch's events come in this order, each only when its list is not empty (``recorded``: when
it recorded or skipped any).
"""

from __future__ import annotations

from typing import TypedDict

from ledger.state import State

WINDOW_PREFIX = "meter/window/"

# Events.
METER_REGISTERED = "meters.meter_registered"
READINGS_PRUNED = "meters.readings_pruned"
READINGS_RECORDED = "meters.readings_recorded"
READINGS_LATE = "meters.readings_late"
READING_CONFLICTS = "meters.reading_conflicts"


def meter_key(meter_id: str) -> str:
    return f"meter/{meter_id}"


def device_key(public_key: str) -> str:
    return f"meter/key/{public_key}"


def owner_key(address: str) -> str:
    return f"meter/owner/{address}"


def window_key(meter_id: str) -> str:
    return f"{WINDOW_PREFIX}{meter_id}"


def conflicts_key(meter_id: str) -> str:
    return f"meter/conflicts/{meter_id}"


# The carriers a meter can measure (the market's carriers, ``market.chain.options``): a meter's
# kind says which. A heat meter's ``import_wh`` is heat drawn from the heating network and its
# ``export_wh`` heat fed into it (kWh thermal, in Wh), as an electricity meter's are for the grid.
ELECTRICITY = "electricity"
HEAT = "heat"
HEAT_KINDS = ("heat", "thermal_storage")


def meter_carrier(kind: str) -> str:
    """The carrier a meter of ``kind`` measures."""
    return HEAT if kind in HEAT_KINDS else ELECTRICITY


class Meter(TypedDict):
    id: str
    owner: str  # the household's address, for good
    kind: str  # one of metering.KINDS
    public_key: str  # the device's Ed25519 key, 64 lowercase hex
    feeder: str
    interval_s: int
    registered_height: int
    height: int


class Reading(TypedDict):
    """What settlement reads of an interval: the values as the device signed them."""

    import_wh: int
    export_wh: int
    quality: str  # one of metering.QUALITIES


class Window(TypedDict):
    """A meter's readings that settlement may still need, and what it knows is closed.

    Every slot from ``closed_from`` (inclusive) to ``watermark`` (exclusive) is closed: a reading
    starting in that range is late without asking the market. They are equal (an empty range)
    until a slot closes; the range only grows at its top, slot by slot, and never past a slot
    that is not closed (slots need not close in order)."""

    closed_from: int
    watermark: int
    readings: dict[str, Reading]  # by the interval's start in ms, as a decimal string


def inslot_key(slot: int) -> str:
    return f"meter/inslot/{slot}"


def slot_meters(state: State, slot: int) -> list[str]:
    """The meters with readings recorded in ``slot`` (its start, ms), in the order they
    recorded their first one. Read-only."""
    count: int = state.get(inslot_key(slot), 0)
    return [state.get(f"{inslot_key(slot)}/{n}") for n in range(count)]


def slot_has_readings(state: State, slot: int) -> bool:
    """Whether any meter recorded a reading in ``slot`` that no settlement has taken yet."""
    return state.get(inslot_key(slot)) is not None


def slot_meters_add(state: State, slot: int, meter_id: str) -> None:
    """Index ``meter_id`` under ``slot``: the caller knows it had no reading of the slot yet."""
    count: int = state.get(inslot_key(slot), 0)
    state.set(f"{inslot_key(slot)}/{count}", meter_id)
    state.set(inslot_key(slot), count + 1)


def slot_meters_take(state: State, slot: int) -> list[str]:
    """:func:`slot_meters`, and the index leaves the state: the slot is being settled, and
    every reading of it from now on is late."""
    ids = slot_meters(state, slot)
    for n in range(len(ids)):
        state.delete(f"{inslot_key(slot)}/{n}")
    state.delete(inslot_key(slot))
    return ids


def meters_of(state: State, address: str) -> list[str]:
    """The ids of the household's meters (for settlement: its export)."""
    ids: list[str] = state.get(owner_key(address), [])
    return ids


def meter(state: State, meter_id: str) -> Meter | None:
    value: Meter | None = state.get(meter_key(meter_id))
    return value


def window(state: State, meter_id: str) -> Window | None:
    """The meter's window, None before its first recorded reading. Read-only: change a copy and
    store it with :func:`window_save`."""
    value: Window | None = state.get(window_key(meter_id))
    return value


def window_save(state: State, meter_id: str, value: Window) -> None:
    state.set(window_key(meter_id), value)


def reading(state: State, meter_id: str, start_ms: int) -> Reading | None:
    """The meter's reading of the interval starting at ``start_ms`` while its slot is not
    closed; None if none was recorded, or once its slot closed and the reading left the
    state."""
    held = window(state, meter_id)
    if held is None:
        return None
    return held["readings"].get(str(start_ms))
