"""The market's contract logic: orders, matching, bilateral offers and contracts, on ledger state.

No Django import. Every handler here is a deterministic function of the state and the block
(``context.timestamp_ms`` is the only time): integers only (energy in Wh, money in minor units,
prices in minor units per kWh), no floats, no randomness, no I/O. Amounts follow
``market.chain.pricing`` (one rounding rule: down); options come from genesis
(``market.chain.options``). ``docs/market.md`` is the same reference with examples.

Money
=====

No trading transaction moves credits between accounts: balances (``bal/<address>``) change only
by the ledger's ``credit.*`` types and by settlement (``market.chain.settlement``). Publishing
*locks* part of the owner's balance as a margin; ``free balance = balance - locked``. A buyer locks
the full price of its bid plus the network fee (``pricing.buyer_margin``); a seller a security
deposit (``pricing.seller_deposit``, ``market.deposit_bps`` of the order's value). When orders
match, the margins move to the contract and stay locked there: the buyer's escrow at the
contract price (a price better than its bid releases the difference), the seller's deposit as
it was locked for that energy. Cancelling, withdrawing or the end of trading for a slot releases
what an unmatched remainder had locked; settlement pays from a contract's margins and releases
them. ``credit.transfer`` and ``credit.redeem`` may spend only the free balance
(the market's spend guard on the ledger's hook, ``market.chain.register``).

Delivery slots
==============

A slot is named by its start, ms since 1970-01-01T00:00Z, a multiple of ``market.slot_ms``.
With ``now`` the block time, a slot is open for trading while
``now < slot - market.gate_closure_ms`` and ``slot - now <= market.horizon_ms``.

State keys
==========

The market's keys and records are declared in ``market.chain.schema`` (the table there); the
grid's and the supervisors' (feeders, topology, loads, stops, suspensions, restrictions) in
``supervision.chain.schema``, read here only through the ``market.network`` hook
(``market.chain.network``).

A contract::

    {"id": "<slot>-<n>", "kind": "order" | "auction" | "offer", "slot", "index": n,
     "seller", "buyer", "energy_wh", "price", "network_fee", "penalty_bps",
     "escrow", "deposit", "seller_tx", "buyer_tx", "tx", "height", "timestamp_ms",
     "grid": {"requested_wh", "constraint"}}            <- only when the grid check tailored it

``price`` and ``network_fee`` are minor units per kWh; ``escrow`` (the buyer's) and ``deposit``
(the seller's) are minor units locked for the contract; ``seller_tx``/``buyer_tx`` are the ids of
the parties' signed transactions (orders, offer and acceptance; the transactions are in the
blocks); ``tx`` the transaction that made the match. Settlement pays ``value(delivered, price) +
value(delivered, network_fee)`` from the escrow and charges ``penalty_bps`` of the undelivered
energy's value from the deposit (``market.chain.settlement``, ``market.slot.settle``).

Transaction types
=================

Households and storage providers send the types below but ``market.slot.clear`` (anyone) and
the grid's types (``supervision.chain.grid``, grid operator); a retailer sends
``market.order.place`` for a household and ``market.order.cancel`` (``market.chain.retail``). A
storage provider trades within its store (``market.chain.storage``: ``no_store``,
``beyond_state_of_charge``). Each payload has exactly the fields
listed (``bad_payload``); the codes are listed in the order they are checked.

``market.order.place`` ``{"slot": int, "side": "buy"|"sell", "energy_wh": int, "price": int}``
    A limit order. Refusals: ``bad_side``, ``bad_slot``, ``bad_energy``, ``bad_price`` (wrong
    types; ``slot`` must be an integer >= 0, ``energy_wh`` and ``price`` integers),
    ``slot_misaligned``, ``slot_past`` (started already), ``slot_closed`` (gate closed),
    ``beyond_horizon``, ``energy_out_of_bounds``, ``price_out_of_bounds``, for a retailer's
    order ``not_retailer`` / ``no_grant`` / ``exceeds_grant`` / ``price_outside_grant``
    (``market.chain.retail``) and ``for_customers_only`` (a retailer's order without ``for``),
    then the qualification audit: ``market_suspended``, ``account_restricted``, ``no_feeder``,
    ``feeder_suspended``, ``grid_high_load`` / ``grid_unstable`` (the grid operator's
    declaration for the grid or the feeder), ``too_many_defaults``, ``opposite_side_open``
    (the account has resting orders on the other side of this slot: no self-trades),
    ``no_store`` / ``beyond_state_of_charge`` (``market.chain.storage``),
    ``insufficient_free_balance``.
    Continuous market: the order trades at once with the best resting orders that it crosses,
    at each resting order's price, in price-time priority; the remainder rests in the book.
    Call auction: it rests until ``market.slot.clear``.
``market.order.cancel`` ``{"order": id}``
    Takes the unmatched remainder out of the book and releases its margin. Refusals:
    ``unknown_order`` (also: fully matched, cancelled, expired), ``not_owner``, ``slot_past``,
    ``slot_closed`` (after gate closure the remainder waits for ``market.slot.clear``).
``market.offer.post`` ``{"slot", "energy_wh", "price", "buyer": address or ""}``
    A seller's bilateral offer, to one buyer or (``""``) to anyone; locks the seller's deposit.
    Refusals: as ``market.order.place`` (no side, no ``opposite_side_open``), with
    ``bad_address``, ``unknown_account``, ``not_household`` (neither a household nor a storage
    provider), ``own_offer`` (the named buyer), then ``no_store`` / ``beyond_state_of_charge``,
    before ``insufficient_free_balance``.
``market.offer.accept`` ``{"offer": id, "energy_wh": int}``
    A buyer takes all or part of an offer at its price: a contract. Refusals: ``unknown_offer``,
    ``bad_energy`` (not a positive integer), ``slot_past``, ``slot_closed``, ``own_offer``,
    ``not_offered_to_you``, ``exceeds_offer``, the buyer's qualification audit
    (``market_suspended``, ``account_restricted``, ``no_feeder``, ``feeder_suspended``,
    ``grid_high_load``, ``grid_unstable``, ``too_many_defaults``), ``feeder_suspended`` (or a
    ``grid_*`` code: the seller's feeder), ``grid_refused`` (the grid check allows nothing),
    for a storage provider ``no_store`` / ``beyond_state_of_charge`` (what the grid allows must
    fit its store's room), ``insufficient_free_balance``.
``market.offer.withdraw`` ``{"offer": id}``
    Releases the rest of the offer's deposit. Refusals: ``unknown_offer``, ``not_owner``,
    ``slot_past``, ``slot_closed``.
``market.slot.clear`` ``{"slot": int}``
    Ends trading for a slot whose gate has closed; any account may send it (the grid operator's
    site does after every gate closure). With ``market.call_auction`` = 1 it first runs the
    uniform-price auction (``market.chain.auction``) over the book; then every unmatched order and
    offer of the slot expires and releases its margin. While the market is suspended it runs no
    auction (it only expires). Refusals: ``bad_slot``, ``slot_misaligned``, ``slot_open`` (gate
    not closed yet), ``nothing_to_clear`` (no order or offer in the slot, e.g. cleared already).
    Clearing is never lazy: nothing else runs it.

Matching and the grid check
===========================

Each match asks the network (``market.chain.network``, provided by ``supervision.chain``) how
much energy the grid can carry (the headroom of the seller's feeder for export and of the
buyer's for import). When it allows less than the
match, the contract is made for what it allows and records ``grid``; the incoming order then
stops matching and its remainder rests. When it allows nothing, or either party's feeder has
been suspended or declared not normal since its order rested, the incoming order stops and
rests. In the call auction a tailored or refused bid is passed over at the clearing price,
which is not recomputed. A contract counts in both feeders' load (the view's ``count``).
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

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
from market.chain import auction, book, flexibility, retail, storage
from market.chain.book import BUY, SELL
from market.chain.network import Allowance, Network, NetworkView, network
from market.chain.options import ELECTRICITY, Options, market_options
from market.chain.pricing import buyer_margin, seller_deposit
from market.chain.schema import (
    AUCTION_CLEARED,
    CANCELLED,
    CONTRACT_MADE,
    EXPIRED,
    FILLED,
    OFFER_CLOSED,
    OFFER_POSTED,
    OFFER_PREFIX,
    ORDER_CLOSED,
    ORDER_PLACED,
    ORDER_PREFIX,
    TAKEN,
    WITHDRAWN,
    Contract,
    add_locked,
    carrier_of,
    contract_id,
    contract_key,
    contracts_key,
    level_key,
    offer_key,
    offers_key,
    open_key,
    requirements_key,
    with_carrier,
)
from market.chain.terms import (
    carrier_field,
    check_bounds,
    check_free,
    check_slot_open,
    check_steps,
    check_trading,
    close_event,
    in_steps,
    integer_field,
    lock_margin,
    qualify,
    stored,
)

# --- balances and margins ----------------------------------------------------------------------


def _margin(side: str, energy_wh: int, price: int, options: Options) -> int:
    """What an order (or offer: ``sell``) of ``energy_wh`` at ``price`` locks."""
    if side == BUY:
        return buyer_margin(energy_wh, price, options.network_fee)
    return seller_deposit(energy_wh, price, options.deposit_bps)


def _order_terms(
    state: State,
    tx: Transaction,
    context: Context,
    slot: Any,
    energy_wh: Any,
    price: Any,
    carrier: Any,
    *,
    owner: str,
    side: str = SELL,
) -> tuple[int, int, int, Options, str, str | None]:
    """Checks shared by orders and offers, up to and including the qualification audit of
    ``owner`` (the sender, or the household a retailer places an order for: its grant is checked
    first); the carrier's options, the carrier and the owner's feeder come last."""
    market = market_options(state)
    carrier = carrier_field(carrier, market)
    slot = integer_field(slot, "bad_slot")
    if slot < 0:
        raise TxFailed("bad_slot")
    energy_wh = integer_field(energy_wh, "bad_energy")
    price = integer_field(price, "bad_price")
    options = market.carrier(carrier)
    check_slot_open(slot, context.timestamp_ms, options)
    check_bounds(energy_wh, price, options)
    if owner != tx.sender:
        retail.check_grant(state, owner, tx.sender, carrier, side, energy_wh, price, context)
    else:
        retail.check_own_order(context)
    feeder = qualify(state, owner, options, context, carrier)
    return slot, energy_wh, price, options, carrier, feeder


# --- contracts ---------------------------------------------------------------------------------


def _in_steps(allowance: Allowance, options: Options) -> Allowance:
    """What the grid allows of a match, rounded down to the carrier's energy step (the matched
    orders' energies are whole steps, so only a tailored match can need it)."""
    energy_wh = in_steps(allowance.energy_wh, options)
    return (
        allowance if energy_wh == allowance.energy_wh else allowance._replace(energy_wh=energy_wh)
    )


class Trade(NamedTuple):
    buy: dict[str, Any]
    sell: dict[str, Any]
    released: int  # of the buyer's margin: the price improvement


def _trade(
    state: State,
    context: Context,
    options: Options,
    *,
    kind: str,
    buy: dict[str, Any],
    sell: dict[str, Any],
    energy_wh: int,
    price: int,
    allowance: Allowance,
    asked_wh: int,
    view: NetworkView,
) -> Trade:
    """Make the contract for ``energy_wh`` between a buy and a sell (orders, or an offer and its
    acceptance) at ``price``; return both with their remainders and margins after it, and what
    the buyer's margin released (the caller subtracts it from the buyer's locked amount).

    The buyer's margin for the energy (locked at its own price) becomes the escrow at
    ``price``, and the difference is released; the seller's deposit for the energy moves as it
    is. Rounding down makes both differences >= 0 (``market.chain.pricing``).
    """
    buy_after = buy["remaining_wh"] - energy_wh
    sell_after = sell["remaining_wh"] - energy_wh
    buy_locked = _margin(BUY, buy_after, buy["price"], options)
    sell_locked = _margin(SELL, sell_after, sell["price"], options)
    escrow = buyer_margin(energy_wh, price, options.network_fee)
    deposit = sell["locked"] - sell_locked
    slot, carrier = sell["slot"], carrier_of(sell)
    index: int = state.get(contracts_key(slot, carrier), 0)
    contract: Contract = {
        "id": contract_id(slot, index, carrier),
        "kind": kind,
        "slot": slot,
        "index": index,
        "seller": sell["owner"],
        "buyer": buy["owner"],
        "energy_wh": energy_wh,
        "price": price,
        "network_fee": options.network_fee,
        "penalty_bps": options.penalty_bps,
        "escrow": escrow,
        "deposit": deposit,
        "seller_tx": sell["id"],
        "buyer_tx": buy["id"],
        "tx": context.tx_id,
        "height": context.height,
        "timestamp_ms": context.timestamp_ms,
    }
    if energy_wh < asked_wh:
        contract["grid"] = {
            "requested_wh": asked_wh,
            "constraint": allowance.constraint,
            "cut_wh": asked_wh - energy_wh,
        }
    if carrier != ELECTRICITY:
        contract["carrier"] = carrier
    view.count(contract, energy_wh)
    state.set(contracts_key(slot, carrier), index + 1)
    state.set(contract_key(contract["id"]), contract)
    context.emit(CONTRACT_MADE, contract)
    return Trade(
        buy=buy | {"remaining_wh": buy_after, "locked": buy_locked},
        sell=sell | {"remaining_wh": sell_after, "locked": sell_locked},
        released=buy["locked"] - buy_locked - escrow,
    )


# --- orders ------------------------------------------------------------------------------------


def _open_add(state: State, slot: int, address: str, side: str, carrier: str) -> None:
    key = open_key(slot, address, carrier)
    current = state.get(key)
    state.set(key, {"side": side, "count": current["count"] + 1 if current else 1})


def _open_remove(state: State, slot: int, address: str, carrier: str) -> None:
    key = open_key(slot, address, carrier)
    current = state.get(key)
    if current["count"] == 1:
        state.delete(key)
    else:
        state.set(key, current | {"count": current["count"] - 1})


def order_place(state: State, tx: Transaction, context: Context) -> None:
    """``market.order.place``: publish a limit order; in a continuous market, match it.

    Precondition (checked by the registry): the sender is a household.
    """
    slot, side, energy_wh, price, carrier, on_behalf = payload_fields(
        tx,
        "slot",
        "side",
        "energy_wh",
        "price",
        optional={"carrier": ELECTRICITY, "for": ""},
    )
    if side not in (BUY, SELL):
        raise TxFailed("bad_side")
    owner = tx.sender if on_behalf == "" else registered_address(state, on_behalf)
    slot, energy_wh, price, options, carrier, feeder = _order_terms(
        state, tx, context, slot, energy_wh, price, carrier, owner=owner, side=side
    )
    resting = state.get(open_key(slot, owner, carrier))
    if resting is not None and resting["side"] != side:
        raise TxFailed("opposite_side_open", "the account has resting orders on the other side")
    margin = _margin(side, energy_wh, price, options)
    storage.require_store(state, owner, carrier, context)
    storage.commit(state, owner, carrier, slot, side, energy_wh)
    check_free(state, owner, margin)
    order = with_carrier(
        {
            "id": context.tx_id,
            "owner": owner,
            "slot": slot,
            "side": side,
            "price": price,
            "energy_wh": energy_wh,
            "remaining_wh": energy_wh,
            "locked": margin,
            "height": context.height,
        },
        carrier,
    )
    if owner != tx.sender:
        order["placed_by"] = tx.sender
    names = ("id", "owner", "slot", "side", "price", "energy_wh", "placed_by")
    placed = {name: order[name] for name in names if name in order}
    context.emit(ORDER_PLACED, with_carrier(placed, carrier))
    released = 0
    if not options.call_auction:
        order, released = _match(state, context, options, order, feeder)
    if order["remaining_wh"]:
        book.add(state, order)
        _open_add(state, slot, owner, side, carrier)
    else:
        close_event(context, ORDER_CLOSED, order, FILLED)
    add_locked(state, owner, margin - released)  # once, for the order and its contracts


def _match(
    state: State, context: Context, options: Options, order: dict[str, Any], feeder: str | None
) -> tuple[dict[str, Any], int]:
    """Trade an incoming order (of an account on ``feeder``, which it was just qualified to
    trade on) against the book while it crosses; return what is left of it, and how much of
    its margin the trades released (if it is a bid)."""
    slot, side, carrier = order["slot"], order["side"], carrier_of(order)
    resting_side = book.opposite(side)
    released = 0
    view = network(context.hooks).view(state, context.timestamp_ms, feeder, carrier)
    best = book.best_price(state, slot, resting_side, carrier)
    while order["remaining_wh"] and best is not None and book.crosses(side, order["price"], best):
        resting = book.head(state, slot, resting_side, best, carrier)
        buy, sell = (order, resting) if side == BUY else (resting, order)
        asked = min(order["remaining_wh"], resting["remaining_wh"])
        allowance = _in_steps(
            view.allowed(seller=sell["owner"], buyer=buy["owner"], slot=slot, energy_wh=asked),
            options,
        )
        if allowance.energy_wh == 0:
            break
        trade = _trade(
            state,
            context,
            options,
            kind="order",
            buy=buy,
            sell=sell,
            energy_wh=allowance.energy_wh,
            price=best,
            allowance=allowance,
            asked_wh=asked,
            view=view,
        )
        if side == BUY:
            order, resting_after = trade.buy, trade.sell
            released += trade.released
        else:
            order, resting_after = trade.sell, trade.buy
            add_locked(state, resting["owner"], -trade.released)
        if resting_after["remaining_wh"]:
            book.update(state, resting_after)
        else:
            if book.remove(state, resting):  # the level is gone: the next best price
                best = book.best_price(state, slot, resting_side, carrier)
            _open_remove(state, slot, resting["owner"], carrier)
            close_event(context, ORDER_CLOSED, resting_after, FILLED)
        if allowance.energy_wh < asked:
            break  # the grid's constraint binds: the rest of the order waits in the book
    return order, released


def order_cancel(state: State, tx: Transaction, context: Context) -> None:
    """``market.order.cancel``: withdraw an order's unmatched remainder, release its margin.

    Precondition (checked by the registry): the sender is a household.
    """
    (order_id,) = payload_fields(tx, "order")
    order = stored(state, ORDER_PREFIX, order_id, "unknown_order")
    if tx.sender not in (order["owner"], order.get("placed_by")):
        raise TxFailed("not_owner")
    check_trading(order["slot"], context.timestamp_ms, market_options(state))
    owner = order["owner"]
    book.remove(state, order)
    storage.release(state, order, order["side"])
    _open_remove(state, order["slot"], owner, carrier_of(order))
    add_locked(state, owner, -order["locked"])
    close_event(context, ORDER_CLOSED, order, CANCELLED)


def cancel_open(state: State, address: str, context: Context) -> tuple[list[str], list[str]]:
    """Cancel every resting order and offer of ``address`` in slots not yet started, releasing
    their margins; return the ids (a regulator's restriction, ``supervision.chain.acts``). Each
    closes with an event, as its owner's cancellation would.
    O(slots in the horizon + the orders on the account's side of the slots it has orders in +
    the offers of the slots): no scan of the state."""
    options = market_options(state)
    now = context.timestamp_ms
    orders: list[str] = []
    offers: list[str] = []
    first = now // options.slot_ms * options.slot_ms + options.slot_ms
    slots = range(first, now + options.horizon_ms + options.slot_ms, options.slot_ms)
    for slot, carrier in itertools.product(slots, options.carriers):
        resting = state.get(open_key(slot, address, carrier))
        if resting is not None:
            side = resting["side"]
            mine = [
                order
                for price in list(book.prices(state, slot, side, carrier))
                for order in book.queue_items(
                    state, level_key(slot, side, price, carrier), ORDER_PREFIX
                )
                if order["owner"] == address
            ]
            for order in mine:
                book.remove(state, order)
                storage.release(state, order, side)
                add_locked(state, address, -order["locked"])
                orders.append(order["id"])
                close_event(context, ORDER_CLOSED, order, CANCELLED)
            state.delete(open_key(slot, address, carrier))
        for offer in book.queue_items(state, offers_key(slot, carrier), OFFER_PREFIX):
            if offer["owner"] == address:
                book.queue_unlink(state, offers_key(slot, carrier), OFFER_PREFIX, offer)
                storage.release(state, offer, SELL)
                add_locked(state, address, -offer["locked"])
                offers.append(offer["id"])
                close_event(context, OFFER_CLOSED, offer, WITHDRAWN)
    return orders, offers


# --- bilateral offers --------------------------------------------------------------------------


def offer_post(state: State, tx: Transaction, context: Context) -> None:
    """``market.offer.post``: a seller offers energy to a named buyer or to anyone.

    Precondition (checked by the registry): the sender is a household.
    """
    slot, energy_wh, price, buyer, carrier = payload_fields(
        tx, "slot", "energy_wh", "price", "buyer", optional={"carrier": ELECTRICITY}
    )
    slot, energy_wh, price, options, carrier, _ = _order_terms(
        state, tx, context, slot, energy_wh, price, carrier, owner=tx.sender
    )
    if buyer != "":
        buyer = registered_address(state, buyer)
        named = account(state, buyer)
        if named is None or named["role"] not in TRADERS:
            raise TxFailed("not_household")
        if buyer == tx.sender:
            raise TxFailed("own_offer")
    deposit = _margin(SELL, energy_wh, price, options)
    storage.require_store(state, tx.sender, carrier, context)
    storage.commit(state, tx.sender, carrier, slot, SELL, energy_wh)
    lock_margin(state, tx.sender, deposit)
    offer = with_carrier(
        {
            "id": context.tx_id,
            "owner": tx.sender,
            "slot": slot,
            "price": price,
            "energy_wh": energy_wh,
            "remaining_wh": energy_wh,
            "locked": deposit,
            "buyer": buyer,
            "height": context.height,
        },
        carrier,
    )
    book.queue_push(state, offers_key(slot, carrier), OFFER_PREFIX, offer)
    posted = {name: offer[name] for name in ("id", "owner", "slot", "price", "energy_wh", "buyer")}
    context.emit(OFFER_POSTED, with_carrier(posted, carrier))


def offer_accept(state: State, tx: Transaction, context: Context) -> None:
    """``market.offer.accept``: a buyer takes all or part of an offer; a contract at its price.

    Precondition (checked by the registry): the sender is a household.
    """
    offer_id, energy_wh = payload_fields(tx, "offer", "energy_wh")
    offer = stored(state, OFFER_PREFIX, offer_id, "unknown_offer")
    energy_wh = integer_field(energy_wh, "bad_energy")
    if energy_wh <= 0:
        raise TxFailed("bad_energy")
    slot, seller, carrier = offer["slot"], offer["owner"], carrier_of(offer)
    options = market_options(state).carrier(carrier)
    check_trading(slot, context.timestamp_ms, options)
    if seller == tx.sender:
        raise TxFailed("own_offer")
    if offer["buyer"] not in ("", tx.sender):
        raise TxFailed("not_offered_to_you")
    if energy_wh > offer["remaining_wh"]:
        raise TxFailed("exceeds_offer")
    check_steps(energy_wh, options)
    qualify(state, tx.sender, options, context, carrier)
    net = network(context.hooks)
    net.check_counterparty(state, seller, context.timestamp_ms, carrier)
    view = net.view(state, context.timestamp_ms, carrier=carrier)
    allowance = _in_steps(
        view.allowed(seller=seller, buyer=tx.sender, slot=slot, energy_wh=energy_wh), options
    )
    if allowance.energy_wh == 0:
        raise TxFailed("grid_refused", allowance.constraint)
    escrow = buyer_margin(allowance.energy_wh, offer["price"], options.network_fee)
    if context.sender_role == STORAGE_PROVIDER:
        # A storage provider charges only into its store's room; what it takes is matched at
        # once, so it stays committed until the slot settles (a household's store is not asked:
        # chains from before storage providers replay unchanged).
        storage.require_store(state, tx.sender, carrier, context)
        storage.commit(state, tx.sender, carrier, slot, BUY, allowance.energy_wh)
    lock_margin(state, tx.sender, escrow)
    acceptance = {
        "id": context.tx_id,
        "owner": tx.sender,
        "price": offer["price"],
        "remaining_wh": allowance.energy_wh,
        "locked": escrow,
    }
    offer_after = _trade(
        state,
        context,
        options,
        kind="offer",
        buy=acceptance,
        sell=offer,
        energy_wh=allowance.energy_wh,
        price=offer["price"],
        allowance=allowance,
        asked_wh=energy_wh,
        view=view,
    ).sell
    if offer_after["remaining_wh"]:
        state.set(offer_key(offer["id"]), offer_after)
    else:
        book.queue_unlink(state, offers_key(slot, carrier), OFFER_PREFIX, offer)
        close_event(context, OFFER_CLOSED, offer_after, TAKEN)


def offer_withdraw(state: State, tx: Transaction, context: Context) -> None:
    """``market.offer.withdraw``: the seller takes back the rest of an offer and its deposit.

    Precondition (checked by the registry): the sender is a household.
    """
    (offer_id,) = payload_fields(tx, "offer")
    offer = stored(state, OFFER_PREFIX, offer_id, "unknown_offer")
    if offer["owner"] != tx.sender:
        raise TxFailed("not_owner")
    check_trading(offer["slot"], context.timestamp_ms, market_options(state))
    book.queue_unlink(state, offers_key(offer["slot"], carrier_of(offer)), OFFER_PREFIX, offer)
    storage.release(state, offer, SELL)
    add_locked(state, tx.sender, -offer["locked"])
    close_event(context, OFFER_CLOSED, offer, WITHDRAWN)


# --- the end of trading for a slot -------------------------------------------------------------


def slot_clear(state: State, tx: Transaction, context: Context) -> None:
    """``market.slot.clear``: after gate closure, run the call auction (if the market has one)
    and expire every unmatched order and offer of the slot, releasing their margins.

    Any account may send it. O(orders + offers of the slot), once per slot.
    """
    (slot,) = payload_fields(tx, "slot")
    slot = integer_field(slot, "bad_slot")
    if slot < 0:
        raise TxFailed("bad_slot")
    options = market_options(state)
    if slot % options.slot_ms:
        raise TxFailed("slot_misaligned")
    if context.timestamp_ms < slot - options.gate_closure_ms:
        raise TxFailed("slot_open", "trading for the slot has not closed yet")
    carriers = [c for c in options.carriers if has_open_trading(state, slot, c)]
    if not carriers:
        raise TxFailed("nothing_to_clear")
    net = network(context.hooks)
    for carrier in carriers:  # each carrier's book on its own, electricity first
        bids = book.take_all(state, slot, BUY, carrier)
        asks = book.take_all(state, slot, SELL, carrier)
        if options.call_auction and not net.market_suspended(state, context.timestamp_ms):
            _call_auction(state, context, options.carrier(carrier), net, slot, carrier, bids, asks)
        for order in itertools.chain(bids, asks):
            storage.release(state, order, order["side"])
            add_locked(state, order["owner"], -order["locked"])
            state.delete(open_key(slot, order["owner"], carrier))
            status = FILLED if not order["remaining_wh"] else EXPIRED
            close_event(context, ORDER_CLOSED, order, status)
        for offer in book.queue_delete(state, offers_key(slot, carrier), OFFER_PREFIX):
            storage.release(state, offer, SELL)
            add_locked(state, offer["owner"], -offer["locked"])
            close_event(context, OFFER_CLOSED, offer, EXPIRED)
        flexibility.expire(state, slot, carrier, context)


def has_open_trading(state: State, slot: int, carrier: str) -> bool:
    """Whether the carrier's book of ``slot`` still holds an order, an offer or a network
    operator's requirement (``market.chain.flexibility``)."""
    return (
        book.best_price(state, slot, BUY, carrier) is not None
        or book.best_price(state, slot, SELL, carrier) is not None
        or state.get(offers_key(slot, carrier)) is not None
        or state.get(requirements_key(slot, carrier)) is not None
    )


def _call_auction(
    state: State,
    context: Context,
    options: Options,
    net: Network,
    slot: int,
    carrier: str,
    bids: list[dict[str, Any]],
    asks: list[dict[str, Any]],
) -> None:
    """Match ``bids`` and ``asks`` (taken out of the book, best first) at one clearing price;
    the orders in the lists are replaced by what is left of them."""

    def levels(orders: list[dict[str, Any]]) -> list[tuple[int, int]]:
        grouped = itertools.groupby(orders, key=lambda order: order["price"])
        return [(price, sum(o["remaining_wh"] for o in group)) for price, group in grouped]

    clearing = auction.clearing_price(levels(bids), levels(asks))
    view = net.view(state, context.timestamp_ms, carrier=carrier)
    contracts = volume = 0
    if clearing is not None:
        i = j = 0
        while i < len(bids) and j < len(asks):
            bid, ask = bids[i], asks[j]
            if bid["price"] < clearing.price or ask["price"] > clearing.price:
                break
            asked = min(bid["remaining_wh"], ask["remaining_wh"])
            allowance = _in_steps(
                view.allowed(seller=ask["owner"], buyer=bid["owner"], slot=slot, energy_wh=asked),
                options,
            )
            if allowance.energy_wh:
                trade = _trade(
                    state,
                    context,
                    options,
                    kind="auction",
                    buy=bid,
                    sell=ask,
                    energy_wh=allowance.energy_wh,
                    price=clearing.price,
                    allowance=allowance,
                    asked_wh=asked,
                    view=view,
                )
                bids[i], asks[j] = trade.buy, trade.sell
                add_locked(state, bid["owner"], -trade.released)
                contracts += 1
                volume += allowance.energy_wh
            if bids[i]["remaining_wh"] == 0 or allowance.energy_wh < asked:
                i += 1  # filled, or the grid binds for this buyer: the next bid
            if asks[j]["remaining_wh"] == 0:
                j += 1
    cleared = {
        "slot": slot,
        "price": clearing.price if clearing else 0,
        "volume_wh": volume,
        "contracts": contracts,
    }
    context.emit(AUCTION_CLEARED, with_carrier(cleared, carrier))
