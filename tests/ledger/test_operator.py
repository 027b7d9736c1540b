"""The grid operator enrols households on the ledger and tops up their credits from its console.

Real signed transactions through the site's admission (``SubmittedTransaction``), then real
certified blocks projected into the read models, as the validators would commit them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from gridplatform.money import MoneyError, minor_from_text, text_from_minor
from ledger import services
from ledger.crypto import Transaction
from ledger.models import BlockRecord, LedgerAccount, SubmittedTransaction
from market.chain.options import Options
from market.chain.pricing import buyer_margin
from tests.ledger.chains import OPERATOR, build_chain
from tests.ledger.site import Site, give_issuer_key, use_network

pytestmark = pytest.mark.django_db
CONSOLE = "/console/operator/"


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User) -> Site:
    give_issuer_key(grid_operator)  # the chain's issuer key becomes the operator's
    chain = build_chain(1, 1)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def pending(sent: dict[str, Any]) -> Transaction:
    row = SubmittedTransaction.objects.get()
    assert row.body["type"] == sent["type"]
    assert row.body["payload"] == sent["payload"]
    return Transaction.from_json(row.body)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_operator_enrols_a_household_and_tops_it_up(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    address = prosumer.identity.address
    client = client_for(grid_operator)
    page = client.get(CONSOLE).content.decode()
    assert f'data-household="{prosumer.pk}"' in page
    assert "Waiting for approval" in page

    response = client.post(f"{CONSOLE}households/{prosumer.pk}/enrol/", follow=True)
    assert "is being registered on the ledger" in response.content.decode()
    registration = pending(
        {
            "type": "account.register",
            "payload": {
                "address": address,
                "public_key": prosumer.identity.public_key,
                "role": "household",
            },
        }
    )
    # Asked twice before the block commits: refused, nothing more sent.
    again = client.post(f"{CONSOLE}households/{prosumer.pk}/enrol/", follow=True)
    assert "on the ledger already" in again.content.decode()
    assert SubmittedTransaction.objects.count() == 1

    site.commit([registration])
    assert not SubmittedTransaction.objects.exists()
    assert LedgerAccount.objects.get(address=address).balance == 0

    # The amount is shown back first; only its confirmation sends anything.
    asked = client.post(f"{CONSOLE}households/{prosumer.pk}/top-up/", {"amount": "25.50"})
    page = asked.content.decode()
    assert "Confirm the top-up of €25.50" in page
    assert '<dd data-testid="given-24h">€0.00</dd>' in page
    assert not SubmittedTransaction.objects.exists()
    response = client.post(
        f"{CONSOLE}households/{prosumer.pk}/top-up/",
        {"amount": "25.50", "confirm": "yes"},
        follow=True,
    )
    assert "Top-up of €25.50" in response.content.decode()
    top_up = pending({"type": "credit.issue", "payload": {"to": address, "amount": 2550}})
    site.commit([top_up])
    assert LedgerAccount.objects.get(address=address).balance == 2550
    rows = client.get(f"{CONSOLE}households/rows/").content.decode()
    assert "€25.50" in rows
    assert "On the ledger, no feeder yet" in rows

    # It bids for energy: the console shows the margin locked and what is left free.
    options = Options()
    now = site.blocks[-1].timestamp_ms
    slot = (now + options.gate_closure_ms) // options.slot_ms * options.slot_ms + options.slot_ms
    keys = identity_unseal(identity_=prosumer.identity)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="f1")])
    bid = site.sign(keys, "market.order.place", slot=slot, side="buy", energy_wh=1_000, price=900)
    assert list(site.commit([bid]).results) == ["ok"]
    margin = buyer_margin(1_000, 900, options.network_fee)
    rows = client.get(f"{CONSOLE}households/rows/").content.decode()
    assert f"<td>{text_from_minor(margin)}</td>" in rows
    assert f"<td>{text_from_minor(2550 - margin)}</td>" in rows


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Enter an amount such as 12.50."),
        ("ten", "Enter an amount such as 12.50."),
        ("-5", "Enter an amount of zero or more."),
        ("1.005", "whole cents"),
        ("0", "positive number of cents"),
        ("1e20", "too large"),
    ],
)
def test_a_bad_top_up_says_why_and_sends_nothing(
    site: Site, grid_operator: User, prosumer: User, amount: str, message: str
) -> None:
    site.register(prosumer.identity.address, prosumer.identity.public_key)
    response = client_for(grid_operator).post(
        f"{CONSOLE}households/{prosumer.pk}/top-up/", {"amount": amount}, follow=True
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


def test_a_household_not_on_the_ledger_cannot_be_topped_up(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    with pytest.raises(services.TransactionRejected) as refused:
        services.credits_top_up(operator=grid_operator, household=prosumer, amount=100)
    assert refused.value.code == "unknown_account"
    assert not SubmittedTransaction.objects.exists()


def test_only_the_grid_operator_enrols_and_tops_up(
    site: Site, regulator: User, prosumer: User, consumer: User, admin: User
) -> None:
    site.register(prosumer.identity.address, prosumer.identity.public_key)
    for who in (regulator, consumer, prosumer):
        client = client_for(who)
        assert client.post(f"{CONSOLE}households/{consumer.pk}/enrol/").status_code == 403
        top_up = client.post(f"{CONSOLE}households/{prosumer.pk}/top-up/", {"amount": "5"})
        assert top_up.status_code == 403
        assert client.get(f"{CONSOLE}households/rows/").status_code == 403
    # An admin sees the console but holds no issuer key: the ledger work is the operator's.
    assert client_for(admin).post(f"{CONSOLE}households/{consumer.pk}/enrol/").status_code == 403
    for who in (regulator, prosumer):
        with pytest.raises(services.TransactionRejected) as refused:
            services.household_enrol(operator=who, household=consumer)
        assert refused.value.code == "not_allowed"
    assert not SubmittedTransaction.objects.exists()


def test_the_operator_cannot_enrol_or_top_up_a_non_household(
    site: Site, grid_operator: User, regulator: User
) -> None:
    client = client_for(grid_operator)
    assert client.post(f"{CONSOLE}households/{regulator.pk}/enrol/").status_code == 404
    assert client.post(f"{CONSOLE}households/999999/top-up/", {"amount": "1"}).status_code == 404
    assert client.get(f"{CONSOLE}households/{regulator.pk}/enrol/").status_code == 405
    assert not SubmittedTransaction.objects.exists()


@pytest.mark.parametrize(
    ("text", "minor"), [("12.5", 1250), ("0.01", 1), (" 7 ", 700), ("1000000", 100_000_000)]
)
def test_amounts_people_type_become_exact_minor_units(text: str, minor: int) -> None:
    assert minor_from_text(text) == minor


@pytest.mark.parametrize("text", ["", "abc", "NaN", "Infinity", "-0.01", "0.001", "9" * 20])
def test_it_refuses_amounts_it_would_have_to_round(text: str) -> None:
    with pytest.raises(MoneyError):
        minor_from_text(text)


def test_it_writes_minor_units_as_money() -> None:
    assert [text_from_minor(n) for n in (0, 5, 1250, 123456789, -5)] == [
        "€0.00",
        "€0.05",
        "€12.50",
        "€1,234,567.89",
        "-€0.05",
    ]


@pytest.mark.parametrize("confirm", ["", "yes"])
def test_a_top_up_past_a_limit_is_refused_at_either_step(
    site: Site, grid_operator: User, prosumer: User, settings: Any, confirm: str
) -> None:
    settings.TOP_UP_LIMIT_MINOR = 10_000
    site.register(prosumer.identity.address, prosumer.identity.public_key)
    client = client_for(grid_operator)
    url = f"{CONSOLE}households/{prosumer.pk}/top-up/"
    response = client.post(url, {"amount": "1000000", "confirm": confirm}, follow=True)
    assert "A top-up is at most €100.00 (TOP_UP_LIMIT_MINOR); €1,000,000.00 is more" in (
        response.content.decode()
    )
    assert not SubmittedTransaction.objects.exists()


def test_top_ups_to_one_household_are_limited_per_24_hours(
    site: Site, grid_operator: User, prosumer: User, consumer: User, settings: Any
) -> None:
    """Committed and pending top-ups both count, a day's worth only, per household."""
    settings.TOP_UP_DAILY_LIMIT_MINOR = 30_000
    for household in (prosumer, consumer):
        site.register(household.identity.address, household.identity.public_key)
    first = services.credits_top_up(operator=grid_operator, household=prosumer, amount=20_000)
    site.commit([first])
    # The test chain's blocks are dated 2026-01-01; a live network's are dated now.
    BlockRecord.objects.update(timestamp=timezone.now() - timedelta(hours=1))
    services.credits_top_up(operator=grid_operator, household=prosumer, amount=5_000)  # pending
    with pytest.raises(services.TransactionRejected) as refused:
        services.credits_top_up(operator=grid_operator, household=prosumer, amount=5_001)
    assert refused.value.code == "top_up_daily_limit"
    assert "was given €250.00 in the last 24 hours" in refused.value.message
    page = client_for(grid_operator).post(
        f"{CONSOLE}households/{prosumer.pk}/top-up/", {"amount": "50.00"}
    )
    assert '<dd data-testid="given-24h">€250.00</dd>' in page.content.decode()
    services.credits_top_up(operator=grid_operator, household=consumer, amount=30_000)
    # A day later the committed one no longer counts.
    BlockRecord.objects.update(timestamp=timezone.now() - timedelta(hours=25))
    services.credits_top_up(operator=grid_operator, household=prosumer, amount=20_000)
    assert SubmittedTransaction.objects.filter(body__type="credit.issue").count() == 3
