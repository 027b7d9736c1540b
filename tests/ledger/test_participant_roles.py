"""Storage providers and retailers on the site: the grid operator opens their accounts from its
console (a signed ``account.register`` with the role, committed in a real block), each lands on
its own pages, and the pages of other roles stay closed to it.

Real signed transactions through the site's admission, then real certified blocks projected into
the read models, as the validators would commit them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from gridplatform.accounts.models import Role, User
from ledger.models import LedgerAccount, SubmittedTransaction
from supervision.errors import MESSAGES
from tests.factories import UserFactory
from tests.ledger.chains import build_chain
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network

pytestmark = pytest.mark.django_db
CONSOLE = "/console/operator/"
REGISTER = "/console/operator/participants/register/"


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User) -> Site:
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def register(client: Client, **fields: str) -> str:
    data = {"name": "Sol Energy", "email": "sol@test.example", "role": "retailer"} | fields
    response = client.post(REGISTER, data, follow=True)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("role", "home", "ledger_role"),
    [
        ("retailer", "/retail/customers/", "retailer"),
        ("storage_provider", "/market/", "storage_provider"),
    ],
)
def test_the_operator_opens_an_account_with_its_role_from_the_console(
    site: Site, grid_operator: User, role: str, home: str, ledger_role: str
) -> None:
    client = client_for(grid_operator)
    assert "Register a storage provider or a retailer" in client.get(CONSOLE).content.decode()
    page = register(client, role=role)
    assert "is being registered on the ledger" in page
    user = User.objects.get(email="sol@test.example")
    assert (user.role, user.has_usable_password(), user.household_kind) == (role, False, "")
    (row,) = SubmittedTransaction.objects.all()
    assert row.body["type"] == "account.register"
    assert row.body["payload"] == {
        "address": user.identity.address,
        "public_key": user.identity.public_key,
        "role": ledger_role,
    }
    block = commit_pending(site)
    assert list(block.results) == ["ok"]
    assert LedgerAccount.objects.get(address=user.identity.address).role == ledger_role
    assert "Forgot your password?" in mail.outbox[-1].body
    assert client_for(user).get("/")["Location"] == home


def test_the_console_refuses_other_roles_and_a_taken_email(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    client = client_for(grid_operator)
    assert MESSAGES["bad_participant_role"] in register(client, role="household")
    assert MESSAGES["bad_participant_role"] in register(client, role="regulator")
    assert MESSAGES["bad_name"] in register(client, name=" ")
    assert MESSAGES["bad_email"] in register(client, email="not an email")
    assert MESSAGES["email_taken"] in register(client, email=prosumer.email)
    assert not SubmittedTransaction.objects.exists()
    # Only the grid operator opens accounts.
    assert client_for(prosumer).post(REGISTER, {"role": "retailer"}).status_code == 403


def test_each_role_opens_its_own_pages_only(site: Site) -> None:
    store = client_for(UserFactory(role=Role.STORAGE_PROVIDER))
    seller = client_for(UserFactory(role=Role.RETAILER))
    household = client_for(UserFactory())
    for path in ("/market/", "/flexibility/", "/meters/", "/market/statements/"):
        assert store.get(path).status_code == 200, path
    for path in ("/retail/", "/retail/customers/", "/market/bill/"):
        assert store.get(path).status_code == 403, path
    assert seller.get("/retail/customers/").status_code == 200
    assert seller.get("/retail/")["Location"] == "/retail/customers/"
    for path in ("/flexibility/", "/meters/", "/market/statements/"):
        assert seller.get(path).status_code == 403, path
    assert household.get("/retail/customers/").status_code == 403
    assert household.get("/retail/").status_code == 200
