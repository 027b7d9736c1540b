"""Supervisory acts: what a regulator may do to the market, as signed transactions.

No Django import. The regulators are the accounts listed in genesis with the role
``regulator``; no transaction can make one later (``account.register`` makes households only),
so an account not listed in genesis can never act. Every act names a reason (1-500 characters,
``reason_required``) and is recorded with who, when (block time) and the transaction, in state
and in the chain. No act moves a balance: they release margins (locked money goes back to the
free balance of the account it belongs to) and stop trading; ``credit.*`` are not a
regulator's types (``not_allowed``), and no type edits or deletes a block, a reading, a
contract's record of what happened to it or a settlement. ``docs/supervision.md`` is the same
reference with examples.

Transaction types (regulators only)
===================================

Each payload has exactly the fields listed (``bad_payload``); codes in the order checked.

``supervision.contract.veto`` ``{"contract": id, "reason": text}``
    Cancels a contract before its slot starts. The buyer's escrow and the seller's deposit are
    released, the feeders' load gives the energy back, the contract is marked ``"vetoed":
    true`` and settlement passes it over. Refusals: ``reason_required``, ``unknown_contract``,
    ``contract_vetoed`` (vetoed already), ``delivery_started`` (block time >= the slot's start;
    a settled contract's delivery has always started).
``supervision.contract.curtail`` ``{"contract": id, "energy_wh": int, "reason": text}``
    Cuts a contract to ``energy_wh`` before its slot starts. Margins are released pro rata: the
    escrow becomes the buyer's margin for the new energy at the contract's price and fee
    (``market.pricing.buyer_margin``), the deposit ``deposit * new // old``. Refusals:
    ``reason_required``, ``unknown_contract``, ``contract_vetoed``, ``delivery_started``,
    ``bad_energy`` (not an integer), ``not_a_curtailment`` (not between 1 and the contract's
    energy less 1 Wh: to cancel it all, veto).
``supervision.review.clear`` ``{"contract": id, "reason": text}``
    The regulator reviewed a flagged contract and lets it stand. Refusals:
    ``reason_required``, ``unknown_contract``, ``contract_vetoed``, ``already_cleared``.
``supervision.trading.suspend`` ``{"scope": "market" | "feeder:<name>", "reason": text,
"until": int}``
    Suspends trading (``until``: the end, ms since 1970, or 0 for until resumed). While in
    force, orders, offers and acceptances in scope are refused with ``market_suspended`` or
    ``feeder_suspended`` (the suspension's reason is the message); a resting order on a
    suspended feeder matches nothing; a suspended market's call auction does not run.
    Refusals: ``reason_required``, ``bad_scope``, ``unknown_feeder`` (not published by the grid
    operator), ``bad_until`` (not an integer, or not after the block time), ``already_suspended``.
``supervision.trading.resume`` ``{"scope": ..., "reason": text}``
    Ends a suspension. Refusals: ``reason_required``, ``bad_scope``, ``unknown_feeder``,
    ``not_suspended`` (none in force).
``supervision.account.restrict`` ``{"address": household address, "reason": text}``
    The account may no longer publish orders or offers or accept offers; its open orders and
    offers (every slot not yet started) are cancelled and their margins released. Its contracts
    stand. Refusals: ``reason_required``, ``bad_address``, ``unknown_account``,
    ``not_household``, ``already_restricted``.
``supervision.account.reinstate`` ``{"address": ..., "reason": text}``
    Lifts the restriction. Refusals: ``reason_required``, ``bad_address``, ``unknown_account``,
    ``not_restricted``.
``supervision.defaults.reset`` ``{"address": ..., "reason": text}``
    Clears the account's unsettled default count (``market.settlement``), so that it may trade
    again under ``market.max_unsettled_defaults``; the history (``shortfalls``,
    ``shortfall_wh``) stays. Refusals: ``reason_required``, ``bad_address``,
    ``unknown_account``, ``no_defaults``.

State
=====

A contract (``market/contract/<id>``) gains ``"acts": [{"act": "veto" | "curtail" | "clear",
"reason", "by", "tx", "height", "timestamp_ms", "energy_wh_before", "energy_wh", "escrow_released",
"deposit_released"}]`` (in order; a contract without acts has no key) and, when vetoed,
``"vetoed": true``; ``energy_wh``, ``escrow`` and ``deposit`` are what stands after the acts.

``supervision/suspended/market``, ``supervision/suspended/feeder/<feeder>``
    ``{"scope", "reason", "until", "by", "tx", "height", "timestamp_ms"}`` while suspended.
``supervision/restricted/<address>``
    ``{"address", "reason", "cancelled_orders": [ids], "cancelled_offers": [ids], "by", "tx",
    "height", "timestamp_ms"}`` while restricted.
"""

from __future__ import annotations

from typing import Any

from ledger.application import (
    HOUSEHOLD,
    REGULATOR,
    Context,
    Registry,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction
from ledger.state import State
from market import book, grid
from market.contract import (
    MARKET_SUSPENDED_KEY,
    OFFER_PREFIX,
    add_locked,
    contract_key,
    feeder_suspended_key,
    offers_key,
    open_key,
    restricted_key,
    suspension,
)
from market.options import market_options
from market.pricing import buyer_margin
from market.settlement import defaults_key


def _contract(state: State, contract_id: Any) -> dict[str, Any]:
    made = state.get(contract_key(contract_id)) if isinstance(contract_id, str) else None
    if made is None:
        raise TxFailed("unknown_contract")
    result: dict[str, Any] = made
    return result


def _changeable(state: State, contract_id: Any, now: int) -> dict[str, Any]:
    """A contract a regulator may still veto or curtail at block time ``now``."""
    made = _contract(state, contract_id)
    if made.get("vetoed"):
        raise TxFailed("contract_vetoed")
    if now >= made["slot"]:
        raise TxFailed("delivery_started", "the slot has started: the contract stands")
    return made


def _record_act(
    state: State, made: dict[str, Any], act: dict[str, Any], **changed: Any
) -> dict[str, Any]:
    updated = made | changed | {"acts": [*made.get("acts", []), act]}
    state.set(contract_key(made["id"]), updated)
    return updated


def contract_veto(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.contract.veto``. Precondition (registry): the sender is a regulator."""
    contract_id, reason = payload_fields(tx, "contract", "reason")
    reason = grid.reason_of(reason)
    made = _changeable(state, contract_id, context.timestamp_ms)
    add_locked(state, made["buyer"], -made["escrow"])
    add_locked(state, made["seller"], -made["deposit"])
    grid.load_add(state, made, -made["energy_wh"])
    act = grid.act_record(
        tx,
        context,
        act="veto",
        reason=reason,
        energy_wh_before=made["energy_wh"],
        energy_wh=0,
        escrow_released=made["escrow"],
        deposit_released=made["deposit"],
    )
    _record_act(state, made, act, vetoed=True, escrow=0, deposit=0)


def contract_curtail(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.contract.curtail``. Precondition (registry): the sender is a regulator."""
    contract_id, energy_wh, reason = payload_fields(tx, "contract", "energy_wh", "reason")
    reason = grid.reason_of(reason)
    made = _changeable(state, contract_id, context.timestamp_ms)
    if type(energy_wh) is not int:
        raise TxFailed("bad_energy")
    before = made["energy_wh"]
    if not 0 < energy_wh < before:
        raise TxFailed("not_a_curtailment", f"between 1 and {before - 1} Wh; to cancel, veto")
    escrow = buyer_margin(energy_wh, made["price"], made["network_fee"])
    deposit = made["deposit"] * energy_wh // before
    add_locked(state, made["buyer"], escrow - made["escrow"])
    add_locked(state, made["seller"], deposit - made["deposit"])
    grid.load_add(state, made, energy_wh - before)
    act = grid.act_record(
        tx,
        context,
        act="curtail",
        reason=reason,
        energy_wh_before=before,
        energy_wh=energy_wh,
        escrow_released=made["escrow"] - escrow,
        deposit_released=made["deposit"] - deposit,
    )
    _record_act(state, made, act, energy_wh=energy_wh, escrow=escrow, deposit=deposit)


def review_clear(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.review.clear``. Precondition (registry): the sender is a regulator."""
    contract_id, reason = payload_fields(tx, "contract", "reason")
    reason = grid.reason_of(reason)
    made = _contract(state, contract_id)
    if made.get("vetoed"):
        raise TxFailed("contract_vetoed")
    if any(act["act"] == "clear" for act in made.get("acts", [])):
        raise TxFailed("already_cleared")
    act = grid.act_record(
        tx,
        context,
        act="clear",
        reason=reason,
        energy_wh_before=made["energy_wh"],
        energy_wh=made["energy_wh"],
        escrow_released=0,
        deposit_released=0,
    )
    _record_act(state, made, act)


def _suspension_key(state: State, scope: Any) -> str:
    feeder = grid.feeder_scope(state, scope, whole="market")
    return MARKET_SUSPENDED_KEY if feeder is None else feeder_suspended_key(feeder)


def trading_suspend(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.trading.suspend``. Precondition (registry): the sender is a regulator."""
    scope, reason, until = payload_fields(tx, "scope", "reason", "until")
    reason = grid.reason_of(reason)
    key = _suspension_key(state, scope)
    if type(until) is not int or (until != 0 and until <= context.timestamp_ms):
        raise TxFailed("bad_until", "the end is a time after now (ms since 1970), or 0 for none")
    if suspension(state, key, context.timestamp_ms) is not None:
        raise TxFailed("already_suspended")
    grid.stop_set(state, key, grid.act_record(tx, context, scope=scope, reason=reason, until=until))


def trading_resume(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.trading.resume``. Precondition (registry): the sender is a regulator."""
    scope, reason = payload_fields(tx, "scope", "reason")
    grid.reason_of(reason)
    key = _suspension_key(state, scope)
    if suspension(state, key, context.timestamp_ms) is None:
        raise TxFailed("not_suspended")
    grid.stop_delete(state, key)


def _household(state: State, value: Any) -> str:
    address = registered_address(state, value)
    acct = account(state, address)
    assert acct is not None  # registered_address checked it
    if acct["role"] != HOUSEHOLD:
        raise TxFailed("not_household")
    return address


def _cancel_open(state: State, address: str, now: int) -> tuple[list[str], list[str]]:
    """Cancel every resting order and offer of ``address`` in slots not yet started, releasing
    their margins; return the ids. O(slots in the horizon + the orders on the account's side of
    the slots it has orders in + the offers of the slots): no scan of the state."""
    options = market_options(state)
    orders: list[str] = []
    offers: list[str] = []
    first = now // options.slot_ms * options.slot_ms + options.slot_ms
    for slot in range(first, now + options.horizon_ms + options.slot_ms, options.slot_ms):
        resting = state.get(open_key(slot, address))
        if resting is not None:
            side = resting["side"]
            mine = [
                order
                for price in list(book.prices(state, slot, side))
                for order in book.queue_items(
                    state, book.level_key(slot, side, price), book.ORDER_PREFIX
                )
                if order["owner"] == address
            ]
            for order in mine:
                book.remove(state, order)
                add_locked(state, address, -order["locked"])
                orders.append(order["id"])
            state.delete(open_key(slot, address))
        for offer in book.queue_items(state, offers_key(slot), OFFER_PREFIX):
            if offer["owner"] == address:
                book.queue_unlink(state, offers_key(slot), OFFER_PREFIX, offer)
                add_locked(state, address, -offer["locked"])
                offers.append(offer["id"])
    return orders, offers


def account_restrict(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.account.restrict``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    reason = grid.reason_of(reason)
    address = _household(state, address)
    if state.get(restricted_key(address)) is not None:
        raise TxFailed("already_restricted")
    orders, offers = _cancel_open(state, address, context.timestamp_ms)
    state.set(
        restricted_key(address),
        grid.act_record(
            tx,
            context,
            address=address,
            reason=reason,
            cancelled_orders=orders,
            cancelled_offers=offers,
        ),
    )


def account_reinstate(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.account.reinstate``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    grid.reason_of(reason)
    address = registered_address(state, address)
    if state.get(restricted_key(address)) is None:
        raise TxFailed("not_restricted")
    state.delete(restricted_key(address))


def defaults_reset(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.defaults.reset``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    grid.reason_of(reason)
    address = registered_address(state, address)
    record = state.get(defaults_key(address))
    if record is None or not record.get("unsettled"):
        raise TxFailed("no_defaults")
    state.set(defaults_key(address), record | {"unsettled": 0})


TYPES = {
    "supervision.contract.veto": contract_veto,
    "supervision.contract.curtail": contract_curtail,
    "supervision.review.clear": review_clear,
    "supervision.trading.suspend": trading_suspend,
    "supervision.trading.resume": trading_resume,
    "supervision.account.restrict": account_restrict,
    "supervision.account.reinstate": account_reinstate,
    "supervision.defaults.reset": defaults_reset,
}


def register_supervision_types(registry: Registry) -> Registry:
    """Add the regulators' transaction types to ``registry``."""
    for name, handler in TYPES.items():
        registry.register(name, senders={REGULATOR}, handler=handler)
    return registry
