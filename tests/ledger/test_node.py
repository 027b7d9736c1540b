"""Four validators in one process: real stores, real signatures, an in-memory message router.

The router is the test's network (the product's transport is Celery, tested with real worker
processes elsewhere); everything else is the product: consensus, pool, execution, stores.
"""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from ledger import application as app
from ledger import node as node_module
from ledger.audit import verify_store
from ledger.blocks import Block
from ledger.consensus import PersistedState, PreparedCertificate, PrepareRecord
from ledger.crypto import Transaction, sign_transaction
from ledger.genesis import install_genesis
from ledger.identity import KeyPair
from ledger.node import Validator
from ledger.store import open_store
from tests.ledger.chains import (
    CHAIN,
    GENESIS_TIME_MS,
    HOUSEHOLDS,
    OPERATOR,
    REGULATOR,
    VALIDATORS,
    genesis_of,
    registry,
)

TIMING = {"base_timeout_ms": 1_000, "retransmit_ms": 200, "sync_interval_ms": 1_000}


class Network:
    """Routes messages between validators; may drop or duplicate them (seeded)."""

    def __init__(self, directory: Path, *, seed: int = 0, drop: float = 0.0) -> None:
        self.genesis, genesis_block = genesis_of()
        self.directory = directory
        self.random = random.Random(seed)
        self.drop = drop
        self.queue: deque[tuple[int, dict[str, Any]]] = deque()
        self.committed: dict[int, list[Block]] = {i: [] for i in range(4)}
        self.now = GENESIS_TIME_MS + 1_000
        self.down: set[int] = set()
        for index in range(4):
            store = open_store(self.url(index))
            install_genesis(store, self.genesis, genesis_block)
            store.close()
        self.validators = [self.start(index) for index in range(4)]

    def url(self, index: int) -> str:
        return f"sqlite:///{self.directory / f'store-{index}.sqlite3'}"

    def start(self, index: int, **options: Any) -> Validator:
        network = self

        class Transport:
            def send(self, to: int | None, message: dict[str, Any]) -> None:
                for target in [to] if to is not None else [i for i in range(4) if i != index]:
                    if network.random.random() >= network.drop:
                        network.queue.append((target, message))

            def committed(self, block: Block) -> None:
                network.committed[index].append(block)

        return Validator(
            genesis=self.genesis,
            index=index,
            keys=VALIDATORS[index],
            store=open_store(self.url(index)),
            registry=registry(),
            transport=Transport(),
            now_ms=self.now,
            timing=TIMING,
            **options,
        )

    def submit(self, data: dict[str, Any], *, to: range | list[int] = range(4)) -> list[str | None]:
        return [self.validators[i].submit(data) for i in to if i not in self.down]

    def run(self, *, until: Any, limit_ms: int = 60_000) -> None:
        deadline = self.now + limit_ms
        while not until():
            assert self.now < deadline, "the validators did not get there in simulated time"
            for _ in range(len(self.queue)):
                target, message = self.queue.popleft()
                if target not in self.down:
                    self.validators[target].deliver(message)
            self.now += 50
            for index, validator in enumerate(self.validators):
                if index not in self.down:
                    validator.tick(self.now)

    def heights(self) -> list[int]:
        return [v.store.height() for i, v in enumerate(self.validators) if i not in self.down]


def signed(who: KeyPair, type: str, nonce: int, **payload: Any) -> dict[str, Any]:
    return sign_transaction(
        keypair=who, chain=CHAIN, type=type, nonce=nonce, payload=payload
    ).to_json()


def register(who: KeyPair, nonce: int) -> dict[str, Any]:
    return signed(
        OPERATOR,
        "account.register",
        nonce,
        address=who.address,
        public_key=who.public_key_hex,
        role="household",
    )


@pytest.fixture
def network(tmp_path: Path) -> Network:
    return Network(tmp_path)


def all_ok(network: Network, index: int = 0) -> list[str]:
    return [r for block in network.committed[index] for r in block.results]


def test_it_commits_transactions_identically_on_every_validator(network: Network) -> None:
    ada, ben = HOUSEHOLDS[0], HOUSEHOLDS[1]
    for nonce, data in enumerate([register(ada, 0), register(ben, 1)]):
        assert network.submit(data) == [None] * 4, nonce
    network.submit(signed(OPERATOR, "credit.issue", 2, to=ada.address, amount=1_000))
    network.run(until=lambda: min(network.heights()) >= 1 and not network.validators[0].pool)
    network.submit(signed(ada, "credit.transfer", 0, to=ben.address, amount=250))
    network.run(until=lambda: all(not v.pool for v in network.validators))

    roots = {v.state.root() for v in network.validators}
    assert len(roots) == 1
    tips = {(v.store.height(), v.store.tip().hash) for v in network.validators}
    assert len(tips) == 1
    state = network.validators[2].state
    assert (app.balance(state, ada.address), app.balance(state, ben.address)) == (750, 250)
    assert all_ok(network) == ["ok"] * 4
    for index, validator in enumerate(network.validators):
        report = verify_store(validator.store, network.genesis, registry())
        assert report.ok, (index, report)


def test_it_proposes_nothing_while_idle(network: Network) -> None:
    network.run(until=lambda: network.now > GENESIS_TIME_MS + 20_000, limit_ms=30_000)
    assert network.heights() == [0, 0, 0, 0]


def test_it_refuses_transactions_at_admission_with_their_codes(network: Network) -> None:
    validator = network.validators[0]
    stranger = KeyPair.generate()
    first = register(HOUSEHOLDS[0], 0)
    assert validator.submit(first) is None
    assert validator.submit(first) == "duplicate"
    assert validator.submit(register(HOUSEHOLDS[1], 0)) == "nonce_pending"
    assert validator.submit(register(HOUSEHOLDS[1], 5)) == "bad_nonce"
    assert validator.submit(signed(stranger, "credit.redeem", 0, amount=1)) == "unknown_sender"
    assert validator.submit({"type": "credit.issue"}) == "malformed"
    forged = register(HOUSEHOLDS[1], 1) | {"signature": "ab" * 64}
    assert validator.submit(forged) == "bad_signature"
    other_chain = sign_transaction(
        keypair=OPERATOR,
        chain="another-net",
        type="credit.issue",
        nonce=1,
        payload={"to": OPERATOR.address, "amount": 1},
    ).to_json()
    assert validator.submit(other_chain) == "wrong_chain"
    assert (
        validator.submit(signed(REGULATOR, "credit.issue", 0, to=REGULATOR.address, amount=1))
        == "not_allowed"
    )
    assert validator.submit(signed(REGULATOR, "no.such.type", 0)) == "unknown_type"
    assert list(validator.pool) == [Transaction.from_json(first).id]


def test_it_refuses_when_the_pool_is_full(tmp_path: Path) -> None:
    network = Network(tmp_path)
    small = network.start(0, pool_limit=1)
    assert small.submit(register(HOUSEHOLDS[0], 0)) is None
    assert small.submit(register(HOUSEHOLDS[1], 1)) == "pool_full"


def test_it_keeps_committing_with_one_validator_down_and_catches_up(tmp_path: Path) -> None:
    network = Network(tmp_path, seed=7, drop=0.1)
    network.down.add(3)
    for nonce in range(4):
        network.submit(register(HOUSEHOLDS[nonce], nonce))
    network.run(until=lambda: all(not v.pool for i, v in enumerate(network.validators) if i != 3))
    assert min(network.heights()) >= 1
    # Validator 3 comes back from its own store and catches up from its peers.
    network.down.clear()
    network.validators[3] = network.start(3)
    network.submit(register(HOUSEHOLDS[4], 4))
    target = lambda: len({(v.store.height(), v.state.root()) for v in network.validators}) == 1  # noqa: E731
    network.run(until=lambda: all(not v.pool for v in network.validators) and target())
    hashes = {
        tuple(b.hash for b in v.store.blocks(0, v.store.height())) for v in network.validators
    }
    assert len(hashes) == 1
    assert verify_store(network.validators[3].store, network.genesis, registry()).ok


def test_it_catches_up_from_peers_that_keep_fewer_blocks_in_memory_than_it_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_module, "RECENT_BLOCKS", 2)
    read: list[tuple[int, int, int]] = []
    stored_blocks = Validator._stored_blocks

    def recording(self: Validator, first: int, last: int) -> list[Any]:
        read.append((self.index, first, last))
        return stored_blocks(self, first, last)

    monkeypatch.setattr(Validator, "_stored_blocks", recording)
    network = Network(tmp_path, seed=5)
    network.down.add(3)
    for nonce in range(5):  # one block each
        network.submit(register(HOUSEHOLDS[nonce], nonce))
        network.run(until=lambda nonce=nonce: min(network.heights()) > nonce)
    network.down.clear()
    network.validators[3] = network.start(3)
    read.clear()
    network.run(until=lambda: network.validators[3].store.height() == 5)
    # Heights 1-3 are on the peers' disks only: they came from their stores.
    assert any(index != 3 and first == 1 for index, first, _ in read), read
    assert [len(v.node.recent) for v in network.validators] == [2, 2, 2, 2]
    hashes = {
        tuple(b.hash for b in v.store.blocks(0, v.store.height())) for v in network.validators
    }
    assert len(hashes) == 1
    assert verify_store(network.validators[3].store, network.genesis, registry()).ok


def test_it_restarts_from_its_store_without_losing_a_block(tmp_path: Path) -> None:
    network = Network(tmp_path, seed=3)
    network.submit(register(HOUSEHOLDS[0], 0))
    network.run(until=lambda: min(network.heights()) >= 1)
    before = network.validators[1].store.tip().hash
    network.validators[1].store.close()
    network.validators[1] = network.start(1)
    assert network.validators[1].store.tip().hash == before
    network.submit(register(HOUSEHOLDS[1], 1))
    network.run(until=lambda: min(network.heights()) >= 2)
    assert len({v.state.root() for v in network.validators}) == 1


def test_it_commits_a_block_it_checked_without_executing_it_again(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = HOUSEHOLDS[0]
    network.submit(register(ada, 0))
    network.run(until=lambda: min(network.heights()) >= 1)
    executed: list[int] = []
    real = app.execute_certified

    def counting(*args: Any, **kwargs: Any) -> bool:
        executed.append(kwargs["height"])
        return real(*args, **kwargs)

    monkeypatch.setattr(app, "execute_certified", counting)
    network.submit(signed(OPERATOR, "credit.issue", 1, to=ada.address, amount=500))
    network.run(until=lambda: min(network.heights()) >= 2)
    # Every validator proposed or checked block 2 on the state it then committed it on: it
    # applied the changes of that execution instead of executing the block a second time.
    assert executed == []
    assert {app.balance(v.state, ada.address) for v in network.validators} == {500}
    assert len({v.state.root() for v in network.validators}) == 1
    for index, validator in enumerate(network.validators):
        assert verify_store(validator.store, network.genesis, registry()).ok, index


def test_it_persists_its_votes_exactly_even_when_a_payload_mimics_its_markers(
    network: Network,
) -> None:
    # The persisted text splices in each proposal's JSON at a marker; a proposal may hold any
    # string, the markers included, and must come back exactly.
    tricky = {"proposal of prepared": "proposal of prepare", "note": ['"proposal of prepared"']}
    first = {"transactions": [tricky], "n": 1}
    second = {"transactions": [tricky, tricky], "n": 2}
    state = PersistedState(
        height=3,
        view=1,
        view_change=False,
        prepare=PrepareRecord(1, "a" * 64, first),
        precommit=(0, "b" * 64),
        commit=None,
        prepared=PreparedCertificate(0, "b" * 64, second, ((0, "c" * 128), (2, "d" * 128))),
    )
    validator = network.validators[0]
    for _ in range(2):  # encoded afresh, then with the cached proposal
        assert json.loads(validator._persisted_text(state)) == state.to_json()


def test_it_sends_committed_blocks_to_the_site_again_on_request(network: Network) -> None:
    network.submit(register(HOUSEHOLDS[0], 0))
    network.run(until=lambda: min(network.heights()) >= 1)
    network.submit(register(HOUSEHOLDS[1], 1))
    network.run(until=lambda: min(network.heights()) >= 2)
    validator = network.validators[2]
    before = list(network.committed[2])
    assert validator.resend(1) == 2
    again = network.committed[2][len(before) :]
    assert [b.hash for b in again] == [b.hash for b in validator.store.blocks(1, 2)]
    assert all(len(b.certificate) >= 3 for b in again)  # with their certificates
    assert validator.resend(2, limit=1) == 1
    for nothing in (3, 0, -1, True, "1"):
        assert validator.resend(nothing) == 0  # type: ignore[arg-type]


def test_a_committed_transaction_is_a_duplicate_and_a_fresh_one_costs_no_index_lookup(
    network: Network,
) -> None:
    first = register(HOUSEHOLDS[0], 0)
    assert network.submit(first) == [None] * 4
    network.run(until=lambda: all(not v.pool for v in network.validators))
    validator = network.validators[0]
    asked: list[list[str]] = []
    lookup = validator.store.committed_ids

    def counted(tx_ids: Any) -> set[str]:
        asked.append(list(tx_ids))
        return lookup(tx_ids)

    validator.store.committed_ids = counted  # type: ignore[method-assign]
    # Its nonce is used: the store is asked, and the answer is that it is committed.
    assert validator.submit(first) == "duplicate"
    assert asked == [[Transaction.from_json(first).id]]
    # A fresh transaction (the sender's next nonce) cannot be in a block: no lookup.
    assert validator.submit(register(HOUSEHOLDS[1], 1)) is None
    assert validator.submit(register(HOUSEHOLDS[1], 1)) == "duplicate"  # now in the pool
    assert len(asked) == 1
