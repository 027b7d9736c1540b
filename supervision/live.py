"""The live topics (``ledger.live``) a block touched in supervision: accounts assigned a feeder,
restricted or reinstated, named by an act; slots whose feeder loads changed or whose contracts
were vetoed or curtailed; and ``grid`` when the grid changed (a topology, a load, a declaration,
a suspension: what the consoles' grid sections and alerts show) (``supervision.chain.schema``);
``acts`` when a supervisory act or an act of the grid operator's committed (what the
regulators' audit log shows: ``supervision.selectors``); and ``verdicts`` when a contract was
vetoed, curtailed or cleared from review (what the regulators' contracts list shows: not a
top-up or an enrolment, which are acts too)."""

from __future__ import annotations

from typing import Any

from ledger.blocks import Block
from ledger.live import (
    ACTS_TOPIC,
    GRID_TOPIC,
    VERDICTS_TOPIC,
    event_topics,
    keyed_topics,
    segment_topic,
)
from ledger.state import State
from supervision.chain.schema import FEEDER_PREFIX, LOAD_PREFIX, RESTRICTED_PREFIX
from supervision.projection import CONTRACT_ACTS
from supervision.selectors import OPERATOR_LEDGER_ACTS

# The grid's keys (topology, loads, declarations, stops) and suspensions; not a household's
# feeder assignment (``grid/feeder/<address>``), which is its account's.
_GRID_PREFIXES = ("grid/", "supervision/suspended/")


def topics(*, block: Block, state: State, changes: dict[str, Any]) -> set[str]:
    found = event_topics(block, "grid.") | event_topics(block, "supervision.")
    found |= keyed_topics(changes, (FEEDER_PREFIX, RESTRICTED_PREFIX))
    committed = [
        tx.type
        for tx, result in zip(block.transactions, block.results, strict=True)
        if result == "ok"
    ]
    if any(t.startswith(("supervision.", "grid.")) or t in OPERATOR_LEDGER_ACTS for t in committed):
        found.add(ACTS_TOPIC)
    if any(t in CONTRACT_ACTS for t in committed):
        found.add(VERDICTS_TOPIC)
    for key in changes:
        if (topic := segment_topic(key, LOAD_PREFIX, "slot")) is not None:
            found.add(topic)
        if key.startswith(_GRID_PREFIXES) and not key.startswith(FEEDER_PREFIX):
            found.add(GRID_TOPIC)
    return found
