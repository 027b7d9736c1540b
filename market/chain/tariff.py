"""Tariffs: what the supplier of last resort charges and pays, published on the ledger.

No Django import. The grid operator (the issuer account: the platform's supplier of last resort)
publishes, with ``market.tariff.publish``, a tariff in force from a delivery slot on: for each
time-of-use band, the **retail** price of energy bought from the grid, the **feed-in** price of
energy sold to it, and the **network fee**, all in minor units per kWh. A band runs from its
``from_minute`` (minutes after midnight, UTC, as every ledger time) to the next band's, the last
one to midnight; the first starts at 0. A tariff applies to every slot from ``from_slot`` until
the next tariff's ``from_slot``.

``market.tariff.publish`` ``{"from_slot": ms, "bands": [{"from_minute", "retail", "feed_in",
"network_fee"}, ...], "carrier"?}``, sent by the issuer only. ``carrier`` (default
``"electricity"``) is the carrier the tariff prices, in minor units per kWh of its unit (kWh
thermal for heat). Refusals, in this order: ``bad_payload``, ``bad_carrier`` (not a carrier the
market trades, ``market.chain.options``), ``bad_slot`` (not an integer >= 0),
``slot_misaligned``, ``tariff_in_past`` (the slot has started: a tariff never changes what a
past or running slot costs), ``bad_bands`` (not 1 to
:data:`MAX_BANDS` objects with exactly those four keys; minutes integers, the first 0, strictly
increasing, below 1,440), ``bad_price`` (a price not an integer from 0 to :data:`MAX_PRICE`). A
tariff for a ``from_slot`` that has one already for its carrier replaces it (until that slot
starts).

State: ``market/tariffs``, electricity's tariffs, the list of :class:`Tariff` by ``from_slot``;
another carrier's are under ``market/tariffs/<carrier>`` (``market/tariffs/heat``), and its
records and its ``market.tariff_published`` event carry ``"carrier"`` (electricity's never do,
so its records and events are what they were before carriers). Each list keeps every tariff in
force during the last :data:`KEEP_MS` (about a year and a month): an older one leaves the state
when a tariff of its carrier is published, and stays in the blocks as the event
``market.tariff_published``. Carriers never mix: a heat tariff prices heat's residual only, an
electricity tariff electricity's (``market.chain.residual``).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from ledger.application import Context, TxFailed, payload_fields
from ledger.crypto import Transaction
from ledger.state import State
from market.chain.options import ELECTRICITY, market_options
from market.chain.schema import tariffs_key, with_carrier
from market.chain.terms import carrier_field

TARIFF_PUBLISHED = "market.tariff_published"
MAX_BANDS = 24
MAX_PRICE = 1_000_000  # minor units per kWh: 10,000.00 a kWh
MINUTES_A_DAY = 1_440
KEEP_MS = 400 * 86_400_000
BAND_KEYS = frozenset({"from_minute", "retail", "feed_in", "network_fee"})


class Band(TypedDict):
    from_minute: int
    retail: int
    feed_in: int
    network_fee: int


class Tariff(TypedDict):
    from_slot: int
    bands: list[Band]
    tx: str
    height: int
    carrier: NotRequired[str]  # absent: electricity


def tariffs(state: State, carrier: str = ELECTRICITY) -> list[Tariff]:
    """Every tariff of ``carrier`` the state keeps, by ``from_slot``. Read-only."""
    value: list[Tariff] = state.get(tariffs_key(carrier), [])
    return value


def in_force(state: State, slot: int, carrier: str = ELECTRICITY) -> Tariff | None:
    """The tariff of ``carrier`` for ``slot``: the last one from that slot or before; None if
    none is."""
    found = None
    for tariff in tariffs(state, carrier):
        if tariff["from_slot"] > slot:
            break
        found = tariff
    return found


def band_of(tariff: Tariff, slot: int) -> Band:
    """The time-of-use band ``slot`` starts in (UTC minutes of its day)."""
    minute = slot // 60_000 % MINUTES_A_DAY
    chosen = tariff["bands"][0]
    for band in tariff["bands"]:
        if band["from_minute"] > minute:
            break
        chosen = band
    return chosen


def _price(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_PRICE:
        raise TxFailed("bad_price", f"a price is a whole number of minor units, 0 to {MAX_PRICE}")
    return value


def _bands(value: Any) -> list[Band]:
    if type(value) is not list or not 1 <= len(value) <= MAX_BANDS:
        raise TxFailed("bad_bands", f"bands is a list of 1 to {MAX_BANDS} bands")
    bands: list[Band] = []
    for band in value:
        if type(band) is not dict or set(band) != BAND_KEYS:
            raise TxFailed("bad_bands", "a band has exactly from_minute, retail, feed_in and fee")
        minute = band["from_minute"]
        previous = bands[-1]["from_minute"] if bands else -1
        if type(minute) is not int or minute <= previous or minute >= MINUTES_A_DAY:
            raise TxFailed("bad_bands", "bands start at minute 0 and run in order through a day")
        if not bands and minute != 0:
            raise TxFailed("bad_bands", "the first band starts at minute 0")
        bands.append(
            {
                "from_minute": minute,
                "retail": _price(band["retail"]),
                "feed_in": _price(band["feed_in"]),
                "network_fee": _price(band["network_fee"]),
            }
        )
    return bands


def tariff_publish(state: State, tx: Transaction, context: Context) -> None:
    """``market.tariff.publish``: the issuer's tariff of a carrier from a slot on (module
    docstring). Precondition (registry): the sender is the issuer."""
    from_slot, raw_bands, carrier = payload_fields(
        tx, "from_slot", "bands", optional={"carrier": ELECTRICITY}
    )
    carrier = carrier_field(carrier, market_options(state))
    if type(from_slot) is not int or from_slot < 0:
        raise TxFailed("bad_slot")
    if from_slot % market_options(state).slot_ms:
        raise TxFailed("slot_misaligned", "a slot starts at a multiple of market.slot_ms")
    if from_slot <= context.timestamp_ms:
        raise TxFailed("tariff_in_past", "a tariff applies from a slot that has not started")
    bands = _bands(raw_bands)
    record = {
        "from_slot": from_slot,
        "bands": bands,
        "tx": context.tx_id,
        "height": context.height,
    }
    tariff: Tariff = with_carrier(record, carrier)  # type: ignore[assignment]
    kept = [t for t in tariffs(state, carrier) if t["from_slot"] != from_slot] + [tariff]
    kept.sort(key=lambda t: t["from_slot"])
    # A tariff whose successor took over more than KEEP_MS ago can price no slot still settled.
    horizon = context.timestamp_ms - KEEP_MS
    successors: list[int | None] = [t["from_slot"] for t in kept[1:]] + [None]
    kept = [
        t
        for t, next_from in zip(kept, successors, strict=True)
        if next_from is None or next_from > horizon
    ]
    state.set(tariffs_key(carrier), kept)
    context.emit(TARIFF_PUBLISHED, dict(tariff))
