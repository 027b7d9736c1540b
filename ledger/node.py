"""One validator: consensus, transaction pool, execution and its own store, without transport.

No Django and no Celery: ``ledger/tasks.py`` drives a :class:`Validator` from Celery messages and
a clock thread; the tests drive several of them in one process. The validator is the consensus
module's :class:`~ledger.consensus.Application` (it proposes and checks blocks by executing them)
and carries out the consensus effects in order, as the persistence contract asks:

* ``Persist``: the consensus state is written to the store's ``meta`` table (durable on return)
  before any later effect, so a vote is on disk before it is sent;
* ``Send``: handed to the transport;
* ``Commit``: the block is executed on the state, checked against its recorded results and state
  root, and appended with its certificate and the changed state keys in one store transaction;
  then the site is told. A block whose execution disagrees with what a quorum certified means
  this validator's code or state is wrong: it stops (``Diverged``) rather than store it.

Admission into the pool (each failure its own code, before anything reaches a block):
``malformed``, ``pool_full``, then the execution checks of ``ledger.application.check`` against
the committed state with the sender's pending transactions counted: ``unknown_sender``,
``wrong_chain``, ``bad_signature``, ``nonce_pending`` (that nonce is already waiting),
``bad_nonce`` (not the next one), ``unknown_type``, ``not_allowed``. A transaction already in the
pool or already committed is ``duplicate`` (the store's transaction index is asked only about
transactions whose nonce the sender has used: no other can be committed with its effect).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Protocol

from ledger import application
from ledger.application import Event, Registry
from ledger.blocks import (
    Block,
    BlockError,
    CommitSignature,
    block_from_json,
    block_to_json,
    events_root_of,
    proposal_bytes,
    propose_block,
    results_root_of,
    signatures_root_of,
    tx_root_of,
)
from ledger.consensus import (
    RECENT_BLOCKS,
    Certificate,
    Commit,
    Config,
    Effect,
    Envelope,
    Fault,
    MalformedMessage,
    Node,
    Persist,
    PersistedState,
    Send,
)
from ledger.crypto import LedgerCryptoError, Transaction, encode_checked
from ledger.genesis import Genesis
from ledger.identity import IdentityError, KeyPair, verify
from ledger.store import Store

CONSENSUS_META_KEY = "consensus"
# A proposal dated further than this past a validator's clock is not voted for (it would make
# every later block wait for it); block time still comes only from the block itself.
MAX_CLOCK_SKEW_MS = 30_000


class StateMismatch(Exception):
    """A store whose state is not the state its tip block certifies."""


class Transport(Protocol):
    def send(self, to: int | None, message: dict[str, Any]) -> None:
        """Deliver a consensus message to validator ``to`` (every other one when None)."""

    def committed(self, block: Block) -> None:
        """Tell the site that ``block`` is final (with its certificate)."""


class Diverged(Exception):
    """A certified block does not execute to its recorded results and state root here."""


def config_of(genesis: Genesis, **timing: int) -> Config:
    return Config(
        chain_id=genesis.chain,
        validators=tuple(genesis.validators),
        genesis_hash=genesis.block_hash,
        genesis_timestamp_ms=genesis.timestamp_ms,
        **timing,
    )


def certificate_of(block: Block) -> Certificate:
    return Certificate(
        block.height,
        block.hash,
        tuple((vote.validator, vote.signature) for vote in block.certificate),
    )


class Validator:
    """Validator ``index``: its consensus node, pool, state and store. Not thread-safe."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        index: int,
        keys: KeyPair,
        store: Store,
        registry: Registry,
        transport: Transport,
        now_ms: int,
        fault: Fault = Fault.NONE,
        pool_limit: int = 20_000,
        max_block_transactions: int = 2_000,
        timing: dict[str, int] | None = None,
    ) -> None:
        self.genesis = genesis
        self.index = index
        self.store = store
        self.registry = registry
        self.transport = transport
        self.pool_limit = pool_limit
        self.max_block_transactions = max_block_transactions
        store.check_protocol()
        self.state = store.load_state()
        # Build the state trie now, not at the first block, and check the stored state against
        # the root its tip certifies: a validator never runs on a state it cannot stand behind.
        tip = store.tip()
        if tip is not None and self.state.root() != tip.header.state_root:
            raise StateMismatch(
                f"validator {index}'s stored state does not give block {tip.height}'s state "
                f"root; run `manage.py ledger repair --node {index}` with the validator stopped"
            )
        self.pool: dict[str, Transaction] = {}  # by id, in arrival order
        self._pending_nonces: dict[str, set[int]] = {}
        # Transactions parsed lately, by signature (oldest first), reused when a block brings
        # them; and the outcome of the last block executed tentatively, reused at its commit.
        self._recent: dict[str, Transaction] = {}
        self._recent_limit = 2 * pool_limit
        self._tentative: _Tentative | None = None
        self._proposal_text = ("", "")  # (block hash, its proposal's JSON text)
        self._keys = keys
        self._now_ms = now_ms
        # The consensus keeps only its last RECENT_BLOCKS blocks in memory and reads older ones
        # from the store when a lagging peer asks for them.
        tip_height = store.height()
        committed = self._stored_blocks(max(1, tip_height - RECENT_BLOCKS + 1), tip_height)
        raw = store.get_meta(CONSENSUS_META_KEY)
        persisted = PersistedState.from_json(json.loads(raw)) if raw else None
        self.node: Node[Block] = Node(
            config_of(genesis, **(timing or {})),
            index,
            keys,
            self,
            committed=committed,
            persisted=persisted,
            fault=fault,
            now_ms=now_ms,
            window=RECENT_BLOCKS,
            history=self._stored_blocks,
        )

    def _stored_blocks(self, first: int, last: int) -> list[tuple[Block, Certificate]]:
        """Stored blocks ``first..last`` with their certificates, as the consensus takes them."""
        return [(block, certificate_of(block)) for block in self.store.blocks(first, last)]

    # -- inputs --------------------------------------------------------------------------------

    def submit(self, data: Any) -> str | None:
        """Admit a transaction (its JSON object) into the pool; the refusal code, or None."""
        return self.submit_many([data])[0]

    def submit_many(self, items: Sequence[Any]) -> list[str | None]:
        """Admit transactions in order, each as :meth:`submit` would; their codes (None: in).

        The consensus hears once that transactions are waiting, however many came in, and the
        store is asked once which of them are committed already."""
        parsed = [self._parse(data) for data in items]
        # Only a transaction whose nonce its sender has used can be in a stored block (a block
        # consumes the nonce of every transaction it executes, failed or not): the store is
        # asked about those alone, so fresh transactions cost no lookup in an index that grows
        # with the chain. (A transaction a block refused without consuming its nonce, an
        # out-of-order one, had no effect and may come again.)
        replayed = [
            tx.id
            for tx in parsed
            if tx is not None and tx.id not in self.pool and tx.nonce < self._nonce_of(tx.sender)
        ]
        committed = self.store.committed_ids(replayed) if replayed else set()
        codes = [self._admit(tx, committed) for tx in parsed]
        if any(code is None for code in codes):
            self._run(self.node.on_transactions_available())
        return codes

    def _nonce_of(self, address: str) -> int:
        """The sender's next nonce in the committed state (0 for an unknown sender)."""
        account = application.account(self.state, address)
        return int(account["nonce"]) if account else 0

    @staticmethod
    def _parse(data: Any) -> Transaction | None:
        try:
            return Transaction.from_json(data)
        except (LedgerCryptoError, IdentityError, TypeError, ValueError):
            return None

    def _admit(self, tx: Transaction | None, committed: set[str]) -> str | None:
        """``tx``'s admission code (None: into the pool); ``committed``: the ids of its batch
        that stored blocks include."""
        if tx is None:
            return "malformed"
        if tx.id in self.pool or tx.id in committed:
            return "duplicate"
        if len(self.pool) >= self.pool_limit:
            return "pool_full"
        pending = self._pending_nonces.get(tx.sender, set())
        if tx.nonce in pending:
            return "nonce_pending"
        account = application.account(self.state, tx.sender)
        next_nonce = (account["nonce"] if account else 0) + len(pending)
        refused = application.check(
            self.state, self.registry, tx, chain=self.genesis.chain, expected_nonce=next_nonce
        )
        if refused is not None:
            return refused
        self.pool[tx.id] = tx
        self._remember(tx)
        pending.add(tx.nonce)
        self._pending_nonces[tx.sender] = pending
        return None

    def _remember(self, tx: Transaction) -> None:
        """Keep a parsed transaction, so that the block bringing it back is not parsed anew."""
        self._recent[tx.signature] = tx
        while len(self._recent) > self._recent_limit:
            del self._recent[next(iter(self._recent))]

    def deliver(self, data: Any) -> None:
        """A consensus message from a peer; garbage is dropped."""
        try:
            envelope = Envelope.from_json(data)
        except (MalformedMessage, KeyError, TypeError, ValueError):
            return
        self._run(self.node.on_message(envelope))

    def resend(self, from_height: int, limit: int = 64) -> int:
        """Tell the site again of committed blocks ``from_height`` on (at most ``limit``), for a
        site whose projection missed every notification of a height; how many were sent."""
        if not isinstance(from_height, int) or isinstance(from_height, bool) or from_height < 1:
            return 0
        last = min(self.store.height(), from_height + max(0, limit) - 1)
        blocks = self.store.blocks(from_height, last) if last >= from_height else []
        for block in blocks:
            self.transport.committed(block)
        return len(blocks)

    def tick(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)
        self._run(self.node.on_tick(now_ms))

    # -- consensus.Application ---------------------------------------------------------------

    def has_pending(self) -> bool:
        return bool(self.pool)

    def propose(self, height: int, previous_hash: str, timestamp_ms: int) -> Block | None:
        transactions = list(self.pool.values())[: self.max_block_transactions]
        if not transactions:
            return None
        results, events, state_root = self._execute_tentatively(transactions, height, timestamp_ms)
        return propose_block(
            keypair=self._keys,
            chain=self.genesis.chain,
            height=height,
            previous_hash=previous_hash,
            timestamp_ms=timestamp_ms,
            proposer=self.index,
            transactions=transactions,
            results=results,
            events=events,
            state_root=state_root,
        )

    def check(self, proposal: Block) -> bool:
        header = proposal.header
        if (
            header.chain != self.genesis.chain
            or not 0 <= header.proposer < len(self.genesis.validators)
            or header.timestamp_ms > self._now_ms + MAX_CLOCK_SKEW_MS
            or proposal.certificate
            or header.tx_root != tx_root_of(proposal.transactions)
            or header.results_root != results_root_of(proposal.results)
            or header.events_root != events_root_of(proposal.events)
            or header.signatures_root != signatures_root_of(proposal.transactions)
            or len(proposal.results) != len(proposal.transactions)
        ):
            return False
        try:
            verify(
                self.genesis.validators[header.proposer],
                proposal_bytes(header.chain, header.height, proposal.hash),
                proposal.proposer_signature,
            )
        except IdentityError:
            return False
        results, events, state_root = self._execute_tentatively(
            proposal.transactions, header.height, header.timestamp_ms
        )
        return (
            results == list(proposal.results)
            and events == list(proposal.events)
            and state_root == header.state_root
        )

    def encode(self, proposal: Block) -> dict[str, Any]:
        return block_to_json(proposal)

    def decode(self, data: Any) -> Block:
        try:
            return block_from_json(data, known=self._recent)
        except BlockError as error:
            raise ValueError(str(error)) from error

    # -- effects -------------------------------------------------------------------------------

    def _run(self, effects: Sequence[Effect[Block]]) -> None:
        for effect in effects:
            if isinstance(effect, Persist):
                self.store.put_meta(CONSENSUS_META_KEY, self._persisted_text(effect.state))
            elif isinstance(effect, Send):
                self.transport.send(effect.to, effect.message.to_json())
            elif isinstance(effect, Commit):
                self._commit(effect.block, effect.certificate)

    def _persisted_text(self, state: PersistedState) -> str:
        """The consensus state as JSON text. A vote persists it several times per height, each
        time with the same proposal (possibly thousands of transactions): that part is encoded
        once per block and spliced in."""
        data = state.to_json()
        spliced: dict[str, str] = {}
        for key in ("prepare", "prepared"):
            entry = data.get(key)
            if entry is None:
                continue
            block_hash = entry["block"]
            if self._proposal_text[0] != block_hash:
                self._proposal_text = (block_hash, encode_checked(entry["proposal"]).decode())
            marker = f"proposal of {key}"
            spliced[json.dumps(marker)] = self._proposal_text[1]
            entry["proposal"] = marker
        # Positions found before any splicing: a spliced proposal may hold any string at all.
        text = encode_checked(data).decode()
        pieces, done = [], 0
        for at, marker, proposal in sorted((text.index(m), m, p) for m, p in spliced.items()):
            pieces += [text[done:at], proposal]
            done = at + len(marker)
        return "".join([*pieces, text[done:]])

    def _commit(self, block: Block, certificate: Certificate) -> None:
        votes = tuple(CommitSignature(validator=i, signature=s) for i, s in certificate.signatures)
        final = dataclasses.replace(block, certificate=votes)
        tentative, self._tentative = self._tentative, None
        if tentative is not None and tentative.matches(block, self.store.height()):
            # This very block was executed on this very state when it was proposed or checked,
            # and gave the certified results and root: apply the changes it made then.
            self.state.apply(tentative.changes)
        elif not application.execute_certified(
            self.state,
            self.registry,
            block.transactions,
            chain=self.genesis.chain,
            height=block.height,
            timestamp_ms=block.timestamp_ms,
            results=block.results,
            events=block.events,
            state_root=block.header.state_root,
        ):
            raise Diverged(
                f"validator {self.index}: block {block.height} does not execute to its certified "
                "results and state root; stopping instead of storing a wrong state"
            )
        self.store.append(final, self.state.take_encoded_changes())
        for tx in block.transactions:
            self.pool.pop(tx.id, None)
        self._prune_pool()
        self.transport.committed(final)

    def _prune_pool(self) -> None:
        """Drop pooled transactions whose nonce a committed block has used up."""
        self._pending_nonces = {}
        for tx_id, tx in list(self.pool.items()):
            account = application.account(self.state, tx.sender)
            if account is not None and tx.nonce < account["nonce"]:
                del self.pool[tx_id]
            else:
                self._pending_nonces.setdefault(tx.sender, set()).add(tx.nonce)

    def _execute_tentatively(
        self, transactions: Sequence[Transaction], height: int, timestamp_ms: int
    ) -> tuple[list[str], list[Event], str]:
        savepoint = self.state.savepoint()
        events: list[Event] = []
        try:
            results = application.execute(
                self.state,
                self.registry,
                transactions,
                chain=self.genesis.chain,
                height=height,
                timestamp_ms=timestamp_ms,
                keep_journal=True,
                events=events,
            )
            # Taken before the root, which lets go of the values decoded for the block.
            changes = self.state.changes_since(savepoint)
            root = self.state.root()
            self._tentative = _Tentative(
                parent_height=self.store.height(),
                transactions=tuple((tx.id, tx.signature) for tx in transactions),
                timestamp_ms=timestamp_ms,
                results=tuple(results),
                events_root=events_root_of(events),
                state_root=root,
                changes=changes,
            )
            return results, events, root
        finally:
            self.state.rollback_to(savepoint)


@dataclasses.dataclass(frozen=True)
class _Tentative:
    """What executing a block's transactions on the state at ``parent_height`` gave."""

    parent_height: int
    transactions: tuple[tuple[str, str], ...]  # (id, signature)
    timestamp_ms: int
    results: tuple[str, ...]
    events_root: str
    state_root: str
    changes: dict[str, Any]

    def matches(self, block: Block, tip: int) -> bool:
        """Whether committing ``block`` on top of height ``tip`` would execute the same."""
        return (
            tip == self.parent_height == block.height - 1
            and self.timestamp_ms == block.timestamp_ms
            and self.results == tuple(block.results)
            and self.events_root == block.header.events_root
            and self.state_root == block.header.state_root
            and self.transactions == tuple((tx.id, tx.signature) for tx in block.transactions)
        )
