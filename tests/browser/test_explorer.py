"""The reader's own browser checks a transaction's inclusion proof (WebCrypto SHA-256)."""

from __future__ import annotations

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
