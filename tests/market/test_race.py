"""A hundred buyers race for one 10 kWh offer through the REST API, against the real validators
(four worker processes) and the site's real worker projecting their blocks."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test import Client

from gridplatform.accounts.models import User
from gridplatform.accounts.services import api_token_create
from ledger import services as ledger_services
from ledger.audit import verify_store
from ledger.models import LedgerAccount, SubmittedTransaction, TransactionRecord
from ledger.registry import build_registry
from market import selectors
from market import services as market_services
from market.models import Contract, MarketAccount, Offer
from tests.factories import UserFactory
from tests.ledger.live import LiveNetwork, running_network
from tests.ledger.site import give_issuer_key

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
BUYERS = 100
CREDITS = 10_000  # minor units each
OFFER_WH = 10_000
ASK_WH = 200  # each buyer asks for 200 Wh: 20 kWh in all, twice the offer


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings) as live:
        yield live


def api_client(user: User) -> Client:
    _, token = api_token_create(user=user, name="race")
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def settled(network: LiveNetwork, what: str, condition: Any, seconds: float = 120) -> None:
    def check() -> bool:
        ok = bool(condition())
        connection.close()  # a fresh view of what the site's worker wrote
        return ok

    network.wait(check, seconds=seconds, what=what)


def test_a_hundred_buyers_racing_one_offer_buy_exactly_its_energy(
    network: LiveNetwork, grid_operator: User
) -> None:
    give_issuer_key(grid_operator)
    seller = UserFactory(email="seller@test.example")
    buyers = [UserFactory(email=f"buyer{i}@test.example") for i in range(BUYERS)]
    households = [seller, *buyers]
    for household in households:
        ledger_services.household_enrol(operator=grid_operator, household=household)
    addresses = [h.identity.address for h in households]
    settled(
        network,
        "every household registered",
        lambda: LedgerAccount.objects.filter(address__in=addresses).count() == len(households),
    )
    for household in households:
        market_services.feeder_assign(operator=grid_operator, household=household, feeder="f-1")
        ledger_services.credits_top_up(operator=grid_operator, household=household, amount=CREDITS)
    settled(
        network,
        "feeders assigned and credits issued",
        lambda: (
            not SubmittedTransaction.objects.exists()
            and MarketAccount.objects.filter(address__in=addresses, feeder="f-1").count()
            == len(households)
        ),
    )
    supply = LedgerAccount.objects.filter(address__in=addresses).aggregate(s=Sum("balance"))["s"]
    assert supply == CREDITS * len(households)

    slot = selectors.slot_list()[1].start
    posted = api_client(seller).post(
        "/api/v1/offers",
        {"slot": slot.isoformat(), "energy_wh": OFFER_WH, "price": 30, "buyer": ""},
        content_type="application/json",
    )
    assert posted.status_code == 202, posted.json()
    offer_id = posted.json()["transaction"]
    settled(network, "the offer is open", lambda: Offer.objects.filter(id=offer_id).exists())

    clients = [api_client(buyer) for buyer in buyers]

    def accept(client: Client) -> tuple[int, Any]:
        try:
            response = client.post(
                f"/api/v1/offers/{offer_id}/accept",
                {"energy_wh": ASK_WH},
                content_type="application/json",
            )
            return response.status_code, response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(accept, clients))
    sent = [body["transaction"] for status, body in answers if status == 202]
    refused = [body["code"] for status, body in answers if status != 202]
    assert len(sent) + len(refused) == BUYERS
    assert set(refused) <= {"exceeds_offer", "unknown_offer"}, refused
    settled(
        network,
        "every accepted transaction committed",
        lambda: (
            TransactionRecord.objects.filter(tx_id__in=sent).count() == len(sent)
            and not SubmittedTransaction.objects.exists()
        ),
    )

    # Exactly the offer's energy was sold, to 50 buyers, and the rest were refused.
    contracts = Contract.objects.filter(seller=seller.identity.address)
    assert contracts.aggregate(e=Sum("energy_wh"))["e"] == OFFER_WH
    assert contracts.count() == OFFER_WH // ASK_WH
    assert Offer.objects.get(id=offer_id).status == "taken"
    results = dict(TransactionRecord.objects.filter(tx_id__in=sent).values_list("tx_id", "result"))
    assert sum(result == "ok" for result in results.values()) == OFFER_WH // ASK_WH
    assert set(results.values()) <= {"ok", "exceeds_offer", "unknown_offer"}

    # Every credit accounted for: the market moved none (only locked some), nothing was created.
    balances = dict(
        LedgerAccount.objects.filter(address__in=addresses).values_list("address", "balance")
    )
    assert sum(balances.values()) == supply
    assert set(balances.values()) == {CREDITS}
    locked = dict(MarketAccount.objects.values_list("address", "locked"))
    for contract in contracts:
        assert locked[contract.buyer] == contract.escrow
    assert locked[seller.identity.address] == sum(c.deposit for c in contracts)
    assert sum(locked.values()) == sum(c.escrow + c.deposit for c in contracts)

    # And the four stores agree, block for block, and verify.
    chains = network.chains()
    assert len({tuple(chain) for chain in chains.values()}) == 1
    for index in range(4):
        store = network.store(index)
        try:
            assert verify_store(
                store, network.genesis, build_registry(settings.LEDGER_APPLICATIONS)
            ).ok, index
        finally:
            store.close()
