"""A regulator supervises the market in one browser while a household trades in another, against
the real network: four validator processes and the site's worker projecting their blocks,
behind the real daphne server.

(a) The regulator vetoes a contract from the review queue, with a reason and a confirmation; the
household sees its contract vetoed, with the reason, without reloading its market page.
(b) The regulator suspends the household's feeder; the household's order form shows the
suspension without reloading.

Each test has a network of its own: the test database is flushed after each test, and a chain
that outlived it would no longer match the site's read models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
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
from market.models import Contract, MarketAccount
from supervision import services as supervision_services
from supervision.models import Feeder, ReviewItem
from tests.browser.support import LiveServer, outside_event_loop, server_for_network
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.live import LiveNetwork
from tests.ledger.site import give_issuer_key, give_regulator_key

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
BLOCK_MS = 30_000  # a block, its projection and the page's re-fetch, on a busy machine
FEEDER = "feeder-1"


@pytest.fixture
def network(django_db_setup: None, tmp_path: Path) -> Iterator[LiveNetwork]:
    live = LiveNetwork(tmp_path / "network")
    try:
        yield live
    finally:
        live.stop()
        live.drop()


@pytest.fixture
def _live_server(django_db_setup: None, network: LiveNetwork) -> Iterator[LiveServer]:
    """The conftest's server, with this network in its environment (it signs and submits)."""
    server = server_for_network(network)
    yield server
    server.stop()


@pytest.fixture
def running(network: LiveNetwork, live_server_url: str, settings: Any) -> LiveNetwork:
    """The network's validators and the site's worker, and this process pointed at them."""
    settings.LEDGER_DIR = network.directory
    settings.LEDGER_STORE_URL = network.store_template
    for index in range(4):
        network.start(index)
    network.start_site_worker()
    return network


def _wait_for(network: LiveNetwork, what: str, condition: Callable[[], bool]) -> None:
    def check() -> bool:
        try:
            return condition()
        finally:
            connection.close()

    network.wait(check, seconds=60, what=what)


def _market_ready(network: LiveNetwork) -> tuple[User, User, User, User]:
    """The grid operator, the regulator, and a prosumer and a consumer enrolled by the grid
    operator, on a published feeder, with credits."""
    operator = UserFactory(email="operator@test.example", role="grid_operator")
    give_issuer_key(operator)
    regulator = UserFactory(name="Rita Rules", email="rita@test.example", role="regulator")
    give_regulator_key(regulator)
    seller = UserFactory(name="Ada Sun", email="ada@test.example")
    buyer = UserFactory(name="Ben Meter", email="ben@test.example", household_kind="consumer")
    supervision_services.feeder_publish(
        operator=operator, feeder=FEEDER, export_limit_w=1_000_000, import_limit_w=1_000_000
    )
    for household in (seller, buyer):
        ledger_services.household_enrol(operator=operator, household=household)
    addresses = [seller.identity.address, buyer.identity.address]
    _wait_for(
        network,
        "both registered and the feeder published",
        lambda: (
            LedgerAccount.objects.filter(address__in=addresses).count() == 2
            and Feeder.objects.filter(name=FEEDER).exists()
        ),
    )
    for household in (seller, buyer):
        market_services.feeder_assign(operator=operator, household=household, feeder=FEEDER)
        ledger_services.credits_top_up(operator=operator, household=household, amount=50_000)
    _wait_for(
        network,
        "both funded and on the feeder",
        lambda: (
            LedgerAccount.objects.filter(address__in=addresses, balance=50_000).count() == 2
            and MarketAccount.objects.filter(address__in=addresses, feeder=FEEDER).count() == 2
        ),
    )
    return operator, regulator, seller, buyer


def _flagged_contract(network: LiveNetwork, seller: User, buyer: User) -> Contract:
    """A 6 kWh contract (above the review size of 5 kWh), waiting in the review queue."""
    slot = selectors.slot_list()[2].start  # open for a while yet
    market_services.order_place(user=seller, slot=slot, side="sell", energy_wh=6_000, price=20)
    market_services.order_place(user=buyer, slot=slot, side="buy", energy_wh=6_000, price=25)
    _wait_for(
        network,
        "the contract flagged for review",
        lambda: ReviewItem.objects.filter(status="pending").exists(),
    )
    contract: Contract = Contract.objects.get()
    connection.close()
    return contract


def _open_live(page: Page, user: User, url: str) -> None:
    log_in(page, email=user.email, password=PASSWORD)
    page.goto(url)
    statuses = page.locator("[data-live-status]")
    for index in range(statuses.count()):  # every live region of the page is connected
        expect(statuses.nth(index)).to_have_text(LIVE, timeout=BLOCK_MS)
    # Set on this document only: still there later means the page was never reloaded.
    page.evaluate("window.notReloaded = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.notReloaded === true"))


def test_a_regulator_vetoes_a_contract_and_the_household_sees_it_without_reloading(
    running: LiveNetwork, new_page: NewPage
) -> None:
    operator, regulator, seller, buyer = outside_event_loop(_market_ready, running)
    contract = outside_event_loop(_flagged_contract, running, seller, buyer)

    household, supervising, operating = new_page(), new_page(), new_page()  # three browsers
    for page in (household, supervising, operating):  # axe-core, on pages full of real data
        page.add_init_script(path=str(AXE))
    _open_live(household, buyer, f"/market/?slot={ms_of_datetime(contract.slot)}")
    row = household.locator(f'#market-contracts tr[data-contract="{contract.id}"]')
    expect(row).to_contain_text("6 kWh")
    expect(row.get_by_test_id("supervision")).to_have_text("—")

    # The grid operator sees the contract load the feeder: 6 kWh of the 250 kWh it carries.
    _open_live(operating, operator, "/console/operator/")
    chart = operating.locator("canvas[data-loading-chart]")
    expect(chart).to_have_attribute("data-chart-state", "drawn")
    loading = operating.locator(f'#loading-rows tr[data-feeder="{FEEDER}"]')
    expect(loading.locator("td")).to_have_text(
        [FEEDER, "6000", "250000", "2 %", "6000", "250000", "2 %", "—"]
    )

    _open_live(supervising, regulator, "/console/regulator/")
    item = supervising.locator(f'#review-rows tr[data-review="{contract.id}"]')
    expect(item).to_contain_text("size: 6,000 Wh is more than 5,000 Wh")
    # No accessibility violation with a contract in the book, on the feeder, in the review queue
    # and in the statistics (the empty pages: tests/browser/test_accessibility.py).
    expect(supervising.locator("canvas[data-statistics-chart]")).to_have_attribute(
        "data-chart-state", "drawn"
    )
    for page in (household, operating, supervising):
        assert violations(page) == [], page.url
    decide = item.get_by_role("form", name=f"Decide on contract {contract.id}")
    decide.get_by_label("Reason").fill("Far above the household's connection")
    decide.get_by_role("button", name="Veto").click()

    # The confirmation step shows what will be signed; only its button signs.
    expect(supervising.get_by_role("heading", level=1)).to_have_text(
        f"Veto contract {contract.id}?"
    )
    expect(supervising.get_by_test_id("confirmation")).to_contain_text(
        "Far above the household's connection"
    )
    supervising.get_by_role("button", name="Confirm: veto the contract").click()
    expect(supervising.get_by_role("status").filter(has_text="was submitted")).to_be_visible()

    # The household's contract list follows the block: vetoed, with the reason.
    expect(row.get_by_test_id("supervision")).to_have_text(
        "Vetoed by a regulator: Far above the household's connection (transaction)",
        timeout=BLOCK_MS,
    )
    expect(row).to_have_attribute("data-vetoed", "true")
    assert _not_reloaded(household)
    # The veto gave the feeder its energy back: the table and its chart follow the block.
    expect(operating.locator("#loading-rows")).to_have_text(
        "No contracts load a feeder in the coming slots.", timeout=BLOCK_MS
    )
    expect(chart).to_have_attribute("data-chart-state", "empty")
    assert _not_reloaded(operating)
    # The regulator's console was loaded (after the confirmation) before or after the block,
    # a race live.js does not settle until the next block: read it again, it has no item left.
    supervising.reload()
    expect(supervising.locator("#review-rows")).to_have_text("No contract is waiting for review.")


def test_a_regulator_suspends_a_feeder_and_the_order_form_says_so_without_reloading(
    running: LiveNetwork, new_page: NewPage
) -> None:
    _operator, regulator, seller, _buyer = outside_event_loop(_market_ready, running)

    household, supervising = new_page(), new_page()
    _open_live(household, seller, "/market/")
    notice = household.locator("#market-trading-stop")
    expect(notice).to_have_text("")

    _open_live(supervising, regulator, "/console/regulator/")
    form = supervising.get_by_role("form", name="Suspend trading")
    form.get_by_label("Where").select_option(label=f"Feeder {FEEDER}")
    form.get_by_label("Reason").fill("Storm damage")
    form.get_by_role("button", name="Suspend…").click()
    expect(supervising.get_by_role("heading", level=1)).to_have_text(
        f"Suspend trading in feeder {FEEDER}?"
    )
    supervising.get_by_role("button", name="Confirm: suspend trading").click()
    expect(supervising.get_by_role("status").filter(has_text="was submitted")).to_be_visible()

    expect(notice).to_contain_text(
        f"Trading on feeder {FEEDER} is suspended: Storm damage", timeout=BLOCK_MS
    )
    assert _not_reloaded(household)
    # The regulator's console lists it among the suspensions in force (read again: see above).
    supervising.reload()
    expect(supervising.locator(f'[data-suspension="feeder:{FEEDER}"]')).to_contain_text(
        "Storm damage"
    )


def test_a_new_act_appears_on_top_of_the_audit_log_with_only_its_rows_fetched(
    running: LiveNetwork, new_page: NewPage
) -> None:
    operator, regulator, seller, _buyer = outside_event_loop(_market_ready, running)

    supervising = new_page()
    asked: list[str] = []
    supervising.on(
        "request",
        lambda request: asked.append(request.url) if "/audit/rows/" in request.url else None,
    )
    _open_live(supervising, regulator, "/console/regulator/")
    for _ in range(100):  # the whole log read once its socket subscribed (live.js), then quiet
        if asked:
            break
        supervising.wait_for_timeout(100)
    supervising.wait_for_load_state("networkidle")
    rows = supervising.locator("#audit-rows tr[data-act]")
    before = rows.count()
    assert before >= 6  # the feeder, two enrolments, two assignments, two top-ups (some merged)
    first = rows.first.get_attribute("data-act")
    read_before = len(asked)

    outside_event_loop(
        ledger_services.credits_top_up, operator=operator, household=seller, amount=1_234
    )
    expect(rows.first).to_contain_text(
        f"Topped up household {seller.identity.address} with €12.34", timeout=BLOCK_MS
    )
    expect(rows).to_have_count(before + 1)
    expect(rows.nth(1)).to_have_attribute("data-act", first or "")
    assert _not_reloaded(supervising)
    # The act's hint asked only for the acts after the list's cursor, never the whole log.
    fetched_new = asked[read_before:]
    assert fetched_new, asked
    assert all("?after=" in url for url in fetched_new), fetched_new
    cursor = int(supervising.locator("#audit-rows").get_attribute("data-audit-through") or -1)
    assert cursor >= int(fetched_new[-1].rsplit("after=", 1)[1])
