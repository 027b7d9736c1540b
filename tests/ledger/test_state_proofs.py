"""State proofs through the public API: anyone, without logging in, gets a key's value and its
trie proof with the block header and certificate, and can check all of it without the site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from ledger import replica
from ledger.blocks import BlockHeader, CommitSignature, block_hash, verify_certificate
from ledger.models import StateEntry
from ledger.trie import verify
from tests.ledger.chains import HOUSEHOLDS, VALIDATORS, build_chain
from tests.ledger.site import Site, use_network

API = "/api/v1/ledger"


@pytest.fixture
def site(settings: Any, tmp_path: Path, db: None) -> Site:
    chain = build_chain(4, 6)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


def checked(body: dict[str, Any]) -> dict[str, Any]:
    """What an outsider does with an answer: the header hashes to block_hash, a quorum of the
    genesis validators signed it, and each proof leads to its state root."""
    header = BlockHeader.from_json(body["header"])
    assert block_hash(header) == body["block_hash"]
    votes = [CommitSignature(**vote) for vote in body["certificate"]]
    verify_certificate(header, votes, validators=[v.public_key_hex for v in VALIDATORS])
    for entry in body.get("entries", [body]):
        assert verify(header.state_root, entry["key"], entry["value"], entry["proof"]), entry
    return body


def test_anyone_gets_a_balance_proven_against_the_newest_block(site: Site) -> None:
    address = HOUSEHOLDS[0].address
    body = checked(Client().get(f"{API}/state/bal/{address}").json())
    assert body["height"] == 4
    assert (body["key"], body["present"]) == (f"bal/{address}", True)
    assert body["value"] == site.chain.states[4].get(f"bal/{address}")


def test_it_proves_a_key_absent(site: Site) -> None:
    body = checked(Client().get(f"{API}/state/market/locked/{HOUSEHOLDS[0].address}").json())
    assert (body["present"], body["value"]) == (False, None)


def test_it_proves_several_keys_against_one_block(site: Site) -> None:
    keys = [f"bal/{HOUSEHOLDS[1].address}", f"acct/{HOUSEHOLDS[1].address}", "ledger/supply"]
    query = "&".join(f"key={key}" for key in keys)
    body = checked(Client().get(f"{API}/state?{query}").json())
    assert [entry["key"] for entry in body["entries"]] == keys
    assert [entry["value"] for entry in body["entries"]] == [
        site.chain.states[4].get(key) for key in keys
    ]


@pytest.mark.django_db(transaction=True)
def test_a_forged_row_is_never_proven(settings: Any, tmp_path: Path) -> None:
    """A process keeps the state it projected, so a row changed behind its back changes
    nothing it proves; a process that must read the rows checks them against the certified
    root first, and refuses to prove anything from rows that do not give it."""
    chain = build_chain(4, 6)
    use_network(settings, tmp_path, chain)
    replica.forget()
    Site(chain).project_all()
    key = f"bal/{HOUSEHOLDS[0].address}"
    StateEntry.objects.filter(key=key).update(value=10**9)
    body = checked(Client().get(f"{API}/state/{key}").json())
    assert body["value"] == chain.states[4].get(key)
    replica.forget()  # as a process that starts now
    response = Client().get(f"{API}/state/{key}")
    assert (response.status_code, response.json()["code"]) == (503, "replica_damaged")


@pytest.mark.parametrize("query", ["", "key=", "&".join(["key=a"] * 17)])
def test_it_refuses_a_bad_list_of_keys(site: Site, query: str) -> None:
    response = Client().get(f"{API}/state?{query}")
    assert (response.status_code, response.json()["code"]) == (400, "bad_keys")


def test_it_says_when_nothing_is_projected(settings: Any, tmp_path: Path, db: None) -> None:
    use_network(settings, tmp_path, build_chain(1, 1))
    response = Client().get(f"{API}/state/ledger/supply")
    assert (response.status_code, response.json()["code"]) == (503, "ledger_unavailable")
