"""A newcomer's path, in the browser only, against the real network (four validator processes
and the site's worker, behind the real server): a household registers itself, the grid operator
approves it from its console on a published feeder with its first credits, and the household,
told on its dashboard where it stands at each step, buys from a neighbour: its first contract.

The neighbour's sell order and the feeder's publication are set up with the services: they are
the counterparty's and the operator's business, not the newcomer's path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from ledger import services as ledger_services
from ledger.models import LedgerAccount
from ledger.projection import ms_of_datetime
from market import selectors
from market import services as market_services
from market.models import MarketAccount, Order
from supervision import services as supervision_services
from supervision.models import Feeder
from tests.browser.support import LiveServer, outside_event_loop, server_for_network
from tests.browser.test_accounts import log_in, register
from tests.browser.test_market_trade import BLOCK_MS, LIVE, _order
from tests.factories import PASSWORD, UserFactory
from tests.ledger.live import LiveNetwork
from tests.ledger.site import give_issuer_key

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
NEWCOMER = "newcomer@test.example"


@pytest.fixture(scope="module")
def network(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveNetwork]:
    live = LiveNetwork(tmp_path_factory.mktemp("network"))
    try:
        yield live
    finally:
        live.stop()
        live.drop()


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network: LiveNetwork) -> Iterator[LiveServer]:
    server = server_for_network(network)
    yield server
    server.stop()


def _neighbourhood(network: LiveNetwork) -> tuple[User, User]:
    """The grid operator, a published feeder, and a neighbour on it offering 2 kWh."""
    operator = UserFactory(
        name="Grid Operator", email="operator@test.example", role="grid_operator"
    )
    give_issuer_key(operator)
    supervision_services.feeder_publish(
        operator=operator, feeder="feeder-north", export_limit_w=100_000, import_limit_w=100_000
    )
    network.wait(lambda: _count(Feeder, name="feeder-north") == 1, seconds=60, what="feeder")
    seller = UserFactory(name="Ada Sun", email="ada@test.example")
    supervision_services.household_approve(
        operator=operator, household=seller, feeder="feeder-north", top_up=20_000
    )
    address = seller.identity.address
    network.wait(
        lambda: (
            _count(LedgerAccount, address=address, balance=20_000) == 1
            and _count(MarketAccount, address=address, feeder="feeder-north") == 1
        ),
        seconds=60,
        what="the neighbour approved",
    )
    slot = selectors.slot_list()[2].start  # open for a while yet
    market_services.order_place(user=seller, slot=slot, side="sell", energy_wh=2_000, price=20)
    network.wait(lambda: _count(Order, owner=address) == 1, seconds=60, what="the ask")
    return operator, seller


def _count(model: Any, **filters: Any) -> int:
    found = int(model.objects.filter(**filters).count())
    connection.close()
    return found


def _step(page: Page, number: int) -> Any:
    return page.locator(f'[data-testid="joining"] li[data-step="{number}"]')


def test_a_household_goes_from_registration_to_its_first_contract_in_the_browser(
    network: LiveNetwork, live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    settings.LEDGER_DIR = network.directory
    settings.LEDGER_STORE_URL = network.store_template
    for index in range(4):
        network.start(index)
    network.start_site_worker()
    operator, _ = outside_event_loop(_neighbourhood, network)

    # The landing page says what this is and how joining works.
    household = new_page()
    household.goto("/")
    expect(household.get_by_role("heading", name="How joining works")).to_be_visible()
    household.get_by_role("link", name="Register your household").first.click()
    register(
        household,
        name="Nia Newcomer",
        email=NEWCOMER,
        household="Consumer",
        password=PASSWORD,
        connected_at="7 Mill Lane, meter point 8712",
    )
    expect(household).to_have_url(re.compile(r"/dashboard/$"))
    expect(_step(household, 2)).to_have_attribute("data-done", "no")
    expect(_step(household, 2)).to_contain_text("7 Mill Lane, meter point 8712")

    # The grid operator approves it from the console, picking its feeder, with first credits.
    console = new_page()
    log_in(console, email=operator.email, password=PASSWORD)
    row = console.locator("tr[data-household][data-waiting]").filter(has_text="Nia Newcomer")
    expect(row).to_contain_text("Connected at: 7 Mill Lane, meter point 8712")
    row.get_by_label("Feeder").select_option("feeder-north")
    row.get_by_label("First credits").fill("30.00")
    row.get_by_role("button", name="Approve").click()
    expect(console.get_by_role("status").filter(has_text="Nia Newcomer approved")).to_be_visible()

    # The household sees it: approved, with credits, once the block commits.
    def approved() -> bool:
        household.reload()
        return (
            _step(household, 2).get_attribute("data-done") == "yes"
            and _step(household, 3).get_attribute("data-done") == "yes"
        )

    network.wait(approved, seconds=BLOCK_MS / 1000, what="the dashboard shows the approval")
    expect(_step(household, 2)).to_contain_text("feeder-north")
    household.get_by_test_id("nav-supervision").click()
    expect(household.get_by_test_id("trading-stop")).to_have_text(
        "You may trade: nothing stops your orders now."
    )
    expect(household.get_by_text("The grid operator approved your household")).to_be_visible()

    # Its first trade: the neighbour's ask, bought from the market page.
    slot = outside_event_loop(selectors.slot_list)[2].start
    household.goto(f"/market/?slot={ms_of_datetime(slot)}")
    expect(household.locator("[data-live-status]")).to_have_text(LIVE, timeout=BLOCK_MS)
    _order(household, side="Buy", kwh="2", euro_per_kwh="0.25")
    contract = household.locator("#market-contracts tr[data-contract]")
    expect(contract).to_have_count(1, timeout=BLOCK_MS)
    expect(contract).to_contain_text("2 kWh")
    expect(contract).to_contain_text("€0.20/kWh")
    newcomer = outside_event_loop(lambda: User.objects.get(email=NEWCOMER))
    assert outside_event_loop(ledger_services.is_registered, newcomer.identity.address)

    # The operator tops the newcomer up: the amount is shown back with what it was given today
    # (its first credits), and only the confirmation sends it.
    console.goto("/console/operator/")
    console.get_by_label("Amount for Nia Newcomer").fill("15.00")
    console.get_by_label("Amount for Nia Newcomer").press("Enter")
    expect(console.get_by_role("heading", level=1)).to_have_text("Confirm a top-up")
    expect(console.get_by_test_id("top-up-amount")).to_have_text("€15.00")
    expect(console.get_by_test_id("given-24h")).to_have_text("€30.00")
    console.get_by_role("button", name="Confirm the top-up of €15.00").click()
    expect(console.get_by_role("status").filter(has_text="Top-up of €15.00")).to_be_visible()
