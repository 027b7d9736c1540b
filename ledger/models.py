"""The site's read models of the ledger: projections of committed blocks, in the site database.

Validators never read these and the site never writes a validator's store. Every row here (but
``SubmittedTransaction`` and ``ValidatorStatus``) is a function of the committed chain: written by
``ledger.projection`` from commit notifications, and rebuilt from a validator's store by
``manage.py rebuild_read_models``. Natural keys (height, transaction id, address, state key) are
the primary keys, so that a rebuild gives exactly the rows the live projection gave.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

HEX64 = r"^[0-9a-f]{64}$"
ADDRESS = r"^[0-9a-f]{50}$"


class BlockRecord(models.Model):
    """A committed block. ``body`` is the whole block as JSON, with its certificate.

    Block 0 projected from the genesis document alone (when no validator's copy of it was at
    hand) has ``proposer_signature`` null and an empty certificate: the document determines it.
    """

    height = models.BigIntegerField(primary_key=True)
    hash = models.CharField(max_length=64, unique=True)
    previous_hash = models.CharField(max_length=64)
    timestamp = models.DateTimeField(help_text="Block time (UTC), from the header's timestamp_ms.")
    proposer = models.PositiveSmallIntegerField()
    tx_count = models.PositiveIntegerField()
    state_root = models.CharField(max_length=64)
    tx_root = models.CharField(max_length=64)
    body = models.JSONField()

    class Meta:
        ordering = ["-height"]
        constraints = [
            models.CheckConstraint(
                name="block_height_non_negative", condition=models.Q(height__gte=0)
            ),
            models.CheckConstraint(name="block_hash_is_hex", condition=models.Q(hash__regex=HEX64)),
        ]

    def __str__(self) -> str:
        return f"block {self.height} {self.hash[:12]}"


class TransactionRecord(models.Model):
    """Where a transaction was committed, and its result (``ok`` or an error code).

    One row per transaction id, at its first inclusion: a transaction id does not cover the
    signature, so a faulty proposer could include one twice (the second is refused
    ``bad_nonce``); like the validators' index, the first inclusion is the one that counts.
    """

    tx_id = models.CharField(max_length=64, primary_key=True)
    block = models.ForeignKey(BlockRecord, on_delete=models.CASCADE, related_name="transactions")
    position = models.PositiveIntegerField()
    type = models.CharField(max_length=64)
    sender = models.CharField(max_length=50, db_index=True)
    nonce = models.BigIntegerField()
    result = models.CharField(max_length=64)
    body = models.JSONField()

    class Meta:
        ordering = ["block_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["block", "position"], name="tx_block_position_unique"),
            models.CheckConstraint(name="tx_nonce_non_negative", condition=models.Q(nonce__gte=0)),
            models.CheckConstraint(name="tx_id_is_hex", condition=models.Q(tx_id__regex=HEX64)),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.tx_id[:12]} ({self.result})"

    @property
    def succeeded(self) -> bool:
        return bool(self.result == "ok")


class LedgerAccount(models.Model):
    """An account on the ledger as of the last projected block (state keys acct/ and bal/)."""

    address = models.CharField(max_length=50, primary_key=True)
    public_key = models.CharField(max_length=64)
    role = models.CharField(max_length=32)
    nonce = models.BigIntegerField(default=0)
    balance = models.BigIntegerField(default=0, help_text="Credits, in integer minor units.")

    class Meta:
        ordering = ["address"]
        constraints = [
            models.CheckConstraint(
                name="ledger_balance_non_negative", condition=models.Q(balance__gte=0)
            ),
            models.CheckConstraint(
                name="ledger_nonce_non_negative", condition=models.Q(nonce__gte=0)
            ),
            models.CheckConstraint(
                name="ledger_address_is_hex", condition=models.Q(address__regex=ADDRESS)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.role})"


class StateEntry(models.Model):
    """The site's own replica of the ledger state: one row per state key, after the last
    projected block. The projection executes each block on it and checks the state root."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.JSONField()

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "state entries"

    def __str__(self) -> str:
        return str(self.key)


class SubmittedTransaction(models.Model):
    """A transaction the site admitted and sent to the validators, not yet seen in a block.

    The row goes when the transaction is projected as committed, when a committed block used up
    its nonce, or when it has waited longer than ``LEDGER_PENDING_TIMEOUT_S`` (see
    ``ledger.services.transaction_admit``). (sender, nonce) is unique: two pending transactions
    can never share a nonce.
    """

    tx_id = models.CharField(max_length=64, unique=True)
    sender = models.CharField(max_length=50)
    nonce = models.BigIntegerField()
    body = models.JSONField()
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="submitted_transactions",
    )
    submitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["submitted_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["sender", "nonce"], name="pending_sender_nonce_unique"),
            models.CheckConstraint(
                name="pending_nonce_non_negative", condition=models.Q(nonce__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"pending {self.tx_id[:12]}"


class PendingBlock(models.Model):
    """A notified block for a height beyond the next one, kept until the gap before it fills.

    Not verified yet (that needs the block before it): candidates that fail verification when
    their turn comes are dropped.
    """

    height = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    body = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["height", "received_at"]
        constraints = [
            models.UniqueConstraint(fields=["height", "hash"], name="pending_block_unique"),
        ]

    def __str__(self) -> str:
        return f"pending block {self.height} {self.hash[:12]}"


class ProjectionCursor(models.Model):
    """A single row (pk 1): the height of the last projected block, and the projection's lock.

    Every projection takes ``select_for_update`` on it first, so that two site workers never
    project at once (a fixed lock order: this row, then accounts, then pending transactions).
    """

    height = models.BigIntegerField(default=-1)

    class Meta:
        constraints = [
            models.CheckConstraint(name="projection_singleton", condition=models.Q(pk=1)),
        ]

    def __str__(self) -> str:
        return f"projected through height {self.height}"


class ValidatorStatus(models.Model):
    """What the site last heard from validator ``index`` (its heartbeat and commits)."""

    index = models.PositiveSmallIntegerField(primary_key=True)
    height = models.BigIntegerField(default=0)
    view = models.BigIntegerField(default=0)
    last_commit_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["index"]
        verbose_name_plural = "validator statuses"
        constraints = [
            models.CheckConstraint(
                name="validator_height_non_negative", condition=models.Q(height__gte=0)
            ),
            models.CheckConstraint(
                name="validator_view_non_negative", condition=models.Q(view__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"validator {self.index}"


class ReadModelAudit(models.Model):
    """One run of the read-model audit (``ledger.read_model_audit``): every read model compared
    with the committed state at ``height``. Append-only: a run is never changed, the next one
    is a new row; the grid operator's console shows the latest.

    ``differences`` holds the first ``read_model_audit.STORED`` of them, each
    ``{"model", "row", "field", "chain", "site", "height"}``; ``difference_count`` all of them.
    """

    ran_at = models.DateTimeField(default=timezone.now, db_index=True)
    height = models.BigIntegerField(help_text="The projected height the read models were at.")
    difference_count = models.PositiveIntegerField()
    differences = models.JSONField(default=list)

    class Meta:
        ordering = ["-ran_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="read_model_audit_height_non_negative", condition=models.Q(height__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"read-model audit at height {self.height}: {self.difference_count} differences"
