"""Energy storage providers: accounts that trade both ways within their store's state of charge.

No Django import; deterministic, integers only. The source paper's energy storage providers buy
energy to charge and sell it to discharge. Here the grid operator registers an account's store:
its storage meter (kind ``battery``: electricity; ``thermal_storage``: heat, a buffer tank), its
capacity and its state of charge then. From then on, for that carrier:

* a **sell** order or offer (discharging) is accepted only while the energy the account has
  committed to sell in slots not yet settled, plus the new one, is at most its state of charge;
* a **buy** order (charging) only while what it has committed to buy, plus the new one, fits in
  the room left, ``capacity - state of charge``;

otherwise ``beyond_state_of_charge``.

Two kinds of account hold a store. A household with a home battery or a buffer tank trades as
any household, its store's carrier within the state of charge. A ``storage_provider`` account
(a role genesis gives or the grid operator registers) trades *only* within a store: an order,
an offer, an accepted offer (charging, like a buy) or an answer to a requirement in a carrier
it has no store of is refused with ``no_store``. A commitment is the order's or offer's energy when
published; what is cancelled, withdrawn or expires unmatched is released; what was matched stays
committed until its slot settles. When a slot settles, the store's meter readings of the slot
move the state of charge: ``soc + import_wh - export_wh``, kept within ``[0, capacity]`` (the
meter reports what the store took and gave), and the slot's commitments are released. So the
state of charge the validators check against is the meter's, as of the last settled slot.

Transaction type
================

``market.storage.register`` ``{"address", "meter", "capacity_wh", "soc_wh"}`` (the grid operator)
    Registers (or registers again: new capacity, meter or state of charge; commitments stay) the
    account's store. Refusals: ``bad_address`` / ``unknown_account``, ``not_household`` (the
    account is neither a household nor a storage provider),
    ``unknown_meter``, ``not_storage_meter`` (not a ``battery`` or ``thermal_storage`` meter of
    that account), ``bad_capacity`` (a positive integer), ``bad_state_of_charge`` (an integer
    from 0 to the capacity), ``bad_carrier`` (the meter's carrier is not traded here).

State keys
==========

``market/storage/<carrier>/<address>``
    ``{"meter", "capacity_wh", "soc_wh", "soc_slot", "sell_wh", "buy_wh"}``: the store, its
    state of charge as of the slot ``soc_slot`` settled (0: as registered), and its commitments
    in slots not yet settled.
``market/storage/<carrier>/<address>/<slot>``
    ``{"sell_wh", "buy_wh"}``: its commitments in one slot, deleted when they come back to 0 or
    when the slot settles.

Events: ``market.storage_registered`` (the record) and ``market.storage_charged`` ``{"account",
"carrier", "slot", "soc_wh", "import_wh", "export_wh"}`` when a settled slot moves the state of
charge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.application import (
    STORAGE_PROVIDER,
    TRADERS,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction
from ledger.state import State
from market.chain.book import SELL
from market.chain.options import market_options
from market.chain.schema import carrier_of
from meters.chain import schema as meters
from meters.chain.metering import slot_flows

STORAGE_KINDS = ("battery", "thermal_storage")
STORAGE_REGISTERED = "market.storage_registered"
STORAGE_CHARGED = "market.storage_charged"


def storage_key(address: str, carrier: str) -> str:
    return f"market/storage/{carrier}/{address}"


def _slot_key(address: str, carrier: str, slot: int) -> str:
    return f"{storage_key(address, carrier)}/{slot}"


def store(state: State, address: str, carrier: str) -> dict[str, Any] | None:
    record: dict[str, Any] | None = state.get(storage_key(address, carrier))
    return record


def register(state: State, tx: Transaction, context: Context) -> None:
    """``market.storage.register``. Precondition (registry): the sender is the grid operator."""
    address, meter_id, capacity, soc = payload_fields(
        tx, "address", "meter", "capacity_wh", "soc_wh"
    )
    address = registered_address(state, address)
    owner = account(state, address)
    assert owner is not None  # registered_address checked it
    if owner["role"] not in TRADERS:
        raise TxFailed("not_household")
    meter = meters.meter(state, meter_id) if isinstance(meter_id, str) else None
    if meter is None:
        raise TxFailed("unknown_meter")
    if meter["owner"] != address or meter["kind"] not in STORAGE_KINDS:
        raise TxFailed("not_storage_meter", "a battery or thermal_storage meter of the account")
    if type(capacity) is not int or capacity <= 0:
        raise TxFailed("bad_capacity", "a capacity is a positive whole number of Wh")
    if type(soc) is not int or not 0 <= soc <= capacity:
        raise TxFailed("bad_state_of_charge", "from 0 to the capacity, in Wh")
    carrier = meters.meter_carrier(meter["kind"])
    if carrier not in market_options(state).carriers:
        raise TxFailed("bad_carrier")
    current = store(state, address, carrier) or {"sell_wh": 0, "buy_wh": 0}
    record = {
        "meter": meter_id,
        "capacity_wh": capacity,
        "soc_wh": soc,
        "soc_slot": 0,
        "sell_wh": current["sell_wh"],
        "buy_wh": current["buy_wh"],
    }
    state.set(storage_key(address, carrier), record)
    context.emit(STORAGE_REGISTERED, {"account": address, "carrier": carrier, **record})


def _add(state: State, address: str, carrier: str, slot: int, side: str, delta: int) -> None:
    """Add ``delta`` Wh to the account's commitments on ``side``, overall and in the slot."""
    field = "sell_wh" if side == SELL else "buy_wh"
    record = store(state, address, carrier)
    assert record is not None
    state.set(storage_key(address, carrier), record | {field: record[field] + delta})
    key = _slot_key(address, carrier, slot)
    in_slot = state.get(key, {"sell_wh": 0, "buy_wh": 0})
    in_slot = in_slot | {field: in_slot[field] + delta}
    if in_slot["sell_wh"] or in_slot["buy_wh"]:
        state.set(key, in_slot)
    else:
        state.delete(key)


def require_store(state: State, address: str, carrier: str, context: Context) -> None:
    """A storage provider (the sender, ``address``) trades only a carrier it has a store of."""
    if context.sender_role == STORAGE_PROVIDER and store(state, address, carrier) is None:
        raise TxFailed("no_store", "a storage provider trades within its registered store")


def commit(state: State, address: str, carrier: str, slot: int, side: str, energy_wh: int) -> None:
    """A store's new order or offer must fit its state of charge (module docstring); nothing
    for an account without a store of the carrier."""
    record = store(state, address, carrier)
    if record is None:
        return
    if side == SELL:
        room = record["soc_wh"] - record["sell_wh"]
    else:
        room = record["capacity_wh"] - record["soc_wh"] - record["buy_wh"]
    if energy_wh > room:
        raise TxFailed("beyond_state_of_charge", f"the store can take {max(0, room)} Wh more")
    _add(state, address, carrier, slot, side, energy_wh)


def release(state: State, item: dict[str, Any], side: str) -> None:
    """An order or offer (``side`` sell for offers) leaves the book with ``remaining_wh``
    unmatched: that much is no longer committed."""
    carrier = carrier_of(item)
    if item["remaining_wh"] and store(state, item["owner"], carrier) is not None:
        _add(state, item["owner"], carrier, item["slot"], side, -item["remaining_wh"])


def slot_settled(
    state: State,
    slot: int,
    slot_ms: int,
    parties: Iterable[tuple[str, str, int]],
    meter_ids: list[str],
    context: Context,
) -> None:
    """After a slot's contracts settled: release the commitments of the slot of every store
    among ``parties`` ((address, carrier, the carrier's slot) of its contracts: a carrier's slot
    may be longer than the market's, ``market.heat.slot_ms``), and move the state of charge of
    every store whose meter is among ``meter_ids`` (those with readings in the market's slot
    ``slot``, of ``slot_ms``)."""
    for address, carrier, start in sorted(set(parties)):
        key = _slot_key(address, carrier, start)
        in_slot = state.get(key)
        if in_slot is not None:
            record = store(state, address, carrier)
            assert record is not None
            state.set(
                storage_key(address, carrier),
                record
                | {
                    "sell_wh": record["sell_wh"] - in_slot["sell_wh"],
                    "buy_wh": record["buy_wh"] - in_slot["buy_wh"],
                },
            )
            state.delete(key)
    for meter_id in sorted(meter_ids):
        meter = meters.meter(state, meter_id)
        if meter is None or meter["kind"] not in STORAGE_KINDS:
            continue
        carrier = meters.meter_carrier(meter["kind"])
        record = store(state, meter["owner"], carrier)
        if record is None or record["meter"] != meter_id:
            continue
        import_wh, export_wh = slot_flows(state, meter, slot, slot_ms)
        soc = min(record["capacity_wh"], max(0, record["soc_wh"] + import_wh - export_wh))
        state.set(storage_key(meter["owner"], carrier), record | {"soc_wh": soc, "soc_slot": slot})
        context.emit(
            STORAGE_CHARGED,
            {
                "account": meter["owner"],
                "carrier": carrier,
                "slot": slot,
                "soc_wh": soc,
                "import_wh": import_wh,
                "export_wh": export_wh,
            },
        )
