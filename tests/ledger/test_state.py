"""The ledger state (ledger.state.State): values kept as their canonical bytes, decoded when read,
behave exactly as a plain map with savepoints would, whatever the order of reads, writes,
rollbacks, roots and the store's takes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import canonical
from ledger.state import State

keys = st.sampled_from(["a", "b", "acct/x", "bal/x", "market/order/1", "é/1"])
values = st.one_of(
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.text(max_size=5),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from(["n", "side", "ü"]), st.integers(0, 9), max_size=2),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("delete"), keys, st.none()),
        st.tuples(st.just("get"), keys, st.none()),
        st.tuples(st.just("savepoint"), st.none(), st.none()),
        st.tuples(st.just("rollback"), st.none(), st.none()),
        st.tuples(st.just("root"), st.none(), st.none()),
        st.tuples(st.just("take"), st.none(), st.none()),
        st.tuples(st.just("take_encoded"), st.none(), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(initial=st.dictionaries(keys, values, max_size=6), steps=operations)
def test_it_behaves_as_a_map_with_savepoints(
    initial: dict[str, Any], steps: list[tuple[str, Any, Any]]
) -> None:
    state = State.encoded({key: canonical(value) for key, value in initial.items()})
    model = copy.deepcopy(initial)
    persisted = copy.deepcopy(initial)  # what a store that applies every take holds
    saved: list[tuple[int, dict[str, Any]]] = []
    for op, key, value in steps:
        if op == "set":
            state.set(key, value)
            model[key] = copy.deepcopy(value)
        elif op == "delete":
            state.delete(key)
            model.pop(key, None)
        elif op == "get":
            assert state.get(key) == model.get(key)
        elif op == "savepoint":
            saved.append((state.savepoint(), copy.deepcopy(model)))
        elif op == "rollback" and saved:
            point, model = saved.pop()
            state.rollback_to(point)
        elif op == "root":
            assert state.root() == State(model).root()
        elif op == "take":
            for changed, new in state.take_changes().items():
                if new is None:
                    persisted.pop(changed, None)
                else:
                    persisted[changed] = new
            assert persisted == model
        elif op == "take_encoded":
            for changed, raw in state.take_encoded_changes().items():
                if raw is None:
                    persisted.pop(changed, None)
                else:
                    assert raw == canonical(model[changed])
                    persisted[changed] = model[changed]
            assert persisted == model
    assert state.to_json() == model
    assert state.encoded_rows() == {key: canonical(value) for key, value in model.items()}
    assert sorted(state.keys("")) == sorted(model)
    assert state.root() == State(model).root()
    assert State.encoded(state.encoded_rows()).root() == state.root()


def test_a_value_is_kept_as_its_canonical_bytes() -> None:
    state = State({"acct/x": {"role": "household", "nonce": 3}})
    state.set("bal/x", 500)
    state.root()
    assert state.encoded_rows() == {
        "acct/x": b'{"nonce":3,"role":"household"}',
        "bal/x": b"500",
    }
    assert state.get("acct/x") == {"nonce": 3, "role": "household"}


def test_a_damaged_row_changes_the_root() -> None:
    """A store's rows are taken as they are; the root tells a damaged one."""
    good = State.encoded({"bal/x": b"500"})
    assert State.encoded({"bal/x": b"501"}).root() != good.root()
    assert State.encoded({"bal/x": b" 500"}).root() != good.root()


def test_a_block_executed_tentatively_then_committed_gives_the_same_root() -> None:
    """The validator's own pattern: execute, take the root and the changes, roll back; at the
    commit apply the changes and store them."""
    state = State({"bal/x": 500, "bal/y": 0, "acct/x": {"nonce": 0}})
    before = state.root()
    point = state.savepoint()
    state.set("bal/x", 400)
    state.set("bal/y", 100)
    state.delete("acct/x")
    changes = state.changes_since(point)
    tentative = state.root()
    state.rollback_to(point)
    assert state.root() == before
    assert state.get("bal/x") == 500
    assert state.get("acct/x") == {"nonce": 0}
    state.apply(changes)
    assert state.root() == tentative == State({"bal/x": 400, "bal/y": 100}).root()
    assert state.take_encoded_changes() == {"acct/x": None, "bal/x": b"400", "bal/y": b"100"}
