"""The operator console's validator health in a real browser: each validator's signing history
over the newest blocks, as a strip of marks that differ by shape as well as colour and as words,
read from the projected blocks' certificates (``tests.ledger.test_selectors``), and no
accessibility violation with the history shown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import LiveServer, outside_event_loop, server_with_environment
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import Chain, build_chain
from tests.ledger.test_selectors import MISSED, project_history

NewPage = Callable[[], Page]


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LEDGER_DIR with the test chain's genesis document: the validators the console lists."""
    directory = tmp_path_factory.mktemp("network")
    build_chain(0, 0).genesis.to_json_file(directory / "genesis.json")
    return directory


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network_dir: Path) -> Iterator[LiveServer]:
    """The conftest's server, with that genesis document in its LEDGER_DIR."""
    server = server_with_environment(
        LEDGER_DIR=str(network_dir),
        LEDGER_STORE_URL=f"sqlite:///{network_dir}/store-{{node}}.sqlite3",
    )
    yield server
    server.stop()


@pytest.fixture
def chain(settings: Any, network_dir: Path, live_server_url: str) -> Chain:
    chain = build_chain(0, 0)
    settings.LEDGER_DIR = network_dir  # the genesis document is already there
    outside_event_loop(project_history, chain)
    return chain


def test_the_operator_console_shows_each_validators_signing_history(
    chain: Chain, new_page: NewPage
) -> None:
    operator = outside_event_loop(UserFactory, email="op@test.example", role="grid_operator")
    page = new_page()
    page.add_init_script(path=str(AXE))
    log_in(page, email=operator.email, password=PASSWORD)
    page.goto("/console/operator/")

    rows = page.locator("#validator-rows tr[data-validator]")
    expect(rows).to_have_count(4)
    two = page.locator('#validator-rows tr[data-validator="2"]')
    expect(two.get_by_test_id("validator-signed")).to_contain_text(
        "8 of the last 12 blocks (1\u201312); missed 4\u20135, 11\u201312."
    )
    expect(two.get_by_test_id("validator-gap")).to_contain_text("(block 11); not in a certificate")
    marks = two.locator(".signing-strip .mark")
    expect(marks).to_have_count(12)
    missed = two.locator('.signing-strip .mark[data-signed="no"]')
    expect(missed).to_have_count(len(MISSED[2]))
    # Drawn by the page's script from the row's compact data: who proposed, each block's height.
    expect(two.locator(".signing-strip .mark[data-proposed]")).to_have_count(3)
    expect(marks.nth(3)).to_have_attribute(
        "title", "block 4: not in the certificate; proposed by validator 0"
    )
    # Not colour alone: a missed block's mark is a shorter, hollow one. Both heights are measured
    # in one step of the page, once its strip is drawn: the rows are re-fetched every 5 s, and a
    # row just swapped in has no marks until the script draws them.
    heights = page.wait_for_function(
        """() => {
            const strip = document.querySelector(
                '#validator-rows tr[data-validator="2"] .signing-strip[data-drawn="yes"]');
            const signed = strip && strip.querySelector('.mark[data-signed="yes"]');
            const missed = strip && strip.querySelector('.mark[data-signed="no"]');
            if (!signed || !missed) { return null; }
            return [signed.getBoundingClientRect().height, missed.getBoundingClientRect().height];
        }"""
    ).json_value()
    signed_height, missed_height = heights
    assert signed_height > 0
    assert missed_height < signed_height * 0.6
    expect(page.locator('#validator-rows tr[data-validator="0"]')).to_contain_text(
        "In every certificate shown."
    )
    # The rows are re-fetched every 5 s: the history is still there after one.
    with page.expect_response(lambda r: "/ledger/validators/rows/" in r.url, timeout=15_000):
        pass
    expect(marks).to_have_count(12)
    assert violations(page) == []
