"""Four validators as real Celery worker processes on the real Redis broker.

Each validator is `manage.py run_validator --node K`: its own queue, key file and store (SQLite
files, or PostgreSQL databases when the suite runs against PostgreSQL). Transactions go in
through the site's submit service; the test reads the stores only to check them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import runtime, services
from ledger.audit import verify_store
from ledger.crypto import sign_transaction
from tests.ledger.chains import CHAIN, HOUSEHOLDS, OPERATOR, registry
from tests.ledger.live import ROOT, LiveNetwork
from tests.processes import child_env

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[LiveNetwork]:
    live = LiveNetwork(tmp_path)
    for index in range(4):
        live.start(index)
    try:
        yield live
    finally:
        live.stop()
        live.drop()


@pytest.fixture
def unstarted_network(tmp_path: Path) -> Iterator[LiveNetwork]:
    live = LiveNetwork(tmp_path)
    try:
        yield live
    finally:
        live.stop()
        live.drop()


def assert_identical_and_verified(network: LiveNetwork) -> None:
    chains = network.chains()
    assert len({tuple(chain) for chain in chains.values()}) == 1, chains
    for index in range(4):
        store = network.store(index)
        report = verify_store(store, network.genesis, registry())
        store.close()
        assert report.ok, (index, report.describe())


def test_it_commits_a_stream_identically_on_four_worker_processes(network: LiveNetwork) -> None:
    setup = [network.register(h) for h in HOUSEHOLDS]
    setup += [
        network.submit(OPERATOR, "credit.issue", to=h.address, amount=1_000) for h in HOUSEHOLDS
    ]
    network.wait(
        lambda: network.committed_everywhere(setup, [0, 1, 2, 3]),
        seconds=60,
        what="registrations and top-ups committed on every validator",
    )
    # Households can send once their registration is committed (before, every validator
    # refuses them at admission as unknown senders).
    transfers = []
    for round_ in range(3):
        for sender, receiver in zip(HOUSEHOLDS, HOUSEHOLDS[1:] + HOUSEHOLDS[:1], strict=True):
            transfers.append(
                network.submit(sender, "credit.transfer", to=receiver.address, amount=10 + round_)
            )
    network.wait(
        lambda: network.committed_everywhere(transfers, [0, 1, 2, 3]),
        seconds=60,
        what="all transfers committed on every validator",
    )
    assert_identical_and_verified(network)


def test_it_survives_a_validator_killed_mid_stream(network: LiveNetwork) -> None:
    first = [network.register(h) for h in HOUSEHOLDS[:4]]
    network.wait(
        lambda: network.committed_everywhere(first, [0, 1, 2, 3]),
        seconds=60,
        what="the first transactions committed",
    )
    network.kill(2)  # kill -9, while more transactions flow
    rest = [network.register(h) for h in HOUSEHOLDS[4:]]
    rest += [
        network.submit(OPERATOR, "credit.issue", to=h.address, amount=10) for h in HOUSEHOLDS[:4]
    ]
    network.wait(
        lambda: network.committed_everywhere(rest, [0, 1, 3]),
        seconds=90,
        what="blocks kept coming with validator 2 down",
    )
    network.start(2)
    started = time.monotonic()
    network.wait(
        lambda: network.committed_everywhere(first + rest, [0, 1, 2, 3]),
        seconds=60,
        what="validator 2 caught up",
    )
    caught_up_s = time.monotonic() - started
    assert_identical_and_verified(network)
    # Every acknowledged transaction is committed exactly once.
    store = network.store(0)
    ids = [tx.id for block in store.blocks(1, store.height()) for tx in block.transactions]
    store.close()
    assert sorted(ids) == sorted(tx.id for tx in first + rest)
    print(f"validator 2 caught up in {caught_up_s:.1f} s")


def test_a_validator_whose_store_fails_stops_and_starts_again_from_it(
    unstarted_network: LiveNetwork,
) -> None:
    """A full disk under validator 3's SQLite store (its files may not grow past 256 KiB), or
    its PostgreSQL server ending the store's connection: it leaves with EXIT_STORE_FAILED
    instead of running on with memory ahead of its store, the others go on, and once started
    again (with room on its disk) it catches up to the same verified chain."""
    network = unstarted_network
    for index in range(3):
        network.start(index)
    sqlite = network.store_template.startswith("sqlite")
    network.start(3, file_size_limit=256 * 1024 if sqlite else 0)
    first = [network.register(h) for h in HOUSEHOLDS[:4]]
    network.wait(
        lambda: network.committed_everywhere(first, [0, 1, 2]),
        seconds=60,
        what="the first transactions committed",
    )
    if not sqlite:
        network.end_store_connection(3)
    validator_3 = network.processes[3]
    more = []
    deadline = time.monotonic() + 120
    while validator_3.poll() is None and time.monotonic() < deadline:
        household = HOUSEHOLDS[len(more) % 4]
        more.append(network.submit(OPERATOR, "credit.issue", to=household.address, amount=1))
        time.sleep(0.3)
    assert validator_3.wait(timeout=10) == runtime.EXIT_STORE_FAILED, network.log(3)[-3000:]
    assert "validator stops, to start again from its store: the store failed" in network.log(3)
    network.processes.pop(3)
    network.wait(
        lambda: network.committed_everywhere(first + more, [0, 1, 2]),
        seconds=60,
        what="the others kept committing",
    )

    network.start(3)  # room on its disk again
    network.wait(
        lambda: network.committed_everywhere(first + more, [0, 1, 2, 3]),
        seconds=90,
        what="validator 3 caught up from its store",
    )
    assert_identical_and_verified(network)


def test_a_second_process_for_one_validator_or_a_repair_of_a_running_one_is_refused(
    network: LiveNetwork,
) -> None:
    first = [network.register(h) for h in HOUSEHOLDS[:2]]
    network.wait(
        lambda: network.committed_everywhere(first, [0, 1, 2, 3]),
        seconds=60,
        what="the first transactions committed",
    )
    env = child_env(LEDGER_DIR=str(network.directory), LEDGER_STORE_URL=network.store_template)
    twin = subprocess.run(
        [sys.executable, "manage.py", "run_validator", "--node=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert twin.returncode == runtime.EXIT_STORE_LOCKED, twin.stderr[-2000:]
    assert "validator 1 not started" in twin.stderr
    assert "in use by another process" in twin.stderr
    repair = subprocess.run(
        [sys.executable, "manage.py", "ledger", "repair", "--node=1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert repair.returncode != 0
    assert "in use by another process" in repair.stderr
    assert "before repairing validator 1's store" in repair.stderr
    # The running validator 1 is untouched by either.
    rest = [network.register(h) for h in HOUSEHOLDS[2:4]]
    network.wait(
        lambda: network.committed_everywhere(first + rest, [0, 1, 2, 3]),
        seconds=60,
        what="validator 1 kept committing",
    )
    assert_identical_and_verified(network)


def test_a_pending_transaction_no_validator_got_is_sent_again(
    network: LiveNetwork, settings: Any
) -> None:
    """The site recorded two transactions as pending, and no validator got them (sent to no
    queue, as to the wrong Redis). The same transaction submitted again is sent again; the
    other is sent again by the beat's ``pending_heal``; both commit, and nothing stays pending."""
    settings.LEDGER_DIR = network.directory
    settings.LEDGER_STORE_URL = network.store_template
    lost = [
        sign_transaction(
            keypair=OPERATOR,
            chain=CHAIN,
            type="account.register",
            nonce=n,
            payload={"address": h.address, "public_key": h.public_key_hex, "role": "household"},
        )
        for n, h in enumerate(HOUSEHOLDS[:2])
    ]
    settings.LEDGER_VALIDATORS = 0  # the sends reach no validator
    for tx in lost:
        services.transaction_admit(data=tx.to_json(), submitted_by=None)
    settings.LEDGER_VALIDATORS = 4
    time.sleep(1)
    assert network.heights()[0] == 0  # nobody has them
    services.transaction_admit(data=lost[0].to_json(), submitted_by=None)  # the same again
    network.wait(
        lambda: network.committed_everywhere(lost[:1], [0, 1, 2, 3]),
        seconds=60,
        what="the transaction submitted again committed",
    )
    settings.LEDGER_PENDING_RESEND_S = 0
    sent, given_up = services.pending_heal()
    assert (sent, given_up) == (2, 0)  # both still pending on the site: no projection here
    network.wait(
        lambda: network.committed_everywhere(lost, [0, 1, 2, 3]),
        seconds=60,
        what="the beat sent the other again and it committed",
    )
    assert_identical_and_verified(network)


def test_it_changes_view_when_the_proposer_is_killed(network: LiveNetwork) -> None:
    first = [network.register(HOUSEHOLDS[0])]
    network.wait(
        lambda: network.committed_everywhere(first, [0, 1, 2, 3]),
        seconds=60,
        what="block 1 committed",
    )
    height = network.heights()[0]
    next_proposer = (height + 1) % 4  # the proposer of view 0 at the next height
    network.kill(next_proposer)
    rest = [network.register(HOUSEHOLDS[1])]
    alive = [i for i in range(4) if i != next_proposer]
    network.wait(
        lambda: network.committed_everywhere(rest, alive),
        seconds=60,
        what="commits resumed after a view change",
    )
    store = network.store(alive[0])
    block = store.block(height + 1)
    store.close()
    assert block is not None
    assert block.header.proposer != next_proposer  # proposed in a later view, by another


def test_it_never_commits_conflicting_blocks_with_an_equivocating_validator(
    unstarted_network: LiveNetwork,
) -> None:
    network = unstarted_network
    liar = 1
    for index in range(4):
        if index == liar:
            network.start(index, LEDGER_ALLOW_FAULTS="1", VALIDATOR_FAULT="equivocate")
        else:
            network.start(index)
    txs = [network.register(h) for h in HOUSEHOLDS]
    txs += [network.submit(OPERATOR, "credit.issue", to=h.address, amount=500) for h in HOUSEHOLDS]
    honest = [0, 2, 3]
    network.wait(
        lambda: network.committed_everywhere(txs, honest),
        seconds=90,
        what="the honest validators committed everything",
    )
    chains = network.chains()
    honest_chains = {tuple(chains[i]) for i in honest}
    assert len(honest_chains) == 1
    # The liar's own store, however far it got, is a prefix of the honest chain.
    assert tuple(chains[liar]) == tuple(chains[0][: len(chains[liar])])
    for index in honest:
        store = network.store(index)
        report = verify_store(store, network.genesis, registry())
        store.close()
        assert report.ok, (index, report.describe())
