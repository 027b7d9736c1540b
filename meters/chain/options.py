"""The meters' option: the slot a meter's reading interval must divide.

No Django import. ``meters.slot_ms`` in the genesis ``options``; a genesis that does not name it
(every network made before the meters had options of their own) has it equal to the delivery
slot ``market.slot_ms``, the network-wide setting it was read from then, and 15 minutes when
neither is set. Like every genesis option it never changes after genesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.state import State

DEFAULT_SLOT_MS = 900_000


def slot_ms_of(options: Mapping[str, Any]) -> int:
    """The meters' slot, in ms, for a genesis's ``options`` (the site asks with these)."""
    value: int = options.get("meters.slot_ms", options.get("market.slot_ms", DEFAULT_SLOT_MS))
    return max(1, value)  # as the market clamps its own slot


def slot_ms(state: State) -> int:
    genesis = state.get("ledger/genesis")
    return slot_ms_of(genesis.get("options", {}) if genesis else {})
