"""The live topics (``ledger.live``) a block touched in supervision: accounts assigned a feeder,
restricted or reinstated, named by an act; slots whose feeder loads changed or whose contracts
were vetoed or curtailed (``supervision.chain.schema``)."""

from __future__ import annotations

from typing import Any

from ledger.blocks import Block
from ledger.live import event_topics, keyed_topics, segment_topic
from ledger.state import State
from supervision.chain.schema import FEEDER_PREFIX, LOAD_PREFIX, RESTRICTED_PREFIX


def topics(*, block: Block, state: State, changes: dict[str, Any]) -> set[str]:
    found = event_topics(block, "grid.") | event_topics(block, "supervision.")
    found |= keyed_topics(changes, (FEEDER_PREFIX, RESTRICTED_PREFIX))
    for key in changes:
        if (topic := segment_topic(key, LOAD_PREFIX, "slot")) is not None:
            found.add(topic)
    return found
