"""Projection of committed blocks into the site's read models (``ledger.models``).

Every validator tells the site about every block it commits (``ledger.tasks.block_committed``),
so the site hears of each block several times, in any order, possibly with gaps. The projection
trusts none of them: a block is projected only when it verifies against the block before it
(hash link, Merkle roots, proposer signature, a commit certificate of a quorum of the genesis
validators) and re-executes, on the site's own replica of the state (``StateEntry``), to exactly
the results and state root its header certifies. A block that fails is refused and logged;
nothing of it is written.

* A height already projected is ignored (idempotent); another block at that height is logged as
  an error (it would mean a fork signed by a quorum: more than f validators lying).
* A block for a later height than the next is kept in ``PendingBlock`` and projected when the
  gap before it fills (at most ``MAX_PENDING_AHEAD`` heights ahead).
* Block 0 is fully determined by the genesis document. When the real block 0 (with its
  certificate) is at hand (``ledger genesis``, a rebuild from a store), it is projected as is;
  when the first block the site hears of is a later one, block 0 is projected from the genesis
  document, without signatures, and gets them if the real one arrives later.

One block is projected in one database transaction that first locks the ``ProjectionCursor``
row, so two site workers never project at once. Lock order: the cursor, then ``LedgerAccount``
rows, then ``SubmittedTransaction`` rows (admission locks an account, then pending rows; never
the cursor), so the two cannot deadlock. Once committed, hints go to the live pages: one for the
block to the Channels group ``ledger``, one to the group of each account and slot it changed
(``ledger.live``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from importlib import import_module
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction

from gridplatform.accounts.models import Identity
from ledger import application, config, live, replica
from ledger.application import Registry
from ledger.blocks import (
    Block,
    BlockError,
    BlockHeader,
    block_from_json,
    block_to_json,
    verify_block,
)
from ledger.crypto import Transaction
from ledger.genesis import Genesis, GenesisError
from ledger.models import (
    BlockRecord,
    LedgerAccount,
    PendingBlock,
    ProjectionCursor,
    StateEntry,
    SubmittedTransaction,
    TransactionRecord,
)
from ledger.state import State

log = logging.getLogger(__name__)

MAX_PENDING_AHEAD = 1_000
_BATCH = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ProjectionRefused(Exception):
    """A block that does not verify or does not re-execute to what its header certifies."""


# --- helpers ---------------------------------------------------------------------------------


def datetime_of_ms(timestamp_ms: int) -> datetime:
    """A block's ``timestamp_ms`` as an aware UTC datetime (exact: no float on the way)."""
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


def ms_of_datetime(moment: datetime) -> int:
    """An aware datetime as ms since 1970-01-01T00:00Z, the ledger's time (exact; sub-ms cut)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def genesis_body(genesis: Genesis) -> dict[str, Any]:
    """Block 0 as the genesis document alone determines it: no signatures."""
    return {
        "header": genesis.block_header().to_json(),
        "transactions": [],
        "results": [],
        "events": [],
        "proposer_signature": None,
        "certificate": [],
    }


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _lock_cursor() -> ProjectionCursor:
    """Lock the projection's singleton row, making it first if it is missing."""
    cursor = ProjectionCursor.objects.select_for_update().filter(pk=1).first()
    if cursor is None:
        # Two workers may both find it missing: the second insert does nothing.
        ProjectionCursor.objects.bulk_create([ProjectionCursor(pk=1)], ignore_conflicts=True)
        cursor = ProjectionCursor.objects.select_for_update().get(pk=1)
    locked: ProjectionCursor = cursor
    return locked


# --- writes ----------------------------------------------------------------------------------


class ReadModel(Protocol):
    """An application's read models (a module named in ``settings.LEDGER_READ_MODELS``).

    ``project`` gets each block (its transactions and their results), the state after it and
    the keys it changed (``None``: deleted), in height order, inside the projection's
    transaction. A rebuild calls ``clear`` and then ``project`` for every block again, so the
    rows are a function of the chain and a rebuild gives exactly the rows the live projection
    gave.
    """

    def clear(self) -> None: ...

    def project(self, *, block: Block, state: State, changes: dict[str, Any]) -> None: ...


def read_models() -> list[ReadModel]:
    return [import_module(name) for name in settings.LEDGER_READ_MODELS]


def _write_block(block: Block, body: dict[str, Any]) -> None:
    header = block.header
    record = BlockRecord.objects.create(
        height=header.height,
        hash=block.hash,
        previous_hash=header.previous_hash,
        timestamp=datetime_of_ms(header.timestamp_ms),
        proposer=header.proposer,
        tx_count=len(block.transactions),
        state_root=header.state_root,
        tx_root=header.tx_root,
        body=body,
    )
    first: dict[str, tuple[int, Transaction, str]] = {}
    for position, (tx, result) in enumerate(zip(block.transactions, block.results, strict=True)):
        first.setdefault(tx.id, (position, tx, result))
    ids = list(first)
    seen: set[str] = set()
    for chunk in _chunks(ids):
        seen.update(
            TransactionRecord.objects.filter(tx_id__in=chunk).values_list("tx_id", flat=True)
        )
    TransactionRecord.objects.bulk_create(
        [
            TransactionRecord(
                tx_id=tx_id,
                block=record,
                position=position,
                type=tx.type,
                sender=tx.sender,
                nonce=tx.nonce,
                result=result,
                body=tx.to_json(),
            )
            for tx_id, (position, tx, result) in first.items()
            if tx_id not in seen
        ],
        batch_size=_BATCH,
    )


def _keys_rotated(block: Block) -> None:
    """An account that took over its own key (a committed ``key.rotate``): the site shows the
    new key and deletes the sealed copy of the old one, which can no longer sign for it."""
    for tx, result in zip(block.transactions, block.results, strict=True):
        if tx.type != "key.rotate" or result != "ok":
            continue
        public_key = tx.payload["public_key"]
        held = Identity.objects.filter(address=tx.sender)
        if Identity.objects.filter(public_key=public_key).exclude(address=tx.sender).exists():
            # Another site account has that key (the ledger does not forbid it): the sealed
            # copy still goes, the row keeps its old key and the log says why.
            log.warning("key.rotate %s: key of another site account; old key kept", tx.id)
            held.update(sealed_private_key=None)
            continue
        held.update(public_key=public_key, sealed_private_key=None)


def _project_read_models(block: Block, state: State, changes: dict[str, Any]) -> None:
    for read_model in read_models():
        read_model.project(block=block, state=state, changes=changes)


def _write_state(state: State, changes: dict[str, Any], committed_ids: Iterable[str]) -> None:
    """Write changed state keys, the accounts they touch, and drop what is no longer pending."""
    upserts = [
        StateEntry(key=key, value=value) for key, value in changes.items() if value is not None
    ]
    StateEntry.objects.bulk_create(
        upserts,
        update_conflicts=True,
        unique_fields=["key"],
        update_fields=["value"],
        batch_size=_BATCH,
    )
    deleted = [key for key, value in changes.items() if value is None]
    for chunk in _chunks(deleted):
        StateEntry.objects.filter(key__in=chunk).delete()

    addresses = sorted(
        {key.split("/", 1)[1] for key in changes if key.startswith(("acct/", "bal/"))}
    )
    accounts: list[LedgerAccount] = []
    gone: list[str] = []
    for address in addresses:
        acct = application.account(state, address)
        if acct is None:
            gone.append(address)
            continue
        accounts.append(
            LedgerAccount(
                address=address,
                public_key=acct["public_key"],
                role=acct["role"],
                nonce=acct["nonce"],
                balance=application.balance(state, address),
            )
        )
    LedgerAccount.objects.bulk_create(
        accounts,
        update_conflicts=True,
        unique_fields=["address"],
        update_fields=["public_key", "role", "nonce", "balance"],
        batch_size=_BATCH,
    )
    for chunk in _chunks(gone):
        LedgerAccount.objects.filter(address__in=chunk).delete()

    # Pending transactions now committed, or whose nonce a committed block used up (they can
    # never be committed any more).
    ids = list(committed_ids)
    for chunk in _chunks(ids):
        SubmittedTransaction.objects.filter(tx_id__in=chunk).delete()
    for account in accounts:
        SubmittedTransaction.objects.filter(
            sender=account.address, nonce__lt=account.nonce
        ).delete()


# --- projecting one block --------------------------------------------------------------------


def _project_genesis(genesis: Genesis, cursor: ProjectionCursor, block: Block | None) -> None:
    """Project block 0: ``block`` if given (verified against the document), else the document's."""
    if block is not None:
        try:
            genesis.verify_block(block)
        except (BlockError, GenesisError) as error:
            raise ProjectionRefused(f"block 0 is not this network's: {error}") from error
        body = block_to_json(block)
        parsed = block
    else:
        body = genesis_body(genesis)
        parsed = Block(
            header=genesis.block_header(),
            transactions=(),
            results=(),
            proposer_signature="0" * 128,  # not written: the body above has none
        )
    state = genesis.genesis_state()
    _write_block(parsed, body)
    _write_state(state, state.to_json(), ())
    _project_read_models(parsed, state, state.to_json())
    cursor.height = 0
    cursor.save(update_fields=["height"])


def _verify_and_execute(
    block: Block, *, genesis: Genesis, previous: BlockHeader, state: State, registry: Registry
) -> None:
    """Check ``block`` against its predecessor (links, roots, signatures, certificate), then
    execute it on ``state``; ProjectionRefused unless it gives its certified results and root."""
    try:
        verify_block(block, validators=list(genesis.validators), previous=previous)
    except BlockError as error:
        raise ProjectionRefused(f"block {block.height} does not verify: {error}") from error
    if not replica.reexecutes(block, state, genesis, registry):
        # A quorum certified it, so the site's replica or code is wrong: a bug, not an attack.
        raise ProjectionRefused(
            f"block {block.height} does not re-execute to its certified results and state root "
            "on the site's replica; run `manage.py rebuild_read_models` after fixing the cause"
        )


def _project_next(
    block: Block,
    genesis: Genesis,
    cursor: ProjectionCursor,
    state: State | None,
    topics: set[str],
) -> State:
    """Project ``block``, the block at cursor.height + 1; return the state after it, and add
    the live topics it touched to ``topics`` (``ledger.live``).

    ``state`` is the replica after the cursor's height if the caller has it (else it is read).
    Raises ProjectionRefused, having written nothing.
    """
    if block.height == 0:
        _project_genesis(genesis, cursor, block)
        return genesis.genesis_state()
    previous = BlockRecord.objects.get(height=block.height - 1)
    if state is None:
        state = replica.take(cursor.height)
    _verify_and_execute(
        block,
        genesis=genesis,
        previous=BlockHeader.from_json(previous.body["header"]),
        state=state,
        registry=config.registry(),
    )
    _write_block(block, block_to_json(block))
    changes = state.take_changes()
    _write_state(state, changes, (tx.id for tx in block.transactions))
    _keys_rotated(block)
    _project_read_models(block, state, changes)
    topics |= live.block_topics(block=block, state=state, changes=changes)
    cursor.height = block.height
    cursor.save(update_fields=["height"])
    return state


def _known(block: Block, genesis: Genesis) -> None:
    """A block at a height already projected: check it is the same one; give block 0 its
    signatures if it was projected from the genesis document."""
    record = BlockRecord.objects.filter(height=block.height).first()
    if record is None:
        return
    if record.hash != block.hash:
        log.error(
            "block %s %s differs from the projected %s: another network's, or a quorum signed "
            "two blocks at one height",
            block.height,
            block.hash,
            record.hash,
        )
        return
    if block.height == 0 and not record.body.get("certificate"):
        try:
            genesis.verify_block(block)
        except (BlockError, GenesisError):
            return
        record.body = block_to_json(block)
        record.save(update_fields=["body"])


def _drain_pending(
    genesis: Genesis, cursor: ProjectionCursor, state: State | None, topics: set[str]
) -> State | None:
    """Project the kept blocks that now follow the cursor, as far as they reach; return the
    state after the last (None if a refused execution may have changed it)."""
    while True:
        candidates = list(PendingBlock.objects.filter(height=cursor.height + 1))
        if not candidates:
            break
        projected = False
        for candidate in candidates:
            try:
                block = block_from_json(candidate.body)
                state = _project_next(block, genesis, cursor, state, topics)
            except (BlockError, ProjectionRefused) as error:
                log.warning("dropped a kept block: %s", error)
                state = None  # a refused execution may have changed it
                continue
            projected = True
            break
        PendingBlock.objects.filter(height__lte=cursor.height + (0 if projected else 1)).delete()
        if not projected:
            break
    return state


# --- the services ----------------------------------------------------------------------------


def block_project(*, block: dict[str, Any]) -> bool:
    """Project a committed block (its JSON, with its certificate) into the read models.

    Returns True if this block was projected now; False if it was already projected, kept for
    later (a gap before it), or refused (logged). Never raises for a bad block. Runs in its own
    durable transaction, under the projection lock.
    """
    try:
        parsed = block_from_json(block)
    except BlockError as error:
        log.warning("refused a malformed block notification: %s", error)
        return False
    genesis = config.load_genesis()
    if genesis is None:
        log.warning(
            "no genesis document at %s: block %s not projected",
            config.genesis_path(),
            parsed.height,
        )
        return False
    result = False
    topics: set[str] = set()
    with transaction.atomic(durable=True):
        cursor = _lock_cursor()
        start = cursor.height
        if parsed.height <= cursor.height:
            _known(parsed, genesis)
        else:
            if cursor.height == -1 and parsed.height > 0:
                _project_genesis(genesis, cursor, None)
            if parsed.height > cursor.height + 1:
                _keep(parsed, cursor)
            else:
                try:
                    state = _project_next(parsed, genesis, cursor, None, topics)
                except ProjectionRefused as error:
                    log.error("refused block %s: %s", parsed.height, error)
                else:
                    result = True
                    last = _drain_pending(genesis, cursor, state, topics)
                    if last is not None:  # this process keeps it once the projection commits
                        replica.give_back(cursor.height, last)
        if cursor.height > start:
            height = cursor.height
            transaction.on_commit(lambda: live.announce(height, topics))
    return result


def _keep(block: Block, cursor: ProjectionCursor) -> None:
    """Keep a block for a later height until the gap before it fills."""
    if block.height - cursor.height > MAX_PENDING_AHEAD:
        log.warning("block %s is too far ahead of %s; not kept", block.height, cursor.height)
        return
    PendingBlock.objects.bulk_create(
        [PendingBlock(height=block.height, hash=block.hash, body=block_to_json(block))],
        ignore_conflicts=True,
    )


def genesis_project() -> bool:
    """Project block 0 from the genesis document if nothing is projected yet; True if it did.

    Admission calls it, so that the site's replica holds the genesis accounts before the first
    block arrives.
    """
    if BlockRecord.objects.filter(height=0).exists():
        return False
    genesis = config.load_genesis()
    if genesis is None:
        return False
    with transaction.atomic(durable=True):
        cursor = _lock_cursor()
        if cursor.height >= 0:
            return False
        _project_genesis(genesis, cursor, None)
        transaction.on_commit(lambda: live.announce(0, set()))
    return True


def read_models_rebuild(*, blocks: Iterable[Block], genesis: Genesis) -> int:
    """Replace the read models by the projection of ``blocks`` (0, 1, 2... in order).

    Every block is verified and re-executed as in :func:`block_project`; the first that fails
    raises ProjectionRefused and, the whole rebuild being one transaction, nothing changes.
    Pending transactions that the blocks commit are dropped; the others stay pending. Returns
    the height of the last block.
    """
    registry = config.registry()
    with transaction.atomic(durable=True):
        cursor = _lock_cursor()
        PendingBlock.objects.all().delete()
        TransactionRecord.objects.all().delete()
        BlockRecord.objects.all().delete()
        LedgerAccount.objects.all().delete()
        StateEntry.objects.all().delete()
        for read_model in read_models():
            read_model.clear()
        cursor.height = -1
        state: State | None = None
        previous: BlockHeader | None = None
        for block in blocks:
            if block.height != cursor.height + 1:
                raise ProjectionRefused(f"expected block {cursor.height + 1}, got {block.height}")
            if block.height == 0:
                try:
                    genesis.verify_block(block)
                except (BlockError, GenesisError) as error:
                    raise ProjectionRefused(f"block 0 is not this network's: {error}") from error
                state = genesis.genesis_state()
                _project_read_models(block, state, state.take_changes())  # every genesis key
            else:
                assert state is not None
                assert previous is not None
                _verify_and_execute(
                    block, genesis=genesis, previous=previous, state=state, registry=registry
                )
                # The ledger's tables are written once, from the final state, below; the
                # applications' read models follow the chain block by block.
                _project_read_models(block, state, state.take_changes())
            _write_block(block, block_to_json(block))
            previous = block.header
            cursor.height = block.height
        replica.forget()
        if state is not None:
            _write_state(state, state.to_json(), ())
            replica.give_back(cursor.height, state)
        SubmittedTransaction.objects.filter(
            tx_id__in=TransactionRecord.objects.values("tx_id")
        ).delete()
        cursor.save(update_fields=["height"])
        height: int = cursor.height
        # Every row may have changed: the hint asks live pages to re-read everything.
        transaction.on_commit(lambda: live.announce(height, None))
    return height
