"""Ledger protocol 4 (slots settle with the supplier of last resort; 3 gave blocks their
events; 2 made the state root the state trie's root): a
genesis document or a validator store of an older protocol is refused, and the refusal says how
to make a new network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ledger.genesis import Genesis, GenesisError
from ledger.node import StateMismatch, Validator
from ledger.state import PROTOCOL_VERSION
from ledger.store import ProtocolMismatch, open_store
from tests.ledger.chains import VALIDATORS, build_chain, raw_sql, registry, write_chain


class _Silent:
    def send(self, to: int | None, message: dict[str, Any]) -> None:
        raise AssertionError("no message expected")

    def committed(self, block: Any) -> None:
        raise AssertionError("no commit expected")


@pytest.fixture
def network(tmp_path: Path, settings: Any) -> Path:
    settings.LEDGER_DIR = tmp_path
    settings.LEDGER_STORE_URL = f"sqlite:///{tmp_path}/store-{{node}}.sqlite3"
    chain = build_chain(3, 2)
    for index in range(4):
        store = open_store(f"sqlite:///{tmp_path}/store-{index}.sqlite3")
        write_chain(store, chain)
        store.close()
    chain.genesis.to_json_file(tmp_path / "genesis.json")
    return tmp_path


def _start(network: Path, index: int, store: Any) -> Validator:
    return Validator(
        genesis=Genesis.from_json_file(network / "genesis.json"),
        index=index,
        keys=VALIDATORS[index],
        store=store,
        registry=registry(),
        transport=_Silent(),
        now_ms=0,
    )


def _as_protocol_1(url: str) -> None:
    """What a store written before protocol 2 looks like: no protocol mark."""
    raw_sql(url, "DELETE FROM meta WHERE key = 'protocol'")


def test_genesis_documents_and_stores_carry_protocol_4(network: Path) -> None:
    document = json.loads((network / "genesis.json").read_text())
    assert document["protocol"] == PROTOCOL_VERSION == 4
    store = open_store(f"sqlite:///{network}/store-0.sqlite3")
    store.check_protocol()  # no error
    assert raw_sql(store.url, "SELECT value FROM meta WHERE key = 'protocol'") == [("4",)]
    store.close()


def test_it_refuses_a_genesis_document_of_protocol_1(network: Path) -> None:
    document = json.loads((network / "genesis.json").read_text())
    del document["protocol"]
    with pytest.raises(GenesisError, match=r"protocol 1.*make clean"):
        Genesis.from_json(document)
    with pytest.raises(GenesisError, match="protocol 2"):
        Genesis.from_json(document | {"protocol": 2})  # the state trie, but no events
    with pytest.raises(GenesisError, match="protocol 3"):
        Genesis.from_json(document | {"protocol": 3})  # events, but no residual settlement
    with pytest.raises(GenesisError, match="protocol 5"):
        Genesis.from_json(document | {"protocol": 5})
    (network / "genesis.json").write_text(json.dumps(document))
    with pytest.raises(CommandError, match=r"protocol 1.*ledger genesis"):
        call_command("ledger", "status")


def test_a_validator_refuses_a_store_of_protocol_1(network: Path) -> None:
    url = f"sqlite:///{network}/store-1.sqlite3"
    _as_protocol_1(url)
    store = open_store(url)
    with pytest.raises(ProtocolMismatch, match="protocol 1"):
        _start(network, 1, store)
    with pytest.raises(ProtocolMismatch):
        store.init_schema()  # nor is it stamped as protocol 4 by initializing it again
    store.close()


def test_a_validator_refuses_a_store_of_protocol_2(network: Path) -> None:
    """Protocol 2 blocks carry no events and its state keeps settled history."""
    url = f"sqlite:///{network}/store-1.sqlite3"
    raw_sql(url, "UPDATE meta SET value = '2' WHERE key = 'protocol'")
    store = open_store(url)
    with pytest.raises(ProtocolMismatch, match=r"protocol 2.*protocol 4"):
        _start(network, 1, store)
    store.close()


def test_verify_and_repair_refuse_a_store_of_protocol_1(network: Path) -> None:
    _as_protocol_1(f"sqlite:///{network}/store-2.sqlite3")
    for action in ("verify", "repair"):
        with pytest.raises(CommandError, match="protocol 1"):
            call_command("ledger", action, "--node", "2")
    call_command("ledger", "verify", "--node", "1")  # the others are fine


def test_a_validator_refuses_a_stored_state_its_tip_does_not_certify(network: Path) -> None:
    """At start a validator builds the state trie and checks it against its tip's root."""
    url = f"sqlite:///{network}/store-3.sqlite3"
    row = raw_sql(url, "SELECT key FROM state WHERE key LIKE 'bal/%' ORDER BY key LIMIT 1")
    raw_sql(url, "UPDATE state SET value = '999999' WHERE key = ?", (row[0][0],))
    store = open_store(url)
    with pytest.raises(StateMismatch, match="ledger repair --node 3"):
        _start(network, 3, store)
    store.close()
