"""Supervision's read models in Django's admin, read-only: they change only by projecting
blocks (a notification's read flag only by its household); and the consoles' acknowledgements
of alerts, read-only too (made only on the consoles and the API, append-only)."""

from __future__ import annotations

from django.contrib import admin

from ledger.admin import ReadOnlyAdmin
from supervision.models import (
    AlertAcknowledgement,
    Feeder,
    FeederLoad,
    GridDeclaration,
    Notification,
    Restriction,
    ReviewItem,
    SupervisoryAct,
    Suspension,
)


@admin.register(Feeder)
class FeederAdmin(ReadOnlyAdmin):
    list_display = ("name", "export_limit_w", "import_limit_w", "state", "published_height")
    list_filter = ("state",)


@admin.register(GridDeclaration)
class GridDeclarationAdmin(ReadOnlyAdmin):
    list_display = ("scope", "state", "reason", "since")


@admin.register(FeederLoad)
class FeederLoadAdmin(ReadOnlyAdmin):
    list_display = ("slot", "feeder", "export_wh", "import_wh")
    list_filter = ("feeder",)


@admin.register(Suspension)
class SuspensionAdmin(ReadOnlyAdmin):
    list_display = ("scope", "reason", "until", "since", "by")


@admin.register(Restriction)
class RestrictionAdmin(ReadOnlyAdmin):
    list_display = ("address", "reason", "since", "by")
    search_fields = ("address",)


@admin.register(SupervisoryAct)
class SupervisoryActAdmin(ReadOnlyAdmin):
    list_display = ("tx", "type", "actor", "reason", "height", "at")
    list_filter = ("type",)
    search_fields = ("tx", "actor", "contract", "address")


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = ("contract", "status", "flagged_height", "decided_by")
    list_filter = ("status",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("address", "act", "read", "created_at")
    list_filter = ("read",)
    search_fields = ("address", "act")


@admin.register(AlertAcknowledgement)
class AlertAcknowledgementAdmin(ReadOnlyAdmin):
    list_display = ("key", "desk", "fingerprint", "by", "at")
    list_filter = ("desk",)
    search_fields = ("key",)
