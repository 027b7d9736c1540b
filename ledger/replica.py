"""The site's replica of the committed ledger state, kept in each process with its trie.

The projection writes the state after every block it projects into ``StateEntry`` rows. Reading
all of them and building the state trie costs O(state): fine once per process, not once per
block or per proof. So each process keeps one ``State`` (with its trie) and the height it is at,
and brings it forward by executing the committed blocks it has not seen (``BlockRecord``; the
projection verified each one, and the replica checks each block's certified state root again).

* The projection (site worker) takes the replica, executes the next block on it, and gives it
  back when its database transaction commits (:func:`take`, :func:`give_back`); a transaction
  that rolls back leaves the process without a replica, and the next use reads it afresh.
* The API's proofs (web processes) read it under a lock (:func:`read`): a key's value and proof
  against the state root of the block at the height returned.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction

from gridplatform.errors import DomainError
from ledger import application, config
from ledger.application import Registry
from ledger.blocks import Block, block_from_json
from ledger.genesis import Genesis
from ledger.models import BlockRecord, ProjectionCursor, StateEntry
from ledger.state import State

log = logging.getLogger(__name__)
T = TypeVar("T")

_lock = threading.Lock()
_replica: tuple[int, State] | None = None
# How many blocks a replica may trail the projection and still be brought forward block by
# block; further behind, reading the rows afresh is cheaper.
MAX_CATCH_UP = 500


class ReplicaDamaged(DomainError):
    """The rows do not give the state root the block at their height certifies: someone or
    something changed them. Nothing is served from them until the read models are rebuilt."""

    code = "replica_damaged"
    status_code = 503


class ReplicaUnavailable(DomainError):
    """Nothing is projected yet: there is no committed state to read (a 503 from the API)."""

    code = "ledger_unavailable"
    status_code = 503


def _load() -> tuple[int, State]:
    """The committed state from the rows, at the projection's height (read consistently: the
    projection's cursor stays locked while the rows are read)."""
    with transaction.atomic():
        cursor = ProjectionCursor.objects.select_for_update().filter(pk=1).first()
        if cursor is None or cursor.height < 0:
            raise ReplicaUnavailable("No block is projected yet: try again in a moment.")
        rows = StateEntry.objects.values_list("key", "value")
        state = State(dict(rows.iterator(chunk_size=10_000)))
        certified = (
            BlockRecord.objects.filter(height=cursor.height)
            .values_list("state_root", flat=True)
            .first()
        )
        if state.root() != certified:
            log.error("the state rows at height %s do not give its state root", cursor.height)
            raise ReplicaDamaged(
                "The site's copy of the ledger state does not match what the validators "
                "signed; the grid operator must rebuild it (manage.py rebuild_read_models)."
            )
        # Long-lived and acyclic: out of the cyclic collector's way (as in ledger.runtime).
        gc.freeze()
        return cursor.height, state


def _forward(height: int, state: State, target: int) -> tuple[int, State]:
    """``state`` (at ``height``) brought to ``target`` by executing the blocks between."""
    if target - height > MAX_CATCH_UP:
        return _load()
    genesis = config.load_genesis()
    if genesis is None:
        raise ReplicaUnavailable("This site has no ledger network yet.")
    registry = config.registry()
    for record in BlockRecord.objects.filter(height__gt=height, height__lte=target).order_by(
        "height"
    ):
        block = block_from_json(record.body)
        if block.height != height + 1 or not reexecutes(block, state, genesis, registry):
            log.warning("replica at %s could not follow block %s: reading it afresh", height, block)
            return _load()
        state.take_changes()  # the rows hold these already
        height = block.height
    return height, state


def reexecutes(block: Block, state: State, genesis: Genesis, registry: Registry) -> bool:
    """Execute ``block`` on ``state``; whether it gave the results, events and state root its
    header certifies (the projection and the replica both hold the site's state to that)."""
    return application.execute_certified(
        state,
        registry,
        block.transactions,
        chain=genesis.chain,
        height=block.height,
        timestamp_ms=block.timestamp_ms,
        results=block.results,
        events=block.events,
        state_root=block.header.state_root,
    )


def _current(target: int | None = None) -> tuple[int, State]:
    global _replica
    if target is None:
        found = ProjectionCursor.objects.filter(pk=1).values_list("height", flat=True).first()
        if found is None or found < 0:
            raise ReplicaUnavailable("No block is projected yet: try again in a moment.")
        target = found
    replica, _replica = _replica, None
    if replica is not None and (
        replica[0] > target
        # Still this chain's state at that height (a rebuild, or another test's database,
        # may have put another there): its root is the one the block there certifies.
        or not BlockRecord.objects.filter(height=replica[0], state_root=replica[1].root()).exists()
    ):
        replica = None
    if replica is None:
        replica = _load()
    if replica[0] < target:
        replica = _forward(*replica, target)
    return replica


def read(use: Callable[[int, State], T]) -> T:
    """``use(height, state)`` on the replica at the projection's height; treat it as read-only."""
    global _replica
    with _lock:
        height, state = _current()
        try:
            return use(height, state)
        finally:
            _replica = (height, state)


def take(height: int) -> State:
    """The replica at ``height`` for the projection to execute the next block on; the caller
    owns it until :func:`give_back`. Call inside the projection's transaction, with the cursor
    locked at ``height``."""
    with _lock:
        at, state = _current(height)
        if at != height:  # the rows are behind the cursor: cannot happen under its lock
            raise ReplicaUnavailable(f"replica at {at}, projection at {height}")
        return state


def give_back(height: int, state: State) -> None:
    """Keep ``state`` (at ``height``) once the transaction that projected it commits."""

    def keep() -> None:
        global _replica
        with _lock:
            _replica = (height, state)

    transaction.on_commit(keep)


def forget() -> None:
    """Drop this process's replica (tests, and after a rebuild of the read models)."""
    global _replica
    with _lock:
        _replica = None
