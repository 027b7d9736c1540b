"""A household lets an energy seller trade for it, in two browsers, against the real network: four
validator processes and the site's worker projecting their blocks, behind the real daphne
server.

Ada grants Ben, a retailer account the grid operator registered, by his email on her page; Ben
sees her among his customers and places an order for her through his page; the order shows on
his page and, as hers, on her market page. Ada revokes the grant; Ben's next order, from the
page he still has open, is refused with a message, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from ledger import services as ledger_services
from ledger.models import LedgerAccount, SubmittedTransaction
from market import services as market_services
from market.models import MarketAccount
from retail.models import Grant
from tests.browser.support import outside_event_loop
from tests.browser.test_accounts import log_in
from tests.browser.test_supervision import (  # noqa: F401 (fixtures)
    _live_server,
    network,
    running,
)
from tests.factories import PASSWORD, UserFactory
from tests.ledger.live import LiveNetwork
from tests.ledger.site import give_issuer_key

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
BLOCK_MS = 30_000
SUBMITTED = "was submitted"


def _households(live: LiveNetwork) -> tuple[User, User]:
    """Ada, a household registered on a feeder with credits, and Ben, a retailer."""
    operator = UserFactory(email="operator@test.example", role="grid_operator")
    give_issuer_key(operator)
    ada = UserFactory(name="Ada Sun", email="ada@test.example")
    ben = UserFactory(name="Ben Retail", email="ben@test.example", role="retailer")
    for household in (ada, ben):
        ledger_services.household_enrol(operator=operator, household=household)
    addresses = [ada.identity.address, ben.identity.address]
    live.until(
        "both registered",
        lambda: LedgerAccount.objects.filter(address__in=addresses).count() == 2,
    )
    market_services.feeder_assign(operator=operator, household=ada, feeder="feeder-1")
    ledger_services.credits_top_up(operator=operator, household=ada, amount=20_000)
    live.until(
        "Ada on a feeder with credits",
        lambda: (
            MarketAccount.objects.filter(address=addresses[0], feeder="feeder-1").exists()
            and LedgerAccount.objects.filter(address=addresses[0], balance=20_000).exists()
        ),
    )
    return ada, ben


def _submitted(page: Page) -> None:
    expect(page.get_by_role("status").filter(has_text=SUBMITTED)).to_be_visible()


def _order_for_ada(page: Page) -> None:
    form = page.get_by_role("form", name="Place an order for a customer")
    form.get_by_label("For").select_option(label="Ada Sun <ada@test.example>")
    form.get_by_label("Delivery slot").select_option(index=2)
    form.get_by_label("Buy").check()
    form.get_by_label("Energy", exact=True).fill("1.5")
    form.get_by_label("Price", exact=True).fill("0.25")
    form.get_by_role("button", name="Place the order").click()


@pytest.mark.usefixtures("running")  # the validators and the site's worker
def test_a_granted_retailer_orders_for_its_customer_until_the_grant_is_revoked(
    network: LiveNetwork,  # noqa: F811 (the fixture imported above)
    live_server_url: str,
    new_page: NewPage,
) -> None:
    ada, ben = outside_event_loop(_households, network)
    household, retailer = new_page(), new_page()

    # Ada grants Ben by his email: orders up to 2 kWh, buying at most €0.30/kWh.
    log_in(household, email=ada.email, password=PASSWORD)
    household.goto("/retail/")
    form = household.get_by_role("form", name="Grant or change a retailer")
    form.get_by_label("Retailer's email or address").fill(ben.email)
    form.get_by_label("Largest order (kWh)").fill("2")
    form.get_by_label("Highest buy price (€ per kWh)").fill("0.30")
    form.get_by_label("Lowest sell price (€ per kWh)").fill("0.10")
    form.get_by_role("button", name="Grant").click()
    _submitted(household)
    network.until("the grant", lambda: Grant.objects.filter(revoked_height=None).exists())
    household.goto("/retail/")
    expect(household.locator("[data-grant]")).to_contain_text("Ben Retail <ben@test.example>")

    # Ben finds Ada among his customers (his start page) and places an order for her.
    log_in(retailer, email=ben.email, password=PASSWORD)
    retailer.goto("/retail/customers/")
    expect(retailer.locator("[data-live-status]")).to_have_text(LIVE, timeout=BLOCK_MS)
    expect(retailer.locator("[data-customer]")).to_contain_text("2 kWh €0.30/kWh €0.10/kWh")
    _order_for_ada(retailer)
    _submitted(retailer)
    placed = retailer.locator("#retail-placed [data-order]")
    expect(placed).to_have_count(1, timeout=BLOCK_MS)
    expect(placed).to_contain_text("Ada Sun")
    expect(placed).to_contain_text("1.5 kWh")
    order_id = placed.get_attribute("data-order")
    household.goto("/market/")  # the order is Ada's own
    expect(household.locator(f'#market-orders [data-order="{order_id}"]')).to_contain_text(
        "1.5 kWh"
    )

    # Ada revokes; Ben's next order, from his page still open, is refused with a message.
    household.goto("/retail/")
    household.get_by_role("button", name="Revoke the electricity grant to Ben Retail").click()
    _submitted(household)
    network.until("the grant revoked", lambda: not Grant.objects.filter(revoked_height=None))
    _order_for_ada(retailer)
    expect(retailer.locator("form .field-error, .error-summary").first).to_contain_text(
        "That household has not granted you trading."
    )
    assert outside_event_loop(lambda: SubmittedTransaction.objects.count()) == 0
