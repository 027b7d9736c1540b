"""Supervision's namespace on the ledger: the grid and the supervisors' stops.

No Django import. ``supervision.chain`` owns two key families: ``grid/`` (what the grid operator
publishes and declares, and the load the market's contracts put on each feeder) and
``supervision/`` (the regulators' suspensions and restrictions). Only ``supervision.chain``
writes them; the market reads them through the ``market.network`` hook that
``supervision.chain.network`` provides, other code through the accessors here.

=====================================  ==========================================================
key                                    record; created by, read by, removed by
=====================================  ==========================================================
``grid/feeder/<address>``              the feeder (a name, 1-64 of ``[a-z0-9._-]``) the
                                       household's connection is on; without one it cannot
                                       trade. ``grid.feeder.assign`` (again: moved); read by
                                       the qualification audit and the security check; never
                                       removed (one per household)
``grid/feeder.<carrier>/<address>``    the same for another carrier (``heat``): the segment of
                                       its network (a substation or pipe segment, named like a
                                       feeder) the household's connection is on
``grid/topology/<feeder>``             :class:`Topology`: the feeder's limits. A feeder never
                                       published has no limit. ``grid.feeder.publish`` (again:
                                       new limits); read by the security check and the scopes
                                       of acts; never removed (one per feeder). A heating
                                       network's segment is published the same way with
                                       ``"carrier": "heat"``, its limits in W thermal; feeders
                                       and segments share one namespace of names
``grid/load/<slot>/<feeder>``          :class:`Load`: the energy of the slot's contracts (not
                                       vetoed) whose seller (export) or buyer (import) is on the
                                       feeder, made while the feeder was published. Written
                                       when a match counts in it (the market, through
                                       ``network.GridView.count``), a veto or a curtailment;
                                       read by the security check; removed when it comes back
                                       to nothing (vetoes) or when the slot settles (the
                                       market's ``market.slot_settled`` hook,
                                       :func:`supervision.chain.grid.slot_settled`)
``grid/state/grid``                    :class:`Declaration` of the grid operator for the whole
``grid/state/feeder/<feeder>``         grid, or one feeder; absent: normal.
                                       ``grid.state.declare``; read by the qualification audit;
                                       removed by a declaration of ``normal``
``grid/stops``                         how many declarations and suspensions are stored; absent:
                                       none, and the market skips reading them. Kept by the
                                       writers of those keys
``grid/published``                     how many feeders are published; absent: none. Kept by
                                       ``grid.feeder.publish``; never removed
``supervision/suspended/market``       :class:`Suspension` of the whole market, in force until
                                       its ``until`` (0: until resumed).
                                       ``supervision.trading.suspend``; read by the
                                       qualification audit; removed by
                                       ``supervision.trading.resume`` (a lapsed one stays until
                                       a new suspension of its scope replaces it)
``supervision/suspended/feeder/<f>``   :class:`Suspension` of trading on one feeder, likewise
``supervision/restricted/<address>``   :class:`Restriction`: the account may not trade.
                                       ``supervision.account.restrict``; read by the
                                       qualification audit; removed by
                                       ``supervision.account.reinstate``
=====================================  ==========================================================

Every act and every change of the grid is also an event (``context.emit``), so that what
happened stays in the blocks when its record leaves the state (a settled contract, a resumed
suspension, a replaced declaration). Each act's data carries who, in which transaction and
block, and when (``by``, ``tx``, ``height``, ``timestamp_ms``: ``grid.act_record``):

==================================  ==============================================================
``grid.feeder_assigned``            ``{"address", "feeder"}``
``grid.topology_published``         :class:`Topology`, as stored
``grid.state_declared``             :class:`Declaration` (``state`` may be ``normal``: then nothing
                                    is stored)
``grid.loads_settled``              ``{"slot", "loads": {"<feeder>": Load}}``: the slot settled;
                                    these were its feeders' loads, which leave the state
``supervision.contract_vetoed``     :class:`ContractActed`
``supervision.contract_curtailed``  likewise
``supervision.contract_cleared``    likewise
``supervision.market_suspended``    :class:`Suspension`, as stored
``supervision.feeder_suspended``    likewise
``supervision.market_resumed``      ``{"scope", "reason", "suspension": the ended one's tx}``
``supervision.feeder_resumed``      likewise
``supervision.account_restricted``  :class:`Restriction`, as stored (the orders and offers it
                                    cancelled are also the market's ``market.order_closed`` and
                                    ``market.offer_closed`` events)
``supervision.account_reinstated``  ``{"address", "reason", "restriction": the lifted one's tx}``
``supervision.defaults_reset``      ``{"address", "reason", "unsettled": the count cleared}``
==================================  ==============================================================
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from ledger.state import State
from market.chain.options import ELECTRICITY
from market.chain.schema import Act

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

# Events.
FEEDER_ASSIGNED = "grid.feeder_assigned"
TOPOLOGY_PUBLISHED = "grid.topology_published"
STATE_DECLARED = "grid.state_declared"
LOADS_SETTLED = "grid.loads_settled"
CONTRACT_VETOED = "supervision.contract_vetoed"
CONTRACT_CURTAILED = "supervision.contract_curtailed"
CONTRACT_CLEARED = "supervision.contract_cleared"
MARKET_SUSPENDED = "supervision.market_suspended"
FEEDER_SUSPENDED = "supervision.feeder_suspended"
MARKET_RESUMED = "supervision.market_resumed"
FEEDER_RESUMED = "supervision.feeder_resumed"
ACCOUNT_RESTRICTED = "supervision.account_restricted"
ACCOUNT_REINSTATED = "supervision.account_reinstated"
DEFAULTS_RESET = "supervision.defaults_reset"
# The events of the acts on a contract, by the ``act`` of its record.
CONTRACT_ACTED = {"veto": CONTRACT_VETOED, "curtail": CONTRACT_CURTAILED, "clear": CONTRACT_CLEARED}


def feeder_key(address: str, carrier: str = ELECTRICITY) -> str:
    """Where the feeder an account is on is kept: for another carrier than electricity, the
    segment of that carrier's network (``grid/feeder.heat/<address>``)."""
    if carrier == ELECTRICITY:
        return FEEDER_PREFIX + address
    return f"grid/feeder.{carrier}/{address}"


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
    carrier: NotRequired[str]  # a heating network's segment: "heat"; absent: electricity


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


class ContractActed(TypedDict):
    """The data of a contract act's event: the contract, its parties, what stands after the act
    (its record's ``energy_wh``, ``escrow``, ``deposit``, ``vetoed``), and the act itself."""

    contract: str
    seller: str
    buyer: str
    energy_wh: int
    escrow: int
    deposit: int
    vetoed: bool
    act: Act


# --- the owner's accessors ---------------------------------------------------------------------


def feeder_of(state: State, address: str, carrier: str = ELECTRICITY) -> str | None:
    feeder: str | None = state.get(feeder_key(address, carrier))
    return feeder


def carrier_of_feeder(published: Topology | dict[str, Any]) -> str:
    """The carrier whose network a published feeder (or segment) belongs to."""
    carrier: str = published.get("carrier", ELECTRICITY)
    return carrier


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
