"""Blocks: the header and its hash, the proposer signature, the commit certificate.

No Django import; the wire format rules (canonical JSON, hex) are those of :mod:`ledger.crypto`.

Header
======

The block hash is the SHA-256, as 64 lowercase hex, of the canonical JSON of this object, with
exactly these keys::

    {
      "chain":           str, network id from genesis (same alphabet as a transaction's chain)
      "height":          int, 0 for genesis, then +1 per block
      "previous_hash":   hex, block hash of height - 1; "00" * 32 for genesis
      "timestamp_ms":    int, block time, milliseconds since 1970-01-01 UTC, strictly increasing
      "proposer":        int, index of the proposing validator in the validator list
      "tx_root":         hex, RFC 6962 Merkle root of the raw 32-byte transaction ids, in order
      "results_root":    hex, SHA-256 of the canonical JSON list of the results, in order
      "events_root":     hex, RFC 6962 Merkle root of the canonical JSON of each event, in order
      "signatures_root": hex, SHA-256 of the canonical JSON list of the transactions'
                         signatures (hex strings), in order
      "state_root":      hex, the application's state root after executing the block
    }

Integers are 0 .. 2**53 - 1. A *result* is ``"ok"`` or an error code (same alphabet as a
transaction type), one per transaction, saying whether and why it failed.

An *event* is what a transaction's handlers said happened (``ledger.application``:
``context.emit``), ``{"tx": int, "type": str, "data": object}``: ``tx`` is the index of its
transaction in the block, ``type`` a name like a transaction type (``market.contract_made``),
``data`` a JSON object. Events are listed in execution order (so ``tx`` never decreases), and
only a transaction whose result is ``"ok"`` has any. ``events_root`` is the Merkle tree hash of
RFC 6962 over the leaves ``canonical(event)`` (the leaf hash is ``SHA-256(0x00 || leaf)``, an
inner node ``SHA-256(0x01 || left || right)``, no event: ``SHA-256("")``), so that an event's
inclusion in a block is proven by an audit path, as a transaction's is (:func:`event_proof`).

``signatures_root`` exists because a transaction id does not cover the transaction's signature:
without it, a stored block whose signatures were damaged would keep its hash.

Block
=====

::

    {
      "header":             the header object above,
      "transactions":       [transaction objects, see ledger.crypto],
      "results":            [str, ...],
      "events":             [event objects, see above],
      "proposer_signature": hex, Ed25519 by the proposer over proposal_bytes(...)
      "certificate":        [{"validator": int, "signature": hex}, ...]
    }

Both signatures are over domain-separated canonical JSON, so that one kind of signature can never
be replayed as another (nor as a transaction, whose keys differ)::

    proposal_bytes = canonical({"kind": "proposal", "chain": c, "height": h, "block": hash})
    commit_vote_bytes = canonical({"kind": "commit", "chain": c, "height": h, "block": hash})

A certificate holds commit votes of distinct validators, each valid, at least a quorum of them:
more than two thirds of N validators, ``N - f`` with ``f = (N - 1) // 3``. That is ``2f + 1``
when ``N = 3f + 1``; for other N, ``2f + 1`` would let two quorums share only faulty
validators, so ``N - f`` is used.

:func:`verify_block` does not check the state root (that needs executing the block), nor the
transactions' signatures, nonces and permissions (they need the state's key registry), nor
which validator should have proposed at this height (that is consensus's business).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.crypto import (
    HASH_HEX_LENGTH,
    MAX_SAFE_INTEGER,
    SIGNATURE_HEX_LENGTH,
    LedgerCryptoError,
    MalformedTransaction,
    Transaction,
    audit_path,
    canonical,
    check_canonical,
    is_lower_hex,
    is_name,
    merkle_root,
    merkle_tree_hash,
)
from ledger.identity import BadSignature, KeyPair, verify

GENESIS_PREVIOUS_HASH = "00" * 32
HEADER_FIELDS = frozenset(
    {
        "chain",
        "height",
        "previous_hash",
        "timestamp_ms",
        "proposer",
        "tx_root",
        "results_root",
        "events_root",
        "signatures_root",
        "state_root",
    }
)
BLOCK_FIELDS = frozenset(
    {"header", "transactions", "results", "events", "proposer_signature", "certificate"}
)
EVENT_FIELDS = frozenset({"tx", "type", "data"})
VOTE_FIELDS = frozenset({"validator", "signature"})
RESULT_OK = "ok"


# --- errors ----------------------------------------------------------------------------------


class BlockError(LedgerCryptoError):
    """Base of every error this module raises."""


class InvalidValidatorSet(BlockError, ValueError):
    """The validator list is empty or names one key twice (a configuration error)."""


class MalformedBlock(BlockError):
    """Base of every reason a block object is not well-formed."""


class BlockFieldsMismatch(MalformedBlock):
    """A block, header or vote object lacks fields or has extra ones, or is not an object."""


class BlockFieldType(MalformedBlock):
    """A field has the wrong JSON type."""


class BlockFieldValue(MalformedBlock):
    """A field has the right type but a value out of its domain (bad hex, negative...)."""


class MalformedBlockTransaction(MalformedBlock):
    """A transaction in the block is malformed; the cause says why."""


class InvalidBlock(BlockError):
    """Base of every reason a well-formed block fails verification."""


class WrongChain(InvalidBlock):
    """The block belongs to another chain than its predecessor."""


class BadHeight(InvalidBlock):
    """The height is not the previous height + 1 (or 0 for genesis)."""


class BrokenLink(InvalidBlock):
    """previous_hash is not the hash of the previous header (or zeros for genesis)."""


class BadTimestamp(InvalidBlock):
    """The timestamp is not strictly later than the previous block's."""


class ForeignTransaction(InvalidBlock):
    """A transaction was signed for another chain."""


class BadTxRoot(InvalidBlock):
    """tx_root is not the Merkle root of the transaction ids."""


class BadResultsRoot(InvalidBlock):
    """results_root does not match the results."""


class ResultsCountMismatch(InvalidBlock):
    """There is not exactly one result per transaction."""


class BadEventsRoot(InvalidBlock):
    """events_root does not match the events."""


class MisplacedEvent(InvalidBlock):
    """An event names no transaction of the block, a failed one, or is out of order."""


class BadSignaturesRoot(InvalidBlock):
    """signatures_root does not match the transactions' signatures."""


class UnknownProposer(InvalidBlock):
    """The proposer index is not in the validator list."""


class BadProposerSignature(InvalidBlock):
    """The proposer signature does not verify under the proposer's key."""


class BadCertificate(InvalidBlock):
    """Base of every reason the commit certificate does not certify the block."""


class UnknownValidator(BadCertificate):
    """A vote names a validator index that is not in the validator list."""


class DuplicateVote(BadCertificate):
    """Two votes come from one validator."""


class BadCertificateSignature(BadCertificate):
    """A vote's signature does not verify under its validator's key."""


class InsufficientCertificate(BadCertificate):
    """Fewer valid votes than a quorum."""


# --- data ------------------------------------------------------------------------------------


def _check_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BlockFieldType(f"{name} must be a JSON integer")
    if not 0 <= value <= MAX_SAFE_INTEGER:
        raise BlockFieldValue(f"{name} must be between 0 and 2**53 - 1")


def _check_hex(name: str, value: object, length: int) -> None:
    if not isinstance(value, str):
        raise BlockFieldType(f"{name} must be a JSON string")
    if not is_lower_hex(value, length):
        raise BlockFieldValue(f"{name} must be {length} lowercase hex characters")


def _check_fields(what: str, obj: object, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BlockFieldsMismatch(f"{what} must be a JSON object")
    if obj.keys() != fields:
        missing = ", ".join(sorted(fields - obj.keys()))
        unexpected = ", ".join(sorted(repr(key) for key in obj.keys() - fields))
        raise BlockFieldsMismatch(f"{what}: missing [{missing}], unexpected [{unexpected}]")
    return obj


@dataclass(frozen=True)
class BlockHeader:
    """The hashed part of a block (see the module docstring). Construction validates the form."""

    chain: str
    height: int
    previous_hash: str
    timestamp_ms: int
    proposer: int
    tx_root: str
    results_root: str
    events_root: str
    signatures_root: str
    state_root: str

    def __post_init__(self) -> None:
        if not isinstance(self.chain, str):
            raise BlockFieldType("chain must be a JSON string")
        if not is_name(self.chain):
            raise BlockFieldValue("chain must be 1-64 characters of [a-z0-9._-]")
        for name in ("height", "timestamp_ms", "proposer"):
            _check_int(name, getattr(self, name))
        for name in (
            "previous_hash",
            "tx_root",
            "results_root",
            "events_root",
            "signatures_root",
            "state_root",
        ):
            _check_hex(name, getattr(self, name), HASH_HEX_LENGTH)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(HEADER_FIELDS)}

    @classmethod
    def from_json(cls, obj: object) -> BlockHeader:
        fields = _check_fields("header", obj, HEADER_FIELDS)
        return cls(**fields)


@dataclass(frozen=True)
class CommitSignature:
    """One validator's commit vote: its index and its signature over commit_vote_bytes."""

    validator: int
    signature: str

    def __post_init__(self) -> None:
        _check_int("validator", self.validator)
        _check_hex("signature", self.signature, SIGNATURE_HEX_LENGTH)

    def to_json(self) -> dict[str, Any]:
        return {"validator": self.validator, "signature": self.signature}


@dataclass(frozen=True)
class Block:
    """A header with its transactions, their results and events, and the signatures that make it
    final.

    Lists given for ``transactions``, ``results``, ``events`` and ``certificate`` are stored as
    tuples.
    """

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    results: tuple[str, ...]
    proposer_signature: str
    certificate: tuple[CommitSignature, ...] = field(default=())
    events: tuple[dict[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.header, BlockHeader):
            raise BlockFieldType("header must be a BlockHeader")
        for name, item_type in (
            ("transactions", Transaction),
            ("results", str),
            ("certificate", CommitSignature),
            ("events", dict),
        ):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise BlockFieldType(f"{name} must be a JSON array")
            if not all(isinstance(item, item_type) for item in value):
                raise BlockFieldType(f"every item of {name} must be a {item_type.__name__}")
            object.__setattr__(self, name, tuple(value))
        for result in self.results:
            if not is_name(result):
                raise BlockFieldValue(f'a result is "ok" or an error code, not {result!r}')
        for event in self.events:
            _check_event(event)
        _check_hex("proposer_signature", self.proposer_signature, SIGNATURE_HEX_LENGTH)

    @property
    def hash(self) -> str:
        return block_hash(self.header)

    # The consensus module treats a block as a proposal: these are what it reads.
    @property
    def height(self) -> int:
        return self.header.height

    @property
    def previous_hash(self) -> str:
        return self.header.previous_hash

    @property
    def timestamp_ms(self) -> int:
        return self.header.timestamp_ms


def _check_event(event: dict[str, Any]) -> None:
    _check_fields("event", event, EVENT_FIELDS)
    _check_int("an event's tx", event["tx"])
    if not isinstance(event["type"], str) or not is_name(event["type"]):
        raise BlockFieldValue("an event's type is a name like a transaction type")
    if not isinstance(event["data"], dict):
        raise BlockFieldType("an event's data is a JSON object")
    try:
        check_canonical(event["data"])
    except LedgerCryptoError as error:
        raise BlockFieldValue(f"an event's data is not canonical JSON: {error}") from None


# --- hashes and signing bytes ----------------------------------------------------------------


def block_hash(header: BlockHeader) -> str:
    """SHA-256 of the canonical JSON of the header object, as 64 lowercase hex."""
    return hashlib.sha256(canonical(header.to_json())).hexdigest()


def _vote_bytes(kind: str, chain: str, height: int, block_hash: str) -> bytes:
    return canonical({"kind": kind, "chain": chain, "height": height, "block": block_hash})


def proposal_bytes(chain: str, height: int, block_hash: str) -> bytes:
    """What the proposer signs: canonical JSON of {"kind": "proposal", chain, height, block}."""
    return _vote_bytes("proposal", chain, height, block_hash)


def commit_vote_bytes(chain: str, height: int, block_hash: str) -> bytes:
    """What a commit vote signs: canonical JSON of {"kind": "commit", chain, height, block}."""
    return _vote_bytes("commit", chain, height, block_hash)


def tx_root_of(transactions: Sequence[Transaction]) -> str:
    return merkle_root([tx.id_bytes for tx in transactions]).hex()


def results_root_of(results: Sequence[str]) -> str:
    return hashlib.sha256(canonical(list(results))).hexdigest()


def events_root_of(events: Sequence[Mapping[str, Any]]) -> str:
    """The RFC 6962 Merkle root of the events' canonical JSON, as hex."""
    return merkle_tree_hash([canonical(event) for event in events]).hex()


def event_proof(events: Sequence[Mapping[str, Any]], index: int) -> list[str]:
    """The audit path (hex, leaf side first) proving event ``index`` is under ``events_root``;
    check it with ``ledger.crypto.verify_inclusion(canonical(event), index, len(events), ...)``."""
    return [node.hex() for node in audit_path([canonical(event) for event in events], index)]


def signatures_root_of(transactions: Sequence[Transaction]) -> str:
    return hashlib.sha256(canonical([tx.signature for tx in transactions])).hexdigest()


def quorum(validator_count: int) -> int:
    """Votes needed out of N validators: N - f, f = (N - 1) // 3; that is 2f + 1 for N = 3f + 1."""
    return validator_count - (validator_count - 1) // 3


# --- building --------------------------------------------------------------------------------


def propose_block(
    *,
    keypair: KeyPair,
    chain: str,
    height: int,
    previous_hash: str,
    timestamp_ms: int,
    proposer: int,
    transactions: Sequence[Transaction],
    results: Sequence[str],
    state_root: str,
    events: Sequence[dict[str, Any]] = (),
) -> Block:
    """A block with its roots computed and signed by ``keypair`` as proposer; no certificate."""
    header = BlockHeader(
        chain=chain,
        height=height,
        previous_hash=previous_hash,
        timestamp_ms=timestamp_ms,
        proposer=proposer,
        tx_root=tx_root_of(transactions),
        results_root=results_root_of(results),
        events_root=events_root_of(events),
        signatures_root=signatures_root_of(transactions),
        state_root=state_root,
    )
    return Block(
        header=header,
        transactions=tuple(transactions),
        results=tuple(results),
        events=tuple(events),
        proposer_signature=keypair.sign(proposal_bytes(chain, height, block_hash(header))),
    )


def sign_commit(*, keypair: KeyPair, validator: int, header: BlockHeader) -> CommitSignature:
    """``keypair``'s commit vote, as validator number ``validator``, for the block of ``header``."""
    message = commit_vote_bytes(header.chain, header.height, block_hash(header))
    return CommitSignature(validator=validator, signature=keypair.sign(message))


# --- JSON ------------------------------------------------------------------------------------


def block_to_json(block: Block) -> dict[str, Any]:
    return {
        "header": block.header.to_json(),
        "transactions": [tx.to_json() for tx in block.transactions],
        "results": list(block.results),
        "events": list(block.events),
        "proposer_signature": block.proposer_signature,
        "certificate": [vote.to_json() for vote in block.certificate],
    }


def block_from_json(obj: object, *, known: Mapping[str, Transaction] | None = None) -> Block:
    """Parse a decoded JSON block strictly; ``block_to_json`` gives back the same object.

    ``known``: transactions already parsed, by signature; one whose JSON matches exactly
    (``Transaction.matches_json``) is reused instead of parsed again.
    """
    fields = _check_fields("block", obj, BLOCK_FIELDS)
    for name in ("transactions", "results", "events", "certificate"):
        if not isinstance(fields[name], list):
            raise BlockFieldType(f"{name} must be a JSON array")
    transactions = []
    for index, item in enumerate(fields["transactions"]):
        signature = item.get("signature") if known and isinstance(item, dict) else None
        seen = known.get(signature) if known and isinstance(signature, str) else None
        if seen is not None and seen.matches_json(item):
            transactions.append(seen)
            continue
        try:
            transactions.append(Transaction.from_json(item))
        except MalformedTransaction as error:
            raise MalformedBlockTransaction(f"transaction {index}: {error}") from error
    certificate = [
        CommitSignature(**_check_fields("vote", vote, VOTE_FIELDS))
        for vote in fields["certificate"]
    ]
    return Block(
        header=BlockHeader.from_json(fields["header"]),
        transactions=tuple(transactions),
        results=tuple(fields["results"]),
        events=tuple(fields["events"]),
        proposer_signature=fields["proposer_signature"],
        certificate=tuple(certificate),
    )


# --- verification ----------------------------------------------------------------------------


def verify_block(block: Block, *, validators: list[str], previous: BlockHeader | None) -> None:
    """Raise an InvalidBlock subclass unless ``block`` may follow ``previous``.

    ``validators`` are the public keys (hex) of the validator set, by index; ``previous`` is
    the header at height - 1, or None for genesis. Checks, in this order: chain, height, link,
    timestamp, every transaction's chain, tx_root, results_root, one result per transaction,
    events_root, the events' places, signatures_root, proposer and its signature, certificate.
    Not checked: see the module docstring (state root, transaction signatures, proposer
    rotation).
    """
    if not validators or len(set(validators)) != len(validators):
        raise InvalidValidatorSet("the validator set must be non-empty with distinct keys")
    header = block.header
    if previous is None:
        if header.height != 0:
            raise BadHeight("a block without predecessor must be genesis, height 0")
        if header.previous_hash != GENESIS_PREVIOUS_HASH:
            raise BrokenLink("genesis links to 64 zeros")
    else:
        if header.chain != previous.chain:
            raise WrongChain(f"block of chain {header.chain!r} after one of {previous.chain!r}")
        if header.height != previous.height + 1:
            raise BadHeight(f"height {header.height} after {previous.height}")
        if header.previous_hash != block_hash(previous):
            raise BrokenLink("previous_hash is not the hash of the previous header")
        if header.timestamp_ms <= previous.timestamp_ms:
            raise BadTimestamp("timestamp is not later than the previous block's")
    for index, tx in enumerate(block.transactions):
        if tx.chain != header.chain:
            raise ForeignTransaction(f"transaction {index} is for chain {tx.chain!r}")
    if header.tx_root != tx_root_of(block.transactions):
        raise BadTxRoot("tx_root is not the Merkle root of the transaction ids")
    if header.results_root != results_root_of(block.results):
        raise BadResultsRoot("results_root does not match the results")
    if len(block.results) != len(block.transactions):
        raise ResultsCountMismatch(
            f"{len(block.results)} results for {len(block.transactions)} transactions"
        )
    check_events(block)
    if header.signatures_root != signatures_root_of(block.transactions):
        raise BadSignaturesRoot("signatures_root does not match the transactions' signatures")

    hash_hex = block_hash(header)
    if header.proposer >= len(validators):
        raise UnknownProposer(f"no validator {header.proposer} among {len(validators)}")
    try:
        verify(
            validators[header.proposer],
            proposal_bytes(header.chain, header.height, hash_hex),
            block.proposer_signature,
        )
    except BadSignature:
        raise BadProposerSignature("proposer signature does not verify") from None

    verify_certificate(header, block.certificate, validators=validators)


def check_events(block: Block) -> None:
    """Raise BadEventsRoot or MisplacedEvent unless the block's events are those its header
    commits to, each of an ``"ok"`` transaction of the block, in order."""
    if block.header.events_root != events_root_of(block.events):
        raise BadEventsRoot("events_root does not match the events")
    last = 0
    for event in block.events:
        at = event["tx"]
        if at < last or at >= len(block.results) or block.results[at] != RESULT_OK:
            raise MisplacedEvent(f"an event of transaction {at} out of place")
        last = at


def verify_certificate(
    header: BlockHeader, certificate: Sequence[CommitSignature], *, validators: Sequence[str]
) -> None:
    """Raise an InvalidBlock subclass unless ``certificate`` holds commit votes of a quorum of
    ``validators`` (public keys by index) for the block of ``header``."""
    hash_hex = block_hash(header)
    # Every vote must be valid and from a distinct validator, not just a quorum of them: a
    # stored certificate with a damaged or doubled vote is damaged, even when enough remain.
    message = commit_vote_bytes(header.chain, header.height, hash_hex)
    seen: set[int] = set()
    for vote in certificate:
        if vote.validator >= len(validators):
            raise UnknownValidator(f"no validator {vote.validator} among {len(validators)}")
        if vote.validator in seen:
            raise DuplicateVote(f"validator {vote.validator} votes twice")
        seen.add(vote.validator)
        try:
            verify(validators[vote.validator], message, vote.signature)
        except BadSignature:
            raise BadCertificateSignature(
                f"vote of validator {vote.validator} does not verify"
            ) from None
    needed = quorum(len(validators))
    if len(seen) < needed:
        raise InsufficientCertificate(
            f"{len(seen)} commit votes; {needed} of {len(validators)} needed"
        )
