"""The block explorer pages and the consoles' validator health, on projected real blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from gridplatform.accounts.models import Role, User
from ledger import selectors
from ledger.models import BlockRecord, TransactionRecord
from tests.factories import UserFactory
from tests.ledger.chains import build_chain
from tests.ledger.site import Site, use_network


@pytest.fixture
def site(db: None, settings: Any, tmp_path: Path) -> Site:
    chain = build_chain(3, 2)
    use_network(settings, tmp_path, chain)
    projected = Site(chain)
    projected.project_all()
    return projected


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_it_lists_the_blocks_newest_first(site: Site, prosumer: User) -> None:
    page = logged_in(prosumer).get(reverse("ledger-blocks")).content.decode()
    heights = [int(h) for h in BlockRecord.objects.values_list("height", flat=True)]
    assert sorted(heights) == [0, 1, 2, 3]
    positions = [page.index(f'data-height="{h}"') for h in (3, 2, 1, 0)]
    assert positions == sorted(positions)


def test_it_shows_a_blocks_transactions_and_certificate(site: Site, prosumer: User) -> None:
    block = site.blocks[2]
    page = logged_in(prosumer).get(reverse("ledger-block", args=[2])).content.decode()
    assert block.hash in page
    assert block.header.tx_root in page
    for tx in block.transactions:
        assert reverse("ledger-transaction", args=[tx.id]) in page
    for vote in block.certificate:
        assert vote.signature in page


def test_it_gives_the_browser_what_it_needs_to_check_a_proof(site: Site, prosumer: User) -> None:
    tx = site.blocks[3].transactions[1]
    page = logged_in(prosumer).get(reverse("ledger-transaction", args=[tx.id])).content.decode()
    status = selectors.transaction_status(tx_id=tx.id)
    assert status.proof is not None
    assert f'data-leaf="{tx.id}"' in page
    assert f'data-root="{site.blocks[3].header.tx_root}"' in page
    assert f'data-path="{",".join(status.proof["path"])}"' in page
    assert f'data-index="{status.proof["index"]}"' in page


def test_it_answers_404_for_an_unknown_block_or_transaction(site: Site, prosumer: User) -> None:
    client = logged_in(prosumer)
    assert client.get(reverse("ledger-block", args=[99])).status_code == 404
    assert client.get(reverse("ledger-transaction", args=["ab" * 32])).status_code == 404
    assert client.get(reverse("ledger-transaction", args=["not-an-id"])).status_code == 404


def test_it_shows_the_explorer_to_anonymous_visitors(site: Site) -> None:
    """The ledger is public: every explorer page opens without an account (the anonymous ones
    are tested further in tests/ledger/test_public_ledger.py)."""
    client = Client()
    tx = site.blocks[3].transactions[0]
    for url in (
        reverse("ledger-blocks"),
        reverse("ledger-block-rows"),
        reverse("ledger-block", args=[3]),
        reverse("ledger-transaction", args=[tx.id]),
        reverse("ledger-validators"),
        reverse("ledger-state") + "?key=ledger/supply",
    ):
        assert client.get(url).status_code == 200, url
    page = client.get(reverse("ledger-blocks")).content.decode()
    assert 'data-height="3"' in page
    assert "data-live-socket" not in page  # live hints are for accounts (ledger.consumers)


def test_it_sends_anonymous_visitors_of_the_consoles_validator_rows_to_log_in(site: Site) -> None:
    response = Client().get(reverse("ledger-validator-rows"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_shows_validator_health_only_to_supervisors(
    site: Site, prosumer: User, grid_operator: User
) -> None:
    assert logged_in(prosumer).get(reverse("ledger-validator-rows")).status_code == 403
    rows = logged_in(grid_operator).get(reverse("ledger-validator-rows")).content.decode()
    assert rows.count("<tr data-validator=") == 4
    assert rows.count(">down<") == 4  # the site has heard from none of them in this test
    console = logged_in(grid_operator).get(reverse("operator-console")).content.decode()
    assert "Validators" in console


def test_it_counts_the_projected_transactions(site: Site) -> None:
    assert TransactionRecord.objects.count() == sum(len(b.transactions) for b in site.blocks)


def test_it_is_reachable_from_the_navigation(db: None) -> None:
    page = logged_in(UserFactory(role=Role.HOUSEHOLD)).get(reverse("dashboard")).content.decode()
    assert reverse("ledger-blocks") in page


def find(text: str) -> Any:
    """The explorer's search, as an anonymous visitor uses it."""
    return Client().get(reverse("ledger-search"), {"q": text})


def test_the_search_finds_a_height_a_transaction_a_block_hash_and_an_address(site: Site) -> None:
    tx = site.blocks[3].transactions[1]
    assert find("2").url == reverse("ledger-block", args=[2])
    assert find(f"  {tx.id.upper()} ").url == reverse("ledger-transaction", args=[tx.id])
    assert find(tx.id[:12]).url == reverse("ledger-transaction", args=[tx.id])
    assert find(site.blocks[1].hash).url == reverse("ledger-block", args=[1])
    assert find(tx.sender).url == reverse("ledger-address", args=[tx.sender])
    assert 'role="search"' in Client().get(reverse("ledger-blocks")).content.decode()


def test_a_short_prefix_lists_the_transactions_it_matches(site: Site) -> None:
    record = TransactionRecord.objects.order_by("block_id", "position").last()
    assert record is not None
    # A second record whose id shares its first 10 characters (ids are hashes: made here).
    twin_id = (
        record.tx_id[:10] + "f" * 54 if record.tx_id[10] != "f" else record.tx_id[:10] + "0" * 54
    )
    TransactionRecord.objects.create(
        tx_id=twin_id,
        block=record.block,
        position=999,
        type=record.type,
        sender=record.sender,
        nonce=record.nonce,
        result=record.result,
        body=record.body,
    )
    page = find(record.tx_id[:10]).content.decode()
    assert page.count('data-testid="search-result"') == 2
    assert reverse("ledger-transaction", args=[twin_id]) in page
    response = find("abcdef1")  # 7 characters of hex, not all digits (a height)
    assert response.status_code == 404
    assert "Give at least 8 characters of a transaction id." in response.content.decode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99", "There is no block 99 yet; the newest is 3."),
        ("hello", "Search by block height, transaction id"),
        ("", "Search by block height, transaction id"),
        ("ffffffffff", "No committed transaction or block matches ffffffffff."),
        ("01" + "0" * 48, "is not an address: address checksum does not match"),
    ],
)
def test_a_search_that_finds_nothing_says_why(site: Site, text: str, message: str) -> None:
    response = find(text)
    assert response.status_code == 404
    assert message in response.content.decode()


def test_an_address_page_lists_what_it_sent_and_what_names_it(site: Site) -> None:
    tx = site.blocks[3].transactions[1]
    sender = tx.sender
    page = Client().get(reverse("ledger-address", args=[sender])).content.decode()
    sent = TransactionRecord.objects.filter(sender=sender).count()
    assert sent >= 1
    assert page.count('data-testid="address-tx"') >= sent
    assert reverse("ledger-transaction", args=[tx.id]) in page
    # Both ways: the transaction's page and its block's link back to the sender's address.
    tx_page = Client().get(reverse("ledger-transaction", args=[tx.id])).content.decode()
    assert f'href="{reverse("ledger-address", args=[sender])}"' in tx_page
    block_page = Client().get(reverse("ledger-block", args=[3])).content.decode()
    assert f'href="{reverse("ledger-address", args=[sender])}"' in block_page
    assert Client().get(reverse("ledger-address", args=["nonsense"])).status_code == 404
