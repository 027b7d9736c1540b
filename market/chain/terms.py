"""Checks shared by everything the market publishes for a slot: orders, bilateral offers and
the network operators' requirements and their answers (``market.chain.contract``,
``market.chain.flexibility``).

No Django import; deterministic (the block time is the only time). Each check raises
``TxFailed`` with the stable code that ``docs/market.md`` lists for the transaction.
"""

from __future__ import annotations

from typing import Any

from ledger.application import Context, TxFailed
from ledger.state import State
from market.chain.network import network
from market.chain.options import Options
from market.chain.schema import add_locked, defaults, free_balance

# --- balances and margins ----------------------------------------------------------------------


def check_free(state: State, address: str, amount: int) -> None:
    if free_balance(state, address) < amount:
        raise TxFailed("insufficient_free_balance", "the free balance does not cover the margin")


def lock_margin(state: State, address: str, amount: int) -> None:
    check_free(state, address, amount)
    add_locked(state, address, amount)


# --- payload fields, slots and the qualification audit -----------------------------------------


def stored(state: State, prefix: str, item_id: Any, code: str) -> dict[str, Any]:
    """The record at ``prefix + item_id`` (an order, offer, requirement, answer), or ``code``."""
    found = state.get(prefix + item_id) if isinstance(item_id, str) else None
    if found is None:
        raise TxFailed(code)
    result: dict[str, Any] = found
    return result


def integer_field(value: Any, code: str) -> int:
    if type(value) is not int:  # a bool is not an integer here
        raise TxFailed(code)
    return value


def check_trading(slot: int, now: int, options: Options) -> None:
    """Trading for the slot has not closed (at block time ``now``)."""
    if now >= slot:
        raise TxFailed("slot_past", "the slot has started")
    if now >= slot - options.gate_closure_ms:
        raise TxFailed("slot_closed", "trading for the slot has closed")


def check_slot_open(slot: int, now: int, options: Options) -> None:
    """``slot`` names a slot that is open for new orders and offers."""
    if slot % options.slot_ms:
        raise TxFailed("slot_misaligned", "a slot starts at a multiple of market.slot_ms")
    check_trading(slot, now, options)
    if slot - now > options.horizon_ms:
        raise TxFailed("beyond_horizon", "the slot is too far ahead")


def check_bounds(energy_wh: int, price: int, options: Options) -> None:
    if not options.energy_min_wh <= energy_wh <= options.energy_max_wh:
        raise TxFailed("energy_out_of_bounds")
    check_steps(energy_wh, options)
    if not options.price_min <= price <= options.price_max:
        raise TxFailed("price_out_of_bounds")


def check_steps(energy_wh: int, options: Options) -> None:
    """``energy_wh`` is a whole number of the carrier's energy steps (``energy_step_wh``)."""
    if energy_wh % options.energy_step_wh:
        raise TxFailed("energy_not_in_steps", f"energy is in steps of {options.energy_step_wh} Wh")


def in_steps(energy_wh: int, options: Options) -> int:
    """Energy the market computes (a match tailored to a segment's headroom, a call auction's
    allocation), rounded down to the carrier's energy step."""
    return energy_wh - energy_wh % options.energy_step_wh


def carrier_field(value: Any, options: Options) -> str:
    """A carrier the market trades (genesis: ``market.chain.options``)."""
    if not isinstance(value, str) or value not in options.carriers:
        raise TxFailed("bad_carrier", f"the market trades {', '.join(options.carriers)}")
    return value


def qualify(
    state: State, address: str, options: Options, context: Context, carrier: str
) -> str | None:
    """The qualification audit of an account about to trade ``carrier`` (at block time): the
    network's stops (``market.chain.network``), then its defaults. Its feeder (its segment of
    the carrier's network), if it has one."""
    feeder = network(context.hooks).qualify(state, address, context.timestamp_ms, carrier)
    record = defaults(state, address)
    if record is not None and record.get("unsettled", 0) > options.max_unsettled_defaults:
        raise TxFailed("too_many_defaults")
    return feeder


def close_event(context: Context, type_: str, item: dict[str, Any], status: str) -> None:
    """The event of an order or offer leaving the book, with how it ended and what was left."""
    context.emit(type_, {"id": item["id"], "status": status, "remaining_wh": item["remaining_wh"]})
