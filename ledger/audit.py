"""Auditing a validator's store end to end, and repairing it from its peers.

No Django import. :func:`verify_store` re-checks everything a store holds against the genesis
document, trusting nothing the store says about itself:

1. the genesis document recorded in the store's metadata, if any, is the one given;
2. every height from 0 to the tip has a block whose body parses, is canonical JSON, and passes
   ``ledger.blocks.verify_block`` against the block before it (hash link, timestamp, Merkle
   ``tx_root``, ``results_root``, ``signatures_root``, proposer signature, a certificate of a
   quorum of the genesis validators); block 0 is the genesis document's block; the hash column
   is the block's hash;
3. the transaction index holds exactly the first inclusion of every transaction id;
4. replaying every block with ``application.execute`` from the genesis state gives each block's
   recorded results and state root;
5. the persisted state table equals the replayed state after the tip.

It stops at the first problem and returns a :class:`VerifyReport` naming the height and a
reason code (:data:`REASONS`). A damaged state table is reported at the tip height with the
location ``"state table"``.

:func:`repair_store` is an **operator tool, run while the validator is stopped**: it truncates
the store at the first bad height, rebuilds the state by replaying the good prefix, and then
copies blocks from peer stores, one height at a time, taking a block only when at least f + 1
distinct peers hold it (so at least one honest validator vouches for it), it verifies against
the repaired chain and it re-executes to its recorded results and state root. When every block
verifies and only the state table is wrong, nothing is truncated: the state is rebuilt from the
store's own blocks. Blocks beyond the store's tip are copied the same way. Peers are only
read. A running validator that fell behind does not use this: it catches up through the
consensus protocol, which fetches blocks from peers and checks their certificates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ledger import application
from ledger.application import Event, Registry
from ledger.blocks import (
    BadCertificate,
    BadEventsRoot,
    BadHeight,
    BadProposerSignature,
    BadResultsRoot,
    BadSignaturesRoot,
    BadTimestamp,
    BadTxRoot,
    Block,
    BlockHeader,
    BrokenLink,
    ForeignTransaction,
    InvalidBlock,
    MisplacedEvent,
    ResultsCountMismatch,
    UnknownProposer,
    WrongChain,
    block_from_json,
    block_to_json,
    verify_block,
)
from ledger.crypto import LedgerCryptoError, canonical, loads
from ledger.genesis import GENESIS_META_KEY, Genesis, GenesisError
from ledger.state import State
from ledger.store import BlockRow, Store

BATCH = 256

# Location of a problem.
BLOCK = "block"
TX_INDEX = "tx_index"
STATE_TABLE = "state table"
META = "meta"

REASONS = {
    "genesis_mismatch": "the store was installed with another genesis document",
    "missing_block": "no block is stored at this height",
    "unparseable": "the stored body is not a canonical, well-formed block",
    "bad_genesis": "block 0 is not the genesis document's block",
    "wrong_chain": "the block belongs to another chain",
    "bad_height": "the block's height is not its row's height",
    "bad_hash_link": "previous_hash is not the hash of the block before",
    "bad_timestamp": "the timestamp is not later than the block before's",
    "foreign_transaction": "a transaction was signed for another chain",
    "bad_tx_root": "tx_root is not the Merkle root of the transaction ids",
    "bad_results_root": "results_root does not match the results",
    "bad_results_count": "there is not one result per transaction",
    "bad_events_root": "events_root does not match the events",
    "misplaced_event": "an event names no successful transaction of the block, or is out of order",
    "bad_signatures_root": "signatures_root does not match the transactions' signatures",
    "unknown_proposer": "the proposer is not a genesis validator",
    "bad_proposer_signature": "the proposer signature does not verify",
    "bad_certificate": "the certificate is not a quorum of valid, distinct validator votes",
    "invalid_block": "the block fails verification",
    "hash_column_mismatch": "the row's hash column is not the block's hash",
    "tx_index_mismatch": "the transaction index does not match the blocks",
    "bad_results": "re-executing the block gives other results than recorded",
    "bad_events": "re-executing the block gives other events than recorded",
    "bad_state_root": "re-executing the block gives another state root than recorded",
    "state_table_mismatch": "the persisted state is not the replayed state after the tip",
}

_INVALID_BLOCK_REASONS: tuple[tuple[type[InvalidBlock], str], ...] = (
    (WrongChain, "wrong_chain"),
    (BadHeight, "bad_height"),
    (BrokenLink, "bad_hash_link"),
    (BadTimestamp, "bad_timestamp"),
    (ForeignTransaction, "foreign_transaction"),
    (BadTxRoot, "bad_tx_root"),
    (BadResultsRoot, "bad_results_root"),
    (ResultsCountMismatch, "bad_results_count"),
    (BadEventsRoot, "bad_events_root"),
    (MisplacedEvent, "misplaced_event"),
    (BadSignaturesRoot, "bad_signatures_root"),
    (UnknownProposer, "unknown_proposer"),
    (BadProposerSignature, "bad_proposer_signature"),
    (BadCertificate, "bad_certificate"),
)


class AuditError(Exception):
    """Base of the errors this module raises."""


class StoreDamaged(AuditError):
    """Raised by :meth:`VerifyReport.raise_if_bad`; ``report`` says where and why."""

    def __init__(self, report: VerifyReport) -> None:
        super().__init__(report.describe())
        self.report = report


class RepairFailed(AuditError):
    """The store could not be repaired; the message says why. The store may be shorter."""


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_store`.

    ``tip`` is the store's height (-1 when empty). When a problem was found, ``bad_height`` is
    the first bad height, ``reason`` one of :data:`REASONS`, ``location`` one of ``"block"``,
    ``"tx_index"``, ``"state table"``, ``"meta"``. ``state_root`` is the replayed state root at
    the tip when every block passed.
    """

    tip: int
    bad_height: int | None = None
    reason: str | None = None
    location: str | None = None
    detail: str = ""
    state_root: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        if self.ok:
            return f"store verified: heights 0..{self.tip}, state root {self.state_root}"
        where = f"height {self.bad_height}" + (
            f" ({self.location})" if self.location != BLOCK else ""
        )
        return f"{where}: {self.reason}: {self.detail or REASONS.get(self.reason or '', '')}"

    def raise_if_bad(self) -> None:
        if not self.ok:
            raise StoreDamaged(self)


@dataclass(frozen=True)
class RepairReport:
    """The outcome of :func:`repair_store`.

    ``before`` is what verification found; ``truncated_from`` the first height deleted (None if
    no block was); ``copied`` how many blocks were taken from peers; ``stopped`` why copying
    stopped at height ``after.tip + 1`` (``"no_agreed_block"``: no block there that f + 1
    peers hold and that verifies, or ``"bad_execution"``: the agreed block does not re-execute
    to its results and state root); ``after`` the verification of the repaired store.
    """

    before: VerifyReport
    truncated_from: int | None
    copied: int
    stopped: str
    after: VerifyReport


# --- verification ----------------------------------------------------------------------------


def _block_problem(
    block: Block, row: BlockRow, genesis: Genesis, previous: BlockHeader | None
) -> tuple[str, str] | None:
    """The first reason ``block`` (parsed from ``row``) is bad, with a detail, or None."""
    try:
        verify_block(block, validators=list(genesis.validators), previous=previous)
    except InvalidBlock as error:
        for kind, reason in _INVALID_BLOCK_REASONS:
            if isinstance(error, kind):
                return reason, str(error)
        return "invalid_block", str(error)
    if block.header.height != row.height:
        return "bad_height", f"the block says height {block.header.height}"
    if row.height == 0 and block.hash != genesis.block_hash:
        return "bad_genesis", REASONS["bad_genesis"]
    if row.hash != block.hash:
        return "hash_column_mismatch", f"column {row.hash}, block {block.hash}"
    return None


def _parse(row: BlockRow) -> tuple[Block | None, str]:
    try:
        block = block_from_json(loads(row.body))
    except (LedgerCryptoError, TypeError, ValueError) as error:
        return None, str(error)
    if canonical(block_to_json(block)).decode("utf-8") != row.body:
        return None, "the body is not in canonical form"
    return block, ""


def _run(
    state: State, registry: Registry, block: Block, genesis: Genesis
) -> tuple[State, list[str], list[Event]]:
    """Execute ``block`` on ``state`` (in place); the state after it, the results and events.

    Block 0 has no transactions: the state after it is the genesis state.
    """
    if block.header.height == 0:
        return genesis.genesis_state(), [], []
    events: list[Event] = []
    results = application.execute(
        state,
        registry,
        block.transactions,
        chain=block.header.chain,
        height=block.header.height,
        timestamp_ms=block.header.timestamp_ms,
        events=events,
    )
    return state, results, events


def _execution_problem(
    state: State, registry: Registry, block: Block, genesis: Genesis
) -> tuple[State, tuple[str, str] | None]:
    """Execute ``block`` on ``state``; the state after it and why it is not the recorded one."""
    state, results, events = _run(state, registry, block, genesis)
    if tuple(results) != block.results:
        first = next(
            (i for i, (a, b) in enumerate(zip(results, block.results, strict=False)) if a != b),
            min(len(results), len(block.results)),
        )
        recorded, executed = block.results[first : first + 1], results[first : first + 1]
        return state, (
            "bad_results",
            f"transaction {first}: {recorded} recorded, {executed} executed",
        )
    if events != list(block.events):
        return state, ("bad_events", "re-executing the block gives other events than recorded")
    if state.root() != block.header.state_root:
        return state, ("bad_state_root", f"executed to {state.root()}")
    return state, None


def _heights(first: int, last: int) -> Iterator[tuple[int, int]]:
    for start in range(first, last + 1, BATCH):
        yield start, min(last, start + BATCH - 1)


def verify_store(store: Store, genesis: Genesis, registry: Registry) -> VerifyReport:
    """Re-check ``store`` end to end (module docstring); report the first problem, if any.

    ``registry`` must hold the transaction types the validators execute (the same software).
    The store is only read.
    """
    tip = store.height()

    def bad(height: int, reason: str, detail: str = "", location: str = BLOCK) -> VerifyReport:
        return VerifyReport(
            tip=tip,
            bad_height=height,
            reason=reason,
            location=location,
            detail=detail or REASONS[reason],
        )

    recorded = store.get_meta(GENESIS_META_KEY)
    if recorded is not None:
        try:
            same = Genesis.loads(recorded) == genesis
        except GenesisError:
            same = False
        if not same:
            return bad(0, "genesis_mismatch", location=META)
    if tip < 0:
        return bad(0, "missing_block", "the store holds no blocks")

    state = State()
    previous: BlockHeader | None = None
    seen: set[str] = set()
    for start, end in _heights(0, tip):
        rows = {row.height: row for row in store.block_rows(start, end)}
        indexed: dict[int, list[tuple[str, int]]] = {}
        for entry in store.tx_index_rows(start, end):
            indexed.setdefault(entry.height, []).append((entry.tx_id, entry.position))
        for height in range(start, end + 1):
            row = rows.get(height)
            if row is None:
                return bad(height, "missing_block")
            block, why = _parse(row)
            if block is None:
                return bad(height, "unparseable", why)
            problem = _block_problem(block, row, genesis, previous)
            if problem is not None:
                return bad(height, *problem)
            expected = []
            for position, tx in enumerate(block.transactions):
                if tx.id not in seen:
                    seen.add(tx.id)
                    expected.append((tx.id, position))
            if sorted(expected) != sorted(indexed.get(height, [])):
                return bad(height, "tx_index_mismatch", location=TX_INDEX)
            state, problem = _execution_problem(state, registry, block, genesis)
            if problem is not None:
                return bad(height, *problem)
            previous = block.header

    stray = store.tx_index_rows(tip + 1)
    if stray:
        return bad(stray[0].height, "tx_index_mismatch", "index rows above the tip", TX_INDEX)
    if store.tx_index_rows(to_height=-1):
        # Reported above the tip, where truncation removes them without losing a block.
        return bad(tip + 1, "tx_index_mismatch", "index rows below height 0", TX_INDEX)

    expected_rows = {key: canonical(v).decode("utf-8") for key, v in state.to_json().items()}
    stored_rows = store.state_rows()
    if stored_rows != expected_rows:
        differing = sorted(
            key
            for key in expected_rows.keys() | stored_rows.keys()
            if expected_rows.get(key) != stored_rows.get(key)
        )
        return bad(
            tip, "state_table_mismatch", f"first differing key {differing[0]!r}", STATE_TABLE
        )
    return VerifyReport(tip=tip, state_root=state.root())


# --- repair ----------------------------------------------------------------------------------


def _replay(
    store: Store, genesis: Genesis, registry: Registry, last: int
) -> tuple[State, Block | None]:
    """The state after height ``last`` (an empty State for -1) and the block at ``last``,
    replaying the store's blocks 0..last, which verification has just passed."""
    state = State()
    block: Block | None = None
    for start, end in _heights(0, last):
        for block in store.blocks(start, end):
            state, _, _ = _run(state, registry, block, genesis)
    state.take_changes()
    return state, block


def _distinct(peers: Sequence[Store], store: Store) -> list[Store]:
    """Each peer database once, and never the store itself: a peer named twice is one vote."""
    result: list[Store] = []
    urls = {store.url}
    for peer in peers:
        if peer.url not in urls:
            urls.add(peer.url)
            result.append(peer)
    return result


def _agreed_block(
    height: int,
    peer_rows: list[dict[int, BlockRow]],
    genesis: Genesis,
    previous: BlockHeader | None,
) -> Block | None:
    """The block at ``height`` that at least f + 1 peers hold and that verifies, or None."""
    holders: dict[str, list[Block]] = {}
    for rows in peer_rows:
        row = rows.get(height)
        if row is None:
            continue
        block, _ = _parse(row)
        if block is None or block.header.height != height:
            continue
        holders.setdefault(block.hash, []).append(block)
    # Most held first. Two different blocks certified at one height would take more than f
    # faulty validators; if it happens, the first one that verifies is taken, deterministically.
    for block_hash, blocks in sorted(holders.items(), key=lambda item: (-len(item[1]), item[0])):
        if len(blocks) < genesis.f + 1:
            continue
        for block in blocks:
            try:
                verify_block(block, validators=list(genesis.validators), previous=previous)
            except InvalidBlock:
                continue
            if height == 0 and block_hash != genesis.block_hash:
                continue
            return block
    return None


def repair_store(
    store: Store, genesis: Genesis, registry: Registry, peers: Sequence[Store]
) -> RepairReport:
    """Repair ``store`` from ``peers`` (module docstring); raise RepairFailed if it cannot.

    Run it while the validator is stopped. ``peers`` are other validators' stores, opened
    read-only by the operator; they are only read. Blocks the store lacks beyond its tip are
    copied too, so a healthy store that fell behind is brought up to what f + 1 peers agree on.
    """
    store.init_schema()
    before = verify_store(store, genesis, registry)
    if before.reason == "genesis_mismatch":
        raise RepairFailed(
            "the store was installed with another genesis document; check which one is right"
        )
    truncated_from: int | None = None
    if before.ok:
        start = before.tip + 1
    elif before.reason == "state_table_mismatch":
        # Every block verified: the state is derived data, rebuilt below from the blocks.
        start = before.tip + 1
    else:
        assert before.bad_height is not None
        start = before.bad_height
        if start <= before.tip or before.location == TX_INDEX:
            store.truncate_from(start)
            truncated_from = start

    state, last = _replay(store, genesis, registry, start - 1)
    store.replace_state(state)
    previous = None if last is None else last.header

    sources = _distinct(peers, store)
    copied = 0
    height = start
    stopped = "no_agreed_block"
    peer_rows: list[dict[int, BlockRow]] = []
    batch_end = height - 1
    while True:
        if height > batch_end:
            batch_end = height + BATCH - 1
            peer_rows = [
                {row.height: row for row in peer.block_rows(height, batch_end)} for peer in sources
            ]
        block = _agreed_block(height, peer_rows, genesis, previous)
        if block is None:
            break
        state, problem = _execution_problem(state, registry, block, genesis)
        if problem is not None:
            # f + 1 peers hold a certified block that does not re-execute: another software
            # version, or more than f faulty validators. Stop; the store stays consistent.
            stopped = "bad_execution"
            break
        changes = state.to_json() if height == 0 else state.take_changes()
        store.append(block, changes)
        state.take_changes()
        previous = block.header
        copied += 1
        height += 1

    after = verify_store(store, genesis, registry)
    if not after.ok:
        raise RepairFailed(f"the repaired store does not verify: {after.describe()}")
    return RepairReport(
        before=before, truncated_from=truncated_from, copied=copied, stopped=stopped, after=after
    )
