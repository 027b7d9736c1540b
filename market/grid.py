"""The grid side of the market: which feeder each household is on, and the grid security check.

No Django import.

State keys:

``grid/feeder/<address>``
    the feeder (a name, 1-64 of ``[a-z0-9._-]``) the household's connection is on. Set by the
    grid operator with ``grid.feeder.assign``; a household without one cannot trade.

Transaction type ``grid.feeder.assign`` (grid operator only), payload
``{"address": household address, "feeder": name}``; refusals ``bad_payload``, ``bad_address``,
``unknown_account``, ``not_household``, ``bad_feeder``. Assigning again moves the household.

:func:`grid_check` is called on every match (order book, call auction, accepted offer) before the
contract is made. It returns how much of the energy the grid can carry and, when that is less,
the binding constraint, which the contract records. Today it allows everything; the grid security
check (export headroom of the seller's feeder, import headroom of the buyer's, per slot) replaces
its body in a later issue without changing its callers.
"""

from __future__ import annotations

from typing import NamedTuple

from ledger.application import (
    HOUSEHOLD,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction, is_name
from ledger.state import State


def feeder_key(address: str) -> str:
    return f"grid/feeder/{address}"


def feeder_of(state: State, address: str) -> str | None:
    feeder: str | None = state.get(feeder_key(address))
    return feeder


class GridAllowance(NamedTuple):
    energy_wh: int  # how much of the match the grid can carry, 0 <= energy_wh <= asked
    constraint: str = ""  # what binds when energy_wh is less than asked, e.g. "export:<feeder>"


def grid_check(
    state: State, *, seller: str, buyer: str, slot: int, energy_wh: int
) -> GridAllowance:
    """How much of a match of ``energy_wh`` from ``seller`` to ``buyer`` in ``slot`` the grid
    allows. Deterministic (reads ``state`` only). 0 refuses the match; less than asked tailors
    it to that amount and ``constraint`` is recorded in the contract."""
    return GridAllowance(energy_wh)


def feeder_assign(state: State, tx: Transaction, context: Context) -> None:
    """The grid operator records which feeder a household is connected to.

    Precondition (checked by the registry): the sender is the grid operator.
    """
    address, feeder = payload_fields(tx, "address", "feeder")
    address = registered_address(state, address)
    acct = account(state, address)
    assert acct is not None  # registered_address checked it
    if acct["role"] != HOUSEHOLD:
        raise TxFailed("not_household")
    if not isinstance(feeder, str) or not is_name(feeder):
        raise TxFailed("bad_feeder", "a feeder is named by 1-64 characters of [a-z0-9._-]")
    state.set(feeder_key(address), feeder)
