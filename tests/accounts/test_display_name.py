"""A household chooses how its trading counterparties see it: a display name, or none ("a
neighbour on <its feeder>"); contracts are named short ("#3" of their slot) and linked."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from gridplatform.accounts.models import User
from market.models import MarketAccount
from market.selectors import neighbour_labels
from market.templatetags.market_format import contract_number

pytestmark = pytest.mark.django_db


def test_a_household_sets_and_clears_the_name_its_counterparties_see(
    prosumer: User, consumer: User, client: Client
) -> None:
    ada, ben = prosumer.identity.address, consumer.identity.address
    MarketAccount.objects.create(address=ada, feeder="feeder-north")
    assert neighbour_labels(addresses=[ada, ben]) == {
        ada: "a neighbour on feeder-north",
        ben: "a neighbour",
    }
    client.force_login(prosumer)
    page = client.post(
        reverse("display-name-set"), {"name": "  Ada   from No. 7 "}, follow=True
    ).content.decode()
    assert "Your counterparties see you as “Ada from No. 7”." in page
    assert 'data-testid="shown-as">“Ada from No. 7”<' in page
    assert neighbour_labels(addresses=[ada])[ada] == "Ada from No. 7 (a neighbour on feeder-north)"

    client.post(reverse("display-name-set"), {"name": ""})
    prosumer.refresh_from_db()
    assert prosumer.display_name == ""
    assert neighbour_labels(addresses=[ada])[ada] == "a neighbour on feeder-north"


@pytest.mark.parametrize(
    ("name", "message"),
    [("x" * 41, "at most 40 characters"), ("Ada\u0000", "letters, digits")],
)
def test_a_bad_display_name_is_refused_and_changes_nothing(
    prosumer: User, client: Client, name: str, message: str
) -> None:
    client.force_login(prosumer)
    page = client.post(reverse("display-name-set"), {"name": name}, follow=True).content.decode()
    assert message in page
    prosumer.refresh_from_db()
    assert prosumer.display_name == ""


def test_contracts_are_named_short_within_their_slot() -> None:
    assert contract_number("1767229200000-0") == "#1"
    assert contract_number("1767229200000-12") == "#13"
    assert contract_number("not-a-contract") == "—"
    assert contract_number(None) == "—"
