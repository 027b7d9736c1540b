"""Genesis, `verify_store` and `repair_store` on real chains, on SQLite and on PostgreSQL.

Damage is written straight into a store's tables with SQL, as an attacker or a disk fault would;
verification must name exactly the damaged height, and repair must restore the store from
healthy peers without writing to them.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ledger import blocks as ledger_blocks
from ledger.audit import RepairFailed, StoreDamaged, repair_store, verify_store
from ledger.genesis import (
    GENESIS_META_KEY,
    Genesis,
    GenesisError,
    KeyFileError,
    create_genesis,
    read_key_file,
    write_key_file,
)
from ledger.identity import KeyPair
from ledger.state import State
from ledger.store import Store
from tests.ledger import chains
from tests.ledger.chains import Chain, StoreFactory, flip_hex, raw_sql, rewrite_body

TIP = 6
DAMAGED = 3


@pytest.fixture(scope="module", autouse=True)
def _drop_databases() -> Iterator[None]:
    yield
    chains.finish_drops()


@pytest.fixture(scope="module")
def chain() -> Chain:
    return chains.build_chain(TIP, 5, seed=7)


@pytest.fixture(scope="module", params=chains.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stores(backend: str, tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(backend, tmp_path)
    yield factory
    factory.close()


class Peers(NamedTuple):
    stores: list[Store]
    dumps: list[dict[str, list[tuple[Any, ...]]]]

    def assert_untouched(self) -> None:
        assert [chains.dump_tables(peer.url) for peer in self.stores] == self.dumps


@pytest.fixture(scope="module")
def peers(backend: str, chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    """Three healthy validators' stores holding the whole chain, shared by the module's tests."""
    factory = StoreFactory(backend, tmp_path_factory.mktemp(f"peers-{backend}"))
    healthy = [factory.new() for _ in range(3)]
    for peer in healthy:
        chains.write_chain(peer, chain)
    yield Peers(healthy, [chains.dump_tables(peer.url) for peer in healthy])
    factory.close()


def _store_with(stores: StoreFactory, chain: Chain, through: int | None = None) -> Store:
    store = stores.new()
    chains.write_chain(store, chain, through=through)
    return store


def _hashes(store: Store) -> list[str]:
    return [block.hash for block in store.blocks(0, store.height())]


def _verify(store: Store, chain: Chain) -> Any:
    return verify_store(store, chain.genesis, chains.registry())


def _repair(store: Store, chain: Chain, peers: list[Store]) -> Any:
    return repair_store(store, chain.genesis, chains.registry(), peers)


# --- damage ----------------------------------------------------------------------------------


def _one_digit_more(value: int) -> int:
    return value + 1 if value % 10 != 9 else value - 1


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[str, Chain], None]:
    def damage(url: str, chain: Chain) -> None:
        rewrite_body(url, DAMAGED, change)

    return damage


def _flip(path: tuple[Any, ...]) -> Callable[[str, Chain], None]:
    def change(block: dict[str, Any]) -> None:
        parent = block
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = flip_hex(parent[path[-1]], 7)

    return _edit(change)


def _tx_amount(block: dict[str, Any]) -> None:
    payload = block["transactions"][0]["payload"]
    payload["amount"] = _one_digit_more(payload["amount"])


def _sql(statement: str, *params: Any) -> Callable[[str, Chain], None]:
    def damage(url: str, chain: Chain) -> None:
        raw_sql(url, statement, [p(chain) if callable(p) else p for p in params])

    return damage


def _balance_key(chain: Chain) -> str:
    return f"bal/{chains.HOUSEHOLDS[0].address}"


def _altered_balance(chain: Chain) -> str:
    return str(_one_digit_more(chain.states[TIP].get(_balance_key(chain))))


def _flipped_hash(chain: Chain) -> str:
    return flip_hex(chain.blocks[DAMAGED].hash, 5)


def _first_tx(chain: Chain) -> str:
    return chain.blocks[DAMAGED].transactions[0].id


def _truncate_body(url: str, chain: Chain) -> None:
    (body,) = raw_sql(url, "SELECT body FROM blocks WHERE height = ?", (DAMAGED,))[0]
    raw_sql(url, "UPDATE blocks SET body = ? WHERE height = ?", (body[:-1], DAMAGED))


# kind: (damage, first bad height, reason)
DAMAGES: dict[str, tuple[Callable[[str, Chain], None], int, str]] = {
    "header_state_root": (_flip(("header", "state_root")), DAMAGED, "bad_proposer_signature"),
    "header_previous_hash": (_flip(("header", "previous_hash")), DAMAGED, "bad_hash_link"),
    "header_tx_root": (_flip(("header", "tx_root")), DAMAGED, "bad_tx_root"),
    "transaction_body": (_edit(_tx_amount), DAMAGED, "bad_tx_root"),
    "transaction_signature": (
        _flip(("transactions", 0, "signature")),
        DAMAGED,
        "bad_signatures_root",
    ),
    "proposer_signature": (_flip(("proposer_signature",)), DAMAGED, "bad_proposer_signature"),
    "certificate_signature": (_flip(("certificate", 1, "signature")), DAMAGED, "bad_certificate"),
    "body_cut_short": (_truncate_body, DAMAGED, "unparseable"),
    "hash_column": (
        _sql("UPDATE blocks SET hash = ? WHERE height = ?", _flipped_hash, DAMAGED),
        DAMAGED,
        "hash_column_mismatch",
    ),
    "block_row_deleted": (
        _sql("DELETE FROM blocks WHERE height = ?", DAMAGED),
        DAMAGED,
        "missing_block",
    ),
    "tx_index_row_deleted": (
        _sql("DELETE FROM tx_index WHERE tx_id = ?", _first_tx),
        DAMAGED,
        "tx_index_mismatch",
    ),
    "tx_index_row_added": (
        _sql("INSERT INTO tx_index (tx_id, height, position) VALUES (?, ?, 9)", "ab" * 32, DAMAGED),
        DAMAGED,
        "tx_index_mismatch",
    ),
    "state_value_altered": (
        _sql("UPDATE state SET value = ? WHERE key = ?", _altered_balance, _balance_key),
        TIP,
        "state_table_mismatch",
    ),
    "state_row_deleted": (
        _sql("DELETE FROM state WHERE key = ?", _balance_key),
        TIP,
        "state_table_mismatch",
    ),
}


def test_it_verifies_a_healthy_store(stores: StoreFactory, chain: Chain) -> None:
    report = _verify(_store_with(stores, chain), chain)
    assert report.ok, report.describe()
    assert report.tip == TIP
    assert report.state_root == chain.states[TIP].root() == chain.blocks[TIP].header.state_root
    report.raise_if_bad()


def test_it_reports_an_empty_store_as_missing_genesis(stores: StoreFactory, chain: Chain) -> None:
    report = _verify(stores.new(), chain)
    assert (report.bad_height, report.reason, report.tip) == (0, "missing_block", -1)


@pytest.mark.parametrize("kind", DAMAGES)
def test_it_names_exactly_the_damaged_height(stores: StoreFactory, chain: Chain, kind: str) -> None:
    damage, height, reason = DAMAGES[kind]
    store = _store_with(stores, chain)
    damage(store.url, chain)
    report = _verify(store, chain)
    assert (report.bad_height, report.reason) == (height, reason), report.describe()
    if reason == "state_table_mismatch":
        assert report.location == "state table"
    with pytest.raises(StoreDamaged, match=f"height {height}"):
        report.raise_if_bad()


@pytest.mark.parametrize("kind", DAMAGES)
def test_it_repairs_damage_from_healthy_peers(
    stores: StoreFactory, chain: Chain, peers: Peers, kind: str
) -> None:
    damage, height, reason = DAMAGES[kind]
    store = _store_with(stores, chain)
    damage(store.url, chain)
    report = _repair(store, chain, peers.stores)
    assert (report.before.bad_height, report.before.reason) == (height, reason)
    assert report.after.ok
    assert report.after.tip == TIP
    assert _verify(store, chain).ok
    for peer in peers.stores:
        assert _hashes(store) == _hashes(peer)
        assert store.load_state().root() == peer.load_state().root()
        assert store.state_rows() == peer.state_rows()
    assert store.load_state().root() == chain.states[TIP].root()
    if reason == "state_table_mismatch":
        assert (report.truncated_from, report.copied) == (None, 0)  # blocks kept, state rebuilt
    else:
        assert (report.truncated_from, report.copied) == (DAMAGED, TIP - DAMAGED + 1)
    peers.assert_untouched()


@pytest.mark.parametrize("height", [TIP + 3, -1])
def test_it_finds_and_removes_index_rows_outside_the_chain(
    stores: StoreFactory, chain: Chain, peers: Peers, height: int
) -> None:
    store = _store_with(stores, chain)
    raw_sql(
        store.url,
        "INSERT INTO tx_index (tx_id, height, position) VALUES (?, ?, 0)",
        ("cd" * 32, height),
    )
    report = _verify(store, chain)
    assert (report.bad_height, report.reason) == (max(height, TIP + 1), "tx_index_mismatch")
    repaired = _repair(store, chain, peers.stores)
    assert repaired.after.ok
    assert (repaired.copied, repaired.after.tip) == (0, TIP)
    assert store.locate_tx("cd" * 32) is None


# --- lying quorums and lying minorities ------------------------------------------------------


def _certified_but_wrong(chain: Chain, *, results: bool) -> Any:
    """Block DAMAGED, re-executed honestly, then signed by every validator with wrong results
    or a wrong state root: what more than f lying validators could certify."""
    state = State(chain.states[DAMAGED - 1].to_json())
    transactions = chain.blocks[DAMAGED].transactions
    if results:
        honest = chains.make_block(chain.blocks[DAMAGED - 1], State(state.to_json()), transactions)
        lied = ["bad_nonce" if r == "ok" else "ok" for r in honest.results]
        return chains.make_block(chain.blocks[DAMAGED - 1], state, transactions, results=lied)
    return chains.make_block(chain.blocks[DAMAGED - 1], state, transactions, state_root="ee" * 32)


@pytest.mark.parametrize(("results", "reason"), [(True, "bad_results"), (False, "bad_state_root")])
def test_it_reports_a_certified_block_that_does_not_re_execute(
    stores: StoreFactory, chain: Chain, results: bool, reason: str
) -> None:
    store = _store_with(stores, chain, through=DAMAGED - 1)
    block = _certified_but_wrong(chain, results=results)
    ledger_blocks.verify_block(
        block, validators=list(chain.genesis.validators), previous=chain.blocks[DAMAGED - 1].header
    )
    store.append(block, {})
    report = _verify(store, chain)
    assert (report.bad_height, report.reason) == (DAMAGED, reason)


def test_it_stops_repair_at_a_certified_block_that_does_not_re_execute(
    stores: StoreFactory, chain: Chain
) -> None:
    bad = _certified_but_wrong(chain, results=False)
    liars = [_store_with(stores, chain, through=DAMAGED - 1) for _ in range(2)]
    for liar in liars:
        liar.append(bad, {})
    store = _store_with(stores, chain, through=DAMAGED - 1)
    report = _repair(store, chain, liars)
    assert (report.copied, report.stopped, report.after.tip) == (0, "bad_execution", DAMAGED - 1)
    assert store.load_state().root() == chain.states[DAMAGED - 1].root()


@pytest.fixture
def liar(stores: StoreFactory, chain: Chain) -> Store:
    """A peer holding another, fully certified chain from height DAMAGED on."""
    fork = chains.fork_chain(chain, DAMAGED, TIP - DAMAGED + 1, 5, seed=1234)
    assert fork.blocks[DAMAGED].hash != chain.blocks[DAMAGED].hash
    return _store_with(stores, fork)


def _damaged(stores: StoreFactory, chain: Chain) -> Store:
    store = _store_with(stores, chain)
    DAMAGES["proposer_signature"][0](store.url, chain)
    return store


def test_it_takes_the_block_of_f_plus_1_peers_over_a_lying_minority(
    stores: StoreFactory, chain: Chain, peers: Peers, liar: Store
) -> None:
    store = _damaged(stores, chain)
    report = _repair(store, chain, [liar, *peers.stores[:2]])
    assert report.after.tip == TIP
    assert _hashes(store) == [block.hash for block in chain.blocks]
    peers.assert_untouched()


def test_it_refuses_a_block_that_only_f_peers_hold(
    stores: StoreFactory, chain: Chain, peers: Peers, liar: Store
) -> None:
    short = _store_with(stores, chain, through=DAMAGED - 1)
    store = _damaged(stores, chain)
    # At height DAMAGED one peer holds the true block and one the liar's; f + 1 = 2 hold neither.
    report = _repair(store, chain, [liar, peers.stores[0], short])
    assert (report.truncated_from, report.copied) == (DAMAGED, 0)
    assert report.stopped == "no_agreed_block"
    assert report.after.ok
    assert _hashes(store) == [block.hash for block in chain.blocks[:DAMAGED]]
    assert store.load_state().root() == chain.states[DAMAGED - 1].root()


def test_it_counts_a_peer_named_twice_once(
    stores: StoreFactory, chain: Chain, peers: Peers
) -> None:
    store = _damaged(stores, chain)
    same = stores.open(peers.stores[0].url)
    report = _repair(store, chain, [peers.stores[0], same, peers.stores[0]])
    assert (report.copied, report.after.tip) == (0, DAMAGED - 1)


def test_it_fills_an_empty_store_from_peers(
    stores: StoreFactory, chain: Chain, peers: Peers
) -> None:
    store = stores.new()
    report = _repair(store, chain, peers.stores)
    assert (report.before.reason, report.copied, report.after.tip) == (
        "missing_block",
        TIP + 1,
        TIP,
    )
    assert _hashes(store) == _hashes(peers.stores[0])
    peers.assert_untouched()


def test_it_brings_a_store_that_fell_behind_up_to_its_peers(
    stores: StoreFactory, chain: Chain, peers: Peers
) -> None:
    store = _store_with(stores, chain, through=4)
    report = _repair(store, chain, peers.stores)
    assert report.before.ok
    assert (report.truncated_from, report.copied, report.after.tip) == (None, TIP - 4, TIP)
    assert store.load_state().root() == chain.states[TIP].root()


def test_it_reports_a_store_of_another_genesis(stores: StoreFactory, chain: Chain) -> None:
    store = _store_with(stores, chain)
    other, _ = chains.genesis_of("gridplatform-other")
    report = verify_store(store, other, chains.registry())
    assert (report.bad_height, report.reason, report.location) == (0, "genesis_mismatch", "meta")
    with pytest.raises(RepairFailed, match="another genesis"):
        repair_store(store, other, chains.registry(), [])
    store.delete_meta(GENESIS_META_KEY)
    report = verify_store(store, other, chains.registry())
    assert (report.bad_height, report.reason) == (0, "bad_genesis")


# --- genesis ---------------------------------------------------------------------------------


def _genesis(validators: int) -> tuple[Genesis, ledger_blocks.Block]:
    return create_genesis(
        chain="gridplatform-test",
        timestamp_ms=chains.GENESIS_TIME_MS,
        validator_keys=[KeyPair.generate() for _ in range(validators)],
        issuer_public_key=chains.OPERATOR.public_key_hex,
        regulator_public_keys=[chains.REGULATOR.public_key_hex],
        options={"slot_length_ms": 900_000, "max_block_txs": 1000},
    )


@pytest.mark.parametrize(("validators", "f"), [(4, 1), (7, 2)])
def test_it_creates_block_0_signed_by_every_validator(validators: int, f: int) -> None:
    genesis, block = _genesis(validators)
    assert genesis.f == f
    ledger_blocks.verify_block(block, validators=list(genesis.validators), previous=None)
    assert block.header.height == 0
    assert block.header.previous_hash == "00" * 32
    assert block.header.timestamp_ms == chains.GENESIS_TIME_MS
    assert block.transactions == ()
    assert block.header.state_root == genesis.genesis_state().root()
    assert block.hash == genesis.block_hash
    assert sorted(vote.validator for vote in block.certificate) == list(range(validators))


@pytest.mark.parametrize("validators", [1, 2, 3, 5, 6, 8])
def test_it_refuses_a_validator_count_that_is_not_3f_plus_1(validators: int) -> None:
    with pytest.raises(GenesisError, match="3f \\+ 1"):
        _genesis(validators)


def test_it_round_trips_the_genesis_document() -> None:
    genesis, _ = _genesis(4)
    again = Genesis.loads(genesis.dumps())
    assert again == genesis
    assert again.document_hash() == genesis.document_hash()
    assert again.block_hash == genesis.block_hash
    assert json.loads(genesis.dumps())["options"] == {
        "max_block_txs": 1000,
        "slot_length_ms": 900_000,
    }


def test_it_writes_a_genesis_file_once(tmp_path: Path) -> None:
    genesis, _ = _genesis(4)
    path = tmp_path / "genesis.json"
    genesis.to_json_file(path)
    assert Genesis.from_json_file(path) == genesis
    with pytest.raises(GenesisError, match="never overwritten"):
        genesis.to_json_file(path)


@pytest.mark.parametrize(
    "change",
    [
        {"options": {"slot_length_ms": 1.5}},
        {"options": {"slot_length_ms": True}},
        {"options": {"slot_length_ms": "900000"}},
        {"validators": "abc"},
        {"timestamp_ms": -1},
        {"chain": "Grid"},
        {"extra": 1},
    ],
)
def test_it_refuses_a_malformed_genesis_document(change: dict[str, Any]) -> None:
    genesis, _ = _genesis(4)
    with pytest.raises(GenesisError):
        Genesis.from_json({**genesis.to_json(), **change})


def test_it_refuses_a_genesis_listing_a_validator_twice() -> None:
    genesis, _ = _genesis(4)
    validators = [*genesis.validators[:3], genesis.validators[0]]
    with pytest.raises(GenesisError, match="twice"):
        Genesis.from_json({**genesis.to_json(), "validators": validators})


def test_it_writes_a_key_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "validator-2.key"
    pair = KeyPair.generate()
    old_umask = os.umask(0)  # the mode must not depend on the umask
    try:
        write_key_file(path, pair, 2, "gridplatform-test")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_key_file(path)
    assert (key.keypair.private_key, key.index, key.chain) == (
        pair.private_key,
        2,
        "gridplatform-test",
    )
    assert pair.private_key.hex() not in repr(key)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o610])
def test_it_refuses_a_key_file_that_others_may_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "validator.key"
    write_key_file(path, KeyPair.generate(), 0, "gridplatform-test")
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="group or others"):
        read_key_file(path)


def test_it_refuses_to_overwrite_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "validator.key"
    first = KeyPair.generate()
    write_key_file(path, first, 0, "gridplatform-test")
    with pytest.raises(KeyFileError, match="never overwritten"):
        write_key_file(path, KeyPair.generate(), 0, "gridplatform-test")
    assert read_key_file(path).keypair.private_key == first.private_key


def test_it_refuses_a_key_file_whose_public_key_is_not_its_own(tmp_path: Path) -> None:
    path = tmp_path / "validator.key"
    write_key_file(path, KeyPair.generate(), 0, "gridplatform-test")
    obj = json.loads(path.read_text())
    obj["public_key"] = KeyPair.generate().public_key_hex
    path.write_text(json.dumps(obj))
    with pytest.raises(KeyFileError, match="not the public key"):
        read_key_file(path)
