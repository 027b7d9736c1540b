"""Reads of grants and of the orders retailers placed, each scoped by who asks.

A household sees the grants it gave (its retailers) and the orders retailers placed for it; a
retailer (an account of the retailer role) sees the grants given to it (its customers) and the
orders it placed. Nobody else sees any.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from gridplatform.accounts.models import Identity, Role, User
from market.selectors import address_of
from retail.models import Grant, RetailOrder


def _address(user: User, role: object = Role.HOUSEHOLD) -> str:
    """The address of ``user`` if it has ``role``, or a value no row has."""
    if not user.is_authenticated or user.role != role:
        return "-"
    return address_of(user) or "-"


def grant_list(*, user: User) -> QuerySet[Grant]:
    """The grants the household gave, active ones first."""
    return Grant.objects.filter(household=_address(user)).order_by(
        "revoked_height", "retailer", "carrier"
    )


def customer_list(*, user: User) -> QuerySet[Grant]:
    """The active grants given to the retailer: its customers and their limits."""
    return Grant.objects.filter(retailer=_address(user, Role.RETAILER), revoked_height__isnull=True)


def placed_orders(*, user: User) -> QuerySet[RetailOrder]:
    """The orders the retailer placed for its customers, newest first."""
    return RetailOrder.objects.select_related("order").filter(
        placed_by=_address(user, Role.RETAILER)
    )


def placed_for_me(*, user: User) -> QuerySet[RetailOrder]:
    """The orders retailers placed for the household, newest first."""
    return RetailOrder.objects.select_related("order").filter(household=_address(user))


@dataclass(frozen=True)
class Party:
    """An account as a grant's other side sees it: its name and email on this site (the
    household chose this retailer, and a retailer needs to know its customers)."""

    address: str
    name: str
    email: str

    @property
    def label(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.address


def parties(*, addresses: list[str]) -> dict[str, Party]:
    """The site's names of ``addresses`` (those on this site); an address alone otherwise."""
    rows = Identity.objects.filter(address__in=set(addresses)).values_list(
        "address", "user__name", "user__email"
    )
    known = {address: Party(address, name, email) for address, name, email in rows}
    return {a: known.get(a, Party(a, "", "")) for a in addresses}
