"""Self-custody: a household takes over its own signing key (docs/accounts.md). The platform
signs one last ``key.rotate`` with the key it held, deletes that key once the rotation commits,
shows the new key, and from then on says plainly that this account signs for itself; the
household's own signed transactions are admitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import Identity, User
from ledger.crypto import sign_transaction
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from tests.factories import UserFactory
from tests.ledger.chains import CHAIN, OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network

pytestmark = pytest.mark.django_db
KEY_API = "/api/v1/ledger/key"


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User, prosumer: User) -> Site:
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=10_000)
    return site


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_household_takes_over_its_key_and_then_signs_for_itself(
    site: Site, prosumer: User
) -> None:
    client = client_for(prosumer)
    old = prosumer.identity.public_key
    own = KeyPair.generate()
    page = client.get("/accounts/settings/key/").content.decode()
    assert "This platform, encrypted at rest" in page

    # Refusals first: nothing is sent.
    for body, code in (
        ({"public_key": "zz"}, "bad_public_key"),
        ({"public_key": own.public_key_hex.upper()}, "bad_public_key"),
        ({"public_key": old}, "same_key"),
        ({}, "bad_public_key"),
    ):
        response = client.post(KEY_API, body, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (400, code), body
    other = UserFactory(email="other@test.example")
    taken = client.post(
        KEY_API, {"public_key": other.identity.public_key}, content_type="application/json"
    )
    assert taken.json()["code"] == "key_taken"
    not_on_ledger = client_for(other).post(
        KEY_API, {"public_key": own.public_key_hex}, content_type="application/json"
    )
    assert not_on_ledger.json()["code"] == "unknown_account"
    assert not SubmittedTransaction.objects.exists()

    response = client.post(
        KEY_API, {"public_key": own.public_key_hex}, content_type="application/json"
    )
    assert response.status_code == 202
    [pending] = SubmittedTransaction.objects.all()
    assert pending.body["type"] == "key.rotate"
    assert pending.body["payload"] == {"public_key": own.public_key_hex}
    assert "Your key takes over with the next block" in (
        client.get("/accounts/settings/key/").content.decode()
    )

    commit_pending(site)
    identity = Identity.objects.get(user=prosumer)
    assert identity.public_key == own.public_key_hex
    assert identity.sealed_private_key is None  # the platform can no longer sign for it
    page = client.get("/accounts/settings/key/").content.decode()
    assert "You. The platform holds no key that can sign for you" in page
    market = client.get("/market/").content.decode()
    assert 'data-testid="signs-for-itself"' in market

    # An order from the pages: refused in plain words, nothing sent.
    slot = client.get("/api/v1/market/slots").json()[2]["start"]
    refused = client.post(
        "/api/v1/orders",
        {"slot": slot, "side": "buy", "energy_wh": 100, "price": 20},
        content_type="application/json",
    )
    assert refused.json()["code"] == "not_custodial"
    assert "signs for itself" in refused.json()["message"]
    # Its own signed transaction, sent through the API: admitted.
    address = identity.address
    nonce = site.state.get(f"acct/{address}")["nonce"]
    mine = sign_transaction(
        keypair=own,
        chain=CHAIN,
        type="credit.transfer",
        nonce=nonce,
        payload={"to": OPERATOR.address, "amount": 1},
        sender=address,
    )
    admitted = client.post(
        "/api/v1/ledger/transactions", mine.to_json(), content_type="application/json"
    )
    assert admitted.status_code == 202, admitted.json()
    # Asking again once it holds its own key.
    again = client.post(
        KEY_API, {"public_key": KeyPair.generate().public_key_hex}, content_type="application/json"
    )
    assert again.json()["code"] == "not_custodial"
