"""A regulator acts from the rows of its console, against the real network: four validator
processes and the site's worker projecting their blocks, behind the real daphne server.

(a) It finds a contract in the contracts list and curtails it from its row, with a reason and a
confirmation; the row follows the block.
(b) It restricts the buyer of a flagged contract from the review queue's row (the account form,
filled in); the household's order form says so without reloading.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from market import selectors
from market import services as market_services
from market.models import Contract
from tests.browser.support import outside_event_loop
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_supervision import (  # noqa: F401 (fixtures)
    BLOCK_MS,
    _flagged_contract,
    _live_server,
    _market_ready,
    _not_reloaded,
    _open_live,
    _wait_for,
    network,
    running,
)
from tests.ledger.live import LiveNetwork

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
REASON = "Above what the feeder carries at that hour"


def _contract(live: LiveNetwork, seller: User, buyer: User) -> Contract:
    """A 2 kWh contract (below the review size: in no review queue)."""
    slot = selectors.slot_list()[2].start  # open for a while yet
    market_services.order_place(user=seller, slot=slot, side="sell", energy_wh=2_000, price=20)
    market_services.order_place(user=buyer, slot=slot, side="buy", energy_wh=2_000, price=25)
    _wait_for(live, "the contract", lambda: Contract.objects.exists())
    contract: Contract = Contract.objects.get()
    connection.close()
    return contract


def test_a_regulator_curtails_a_contract_from_its_row_in_the_contracts_list(
    running: LiveNetwork,  # noqa: F811 (the fixture imported above)
    new_page: NewPage,
) -> None:
    _operator, regulator, _seller, buyer = outside_event_loop(_market_ready, running)
    contract = outside_event_loop(_contract, running, _seller, buyer)

    page = new_page()
    page.add_init_script(path=str(AXE))
    _open_live(page, regulator, "/console/regulator/")
    search = page.get_by_role("search", name="Find contracts")
    search.get_by_label("Find").fill(buyer.name)
    search.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("contracts-count")).to_have_text("1 contract matches; page 1 of 1.")
    row = page.locator(f'#contract-rows tr[data-contract="{contract.id}"]')
    expect(row).to_contain_text("2 kWh")
    expect(row.get_by_role("link", name=buyer.name)).to_have_attribute(
        "href", f"/console/households/{buyer.pk}/"
    )
    assert violations(page) == [], page.url  # the list, its rows' forms and its search

    row.get_by_text("Veto or curtail…").click()  # a row's act is folded until asked for
    act = row.get_by_role("form", name=f"Veto or curtail contract {contract.id}")
    act.get_by_label("Reason").fill(REASON)
    act.get_by_label("Energy it is cut to").fill("1.5")
    act.get_by_role("button", name="Curtail…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Curtail contract {contract.id}?")
    expect(page.get_by_test_id("confirmation")).to_contain_text("1.5 kWh")
    page.get_by_role("button", name="Confirm: curtail the contract").click()
    expect(page.get_by_role("status").filter(has_text="was submitted")).to_be_visible()
    # Back on the list it came from; the row follows the block (an act: the list's topic).
    assert page.url.endswith("/console/regulator/?contracts_q=Ben+Meter#contracts-heading")
    expect(row).to_contain_text("1.5 kWh", timeout=BLOCK_MS)
    _wait_for(
        running,
        "the curtailment projected",
        lambda: Contract.objects.get(id=contract.id).energy_wh == 1_500,
    )


def test_a_regulator_restricts_a_party_from_the_review_queue(
    running: LiveNetwork,  # noqa: F811 (the fixture imported above)
    new_page: NewPage,
) -> None:
    _operator, regulator, seller, buyer = outside_event_loop(_market_ready, running)
    contract = outside_event_loop(_flagged_contract, running, seller, buyer)

    household, supervising = new_page(), new_page()
    _open_live(household, buyer, "/market/")
    notice = household.locator("#market-trading-stop")
    expect(notice).to_have_text("")

    _open_live(supervising, regulator, "/console/regulator/")
    item = supervising.locator(f'#review-rows tr[data-review="{contract.id}"]')
    item.get_by_role("link", name=f"Restrict the buyer, {buyer.name}").click()

    # The account form, filled in with the buyer and the act; the regulator says why.
    form = supervising.get_by_role("form", name="Restrict, reinstate or reset an account")
    expect(form.get_by_label("Account address")).to_have_value(buyer.identity.address)
    expect(form.get_by_label("Restrict (it may not trade", exact=False)).to_be_checked()
    form.get_by_label("Reason").fill(REASON)
    form.get_by_role("button", name="Continue…").click()
    expect(supervising.get_by_role("heading", level=1)).to_have_text(
        f"Restrict account {buyer.identity.address}?"
    )
    expect(supervising.get_by_test_id("confirmation")).to_contain_text(buyer.name)
    supervising.get_by_role("button", name="Confirm: restrict the account").click()
    expect(supervising.get_by_role("status").filter(has_text="was submitted")).to_be_visible()

    # The household's order form says so, without reloading; the audit log records it.
    expect(notice).to_contain_text(
        f"A regulator restricted your account; it may not trade: {REASON}", timeout=BLOCK_MS
    )
    assert _not_reloaded(household)
    expect(supervising.locator("#audit-rows")).to_contain_text(
        f"Restricted account {buyer.identity.address}", timeout=BLOCK_MS
    )
