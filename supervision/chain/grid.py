"""The grid side of the market: topology, feeder limits, grid state and the security check.

No Django import. Published by the grid operator as signed transactions; read by the market on
every match (``grid_check``, through ``supervision.chain.network``).
``docs/supervision.md`` is the same reference with examples.

State keys
==========

Declared, with their records, in ``supervision.chain.schema`` (``grid/...``).

Limits are in W (integers; 5 kW is 5000). A slot of ``market.slot_ms`` lets a feeder carry
``limit_w * slot_ms // 3 600 000`` Wh each way: its *capacity* for the slot (a segment of the
heating network: for heat's slot, ``market.heat.slot_ms``). Its *headroom* is the capacity less
the load already contracted.

Transaction types (grid operator only)
======================================

Each payload has exactly the fields listed (``bad_payload``); codes in the order checked.

``grid.feeder.publish`` ``{"feeder": name, "export_limit_w": int, "import_limit_w": int}``
    Publish a feeder or change its limits (new matches use them; contracts made stand).
    Refusals: ``bad_feeder``, ``bad_limit`` (each an integer >= 0).
``grid.feeder.assign`` ``{"address": household address, "feeder": name}``
    Which feeder a household is connected to; assigning again moves it. Refusals
    ``bad_address``, ``unknown_account``, ``not_household``, ``bad_feeder``.
``grid.state.declare`` ``{"scope": "grid" | "feeder:<name>", "state": "normal" | "high_load" |
"unstable", "reason": text}``
    Declares the grid or one feeder under high load or unstable, or normal again. While it is
    not normal, new trading in its scope is refused with ``grid_high_load`` or
    ``grid_unstable`` (orders, offers and acceptances of households on it; for ``grid``, all).
    Refusals: ``reason_required`` (1-500 characters, not only spaces), ``bad_scope``,
    ``unknown_feeder`` (not published), ``bad_state``, ``no_change`` (already in that state).

The security check
==================

``grid_check`` is called on every match (order book, call auction, accepted offer) before the
contract is made: the energy is cut to the smaller of the export headroom of the seller's feeder
and the import headroom of the buyer's feeder (each only if that feeder is published). When that
is less than asked, the contract is made for the headroom and records
``"grid": {"requested_wh", "constraint": "export:<feeder>" | "import:<feeder>", "cut_wh"}``;
when it is 0 the match is refused (the incoming order rests, an acceptance is refused with
``grid_refused``). The contract records the published feeders it counts in,
``"feeders": {"export": <seller's feeder>, "import": <buyer's feeder>}`` (either left out when
not published; the whole field when neither is), and ``load_add`` counts it in their load; a
veto or a curtailment (``supervision.chain.acts``) takes it out of the same feeders again. When
the slot settles, the market calls :func:`slot_settled` (its hook ``market.slot_settled``) and
the slot's loads leave the state: what they were is the event ``grid.loads_settled``.

Events
======

``grid.feeder_assigned``, ``grid.topology_published``, ``grid.state_declared``,
``grid.loads_settled``: their data in ``supervision.chain.schema``.
"""

from __future__ import annotations

from typing import Any

from ledger.application import (
    TRADERS,
    Context,
    TxFailed,
    account,
    payload_fields,
    registered_address,
)
from ledger.crypto import Transaction, is_name
from ledger.state import State
from market.chain.network import Allowance
from market.chain.options import ELECTRICITY, market_options
from market.chain.schema import Contract
from supervision.chain.schema import (
    FEEDER_ASSIGNED,
    LOADS_SETTLED,
    PUBLISHED_KEY,
    STATE_DECLARED,
    TOPOLOGY_PUBLISHED,
    Load,
    carrier_of_feeder,
    feeder_key,
    feeder_of,
    limit_w,
    load,
    load_key,
    load_save,
    loaded_wh,
    state_key,
    stop_delete,
    stop_set,
    topology,
    topology_key,
)

MS_PER_HOUR = 3_600_000
GRID_STATES = ("normal", "high_load", "unstable")
MAX_REASON = 500


def capacity_wh(limit_w: int, slot_ms: int) -> int:
    """The energy a limit of ``limit_w`` lets through in one slot, rounded down."""
    return limit_w * slot_ms // MS_PER_HOUR


def headroom(state: State, slot: int, feeder: str, direction: str) -> int | None:
    """What ``feeder`` can still carry in ``slot`` (``direction``: ``export`` or ``import``);
    None if the feeder has no published limit."""
    published = topology(state, feeder)
    if published is None:
        return None
    # A segment of the heating network carries heat's slots (``market.heat.slot_ms``).
    slot_ms = market_options(state).carrier(carrier_of_feeder(published)).slot_ms
    cap = capacity_wh(limit_w(published, direction), slot_ms)
    return max(0, cap - loaded_wh(state, slot, feeder, direction))


def grid_check(
    state: State,
    *,
    seller: str,
    buyer: str,
    slot: int,
    energy_wh: int,
    feeders: tuple[str | None, str | None] | None = None,
) -> Allowance:
    """How much of a match of ``energy_wh`` from ``seller`` to ``buyer`` in ``slot`` the grid
    allows. Deterministic (reads ``state`` only). 0 refuses the match; less than asked tailors
    it to that amount and ``constraint`` is recorded in the contract. ``feeders``: the seller's
    and the buyer's, when the caller has read them already."""
    if feeders is None:
        feeders = (feeder_of(state, seller), feeder_of(state, buyer))
    allowed, constraint = energy_wh, ""
    for direction, feeder in zip(("export", "import"), feeders, strict=True):
        if feeder is None:
            continue
        room = headroom(state, slot, feeder, direction)
        if room is not None and room < allowed:
            allowed, constraint = room, f"{direction}:{feeder}"
    return Allowance(allowed, constraint)


def feeders_record(counted: tuple[str | None, str | None]) -> dict[str, str]:
    """A contract's ``feeders``: the seller's feeder it counts in for export and the buyer's for
    import, each only if published when the contract was made (``load_add``)."""
    return {
        direction: feeder
        for direction, feeder in zip(("export", "import"), counted, strict=True)
        if feeder is not None
    }


def load_add(state: State, contract: Contract, energy_wh: int) -> None:
    """Count ``energy_wh`` (negative: take it out) of ``contract`` in the load of the feeders
    its ``feeders`` names: those published when it was made. A veto or a curtailment takes the
    energy off where it was counted, whatever the topology has become since. A feeder published
    later does not count the contracts made before it, so the grid operator publishes the
    topology before trading starts."""
    slot = contract["slot"]
    counted = contract.get("feeders", {})
    for direction, feeder in (("export", counted.get("export")), ("import", counted.get("import"))):
        if feeder is None:
            continue
        current = load(state, slot, feeder)
        updated: Load = {
            "export_wh": current["export_wh"] + (energy_wh if direction == "export" else 0),
            "import_wh": current["import_wh"] + (energy_wh if direction == "import" else 0),
        }
        load_save(state, slot, feeder, updated)


def slot_settled(state: State, slot: int, contracts: list[Contract], context: Context) -> None:
    """The market's ``market.slot_settled`` hook: the slot's loads leave the state (no match can
    count in them any more, no act can change them), each feeder's last load in the event
    ``grid.loads_settled``. O(the slot's contracts)."""
    # A carrier's slot may be longer than the market's (``market.heat.slot_ms``): its contracts
    # settle with its last market slot, and their loads are counted under its own start.
    feeders: dict[int, set[str]] = {slot: set()}
    for made in contracts:
        record: dict[str, Any] = dict(made)
        counted: dict[str, str] = record.get("feeders", {})
        feeders.setdefault(record.get("slot", slot), set()).update(counted.values())
    for start in sorted(feeders, key=lambda s: (s != slot, s)):
        loads: dict[str, Load] = {}
        for feeder in sorted(feeders[start]):
            if state.get(load_key(start, feeder)) is not None:
                loads[feeder] = load(state, start, feeder)
                state.delete(load_key(start, feeder))
        if loads:
            context.emit(LOADS_SETTLED, {"slot": start, "loads": loads})


# --- payload checks shared with supervision ------------------------------------------------------


def reason_of(value: Any) -> str:
    """A supervisory act's reason: 1-500 characters, not only spaces."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON:
        raise TxFailed("reason_required", "every act says why, in 1-500 characters")
    return value


def feeder_scope(state: State, scope: Any, *, whole: str) -> str | None:
    """Check a scope: ``whole`` (the market, the grid) or ``feeder:<name>`` of a published
    feeder. Returns the feeder's name, None for the whole."""
    if scope == whole:
        return None
    if not isinstance(scope, str) or not scope.startswith("feeder:"):
        raise TxFailed("bad_scope", f"the scope is {whole!r} or 'feeder:<name>'")
    feeder = scope[len("feeder:") :]
    if not is_name(feeder):
        raise TxFailed("bad_scope", f"the scope is {whole!r} or 'feeder:<name>'")
    if state.get(topology_key(feeder)) is None:
        raise TxFailed("unknown_feeder", "the grid operator has not published that feeder")
    return feeder


def act_record(tx: Transaction, context: Context, **fields: Any) -> dict[str, Any]:
    """Who, when and why, for a supervisory act's record in state."""
    return fields | {
        "by": tx.sender,
        "tx": context.tx_id,
        "height": context.height,
        "timestamp_ms": context.timestamp_ms,
    }


# --- the grid operator's transactions -------------------------------------------------------------


def _check_feeder_name(feeder: Any) -> str:
    if not isinstance(feeder, str) or not is_name(feeder):
        raise TxFailed("bad_feeder", "a feeder is named by 1-64 characters of [a-z0-9._-]")
    return feeder


def feeder_assign(state: State, tx: Transaction, context: Context) -> None:
    """``grid.feeder.assign``: the grid operator records which feeder a household is on.

    Precondition (checked by the registry): the sender is the grid operator.
    """
    address, feeder, carrier = payload_fields(
        tx, "address", "feeder", optional={"carrier": ELECTRICITY}
    )
    address = registered_address(state, address)
    acct = account(state, address)
    assert acct is not None  # registered_address checked it
    if acct["role"] not in TRADERS:
        raise TxFailed("not_household")
    feeder = _check_feeder_name(feeder)
    carrier = _check_carrier(state, carrier, feeder)
    state.set(feeder_key(address, carrier), feeder)
    assigned = {"address": address, "feeder": feeder}
    if carrier != ELECTRICITY:
        assigned["carrier"] = carrier
    context.emit(FEEDER_ASSIGNED, assigned)


def _check_carrier(state: State, carrier: Any, feeder: str) -> str:
    """A carrier the market trades, and the one of ``feeder`` if it is published already."""
    carriers = market_options(state).carriers
    if not isinstance(carrier, str) or carrier not in carriers:
        raise TxFailed("bad_carrier", f"the market trades {', '.join(carriers)}")
    published = topology(state, feeder)
    if published is not None and carrier_of_feeder(published) != carrier:
        raise TxFailed(
            "carrier_mismatch",
            f"{feeder} is published for {carrier_of_feeder(published)}; names are not shared",
        )
    return carrier


def feeder_publish(state: State, tx: Transaction, context: Context) -> None:
    """``grid.feeder.publish``: a feeder's export and import limits, in W.

    Precondition (checked by the registry): the sender is the grid operator.
    """
    feeder, export_limit, import_limit, carrier = payload_fields(
        tx, "feeder", "export_limit_w", "import_limit_w", optional={"carrier": ELECTRICITY}
    )
    feeder = _check_feeder_name(feeder)
    for limit in (export_limit, import_limit):
        if type(limit) is not int or limit < 0:
            raise TxFailed("bad_limit", "a limit is a whole number of W, 0 or more")
    carrier = _check_carrier(state, carrier, feeder)
    if state.get(topology_key(feeder)) is None:
        state.set(PUBLISHED_KEY, state.get(PUBLISHED_KEY, 0) + 1)
    published = act_record(
        tx, context, feeder=feeder, export_limit_w=export_limit, import_limit_w=import_limit
    )
    if carrier != ELECTRICITY:
        published["carrier"] = carrier
    state.set(topology_key(feeder), published)
    context.emit(TOPOLOGY_PUBLISHED, published)


def state_declare(state: State, tx: Transaction, context: Context) -> None:
    """``grid.state.declare``: the grid, or a feeder, is normal, under high load or unstable.

    Precondition (checked by the registry): the sender is the grid operator.
    """
    scope, grid_state, reason = payload_fields(tx, "scope", "state", "reason")
    reason = reason_of(reason)
    feeder_scope(state, scope, whole="grid")
    if grid_state not in GRID_STATES:
        raise TxFailed("bad_state", "normal, high_load or unstable")
    key = state_key(scope)
    current = state.get(key)
    if (current["state"] if current else "normal") == grid_state:
        raise TxFailed("no_change", f"{scope} is {grid_state} already")
    declared = act_record(tx, context, scope=scope, state=grid_state, reason=reason)
    if grid_state == "normal":
        stop_delete(state, key)
    else:
        stop_set(state, key, declared)
    context.emit(STATE_DECLARED, declared)
