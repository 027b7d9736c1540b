"""PBFT-style consensus among the validators: a pure, deterministic state machine.

No Django, no I/O, no clock, no randomness, no threads. A host (the Celery worker, or the
simulated network of the tests) feeds a :class:`Node` its inputs and carries out the effects it
returns. The consensus knows nothing of the market: blocks are opaque proposals made, checked and
(de)serialized by an :class:`Application`.

Validators and quorums
----------------------
``N = len(config.validators)`` validators, indexed ``0..N-1`` by their Ed25519 public keys;
``f = (N - 1) // 3`` may be crashed or lying; a quorum is ``N - f`` (``2f + 1`` when ``N = 3f+1``),
so any two quorums share at least ``f + 1`` validators, at least one of them honest.

Messages
--------
Every message is an :class:`Envelope` ``{sender, body, signature}``: the signature is the sender's
Ed25519 signature over the RFC 8785 bytes of ``body``, and every body carries its ``kind`` and the
``chain`` id. A receiver drops a message from an unknown sender or itself, with a bad signature, for
another chain, or whose body does not have exactly the keys of its kind. Bodies:

``propose``         ``height, view(=0), proposal``: the block of view 0, sent by its proposer.
``prepare``         ``height, view, block``: "I accepted this block in this view".
``precommit``       ``height, view, block``: "I saw a quorum of prepares for it in this view".
``commit``          ``height, block``: "this block is decided". Its body is exactly the commit
                    statement ``{"kind": "commit", "chain", "height", "block"}``, so a quorum of
                    these signatures is the block's :class:`Certificate`, checkable from the block
                    alone (:func:`commit_bytes`, :func:`verify_certificate`).
``view-change``     ``height, view, prepared``: "I give up on the views below ``view``", carrying
                    the sender's highest prepared certificate (``view``, ``block``, ``proposal``
                    and a quorum of signed prepares) or null.
``new-view``        ``height, view, view_changes, proposal``: the proposer of a view > 0 starts it
                    with a quorum of signed view-changes and the block they justify.
``block-request``   ``from_height``: catch-up.
``block-response``  ``tip, blocks``: committed blocks with their certificates.

The protocol, one height at a time
----------------------------------
Blocks are hash-linked, so a height starts only once the previous one is committed. At height
``h`` the proposer of view ``v`` is ``(h + v) % N``.

1. The proposer of view 0 asks the application for a block; the application returns None when it
   has nothing to propose, and then nothing is sent: there are no empty blocks while idle.
2. A validator in view ``v`` accepts the first block of that view that links to its chain, has a
   timestamp after its predecessor's and passes ``Application.check`` (a block the application
   rejects is never voted for), and broadcasts PREPARE. It prepares at most one block per view.
3. With a quorum of PREPAREs for its accepted block in its current view, a validator is *prepared*:
   it keeps that prepared certificate and broadcasts PRECOMMIT.
4. A quorum of PRECOMMITs for one block in one view (any view) means the block is *decided*; so
   does a quorum of COMMITs. A validator that knows the decided block broadcasts COMMIT.
5. With a quorum of COMMITs for the decided block, and the block itself, it commits: the
   :class:`Commit` effect hands the block and its certificate to the host.

View change. A validator with work at the height (the application has something to propose, or it
saw a proposal, a vote or a view-change for the height) starts a timer when it enters a view,
``base * 2**min(view, max_timeout_doublings)``, where ``base`` is ``base_timeout_ms`` or, when
blocks have lately taken longer, ``timeout_margin`` times the recent time from work to commit at a
height in view 0 (a moving average, at most ``base_timeout_ms * 2**max_timeout_doublings``; a
margin of 0 keeps the timer fixed): a
network whose blocks are slow because its state is large or its machine busy does not mistake
them for a faulty proposer. When it expires without a commit, it
moves to view ``v + 1``: it stops voting in lower views, and broadcasts VIEW-CHANGE with its highest
prepared certificate. (Once in a view change, it moves on only after the timer expires again *and*
a quorum asked for that view, so one validator cannot run ahead alone.) A validator that sees
``f + 1`` validators asking for views above its own joins the lowest of the highest ``f + 1``. The
proposer of view ``w`` collects a quorum of VIEW-CHANGEs for ``w`` and sends NEW-VIEW: it must
propose the block of the highest prepared certificate among them (ties broken by block hash), or,
when none carries one, a fresh block. Every receiver checks that justification (a quorum of valid,
signed view-changes for this height and view, each prepared certificate a quorum of valid prepares
for its block, and the proposal being the one they impose) before it accepts the proposal of view
``w``; an unjustified NEW-VIEW is dropped.

Safety argument (no two honest validators commit different blocks at one height). Decided first:
suppose block ``B`` is decided in view ``v`` (a quorum precommitted ``B`` in ``v``). At least
``f + 1`` honest validators precommitted in ``v``, each holding (persistently) a prepared
certificate for ``B`` in ``v``, and each precommitted before leaving ``v``. Two prepared
certificates of one view are for one block, because each holds an honest prepare and an honest
validator prepares one block per view. By induction on ``w > v``: the quorum of view-changes
justifying NEW-VIEW ``w`` shares an honest validator with those precommitters; its view-change
(sent after its precommit) carries a prepared certificate of view ``>= v``; every prepared
certificate of a view in ``[v, w)`` is for ``B`` (a prepared certificate of view ``u > v`` holds an
honest prepare of the proposal of NEW-VIEW ``u``, which is ``B`` by induction); so the highest
certificate in the justification is for ``B``, NEW-VIEW ``w`` must propose ``B``, and no other
block is prepared, precommitted or decided in any later view. Hence at most one block is ever
decided at a height. COMMIT signatures carry no view, so they must be final: an honest validator
signs COMMIT only for the decided block, hence for at most one block per height, and two quorums of
COMMITs would share an honest signer. So every certificate at a height, whoever assembles it and
whenever it is checked (catch-up, audit), is for the one decided block. (A two-phase protocol whose
commit votes carried no view would not be safe: validators may precommit different blocks in
different views; that is why the certificate's signatures come from a third phase.)

Liveness with up to ``f`` validators down or lying, once the network delivers within the timeouts:
timeouts double per view, so eventually an honest proposer's view is long enough; the proposer
rotates; messages of the current height are retransmitted because the transport may lose them
(after ``retransmit_ms``, then backing off to 4 x ``retransmit_ms`` within one height and view; a
proposal only to the peers that have not voted for it yet); a validator that receives a message
for a height it already committed answers with the committed blocks; a validator idles without
votes or timers when there is nothing to propose. A view-change from any single validator counts
as work, so that a transaction that reached only some pools still gets proposed once the rotation
reaches a validator that holds it.

Persistence contract (what makes a restart safe)
-----------------------------------------------
The host MUST carry out the effects of one call in list order, and a :class:`Persist` must be
durable before any later effect of the list is performed. A :class:`Commit` must be durable (the
block stored, the application told) before the host gives the node its next input: the node calls
the application for a new height only in a later call. The node emits ``Persist`` before every
vote, proposal, view-change and new-view whose signing changed its :class:`PersistedState`: the
height, the view and whether it is in a view change, its PREPARE of the view (with the block, so
that a proposer never proposes twice), its latest PRECOMMIT, its COMMIT, and its highest prepared
certificate. A validator persists what it last voted for before sending the vote, so a restart never
makes it sign two blocks in one view (PREPARE, PRECOMMIT), two COMMITs at one height, go back to a
view it left, or forget a prepared certificate it must report. Only the latest state matters; each
``Persist`` replaces the previous one. A restarted node is built from the committed blocks and the
last persisted state (a state for an already committed height is ignored; one for a later height
than the store reaches is refused); Ed25519 signatures are deterministic, so it re-sends the very
messages it sent before.

History and catch-up: the host keeps the committed chain (it persists every ``Commit``); the
node keeps in memory only what the next block must link to (the tip's height, hash and
timestamp) and a window of the ``window`` most recent committed blocks with their certificates
(``RECENT_BLOCKS``, 64, by default), so that its memory does not grow with the chain. It answers
``block-request``, ``max_blocks_per_response`` blocks at a time, from that window, and for older
heights from the host's ``history(first, last)`` callback (a validator reads them from its
store; a node without one serves only its window). A restarted node is given only the end of its
store: ``committed`` is any tail of the chain that ends at the tip (the whole chain will do).

A validator that sees evidence it is behind (messages for a later height, a decided block it does
not have, periodically a peer in rotation) asks for blocks from its next height and commits each
returned block only if it links to its chain and carries a valid certificate; blocks from peers
are not re-checked by the application (a certificate proves an honest quorum checked them).
``Application.decode`` must not depend on application state.

Messages for later views (up to ``VIEW_WINDOW`` ahead) are kept per view and sender; messages for
the next ``FUTURE_HEIGHTS`` heights are buffered (``MAX_BUFFERED_PER_HEIGHT`` each) and replayed
once the node gets there. Every vote is counted once per sender and view, so duplicates,
reordering and redelivery change nothing.

Test-only faults (:class:`Fault`) make a real validator lie with real signatures: EQUIVOCATE sends
different proposals of one view to different peers and signs every vote (prepare, precommit,
commit) for two different blocks, half its peers getting each, and hides its prepared certificate
in view-changes; VOTE_INVALID votes without asking the application to check (its host gives it an
application that proposes invalid blocks); SILENT sends nothing.
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ledger.crypto import NonCanonicalValue, check_canonical, encode_checked
from ledger.identity import IdentityError, KeyPair, public_key_bytes, verify

JSONDict = dict[str, Any]

PROPOSE = "propose"
PREPARE = "prepare"
PRECOMMIT = "precommit"
COMMIT = "commit"
VIEW_CHANGE = "view-change"
NEW_VIEW = "new-view"
BLOCK_REQUEST = "block-request"
BLOCK_RESPONSE = "block-response"

_BODY_KEYS: dict[str, frozenset[str]] = {
    PROPOSE: frozenset({"kind", "chain", "height", "view", "proposal"}),
    PREPARE: frozenset({"kind", "chain", "height", "view", "block"}),
    PRECOMMIT: frozenset({"kind", "chain", "height", "view", "block"}),
    COMMIT: frozenset({"kind", "chain", "height", "block"}),
    VIEW_CHANGE: frozenset({"kind", "chain", "height", "view", "prepared"}),
    NEW_VIEW: frozenset({"kind", "chain", "height", "view", "view_changes", "proposal"}),
    BLOCK_REQUEST: frozenset({"kind", "chain", "from_height"}),
    BLOCK_RESPONSE: frozenset({"kind", "chain", "tip", "blocks"}),
}
_PREPARED_KEYS = frozenset({"view", "block", "proposal", "prepares"})

VIEW_WINDOW = 64
# Committed blocks a node keeps in memory, to answer catch-up requests for the latest heights
# without asking its host; older ones come from the host's history callback.
RECENT_BLOCKS = 64
# Retransmission waits retransmit_ms, then twice, then four times that, within a height and view.
MAX_RETRANSMIT_DOUBLINGS = 2
FUTURE_HEIGHTS = 3
MAX_BUFFERED_PER_HEIGHT = 256
MAX_PROPOSALS_PER_HEIGHT = 64
VERIFIED_CACHE_SIZE = 8192
MAX_HASH_LENGTH = 128


class ConsensusError(Exception):
    """Base of the errors this module raises."""


class MalformedMessage(ConsensusError, ValueError):
    """Wire data that is not an envelope (raised by :meth:`Envelope.from_json`)."""


class Fault(enum.Enum):
    """Test-only misbehaviour of a validator (see the module docstring). Default NONE."""

    NONE = "none"
    SILENT = "silent"
    EQUIVOCATE = "equivocate"
    VOTE_INVALID = "vote-invalid"


# --- the application boundary ----------------------------------------------------------------


class Proposal(Protocol):
    """A block as the consensus sees it. ``hash`` must be computed from the content."""

    @property
    def hash(self) -> str: ...

    @property
    def height(self) -> int: ...

    @property
    def previous_hash(self) -> str: ...

    @property
    def timestamp_ms(self) -> int: ...


P = TypeVar("P", bound=Proposal)


class Application(Protocol[P]):
    """What the consensus needs from the application (the market) at one validator.

    All methods are deterministic. ``propose`` and ``check`` see the application state after the
    last committed block; ``decode`` must be independent of state and raise ValueError (or
    TypeError / KeyError) on malformed data, and must recompute the hash from the content.
    """

    def has_pending(self) -> bool:
        """Whether there is something to propose (e.g. a non-empty transaction pool)."""
        ...

    def propose(self, height: int, previous_hash: str, timestamp_ms: int) -> P | None:
        """A block for ``height`` on top of ``previous_hash``, or None when there is nothing."""
        ...

    def check(self, proposal: P) -> bool:
        """Whether the block is valid on top of the current state (e.g. by re-execution)."""
        ...

    def encode(self, proposal: P) -> JSONDict:
        """The block as a JSON-compatible dict (RFC 8785 canonicalizable: no floats)."""
        ...

    def decode(self, data: Any) -> P:
        """The block from :meth:`encode`'s output."""
        ...


# --- configuration, wire formats, certificates -----------------------------------------------


def max_faulty(n: int) -> int:
    """The number of faulty validators ``n`` validators tolerate."""
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """``n - f``: ``2f + 1`` when ``n = 3f + 1``."""
    return n - max_faulty(n)


@dataclass(frozen=True)
class Config:
    """The validator set and the protocol's timing, identical at every validator."""

    chain_id: str
    validators: tuple[str, ...]
    genesis_hash: str = "0" * 64
    genesis_timestamp_ms: int = 0
    base_timeout_ms: int = 2000
    max_timeout_doublings: int = 4
    timeout_margin: int = 4  # the view timer allows this many times the recent commit time; 0: off
    retransmit_ms: int = 500
    sync_interval_ms: int = 5000
    max_blocks_per_response: int = 32

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValueError("at least one validator")
        if len(set(self.validators)) != len(self.validators):
            raise ValueError("validator keys must be distinct")
        for key in self.validators:
            public_key_bytes(key)
        if min(self.base_timeout_ms, self.retransmit_ms, self.sync_interval_ms) <= 0:
            raise ValueError("timeouts and intervals are positive")
        if self.timeout_margin < 0:
            raise ValueError("timeout_margin >= 0")
        if self.max_blocks_per_response <= 0 or self.max_timeout_doublings < 0:
            raise ValueError("max_blocks_per_response > 0 and max_timeout_doublings >= 0")

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def quorum(self) -> int:
        return quorum_size(self.n)

    def proposer(self, height: int, view: int) -> int:
        return (height + view) % self.n


def commit_statement(chain_id: str, height: int, block_hash: str) -> JSONDict:
    """The statement a COMMIT signs; its canonical bytes are :func:`commit_bytes`."""
    return {"kind": COMMIT, "chain": chain_id, "height": height, "block": block_hash}


def commit_bytes(chain_id: str, height: int, block_hash: str) -> bytes:
    """The domain-separated bytes that the signatures of a commit certificate sign."""
    return encode_checked(commit_statement(chain_id, height, block_hash))


def vote_statement(kind: str, chain_id: str, height: int, view: int, block_hash: str) -> JSONDict:
    """The body of a PREPARE or PRECOMMIT."""
    return {"kind": kind, "chain": chain_id, "height": height, "view": view, "block": block_hash}


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _signature_pairs(data: Any) -> tuple[tuple[int, str], ...]:
    if not isinstance(data, list):
        raise MalformedMessage("signatures are a list of [validator, signature]")
    pairs: list[tuple[int, str]] = []
    for item in data:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise MalformedMessage("signatures are a list of [validator, signature]")
        index, signature = item
        if not _is_index(index) or not isinstance(signature, str):
            raise MalformedMessage("signatures are a list of [validator, signature]")
        pairs.append((index, signature))
    return tuple(pairs)


@dataclass(frozen=True)
class Certificate:
    """A quorum of COMMIT signatures ``(validator index, signature hex)`` over a block."""

    height: int
    block_hash: str
    signatures: tuple[tuple[int, str], ...]

    def to_json(self) -> JSONDict:
        return {
            "height": self.height,
            "block": self.block_hash,
            "signatures": [[index, signature] for index, signature in self.signatures],
        }

    @classmethod
    def from_json(cls, data: Any) -> Certificate:
        if not isinstance(data, Mapping) or set(data) != {"height", "block", "signatures"}:
            raise MalformedMessage("a certificate is {height, block, signatures}")
        height, block = data["height"], data["block"]
        if not _is_index(height) or not isinstance(block, str):
            raise MalformedMessage("a certificate is {height, block, signatures}")
        return cls(height, block, _signature_pairs(data["signatures"]))


def verify_certificate(chain_id: str, validators: Sequence[str], certificate: Certificate) -> bool:
    """Whether a quorum of distinct validators' signatures over :func:`commit_bytes` verify."""
    data = commit_bytes(chain_id, certificate.height, certificate.block_hash)
    signers: set[int] = set()
    for index, signature in certificate.signatures:
        if index in signers or index >= len(validators):
            continue
        try:
            verify(validators[index], data, signature)
        except (IdentityError, ValueError, TypeError):
            continue
        signers.add(index)
    return len(signers) >= quorum_size(len(validators))


@dataclass(frozen=True, eq=False)
class Envelope:
    """A signed message: ``signature`` is the sender's over the RFC 8785 bytes of ``body``."""

    sender: int
    body: Mapping[str, Any]
    signature: str
    _canonical: bytes | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        kind = self.body.get("kind")
        return kind if isinstance(kind, str) else ""

    def signed_bytes(self) -> bytes:
        """The canonical bytes of the body (computed once per envelope)."""
        if self._canonical is None:
            object.__setattr__(self, "_canonical", encode_checked(self.body))
        assert self._canonical is not None
        return self._canonical

    def to_json(self) -> JSONDict:
        return {"sender": self.sender, "body": dict(self.body), "signature": self.signature}

    @classmethod
    def from_json(cls, data: Any) -> Envelope:
        """The envelope of wire data; raises MalformedMessage (nothing is verified here)."""
        if not isinstance(data, Mapping) or set(data) != {"sender", "body", "signature"}:
            raise MalformedMessage("an envelope is {sender, body, signature}")
        sender, body, signature = data["sender"], data["body"], data["signature"]
        if not _is_index(sender) or not isinstance(body, Mapping) or not isinstance(signature, str):
            raise MalformedMessage("an envelope is {sender, body, signature}")
        body = dict(body)
        try:
            check_canonical(body)  # what it signed must have canonical bytes (no floats, ...)
        except NonCanonicalValue as error:
            raise MalformedMessage(f"the body is not canonical JSON: {error}") from None
        return cls(sender, body, signature)


def sign_envelope(keys: KeyPair, sender: int, body: Mapping[str, Any]) -> Envelope:
    """Sign ``body`` as validator ``sender``."""
    canonical = encode_checked(body)
    return Envelope(sender, dict(body), keys.sign(canonical), canonical)


@dataclass(frozen=True)
class PreparedCertificate:
    """A quorum of signed PREPAREs for ``block_hash`` in ``view``, with the block itself."""

    view: int
    block_hash: str
    proposal: JSONDict
    prepares: tuple[tuple[int, str], ...]

    def to_json(self) -> JSONDict:
        return {
            "view": self.view,
            "block": self.block_hash,
            "proposal": self.proposal,
            "prepares": [[index, signature] for index, signature in self.prepares],
        }

    @classmethod
    def from_json(cls, data: Any) -> PreparedCertificate:
        if not isinstance(data, Mapping) or set(data) != _PREPARED_KEYS:
            raise MalformedMessage("a prepared certificate is {view, block, proposal, prepares}")
        view, block, proposal = data["view"], data["block"], data["proposal"]
        if not _is_index(view) or not isinstance(block, str) or not isinstance(proposal, Mapping):
            raise MalformedMessage("a prepared certificate is {view, block, proposal, prepares}")
        return cls(view, block, dict(proposal), _signature_pairs(data["prepares"]))


@dataclass(frozen=True)
class PrepareRecord:
    """The block a validator prepared (and, as proposer, proposed) in ``view``."""

    view: int
    block_hash: str
    proposal: JSONDict


@dataclass(frozen=True)
class PersistedState:
    """What a validator must remember across a restart (see the module docstring)."""

    height: int
    view: int
    view_change: bool
    prepare: PrepareRecord | None
    precommit: tuple[int, str] | None
    commit: str | None
    prepared: PreparedCertificate | None

    def to_json(self) -> JSONDict:
        return {
            "height": self.height,
            "view": self.view,
            "view_change": self.view_change,
            "prepare": None
            if self.prepare is None
            else {
                "view": self.prepare.view,
                "block": self.prepare.block_hash,
                "proposal": self.prepare.proposal,
            },
            "precommit": None if self.precommit is None else list(self.precommit),
            "commit": self.commit,
            "prepared": None if self.prepared is None else self.prepared.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> PersistedState:
        try:
            prepare = data["prepare"]
            precommit = data["precommit"]
            prepared = data["prepared"]
            return cls(
                height=int(data["height"]),
                view=int(data["view"]),
                view_change=bool(data["view_change"]),
                prepare=None
                if prepare is None
                else PrepareRecord(
                    int(prepare["view"]), str(prepare["block"]), dict(prepare["proposal"])
                ),
                precommit=None if precommit is None else (int(precommit[0]), str(precommit[1])),
                commit=None if data["commit"] is None else str(data["commit"]),
                prepared=None if prepared is None else PreparedCertificate.from_json(prepared),
            )
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ConsensusError(f"corrupt persisted consensus state: {error}") from error


# --- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Deliver ``message`` to validator ``to``, or to every other validator when None."""

    to: int | None
    message: Envelope


@dataclass(frozen=True)
class Commit(Generic[P]):
    """Block ``height`` is final: store it with its certificate, then apply it."""

    height: int
    block: P
    certificate: Certificate


@dataclass(frozen=True)
class Persist:
    """Make ``state`` durable (replacing the previous one) before the following effects."""

    state: PersistedState


Effect = Send | Commit[P] | Persist


class _Malformed(Exception):
    pass


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(key)
    return int(value)


def _hash(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_HASH_LENGTH:
        raise _Malformed(key)
    return value


# --- the validator ---------------------------------------------------------------------------


class Node(Generic[P]):
    """One validator's consensus state machine.

    Inputs: :meth:`on_message`, :meth:`on_tick` (the host's clock, in ms, e.g. every 50-100 ms),
    :meth:`on_transactions_available`. Each returns the effects the host must carry out, in order
    (see the persistence contract in the module docstring).

    ``committed`` is the end of the validator's stored chain: consecutive blocks with their
    certificates, in order, ending at its tip (all of heights 1..k, or only the last few of
    them); ``persisted`` is its last persisted state; both empty/None for a fresh validator. The
    node keeps the last ``window`` committed blocks in memory and asks ``history(first, last)``
    for older ones when a lagging peer needs them: it must return the stored blocks ``first`` to
    ``last`` with their certificates, in order (or fewer, never others).
    """

    def __init__(
        self,
        config: Config,
        index: int,
        keys: KeyPair,
        app: Application[P],
        *,
        committed: Sequence[tuple[P, Certificate]] = (),
        persisted: PersistedState | None = None,
        fault: Fault = Fault.NONE,
        now_ms: int = 0,
        window: int = RECENT_BLOCKS,
        history: Callable[[int, int], Sequence[tuple[P, Certificate]]] | None = None,
    ) -> None:
        if not 0 <= index < config.n:
            raise ValueError(f"validator index {index} out of range")
        if keys.public_key_hex != config.validators[index]:
            raise ValueError(f"the key pair is not validator {index}'s")
        if window <= 0:
            raise ValueError("the window of recent blocks holds at least one block")
        self._config = config
        self._index = index
        self._keys = keys
        self._app = app
        self._fault = fault
        self._quorum = config.quorum
        self._now = now_ms
        self._history = history
        self._recent: deque[tuple[P, Certificate]] = deque(maxlen=window)
        self._last_hash = config.genesis_hash
        self._last_ts = config.genesis_timestamp_ms
        tip = 0
        for proposal, certificate in committed:
            if tip == 0 and proposal.height > 1:
                # Only the last blocks of the store: the first one given links to a block the
                # node is not shown (block 1 links to genesis); each later one to its predecessor.
                tip, self._last_hash = proposal.height - 1, proposal.previous_hash
            if (
                proposal.height != tip + 1
                or proposal.previous_hash != self._last_hash
                or certificate.height != proposal.height
                or certificate.block_hash != proposal.hash
            ):
                raise ValueError(f"committed block {proposal.height} does not link to the chain")
            self._recent.append((proposal, certificate))
            tip = proposal.height
            self._last_hash = proposal.hash
            self._last_ts = proposal.timestamp_ms
        self._height = tip + 1
        self._verified: dict[tuple[int, str, bytes], None] = {}
        self._future: dict[int, dict[tuple[int, str], Envelope]] = {}
        self._future_since: int | None = None
        self._future_sender: int | None = None
        self._replay: list[Envelope] = []
        self._stale = False
        self._effects: list[Effect[P]] = []
        self._next_retransmit = now_ms + config.retransmit_ms
        self._retransmits = 0  # in this height and view; each doubles the wait, up to a limit
        self._retransmit_round = (self._height, 0)
        self._next_sync = now_ms + config.sync_interval_ms
        self._sync_round = 0
        self._last_request: int | None = None
        self._last_served: dict[int, int] = {}
        self._last_commit_ms = now_ms
        self._work_since: int | None = None  # when this height's timer first started
        self._commit_ms = 0  # the moving average of work-to-commit times in view 0, ms
        self._reset_height()
        self._last_persisted: PersistedState | None = None
        if persisted is not None and persisted.height > self._height:
            raise ConsensusError(
                f"the persisted consensus state is for height {persisted.height} but the store "
                f"holds only {tip} blocks: committed blocks were lost"
            )
        if persisted is not None and persisted.height == self._height:
            self._restore(persisted)
            self._last_persisted = persisted

    # -- public interface --------------------------------------------------------------------

    @property
    def index(self) -> int:
        return self._index

    @property
    def fault(self) -> Fault:
        return self._fault

    @property
    def height(self) -> int:
        """The height of the last committed block (0 before the first)."""
        return self._height - 1

    @property
    def view(self) -> int:
        """The current view at the height being decided."""
        return self._view

    @property
    def recent(self) -> tuple[tuple[P, Certificate], ...]:
        """The last committed blocks with their certificates, at most ``window`` of them, in
        order and ending at :attr:`height` (the whole chain is the host's, not the node's)."""
        return tuple(self._recent)

    def persisted_state(self) -> PersistedState:
        return self._snapshot()

    def on_message(self, message: Envelope) -> list[Effect[P]]:
        """A message from the transport (possibly duplicated, late, forged or garbage)."""
        self._begin()
        self._receive(message)
        return self._finish()

    def on_tick(self, now_ms: int) -> list[Effect[P]]:
        """The host's clock: timers, retransmission, catch-up, proposing."""
        self._begin()
        self._now = max(self._now, now_ms)
        self._tick()
        return self._finish()

    def on_transactions_available(self) -> list[Effect[P]]:
        """The application has new work: propose now if this validator's turn."""
        self._begin()
        self._try_propose()
        self._try_new_view()
        return self._finish()

    # -- plumbing ----------------------------------------------------------------------------

    def _begin(self) -> None:
        self._effects = []
        if self._stale:
            # The host applied the blocks committed by the previous call: the application is
            # current again, and messages for the new height can be handled.
            self._stale = False
            queue, self._replay = self._replay, []
            for envelope in queue:
                self._receive(envelope)

    def _finish(self) -> list[Effect[P]]:
        effects, self._effects = self._effects, []
        return effects

    def _reset_height(self) -> None:
        self._view = 0
        self._in_view_change = False
        self._proposals: dict[str, P] = {}
        self._accepted: dict[int, str] = {}
        self._prepares: dict[int, dict[int, tuple[str, str]]] = {}
        self._precommits: dict[int, dict[int, tuple[str, str]]] = {}
        self._commits: dict[int, tuple[str, str]] = {}
        self._view_changes: dict[int, dict[int, tuple[Envelope, PreparedCertificate | None]]] = {}
        self._new_views_sent: set[int] = set()
        self._my_prepare: PrepareRecord | None = None
        self._my_precommit: tuple[int, str] | None = None
        self._my_commit: str | None = None
        self._prepared: PreparedCertificate | None = None
        self._decided: str | None = None
        self._work_seen = False
        self._deadline: int | None = None
        self._outbox: dict[str, list[Send]] = {}

    def _restore(self, state: PersistedState) -> None:
        self._view = state.view
        self._in_view_change = state.view_change
        self._my_prepare = state.prepare
        self._my_precommit = state.precommit
        self._my_commit = state.commit
        self._prepared = state.prepared
        self._decided = state.commit
        chain, height = self._config.chain_id, self._height
        for data in (
            state.prepare.proposal if state.prepare else None,
            state.prepared.proposal if state.prepared else None,
        ):
            if data is not None:
                proposal = self._decode(data)
                if proposal is None:
                    raise ConsensusError("persisted consensus state holds an invalid block")
                self._learn(proposal, force=True)
        # Signatures are deterministic: these are the very messages sent before the restart.
        active = not state.view_change
        if state.prepare is not None:
            record = state.prepare
            statement = vote_statement(PREPARE, chain, height, record.view, record.block_hash)
            envelope = self._sign(statement)
            self._prepares.setdefault(record.view, {})[self._index] = (
                record.block_hash,
                envelope.signature,
            )
            if active and record.view == state.view:
                self._accepted[record.view] = record.block_hash
                self._outbox[PREPARE] = [Send(None, envelope)]
                if record.view == 0 and self._config.proposer(height, 0) == self._index:
                    body = self._propose_body(0, record.proposal)
                    self._outbox[PROPOSE] = [Send(None, self._sign(body))]
        if state.precommit is not None:
            view, block = state.precommit
            envelope = self._sign(vote_statement(PRECOMMIT, chain, height, view, block))
            self._precommits.setdefault(view, {})[self._index] = (block, envelope.signature)
            self._outbox[PRECOMMIT] = [Send(None, envelope)]
        if state.commit is not None:
            envelope = self._sign(commit_statement(chain, height, state.commit))
            self._commits[self._index] = (state.commit, envelope.signature)
            self._outbox[COMMIT] = [Send(None, envelope)]
        if state.view_change:
            envelope = self._sign(self._view_change_body(state.view))
            entry = (envelope, self._reported())
            self._view_changes.setdefault(state.view, {})[self._index] = entry
            self._outbox[VIEW_CHANGE] = [Send(None, envelope)]

    def _snapshot(self) -> PersistedState:
        return PersistedState(
            height=self._height,
            view=self._view,
            view_change=self._in_view_change,
            prepare=self._my_prepare,
            precommit=self._my_precommit,
            commit=self._my_commit,
            prepared=self._prepared,
        )

    def _persist(self) -> None:
        state = self._snapshot()
        if state != self._last_persisted:
            self._effects.append(Persist(state))
            self._last_persisted = state

    def _sign(self, body: JSONDict) -> Envelope:
        envelope = sign_envelope(self._keys, self._index, body)
        self._remember_verified(self._index, envelope.signed_bytes(), envelope.signature)
        return envelope

    def _emit(self, sends: list[Send]) -> None:
        if self._fault is not Fault.SILENT:
            self._effects.extend(sends)

    def _remember_verified(self, signer: int, data: bytes, signature: str) -> None:
        self._verified[(signer, signature, hashlib.sha256(data).digest())] = None
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]

    def _verified_signature(self, signer: int, data: bytes, signature: str) -> bool:
        if not 0 <= signer < self._config.n:
            return False
        if (signer, signature, hashlib.sha256(data).digest()) in self._verified:
            return True
        try:
            verify(self._config.validators[signer], data, signature)
        except (IdentityError, ValueError, TypeError):
            return False
        self._remember_verified(signer, data, signature)
        return True

    def _decode(self, data: Any) -> P | None:
        try:
            return self._app.decode(data)
        except (ValueError, TypeError, KeyError):
            return None

    def _links(self, proposal: P) -> bool:
        return (
            proposal.height == self._height
            and proposal.previous_hash == self._last_hash
            and proposal.timestamp_ms > self._last_ts
        )

    def _decode_for_height(self, data: Any) -> P | None:
        proposal = self._decode(data)
        if proposal is None or not self._links(proposal):
            return None
        return proposal

    def _learn(self, proposal: P, *, force: bool = False) -> None:
        if proposal.hash in self._proposals:
            return
        if force or len(self._proposals) < MAX_PROPOSALS_PER_HEIGHT:
            self._proposals[proposal.hash] = proposal

    def _acceptable(self, proposal: P) -> bool:
        return self._fault is Fault.VOTE_INVALID or self._app.check(proposal)

    def _timeout(self, view: int) -> int:
        config = self._config
        ceiling = config.base_timeout_ms << config.max_timeout_doublings
        base = min(ceiling, max(config.base_timeout_ms, config.timeout_margin * self._commit_ms))
        return base << min(view, config.max_timeout_doublings)

    def _timestamp(self) -> int:
        return max(self._now, self._last_ts + 1)

    def _peers(self) -> list[int]:
        return [i for i in range(self._config.n) if i != self._index]

    def _split(self, first: Envelope, second: Envelope) -> list[Send]:
        """Equivocation: half the peers get one message, half the other."""
        return [
            Send(peer, first if position % 2 == 0 else second)
            for position, peer in enumerate(self._peers())
        ]

    def _propose_body(self, view: int, proposal: JSONDict) -> JSONDict:
        return {
            "kind": PROPOSE,
            "chain": self._config.chain_id,
            "height": self._height,
            "view": view,
            "proposal": proposal,
        }

    def _reported(self) -> PreparedCertificate | None:
        return None if self._fault is Fault.EQUIVOCATE else self._prepared

    def _view_change_body(self, view: int) -> JSONDict:
        reported = self._reported()
        return {
            "kind": VIEW_CHANGE,
            "chain": self._config.chain_id,
            "height": self._height,
            "view": view,
            "prepared": None if reported is None else reported.to_json(),
        }

    # -- receiving ---------------------------------------------------------------------------

    def _receive(self, envelope: Envelope) -> None:
        try:
            self._dispatch(envelope)
        except (_Malformed, MalformedMessage, NonCanonicalValue):
            return

    def _dispatch(self, envelope: Envelope) -> None:
        body, sender = envelope.body, envelope.sender
        if not isinstance(body, Mapping) or not isinstance(envelope.signature, str):
            return
        kind = body.get("kind")
        if not isinstance(kind, str) or _BODY_KEYS.get(kind) != frozenset(body):
            return
        if body["chain"] != self._config.chain_id:
            return
        if not _is_index(sender) or sender >= self._config.n or sender == self._index:
            return
        if not self._verified_signature(sender, envelope.signed_bytes(), envelope.signature):
            return
        if kind == BLOCK_REQUEST:
            self._serve(sender, _int(body, "from_height"))
            return
        if kind == BLOCK_RESPONSE:
            self._on_block_response(sender, body)
            return
        height = _int(body, "height")
        if height < self._height:
            self._serve_stale(sender, height)
            return
        if height > self._height:
            self._buffer(height, envelope)
            return
        if self._stale:
            self._replay.append(envelope)
            return
        if kind == PROPOSE:
            self._on_propose(sender, body)
        elif kind in (PREPARE, PRECOMMIT, COMMIT):
            self._on_vote(kind, sender, body, envelope.signature)
        elif kind == VIEW_CHANGE:
            self._on_view_change(envelope)
        elif kind == NEW_VIEW:
            self._on_new_view(sender, body)

    def _buffer(self, height: int, envelope: Envelope) -> None:
        if height <= self._height + FUTURE_HEIGHTS:
            bucket = self._future.setdefault(height, {})
            if len(bucket) < MAX_BUFFERED_PER_HEIGHT:
                bucket.setdefault((envelope.sender, envelope.signature), envelope)
        if height > self._height + 1:
            self._request_blocks(envelope.sender)
        elif self._future_since is None:
            # The sender probably committed our height; give our own votes a moment first.
            self._future_since = self._now
            self._future_sender = envelope.sender

    def _on_propose(self, sender: int, body: Mapping[str, Any]) -> None:
        view = _int(body, "view")
        if view != 0 or sender != self._config.proposer(self._height, 0):
            return
        proposal = self._decode_for_height(body["proposal"])
        if proposal is None:
            return
        self._work_seen = True
        self._learn(proposal)
        self._consider(0, proposal)

    def _on_vote(self, kind: str, sender: int, body: Mapping[str, Any], signature: str) -> None:
        block = _hash(body, "block")
        self._work_seen = True
        if kind == COMMIT:
            if sender not in self._commits:
                self._commits[sender] = (block, signature)
                self._check_decided()
            return
        view = _int(body, "view")
        if view > self._view + VIEW_WINDOW:
            return
        if kind == PREPARE:
            if view < self._view:
                return
            votes = self._prepares.setdefault(view, {})
            if sender not in votes:
                votes[sender] = (block, signature)
                self._check_prepared(view)
        else:
            votes = self._precommits.setdefault(view, {})
            if sender not in votes:
                votes[sender] = (block, signature)
                self._check_decided()

    def _parse_prepared(self, data: Any, view: int) -> PreparedCertificate | None:
        """A valid prepared certificate below ``view`` at this height, None for null."""
        if data is None:
            return None
        claimed = PreparedCertificate.from_json(data)
        if claimed.view >= view:
            raise _Malformed("a prepared certificate must precede the view it is reported for")
        proposal = self._decode_for_height(claimed.proposal)
        if proposal is None or proposal.hash != claimed.block_hash:
            raise _Malformed("the prepared block does not match")
        statement = vote_statement(
            PREPARE, self._config.chain_id, self._height, claimed.view, claimed.block_hash
        )
        data_bytes = encode_checked(statement)
        valid: dict[int, str] = {}
        for signer, signature in claimed.prepares:
            if signer not in valid and self._verified_signature(signer, data_bytes, signature):
                valid[signer] = signature
        if len(valid) < self._quorum:
            raise _Malformed("a prepared certificate needs a quorum of valid prepares")
        self._learn(proposal, force=True)
        return PreparedCertificate(
            claimed.view, claimed.block_hash, claimed.proposal, tuple(sorted(valid.items()))
        )

    def _on_view_change(self, envelope: Envelope) -> None:
        sender, body = envelope.sender, envelope.body
        view = _int(body, "view")
        if view == 0 or view < self._view or view > self._view + VIEW_WINDOW:
            return
        if sender in self._view_changes.get(view, {}):
            return
        certificate = self._parse_prepared(body["prepared"], view)
        self._view_changes.setdefault(view, {})[sender] = (envelope, certificate)
        self._work_seen = True
        self._maybe_join_view_change()
        self._try_new_view()

    def _on_new_view(self, sender: int, body: Mapping[str, Any]) -> None:
        view = _int(body, "view")
        if view == 0 or sender != self._config.proposer(self._height, view):
            return
        if view < self._view or (view == self._view and not self._in_view_change):
            return
        if view > self._view + VIEW_WINDOW:
            return
        raw = body["view_changes"]
        if not isinstance(raw, list) or len(raw) > self._config.n:
            return
        justification: dict[int, tuple[Envelope, PreparedCertificate | None]] = {}
        for item in raw:
            change = Envelope.from_json(item)
            change_body = change.body
            if (
                _BODY_KEYS[VIEW_CHANGE] != set(change_body)
                or change_body["kind"] != VIEW_CHANGE
                or change_body["chain"] != self._config.chain_id
                or change_body["height"] != self._height
                or change_body["view"] != view
                or change.sender in justification
                or not self._verified_signature(
                    change.sender, change.signed_bytes(), change.signature
                )
            ):
                return
            justification[change.sender] = (
                change,
                self._parse_prepared(change_body["prepared"], view),
            )
        if len(justification) < self._quorum:
            return
        proposal = self._decode_for_height(body["proposal"])
        if proposal is None:
            return
        imposed = _highest([certificate for _, certificate in justification.values()])
        if imposed is not None and imposed.block_hash != proposal.hash:
            return
        self._work_seen = True
        self._enter_view(view)
        known = self._view_changes.setdefault(view, {})
        for signer, entry in justification.items():
            known.setdefault(signer, entry)
        self._learn(proposal, force=True)
        self._persist()
        self._consider(view, proposal)

    # -- voting ------------------------------------------------------------------------------

    def _consider(self, view: int, proposal: P) -> None:
        """Prepare ``proposal`` if it is the first acceptable block of the current view."""
        if self._in_view_change or self._view != view or view in self._accepted:
            return
        record = self._my_prepare
        if record is not None and record.view == view and record.block_hash != proposal.hash:
            return
        if not self._acceptable(proposal):
            return
        self._accepted[view] = proposal.hash
        self._prepare(view, proposal, before=[], alternative=None)

    def _prepare(
        self, view: int, proposal: P, *, before: list[Send], alternative: str | None
    ) -> None:
        self._my_prepare = PrepareRecord(view, proposal.hash, self._app.encode(proposal))
        self._persist()
        self._emit(before)
        envelope = self._vote(PREPARE, view, proposal.hash, alternative)
        self._prepares.setdefault(view, {})[self._index] = (proposal.hash, envelope.signature)
        self._check_prepared(view)

    def _vote(self, kind: str, view: int, block: str, alternative: str | None) -> Envelope:
        chain, height = self._config.chain_id, self._height
        if kind == COMMIT:
            body = commit_statement(chain, height, block)
        else:
            body = vote_statement(kind, chain, height, view, block)
        envelope = self._sign(body)
        if self._fault is Fault.EQUIVOCATE:
            other = alternative or self._conflicting(block)
            sends = self._split(envelope, self._sign({**body, "block": other}))
        else:
            sends = [Send(None, envelope)]
        self._outbox[kind] = sends
        self._emit(sends)
        return envelope

    def _conflicting(self, block: str) -> str:
        others = sorted(h for h in self._proposals if h != block)
        if others:
            return others[0]
        return hashlib.sha256(f"conflicting:{block}".encode()).hexdigest()

    def _check_prepared(self, view: int) -> None:
        if self._in_view_change or self._view != view:
            return
        block = self._accepted.get(view)
        if block is None or (self._my_precommit is not None and self._my_precommit[0] >= view):
            return
        signatures = sorted(
            (signer, signature)
            for signer, (voted, signature) in self._prepares.get(view, {}).items()
            if voted == block
        )
        if len(signatures) < self._quorum:
            return
        proposal = self._proposals[block]
        self._prepared = PreparedCertificate(
            view, block, self._app.encode(proposal), tuple(signatures[: self._quorum])
        )
        self._my_precommit = (view, block)
        self._persist()
        envelope = self._vote(PRECOMMIT, view, block, None)
        self._precommits.setdefault(view, {})[self._index] = (block, envelope.signature)
        self._check_decided()

    def _check_decided(self) -> None:
        if self._decided is None:
            self._decided = self._decision()
            if self._decided is None:
                return
        decided = self._decided
        if self._my_commit is None:
            self._my_commit = decided
            self._persist()
            envelope = self._vote(COMMIT, 0, decided, None)
            self._commits[self._index] = (decided, envelope.signature)
        signatures = tuple(
            sorted(
                (signer, signature)
                for signer, (block, signature) in self._commits.items()
                if block == decided
            )
        )
        if len(signatures) < self._quorum:
            return
        proposal = self._proposals.get(decided)
        if proposal is None:
            self._request_blocks(None)
            return
        self._commit(proposal, Certificate(self._height, decided, signatures))

    def _decision(self) -> str | None:
        for votes in (*self._precommits.values(), self._commits):
            tally: dict[str, int] = {}
            for block, _ in votes.values():
                tally[block] = tally.get(block, 0) + 1
                if tally[block] >= self._quorum:
                    return block
        return None

    def _commit(self, proposal: P, certificate: Certificate) -> None:
        self._recent.append((proposal, certificate))
        self._effects.append(Commit(proposal.height, proposal, certificate))
        self._last_hash = proposal.hash
        self._last_ts = proposal.timestamp_ms
        self._height += 1
        self._last_commit_ms = self._now
        if self._view == 0 and self._work_since is not None:
            took = self._now - self._work_since
            self._commit_ms = took if not self._commit_ms else (3 * self._commit_ms + took) // 4
        self._work_since = None
        self._reset_height()
        self._stale = True
        self._replay = list(self._future.pop(self._height, {}).values())
        self._future = {h: bucket for h, bucket in self._future.items() if h > self._height}
        self._future_since = None
        self._future_sender = None

    # -- proposing and view changes ----------------------------------------------------------

    def _try_propose(self) -> None:
        if self._stale or self._in_view_change or self._view != 0:
            return
        if self._config.proposer(self._height, 0) != self._index:
            return
        if 0 in self._accepted or self._my_prepare is not None or not self._app.has_pending():
            return
        timestamp = self._timestamp()
        proposal = self._app.propose(self._height, self._last_hash, timestamp)
        if proposal is None or not self._links(proposal) or not self._acceptable(proposal):
            return
        self._learn(proposal, force=True)
        envelope = self._sign(self._propose_body(0, self._app.encode(proposal)))
        sends = [Send(None, envelope)]
        alternative: str | None = None
        if self._fault is Fault.EQUIVOCATE:
            twin = self._app.propose(self._height, self._last_hash, timestamp + 1)
            if twin is not None and twin.hash != proposal.hash and self._links(twin):
                self._learn(twin, force=True)
                alternative = twin.hash
                twin_envelope = self._sign(self._propose_body(0, self._app.encode(twin)))
                sends = self._split(envelope, twin_envelope)
        self._outbox[PROPOSE] = sends
        self._work_seen = True
        self._accepted[0] = proposal.hash
        self._prepare(0, proposal, before=sends, alternative=alternative)

    def _maybe_join_view_change(self) -> None:
        highest: dict[int, int] = {}
        for view, senders in self._view_changes.items():
            for sender in senders:
                if sender != self._index:
                    highest[sender] = max(highest.get(sender, 0), view)
        above = sorted((v for v in highest.values() if v > self._view), reverse=True)
        if len(above) > self._config.f:
            self._start_view_change(above[self._config.f])

    def _enter_view(self, view: int) -> None:
        self._view = view
        self._in_view_change = False
        self._deadline = self._now + self._timeout(view)
        self._prune_views(view)
        for kind in (PROPOSE, PREPARE, NEW_VIEW, VIEW_CHANGE):
            self._outbox.pop(kind, None)

    def _prune_views(self, view: int) -> None:
        for table in (self._view_changes, self._prepares):
            for old in [v for v in table if v < view]:
                del table[old]

    def _start_view_change(self, view: int) -> None:
        self._view = view
        self._in_view_change = True
        self._deadline = self._now + self._timeout(view)
        self._prune_views(view)
        for kind in (PROPOSE, PREPARE, NEW_VIEW):
            self._outbox.pop(kind, None)
        self._persist()
        envelope = self._sign(self._view_change_body(view))
        self._view_changes.setdefault(view, {})[self._index] = (envelope, self._reported())
        self._outbox[VIEW_CHANGE] = [Send(None, envelope)]
        self._emit(self._outbox[VIEW_CHANGE])
        self._maybe_join_view_change()
        self._try_new_view()

    def _try_new_view(self) -> None:
        view = self._view
        if (
            self._stale
            or not self._in_view_change
            or self._config.proposer(self._height, view) != self._index
            or view in self._new_views_sent
        ):
            return
        changes = self._view_changes.get(view, {})
        if len(changes) < self._quorum:
            return
        imposed = _highest([certificate for _, certificate in changes.values()])
        twin: P | None = None
        if imposed is not None:
            proposal = self._proposals.get(imposed.block_hash)
        else:
            timestamp = self._timestamp()
            proposal = self._app.propose(self._height, self._last_hash, timestamp)
            if proposal is not None and self._fault is Fault.EQUIVOCATE:
                twin = self._app.propose(self._height, self._last_hash, timestamp + 1)
        if proposal is None or not self._links(proposal) or not self._acceptable(proposal):
            return
        self._new_views_sent.add(view)
        self._enter_view(view)
        self._learn(proposal, force=True)
        self._accepted[view] = proposal.hash
        justification = [envelope.to_json() for _, (envelope, _) in sorted(changes.items())]

        def new_view(block: P) -> Envelope:
            body = {
                "kind": NEW_VIEW,
                "chain": self._config.chain_id,
                "height": self._height,
                "view": view,
                "view_changes": justification,
                "proposal": self._app.encode(block),
            }
            return self._sign(body)

        envelope = new_view(proposal)
        sends = [Send(None, envelope)]
        alternative: str | None = None
        if twin is not None and twin.hash != proposal.hash and self._links(twin):
            self._learn(twin, force=True)
            alternative = twin.hash
            sends = self._split(envelope, new_view(twin))
        self._outbox[NEW_VIEW] = sends
        self._prepare(view, proposal, before=sends, alternative=alternative)

    # -- time --------------------------------------------------------------------------------

    def _has_work(self) -> bool:
        return (
            self._work_seen
            or self._in_view_change
            or self._my_prepare is not None
            or bool(self._proposals)
            or (not self._stale and self._app.has_pending())
        )

    def _tick(self) -> None:
        now = self._now
        if self._deadline is None and self._has_work():
            self._deadline = now + self._timeout(self._view)
            if self._work_since is None:
                self._work_since = now
        if self._deadline is not None and now >= self._deadline:
            self._on_timeout()
        self._try_propose()
        self._try_new_view()
        if (
            self._future_since is not None
            and now - self._future_since >= self._config.retransmit_ms
        ):
            self._future_since = now
            self._request_blocks(self._future_sender)
        if (self._height, self._view) != self._retransmit_round:
            # A new height or view: retransmit soon, then back off again.
            self._retransmit_round = (self._height, self._view)
            self._retransmits = 0
            self._next_retransmit = min(self._next_retransmit, now + self._config.retransmit_ms)
        if now >= self._next_retransmit:
            doublings = min(self._retransmits + 1, MAX_RETRANSMIT_DOUBLINGS)
            self._retransmits += 1
            self._next_retransmit = now + (self._config.retransmit_ms << doublings)
            self._retransmit()
        if now >= self._next_sync:
            self._next_sync = now + self._config.sync_interval_ms
            peers = self._peers()
            if peers:
                self._sync_round += 1
                self._send_request(peers[self._sync_round % len(peers)])

    def _retransmit(self) -> None:
        """Send this height's messages again (the transport may have lost them). A proposal
        (PROPOSE, NEW_VIEW) goes only to the peers that have not voted in this view yet: a peer
        that voted has it, and a block of thousands of transactions is the costliest message."""
        voted = self._prepares.get(self._view, {})
        for kind, sends in list(self._outbox.items()):
            if kind in (PROPOSE, NEW_VIEW):
                sends = [
                    Send(to, send.message)
                    for send in sends
                    for to in ([send.to] if send.to is not None else self._peers())
                    if to not in voted
                ]
            self._emit(sends)

    def _on_timeout(self) -> None:
        if not self._in_view_change:
            self._start_view_change(self._view + 1)
        elif len(self._view_changes.get(self._view, {})) >= self._quorum:
            self._start_view_change(self._view + 1)
        else:
            # Too few validators asked for this view yet: wait (the view-change is retransmitted).
            self._deadline = self._now + self._timeout(self._view)

    # -- catch-up ----------------------------------------------------------------------------

    def _send_request(self, to: int | None) -> None:
        body = {"kind": BLOCK_REQUEST, "chain": self._config.chain_id, "from_height": self._height}
        self._emit([Send(to, self._sign(body))])

    def _request_blocks(self, to: int | None) -> None:
        last = self._last_request
        if last is not None and self._now - last < self._config.retransmit_ms:
            return
        self._last_request = self._now
        self._send_request(to)

    def _serve_stale(self, peer: int, height: int) -> None:
        # A message for a height we committed: the peer is stuck there, unless we committed it a
        # moment ago and its messages are merely late.
        recently = self._now - self._last_commit_ms < self._config.retransmit_ms
        if height < self._height - 1 or not recently:
            self._serve(peer, height)

    def _serve(self, peer: int, from_height: int) -> None:
        if not 1 <= from_height <= self.height:
            return
        last = self._last_served.get(peer)
        if last is not None and self._now - last < self._config.retransmit_ms:
            return
        blocks = self._committed(
            from_height, min(self.height, from_height + self._config.max_blocks_per_response - 1)
        )
        if not blocks:
            return
        self._last_served[peer] = self._now
        body = {
            "kind": BLOCK_RESPONSE,
            "chain": self._config.chain_id,
            "tip": self.height,
            "blocks": [
                {"proposal": self._app.encode(block), "certificate": certificate.to_json()}
                for block, certificate in blocks
            ],
        }
        self._emit([Send(peer, self._sign(body))])

    def _committed(self, first: int, last: int) -> list[tuple[P, Certificate]]:
        """Committed blocks ``first..last`` (stopping at the first one missing): from the window
        of recent blocks, and below it from the host's history."""
        oldest = self._recent[0][0].height if self._recent else self._height
        blocks: list[tuple[P, Certificate]] = []
        if first < oldest and self._history is not None:
            for block, certificate in self._history(first, min(last, oldest - 1)):
                if block.height != first + len(blocks) or certificate.block_hash != block.hash:
                    break  # a host's history that skips or strays is cut there
                blocks.append((block, certificate))
        start = first + len(blocks)
        if start >= oldest:  # no gap between what the history gave and the window
            blocks.extend(pair for pair in self._recent if start <= pair[0].height <= last)
        return blocks

    def _valid_certificate(self, certificate: Certificate) -> bool:
        data = commit_bytes(self._config.chain_id, certificate.height, certificate.block_hash)
        signers = {
            signer
            for signer, signature in certificate.signatures
            if self._verified_signature(signer, data, signature)
        }
        return len(signers) >= self._quorum

    def _on_block_response(self, sender: int, body: Mapping[str, Any]) -> None:
        tip = _int(body, "tip")
        blocks = body["blocks"]
        if not isinstance(blocks, list):
            return
        for item in blocks:
            if not isinstance(item, Mapping) or set(item) != {"proposal", "certificate"}:
                return
            certificate = Certificate.from_json(item["certificate"])
            proposal = self._decode(item["proposal"])
            if proposal is None:
                return
            if proposal.height < self._height:
                continue
            if (
                not self._links(proposal)
                or certificate.height != proposal.height
                or certificate.block_hash != proposal.hash
                or not self._valid_certificate(certificate)
            ):
                return
            self._commit(proposal, certificate)
        if tip >= self._height:
            self._last_request = self._now
            self._send_request(sender)


def _highest(certificates: Sequence[PreparedCertificate | None]) -> PreparedCertificate | None:
    """The prepared certificate a NEW-VIEW must re-propose: highest view, ties by block hash."""
    present = [c for c in certificates if c is not None]
    if not present:
        return None
    return max(present, key=lambda c: (c.view, c.block_hash))
