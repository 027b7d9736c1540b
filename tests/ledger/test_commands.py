"""The operator's `ledger` command on real stores: genesis, status, verify, repair."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from gridplatform.accounts.models import Role
from ledger.genesis import Genesis
from ledger.store import open_store
from tests.factories import UserFactory
from tests.ledger.chains import build_chain, flip_hex, rewrite_body, write_chain


@pytest.fixture
def ledger_dir(tmp_path: Path, settings: Any) -> Path:
    settings.LEDGER_DIR = tmp_path
    settings.LEDGER_STORE_URL = f"sqlite:///{tmp_path}/store-{{node}}.sqlite3"
    return tmp_path


@pytest.fixture
def network(ledger_dir: Path) -> Path:
    chain = build_chain(4, 3)
    for index in range(4):
        store = open_store(f"sqlite:///{ledger_dir}/store-{index}.sqlite3")
        write_chain(store, chain)
        store.close()
    chain.genesis.to_json_file(ledger_dir / "genesis.json")
    return ledger_dir


def test_it_creates_a_network_from_the_sites_operator_and_regulators(
    ledger_dir: Path, db: None, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = UserFactory(role=Role.GRID_OPERATOR)
    regulator = UserFactory(role=Role.REGULATOR)
    call_command("ledger", "genesis", "--validators", "4", "--chain", "test-net")
    genesis = Genesis.from_json_file(ledger_dir / "genesis.json")
    assert genesis.chain == "test-net"
    assert genesis.issuer_public_key == operator.identity.public_key
    assert list(genesis.regulator_public_keys) == [regulator.identity.public_key]
    for index in range(4):
        mode = (ledger_dir / f"validator-{index}.key").stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
        store = open_store(f"sqlite:///{ledger_dir}/store-{index}.sqlite3")
        assert store.tip().hash == genesis.block_hash
        store.close()
    assert f"genesis {genesis.block_hash}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="has a network already"):
        call_command("ledger", "genesis")


def test_it_refuses_a_validator_count_that_is_not_3f_plus_1(ledger_dir: Path, db: None) -> None:
    UserFactory(role=Role.GRID_OPERATOR)
    with pytest.raises(CommandError):
        call_command("ledger", "genesis", "--validators", "5")
    assert not (ledger_dir / "genesis.json").exists()


def test_it_reports_each_stores_height(network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("ledger", "status")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" tip ")[0] for line in lines] == [
        f"validator {i}: height 4" for i in range(4)
    ]


def test_it_verifies_a_healthy_store(network: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("ledger", "verify", "--node", "2")
    assert "store verified: heights 0..4" in capsys.readouterr().out


def test_it_names_the_damaged_height_and_repairs_it_from_peers(
    network: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{network}/store-2.sqlite3"

    def damage(block: dict[str, Any]) -> None:
        block["transactions"][1]["signature"] = flip_hex(block["transactions"][1]["signature"], 9)

    rewrite_body(url, 3, damage)
    with pytest.raises(CommandError, match="damaged at height 3"):
        call_command("ledger", "verify", "--node", "2")
    call_command("ledger", "repair", "--node", "2")
    out = capsys.readouterr().out
    assert "copied 2 blocks from peers" in out
    call_command("ledger", "verify", "--node", "2")
    stores = [open_store(f"sqlite:///{network}/store-{i}.sqlite3") for i in (1, 2)]
    assert stores[0].tip().hash == stores[1].tip().hash
    assert stores[0].load_state().root() == stores[1].load_state().root()
    for store in stores:
        store.close()


def test_it_refuses_a_node_outside_the_network(network: Path) -> None:
    with pytest.raises(CommandError, match=r"--node must be 0\.\.3"):
        call_command("ledger", "verify", "--node", "4")
