"""Reads of the ledger's read models, each scoped by who asks.

Committed blocks and transactions are public to every authenticated account (that is what a
ledger is for: anyone can audit it). An account's balance is shown only to its owner, the grid
operator and the regulators; anyone else gets ``None`` for it (docs/ledger.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from gridplatform.accounts.models import Identity, Role, User
from ledger import config, replica
from ledger.crypto import MAX_SAFE_INTEGER, Transaction, inclusion_proof_hex, is_lower_hex
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
    id: str
    status: str
    type: str
    sender: str
    nonce: int
    height: int | None = None
    position: int | None = None
    result: str | None = None
    proof: dict[str, Any] | None = None


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


def _transaction_ids(record: BlockRecord) -> list[str]:
    return [Transaction.from_json(item).id for item in record.body["transactions"]]


def transaction_status(*, tx_id: str) -> TransactionStatus:
    """A transaction's status: committed or failed (in a block, with its Merkle proof), pending
    (admitted by the site, not yet in a block), or Http404."""
    if not isinstance(tx_id, str) or not is_lower_hex(tx_id, 64):
        raise Http404("No such transaction.")
    record = TransactionRecord.objects.select_related("block").filter(tx_id=tx_id).first()
    if record is not None:
        ids = _transaction_ids(record.block)
        proof = {
            "root": record.block.tx_root,
            "index": record.position,
            "tree_size": len(ids),
            "path": inclusion_proof_hex(ids, record.position),
        }
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
        )
    pending = SubmittedTransaction.objects.filter(tx_id=tx_id).first()
    if pending is None:
        raise Http404("No such transaction.")
    return TransactionStatus(
        id=pending.tx_id,
        status=PENDING,
        type=pending.body["type"],
        sender=pending.sender,
        nonce=pending.nonce,
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


def block_transactions(record: BlockRecord) -> list[dict[str, Any]]:
    """The block's transactions as the API lists them: id, type, sender, nonce, result."""
    body = record.body
    listed = []
    for item, result in zip(body["transactions"], body["results"], strict=True):
        tx = Transaction.from_json(item)
        listed.append(
            {"id": tx.id, "type": tx.type, "sender": tx.sender, "nonce": tx.nonce, "result": result}
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


def validator_list(*, now: datetime | None = None) -> list[ValidatorView]:
    """Every validator of the genesis document (or every one the site heard of, without one),
    with what the site last heard from it; ``up`` when that was within VALIDATOR_UP_WITHIN."""
    now = now or timezone.now()
    statuses = {status.index: status for status in ValidatorStatus.objects.all()}
    genesis = config.load_genesis()
    indices = range(len(genesis.validators)) if genesis is not None else sorted(statuses)
    views = []
    for index in indices:
        status = statuses.get(index)
        if status is None:
            views.append(ValidatorView(index, None, None, None, None, up=False))
            continue
        seen = status.last_seen_at
        views.append(
            ValidatorView(
                index=index,
                height=status.height,
                view=status.view,
                last_commit_at=status.last_commit_at,
                last_seen_at=seen,
                up=seen is not None and now - seen <= VALIDATOR_UP_WITHIN,
            )
        )
    return views


@dataclass(frozen=True)
class HouseholdOnLedger:
    user: User
    address: str
    registered: bool
    balance: int | None


def household_ledger_list(*, user: User) -> list[HouseholdOnLedger]:
    """Every household with its ledger address, whether it is registered there and its balance;
    for the grid operator (and admins) only, empty for anyone else."""
    if not user.is_authenticated or user.role not in (Role.GRID_OPERATOR, Role.ADMIN):
        return []
    households = (
        User.objects.filter(role=Role.HOUSEHOLD, identity__isnull=False)
        .select_related("identity")
        .order_by("name", "id")
    )
    addresses = [h.identity.address for h in households]
    balances = dict(
        LedgerAccount.objects.filter(address__in=addresses).values_list("address", "balance")
    )
    return [
        HouseholdOnLedger(
            user=h,
            address=h.identity.address,
            registered=h.identity.address in balances,
            balance=balances.get(h.identity.address),
        )
        for h in households
    ]


# --- state proofs ------------------------------------------------------------------------------

MAX_PROOF_KEYS = 16


def state_proofs(*, keys: list[str]) -> dict[str, Any]:
    """Each key's value (None: absent) and its trie proof (``ledger.trie``) against the state root
    of the newest projected block, with that block's header and commit certificate, so that
    the reader can check everything itself: the proof against ``header.state_root``, the
    header's hash, and the validators' signatures over it (docs/ledger.md, "State proofs").

    Raises ReplicaUnavailable (503, ``ledger_unavailable``) while no block is projected.
    """

    def prove(height: int, state: Any) -> tuple[int, list[dict[str, Any]]]:
        entries = []
        for key in keys:
            value = state.get(key)
            entries.append(
                {
                    "key": key,
                    "present": value is not None,
                    "value": value,
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
