from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from gridplatform.accounts.models import ApiToken, Identity, User


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


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made on the settings page (the admin never sees one); here they can only be
    looked at. Revoking is the holder's, on the settings page."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__email")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("digest",)

    def has_add_permission(self, request: object) -> bool:
        return False
