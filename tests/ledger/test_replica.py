"""The site's replica of the committed state (ledger.replica): read from the rows once per
process, then carried forward block by block; a stale one (another chain's, or one a rolled
back projection changed) is never used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from ledger import replica
from ledger.models import BlockRecord, StateEntry
from ledger.state import State
from tests.ledger.chains import Chain, build_chain
from tests.ledger.site import project, use_network

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chain(settings: Any, tmp_path: Path) -> Chain:
    chain = build_chain(6, 5)
    use_network(settings, tmp_path, chain)
    replica.forget()
    return chain


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The heights at which a process read the whole state from the rows."""
    seen: list[int] = []
    real = replica._load

    def counting() -> tuple[int, State]:
        height, state = real()
        seen.append(height)
        return height, state

    monkeypatch.setattr(replica, "_load", counting)
    return seen


def _rows() -> dict[str, Any]:
    return dict(StateEntry.objects.values_list("key", "value"))


def test_the_projection_reads_the_rows_once_then_carries_the_state_forward(
    chain: Chain, loads: list[int]
) -> None:
    for block in chain.blocks:
        project(block)
    assert loads == []  # from block 0 on, the state it projected is the one it keeps
    height, root, data = replica.read(lambda h, s: (h, s.root(), s.to_json()))
    assert (height, root) == (6, chain.blocks[6].header.state_root)
    assert data == _rows() == chain.states[6].to_json()


def test_a_reader_brings_its_replica_forward_by_executing_the_blocks_it_missed(
    chain: Chain, loads: list[int]
) -> None:
    for block in chain.blocks[:3]:
        project(block)
    assert replica.read(lambda h, s: h) == 2
    replica.forget()
    assert replica.read(lambda h, s: h) == 2
    assert loads == [2]  # nothing kept: read afresh
    assert replica._replica is not None
    height, state = replica._replica
    kept = (height, State(state.to_json()))  # a copy: the projection carries its own forward
    for block in chain.blocks[3:]:
        project(block)
    replica._replica = kept  # as a web process that did not project them
    assert replica.read(lambda h, s: (h, s.root())) == (6, chain.blocks[6].header.state_root)
    assert loads == [2]  # forward by execution, not from the rows


def test_a_replica_that_is_not_this_chains_is_read_afresh(chain: Chain, loads: list[int]) -> None:
    for block in chain.blocks[:4]:
        project(block)
    other = build_chain(6, 5, seed=99).states[3]  # another chain's state at height 3
    replica._replica = (3, State(other.to_json()))
    assert replica.read(lambda h, s: s.root()) == chain.blocks[3].header.state_root
    assert loads == [3]


def test_a_projection_that_rolls_back_leaves_no_replica_behind(
    chain: Chain, loads: list[int]
) -> None:
    for block in chain.blocks[:3]:
        project(block)

    class Abort(Exception):
        pass

    def failed_projection() -> None:
        with transaction.atomic():
            state = replica.take(2)
            state.set("bal/forged", 1_000_000)  # what a failed projection may leave in it
            replica.give_back(2, state)
            raise Abort

    with pytest.raises(Abort):
        failed_projection()
    assert replica.read(lambda h, s: s.get("bal/forged")) is None
    assert loads == [2]
    assert BlockRecord.objects.count() == 3
