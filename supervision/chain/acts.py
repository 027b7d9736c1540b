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
    true`` and settlement passes it over. Refusals: ``reason_required``, ``unknown_contract``
    (also a settled one: its record has left the state), ``contract_vetoed`` (vetoed already),
    ``delivery_started`` (block time >= the slot's start).
``supervision.contract.curtail`` ``{"contract": id, "energy_wh": int, "reason": text}``
    Cuts a contract to ``energy_wh`` before its slot starts. Margins are released pro rata: the
    escrow becomes the buyer's margin for the new energy at the contract's price and fee
    (``market.chain.pricing.buyer_margin``), the deposit ``deposit * new // old``. Refusals:
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
    Clears the account's unsettled default count (``market.chain.settlement``), so that it may trade
    again under ``market.max_unsettled_defaults``; the history (``shortfalls``,
    ``shortfall_wh``) stays. Refusals: ``reason_required``, ``bad_address``,
    ``unknown_account``, ``no_defaults``.

State
=====

A contract (``market.chain.schema.Contract``) gains ``acts`` (``market.chain.schema.Act``, in
order; a contract without acts has no key) and, when vetoed, ``"vetoed": true``; ``energy_wh``,
``escrow`` and ``deposit`` are what stands after the acts. Suspensions and restrictions are
``supervision.chain.schema.Suspension`` and ``Restriction``. The market's records change only
through the market's own functions (``market.chain.schema``, ``market.chain.contract``).

Events
======

Every act is an event, with who, when and why (``supervision.chain.schema``, Events):
``supervision.contract_vetoed`` / ``_curtailed`` / ``_cleared`` (the act's record and what
stands of the contract after it: a contract's record leaves the state when its slot settles,
its acts stay in the blocks), ``supervision.market_suspended`` / ``feeder_suspended``,
``supervision.market_resumed`` / ``feeder_resumed``, ``supervision.account_restricted``,
``supervision.account_reinstated``, ``supervision.defaults_reset``.
"""

from __future__ import annotations

from typing import Any, cast

from ledger.application import (
    TRADERS,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction
from ledger.state import State
from market.chain.contract import cancel_open
from market.chain.pricing import buyer_margin
from market.chain.schema import (
    Act,
    Contract,
    add_locked,
    contract,
    contract_save,
    defaults,
    defaults_save,
)
from supervision.chain import grid
from supervision.chain.schema import (
    ACCOUNT_REINSTATED,
    ACCOUNT_RESTRICTED,
    CONTRACT_ACTED,
    DEFAULTS_RESET,
    FEEDER_RESUMED,
    FEEDER_SUSPENDED,
    MARKET_RESUMED,
    MARKET_SUSPENDED,
    MARKET_SUSPENDED_KEY,
    ContractActed,
    feeder_suspended_key,
    restricted_key,
    restriction,
    stop_delete,
    stop_set,
    suspension,
)


def _contract(state: State, contract_id: Any) -> Contract:
    made = contract(state, contract_id) if isinstance(contract_id, str) else None
    if made is None:
        raise TxFailed("unknown_contract")
    return made


def _changeable(state: State, contract_id: Any, now: int) -> Contract:
    """A contract a regulator may still veto or curtail at block time ``now``."""
    made = _contract(state, contract_id)
    if made.get("vetoed"):
        raise TxFailed("contract_vetoed")
    if now >= made["slot"]:
        raise TxFailed("delivery_started", "the slot has started: the contract stands")
    return made


def _record_act(
    state: State, context: Context, made: Contract, act: dict[str, Any], **changed: Any
) -> None:
    """Keep ``act`` in the contract's record, with what it ``changed``, and say so."""
    record: dict[str, Any] = made | changed | {"acts": [*made.get("acts", []), act]}
    contract_save(state, record)
    acted: ContractActed = {
        "contract": record["id"],
        "seller": record["seller"],
        "buyer": record["buyer"],
        "energy_wh": record["energy_wh"],
        "escrow": record["escrow"],
        "deposit": record["deposit"],
        "vetoed": bool(record.get("vetoed")),
        "act": cast(Act, act),
    }
    context.emit(CONTRACT_ACTED[act["act"]], acted)


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
    _record_act(state, context, made, act, vetoed=True, escrow=0, deposit=0)


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
    _record_act(state, context, made, act, energy_wh=energy_wh, escrow=escrow, deposit=deposit)


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
    _record_act(state, context, made, act)


def _suspension_key(state: State, scope: Any) -> tuple[str, bool]:
    """The key of the scope's suspension, and whether the scope is the whole market."""
    feeder = grid.feeder_scope(state, scope, whole="market")
    if feeder is None:
        return MARKET_SUSPENDED_KEY, True
    return feeder_suspended_key(feeder), False


def trading_suspend(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.trading.suspend``. Precondition (registry): the sender is a regulator."""
    scope, reason, until = payload_fields(tx, "scope", "reason", "until")
    reason = grid.reason_of(reason)
    key, market = _suspension_key(state, scope)
    if type(until) is not int or (until != 0 and until <= context.timestamp_ms):
        raise TxFailed("bad_until", "the end is a time after now (ms since 1970), or 0 for none")
    if suspension(state, key, context.timestamp_ms) is not None:
        raise TxFailed("already_suspended")
    suspended = grid.act_record(tx, context, scope=scope, reason=reason, until=until)
    stop_set(state, key, suspended)
    context.emit(MARKET_SUSPENDED if market else FEEDER_SUSPENDED, suspended)


def trading_resume(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.trading.resume``. Precondition (registry): the sender is a regulator."""
    scope, reason = payload_fields(tx, "scope", "reason")
    reason = grid.reason_of(reason)
    key, market = _suspension_key(state, scope)
    ended = suspension(state, key, context.timestamp_ms)
    if ended is None:
        raise TxFailed("not_suspended")
    stop_delete(state, key)
    context.emit(
        MARKET_RESUMED if market else FEEDER_RESUMED,
        grid.act_record(tx, context, scope=scope, reason=reason, suspension=ended["tx"]),
    )


def _household(state: State, value: Any) -> str:
    address = registered_address(state, value)
    acct = account(state, address)
    assert acct is not None  # registered_address checked it
    if acct["role"] not in TRADERS:
        raise TxFailed("not_household")
    return address


def account_restrict(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.account.restrict``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    reason = grid.reason_of(reason)
    address = _household(state, address)
    if restriction(state, address) is not None:
        raise TxFailed("already_restricted")
    orders, offers = cancel_open(state, address, context)
    restricted = grid.act_record(
        tx,
        context,
        address=address,
        reason=reason,
        cancelled_orders=orders,
        cancelled_offers=offers,
    )
    state.set(restricted_key(address), restricted)
    context.emit(ACCOUNT_RESTRICTED, restricted)


def account_reinstate(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.account.reinstate``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    reason = grid.reason_of(reason)
    address = registered_address(state, address)
    lifted = restriction(state, address)
    if lifted is None:
        raise TxFailed("not_restricted")
    state.delete(restricted_key(address))
    context.emit(
        ACCOUNT_REINSTATED,
        grid.act_record(tx, context, address=address, reason=reason, restriction=lifted["tx"]),
    )


def defaults_reset(state: State, tx: Transaction, context: Context) -> None:
    """``supervision.defaults.reset``. Precondition (registry): the sender is a regulator."""
    address, reason = payload_fields(tx, "address", "reason")
    reason = grid.reason_of(reason)
    address = registered_address(state, address)
    record = defaults(state, address)
    if record is None or not record.get("unsettled"):
        raise TxFailed("no_defaults")
    defaults_save(state, address, record | {"unsettled": 0})
    context.emit(
        DEFAULTS_RESET,
        grid.act_record(tx, context, address=address, reason=reason, unsettled=record["unsettled"]),
    )
