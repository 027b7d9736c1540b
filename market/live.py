"""The live topics (``ledger.live``) a block touched in the market: the accounts whose margins,
orders, offers, contracts or defaults changed and the slots whose book, offers or contracts did,
from the market's events and the state keys it wrote (``market.chain.schema``)."""

from __future__ import annotations

from typing import Any

from ledger.blocks import Block
from ledger.live import addresses_topics, event_topics, segment_topic, slot_topic, valid_topic
from ledger.state import State
from market.chain.options import ELECTRICITY, UNITS
from market.chain.schema import CONTRACT_PREFIX, LOCKED_PREFIX, OFFER_PREFIX, ORDER_PREFIX

# Keys whose next path segment is an account, and those whose next one is a slot.
_ACCOUNT_PREFIXES = (LOCKED_PREFIX, "market/defaults/")
_SLOT_PREFIXES = (
    "market/level/",
    "market/book/",
    "market/open/",
    "market/offers/",
    "market/contracts/",
)
_RECORDS = (ORDER_PREFIX, OFFER_PREFIX, CONTRACT_PREFIX)


def topics(*, block: Block, state: State, changes: dict[str, Any]) -> set[str]:
    found = event_topics(block, "market.")
    for key, value in changes.items():
        for prefix in _ACCOUNT_PREFIXES:
            if (topic := segment_topic(key, prefix, "account")) is not None:
                found.add(topic)
        for prefix in _SLOT_PREFIXES:
            if (topic := segment_topic(_of_slot(key, prefix), prefix, "slot")) is not None:
                found.add(topic)
        if key.startswith(CONTRACT_PREFIX):  # market/contract/[<carrier>-]<slot>-<n>
            found |= _valid({slot_topic(key[len(CONTRACT_PREFIX) :].split("-")[-2])})
        if key.startswith("market/open/"):  # market/open/<slot>/<address>
            found |= addresses_topics([key.rsplit("/", 1)[-1]])
        if isinstance(value, dict) and key.startswith(_RECORDS):
            found |= addresses_topics(value.get(name) for name in ("owner", "buyer", "seller"))
            found |= _valid({slot_topic(value.get("slot"))})
    return found


def _of_slot(key: str, prefix: str) -> str:
    """``key`` with another carrier's ``<carrier>/<slot>`` after ``prefix`` as ``<slot>``
    (``market/level/heat/<slot>/...``: the slot's topic is the same for every carrier)."""
    carrier, _, rest = key[len(prefix) :].partition("/")
    if key.startswith(prefix) and carrier in UNITS and carrier != ELECTRICITY:
        return prefix + rest
    return key


def _valid(topics: set[str]) -> set[str]:
    return {topic for topic in topics if valid_topic(topic)}
