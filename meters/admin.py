from __future__ import annotations

from django.contrib import admin

from meters.models import Meter, MeterToken, Reading, ReadingBatch


@admin.register(Meter)
class MeterAdmin(admin.ModelAdmin):
    """Meters are registered by their household or the grid operator (the token is shown to
    them, once); here they can be looked at and switched off (``active``)."""

    list_display = ("meter_id", "owner", "kind", "feeder", "interval_s", "active", "created_at")
    list_filter = ("kind", "active")
    search_fields = ("meter_id", "owner__email", "public_key", "feeder")
    readonly_fields = (
        "meter_id",
        "owner",
        "kind",
        "public_key",
        "feeder",
        "interval_s",
        "created_at",
        "registered_by",
    )

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(MeterToken)
class MeterTokenAdmin(admin.ModelAdmin):
    list_display = ("meter", "prefix", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("meter__meter_id", "prefix")
    readonly_fields = ("meter", "prefix", "created_at", "revoked_at")
    exclude = ("digest",)

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


class _ReadOnly(admin.ModelAdmin):
    """Readings and their batches are history: looked at, never added, changed or deleted."""

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(ReadingBatch)
class ReadingBatchAdmin(_ReadOnly):
    list_display = ("id", "meter", "received_at", "signed_t", "accepted", "duplicates")
    search_fields = ("meter__meter_id",)
    exclude = ("body",)


@admin.register(Reading)
class ReadingAdmin(_ReadOnly):
    list_display = ("meter", "start", "duration_s", "import_wh", "export_wh", "quality")
    list_filter = ("quality",)
    search_fields = ("meter__meter_id",)
    show_full_result_count = False
