"""The reader's own browser checks a transaction's inclusion proof (WebCrypto SHA-256); the
explorer is public, so an anonymous visitor walks it too."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import outside_event_loop
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import build_chain
from tests.ledger.site import Site, use_network

NewPage = Callable[[], Page]


@pytest.fixture
def projected(live_server_url: str, settings: Any, tmp_path: Path) -> Site:
    chain = build_chain(3, 3)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    outside_event_loop(site.project_all)
    return site


def test_it_verifies_an_inclusion_proof_in_the_browser(projected: Site, new_page: NewPage) -> None:
    user = outside_event_loop(UserFactory, email="reader@test.example")
    tx = projected.blocks[2].transactions[2]
    page = new_page()
    log_in(page, email=user.email, password=PASSWORD)
    page.goto(f"/ledger/tx/{tx.id}/")
    result = page.locator("[data-merkle-result]")
    page.get_by_role("button", name="Verify the proof in my browser").click()
    expect(result).to_have_text(
        "Verified in your browser: this transaction is in the block's Merkle root."
    )

    # The same check fails if the root is not the block's: the browser does the arithmetic.
    page.evaluate("document.querySelector('[data-merkle-proof]').dataset.root = '00'.repeat(32)")
    page.get_by_role("button", name="Verify the proof in my browser").click()
    expect(result).to_have_text("Proof does NOT verify against the block's Merkle root.")


def test_an_anonymous_visitor_walks_the_explorer_and_checks_a_proof(
    projected: Site, new_page: NewPage
) -> None:
    block = projected.blocks[2]
    tx = block.transactions[1]
    page = new_page()
    page.goto("/ledger/")
    expect(page.get_by_role("heading", name="Ledger", exact=True)).to_be_visible()
    page.get_by_role("link", name="2", exact=True).click()
    expect(page.get_by_role("heading", name="Block 2")).to_be_visible()
    expect(page.get_by_text(block.hash)).to_be_visible()
    page.locator(f'a[href="/ledger/tx/{tx.id}/"]').click()
    expect(page.get_by_test_id("tx-id")).to_have_text(tx.id)
    expect(page.get_by_test_id("tx-signature")).to_have_text(tx.signature)
    page.get_by_role("button", name="Verify the proof in my browser").click()
    expect(page.locator("[data-merkle-result]")).to_have_text(
        "Verified in your browser: this transaction is in the block's Merkle root."
    )
    expect(page.get_by_role("link", name="Log in")).to_be_visible()  # never logged in


def test_the_explorers_search_box_finds_a_block_a_transaction_and_an_address(
    projected: Site, new_page: NewPage
) -> None:
    tx = projected.blocks[2].transactions[1]
    page = new_page()

    def find(text: str) -> None:
        page.goto("/ledger/")
        search = page.get_by_role("search", name="Search the ledger")
        search.get_by_label("Find a block, transaction or address").fill(text)
        search.get_by_role("button", name="Find").click()

    find("2")  # a height
    expect(page).to_have_url(re.compile(r"/ledger/blocks/2/$"))
    expect(page.get_by_role("heading", name="Block 2")).to_be_visible()

    find(tx.id[:8].upper())  # the first 8 characters of a transaction id, in any case
    expect(page).to_have_url(re.compile(rf"/ledger/tx/{tx.id}/$"))
    expect(page.get_by_test_id("tx-id")).to_have_text(tx.id)

    find(f"  {tx.sender}  ")  # an address, as pasted
    expect(page).to_have_url(re.compile(rf"/ledger/address/{tx.sender}/$"))
    expect(page.get_by_test_id("address")).to_have_text(tx.sender)
    # Links both ways: the address lists the transaction it sent, which names its sender.
    page.locator(f'a[href="/ledger/tx/{tx.id}/"]').first.click()
    expect(page.get_by_test_id("tx-id")).to_have_text(tx.id)
    expect(page.locator(f'a[href="/ledger/address/{tx.sender}/"]').first).to_be_visible()

    find("99")  # no such block: said on the page, with the newest
    expect(page.get_by_test_id("search-message")).to_have_text(
        f"There is no block 99 yet; the newest is {projected.blocks[-1].height}."
    )
