"""Reads of accounts, each scoped by who asks."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from gridplatform.accounts.models import ApiToken, User


def account_list(*, user: User) -> QuerySet[User]:
    """Every account for the grid operator, regulators and admins; a household sees itself.
    A registration whose email link was not opened yet is no account of anyone's."""
    accounts = (
        User.objects.filter(email_confirmed=True)
        .select_related("identity")
        .order_by("role", "name", "id")
    )
    if user.is_authenticated and user.watches_accounts:
        return accounts
    if user.is_authenticated:
        return accounts.filter(pk=user.pk)
    return accounts.none()


def access_account(*, user: User, id: int) -> User:
    """The account ``id`` if ``user`` may see it; 404 otherwise (not 403: no existence leak)."""
    try:
        return account_list(user=user).get(pk=id)
    except User.DoesNotExist:
        raise Http404("No such account.") from None


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    """``user``'s own API tokens, newest first, revoked ones included (marked as such)."""
    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
