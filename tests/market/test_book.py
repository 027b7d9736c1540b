"""The order book's state structures on their own: the price index, the queues, and the state's
shortcut for the flat records they write."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import NonCanonicalValue, check_canonical
from ledger.state import State
from market.chain import book
from market.chain import schema as market_schema
from market.chain.options import PRICE_LIMIT

SLOT = 1_767_229_200_000
prices = st.integers(min_value=1, max_value=PRICE_LIMIT) | st.sampled_from(
    [1, 2, 31, 32, 33, 1023, 1024, 1025, PRICE_LIMIT - 1, PRICE_LIMIT]
)


def order(n: int, side: str, price: int) -> dict[str, Any]:
    return {
        "id": f"order-{n}",
        "owner": "someone",
        "slot": SLOT,
        "side": side,
        "price": price,
        "energy_wh": 1,
        "remaining_wh": 1,
        "locked": 0,
        "height": 1,
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), prices), max_size=60), st.sampled_from(book.SIDES))
def test_it_finds_the_best_price_and_every_level_in_order(
    steps: list[tuple[bool, int]], side: str
) -> None:
    state = State()
    resting: dict[int, list[dict[str, Any]]] = {}  # the model: price -> orders in time order
    for n, (adding, price) in enumerate(steps):
        if adding or price not in resting:
            added = order(n, side, price)
            book.add(state, added)
            resting.setdefault(price, []).append(state.get(market_schema.order_key(added["id"])))
        else:
            oldest = resting[price].pop(0)
            assert book.head(state, SLOT, side, price) == oldest
            book.remove(state, oldest)
            if not resting[price]:
                del resting[price]
        levels = sorted(resting, reverse=side == book.BUY)
        assert list(book.prices(state, SLOT, side)) == levels
        assert book.best_price(state, SLOT, side) == (levels[0] if levels else None)
    taken = book.take_all(state, SLOT, side)
    in_priority = sorted(resting, reverse=side == book.BUY)
    assert [o["id"] for o in taken] == [o["id"] for p in in_priority for o in resting[p]]
    assert state.to_json() == {}  # nothing of the book is left behind


def test_it_skips_the_numbers_of_orders_that_left_from_the_middle() -> None:
    state = State()
    orders = [order(n, book.SELL, 100) for n in range(5)]
    for o in orders:
        book.add(state, o)
    stored = [state.get(market_schema.order_key(o["id"])) for o in orders]
    for gone in (stored[1], stored[2], stored[0]):
        book.remove(state, gone)
    key = market_schema.level_key(SLOT, book.SELL, 100)
    assert state.get(key) == {"head": 3, "next": 5, "count": 2}
    assert book.head(state, SLOT, book.SELL, 100)["id"] == "order-3"
    assert [o["id"] for o in book.queue_items(state, key, market_schema.ORDER_PREFIX)] == [
        "order-3",
        "order-4",
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
flat_records = st.dictionaries(
    st.text(max_size=6),
    st.integers(min_value=-(2**54), max_value=2**54) | st.text(max_size=6) | st.booleans(),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(json_values | flat_records)
def test_it_stores_exactly_the_values_the_full_check_accepts(value: Any) -> None:
    try:
        check_canonical(value)
    except NonCanonicalValue:
        accepted = False
    else:
        accepted = True
    state = State()
    if value is None:
        return  # null is refused for another reason (it reads as deleted)
    if accepted:
        state.set("k", value)
        assert state.get("k") == value
    else:
        with pytest.raises(NonCanonicalValue):
            state.set("k", value)
        assert state.get("k") is None
