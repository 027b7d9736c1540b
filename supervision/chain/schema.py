"""Supervision's namespace on the ledger: the grid and the supervisors' stops.

No Django import. ``supervision.chain`` owns two key families: ``grid/`` (what the grid operator
publishes and declares, and the load the market's contracts put on each feeder) and
``supervision/`` (the regulators' suspensions and restrictions). Only ``supervision.chain``
writes them; the market reads them through the ``market.network`` hook that
``supervision.chain.network`` provides, other code through the accessors here.

=====================================  ==========================================================
``grid/feeder/<address>``              the feeder (a name, 1-64 of ``[a-z0-9._-]``) the
                                       household's connection is on; without one it cannot trade
``grid/topology/<feeder>``             :class:`Topology`: the feeder's limits. A feeder never
                                       published has no limit
``grid/load/<slot>/<feeder>``          :class:`Load`: the energy of the slot's contracts (not
                                       vetoed) whose seller (export) or buyer (import) is on the
                                       feeder, made while the feeder was published
``grid/state/grid``                    :class:`Declaration` of the grid operator for the whole
``grid/state/feeder/<feeder>``         grid, or one feeder; absent: normal
``grid/stops``                         how many declarations and suspensions are stored; absent:
                                       none, and the market skips reading them
``grid/published``                     how many feeders are published; absent: none
``supervision/suspended/market``       :class:`Suspension` of the whole market, in force until
                                       its ``until`` (0: until resumed)
``supervision/suspended/feeder/<f>``   :class:`Suspension` of trading on one feeder, likewise
``supervision/restricted/<address>``   :class:`Restriction`: the account may not trade
=====================================  ==========================================================
"""

from __future__ import annotations

from typing import Any, TypedDict

from ledger.state import State

FEEDER_PREFIX = "grid/feeder/"
TOPOLOGY_PREFIX = "grid/topology/"
LOAD_PREFIX = "grid/load/"
GRID_STATE_KEY = "grid/state/grid"
FEEDER_STATE_PREFIX = "grid/state/feeder/"
STOPS_KEY = "grid/stops"
PUBLISHED_KEY = "grid/published"
MARKET_SUSPENDED_KEY = "supervision/suspended/market"
FEEDER_SUSPENDED_PREFIX = "supervision/suspended/feeder/"
RESTRICTED_PREFIX = "supervision/restricted/"


def feeder_key(address: str) -> str:
    return FEEDER_PREFIX + address


def topology_key(feeder: str) -> str:
    return TOPOLOGY_PREFIX + feeder


def load_key(slot: int, feeder: str) -> str:
    return f"{LOAD_PREFIX}{slot}/{feeder}"


def state_key(scope: str) -> str:
    """``grid`` -> ``grid/state/grid``; ``feeder:<name>`` -> ``grid/state/feeder/<name>``."""
    return "grid/state/" + scope.replace(":", "/", 1)


def feeder_suspended_key(feeder: str) -> str:
    return FEEDER_SUSPENDED_PREFIX + feeder


def restricted_key(address: str) -> str:
    return RESTRICTED_PREFIX + address


# --- records: each carries who, when and why (``grid.act_record``) ------------------------------


class _Act(TypedDict):
    by: str
    tx: str
    height: int
    timestamp_ms: int


class Topology(_Act):
    feeder: str
    export_limit_w: int
    import_limit_w: int


class Load(TypedDict):
    export_wh: int
    import_wh: int


class Declaration(_Act):
    scope: str  # "grid" | "feeder:<name>"
    state: str  # "high_load" | "unstable" (normal is no record)
    reason: str


class Suspension(_Act):
    scope: str  # "market" | "feeder:<name>"
    reason: str
    until: int  # ms since 1970, 0: until resumed


class Restriction(_Act):
    address: str
    reason: str
    cancelled_orders: list[str]
    cancelled_offers: list[str]


# --- the owner's accessors ---------------------------------------------------------------------


def feeder_of(state: State, address: str) -> str | None:
    feeder: str | None = state.get(feeder_key(address))
    return feeder


def topology(state: State, feeder: str) -> Topology | None:
    value: Topology | None = state.get(topology_key(feeder))
    return value


def load(state: State, slot: int, feeder: str) -> Load:
    value: Load = state.get(load_key(slot, feeder), {"export_wh": 0, "import_wh": 0})
    return value


def limit_w(published: Topology, direction: str) -> int:
    """The feeder's limit for ``direction`` (``export`` or ``import``), W."""
    return published["export_limit_w"] if direction == "export" else published["import_limit_w"]


def loaded_wh(state: State, slot: int, feeder: str, direction: str) -> int:
    """The energy already contracted through ``feeder`` in ``slot`` for ``direction``."""
    current = load(state, slot, feeder)
    return current["export_wh"] if direction == "export" else current["import_wh"]


def load_save(state: State, slot: int, feeder: str, value: Load) -> None:
    """Store a feeder's load in a slot; a load of nothing is no key at all."""
    if value["export_wh"] or value["import_wh"]:
        state.set(load_key(slot, feeder), value)
    else:
        state.delete(load_key(slot, feeder))


def any_published(state: State) -> bool:
    """Whether the grid operator has published any feeder: until then no match has limits, and
    the market reads no feeder at match time."""
    count: int = state.get(PUBLISHED_KEY, 0)
    return count > 0


def any_stops(state: State) -> bool:
    """Whether any suspension or grid declaration is stored at all. The market reads this one
    key on every order and match, and the stops themselves only when it says so."""
    count: int = state.get(STOPS_KEY, 0)
    return count > 0


def stop_set(state: State, key: str, value: dict[str, Any]) -> None:
    """Store a stop (a suspension, a declaration) at ``key``, counting it in ``STOPS_KEY``."""
    if state.get(key) is None:
        state.set(STOPS_KEY, state.get(STOPS_KEY, 0) + 1)
    state.set(key, value)


def stop_delete(state: State, key: str) -> None:
    """Remove the stop at ``key`` and its count."""
    if state.get(key) is not None:
        count = state.get(STOPS_KEY, 0) - 1
        if count:
            state.set(STOPS_KEY, count)
        else:
            state.delete(STOPS_KEY)
        state.delete(key)


def suspension(state: State, key: str, now: int) -> Suspension | None:
    """The suspension stored at ``key`` if it is in force at block time ``now``: one with an end
    (``until``, ms) lapses by itself."""
    value: Suspension | None = state.get(key)
    if value is None or (value["until"] and now >= value["until"]):
        return None
    return value


def restriction(state: State, address: str) -> Restriction | None:
    value: Restriction | None = state.get(restricted_key(address))
    return value


def declaration(state: State, feeder: str | None) -> Declaration | None:
    """The grid operator's declaration in force for the whole grid, else for ``feeder``."""
    declared: Declaration | None = state.get(GRID_STATE_KEY)
    if declared is None and feeder:
        declared = state.get(FEEDER_STATE_PREFIX + feeder)
    return declared
