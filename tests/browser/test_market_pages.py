"""A household trades in a real browser: the market page goes live, a bad price is refused next
to the form, a good order is submitted, and the order appears when its block commits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from gridplatform.accounts.models import User
from ledger.crypto import Transaction
from ledger.models import SubmittedTransaction
from market import selectors, services
from market.models import Offer, Order
from tests.browser.support import (
    LiveServer,
    check_while_live,
    outside_event_loop,
    server_with_environment,
)
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import LIVE_UPDATE_TIMEOUT_MS, log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import OPERATOR, Chain, build_chain, recent_start_ms
from tests.ledger.site import Site

NewPage = Callable[[], Page]
WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > 392).slice(0, 8)
    .map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""
LIVE = "Live: updates appear as they happen."
# Per data row of the table (at most 5 rows), its cells' left edge, top and label (data-label and
# what its ::before shows); and the right edge of the widest element shown in the table.
STACKED_ROWS = """(selector) => {
    const table = document.querySelector(selector);
    const rows = [...table.querySelectorAll("tbody tr")].slice(0, 5);
    const cells = rows.map(row => [...row.children].map(cell => ({
        left: Math.round(cell.getBoundingClientRect().left),
        top: Math.round(cell.getBoundingClientRect().top),
        label: cell.dataset.label || "",
        shown: getComputedStyle(cell, "::before").content,
    })));
    // The header row is there for screen readers only: clipped to a pixel, it shows nothing.
    const widest = Math.max(...[table, ...table.querySelectorAll("caption, tbody, tbody *")]
        .map(e => e.getBoundingClientRect().right));
    return {cells, widest};
}"""


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Chain]:
    """A network whose blocks are "now" (the site's clock decides which slots are open)."""
    directory = tmp_path_factory.mktemp("network")
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    chain.genesis.to_json_file(directory / "genesis.json")
    return directory, chain


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network: tuple[Path, Chain]) -> Iterator[LiveServer]:
    """The conftest's server, started with this network's LEDGER_DIR in its environment: the
    server signs and submits the household's transactions, so it must know the network."""
    directory, _ = network
    server = server_with_environment(LEDGER_DIR=str(directory))
    yield server
    server.stop()


def pick_slot(page: Page, form: Locator, index: int) -> int:
    """Choose the ``index``-th open slot in ``form`` by its day and hour, then its minute (the
    site's zone is UTC), as a household picks it; its start (ms)."""
    start_ms = int(
        page.locator("#market-slots tr[data-slot]").nth(index).get_attribute("data-slot") or ""
    )
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    form.get_by_label("Day and hour").select_option(f"{start:%Y-%m-%dT%H}")
    form.get_by_label("Minute").select_option(f"{start:%M}")
    return start_ms


def _now_after(site: Site) -> int:
    return max(site.blocks[-1].timestamp_ms + 1, time.time_ns() // 1_000_000)


def _enrolled_household(site: Site) -> User:
    """A household on the ledger with credits and a feeder, committed in a block."""
    user: User = UserFactory(name="Ada Seller", email="ada@test.example")
    site.project_all()
    address, public_key = user.identity.address, user.identity.public_key
    txs = [
        site.sign(
            OPERATOR, "account.register", address=address, public_key=public_key, role="household"
        ),
        site.sign(OPERATOR, "credit.issue", to=address, amount=100_000),
        site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
    ]
    block = site.commit(txs, timestamp_ms=_now_after(site))
    assert set(block.results) == {"ok"}
    return user


def _commit_pending(site: Site) -> list[str]:
    rows = SubmittedTransaction.objects.order_by("id")
    txs = [Transaction.from_json(row.body) for row in rows]
    return list(site.commit(txs, timestamp_ms=_now_after(site)).results)


def test_a_household_places_an_order_in_the_browser(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    directory, chain = network
    settings.LEDGER_DIR = directory  # the server's network (its genesis.json is written)
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    site = Site(chain)
    user = outside_event_loop(_enrolled_household, site)

    page = new_page()
    log_in(page, email=user.email, password=PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Market").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Market")
    status = page.locator("[data-live-status]")
    expect(status).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(page.get_by_test_id("balance")).to_have_text("€1,000.00")

    form = page.get_by_role("form", name="Place an order")
    slot = pick_slot(page, form, 2)  # open for a while yet
    check_while_live(page, form.get_by_label("Sell"))
    form.get_by_label("Energy", exact=True).fill("1.5")
    form.get_by_label("Price", exact=True).fill("0.255")
    form.get_by_label("Price unit").select_option(label="€ per kWh")
    form.get_by_role("button", name="Place the order").click()

    form = page.get_by_role("form", name="Place an order")
    expect(
        form.get_by_text("Error: Prices are whole cents per kWh: at most two decimals.")
    ).to_be_visible()
    expect(form.get_by_label("Energy", exact=True)).to_have_value("1.5")  # kept as typed
    assert SubmittedTransaction.objects.count() == 0

    form.get_by_label("Price", exact=True).fill("0.25")
    form.get_by_role("button", name="Place the order").click()

    # It has no meter yet: the order is shown back with why, and goes out only if it insists.
    warnings = page.get_by_test_id("order-warnings")
    expect(warnings).to_contain_text("You have no meter registered")
    expect(warnings).to_contain_text("Nothing was sent.")
    assert SubmittedTransaction.objects.count() == 0
    expect(form.get_by_label("Energy", exact=True)).to_have_value("1.5")
    warnings.get_by_role("button", name="Place it anyway").click()
    message = page.get_by_role("status").filter(has_text="was submitted")
    expect(message).to_contain_text("Your order to sell 1.5 kWh at €0.25/kWh for")
    expect(message).to_contain_text("It takes effect when its block commits.")
    row = SubmittedTransaction.objects.get()
    assert (row.body["type"], row.body["payload"]["energy_wh"]) == ("market.order.place", 1_500)
    assert row.body["payload"]["slot"] == slot

    # The block commits: the live lists show the order without a reload.
    expect(status).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(page.locator("#market-orders")).to_contain_text("You have no orders yet.")
    assert outside_event_loop(_commit_pending, site) == ["ok"]
    orders = page.locator("#market-orders tr[data-order]")
    expect(orders).to_have_count(1, timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(orders).to_contain_text("Open")
    asks = page.locator('[data-testid="book"] [data-side="sell"] tbody tr')
    expect(asks).to_have_count(1)
    expect(asks.locator("td")).to_have_text(["€0.25/kWh", "1.5 kWh", "1"])
    expect(page.get_by_test_id("locked")).not_to_have_text("€0.00")


def test_the_order_form_is_a_few_keys_away_and_a_refusal_opens_where_it_is(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    """From the top of the page, the skip link and the form's own fields reach "Place the
    order" in at most 10 Tab presses; a refused order comes back with focus on what was
    wrong, in view; the price is typed per kWh in the currency, as the page shows prices."""
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    user = outside_event_loop(_enrolled_household, Site(chain))
    page = new_page()
    log_in(page, email=user.email, password=PASSWORD)
    page.goto("/market/")
    form = page.get_by_role("form", name="Place an order")
    expect(form.get_by_label("Price unit")).to_have_value("major")

    presses = 0
    while presses < 10:
        page.keyboard.press("Tab")
        presses += 1
        focused = page.evaluate("document.activeElement.textContent.trim()")
        if focused == "Skip to the order form":
            page.keyboard.press("Enter")
            break
    assert focused == "Skip to the order form"
    while presses < 10:
        page.keyboard.press("Tab")
        presses += 1
        if page.evaluate("document.activeElement.textContent.trim()") == "Place the order":
            break
    expect(form.get_by_role("button", name="Place the order")).to_be_focused()
    assert presses <= 10

    check_while_live(page, form.get_by_label("Buy"))
    form.get_by_label("Energy", exact=True).fill("1")
    form.get_by_label("Price", exact=True).fill("0.255")
    form.get_by_role("button", name="Place the order").click()
    price = page.get_by_role("form", name="Place an order").get_by_label("Price", exact=True)
    expect(price).to_be_focused()
    expect(price).to_be_in_viewport()
    assert SubmittedTransaction.objects.count() == 0


def _a_neighbour_offers_and_ada_bids(site: Site, ada: User) -> tuple[str, str]:
    """A neighbour on the ledger offers 1 kWh to anyone, and Ada bids for 1 kWh, in a block:
    (Ada's order, the offer)."""
    bo: User = UserFactory(name="Bo Neighbour", email="bo@test.example")
    site.project_all()
    address, public_key = bo.identity.address, bo.identity.public_key
    txs = [
        site.sign(
            OPERATOR, "account.register", address=address, public_key=public_key, role="household"
        ),
        site.sign(OPERATOR, "credit.issue", to=address, amount=100_000),
        site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
    ]
    assert set(site.commit(txs, timestamp_ms=_now_after(site)).results) == {"ok"}
    slot = selectors.slot_list()[2].start  # open for a while yet
    services.order_place(user=ada, slot=slot, side="buy", energy_wh=1_000, price=20)
    services.offer_post(user=bo, slot=slot, energy_wh=1_000, price=25)
    assert _commit_pending(site) == ["ok", "ok"]
    return Order.objects.get().id, Offer.objects.get().id


def _the_order_and_the_offer_close(site: Site, ada: User, order: str, offer: str) -> None:
    """Ada cancels her order (in another window) and the neighbour withdraws the offer."""
    services.order_cancel(user=ada, order_id=order)
    services.offer_withdraw(user=User.objects.get(email="bo@test.example"), offer_id=offer)
    assert _commit_pending(site) == ["ok", "ok"]


def _stale_market_page(new_page: NewPage, user: User) -> Page:
    """The market page of ``user``, left open while the chain moves on: its live socket is
    answered by no server, so its lists stay as they were rendered."""
    page = new_page()
    page.route_web_socket("**/ws/ledger/", lambda socket: None)
    log_in(page, email=user.email, password=PASSWORD)
    page.goto("/market/")
    return page


def test_a_refused_cancellation_or_acceptance_opens_where_it_is_said(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    """Refusals of the lists' actions (cancel an order, accept an offer) come back with focus
    on what was refused, in view, as a refused order does."""
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    site = Site(chain)
    ada = outside_event_loop(_enrolled_household, site)
    order, offer = outside_event_loop(_a_neighbour_offers_and_ada_bids, site, ada)

    # More than the offer has left: refused by the form.
    page = _stale_market_page(new_page, ada)
    row = page.locator(f'tr[data-offer="{offer}"]')
    row.get_by_role("textbox").fill("5")
    row.get_by_role("combobox").select_option("kWh")
    row.get_by_role("button", name="Accept").click()
    refusal = page.get_by_test_id("acceptance-refused")
    expect(refusal).to_contain_text("The offer has 1 kWh left.")
    expect(refusal).to_be_focused()
    expect(refusal).to_be_in_viewport()

    # Two windows rendered before the order and the offer closed.
    cancel_page = _stale_market_page(new_page, ada)
    accept_page = _stale_market_page(new_page, ada)
    outside_event_loop(_the_order_and_the_offer_close, site, ada, order, offer)

    cancel_page.locator(f'tr[data-order="{order}"]').get_by_role("button", name="Cancel").click()
    refusal = cancel_page.get_by_test_id("orders-refused")
    expect(refusal).to_have_text("No such open order.")
    expect(refusal).to_be_focused()
    expect(refusal).to_be_in_viewport()

    accept_page.locator(f'tr[data-offer="{offer}"]').get_by_role("button", name="Accept").click()
    refusal = accept_page.get_by_test_id("offers-refused")
    expect(refusal).to_have_text("No such open offer.")
    expect(refusal).to_be_focused()
    expect(refusal).to_be_in_viewport()
    assert SubmittedTransaction.objects.count() == 0


def test_the_market_page_fits_a_phone(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, browser: Any
) -> None:
    """On a 390 px wide phone the page never scrolls sideways: the household's tables read as
    lists, any other wide table scrolls inside its own region, and the page itself is no wider
    than the screen."""
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    user = outside_event_loop(_enrolled_household, Site(chain))
    context = browser.new_context(
        base_url=live_server_url, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    page.add_init_script(path=str(AXE))
    log_in(page, email=user.email, password=PASSWORD)
    pages = ("/market/", "/dashboard/", "/supervision/", "/meters/", "/market/bill/")
    pages += ("/market/statements/", "/market/tariffs/", "/accounts/settings/", "/ledger/")
    for path in pages:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        # For the failure message: what sticks out past the screen's edge.
        wide = page.evaluate(WIDER_THAN_THE_SCREEN)
        assert width <= 390, (path, width, wide)
    # The household's tables read as lists: each row a block, its cells one under the other,
    # each labelled by its column's header; nothing in a table is wider than the screen.
    for path, table in (("/market/", "slots-near"), ("/dashboard/", "figures-month")):
        page.goto(path)
        rows = page.evaluate(STACKED_ROWS, f'[data-testid="{table}"]')
        assert rows["widest"] <= 390, (path, rows)
        assert rows["cells"], path
        assert violations(page) == [], path  # axe-core, as lists on a phone
        for cells in rows["cells"]:
            assert len({cell["left"] for cell in cells}) == 1, (path, cells)  # one column
            tops = [cell["top"] for cell in cells]
            assert tops == sorted(tops), (path, cells)  # one under the other
            assert len(set(tops)) == len(tops), (path, cells)
            for cell in cells:
                if cell["label"]:  # a row's own header (the slot, the figure) needs none
                    assert cell["shown"] == f'"{cell["label"]}"', (path, cell)
    assert page.evaluate(STACKED_ROWS, '[data-testid="figures-month"]')["cells"][0][1]["label"] == (
        "You"
    )
    context.close()


MINUTES = """(form) => [...form.querySelectorAll('select[data-slot-part="minute"] option')]
    .map(option => [option.value, option.disabled])"""


@pytest.mark.usefixtures("live_server_url")
def test_the_slot_picker_greys_out_the_minutes_that_are_not_open(
    network: tuple[Path, Chain], settings: Any, new_page: NewPage
) -> None:
    """In the first and the last open hour, the minutes before the first open slot and after
    the last one cannot be chosen; a chosen minute that is not open moves to one that is."""
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    user = outside_event_loop(_enrolled_household, Site(chain))
    page = new_page()
    log_in(page, email=user.email, password=PASSWORD)
    page.goto("/market/")
    form = page.get_by_role("form", name="Place an order")
    picker = form.locator("[data-slot-picker]")
    first, last = picker.get_attribute("data-first") or "", picker.get_attribute("data-last") or ""
    hour, minute = form.get_by_label("Day and hour"), form.get_by_label("Minute")
    greyed = 0
    for start in (first, last):
        hour.select_option(start[:13])
        minutes = form.evaluate(MINUTES)
        for value, disabled in minutes:
            assert disabled == (not first <= f"{start[:13]}:{value}" <= last), (start, minutes)
            greyed += disabled
        assert dict(minutes)[minute.input_value()] is False  # the chosen minute is open
    # Open slots span a day of quarter hours: one of the two hours is cut short.
    assert greyed > 0 or first.endswith(":00")


@pytest.mark.usefixtures("live_server_url")
def test_the_tables_stay_tables_on_a_wide_screen(
    network: tuple[Path, Chain], settings: Any, new_page: NewPage
) -> None:
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    user = outside_event_loop(_enrolled_household, Site(chain))
    page = new_page(viewport={"width": 1280, "height": 800})
    log_in(page, email=user.email, password=PASSWORD)
    page.goto("/market/")
    cells = page.evaluate(STACKED_ROWS, '[data-testid="slots-near"]')["cells"][0]
    assert len({cell["top"] for cell in cells}) == 1  # side by side, in one line
    assert all(cell["shown"] in ("none", "normal") for cell in cells)  # no labels
