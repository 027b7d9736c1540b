"""The household dashboard hands its browser what it needs to check the page's money against the
validators' signatures (static/js/stateproof.js; the browser's checks are in
tests/browser/test_state_proof.py): the address, the read model's figures and the block they are
of, the network's validator keys and the genesis document's hash."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from ledger.models import LedgerAccount
from market.models import MarketAccount
from tests.ledger.chains import OPERATOR, VALIDATORS, build_chain, recent_start_ms
from tests.ledger.site import Site, use_network

pytestmark = pytest.mark.django_db


class _Attributes(HTMLParser):
    """The attributes of every element carrying ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if any(name == self.marker for name, _ in attrs):
            self.found.append(dict(attrs))


def state_proof_section(html: str) -> dict[str, str | None] | None:
    parser = _Attributes("data-state-proof")
    parser.feed(html)
    assert len(parser.found) <= 1
    return parser.found[0] if parser.found else None


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def enrol(site: Site, user: User, credits: int) -> None:
    address, public_key = user.identity.address, user.identity.public_key
    txs = [
        site.sign(
            OPERATOR, "account.register", address=address, public_key=public_key, role="household"
        ),
        site.sign(OPERATOR, "credit.issue", to=address, amount=credits),
        site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="feeder-1"),
    ]
    now_ms = max(site.blocks[-1].timestamp_ms + 1, time.time_ns() // 1_000_000)
    assert set(site.commit(txs, timestamp_ms=now_ms).results) == {"ok"}


def dashboard(user: User) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    return response.content.decode()


def test_it_gives_the_browser_the_figures_the_block_and_the_validators_keys(
    site: Site, prosumer: User
) -> None:
    enrol(site, prosumer, 123_456)
    MarketAccount.objects.filter(address=prosumer.identity.address).update(locked=2_500)

    html = dashboard(prosumer)

    assert state_proof_section(html) == {
        "aria-labelledby": "proof-heading",
        "data-state-proof": None,
        "data-address": prosumer.identity.address,
        "data-chain": site.chain.genesis.chain,
        "data-validators": ",".join(v.public_key_hex for v in VALIDATORS),
        "data-balance": "123456",
        "data-locked": "2500",
        "data-height": str(site.blocks[-1].height),
        "data-currency": "€",
        "data-api": "/api/v1/ledger/state",
        "data-figures-url": "/dashboard/",
        "data-follows": "#market-money",
    }
    assert "Verify with the validators' signatures</button>" in html
    assert 'aria-live="polite"' in html
    assert f'<code data-testid="genesis-hash">{site.chain.genesis.document_hash()}</code>' in html
    assert '<script src="/static/js/stateproof.js" defer></script>' in html


def test_the_figures_are_the_read_models_even_when_they_are_wrong(
    site: Site, prosumer: User
) -> None:
    """The page states what the site's read model says; checking it is the browser's job."""
    enrol(site, prosumer, 10_000)
    LedgerAccount.objects.filter(address=prosumer.identity.address).update(balance=99_999)

    section = state_proof_section(dashboard(prosumer))

    assert section is not None
    assert (section["data-balance"], section["data-locked"]) == ("99999", "0")


def test_it_says_there_is_nothing_to_verify_before_the_household_is_on_the_ledger(
    site: Site, prosumer: User
) -> None:
    html = dashboard(prosumer)

    assert state_proof_section(html) is None
    assert "stateproof.js" not in html
    assert "Nothing to verify yet: once your household is on the ledger" in html


def test_it_offers_no_check_to_an_account_that_is_not_a_household(
    site: Site, grid_operator: User
) -> None:
    html = dashboard(grid_operator)

    assert state_proof_section(html) is None
    assert "Nothing to verify" not in html
