"""The read models in Django's admin, read-only: they change only by projecting blocks."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from ledger.models import BlockRecord, LedgerAccount, SubmittedTransaction, TransactionRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(BlockRecord)
class BlockRecordAdmin(ReadOnlyAdmin):
    list_display = ("height", "hash", "timestamp", "proposer", "tx_count")
    search_fields = ("hash",)


@admin.register(TransactionRecord)
class TransactionRecordAdmin(ReadOnlyAdmin):
    list_display = ("tx_id", "block", "position", "type", "sender", "result")
    list_filter = ("type", "result")
    search_fields = ("tx_id", "sender")


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("address", "role", "nonce", "balance")
    list_filter = ("role",)
    search_fields = ("address", "public_key")


@admin.register(SubmittedTransaction)
class SubmittedTransactionAdmin(ReadOnlyAdmin):
    list_display = ("tx_id", "sender", "nonce", "submitted_by", "submitted_at")
    search_fields = ("tx_id", "sender")
