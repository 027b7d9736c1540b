"""Reads of accounts, each scoped by who asks."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
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


ACCOUNTS_PER_PAGE = 50


def account_page(*, user: User, search: str = "", page: int | str | None = 1) -> Page[User]:
    """One page (``ACCOUNTS_PER_PAGE``) of ``account_list``, those matching ``search`` (name,
    email, or the start of the address), by role and name: searched and paged in the database,
    so a page costs the same for 30 accounts as for 10,000."""
    accounts = account_list(user=user)
    text = search.strip()
    if text:
        accounts = accounts.filter(
            Q(name__icontains=text)
            | Q(email__icontains=text)
            | Q(identity__address__startswith=text.lower())
        )
    return Paginator(accounts, ACCOUNTS_PER_PAGE).get_page(page)


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
