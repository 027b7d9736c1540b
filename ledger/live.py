"""What a projected block changed, told to the live pages that show it: targeted hints.

A block changes a few accounts and a few slots, however many households the community has. After
it is projected, the site sends one small hint per **topic** it touched to that topic's Channels
group, and one hint for the block to the group ``ledger``:

* ``account.<address>``: the account's balance, nonce, locked margin, feeder, restriction,
  orders, contracts or meter readings changed;
* ``slot.<ms>``: a slot's book, contracts, loads or settlement changed (``ms``: the slot's start,
  ms since 1970-01-01 UTC, as the chain writes it);
* ``grid``: the grid changed: a feeder's topology or load, a declaration, a suspension;
* ``acts``: a supervisory act or an act of the grid operator's (an enrolment, an assignment, a
  top-up) committed: what the regulators' audit log shows.

A live page subscribes, over ``/ws/ledger/`` (``ledger.consumers``), to the topics of the rows it
shows (at most ``MAX_TOPICS``), and on a hint re-fetches those rows only; figures that cover the
whole community (a summary) follow the block hint. So what a page receives per block is bounded
by what it shows, never by the number of households.

The topics come from the block's typed events and the state keys it wrote: the ledger's own here
(every sender's nonce; ``acct/``, ``bal/``), each application's from its ``live`` module
(``settings.LEDGER_LIVE_TOPICS``: ``topics(block=..., state=..., changes=...)``), since the
application alone knows what its keys and events name.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from ledger.blocks import Block
from ledger.state import State

log = logging.getLogger(__name__)

LEDGER_GROUP = "ledger"
MAX_TOPICS = 200  # a page's subscription: the rows and slots it shows
_ADDRESS = re.compile(r"^[0-9a-f]{50}$")
_SLOT = re.compile(r"^[0-9]{1,15}$")
_LEDGER_PREFIXES = ("acct/", "bal/")


def account_topic(address: str) -> str:
    return f"account.{address}"


def slot_topic(slot_ms: object) -> str:
    return f"slot.{slot_ms}"


GRID_TOPIC = "grid"
ACTS_TOPIC = "acts"
VERDICTS_TOPIC = "verdicts"  # a contract vetoed, curtailed or cleared from review


def valid_topic(topic: object) -> bool:
    """A topic a page may subscribe to: ``account.<50 hex>``, ``slot.<ms>``, ``grid``,
    ``acts`` or ``verdicts``."""
    if not isinstance(topic, str):
        return False
    if topic in (GRID_TOPIC, ACTS_TOPIC, VERDICTS_TOPIC):
        return True
    kind, _, value = topic.partition(".")
    return (kind == "account" and bool(_ADDRESS.match(value))) or (
        kind == "slot" and bool(_SLOT.match(value))
    )


def topic_account(topic: str) -> str | None:
    """The address of an ``account.`` topic, None for another topic."""
    kind, _, value = topic.partition(".")
    return value if kind == "account" else None


def addresses_topics(values: Iterable[Any]) -> set[str]:
    """The account topics of those of ``values`` that are addresses."""
    return {account_topic(v) for v in values if isinstance(v, str) and _ADDRESS.match(v)}


def keyed_topics(changes: Iterable[str], prefixes: Iterable[str]) -> set[str]:
    """The account topics of changed keys ``<prefix><address>``."""
    found = set()
    for prefix in prefixes:
        found |= addresses_topics(key[len(prefix) :] for key in changes if key.startswith(prefix))
    return found


_NAMING_FIELDS = ("address", "buyer", "seller", "owner", "to")


def event_topics(block: Block, prefix: str) -> set[str]:
    """The topics the events of ``block`` whose type starts with ``prefix`` (an application's)
    name: their ``slot`` and the accounts in their ``address``, ``buyer``, ``seller``,
    ``owner`` and ``to`` fields."""
    found: set[str] = set()
    for event in block.events:
        if not event["type"].startswith(prefix):
            continue
        data = event["data"]
        slot = data.get("slot")
        if type(slot) is int and slot >= 0:
            found.add(slot_topic(slot))
        found |= addresses_topics(data.get(name) for name in _NAMING_FIELDS)
    return found


def segment_topic(key: str, prefix: str, kind: str) -> str | None:
    """The topic of the path segment right after ``prefix`` in ``key`` (``kind``: account or
    slot), when it is one."""
    if not key.startswith(prefix):
        return None
    topic = f"{kind}.{key[len(prefix) :].split('/', 1)[0]}"
    return topic if valid_topic(topic) else None


def block_topics(*, block: Block, state: State, changes: dict[str, Any]) -> set[str]:
    """Every topic ``block`` touched: the ledger's (senders; ``acct/``, ``bal/`` keys) and each
    application's (``settings.LEDGER_LIVE_TOPICS``)."""
    topics = addresses_topics(tx.sender for tx in block.transactions)
    topics |= keyed_topics(changes, _LEDGER_PREFIXES)
    for name in settings.LEDGER_LIVE_TOPICS:
        topics |= import_module(name).topics(block=block, state=state, changes=changes)
    return topics


async def _send_all(height: int, topics: set[str] | None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    block = {"type": "ledger.block", "height": height, "everything": topics is None}
    sends = [layer.group_send(LEDGER_GROUP, block)]
    sends += [
        layer.group_send(topic, {"type": "ledger.changed", "height": height, "topic": topic})
        for topic in sorted(topics or ())
    ]
    await asyncio.gather(*sends)


def announce(height: int, topics: set[str] | None) -> None:
    """The hints of a committed block: one to ``ledger``, one to each topic's group, sent at
    once; ``None``: every row may have changed (a rebuild of the read models), the block hint
    says so (``"everything": true``). A lost hint only delays a page's update (pages re-fetch
    on every reconnect)."""
    try:
        async_to_sync(_send_all)(height, topics)
    except Exception:  # the block is committed; a failed hint must not fail the caller
        log.exception("could not announce block %s to the live pages", height)
