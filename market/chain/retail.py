"""Energy sellers (retailers): accounts that trade on behalf of households, within the limits each
household granted them.

No Django import; deterministic. The source paper's energy sellers buy and sell for their
customers. Here a ``retailer`` account (a role genesis gives or the grid operator registers) can
be a household's retailer for a carrier: the household signs a grant with its limits, and the
retailer may then place orders *for* it (``market.order.place`` with ``"for": <household>``).
A retailer trades for its customers only: an order it places without ``"for"`` (or for itself)
is refused with ``for_customers_only``, and it sends no offers. With genesis option
``market.retailers`` = 0 (the default, so chains from before roles replay unchanged) any
registered account a household names may be its retailer; with 1, only a ``retailer`` account
may be named in a grant or place an order for a household, else ``not_retailer``.

An order placed for a household is the household's in every respect (its margin is locked from
the household's balance, its contracts are the household's, the household's qualification
audit, feeder, defaults and store apply) and records who placed it (``placed_by``); the
household or that retailer may cancel it. The validators check the grant
on every order, so a retailer can never trade beyond what the household signed.

Transaction types (a household sends both)
==========================================

``market.grant`` ``{"retailer", "max_energy_wh", "max_price", "min_price", "carrier"?}``
    Grants (or changes) a retailer's right to place orders for the sender in the carrier: each
    order at most ``max_energy_wh``, a buy at most ``max_price`` and a sell at least
    ``min_price`` (minor units per kWh). Refusals: ``bad_carrier``, ``bad_address`` /
    ``unknown_account`` (the retailer), ``own_grant``, ``not_retailer`` (with
    ``market.retailers`` = 1, the account named is not a retailer), ``bad_grant_limit``
    (``max_energy_wh`` a positive integer, the prices integers >= 0).
``market.grant.revoke`` ``{"retailer", "carrier"?}``
    Ends the grant: later orders for the household are refused (its resting ones stay, and the
    household may cancel them). Refusals: ``bad_carrier``, ``unknown_grant``.

An order placed for a household is refused, after the bounds and before the household's
qualification audit, with ``not_retailer`` (with ``market.retailers`` = 1, the sender is not a
retailer), ``no_grant``, ``exceeds_grant`` (energy) or ``price_outside_grant``.

State key: ``market/grant/<carrier>/<household>/<retailer>`` ``{"max_energy_wh", "max_price",
"min_price", "height"}``. Events: ``market.grant_given`` ``{"household", "retailer", "carrier",
"max_energy_wh", "max_price", "min_price"}``, ``market.grant_revoked`` ``{"household",
"retailer", "carrier"}``.
"""

from __future__ import annotations

from typing import Any

from ledger.application import (
    RETAILER,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction
from ledger.state import State
from market.chain.book import BUY
from market.chain.options import ELECTRICITY, market_options
from market.chain.terms import carrier_field

GRANT_GIVEN = "market.grant_given"
GRANT_REVOKED = "market.grant_revoked"


def grant_key(carrier: str, household: str, retailer: str) -> str:
    return f"market/grant/{carrier}/{household}/{retailer}"


def _limit(value: Any, least: int) -> int:
    if type(value) is not int or value < least:
        raise TxFailed("bad_grant_limit", "limits are whole numbers: energy >= 1 Wh, prices >= 0")
    return value


def grant(state: State, tx: Transaction, context: Context) -> None:
    """``market.grant``. Precondition (registry): the sender is a household."""
    retailer, max_energy, max_price, min_price, carrier = payload_fields(
        tx,
        "retailer",
        "max_energy_wh",
        "max_price",
        "min_price",
        optional={"carrier": ELECTRICITY},
    )
    options = market_options(state)
    carrier = carrier_field(carrier, options)
    retailer = registered_address(state, retailer)
    if retailer == tx.sender:
        raise TxFailed("own_grant", "an account trades for itself without a grant")
    named = account(state, retailer)
    assert named is not None  # registered_address checked it
    if options.retailers and named["role"] != RETAILER:
        raise TxFailed("not_retailer", "only a retailer account trades for households")
    limits = {
        "max_energy_wh": _limit(max_energy, 1),
        "max_price": _limit(max_price, 0),
        "min_price": _limit(min_price, 0),
    }
    state.set(grant_key(carrier, tx.sender, retailer), limits | {"height": context.height})
    given = {"household": tx.sender, "retailer": retailer, "carrier": carrier}
    context.emit(GRANT_GIVEN, given | limits)


def revoke(state: State, tx: Transaction, context: Context) -> None:
    """``market.grant.revoke``. Precondition (registry): the sender is a household."""
    retailer, carrier = payload_fields(tx, "retailer", optional={"carrier": ELECTRICITY})
    carrier = carrier_field(carrier, market_options(state))
    key = grant_key(carrier, tx.sender, retailer) if isinstance(retailer, str) else None
    if key is None or state.get(key) is None:
        raise TxFailed("unknown_grant")
    state.delete(key)
    context.emit(GRANT_REVOKED, {"household": tx.sender, "retailer": retailer, "carrier": carrier})


def check_own_order(context: Context) -> None:
    """A retailer places orders for its customers only, never for itself."""
    if context.sender_role == RETAILER:
        raise TxFailed("for_customers_only", "a retailer places orders for households only")


def check_grant(
    state: State,
    household: str,
    retailer: str,
    carrier: str,
    side: str,
    energy_wh: int,
    price: int,
    context: Context,
) -> None:
    """An order ``retailer`` places for ``household`` is within the household's grant."""
    if market_options(state).retailers and context.sender_role != RETAILER:
        raise TxFailed("not_retailer", "only a retailer account trades for households")
    given = state.get(grant_key(carrier, household, retailer))
    if given is None:
        raise TxFailed("no_grant", "the household has not granted you trading in this carrier")
    if energy_wh > given["max_energy_wh"]:
        raise TxFailed("exceeds_grant", f"the grant allows {given['max_energy_wh']} Wh an order")
    if price > given["max_price"] if side == BUY else price < given["min_price"]:
        raise TxFailed("price_outside_grant", "the grant's price limit does not allow that")
