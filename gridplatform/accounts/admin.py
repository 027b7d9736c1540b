from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from gridplatform.accounts.models import Identity, User


class IdentityInline(admin.StackedInline):
    model = Identity
    can_delete = False
    fields = ("address", "public_key", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        # Identities are made by the account services, with a freshly generated key.
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("name",)
    list_display = ("name", "email", "role", "household_kind", "is_active")
    list_filter = ("role", "household_kind", "is_active")
    search_fields = ("name", "email", "identity__address")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Account", {"fields": ("name", "role", "household_kind")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
    )
    inlines = [IdentityInline]

    def has_add_permission(self, request: object) -> bool:
        # An account is born with its Ed25519 identity, made by `manage.py create_account`
        # (or by registration, for households); a bare admin form would skip that.
        return False

    def get_readonly_fields(self, request: object, obj: User | None = None) -> tuple[str, ...]:
        # Roles decide who may sign what on the ledger; they are set by the services only.
        return ("role", "household_kind") if obj else ()
