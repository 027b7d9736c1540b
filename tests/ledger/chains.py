"""Real chains for tests, and validator stores on both backends.

``build_chain(n_blocks, txs_per_block, seed)`` gives a genesis document and blocks 0..n_blocks
of real transactions (households registered, credits issued, transferred and redeemed, some
refused), executed with ``ledger.application.execute``, proposed and certified by 4 real
validator keys, with the state after each height. ``write_chain`` puts one into a store.

``StoreFactory`` makes empty stores for one backend: SQLite files in a directory, or PostgreSQL
databases made with ``ledger.store.create_database`` on the server of ``DATABASE_URL`` (or
``postgres://postgres@127.0.0.1:5432``), named ``test_ledger_<unique>``. Dropping a database
makes PostgreSQL checkpoint, which takes most of a second, so the factory drops its databases in
the background; a test module calls ``finish_drops()`` once at its end (a module-scoped fixture)
to wait for them and report failures. ``BACKENDS`` parametrizes a fixture over both backends;
the PostgreSQL one is skipped, with its reason, only when no server answers and
``DATABASE_URL`` does not name one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import psycopg
import pytest

from ledger import application as app
from ledger import blocks as ledger_blocks
from ledger.blocks import Block
from ledger.crypto import Transaction, canonical, loads, sign_transaction
from ledger.genesis import Genesis, create_genesis, install_genesis
from ledger.identity import KeyPair
from ledger.state import State
from ledger.store import Store, create_database, drop_database, open_store

CHAIN = "gridplatform-test"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_MS = 5_000
INITIAL_CREDITS = 10_000
TABLES = ("blocks", "tx_index", "state", "meta")


def _key(label: str) -> KeyPair:
    return KeyPair(private_key=hashlib.sha256(label.encode()).digest())


VALIDATORS = [_key(f"chains validator {i}") for i in range(4)]
OPERATOR = _key("chains operator")
REGULATOR = _key("chains regulator")
HOUSEHOLDS = [_key(f"chains household {i}") for i in range(8)]


def registry() -> app.Registry:
    return app.register_ledger_types(app.Registry())


@functools.cache
def genesis_of(
    chain: str = CHAIN,
    timestamp_ms: int = GENESIS_TIME_MS,
    options: tuple[tuple[str, int], ...] = (("slot_length_ms", 900_000),),
) -> tuple[Genesis, Block]:
    """The test network's genesis; ``options`` as (name, value) pairs (hashable, for the cache)."""
    return create_genesis(
        chain=chain,
        timestamp_ms=timestamp_ms,
        validator_keys=VALIDATORS,
        issuer_public_key=OPERATOR.public_key_hex,
        regulator_public_keys=[REGULATOR.public_key_hex],
        options=dict(options),
    )


class Chain(NamedTuple):
    genesis: Genesis
    blocks: list[Block]  # index = height, 0 is genesis
    states: list[State]  # the state after each height


# --- blocks ----------------------------------------------------------------------------------


def certify(block: Block, voters: Sequence[int] | None = None) -> Block:
    """``block`` with a certificate of ``voters`` (default: every validator)."""
    voters = range(len(VALIDATORS)) if voters is None else voters
    votes = tuple(
        ledger_blocks.sign_commit(keypair=VALIDATORS[i], validator=i, header=block.header)
        for i in voters
    )
    return dataclasses.replace(block, certificate=votes)


def default_voters(height: int) -> list[int]:
    """Every validator at every third height, otherwise a quorum of 3 that changes."""
    if height % 3 == 0:
        return list(range(len(VALIDATORS)))
    return [i for i in range(len(VALIDATORS)) if i != height % len(VALIDATORS)]


def make_block(
    previous: Block,
    state: State,
    transactions: Sequence[Transaction],
    *,
    registry_: app.Registry | None = None,
    timestamp_ms: int | None = None,
    results: Sequence[str] | None = None,
    state_root: str | None = None,
    voters: Sequence[int] | None = None,
) -> Block:
    """The certified block after ``previous``: ``transactions`` executed on ``state`` (in place).

    ``results`` and ``state_root`` override what execution gave: a block that a (lying) quorum
    signed although it does not re-execute.
    """
    height = previous.header.height + 1
    header = previous.header
    timestamp = header.timestamp_ms + BLOCK_INTERVAL_MS if timestamp_ms is None else timestamp_ms
    events: list[app.Event] = []
    executed = app.execute(
        state,
        registry_ or registry(),
        transactions,
        chain=header.chain,
        height=height,
        timestamp_ms=timestamp,
        events=events,
    )
    proposer = height % len(VALIDATORS)
    block = ledger_blocks.propose_block(
        keypair=VALIDATORS[proposer],
        chain=header.chain,
        height=height,
        previous_hash=previous.hash,
        timestamp_ms=timestamp,
        proposer=proposer,
        transactions=transactions,
        results=executed if results is None else results,
        events=events if results is None else (),
        state_root=state.root() if state_root is None else state_root,
    )
    return certify(block, default_voters(height) if voters is None else voters)


class _Feed:
    """A stream of real transactions: first register and fund the households, then random
    transfers, redemptions and issues, some of which are refused on purpose."""

    def __init__(self, state: State, rng: random.Random, households: int, chain: str) -> None:
        self.rng = rng
        self.chain = chain
        self.households = HOUSEHOLDS[:households]
        self.nonces: dict[str, int] = {}
        for pair in [OPERATOR, *self.households]:
            acct = app.account(state, pair.address)
            self.nonces[pair.address] = acct["nonce"] if acct else 0
        new = [h for h in self.households if app.account(state, h.address) is None]
        self.setup: list[tuple[KeyPair, str, dict[str, Any]]] = [
            (
                OPERATOR,
                "account.register",
                {"address": h.address, "public_key": h.public_key_hex, "role": "household"},
            )
            for h in new
        ]
        self.setup += [
            (OPERATOR, "credit.issue", {"to": h.address, "amount": INITIAL_CREDITS}) for h in new
        ]

    def _sign(self, who: KeyPair, type_: str, payload: dict[str, Any]) -> Transaction:
        nonce = self.nonces[who.address]
        self.nonces[who.address] = nonce + 1
        return sign_transaction(
            keypair=who, chain=self.chain, type=type_, nonce=nonce, payload=payload
        )

    def next(self) -> Transaction:
        if self.setup:
            return self._sign(*self.setup.pop(0))
        rng = self.rng
        sender, receiver = rng.sample(self.households, 2)
        roll = rng.random()
        if roll < 0.6:
            payload = {"to": receiver.address, "amount": rng.randint(1, 3_000)}
            return self._sign(sender, "credit.transfer", payload)
        if roll < 0.7:  # refused: insufficient_balance
            return self._sign(sender, "credit.transfer", {"to": receiver.address, "amount": 10**12})
        if roll < 0.8:
            return self._sign(sender, "credit.redeem", {"amount": rng.randint(1, 500)})
        if roll < 0.9:
            payload = {"to": receiver.address, "amount": rng.randint(1, 5_000)}
            return self._sign(OPERATOR, "credit.issue", payload)
        # refused: self_transfer
        return self._sign(sender, "credit.transfer", {"to": sender.address, "amount": 1})


@functools.cache
def _built(
    n_blocks: int,
    txs_per_block: int,
    seed: int,
    households: int,
    chain: str,
    start_ms: int,
    options: tuple[tuple[str, int], ...] = (),
) -> tuple[Genesis, tuple[Block, ...], tuple[dict[str, Any], ...]]:
    if options:
        genesis, block0 = genesis_of(chain, start_ms, (("slot_length_ms", 900_000), *options))
    else:
        genesis, block0 = genesis_of(chain, start_ms)
    state = genesis.genesis_state()
    blocks = [block0]
    states = [state.to_json()]
    feed = _Feed(state, random.Random(seed), households, chain)
    reg = registry()
    for _ in range(n_blocks):
        transactions = [feed.next() for _ in range(txs_per_block)]
        blocks.append(make_block(blocks[-1], state, transactions, registry_=reg))
        states.append(state.to_json())
    return genesis, tuple(blocks), tuple(states)


def build_chain(
    n_blocks: int,
    txs_per_block: int,
    seed: int = 0,
    *,
    households: int = 4,
    chain: str = CHAIN,
    start_ms: int = GENESIS_TIME_MS,
    options: tuple[tuple[str, int], ...] = (),
) -> Chain:
    """Genesis (at ``start_ms``) and ``n_blocks`` blocks after it (heights 0..n_blocks), 5 s
    apart, each of ``txs_per_block`` transactions, with the state after each height; genesis
    ``options`` as (name, value) pairs beside the default ones (e.g. ``("market.heat", 1)``).
    Deterministic in its arguments (and cached: the states returned are fresh copies)."""
    genesis, blocks, states = _built(
        n_blocks, txs_per_block, seed, households, chain, start_ms, options
    )
    return Chain(genesis, list(blocks), [State(data) for data in states])


def fork_chain(
    chain: Chain, from_height: int, n_blocks: int, txs_per_block: int, seed: int
) -> Chain:
    """Another valid, certified chain sharing ``chain``'s blocks below ``from_height``: a fork,
    as a lying quorum could sign it (the tests hold every validator key)."""
    blocks = chain.blocks[:from_height]
    states = [State(state.to_json()) for state in chain.states[:from_height]]
    state = State(states[-1].to_json())
    feed = _Feed(state, random.Random(seed), 4, chain.genesis.chain)
    reg = registry()
    for _ in range(n_blocks):
        transactions = [feed.next() for _ in range(txs_per_block)]
        # One millisecond later than the original: a different block even without transactions.
        timestamp = blocks[-1].header.timestamp_ms + BLOCK_INTERVAL_MS + 1
        blocks.append(
            make_block(blocks[-1], state, transactions, registry_=reg, timestamp_ms=timestamp)
        )
        states.append(State(state.to_json()))
    return Chain(chain.genesis, blocks, states)


def state_diff(before: State, after: State) -> dict[str, Any]:
    """The changes (None: deleted) that turn ``before`` into ``after``."""
    old, new = before.to_json(), after.to_json()
    changes = {k: v for k, v in new.items() if k not in old or canonical(old[k]) != canonical(v)}
    changes.update({k: None for k in old if k not in new})
    return changes


def write_chain(store: Store, chain: Chain, *, through: int | None = None) -> None:
    """Install ``chain``'s genesis in an empty store and append its blocks 1..through."""
    last = len(chain.blocks) - 1 if through is None else through
    install_genesis(store, chain.genesis, chain.blocks[0])
    for height in range(1, last + 1):
        store.append(
            chain.blocks[height], state_diff(chain.states[height - 1], chain.states[height])
        )


# --- stores on both backends -----------------------------------------------------------------


def postgres_server() -> str:
    """``postgres://user[:password]@host:port`` of the server the PostgreSQL tests use."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return f"postgres://{parts.netloc}"
    return "postgres://postgres@127.0.0.1:5432"


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run, or None.

    With ``DATABASE_URL`` naming a PostgreSQL server (as in CI) they always run: an unreachable
    server is then a failure, not a skip.
    """
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return None
    try:
        psycopg.connect(f"{postgres_server()}/postgres", connect_timeout=3).close()
    except psycopg.Error as error:
        return f"no PostgreSQL answers at {postgres_server()} and DATABASE_URL names none: {error}"
    return None


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=pytest.mark.skipif(
            postgres_unavailable() is not None, reason=postgres_unavailable() or ""
        ),
    ),
]

_DROPPER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="drop-test-db")
_DROPS: list[Future[None]] = []


def finish_drops() -> None:
    """Wait for the databases dropped in the background; raise the first failure."""
    pending = list(_DROPS)
    _DROPS.clear()
    for future in pending:
        future.result()


class StoreFactory:
    """Fresh, initialized stores on one backend; ``close()`` closes and removes them all."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self.directory = directory
        self.urls: list[str] = []
        self.stores: list[Store] = []

    def new_url(self) -> str:
        name = f"test_ledger_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            url = f"sqlite:///{self.directory / name}.sqlite3"
        else:
            url = f"{postgres_server()}/{name}"
        create_database(url)
        self.urls.append(url)
        return url

    def open(self, url: str) -> Store:
        store = open_store(url)
        self.stores.append(store)
        return store

    def new(self) -> Store:
        store = self.open(self.new_url())
        store.init_schema()
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for url in self.urls:
            if self.backend == "sqlite":
                drop_database(url)
            else:
                _DROPS.append(_DROPPER.submit(drop_database, url, force=True))
        self.stores.clear()
        self.urls.clear()


# --- raw SQL, as an attacker or a disk fault would write -------------------------------------


def raw_sql(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the store's database behind its back (``?`` placeholders)."""
    if url.startswith("sqlite://"):
        path = "/" + url[len("sqlite://") :].lstrip("/")
        with closing(sqlite3.connect(path)) as lite, lite:
            return list(lite.execute(sql, tuple(params)).fetchall())
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql.replace("?", "%s"), tuple(params))
        return list(cursor.fetchall()) if cursor.description else []


def dump_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a fixed order: to prove a store was not written."""
    return {table: raw_sql(url, f"SELECT * FROM {table} ORDER BY 1") for table in TABLES}  # noqa: S608


def flip_hex(text: str, index: int = 0) -> str:
    """``text`` with the hex digit at ``index`` replaced by another one."""
    replacement = "1" if text[index] == "0" else "0"
    return text[:index] + replacement + text[index + 1 :]


def rewrite_body(url: str, height: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the stored block at ``height`` in place: ``change`` edits its JSON object, which
    is written back canonically (so a one-character edit is a one-byte change)."""
    (body,) = raw_sql(url, "SELECT body FROM blocks WHERE height = ?", (height,))[0]
    obj = loads(body)
    change(obj)
    new_body = canonical(obj).decode()
    assert new_body != body
    raw_sql(url, "UPDATE blocks SET body = ? WHERE height = ?", (new_body, height))


def recent_start_ms() -> int:
    """A genesis time a minute ago, on a whole minute: for chains whose blocks must be "now" for
    the site (its clock decides, e.g., which market slots are open). Cached per minute."""
    now = time.time_ns() // 1_000_000
    return now // 60_000 * 60_000 - 60_000
