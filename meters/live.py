"""The live topics (``ledger.live``) a block touched in metering: the owners of meters that were
registered or got readings (``meters.chain.schema``), from the meters' events."""

from __future__ import annotations

from typing import Any

from ledger.blocks import Block
from ledger.live import addresses_topics
from ledger.state import State
from meters.chain.schema import meter_key


def topics(*, block: Block, state: State, changes: dict[str, Any]) -> set[str]:
    meters = {
        event["data"].get("meter") or event["data"].get("id")
        for event in block.events
        if event["type"].startswith("meters.")
    }
    owners = []
    for meter_id in meters:
        record = state.get(meter_key(meter_id), None) if isinstance(meter_id, str) else None
        if isinstance(record, dict):
            owners.append(record.get("owner"))
    return addresses_topics(owners)
