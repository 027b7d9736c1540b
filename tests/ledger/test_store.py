"""A validator's store, on SQLite and on PostgreSQL: blocks, index, state, metadata."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import audit
from ledger import store as ledger_store
from ledger.blocks import Block, block_to_json
from ledger.crypto import canonical
from ledger.genesis import GENESIS_META_KEY, GenesisError, install_genesis, stored_genesis
from ledger.state import State
from ledger.store import AppendRefused, CorruptRow, Store, StoreLocked, open_store
from tests.ledger import chains
from tests.ledger.chains import StoreFactory


@pytest.fixture(scope="module", autouse=True)
def _drop_databases() -> Iterator[None]:
    yield
    chains.finish_drops()


@pytest.fixture(params=chains.BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(request.param, tmp_path)
    yield factory
    factory.close()


@pytest.fixture
def store(stores: StoreFactory) -> Store:
    return stores.new()


@pytest.fixture(scope="module")
def chain() -> chains.Chain:
    return chains.build_chain(5, 4, seed=11)


def _hashes(blocks: list[Block]) -> list[str]:
    return [block.hash for block in blocks]


# --- blocks ----------------------------------------------------------------------------------


def test_it_starts_empty(store: Store) -> None:
    assert store.height() == -1
    assert store.tip() is None
    assert store.block(0) is None
    assert store.blocks(0, 10) == []
    assert store.locate_tx("ab" * 32) is None
    assert store.load_state().to_json() == {}
    assert store.get_meta(GENESIS_META_KEY) is None


def test_it_appends_blocks_and_reads_them_back(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain)
    assert store.height() == 5
    assert store.tip() == chain.blocks[5]
    for height, block in enumerate(chain.blocks):
        assert store.block(height) == block
    assert store.block(6) is None
    assert _hashes(store.blocks(0, 5)) == _hashes(chain.blocks)
    assert _hashes(store.blocks(2, 3)) == _hashes(chain.blocks[2:4])
    assert _hashes(store.blocks(4, 100)) == _hashes(chain.blocks[4:])


def test_it_stores_each_block_as_its_canonical_json(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=2)
    rows = chains.raw_sql(store.url, "SELECT height, hash, body FROM blocks ORDER BY height")
    assert rows == [
        (height, block.hash, canonical(block_to_json(block)).decode())
        for height, block in enumerate(chain.blocks[:3])
    ]


def test_it_indexes_every_transaction(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain)
    for height, block in enumerate(chain.blocks):
        for position, tx in enumerate(block.transactions):
            assert store.locate_tx(tx.id) == (height, position)
    assert len(store.tx_index_rows()) == sum(len(block.transactions) for block in chain.blocks)


def test_it_indexes_a_repeated_transaction_at_its_first_inclusion(
    store: Store, chain: chains.Chain
) -> None:
    chains.write_chain(store, chain, through=2)
    state = State(chain.states[2].to_json())
    tx = chain.blocks[3].transactions[0]
    # A Byzantine proposer may include one transaction twice; the second fails bad_nonce.
    block3 = chains.make_block(chain.blocks[2], state, [tx, tx])
    block4 = chains.make_block(block3, state, [tx])
    assert block3.results == ("ok", "bad_nonce")
    store.append(block3, state.take_changes())
    store.append(block4, state.take_changes())
    assert store.locate_tx(tx.id) == (3, 0)
    assert audit.verify_store(store, chain.genesis, chains.registry()).ok


def test_it_persists_the_state_after_the_tip(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=3)
    assert store.load_state().root() == chain.states[3].root()
    assert store.load_state().root() == chain.blocks[3].header.state_root
    assert store.state_rows() == {
        key: canonical(value).decode() for key, value in chain.states[3].to_json().items()
    }


def test_it_applies_state_changes_with_the_block(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=1)
    state = State(chain.states[1].to_json())
    state.set("test/kept", {"n": 1})
    state.set("test/gone", 2)
    block2 = chains.make_block(chain.blocks[1], state, [])
    store.append(block2, state.take_changes())
    state.delete("test/gone")
    block3 = chains.make_block(block2, state, [])
    store.append(block3, state.take_changes())
    assert store.load_state().get("test/kept") == {"n": 1}
    assert store.load_state().get("test/gone") is None
    assert store.load_state().root() == state.root()


# --- refusals --------------------------------------------------------------------------------


def test_it_refuses_a_first_block_that_is_not_at_height_0(
    store: Store, chain: chains.Chain
) -> None:
    with pytest.raises(AppendRefused, match="next height is 0"):
        store.append(chain.blocks[1], {})
    assert store.height() == -1


def test_it_refuses_a_genesis_block_that_does_not_link_to_zeros(
    store: Store, chain: chains.Chain
) -> None:
    header = dataclasses.replace(chain.blocks[0].header, previous_hash="11" * 32)
    with pytest.raises(AppendRefused, match="links to"):
        store.append(dataclasses.replace(chain.blocks[0], header=header), {})


def test_it_refuses_a_block_at_the_wrong_height(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=2)
    for height in (0, 2, 4):
        with pytest.raises(AppendRefused, match="next height is 3"):
            store.append(chain.blocks[height], {"test/x": 1})
    assert store.height() == 2


def test_it_refuses_a_block_that_does_not_link_to_the_tip(
    store: Store, chain: chains.Chain
) -> None:
    chains.write_chain(store, chain, through=2)
    other = chains.fork_chain(chain, 2, 2, 2, seed=99)  # another block 2, then its block 3
    assert other.blocks[2].hash != chain.blocks[2].hash
    with pytest.raises(AppendRefused, match="not to the stored tip"):
        store.append(other.blocks[3], chains.state_diff(chain.states[2], other.states[3]))
    # Nothing of the refused block was written.
    assert store.height() == 2
    assert store.load_state().root() == chain.states[2].root()
    assert all(store.locate_tx(tx.id) is None for tx in other.blocks[3].transactions)


def test_it_reports_a_damaged_block_row_when_reading_it(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=2)
    chains.raw_sql(store.url, "UPDATE blocks SET body = '{}' WHERE height = 1")
    with pytest.raises(CorruptRow, match="block 1"):
        store.block(1)
    chains.raw_sql(
        store.url,
        "UPDATE blocks SET hash = ? WHERE height = 2",
        (chains.flip_hex(chain.blocks[2].hash),),
    )
    with pytest.raises(CorruptRow, match="block 2"):
        store.tip()


# --- truncation, state replacement, metadata ------------------------------------------------


def test_it_truncates_blocks_and_their_index_from_a_height(
    store: Store, chain: chains.Chain
) -> None:
    chains.write_chain(store, chain)
    store.truncate_from(3)
    assert store.height() == 2
    assert store.tip() == chain.blocks[2]
    assert store.blocks(0, 10) == chain.blocks[:3]
    assert {row.height for row in store.tx_index_rows()} <= {0, 1, 2}
    for tx in chain.blocks[3].transactions:
        assert store.locate_tx(tx.id) is None
    store.replace_state(chain.states[2])
    store.append(chain.blocks[3], chains.state_diff(chain.states[2], chain.states[3]))
    assert store.height() == 3
    assert store.load_state().root() == chain.states[3].root()


def test_it_replaces_the_state(store: Store, chain: chains.Chain) -> None:
    chains.write_chain(store, chain, through=2)
    store.replace_state(State({"a/b": [1, "x"], "c": {"d": None}}))
    assert store.load_state().to_json() == {"a/b": [1, "x"], "c": {"d": None}}
    store.replace_state(State())
    assert store.state_rows() == {}


def test_it_keeps_metadata_and_blocks_across_reopening(
    stores: StoreFactory, chain: chains.Chain
) -> None:
    store = stores.new()
    chains.write_chain(store, chain, through=2)
    store.put_meta("consensus/vote", '{"height":3}')
    store.put_meta("consensus/vote", '{"height":4}')
    store.close()
    again = stores.open(store.url)
    again.init_schema()  # harmless on an initialized store
    assert again.get_meta("consensus/vote") == '{"height":4}'
    assert stored_genesis(again) == chain.genesis
    assert again.height() == 2
    assert again.load_state().root() == chain.states[2].root()
    again.delete_meta("consensus/vote")
    assert again.get_meta("consensus/vote") is None


def test_one_process_at_a_time_holds_a_store(stores: StoreFactory) -> None:
    """A second validator on the same store, or a repair of a running one, is refused; the
    lock goes with the connection that held it."""
    store = stores.new()
    store.lock("starting validator 0")
    store.lock("starting validator 0")  # taking it again is harmless
    other = stores.open(store.url)
    with pytest.raises(StoreLocked, match=r"in use by another process.*before repairing"):
        other.lock("repairing validator 0's store")
    assert other.height() == store.height()  # reading is never refused
    store.close()
    other.lock("repairing validator 0's store")


def test_it_makes_a_metadata_write_visible_to_another_connection_at_once(
    stores: StoreFactory,
) -> None:
    store = stores.new()
    other = stores.open(store.url)
    store.put_meta("vote", "v1")
    assert other.get_meta("vote") == "v1"


def test_it_installs_genesis_only_into_an_empty_store(store: Store, chain: chains.Chain) -> None:
    install_genesis(store, chain.genesis, chain.blocks[0])
    assert store.get_meta(GENESIS_META_KEY) == chain.genesis.dumps()
    assert store.load_state().root() == chain.blocks[0].header.state_root
    with pytest.raises(GenesisError, match="already holds blocks"):
        install_genesis(store, chain.genesis, chain.blocks[0])


def test_it_appends_a_block_of_1000_transactions_in_one_fast_write(stores: StoreFactory) -> None:
    big = chains.build_chain(1, 1000, seed=3)
    store = stores.new()
    chains.write_chain(store, big, through=0)
    changes = chains.state_diff(big.states[0], big.states[1])
    started = time.perf_counter()
    store.append(big.blocks[1], changes)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"append of 1000 transactions took {elapsed:.2f} s"
    assert len(store.tx_index_rows(1, 1)) == 1000
    assert store.block(1) == big.blocks[1]


# --- URLs ------------------------------------------------------------------------------------


def test_it_opens_sqlite_urls_with_three_or_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    with open_store(f"sqlite://{path}") as store:
        store.init_schema()
        store.put_meta("k", "v")
    with open_store(f"sqlite:///{path}") as store:
        assert store.get_meta("k") == "v"
        assert store.backend == "sqlite"
    assert chains.raw_sql(f"sqlite://{path}", "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize(
    "url",
    ["mysql://root@db/x", "sqlite://relative.sqlite3", "sqlite:///", "sqlite:///x.db?mode=ro", ""],
)
def test_it_refuses_unsupported_store_urls(url: str) -> None:
    with pytest.raises(ledger_store.UnsupportedStoreURL):
        open_store(url)


def test_it_refuses_to_create_a_database_twice(stores: StoreFactory) -> None:
    url = stores.new_url()
    with pytest.raises(ledger_store.DatabaseExists):
        ledger_store.create_database(url)


@pytest.mark.skipif(
    chains.postgres_unavailable() is not None, reason=chains.postgres_unavailable() or ""
)
def test_it_refuses_to_open_a_postgres_database_that_does_not_exist() -> None:
    url = f"{chains.postgres_server()}/test_ledger_missing_database"
    with pytest.raises(ledger_store.StoreUnavailable, match="test_ledger_missing_database"):
        open_store(url)
    with pytest.raises(ledger_store.UnsupportedStoreURL):
        ledger_store.create_database(f"{chains.postgres_server()}/bad-name;drop")


def test_it_tells_which_of_many_transactions_are_committed(
    store: Store, chain: chains.Chain
) -> None:
    chains.write_chain(store, chain, through=3)
    included = [tx.id for block in chain.blocks[1:4] for tx in block.transactions]
    later = [tx.id for block in chain.blocks[4:] for tx in block.transactions]
    many = [f"{n:064x}" for n in range(1_200)]  # more than one query's worth
    assert store.committed_ids([*later, *included, *many]) == set(included)
    assert store.committed_ids([]) == set()


# --- failures --------------------------------------------------------------------------------


def _fail_underneath(store: Store) -> None:
    """Make the store's database fail its next write, as a full disk or a restarted server do:
    SQLite may not grow by a page more (what it answers on a full disk, SQLITE_FULL); the
    PostgreSQL server ends the store's connection (what a server restart does to it)."""
    if store.backend == "sqlite":
        connection = store._db._conn  # type: ignore[attr-defined]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")
    else:
        import psycopg

        pid = store._db._conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(chains.postgres_server() + "/postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_failing_database_is_a_store_failure_and_stores_nothing(
    stores: StoreFactory, chain: chains.Chain
) -> None:
    url = stores.new_url()
    store = stores.open(url)
    store.init_schema()
    chains.write_chain(store, chain, through=1)
    state = State(chain.states[1].to_json())
    for n in range(2_000):  # more than one page of state: the write must grow the database
        state.set(f"test/filler/{n}", {"n": n, "text": "x" * 40})
    block = chains.make_block(chain.blocks[1], state, [])
    _fail_underneath(store)

    with pytest.raises(ledger_store.StoreFailed, match="the store failed"):
        store.append(block, state.take_changes())

    reopened = stores.open(url)
    assert reopened.height() == 1
    assert reopened.tip() == chain.blocks[1]
    assert reopened.load_state().root() == chain.states[1].root()
