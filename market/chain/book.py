"""Order books in the ledger's state: one per carrier, delivery slot and side, with price-time
priority. The keys below are electricity's; another carrier's have ``<carrier>/<slot>`` for
``<slot>`` (``market.chain.schema``, "carriers"), and an order's own ``carrier`` says which book
it rests in.

No Django import. The state is a flat map of keys to small JSON values (``ledger.state``), and
``State.set`` checks a whole value and ``State.keys`` sorts every key, so a book is spread over
small keys, and every operation here touches a bounded number of them, whatever the book's size:

``market/order/<id>``
    one resting order (``id`` is the id of the transaction that placed it)::

        {"id", "owner", "slot", "side": "buy"|"sell", "price", "energy_wh", "remaining_wh",
         "locked", "height", "seq"}

    ``energy_wh`` is what was ordered, ``remaining_wh`` what is still unmatched, ``locked`` the
    margin still locked for the remainder, ``seq`` its number in its price level's queue.

``market/level/<slot>/<side>/<price>``
    one price level, a queue of orders in time priority::

        {"head": seq of the oldest order, "next": seq the next order gets, "count": orders}

``market/level/<slot>/<side>/<price>/<seq>``
    the id of the level's order number ``seq`` (deleted when the order leaves the book; the
    head skips the numbers of orders cancelled from the middle).

``market/book/<slot>/<side>/<depth>/<prefix>``
    the price index: which levels exist, as a 5-level trie of 32-way nodes over the price's 25
    bits. A node's value is an integer whose bit ``i`` is set when its child ``prefix * 32 + i``
    holds a level (at depth 4 the child is the price itself); empty nodes are deleted. The best
    price is found by following the highest (bids) or lowest (asks) bit from the root, 5 reads;
    adding or removing a level changes at most 5 nodes. So insertion, cancellation, the best
    price and a fill cost O(log P) (P: the price range), never O(orders).

The same queue (``queue_push``, ``queue_unlink``, ``queue_head``...) keeps the bilateral offers of a
slot in time order (``market.chain.contract``). Stored values are never changed in place: a changed
copy is written back, so that ``State.rollback_to`` can undo a failed transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ledger.state import State
from market.chain.options import ELECTRICITY
from market.chain.schema import (
    ORDER_PREFIX,
    book_index_prefix,
    carrier_of,
    level_key,
    order_key,
)

BUY = "buy"
SELL = "sell"
SIDES = (BUY, SELL)

_BITS = 5
_FANOUT = 1 << _BITS
_DEPTH = 5  # 5 x 5 bits: prices below 2**25 (market.chain.options.PRICE_LIMIT)


def opposite(side: str) -> str:
    return SELL if side == BUY else BUY


def crosses(side: str, price: int, resting_price: int) -> bool:
    """Whether an order on ``side`` at ``price`` trades with one resting at ``resting_price``."""
    return resting_price <= price if side == BUY else resting_price >= price


# --- queues: items in time order, numbered -----------------------------------------------------


def _entry_key(queue_key: str, seq: int) -> str:
    return f"{queue_key}/{seq}"


def queue_push(state: State, queue_key: str, item_prefix: str, item: dict[str, Any]) -> bool:
    """Store ``item`` (with an ``id``) at the tail of the queue, numbered ``seq``; whether the
    queue is new."""
    queue: dict[str, int] | None = state.get(queue_key)
    if queue is None:
        queue = {"head": 0, "next": 0, "count": 0}
    seq = queue["next"]
    state.set(_entry_key(queue_key, seq), item["id"])
    state.set(queue_key, {"head": queue["head"], "next": seq + 1, "count": queue["count"] + 1})
    state.set(item_prefix + item["id"], item | {"seq": seq})
    return queue["count"] == 0


def queue_unlink(state: State, queue_key: str, item_prefix: str, item: dict[str, Any]) -> bool:
    """Delete ``item`` (as stored) from the queue and the state; whether the queue is now empty
    (and deleted)."""
    state.delete(item_prefix + item["id"])
    state.delete(_entry_key(queue_key, item["seq"]))
    queue: dict[str, int] = state.get(queue_key)
    if queue["count"] == 1:
        state.delete(queue_key)
        return True
    head = queue["head"]
    if item["seq"] == head:
        # Skip the numbers of items that left from the middle (each is skipped once only).
        head += 1
        while state.get(_entry_key(queue_key, head)) is None:
            head += 1
    state.set(queue_key, {"head": head, "next": queue["next"], "count": queue["count"] - 1})
    return False


def queue_head(state: State, queue_key: str, item_prefix: str) -> dict[str, Any]:
    """The oldest item of a queue that exists."""
    item_id = state.get(_entry_key(queue_key, state.get(queue_key)["head"]))
    item: dict[str, Any] = state.get(item_prefix + item_id)
    return item


def queue_items(state: State, queue_key: str, item_prefix: str) -> list[dict[str, Any]]:
    """The queue's items in time order (for clearing a slot: O(items ever pushed))."""
    queue = state.get(queue_key)
    items: list[dict[str, Any]] = []
    for seq in range(queue["head"], queue["next"]) if queue else ():
        item_id = state.get(_entry_key(queue_key, seq))
        if item_id is not None:
            items.append(state.get(item_prefix + item_id))
    return items


def queue_delete(state: State, queue_key: str, item_prefix: str) -> list[dict[str, Any]]:
    """Delete the queue, its entries and its items; return the items in time order."""
    items = queue_items(state, queue_key, item_prefix)
    for item in items:
        state.delete(item_prefix + item["id"])
        state.delete(_entry_key(queue_key, item["seq"]))
    state.delete(queue_key)
    return items


# --- the price index ---------------------------------------------------------------------------


def _index_add(state: State, slot: int, side: str, price: int, carrier: str) -> None:
    base = book_index_prefix(slot, side, carrier)
    for depth in range(_DEPTH - 1, -1, -1):
        key = f"{base}{depth}/{price >> (_BITS * (_DEPTH - depth))}"
        bit = 1 << ((price >> (_BITS * (_DEPTH - 1 - depth))) & (_FANOUT - 1))
        mask = state.get(key, 0)
        state.set(key, mask | bit)
        if mask:  # the node was not empty, so its ancestors already lead to it
            return


def _index_remove(state: State, slot: int, side: str, price: int, carrier: str) -> None:
    base = book_index_prefix(slot, side, carrier)
    for depth in range(_DEPTH - 1, -1, -1):
        key = f"{base}{depth}/{price >> (_BITS * (_DEPTH - depth))}"
        bit = 1 << ((price >> (_BITS * (_DEPTH - 1 - depth))) & (_FANOUT - 1))
        mask = state.get(key, 0) & ~bit
        if mask:
            state.set(key, mask)
            return
        state.delete(key)  # now empty: clear its bit in its parent too


def best_price(state: State, slot: int, side: str, carrier: str = ELECTRICITY) -> int | None:
    """The highest bid (``buy``) or lowest ask (``sell``) of the slot in the carrier's book;
    None if there is none."""
    base = book_index_prefix(slot, side, carrier)
    prefix = 0
    for depth in range(_DEPTH):
        mask = state.get(f"{base}{depth}/{prefix}", 0)
        if not mask:
            return None
        index = mask.bit_length() - 1 if side == BUY else (mask & -mask).bit_length() - 1
        prefix = (prefix << _BITS) | index
    return prefix


def prices(state: State, slot: int, side: str, carrier: str = ELECTRICITY) -> Iterator[int]:
    """The side's price levels, best first (for clearing a slot: O(levels))."""

    base = book_index_prefix(slot, side, carrier)

    def walk(depth: int, prefix: int) -> Iterator[int]:
        mask = state.get(f"{base}{depth}/{prefix}", 0)
        indexes = [i for i in range(_FANOUT) if mask >> i & 1]
        for index in reversed(indexes) if side == BUY else indexes:
            child = (prefix << _BITS) | index
            if depth == _DEPTH - 1:
                yield child
            else:
                yield from walk(depth + 1, child)

    return walk(0, 0)


def _index_nodes(state: State, slot: int, side: str, carrier: str) -> list[str]:
    keys: list[str] = []
    base = book_index_prefix(slot, side, carrier)

    def walk(depth: int, prefix: int) -> None:
        key = f"{base}{depth}/{prefix}"
        mask = state.get(key, 0)
        if not mask:
            return
        keys.append(key)
        if depth < _DEPTH - 1:
            for index in range(_FANOUT):
                if mask >> index & 1:
                    walk(depth + 1, (prefix << _BITS) | index)

    walk(0, 0)
    return keys


# --- orders in the book ------------------------------------------------------------------------


def add(state: State, order: dict[str, Any]) -> None:
    """Rest ``order`` at the tail of its price level (after every order already there)."""
    slot, side, price, carrier = order["slot"], order["side"], order["price"], carrier_of(order)
    if queue_push(state, level_key(slot, side, price, carrier), ORDER_PREFIX, order):
        _index_add(state, slot, side, price, carrier)


def remove(state: State, order: dict[str, Any]) -> bool:
    """Take ``order`` (as stored) out of the book and the state; whether its level emptied."""
    slot, side, price, carrier = order["slot"], order["side"], order["price"], carrier_of(order)
    if queue_unlink(state, level_key(slot, side, price, carrier), ORDER_PREFIX, order):
        _index_remove(state, slot, side, price, carrier)
        return True
    return False


def update(state: State, order: dict[str, Any]) -> None:
    """Write back a resting order that was partly filled (same level, same place in it)."""
    state.set(order_key(order["id"]), order)


def head(
    state: State, slot: int, side: str, price: int, carrier: str = ELECTRICITY
) -> dict[str, Any]:
    """The oldest order at a price level that exists."""
    return queue_head(state, level_key(slot, side, price, carrier), ORDER_PREFIX)


def level(
    state: State, slot: int, side: str, price: int, carrier: str = ELECTRICITY
) -> dict[str, Any] | None:
    value: dict[str, Any] | None = state.get(level_key(slot, side, price, carrier))
    return value


def take_all(
    state: State, slot: int, side: str, carrier: str = ELECTRICITY
) -> list[dict[str, Any]]:
    """Empty one side of a slot's book: delete its orders, levels and index; return the orders
    in priority order (best price first, then time). O(orders + levels)."""
    orders: list[dict[str, Any]] = []
    for price in list(prices(state, slot, side, carrier)):
        orders += queue_delete(state, level_key(slot, side, price, carrier), ORDER_PREFIX)
    for node in _index_nodes(state, slot, side, carrier):
        state.delete(node)
    return orders
