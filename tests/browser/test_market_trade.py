"""Two households trade in two browsers against the real network: four validator processes
and the site's worker projecting their blocks, behind the real daphne server.

The prosumer places a sell order; the consumer, in a second browser, sees it appear in the book
and buys; both see the contract appear without reloading."""

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
from market.models import MarketAccount
from tests.browser.support import (
    LiveServer,
    check_while_live,
    outside_event_loop,
    server_for_network,
)
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.live import LiveNetwork
from tests.ledger.site import give_issuer_key

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
BLOCK_MS = 30_000  # a block, its projection and the page's re-fetch, on a busy machine


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
    """The conftest's server, with this network in its environment (it signs and submits)."""
    server = server_for_network(network)
    yield server
    server.stop()


def _households_ready(network: LiveNetwork) -> tuple[User, User]:
    """A prosumer and a consumer, enrolled by the grid operator, on a feeder, with credits."""
    operator = UserFactory(email="operator@test.example", role="grid_operator")
    give_issuer_key(operator)
    seller = UserFactory(name="Ada Sun", email="ada@test.example")
    buyer = UserFactory(name="Ben Meter", email="ben@test.example", household_kind="consumer")
    for household in (seller, buyer):
        ledger_services.household_enrol(operator=operator, household=household)
    addresses = [seller.identity.address, buyer.identity.address]

    def count(model: Any, **filters: Any) -> int:
        found = int(model.objects.filter(address__in=addresses, **filters).count())
        connection.close()
        return found

    network.wait(lambda: count(LedgerAccount) == 2, seconds=60, what="both registered")
    for household in (seller, buyer):
        market_services.feeder_assign(operator=operator, household=household, feeder="feeder-1")
        ledger_services.credits_top_up(operator=operator, household=household, amount=20_000)
    network.wait(
        lambda: (
            count(LedgerAccount, balance=20_000) == 2
            and count(MarketAccount, feeder="feeder-1") == 2
        ),
        seconds=60,
        what="both funded and on a feeder",
    )
    return seller, buyer


def _order(page: Page, *, side: str, kwh: str, euro_per_kwh: str) -> None:
    form = page.get_by_role("form", name="Place an order")
    check_while_live(page, form.get_by_label(side))
    form.get_by_label("Energy", exact=True).fill(kwh)
    form.get_by_label("Price", exact=True).fill(euro_per_kwh)
    form.get_by_label("Price unit").select_option(label="€ per kWh")
    form.get_by_role("button", name="Place the order").click()
    if side == "Sell":  # its sellers have no meter: the site asks once more (market.warnings)
        warnings = page.get_by_test_id("order-warnings")
        expect(warnings).to_contain_text("You have no meter registered")
        warnings.get_by_role("button", name="Place it anyway").click()
    expect(page.get_by_role("status").filter(has_text="was submitted")).to_be_visible()


def test_a_prosumer_sells_and_a_consumer_in_another_browser_buys(
    network: LiveNetwork, live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    settings.LEDGER_DIR = network.directory
    settings.LEDGER_STORE_URL = network.store_template
    for index in range(4):
        network.start(index)
    network.start_site_worker()
    seller, buyer = outside_event_loop(_households_ready, network)
    slot = outside_event_loop(selectors.slot_list)[2].start  # open for a while yet
    market = f"/market/?slot={ms_of_datetime(slot)}"

    selling, buying = new_page(), new_page()  # two browser contexts: two browsers
    buying.add_init_script(path=str(AXE))  # axe-core, for the pages full of this trade's data
    for page, user in ((selling, seller), (buying, buyer)):
        log_in(page, email=user.email, password=PASSWORD)
        page.goto(market)
        expect(page.locator("[data-live-status]")).to_have_text(LIVE, timeout=BLOCK_MS)
    asks = buying.locator('[data-testid="book"] [data-side="sell"] tbody')
    expect(asks).to_have_text("No asks.")

    _order(selling, side="Sell", kwh="2", euro_per_kwh="0.20")
    # The buyer's book shows the ask once its block commits, without a reload.
    expect(asks.locator("td")).to_have_text(["€0.20/kWh", "2 kWh", "1"], timeout=BLOCK_MS)

    _order(buying, side="Buy", kwh="2", euro_per_kwh="0.25")
    for page, side in ((selling, "sell"), (buying, "buy")):
        contract = page.locator("#market-contracts tr[data-contract]")
        expect(contract).to_have_count(1, timeout=BLOCK_MS)
        expect(contract.locator("td").nth(1)).to_have_text("#1")  # short, linked to its tx
        expect(contract.locator("[data-contract-link]")).to_have_attribute(
            "href", re.compile(r"^/ledger/tx/[0-9a-f]{64}/$")
        )
        expect(contract.locator("td").nth(2)).to_have_text(side)
        expect(contract).to_contain_text("2 kWh")
        expect(contract).to_contain_text("€0.20/kWh")  # the resting order's price
    expect(asks).to_have_text("No asks.", timeout=BLOCK_MS)  # the ask was filled

    # No accessibility violation on the pages that now show the trade: the market, the
    # dashboard, the explorer's blocks, the contract's transaction and the block holding it.
    assert violations(buying) == [], buying.url
    link = buying.locator("#market-contracts [data-contract-link]").first.get_attribute("href")
    for path in ("/dashboard/", "/ledger/", link):
        buying.goto(path)
        buying.wait_for_load_state("networkidle")
        assert violations(buying) == [], path
    buying.locator('a[href^="/ledger/blocks/"]').first.click()
    buying.wait_for_load_state("networkidle")
    assert violations(buying) == [], buying.url
