"""A household trades heat in a real browser: on a market that trades heat too, it chooses heat
on the market page, places a bid, and the order shows in kWh thermal in its orders and in heat's
own book once its block commits, while electricity's book stays empty."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from ledger.crypto import Transaction
from ledger.models import SubmittedTransaction
from tests.browser.support import (
    LiveServer,
    check_while_live,
    outside_event_loop,
    server_with_environment,
)
from tests.browser.test_accounts import LIVE_UPDATE_TIMEOUT_MS, log_in
from tests.browser.test_market_pages import pick_slot
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import OPERATOR, Chain, build_chain, recent_start_ms
from tests.ledger.site import Site

NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
HEAT = (("market.heat", 1),)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Chain]:
    """A network that trades heat, whose blocks are "now" (the site's clock decides which slots
    are open)."""
    directory = tmp_path_factory.mktemp("network")
    chain = build_chain(1, 1, start_ms=recent_start_ms(), options=HEAT)
    chain.genesis.to_json_file(directory / "genesis.json")
    return directory, chain


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network: tuple[Path, Chain]) -> Iterator[LiveServer]:
    """The conftest's server, with this network's LEDGER_DIR: it signs and submits."""
    directory, _ = network
    server = server_with_environment(LEDGER_DIR=str(directory))
    yield server
    server.stop()


def _now_after(site: Site) -> int:
    return max(site.blocks[-1].timestamp_ms + 1, time.time_ns() // 1_000_000)


def _household_on_both_networks(site: Site) -> User:
    """A household on the ledger with credits, on a feeder and on a heat segment."""
    user: User = UserFactory(name="Hal Heater", email="hal@test.example")
    site.project_all()
    address, public_key = user.identity.address, user.identity.public_key
    txs = [
        site.sign(
            OPERATOR, "account.register", address=address, public_key=public_key, role="household"
        ),
        site.sign(OPERATOR, "credit.issue", to=address, amount=100_000),
        site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
        site.sign(
            OPERATOR,
            "grid.feeder.publish",
            feeder="loop-1",
            export_limit_w=100_000,
            import_limit_w=100_000,
            carrier="heat",
        ),
        site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="loop-1", carrier="heat"),
    ]
    block = site.commit(txs, timestamp_ms=_now_after(site))
    assert set(block.results) == {"ok"}
    return user


def _commit_pending(site: Site) -> list[str]:
    rows = SubmittedTransaction.objects.order_by("id")
    txs = [Transaction.from_json(row.body) for row in rows]
    return list(site.commit(txs, timestamp_ms=_now_after(site)).results)


def test_a_household_chooses_heat_and_its_order_shows_in_kwh_thermal(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    site = Site(chain)
    user = outside_event_loop(_household_on_both_networks, site)

    page = new_page()
    log_in(page, email=user.email, password=PASSWORD)
    page.goto("/market/")
    status = page.locator("[data-live-status]")
    expect(status).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)
    switch = page.get_by_role("navigation", name="Energy carrier")
    expect(switch.get_by_role("link", name="Electricity (kWh)")).to_have_attribute(
        "aria-current", "page"
    )
    switch.get_by_role("link", name="Heat (kWh thermal)").click()
    expect(page.locator("#book-heading")).to_contain_text("Heat order book for")
    expect(status).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)

    form = page.get_by_role("form", name="Place an order")
    heat = form.get_by_label("Heat (kWh thermal)")
    expect(heat).to_be_checked()  # the page's carrier is the form's
    pick_slot(page, form, 2)  # open for a while yet
    check_while_live(page, form.get_by_label("Buy", exact=True))
    form.get_by_label("Energy", exact=True).fill("2")
    form.get_by_label("Price", exact=True).fill("0.09")
    form.get_by_label("Price unit").select_option(label="€ per kWh")
    form.get_by_role("button", name="Place the order").click()

    message = page.get_by_role("status").filter(has_text="was submitted")
    expect(message).to_contain_text("Your order to buy 2 kWh thermal at €0.09/kWh thermal for")
    row = SubmittedTransaction.objects.get()
    assert row.body["payload"]["carrier"] == "heat"
    assert row.body["payload"]["energy_wh"] == 2_000

    # The block commits: the live lists show the order, in heat's unit, without a reload.
    expect(status).to_have_text(LIVE, timeout=LIVE_UPDATE_TIMEOUT_MS)
    assert outside_event_loop(_commit_pending, site) == ["ok"]
    orders = page.locator("#market-orders tr[data-order]")
    expect(orders).to_have_count(1, timeout=LIVE_UPDATE_TIMEOUT_MS)
    expect(orders.locator("[data-carrier]")).to_have_text("Heat")
    expect(orders).to_contain_text("2 kWh thermal")
    expect(orders).to_contain_text("€0.09/kWh thermal")
    bids = page.locator('[data-testid="book"] [data-side="buy"] tbody tr')
    expect(bids.locator("td")).to_have_text(["€0.09/kWh thermal", "2 kWh thermal", "1"])

    # Electricity's book is another book: the bid is not in it.
    page.get_by_role("navigation", name="Energy carrier").get_by_role(
        "link", name="Electricity (kWh)"
    ).click()
    expect(page.locator("#book-heading")).not_to_contain_text("Heat")
    expect(page.locator('[data-testid="book"] [data-side="buy"] tbody')).to_have_text("No bids.")
