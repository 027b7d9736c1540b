"""ledger.heap: a validator's committed state out of the cyclic collector's way."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import runtime
from ledger.heap import Heap
from tests.ledger.chains import HOUSEHOLDS
from tests.ledger.test_node import Network, register


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen in this (pytest's) process."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:  # weakref-able, and a container the collector tracks
    def __init__(self) -> None:
        self.other: Node | None = None


def tracked(thing: object) -> bool:
    """Whether any generation the collector walks holds ``thing`` (frozen ones: none does)."""
    return any(any(o is thing for o in gc.get_objects(g)) for g in range(3))


def cycle() -> weakref.ref[Node]:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_a_commit_freezes_what_survives_it() -> None:
    state = {"acct/ada": {"balance": 1}}
    assert tracked(state)
    Heap().committed()
    assert not tracked(state)
    assert gc.get_freeze_count() > 0


def test_cyclic_garbage_made_before_a_commit_is_freed_by_it_not_frozen() -> None:
    gc.disable()  # no automatic collection may free it first
    try:
        dead = cycle()
        assert dead() is not None
        Heap().committed()
        assert dead() is None
    finally:
        gc.enable()


def test_frozen_state_the_ledger_drops_is_freed_at_once() -> None:
    contract = Node()  # no cycle: reference counting frees it, frozen or not
    gone = weakref.ref(contract)
    Heap().committed()
    assert not tracked(contract)
    del contract
    assert gone() is None


def test_a_cycle_frozen_alive_is_freed_by_the_next_sweep() -> None:
    heap = Heap(sweep_every=3)
    holder = [Node()]
    holder[0].other = Node()
    holder[0].other.other = holder[0]  # a cycle, alive (in flight) when the block commits
    alive = weakref.ref(holder[0])
    heap.committed()
    holder.clear()  # now garbage, but frozen: no collection sees it ...
    heap.committed()
    gc.collect()
    assert alive() is not None
    heap.committed()  # ... until the third block's sweep
    assert (heap.blocks, heap.sweeps) == (3, 1)
    assert alive() is None


def test_blocks_committed_at_once_count_towards_the_sweep() -> None:
    heap = Heap(sweep_every=10)
    heap.committed(9)
    assert heap.sweeps == 0
    heap.committed(4)
    assert (heap.blocks, heap.sweeps) == (13, 1)
    with pytest.raises(ValueError, match="sweep_every"):
        Heap(sweep_every=0)


def test_the_validator_process_freezes_after_each_block_it_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validator 0's inputs go through ``ledger.runtime.run``, as in its worker process."""
    network = Network(tmp_path)
    heap = Heap()
    monkeypatch.setattr(runtime, "_validator", network.validators[0])
    monkeypatch.setattr(runtime, "_heap", heap)
    first = network.validators[0]

    class ThroughRuntime:
        def deliver(self, message: dict[str, Any]) -> None:
            runtime.run("deliver", message)

        def tick(self, now_ms: int) -> None:
            runtime.run("tick", now_ms)

        def submit(self, data: dict[str, Any]) -> str | None:
            return runtime.run("submit", data)  # type: ignore[no-any-return]

    network.validators[0] = ThroughRuntime()  # type: ignore[call-overload]
    for nonce in range(3):
        assert network.submit(register(HOUSEHOLDS[nonce], nonce)) == [None] * 4
        network.run(until=lambda done=nonce: first.node.height > done)
    assert first.node.height >= 3
    assert heap.blocks == first.node.height
    assert not tracked(first.state)
