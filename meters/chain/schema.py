"""The meters' namespace on the ledger: every state key they own and the records stored there.

No Django import. ``meters.chain.metering`` is the only writer of these keys; the market reads
them (a seller's measured export) through the accessors here, never by spelling a key.

==================================  =========================================================
``meter/<id>``                      :class:`Meter` (``height``: of the last registration)
``meter/key/<public_key>``          the id of the meter the device key belongs to
``meter/owner/<address>``           list of the ids of the household's meters, sorted
``meter/reading/<id>/<start_ms>``   :class:`Reading`: the interval starting at ``start_ms``
``meter/conflicts/<id>``            int: readings refused because their interval was recorded
                                    with other values
==================================  =========================================================
"""

from __future__ import annotations

from typing import TypedDict

from ledger.state import State


def meter_key(meter_id: str) -> str:
    return f"meter/{meter_id}"


def device_key(public_key: str) -> str:
    return f"meter/key/{public_key}"


def owner_key(address: str) -> str:
    return f"meter/owner/{address}"


def reading_key(meter_id: str, start_ms: int) -> str:
    return f"meter/reading/{meter_id}/{start_ms}"


def conflicts_key(meter_id: str) -> str:
    return f"meter/conflicts/{meter_id}"


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
    import_wh: int
    export_wh: int
    quality: str  # one of metering.QUALITIES
    height: int
    late: bool  # recorded after its slot settled: kept, never settled
    tx: str


def meters_of(state: State, address: str) -> list[str]:
    """The ids of the household's meters (for settlement: its export)."""
    ids: list[str] = state.get(owner_key(address), [])
    return ids


def meter(state: State, meter_id: str) -> Meter | None:
    value: Meter | None = state.get(meter_key(meter_id))
    return value


def reading(state: State, meter_id: str, start_ms: int) -> Reading | None:
    value: Reading | None = state.get(reading_key(meter_id, start_ms))
    return value
