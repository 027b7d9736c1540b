"""Reads of the ledger's read models, each scoped by who asks.

Committed blocks, transactions with their signed bodies and inclusion proofs, the validators
and state proofs are public, to anonymous readers too (that is what a ledger is for: anyone can
audit it). Two things are not:

* an account's balance, shown only to its owner, the grid operator and the regulators; anyone
  else gets ``None`` for it;
* personal data named by ``settings.LEDGER_PRIVATE_DATA`` (meter readings): the ``body`` of a
  private transaction's payload is replaced by its SHA-256 (``body_sha256``), and a private
  state key's value by ``None`` (``value_redacted``), for everyone the provider does not allow.

See docs/ledger.md, "The public ledger".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from gridplatform.accounts.models import Identity, Role, User
from ledger import blocks, config, replica
from ledger.crypto import (
    MAX_SAFE_INTEGER,
    Transaction,
    canonical,
    inclusion_proof_hex,
    is_lower_hex,
)
from ledger.identity import ADDRESS_HEX_LENGTH, IdentityError, validate_address
from ledger.models import (
    BlockRecord,
    LedgerAccount,
    SubmittedTransaction,
    TransactionRecord,
    ValidatorStatus,
)

# A validator is "up" when the site heard from it within this long (it beats every 2 s).
VALIDATOR_UP_WITHIN = timedelta(seconds=10)
BALANCE_WATCHERS = (Role.GRID_OPERATOR, Role.REGULATOR)

PENDING = "pending"
COMMITTED = "committed"
FAILED = "failed"


@dataclass(frozen=True)
class TransactionStatus:
    """A transaction as ``transaction_status`` shows it. ``chain``, ``payload`` and ``signature``
    complete its signed body (``payload`` as the reader may see it: ``redacted`` when its
    private part was replaced by a hash)."""

    id: str
    status: str
    type: str
    sender: str
    nonce: int
    height: int | None = None
    position: int | None = None
    result: str | None = None
    proof: dict[str, Any] | None = None
    chain: str = ""
    payload: dict[str, Any] | None = None
    signature: str = ""
    redacted: bool = False


@dataclass(frozen=True)
class AccountView:
    address: str
    public_key: str
    role: str
    nonce: int
    balance: int | None


@dataclass(frozen=True)
class ValidatorView:
    index: int
    height: int | None
    view: int | None
    last_commit_at: datetime | None
    last_seen_at: datetime | None
    up: bool
    public_key: str | None = None  # from the genesis document; None without one
    # The newest projected block whose commit certificate it signed, and that block's time.
    signed_height: int | None = None
    signed_at: datetime | None = None
    history: SigningHistory | None = None  # the newest HISTORY_BLOCKS blocks, oldest first


# --- private data: who may see what (settings.LEDGER_PRIVATE_DATA) ----------------------------


class Privacy:
    """What of the ledger one reader may see, per ``settings.LEDGER_PRIVATE_DATA``.

    The setting names a callable ``(user, *, meter_id) -> bool``; its module names the private
    transaction types (``PRIVATE_TX_TYPES``: type -> the payload field naming the meter; the
    payload's ``body`` is private) and the private state key prefixes
    (``PRIVATE_STATE_PREFIXES``: each followed by the meter's id). Read at call time: the
    ledger may not import the application that owns the data. Answers are remembered for the
    life of this object (one request), so a block of many readings asks once per meter.
    """

    def __init__(self, user: Any) -> None:
        self.user = user
        path = getattr(settings, "LEDGER_PRIVATE_DATA", "")
        self._may_see: Callable[..., bool] | None = None
        self._tx_types: Mapping[str, str] = {}
        self._prefixes: tuple[str, ...] = ()
        if path:
            module = path.rpartition(".")[0]
            self._may_see = import_string(path)
            self._tx_types = import_string(f"{module}.PRIVATE_TX_TYPES")
            self._prefixes = tuple(import_string(f"{module}.PRIVATE_STATE_PREFIXES"))
        self._seen: dict[str, bool] = {}

    def may_see(self, meter_id: object) -> bool:
        if self._may_see is None:
            return True
        if not isinstance(meter_id, str):  # a malformed payload: no owner, only the watchers
            meter_id = ""
        if meter_id not in self._seen:
            user = self.user
            allowed = user is not None and self._may_see(user, meter_id=meter_id)
            self._seen[meter_id] = bool(allowed)
        return self._seen[meter_id]

    def transaction_json(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A transaction's JSON as this reader may see it, and whether it was redacted: the
        payload's ``body`` of a private type becomes ``body_sha256``, the SHA-256 hex of its
        text (UTF-8; of its canonical JSON if it is not a string)."""
        field = self._tx_types.get(body.get("type", ""))
        payload = body.get("payload")
        if field is None or not isinstance(payload, dict) or "body" not in payload:
            return body, False
        if self.may_see(payload.get(field)):
            return body, False
        private = payload["body"]
        text = private.encode("utf-8") if isinstance(private, str) else canonical(private)
        public = {name: value for name, value in payload.items() if name != "body"}
        public["body_sha256"] = hashlib.sha256(text).hexdigest()
        return {**body, "payload": public}, True

    def may_see_key(self, key: str) -> bool:
        for prefix in self._prefixes:
            if key.startswith(prefix):
                return self.may_see(key[len(prefix) :].partition("/")[0])
        return True


def _transaction_ids(record: BlockRecord) -> list[str]:
    return [Transaction.from_json(item).id for item in record.body["transactions"]]


def transaction_status(*, tx_id: str, user: Any = None) -> TransactionStatus:
    """A transaction's status: committed or failed (in a block, with its Merkle proof), pending
    (admitted by the site, not yet in a block), or Http404; with its signed body as ``user``
    may see it (``Privacy``; ``None``: as the public sees it)."""
    if not isinstance(tx_id, str) or not is_lower_hex(tx_id, 64):
        raise Http404("No such transaction.")
    privacy = Privacy(user)
    record = TransactionRecord.objects.select_related("block").filter(tx_id=tx_id).first()
    if record is not None:
        ids = _transaction_ids(record.block)
        proof = {
            "root": record.block.tx_root,
            "index": record.position,
            "tree_size": len(ids),
            "path": inclusion_proof_hex(ids, record.position),
        }
        shown, redacted = privacy.transaction_json(record.body)
        return TransactionStatus(
            id=record.tx_id,
            status=COMMITTED if record.succeeded else FAILED,
            type=record.type,
            sender=record.sender,
            nonce=record.nonce,
            height=record.block.height,
            position=record.position,
            result=record.result,
            proof=proof,
            chain=shown["chain"],
            payload=shown["payload"],
            signature=shown["signature"],
            redacted=redacted,
        )
    pending = SubmittedTransaction.objects.filter(tx_id=tx_id).first()
    if pending is None:
        raise Http404("No such transaction.")
    shown, redacted = privacy.transaction_json(pending.body)
    return TransactionStatus(
        id=pending.tx_id,
        status=PENDING,
        type=pending.body["type"],
        sender=pending.sender,
        nonce=pending.nonce,
        chain=shown["chain"],
        payload=shown["payload"],
        signature=shown["signature"],
        redacted=redacted,
    )


# What the explorer's search takes: a height, a transaction id or its first characters (at
# least SEARCH_PREFIX_MIN), a block hash, or an address.
SEARCH_PREFIX_MIN = 8
SEARCH_RESULTS = 20
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SearchResult:
    """Where a search leads: one page (``url``), or a list of transactions to choose from
    (``transactions``), or nothing (``message`` says why)."""

    url: str = ""
    transactions: tuple[TransactionRecord, ...] = ()
    message: str = ""


def ledger_search(*, text: str) -> SearchResult:
    """The page a search of the explorer names (public: ids and heights only, no payload)."""
    query = text.strip().lower()
    if not query or not _HEX.fullmatch(query):
        return SearchResult(
            message="Search by block height, transaction id (or its first 8 characters), block "
            "hash or address: digits, or the letters a to f and digits."
        )
    if len(query) == ADDRESS_HEX_LENGTH:
        try:
            validate_address(query)
        except IdentityError as error:
            return SearchResult(message=f"{query} is not an address: {error}.")
        return SearchResult(url=reverse("ledger-address", args=[query]))
    if query.isdigit() and len(query) <= 18:  # a height; longer digits may be an id
        height = int(query)
        if BlockRecord.objects.filter(height=height).exists():
            return SearchResult(url=reverse("ledger-block", args=[height]))
        newest = BlockRecord.objects.order_by("-height").values_list("height", flat=True).first()
        return SearchResult(message=f"There is no block {height} yet; the newest is {newest}.")
    if len(query) == 64:
        if BlockRecord.objects.filter(hash=query).exists():
            height = BlockRecord.objects.get(hash=query).height
            return SearchResult(url=reverse("ledger-block", args=[height]))
        if SubmittedTransaction.objects.filter(tx_id=query).exists():
            return SearchResult(url=reverse("ledger-transaction", args=[query]))
    if len(query) < SEARCH_PREFIX_MIN:
        return SearchResult(
            message=f"Give at least {SEARCH_PREFIX_MIN} characters of a transaction id."
        )
    found = tuple(
        TransactionRecord.objects.filter(tx_id__startswith=query).order_by("-block_id", "position")[
            :SEARCH_RESULTS
        ]
    )
    if len(found) == 1:
        return SearchResult(url=reverse("ledger-transaction", args=[found[0].tx_id]))
    if not found:
        return SearchResult(message=f"No committed transaction or block matches {query}.")
    return SearchResult(transactions=found)


def address_transactions(*, address: str) -> QuerySet[TransactionRecord]:
    """The committed transactions an address sent or that name it (as the account registered,
    assigned, restricted or reinstated, or as a top-up's or a transfer's recipient), newest
    first."""
    named = Q(sender=address) | Q(body__payload__to=address) | Q(body__payload__address=address)
    return (
        TransactionRecord.objects.filter(named)
        .select_related("block")
        .order_by("-block_id", "-position")
    )


def block_list() -> QuerySet[BlockRecord]:
    """Every projected block, newest first."""
    return BlockRecord.objects.order_by("-height")


def access_block(*, height: int) -> BlockRecord:
    if not 0 <= height <= MAX_SAFE_INTEGER:
        raise Http404("No such block.")
    try:
        record: BlockRecord = BlockRecord.objects.get(height=height)
    except BlockRecord.DoesNotExist:
        raise Http404("No such block.") from None
    return record


def block_events(record: BlockRecord) -> list[dict[str, Any]]:
    """The block's events, as recorded (``{"tx", "type", "data"}``; public: events carry no
    personal data, docs/ledger.md "Events")."""
    events: list[dict[str, Any]] = record.body.get("events", [])
    return events


def event_proof(*, height: int, index: int) -> dict[str, Any]:
    """Event ``index`` of the block at ``height`` with its inclusion proof against the block's
    ``events_root``, and the header and certificate that make that root final."""
    record = access_block(height=height)
    events = block_events(record)
    if not 0 <= index < len(events):
        raise Http404("No such event.")
    header = record.body["header"]
    return {
        "height": record.height,
        "index": index,
        "event": events[index],
        "proof": {
            "root": header["events_root"],
            "index": index,
            "tree_size": len(events),
            "path": blocks.event_proof(events, index),
        },
        "header": header,
        "block_hash": record.hash,
        "certificate": record.body["certificate"],
    }


def block_transactions(record: BlockRecord, *, user: Any = None) -> list[dict[str, Any]]:
    """The block's transactions as the API lists them: id, the signed body (chain, type,
    sender, nonce, payload, signature) as ``user`` may see it (``Privacy``; ``None``: as the
    public sees it), ``redacted``, and the result."""
    body = record.body
    privacy = Privacy(user)
    listed = []
    for item, result in zip(body["transactions"], body["results"], strict=True):
        tx = Transaction.from_json(item)
        shown, redacted = privacy.transaction_json(item)
        listed.append(
            {
                "id": tx.id,
                "chain": tx.chain,
                "type": tx.type,
                "sender": tx.sender,
                "nonce": tx.nonce,
                "payload": shown["payload"],
                "signature": tx.signature,
                "redacted": redacted,
                "result": result,
            }
        )
    return listed


def balance_visible(*, user: User, address: str) -> bool:
    """Whether ``user`` may see the balance at ``address``: its owner, the grid operator and
    the regulators."""
    if not user.is_authenticated:
        return False
    if user.role in BALANCE_WATCHERS:
        return True
    owns: bool = Identity.objects.filter(user=user, address=address).exists()
    return owns


def access_ledger_account(*, user: User, address: str) -> AccountView:
    """The ledger account at ``address`` as ``user`` may see it, or Http404.

    Its public key, role and nonce are public; its balance is None unless ``balance_visible``.
    """
    if not isinstance(address, str) or not is_lower_hex(address, 50):
        raise Http404("No such account.")
    try:
        account = LedgerAccount.objects.get(address=address)
    except LedgerAccount.DoesNotExist:
        raise Http404("No such account.") from None
    shown = balance_visible(user=user, address=address)
    return AccountView(
        address=account.address,
        public_key=account.public_key,
        role=account.role,
        nonce=account.nonce,
        balance=account.balance if shown else None,
    )


# How many of the newest projected blocks make each validator's signing history
# (validator_list): the query reads this many certificates, however long the chain.
HISTORY_BLOCKS = 60


@dataclass(frozen=True)
class BlockMark:
    """One committed block as a validator's history shows it."""

    height: int
    at: datetime  # the block's time
    proposer: int  # the validator that proposed it
    signed: bool  # this validator's commit vote is in the block's certificate


@dataclass(frozen=True)
class Gap:
    """Consecutive blocks whose certificates lack a validator's vote: it was down, or its vote
    came after the quorum that committed the block."""

    first: int  # heights
    last: int
    since: datetime  # the time of its first block
    until: datetime | None  # the time of the next block the validator signed; None: not yet

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class SigningHistory:
    """Which of the newest projected blocks a validator signed, oldest first."""

    validator: int
    marks: tuple[BlockMark, ...]
    gaps: tuple[Gap, ...]  # oldest first

    @property
    def blocks(self) -> int:
        return len(self.marks)

    @property
    def signed(self) -> int:
        return sum(1 for mark in self.marks if mark.signed)

    @property
    def proposed(self) -> int:
        return sum(1 for mark in self.marks if mark.proposer == self.validator)

    @property
    def first(self) -> int | None:
        return self.marks[0].height if self.marks else None

    @property
    def last(self) -> int | None:
        return self.marks[-1].height if self.marks else None

    @property
    def last_gap(self) -> Gap | None:
        """When it was last seen down (``since``) and up again (``until``)."""
        return self.gaps[-1] if self.gaps else None

    # The strip's marks, compactly, for the page's script to draw (static/js/signing.js): a
    # table re-read every few seconds stays small however many blocks it shows.

    @property
    def signed_code(self) -> str:
        """One character per mark, oldest first: 1 signed, 0 not in the certificate."""
        return "".join("1" if mark.signed else "0" for mark in self.marks)

    @property
    def proposers_code(self) -> str:
        """Each mark's proposer, comma-separated."""
        return ",".join(str(mark.proposer) for mark in self.marks)

    @property
    def heights_code(self) -> str:
        """The marks' heights as runs, ``first-last`` comma-separated (heights may skip)."""
        runs: list[list[int]] = []
        for mark in self.marks:
            if runs and runs[-1][1] == mark.height - 1:
                runs[-1][1] = mark.height
            else:
                runs.append([mark.height, mark.height])
        return ",".join(f"{first}-{last}" for first, last in runs)


def _gaps(marks: list[BlockMark]) -> tuple[Gap, ...]:
    """The runs of unsigned marks, a run broken where heights skip (a block the site has not
    projected is not one the validator is known to have missed)."""
    runs: list[list[int]] = []  # positions in ``marks``
    for position, mark in enumerate(marks):
        if mark.signed:
            continue
        if runs and runs[-1][-1] == position - 1 and marks[position - 1].height == mark.height - 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    gaps = []
    for run in runs:
        after = (mark for mark in marks[run[-1] + 1 :] if mark.signed)
        back = next(after, None)
        first, last = marks[run[0]], marks[run[-1]]
        gaps.append(Gap(first.height, last.height, first.at, back.at if back else None))
    return tuple(gaps)


def signing_histories(
    indices: list[int], *, blocks: int = HISTORY_BLOCKS
) -> dict[int, SigningHistory]:
    """For each validator of ``indices``, which of the newest ``blocks`` projected blocks (after
    genesis, which the document decides and no vote) carry its commit vote in their certificate:
    judged from the commits alone, in one query that reads the certificates only."""
    rows = list(
        BlockRecord.objects.filter(height__gt=0)
        .order_by("-height")
        .values_list("height", "timestamp", "proposer", "body__certificate")[:blocks]
    )
    rows.reverse()  # oldest first
    signers = [{int(vote["validator"]) for vote in certificate or []} for *_, certificate in rows]
    histories = {}
    for index in indices:
        marks = [
            BlockMark(height=height, at=at, proposer=proposer, signed=index in voted)
            for (height, at, proposer, _), voted in zip(rows, signers, strict=True)
        ]
        histories[index] = SigningHistory(validator=index, marks=tuple(marks), gaps=_gaps(marks))
    return histories


def validator_list(*, now: datetime | None = None) -> list[ValidatorView]:
    """Every validator of the genesis document with its public key (or every one the site heard
    of, without a document), with what the site last heard from it, the newest block it signed
    and its signing history over the newest HISTORY_BLOCKS blocks. ``up`` when either was within
    VALIDATOR_UP_WITHIN: a validator that signs the blocks the chain commits is up, whether or
    not its heartbeat has arrived (a console opened just after a restart of the site used to show
    every validator down while the chain committed)."""
    now = now or timezone.now()
    statuses = {status.index: status for status in ValidatorStatus.objects.all()}
    genesis = config.load_genesis()
    keys = list(genesis.validators) if genesis is not None else []
    indices = list(range(len(keys)) if genesis is not None else sorted(statuses))
    histories = signing_histories(indices)
    views = []
    for index in indices:
        status = statuses.get(index)
        history = histories[index]
        newest = next((mark for mark in reversed(history.marks) if mark.signed), None)
        signing = newest is not None and now - newest.at <= VALIDATOR_UP_WITHIN
        seen = status.last_seen_at if status is not None else None
        views.append(
            ValidatorView(
                index=index,
                height=status.height if status is not None else None,
                view=status.view if status is not None else None,
                last_commit_at=status.last_commit_at if status is not None else None,
                last_seen_at=seen,
                up=signing or (seen is not None and now - seen <= VALIDATOR_UP_WITHIN),
                public_key=keys[index] if index < len(keys) else None,
                signed_height=newest.height if newest is not None else None,
                signed_at=newest.at if newest is not None else None,
                history=history,
            )
        )
    return views


# --- state proofs ------------------------------------------------------------------------------

MAX_PROOF_KEYS = 16


def state_proofs(*, keys: list[str], user: Any = None) -> dict[str, Any]:
    """Each key's value (None: absent) and its trie proof (``ledger.trie``) against the state root
    of the newest projected block, with that block's header and commit certificate, so that
    the reader can check everything itself: the proof against ``header.state_root``, the
    header's hash, and the validators' signatures over it (docs/ledger.md, "State proofs").

    A private key's value (``Privacy``) is None with ``value_redacted`` for a ``user`` who may
    not see it (``None``: as the public sees it); its proof is given all the same, and its leaf
    still holds the value's hash.

    Raises ReplicaUnavailable (503, ``ledger_unavailable``) while no block is projected.
    """
    privacy = Privacy(user)
    # Asked before the replica is read: the provider queries the database.
    visible = {key: privacy.may_see_key(key) for key in keys}

    def prove(height: int, state: Any) -> tuple[int, list[dict[str, Any]]]:
        entries = []
        for key in keys:
            value = state.get(key)
            withheld = value is not None and not visible[key]
            entries.append(
                {
                    "key": key,
                    "present": value is not None,
                    "value": None if withheld else value,
                    "value_redacted": withheld,
                    "proof": state.prove(key),
                }
            )
        return height, entries

    height, entries = replica.read(prove)
    record = BlockRecord.objects.get(height=height)
    return {
        "height": height,
        "block_hash": record.hash,
        "header": record.body["header"],
        "certificate": record.body["certificate"],
        "entries": entries,
    }
