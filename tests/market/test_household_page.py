"""The operator console's households table at the size of a real community: searched,
filtered, sorted and paged in the database (``market.selectors.household_page``)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from gridplatform.accounts.models import HouseholdKind, User
from ledger.models import LedgerAccount, StateEntry
from market.models import MarketAccount
from market.selectors import HOUSEHOLDS_PER_PAGE
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CONSOLE = "/console/operator/"
ROWS = "/console/operator/households/rows/"


@pytest.fixture
def community(grid_operator: User) -> list[User]:
    """60 households: every third waits for approval; the rest are on the ledger, on feeder
    north or south, with balances 100 x their number."""
    households = [
        UserFactory(name=f"Household {n:02d}", email=f"h{n:02d}@test.example") for n in range(60)
    ]
    for n, household in enumerate(households):
        if n % 3:
            address = household.identity.address
            LedgerAccount.objects.create(address=address, public_key="0" * 64, balance=100 * n)
            feeder = "feeder-north" if n % 2 else "feeder-south"
            MarketAccount.objects.create(address=address, feeder=feeder)
    return households


def rows(client: Client, **query: str) -> list[str]:
    """The names on one page of the households rows, in order."""
    page = client.get(ROWS, query).content.decode()
    return re.findall(r"<td><a href=\"/console/households/\d+/\">(Household \d\d)</a>", page)


def operator(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_pages_the_households_in_the_database(
    community: list[User], grid_operator: User
) -> None:
    client = operator(grid_operator)
    first = rows(client)
    assert len(first) == HOUSEHOLDS_PER_PAGE
    assert first[:2] == ["Household 00", "Household 01"]
    assert rows(client, page="2") == [f"Household {n}" for n in range(50, 60)]
    console = client.get(CONSOLE).content.decode()
    assert "60 households; page 1 of 2." in console
    assert 'href="?page=2#households-heading">Next page</a>' in console
    assert "20 waiting" in console


def test_it_searches_filters_and_sorts(community: list[User], grid_operator: User) -> None:
    client = operator(grid_operator)
    assert rows(client, q="household 07") == ["Household 07"]
    address = community[11].identity.address
    assert rows(client, q=address[:12]) == ["Household 11"]
    waiting = rows(client, state="waiting")
    assert waiting == [f"Household {n:02d}" for n in range(0, 60, 3)]
    north = rows(client, feeder="feeder-north", state="trading")
    assert north == [f"Household {n:02d}" for n in range(60) if n % 3 and n % 2]
    richest = rows(client, sort="-balance", state="trading")
    assert richest[:3] == ["Household 59", "Household 58", "Household 56"]
    page = client.get(CONSOLE, {"q": "household 07", "state": "trading"}).content.decode()
    assert "1 household matches" in page
    # The live table re-fetches the same query.
    assert f'hx-get="{ROWS}?q=household+07&amp;state=trading"' in page
    assert "No household matches." in client.get(ROWS, {"q": "nobody"}).content.decode()


def test_it_filters_by_kind_and_by_unsettled_defaults(
    community: list[User], grid_operator: User
) -> None:
    for n in (4, 5):
        User.objects.filter(pk=community[n].pk).update(household_kind=HouseholdKind.STORAGE)
    # Defaults as the ledger keeps them, in the site's replica of its state: one unsettled,
    # one reset by a regulator (its history stays, its count is 0).
    for n, unsettled in ((7, 2), (8, 0)):
        address = community[n].identity.address
        record = {"unsettled": unsettled, "shortfalls": 2, "shortfall_wh": 900}
        StateEntry.objects.create(key=f"market/defaults/{address}", value=record)
    client = operator(grid_operator)
    assert rows(client, kind="storage") == ["Household 04", "Household 05"]
    assert rows(client, state="defaults") == ["Household 07"]
    assert rows(client, state="defaults", kind="storage") == []
    page = client.get(CONSOLE, {"kind": "storage"}).content.decode()
    assert '<option value="storage" selected>' in page
    assert "2 households match" in page


def test_only_the_grid_operator_and_admins_see_the_rows(
    community: list[User], prosumer: User, regulator: User
) -> None:
    for who in (prosumer, regulator):
        assert operator(who).get(ROWS).status_code == 403
