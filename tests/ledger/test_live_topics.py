"""Targeted live hints (ledger.live): a projected block tells the group of each account and slot
it changed, found from its typed events and the state keys it wrote, and nobody else; a page's
socket follows only the topics it subscribed to, a household only its own account."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from gridplatform.accounts.models import User
from gridplatform.asgi import application
from ledger import live
from ledger.blocks import Block
from market import live as market_live
from tests.accounts.test_consumers import headers
from tests.ledger.chains import HOUSEHOLDS, OPERATOR, REGULATOR
from tests.ledger.site import SLOT_MS, Site, give_key, open_slot, order, trading_site

SELLER, BUYER, OTHER = HOUSEHOLDS[5], HOUSEHOLDS[6], HOUSEHOLDS[7]


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    return trading_site(settings, tmp_path, (SELLER, BUYER, OTHER))


def hints_of(commit: Any, topics: list[str]) -> list[dict[str, Any]]:
    """The hints a channel subscribed to ``topics`` (and to the block group) gets while
    ``commit()`` projects blocks."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    groups = [live.LEDGER_GROUP, *topics]
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)

    async def receive_all() -> list[dict[str, Any]]:
        found = []
        while True:
            try:
                found.append(await asyncio.wait_for(layer.receive(channel), timeout=1.5))
            except TimeoutError:
                return found

    try:
        commit()
        return async_to_sync(receive_all)()
    finally:
        for group in groups:
            async_to_sync(layer.group_discard)(group, channel)


@pytest.mark.django_db(transaction=True)
def test_a_trade_hints_its_buyer_seller_and_slot_and_nobody_else(site: Site) -> None:
    slot = open_slot(site)
    followed = [live.account_topic(who.address) for who in (SELLER, BUYER, OTHER)]
    followed += [live.slot_topic(slot), live.slot_topic(slot + SLOT_MS)]
    blocks: list[Block] = []

    def trade() -> None:
        block = site.commit(
            [
                order(site, SELLER, "sell", 3_000, 20, slot),
                order(site, BUYER, "buy", 2_000, 25, slot),
            ]
        )
        assert list(block.results) == ["ok", "ok"]
        blocks.append(block)

    hints = hints_of(trade, followed)
    height = blocks[0].height
    assert {"type": "ledger.block", "height": height, "everything": False} in hints
    changed = {hint["topic"] for hint in hints if hint["type"] == "ledger.changed"}
    assert changed == {
        live.account_topic(SELLER.address),
        live.account_topic(BUYER.address),
        live.slot_topic(slot),
    }
    assert all(hint["height"] == height for hint in hints)


@pytest.mark.django_db(transaction=True)
def test_a_top_up_and_a_feeder_assignment_hint_their_account(site: Site) -> None:
    followed = [live.account_topic(who.address) for who in (SELLER, BUYER, OTHER)]

    def acts() -> None:
        site.commit(
            [
                site.sign(OPERATOR, "credit.issue", to=OTHER.address, amount=500),
                site.sign(OPERATOR, "grid.feeder.assign", address=SELLER.address, feeder="f2"),
            ]
        )

    changed = {hint.get("topic") for hint in hints_of(acts, [*followed, live.GRID_TOPIC])}
    # A household's feeder assignment is its account's news, not the grid's.
    assert changed - {None} == {
        live.account_topic(OTHER.address),
        live.account_topic(SELLER.address),
    }


@pytest.mark.django_db(transaction=True)
def test_a_declaration_and_a_trade_hint_the_grid_and_a_top_up_does_not(site: Site) -> None:
    slot = open_slot(site)

    def declare() -> None:
        site.commit(
            [site.sign(OPERATOR, "grid.state.declare", scope="grid", state="high_load", reason="r")]
        )

    def top_up() -> None:
        site.commit([site.sign(OPERATOR, "credit.issue", to=OTHER.address, amount=5)])

    def publish() -> None:
        feeder = {"feeder": "feeder-1", "export_limit_w": 90_000, "import_limit_w": 90_000}
        site.commit([site.sign(OPERATOR, "grid.feeder.publish", **feeder)])

    def trade() -> None:  # the contract loads the published feeder-1
        block = site.commit(
            [
                order(site, SELLER, "sell", 1_000, 20, slot),
                order(site, BUYER, "buy", 1_000, 25, slot),
            ]
        )
        assert list(block.results) == ["ok", "ok"]

    # (topic "grid", topic "acts"): a top-up is an act of the grid operator's, not the grid's.
    cases = ((top_up, False, True), (publish, True, True), (trade, True, False))
    for commit, grid, acts in (*cases, (declare, True, True)):
        topics = {hint.get("topic") for hint in hints_of(commit, [live.GRID_TOPIC, "acts"])}
        assert (live.GRID_TOPIC in topics) is grid, commit.__name__
        assert ("acts" in topics) is acts, commit.__name__


@pytest.mark.django_db(transaction=True)
def test_a_veto_hints_the_verdicts_and_a_top_up_does_not(site: Site) -> None:
    """The regulators' contracts list follows ``verdicts``: a contract's veto, not every act."""
    slot = open_slot(site)
    block = site.commit(
        [order(site, SELLER, "sell", 1_000, 20, slot), order(site, BUYER, "buy", 1_000, 25, slot)]
    )
    assert list(block.results) == ["ok", "ok"]
    contract = f"{slot}-0"

    def top_up() -> None:
        site.commit([site.sign(OPERATOR, "credit.issue", to=OTHER.address, amount=5)])

    def veto() -> None:
        made = site.commit(
            [site.sign(REGULATOR, "supervision.contract.veto", contract=contract, reason="r")]
        )
        assert list(made.results) == ["ok"]

    for commit, verdict in ((top_up, False), (veto, True)):
        topics = {hint.get("topic") for hint in hints_of(commit, [live.VERDICTS_TOPIC, "acts"])}
        assert "acts" in topics, commit.__name__
        assert (live.VERDICTS_TOPIC in topics) is verdict, commit.__name__


@pytest.mark.django_db
def test_block_topics_reads_the_applications_keys(site: Site) -> None:
    """The market's keys name their slot and account even where no event does (an order
    cancelled: its record leaves the state, its margin and the book change)."""
    slot = open_slot(site)
    placed = order(site, OTHER, "buy", 1_000, 10, slot)
    site.commit([placed])
    cancel = site.sign(OTHER, "market.order.cancel", order=placed.id)
    block = site.commit([cancel])
    assert list(block.results) == ["ok"]
    changes = {f"market/locked/{OTHER.address}": 0, f"market/level/{slot}/buy/10": None}
    topics = live.block_topics(block=block, state=site.state, changes=changes)
    assert topics == {live.account_topic(OTHER.address), live.slot_topic(slot)}


@pytest.mark.django_db
def test_a_heat_books_keys_hint_their_slot_as_electricitys_do(site: Site) -> None:
    """Another carrier's families sit under ``<carrier>/<slot>`` (a heat contract is
    ``heat-<slot>-<n>``): the slot is still what they name, where no event does."""
    slot = open_slot(site)
    block = site.commit([site.sign(OPERATOR, "credit.issue", to=OTHER.address, amount=1)])
    for key in (
        f"market/level/heat/{slot}/buy/10",
        f"market/book/heat/{slot}/buy/0/0",
        f"market/offers/heat/{slot}",
        f"market/contract/heat-{slot}-0",
    ):
        topics = market_live.topics(block=block, state=site.state, changes={key: None})
        assert topics == {live.slot_topic(slot)}, key


@pytest.mark.parametrize(
    ("topic", "valid"),
    [
        ("account." + "a" * 50, True),
        ("slot.1765000800000", True),
        ("account." + "A" * 50, False),
        ("account.abc", False),
        ("slot.-5", False),
        ("slot.12:00", False),
        ("grid", True),
        ("acts", True),
        ("verdicts", True),
        ("ledger", False),
        (7, False),
    ],
)
def test_only_accounts_and_slots_are_topics(topic: object, valid: bool) -> None:
    assert live.valid_topic(topic) is valid


# --- the socket ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_socket_gets_only_the_topics_it_follows_and_a_household_only_its_own(
    prosumer: User, grid_operator: User
) -> None:
    give_key(prosumer, SELLER)
    own, other = live.account_topic(SELLER.address), live.account_topic(BUYER.address)
    household, operator = headers(prosumer), headers(grid_operator)

    async def run() -> dict[str, Any]:
        layer = get_channel_layer()
        seen: dict[str, Any] = {}
        mine = WebsocketCommunicator(application, "/ws/ledger/", headers=household)
        assert (await mine.connect(timeout=5))[0]
        await mine.send_json_to({"subscribe": [other]})
        seen["refused"] = await mine.receive_json_from(timeout=5)
        await mine.send_json_to({"subscribe": "everything"})
        seen["malformed"] = await mine.receive_json_from(timeout=5)
        await mine.send_json_to({"subscribe": [own, live.slot_topic(1_765_000_800_000)]})
        seen["subscribed"] = await mine.receive_json_from(timeout=5)

        watcher = WebsocketCommunicator(application, "/ws/ledger/", headers=operator)
        assert (await watcher.connect(timeout=5))[0]
        await watcher.send_json_to({"subscribe": [other]})
        seen["watcher subscribed"] = await watcher.receive_json_from(timeout=5)

        for topic in (other, own):
            await layer.group_send(topic, {"type": "ledger.changed", "height": 9, "topic": topic})
        seen["household got"] = await mine.receive_json_from(timeout=5)
        seen["household then"] = await mine.receive_nothing(timeout=1)
        seen["watcher got"] = await watcher.receive_json_from(timeout=5)
        # A new subscription replaces the old one.
        await mine.send_json_to({"subscribe": []})
        await mine.receive_json_from(timeout=5)
        await layer.group_send(own, {"type": "ledger.changed", "height": 10, "topic": own})
        seen["after leaving"] = await mine.receive_nothing(timeout=1)
        await mine.disconnect()
        await watcher.disconnect()
        return seen

    seen = async_to_sync(run)()
    assert seen["refused"]["code"] == "bad_subscription"
    assert "own account" in seen["refused"]["message"]
    assert seen["malformed"]["code"] == "bad_subscription"
    assert seen["subscribed"] == {"type": "subscribed", "topics": 2}
    assert seen["watcher subscribed"] == {"type": "subscribed", "topics": 1}
    # The refused subscription changed nothing: the household follows its own account only.
    assert seen["household got"] == {"type": "ledger.changed", "height": 9, "topic": own}
    assert seen["household then"] is True
    assert seen["watcher got"] == {"type": "ledger.changed", "height": 9, "topic": other}
    assert seen["after leaving"] is True


@pytest.mark.django_db(transaction=True)
def test_a_subscription_is_bounded(grid_operator: User) -> None:
    operator = headers(grid_operator)
    too_many = [live.slot_topic(n) for n in range(live.MAX_TOPICS + 1)]

    async def run() -> Any:
        socket = WebsocketCommunicator(application, "/ws/ledger/", headers=operator)
        assert (await socket.connect(timeout=5))[0]
        await socket.send_json_to({"subscribe": too_many})
        answer = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return answer

    answer = async_to_sync(run)()
    assert answer["code"] == "bad_subscription"
    assert str(live.MAX_TOPICS) in answer["message"]
