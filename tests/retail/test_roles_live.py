"""Participants' roles against the real validators, on a network whose genesis sets
``market.retailers`` = 1: the grid operator opens a retailer's account from its console's
service, a household grants it, and its order for the household is the household's; a household
account placing an order for the same household is refused by the validators (``not_retailer``),
and so is the household's grant naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import Role, User
from ledger import services as ledger_services
from ledger.models import LedgerAccount, StateEntry, TransactionRecord
from market import selectors
from market import services as market_services
from market.models import Order
from retail import services as retail_services
from retail.models import Grant, RetailOrder
from supervision import services as supervision_services
from tests.factories import UserFactory
from tests.ledger.live import LiveNetwork, running_network
from tests.ledger.site import give_issuer_key

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]
OPTIONS = {"market.retailers": 1}
CREDITS = 100_000


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Iterator[LiveNetwork]:
    with running_network(tmp_path, settings, OPTIONS) as live:
        yield live


def result_of(network: LiveNetwork, tx_id: str) -> str:
    network.until(
        f"{tx_id[:12]} in a block", lambda: TransactionRecord.objects.filter(tx_id=tx_id).exists()
    )
    value: str = TransactionRecord.objects.get(tx_id=tx_id).result
    return value


def test_only_a_retailer_trades_for_a_household_on_the_real_network(
    network: LiveNetwork, grid_operator: User
) -> None:
    give_issuer_key(grid_operator)
    ada = UserFactory(name="Ada", email="ada@test.example")
    cat = UserFactory(name="Cat", email="cat@test.example")
    for household in (ada, cat):
        ledger_services.household_enrol(operator=grid_operator, household=household)
    seller = supervision_services.participant_register(
        operator=grid_operator, name="Sol Energy", email="sol@test.example", role="retailer"
    )
    assert seller.role == Role.RETAILER
    addresses = [u.identity.address for u in (ada, cat, seller)]
    network.until(
        "all three registered",
        lambda: LedgerAccount.objects.filter(address__in=addresses).count() == 3,
    )
    roles = {
        row.key: row.value["role"]
        for row in StateEntry.objects.filter(key__in=[f"acct/{a}" for a in addresses])
    }
    assert roles == {
        f"acct/{ada.identity.address}": "household",
        f"acct/{cat.identity.address}": "household",
        f"acct/{seller.identity.address}": "retailer",
    }
    market_services.feeder_assign(operator=grid_operator, household=ada, feeder="f-1")
    ledger_services.credits_top_up(operator=grid_operator, household=ada, amount=CREDITS)
    network.until(
        "Ada funded",
        lambda: LedgerAccount.objects.filter(address=addresses[0], balance=CREDITS).exists(),
    )

    # Ada names the retailer by its email; naming Cat (a household) the validators refuse.
    retail_services.grant_give(
        user=ada, retailer="sol@test.example", max_energy_wh=2_000, max_price=40, min_price=20
    )
    network.until("the grant", lambda: Grant.objects.filter(retailer=addresses[2]).exists())
    to_cat = ledger_services.transaction_sign_and_submit(
        user=ada,
        type="market.grant",
        payload={
            "retailer": addresses[1],
            "max_energy_wh": 2_000,
            "max_price": 40,
            "min_price": 20,
        },
    )
    assert result_of(network, to_cat.id) == "not_retailer"

    # The retailer's order for Ada is hers; Cat's order "for" Ada is refused, and so is the
    # retailer's order for itself.
    slot = selectors.slot_list()[2].start
    placed = retail_services.order_place_for(
        retailer=seller, household=addresses[0], slot=slot, side="buy", energy_wh=1_000, price=30
    )
    assert result_of(network, placed.id) == "ok"
    order = Order.objects.get(id=placed.id)
    assert order.owner == addresses[0]
    assert RetailOrder.objects.get(order_id=placed.id).placed_by == addresses[2]
    payload = {"slot": market_services.slot_ms(slot), "side": "buy", "energy_wh": 1_000}
    by_cat = ledger_services.transaction_sign_and_submit(
        user=cat,
        type="market.order.place",
        payload=payload | {"price": 30, "for": addresses[0]},
    )
    assert result_of(network, by_cat.id) == "not_retailer"
    own = ledger_services.transaction_sign_and_submit(
        user=seller, type="market.order.place", payload=payload | {"price": 30}
    )
    assert result_of(network, own.id) == "for_customers_only"
    assert Order.objects.filter(slot=slot).count() == 1
