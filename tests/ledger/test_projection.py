"""The site's read models, projected from real certified blocks and rebuilt from a store."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from gridplatform.accounts.consumers import CLOSE_FORBIDDEN
from gridplatform.accounts.models import User
from gridplatform.asgi import application
from ledger import config, runtime, services
from ledger.blocks import Block, CommitSignature, block_to_json
from ledger.live import LEDGER_GROUP
from ledger.models import (
    BlockRecord,
    LedgerAccount,
    PendingBlock,
    ProjectionCursor,
    StateEntry,
    SubmittedTransaction,
    TransactionRecord,
    ValidatorStatus,
)
from ledger.node import Validator
from ledger.projection import datetime_of_ms, genesis_project
from ledger.selectors import validator_list
from ledger.state import State
from ledger.store import create_database, open_store
from ledger.tasks import block_committed, resend_blocks, validator_status
from tests.accounts.test_consumers import headers
from tests.ledger.chains import (
    GENESIS_TIME_MS,
    HOUSEHOLDS,
    OPERATOR,
    VALIDATORS,
    Chain,
    build_chain,
    certify,
    flip_hex,
    make_block,
    registry,
    rewrite_body,
    write_chain,
)
from tests.ledger.site import project, use_network

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(settings: Any, tmp_path: Path) -> Chain:
    chain = build_chain(6, 5)
    use_network(settings, tmp_path, chain)
    return chain


def rows() -> dict[str, list[Any]]:
    """Every read-model row that the chain determines, in a fixed order."""
    return {
        "blocks": list(
            BlockRecord.objects.order_by("height").values_list(
                "height",
                "hash",
                "previous_hash",
                "timestamp",
                "proposer",
                "tx_count",
                "state_root",
                "tx_root",
                "body",
            )
        ),
        "transactions": list(
            TransactionRecord.objects.order_by("tx_id").values_list(
                "tx_id", "block_id", "position", "type", "sender", "nonce", "result", "body"
            )
        ),
        "accounts": list(
            LedgerAccount.objects.order_by("address").values_list(
                "address", "public_key", "role", "nonce", "balance"
            )
        ),
        "state": list(StateEntry.objects.order_by("key").values_list("key", "value")),
    }


def assert_projected_through(chain: Chain, height: int) -> None:
    assert list(BlockRecord.objects.order_by("height").values_list("height", "hash")) == [
        (block.height, block.hash) for block in chain.blocks[: height + 1]
    ]
    state = chain.states[height]
    assert dict(StateEntry.objects.values_list("key", "value")) == state.to_json()
    assert ProjectionCursor.objects.get().height == height
    assert not PendingBlock.objects.exists()


# --- projecting ----------------------------------------------------------------------------------


def test_it_projects_real_blocks_with_their_transactions_accounts_and_state(chain: Chain) -> None:
    for block in chain.blocks:
        assert project(block) is True
    assert_projected_through(chain, 6)
    last = BlockRecord.objects.get(height=6)
    block = chain.blocks[6]
    assert last.body == block_to_json(block)
    assert last.timestamp == datetime_of_ms(block.header.timestamp_ms)
    assert (last.proposer, last.tx_count, last.tx_root, last.state_root) == (
        block.header.proposer,
        5,
        block.header.tx_root,
        block.header.state_root,
    )
    projected = {
        (r.tx_id, r.block_id, r.position, r.result) for r in TransactionRecord.objects.all()
    }
    assert projected == {
        (tx.id, b.height, position, b.results[position])
        for b in chain.blocks
        for position, tx in enumerate(b.transactions)
    }
    final = chain.states[6]
    for address in [OPERATOR.address] + [h.address for h in HOUSEHOLDS[:4]]:
        account = LedgerAccount.objects.get(address=address)
        acct = final.get(f"acct/{address}")
        assert (account.public_key, account.role, account.nonce, account.balance) == (
            acct["public_key"],
            acct["role"],
            acct["nonce"],
            final.get(f"bal/{address}", 0),
        )
    assert LedgerAccount.objects.count() == 6  # the operator, the regulator, four households


def test_it_ignores_the_copies_every_other_validator_sends(chain: Chain) -> None:
    for block in chain.blocks:
        assert [project(block) for _ in range(4)] == [True, False, False, False]
    before = rows()
    for block in reversed(chain.blocks):
        assert project(block) is False
    assert rows() == before
    assert_projected_through(chain, 6)


def test_it_keeps_blocks_that_arrive_early_until_the_gap_fills(chain: Chain) -> None:
    order = [3, 5, 0, 2, 6, 1, 4]
    results = {height: project(chain.blocks[height]) for height in order}
    # 3 brings block 0 from the genesis document (the real one then only adds signatures) and
    # waits, like 5 and 6; 2 waits for 1; 1 fills the gap up to 3; 4 carries it on to 6.
    assert results == {3: False, 5: False, 0: False, 2: False, 6: False, 1: True, 4: True}
    assert_projected_through(chain, 6)
    assert BlockRecord.objects.get(height=0).body == block_to_json(chain.blocks[0])


def test_it_projects_block_zero_from_the_genesis_document_when_a_later_block_comes_first(
    chain: Chain,
) -> None:
    assert project(chain.blocks[1]) is True
    zero = BlockRecord.objects.get(height=0)
    assert zero.hash == chain.genesis.block_hash
    assert (zero.body["proposer_signature"], zero.body["certificate"]) == (None, [])
    assert_projected_through(chain, 1)
    # The real block 0, with the certificate every validator signed, completes the record.
    assert project(chain.blocks[0]) is False
    zero.refresh_from_db()
    assert zero.body == block_to_json(chain.blocks[0])


def test_it_projects_the_genesis_accounts_before_any_block_arrives(chain: Chain) -> None:
    assert genesis_project() is True
    assert genesis_project() is False
    assert_projected_through(chain, 0)
    assert LedgerAccount.objects.get(address=OPERATOR.address).role == "grid_operator"


def test_it_refuses_a_block_without_a_quorum_of_votes(chain: Chain) -> None:
    project(chain.blocks[0])
    project(chain.blocks[1])
    weak = certify(chain.blocks[2], voters=[0, 1])  # 2 of 4: no quorum
    assert project(weak) is False
    assert not BlockRecord.objects.filter(height=2).exists()
    assert not PendingBlock.objects.exists()
    assert project(chain.blocks[2]) is True
    assert_projected_through(chain, 2)


def test_it_refuses_a_block_with_a_forged_vote(chain: Chain) -> None:
    project(chain.blocks[0])
    votes = list(chain.blocks[1].certificate)
    votes[0] = CommitSignature(validator=votes[0].validator, signature=votes[1].signature)
    forged = dataclasses.replace(chain.blocks[1], certificate=tuple(votes))
    before = rows()
    assert project(forged) is False
    assert rows() == before
    assert project(chain.blocks[1]) is True


def test_it_drops_a_kept_block_that_fails_verification_when_its_turn_comes(chain: Chain) -> None:
    bad = certify(chain.blocks[3], voters=[2])
    project(chain.blocks[0])
    assert project(bad) is False
    assert PendingBlock.objects.filter(height=3).count() == 1
    project(chain.blocks[1])
    project(chain.blocks[2])
    assert BlockRecord.objects.order_by("-height").first().height == 2
    assert not PendingBlock.objects.exists()
    assert project(chain.blocks[3]) is True
    assert_projected_through(chain, 3)


def test_it_refuses_a_certified_block_that_does_not_re_execute_to_its_state_root(
    chain: Chain,
) -> None:
    for block in chain.blocks[:3]:
        project(block)
    # A quorum signed it, but its state root is not what its transactions give.
    lying = make_block(
        chain.blocks[2],
        State(chain.states[2].to_json()),
        list(chain.blocks[3].transactions),
        state_root=flip_hex(chain.blocks[3].header.state_root),
    )
    before = rows()
    assert project(lying) is False
    assert rows() == before
    assert project(chain.blocks[3]) is True
    assert_projected_through(chain, 3)


def test_it_refuses_a_block_of_another_network(chain: Chain) -> None:
    other = build_chain(1, 2, chain="another-net")
    assert project(other.blocks[1]) is False
    assert project(other.blocks[0]) is False
    assert BlockRecord.objects.get(height=0).hash == chain.genesis.block_hash


def test_it_drops_pending_transactions_once_a_block_commits_them(chain: Chain) -> None:
    project(chain.blocks[0])
    committed = chain.blocks[1].transactions[0]
    for tx in (committed, chain.blocks[2].transactions[0]):
        SubmittedTransaction.objects.create(
            tx_id=tx.id, sender=tx.sender, nonce=tx.nonce, body=tx.to_json()
        )
    project(chain.blocks[1])
    remaining = SubmittedTransaction.objects.values_list("tx_id", flat=True)
    assert list(remaining) == [chain.blocks[2].transactions[0].id]


def test_it_drops_pending_transactions_whose_nonce_a_block_used_up(chain: Chain) -> None:
    project(chain.blocks[0])
    used = chain.blocks[1].transactions[0]  # the operator's nonce 0
    other = dataclasses.replace(used, payload={**used.payload, "role": "regulator"})
    SubmittedTransaction.objects.create(
        tx_id=other.id, sender=other.sender, nonce=other.nonce, body=other.to_json()
    )
    project(chain.blocks[1])
    assert not SubmittedTransaction.objects.exists()


def test_it_hints_live_pages_once_a_block_is_committed(
    chain: Chain, django_capture_on_commit_callbacks: Any
) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(LEDGER_GROUP, channel)

    async def receive(count: int) -> list[dict[str, Any]]:
        # In one event loop: the Redis layer's receive buffer belongs to its loop.
        return [await layer.receive(channel) for _ in range(count)]

    try:
        with django_capture_on_commit_callbacks(execute=True):
            project(chain.blocks[0])
            project(chain.blocks[2])  # kept: nothing new is committed, no hint
            project(chain.blocks[1])  # projects 1, then the kept 2: one hint
        hints = async_to_sync(receive)(2)
    finally:
        async_to_sync(layer.group_discard)(LEDGER_GROUP, channel)
    assert hints == [
        {"type": "ledger.block", "height": 0, "everything": False},
        {"type": "ledger.block", "height": 2, "everything": False},
    ]


@pytest.mark.django_db(transaction=True)
def test_it_projects_each_block_once_when_workers_race(settings: Any, tmp_path: Path) -> None:
    chain = build_chain(6, 5)
    use_network(settings, tmp_path, chain)
    orders = [
        [0, 1, 2, 3, 4, 5, 6],
        [6, 5, 4, 3, 2, 1, 0],
        [2, 0, 4, 1, 6, 3, 5],
        [1, 3, 5, 0, 2, 4, 6],
    ]
    start = threading.Barrier(len(orders))

    def notify(order: list[int]) -> list[bool]:
        try:
            start.wait(timeout=10)
            return [project(chain.blocks[height]) for height in order]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(orders)) as pool:
        results = list(pool.map(notify, orders))
    assert sum(sum(projected) for projected in results) <= 7
    assert_projected_through(chain, 6)


# --- rebuilding ----------------------------------------------------------------------------------


def store_of(chain: Chain, directory: Path, node: int = 0) -> str:
    url = config.store_url(node)
    create_database(url)
    store = open_store(url)
    write_chain(store, chain)
    store.close()
    return url


def test_it_rebuilds_exactly_the_rows_the_live_projection_made(
    chain: Chain, tmp_path: Path
) -> None:
    for height in [0, 2, 1, 4, 3, 6, 5]:  # live: out of order, with duplicates
        project(chain.blocks[height])
        project(chain.blocks[height])
    live = rows()
    store_of(chain, tmp_path)
    out = io.StringIO()
    call_command("rebuild_read_models", node=0, stdout=out)
    assert "blocks 0..6" in out.getvalue()
    assert rows() == live
    assert_projected_through(chain, 6)


def test_it_rebuilds_into_an_empty_site_database(chain: Chain, tmp_path: Path) -> None:
    store_of(chain, tmp_path)
    call_command("rebuild_read_models", node=0, stdout=io.StringIO())
    rebuilt = rows()
    for table in (TransactionRecord, BlockRecord, LedgerAccount, StateEntry, ProjectionCursor):
        table.objects.all().delete()
    for block in chain.blocks:
        project(block)
    assert rows() == rebuilt


def test_it_changes_nothing_when_the_store_is_damaged(chain: Chain, tmp_path: Path) -> None:
    for block in chain.blocks[:3]:
        project(block)
    before = rows()
    url = store_of(chain, tmp_path)

    def damage(body: dict[str, Any]) -> None:
        body["transactions"][0]["signature"] = flip_hex(body["transactions"][0]["signature"])

    rewrite_body(url, 4, damage)
    with pytest.raises(CommandError, match="nothing changed: block 4 does not verify"):
        call_command("rebuild_read_models", node=0, stdout=io.StringIO())
    assert rows() == before


def test_it_refuses_to_rebuild_from_a_store_that_is_not_there(chain: Chain) -> None:
    with pytest.raises(CommandError, match="has no store"):
        call_command("rebuild_read_models", node=1, stdout=io.StringIO())
    assert not Path(config.store_url(1)[len("sqlite://") :]).exists()


# --- the tasks validators send -------------------------------------------------------------------


def test_it_projects_a_commit_notification_and_notes_who_sent_it(chain: Chain) -> None:
    block_committed(2, block_to_json(chain.blocks[1]))
    block_committed(3, block_to_json(chain.blocks[1]))
    assert_projected_through(chain, 1)
    assert list(ValidatorStatus.objects.values_list("index", "height")) == [(2, 1), (3, 1)]
    assert all(s.last_commit_at is not None for s in ValidatorStatus.objects.all())


def test_it_ignores_a_malformed_commit_notification(chain: Chain) -> None:
    block_committed(0, {"header": "garbage"})
    block_committed(0, {"not": "a block"})
    assert not BlockRecord.objects.exists()
    assert not ValidatorStatus.objects.exists()


def test_it_records_heartbeats_and_tells_up_from_down(chain: Chain) -> None:
    now_ms = runtime.now_ms()
    genesis_hash = chain.genesis.block_hash
    validator_status(0, 7, 1, now_ms, genesis_hash)
    validator_status(1, 7, 0, now_ms - 30_000, genesis_hash)  # last heard 30 s ago
    validator_status(0, 6, 0, now_ms - 1_000, genesis_hash)  # late: older than the last
    validator_status(2, 9, 0, now_ms, "0" * 64)  # another network's validator
    validator_status(9, 1, 0, now_ms, genesis_hash)  # no such validator
    views = {v.index: v for v in validator_list(now=datetime_of_ms(now_ms + 2_000))}
    assert sorted(views) == [0, 1, 2, 3]
    assert (views[0].height, views[0].view, views[0].up) == (7, 1, True)
    assert (views[1].height, views[1].up) == (7, False)
    assert (views[2].height, views[2].up, views[3].up) == (None, False, False)
    assert views[0].last_seen_at == datetime_of_ms(now_ms)


def _sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, str | None]]:
    """What ledger.config.send hands to the broker: (task name, arguments, queue)."""
    sent: list[tuple[str, Any, str | None]] = []

    def send_task(name: str, args: Any, kwargs: Any = None, **options: Any) -> None:
        sent.append((name, tuple(args), options.get("queue")))

    monkeypatch.setattr(config.app, "send_task", send_task)
    return sent


def test_it_tells_the_site_of_every_commit_on_the_default_queue(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _sent_tasks(monkeypatch)
    runtime.CeleryTransport(2, 4).committed(chain.blocks[3])
    # The block travels as its JSON text (see config.wire_text), to the task the site's worker
    # runs, on the default queue (no queue named).
    assert [(name, args[0], json.loads(args[1]), queue) for name, args, queue in sent] == [
        ("ledger.block_committed", 2, block_to_json(chain.blocks[3]), None)
    ]
    assert block_committed.name == "ledger.block_committed"


def test_it_counts_pending_transactions_as_the_validators_do(chain: Chain) -> None:
    """The admission service and the projection agree: a projected block frees its nonces."""
    project(chain.blocks[0])
    tx = chain.blocks[1].transactions[0]
    services.transaction_admit(data=tx.to_json(), submitted_by=None)
    assert SubmittedTransaction.objects.count() == 1
    project(chain.blocks[1])
    assert not SubmittedTransaction.objects.exists()
    assert TransactionRecord.objects.get(tx_id=tx.id).result == "ok"


# --- the live page's socket ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_pushes_block_hints_to_authenticated_sockets_only(chain: Chain, prosumer: User) -> None:
    stranger, household = headers(None), headers(prosumer)

    async def run() -> tuple[Any, Any]:
        anonymous = WebsocketCommunicator(application, "/ws/ledger/", headers=stranger)
        await anonymous.connect(timeout=5)
        refused = await anonymous.receive_output(timeout=2)
        member = WebsocketCommunicator(application, "/ws/ledger/", headers=household)
        connected, _ = await member.connect(timeout=5)
        assert connected
        layer = get_channel_layer()
        await layer.group_send(LEDGER_GROUP, {"type": "ledger.block", "height": 41})
        hint = await member.receive_json_from(timeout=5)
        await member.disconnect()
        return refused, hint

    refused, hint = async_to_sync(run)()
    assert refused == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}
    assert hint == {"type": "ledger.block", "height": 41, "everything": False}


def test_it_asks_a_validator_again_for_blocks_whose_every_notification_was_lost(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _sent_tasks(monkeypatch)
    for block in chain.blocks[:3]:
        assert project(block)
    project(chain.blocks[4])  # block 3 never arrived: 4 waits for it
    assert ProjectionCursor.objects.get().height == 2
    now = timezone.now()
    ValidatorStatus.objects.create(index=0, height=6, last_seen_at=now - timedelta(minutes=5))
    ValidatorStatus.objects.create(index=1, height=5, last_seen_at=now)
    ValidatorStatus.objects.create(index=3, height=6, last_seen_at=now)
    ValidatorStatus.objects.create(index=2, height=2, last_seen_at=now)

    # The chain's blocks are dated 2026-01-01: the projection has been stuck for long.
    assert services.projection_catch_up() == 3  # the highest validator heard from lately
    assert sent == [("ledger.resend_blocks", (3, 3), "validator.3")]
    assert resend_blocks.name == "ledger.resend_blocks"

    # Validator 3 sends them again (its own code, its own store); the projection catches up.
    class ToTheSite:
        def send(self, to: int | None, message: dict[str, Any]) -> None:
            raise AssertionError("resending blocks sends no consensus message")

        def committed(self, block: Block) -> None:
            block_committed(3, config.wire_text(block_to_json(block)))

    store = open_store(config.store_url(3))
    write_chain(store, chain)
    validator = Validator(
        genesis=chain.genesis,
        index=3,
        keys=VALIDATORS[3],
        store=store,
        registry=registry(),
        transport=ToTheSite(),
        now_ms=GENESIS_TIME_MS,
    )
    assert validator.resend(3) == 4
    assert ProjectionCursor.objects.get().height == 6
    assert services.projection_catch_up() is None  # nothing missing any more


def test_it_does_not_ask_for_blocks_while_the_projection_keeps_up(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(config.app, "send_task", lambda *args, **kwargs: sent.append(args))
    for block in chain.blocks[:3]:
        project(block)
    ValidatorStatus.objects.create(index=1, height=3, last_seen_at=timezone.now())
    # The newest projected block is recent: block 3's notifications may still be on their way.
    BlockRecord.objects.filter(height=2).update(timestamp=timezone.now())
    assert services.projection_catch_up() is None
    # Stuck, but the only validator ahead has not been heard from lately.
    BlockRecord.objects.filter(height=2).update(timestamp=timezone.now() - timedelta(minutes=1))
    ValidatorStatus.objects.filter(index=1).update(
        last_seen_at=timezone.now() - timedelta(minutes=1)
    )
    assert services.projection_catch_up() is None
    assert sent == []


def test_a_validator_that_signs_the_new_blocks_is_up_before_its_heartbeat_arrives(
    chain: Chain,
) -> None:
    """Health is judged from the commits too: the newest block's certificate names who signed
    it, so a console opened before any heartbeat does not call a signing validator down."""
    for block in chain.blocks:
        block_committed(0, block_to_json(block))
    ValidatorStatus.objects.all().delete()  # no heartbeat heard yet (a site just restarted)
    newest = chain.blocks[-1]
    signers = {vote.validator for vote in newest.certificate}
    assert signers
    soon = datetime_of_ms(newest.timestamp_ms + 2_000)
    views = {v.index: v for v in validator_list(now=soon)}
    assert {i for i, v in views.items() if v.up} == signers
    assert {views[i].signed_height for i in signers} == {newest.height}
    later = {v.index: v for v in validator_list(now=datetime_of_ms(newest.timestamp_ms + 60_000))}
    assert not any(v.up for v in later.values())  # signed a minute ago, no heartbeat: down
