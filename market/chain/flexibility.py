"""The network operators' requirements: flexibility bought from households, on ledger state.

No Django import. Deterministic: integers only, the block time is the only time. The source
paper's operators of the electricity and heating networks "can also participate in the
transaction as an independent market entity and issue specific transaction requirements to users
in the energy supply network". Here the grid operator, who runs both networks, posts a
requirement for a slot on one of its feeders (or heating segments); households on it answer with
the reduction they offer and their price; the operator accepts answers; each acceptance is a
contract of kind ``flexibility``, settled with the slot like every contract: the reduction is
measured against the household's baseline, paid at the answer's price, and a shortfall pays a
penalty from the household's deposit and counts as a default. ``docs/market.md``
("Requirements") is the same reference with a worked example.

Transaction types
=================

Each payload has exactly the fields listed (``carrier`` may be left out: electricity); codes in
the order checked.

``market.flexibility.enroll`` ``{"carrier"?}`` (a household)
    Starts the household's baseline for the carrier (below): only an enrolled household with a
    baseline for the slot's time of day may answer. Refusals: ``bad_carrier``,
    ``already_enrolled``.
``market.requirement.post`` ``{"slot", "feeder", "direction": "import" | "export", "energy_wh",
"price", "carrier"?}`` (the grid operator)
    "Reduce import (or export) on ``feeder`` in ``slot`` by up to ``energy_wh``, paying up to
    ``price`` per kWh." Locks the budget ``value(energy_wh, price)`` of the operator's free
    balance. Refusals: ``bad_carrier``, ``bad_slot``, ``bad_feeder`` (not a name),
    ``bad_direction``, ``bad_energy``, ``bad_price``, ``slot_misaligned``, ``slot_past``,
    ``slot_closed``, ``beyond_horizon``, ``energy_out_of_bounds``, ``price_out_of_bounds``,
    ``insufficient_free_balance``.
``market.requirement.answer`` ``{"requirement": id, "energy_wh", "price"}`` (a household or a
storage provider)
    Offers a reduction of ``energy_wh`` at ``price`` (at most the requirement's); locks a deposit
    like a sell order's (``deposit_bps`` of its value). Refusals: ``unknown_requirement`` (also:
    filled or expired), ``bad_energy``, ``bad_price``, ``slot_past``, ``slot_closed``,
    ``energy_out_of_bounds``, ``price_out_of_bounds``, ``exceeds_requirement``,
    ``price_above_requirement``, ``no_store`` (a storage provider without a store of the
    carrier), the qualification audit (``market_suspended``,
    ``account_restricted``, ``no_feeder``, ``feeder_suspended``, ``grid_*``,
    ``too_many_defaults``), ``not_on_feeder`` (the household is on another feeder or segment),
    ``not_enrolled``, ``no_baseline`` (none yet for the slot's time of day),
    ``exceeds_baseline`` (more reduction than its baseline flow), ``insufficient_free_balance``.
``market.requirement.accept`` ``{"answer": id, "energy_wh"}`` (the operator who posted it)
    Accepts all or part of an answer: a contract of kind ``flexibility``, the household the
    seller, the operator the buyer, at the answer's price, with no network fee, recording the
    household's baseline for the flow in the slot (``baseline_wh``). The operator's budget for
    the energy becomes the escrow at the answer's price (the difference is released); the
    household's deposit for it moves to the contract. Refusals: ``unknown_answer``,
    ``not_owner``, ``bad_energy``, ``slot_past``, ``slot_closed``, ``exceeds_answer``,
    ``exceeds_requirement`` (more than the requirement has left).

A requirement closes ``filled`` when accepted in full, its other answers ``expired``; at the end
of trading for the slot (``market.slot.clear``) every requirement and answer left expires and
releases what it locked.

The baseline
============

An enrolled household's record ``market/baseline/<carrier>/<address>`` holds its meters' flows of
that carrier, ``[import_wh, export_wh, count]``, twice:

* ``slots``: for each slot of the day (``n = slot mod 86 400 000 // slot_ms``, as a decimal
  string), over the days seen, at most :data:`BASELINE_DAYS`;
* ``recent``: over its latest settled slots, at most :data:`RECENT_SLOTS`.

When a slot settles, after its contracts, every enrolled household with a reading in the slot
folds its metered ``x`` (each flow) into both: ``b' = (b * k + x) // (k + 1)`` with ``k =
min(count, limit - 1)``, and ``count' = min(count + 1, limit)``. So each value is the mean of the
first observations and then a moving average that weighs the newest one ``1 / limit``: the
same slot over the last week, and the last hour's slots (with 15-minute slots).

The baseline of a slot is its slot of the day's value once there is one (a day of history), and
until then the recent one; with neither, an answer is refused (``no_baseline``). An acceptance
records the baseline the contract is measured against, so later slots never change it.

Settlement (``market.chain.settlement``)
========================================

For a flexibility contract, ``measured`` is the seller's metered flow in the contract's direction
(its meters of the carrier, as for any seller) and the reduction is ``max(0, baseline_wh -
measured)``, or 0 unless each of those meters read every interval of the slot (a reading missing
or of quality ``missing`` would count 0 and look like a reduction: nothing is paid that no meter
saw), allocated to its flexibility contracts of the slot, carrier and direction in the
order they were made; ``delivered = min(reduction left, energy_wh)``. Then, as for every
contract: ``paid = value(delivered, price)`` from the operator's escrow to the household,
``penalty = min(deposit, share(value(undelivered, price), penalty_bps))`` from the household's
deposit to the operator, a default for a shortfall. Flexibility is no energy delivered to anyone:
it never counts in the residual's P2P energy or in a feeder's load.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.application import Context, TxFailed, payload_fields
from ledger.crypto import Transaction, is_name
from ledger.state import State
from market.chain import storage
from market.chain.book import queue_delete, queue_push, queue_unlink
from market.chain.options import ELECTRICITY, market_options
from market.chain.pricing import seller_deposit, value
from market.chain.residual import metered
from market.chain.schema import (
    ANSWER_CLOSED,
    ANSWER_POSTED,
    ANSWER_PREFIX,
    CONTRACT_MADE,
    EXPIRED,
    FILLED,
    FLEXIBILITY_ENROLLED,
    REQUIREMENT_CLOSED,
    REQUIREMENT_POSTED,
    REQUIREMENT_PREFIX,
    TAKEN,
    Contract,
    add_locked,
    answer_key,
    answers_key,
    baseline_key,
    carrier_of,
    contract_id,
    contract_key,
    contracts_key,
    requirement_key,
    requirements_key,
    with_carrier,
)
from market.chain.terms import (
    carrier_field,
    check_bounds,
    check_slot_open,
    check_steps,
    check_trading,
    close_event,
    integer_field,
    lock_margin,
    qualify,
    stored,
)
from meters.chain import schema as meters

FLEXIBILITY = "flexibility"  # the kind of the contracts made here
DIRECTIONS = ("import", "export")
DAY_MS = 86_400_000
BASELINE_DAYS = 7
RECENT_SLOTS = 4


# --- the baseline ------------------------------------------------------------------------------


def slot_of_day(slot: int, slot_ms: int) -> str:
    return str(slot % DAY_MS // slot_ms)


def baseline_of(
    state: State, address: str, carrier: str, slot: int, slot_ms: int, direction: str
) -> int | None:
    """The household's baseline flow in ``direction`` for the slot's time of day; None when it
    is not enrolled or has none yet."""
    record = state.get(baseline_key(address, carrier))
    if record is None:
        return None
    entry = record["slots"].get(slot_of_day(slot, slot_ms)) or record.get("recent")
    if entry is None:
        return None
    flow: int = entry[DIRECTIONS.index(direction)]
    return flow


def _fold(old: list[int] | None, flows: tuple[int, int], limit: int) -> list[int]:
    """``[import, export, count]`` with one more observation (module docstring)."""
    if old is None:
        return [*flows, 1]
    k = min(old[2], limit - 1)
    new = [(b * k + x) // (k + 1) for b, x in zip(old[:2], flows, strict=True)]
    return [*new, min(old[2] + 1, limit)]


def baselines_update(
    state: State,
    slot: int,
    slot_ms: int,
    meter_ids: list[str],
    *,
    spans: Mapping[str, tuple[int, int]] | None = None,
) -> None:
    """Fold the slot's metered flows into the baseline of every enrolled owner of ``meter_ids``
    (the meters with readings in the slot), once per owner and carrier, in address order.

    ``spans``: ``(start, slot_ms)`` of each carrier's slot that ends with this one (settlement's);
    a carrier whose slot is longer than the market's (``market.heat.slot_ms``) folds its whole
    slot's flows, by its own slot of the day, when its last market slot settles, and a carrier
    not in ``spans`` (its slot has not ended) is left alone. Without ``spans`` every carrier
    folds this slot."""
    owners: set[tuple[str, str]] = set()
    for meter_id in meter_ids:
        registered = meters.meter(state, meter_id)
        if registered is None:
            continue
        carrier = meters.meter_carrier(registered["kind"])
        if state.get(baseline_key(registered["owner"], carrier)) is not None:
            owners.add((registered["owner"], carrier))
    for address, carrier in sorted(owners):
        start, own = (slot, slot_ms) if spans is None else spans.get(carrier, (-1, 0))
        if start < 0:
            continue
        index = slot_of_day(start, own)
        flows = metered(state, address, start, own, carrier)
        record = state.get(baseline_key(address, carrier))
        by_day = _fold(record["slots"].get(index), flows, BASELINE_DAYS)
        recent = _fold(record.get("recent"), flows, RECENT_SLOTS)
        updated = {"slots": record["slots"] | {index: by_day}, "recent": recent}
        state.set(baseline_key(address, carrier), updated)


def enroll(state: State, tx: Transaction, context: Context) -> None:
    """``market.flexibility.enroll``. Precondition (registry): the sender is a household."""
    (carrier,) = payload_fields(tx, optional={"carrier": ELECTRICITY})
    carrier = carrier_field(carrier, market_options(state))
    if state.get(baseline_key(tx.sender, carrier)) is not None:
        raise TxFailed("already_enrolled")
    state.set(baseline_key(tx.sender, carrier), {"slots": {}})
    context.emit(FLEXIBILITY_ENROLLED, {"account": tx.sender, "carrier": carrier})


# --- requirements and answers ------------------------------------------------------------------


def requirement_post(state: State, tx: Transaction, context: Context) -> None:
    """``market.requirement.post``. Precondition (registry): the sender is the grid operator."""
    slot, feeder, direction, energy_wh, price, carrier = payload_fields(
        tx,
        "slot",
        "feeder",
        "direction",
        "energy_wh",
        "price",
        optional={"carrier": ELECTRICITY},
    )
    market = market_options(state)
    carrier = carrier_field(carrier, market)
    slot = integer_field(slot, "bad_slot")
    if slot < 0:
        raise TxFailed("bad_slot")
    if not isinstance(feeder, str) or not is_name(feeder):
        raise TxFailed("bad_feeder", "a feeder is named by 1-64 characters of [a-z0-9._-]")
    if direction not in DIRECTIONS:
        raise TxFailed("bad_direction", "the flow to reduce is import or export")
    energy_wh = integer_field(energy_wh, "bad_energy")
    price = integer_field(price, "bad_price")
    options = market.carrier(carrier)
    check_slot_open(slot, context.timestamp_ms, options)
    check_bounds(energy_wh, price, options)
    budget = value(energy_wh, price)
    lock_margin(state, tx.sender, budget)
    requirement = with_carrier(
        {
            "id": context.tx_id,
            "owner": tx.sender,
            "slot": slot,
            "feeder": feeder,
            "direction": direction,
            "energy_wh": energy_wh,
            "price": price,
            "remaining_wh": energy_wh,
            "locked": budget,
            "height": context.height,
        },
        carrier,
    )
    queue_push(state, requirements_key(slot, carrier), REQUIREMENT_PREFIX, requirement)
    names = ("id", "owner", "slot", "feeder", "direction", "energy_wh", "price")
    context.emit(REQUIREMENT_POSTED, with_carrier({n: requirement[n] for n in names}, carrier))


def answer_post(state: State, tx: Transaction, context: Context) -> None:
    """``market.requirement.answer``. Precondition (registry): the sender is a household."""
    requirement_id, energy_wh, price = payload_fields(tx, "requirement", "energy_wh", "price")
    requirement = stored(state, REQUIREMENT_PREFIX, requirement_id, "unknown_requirement")
    energy_wh = integer_field(energy_wh, "bad_energy")
    price = integer_field(price, "bad_price")
    slot, carrier = requirement["slot"], carrier_of(requirement)
    options = market_options(state).carrier(carrier)
    check_trading(slot, context.timestamp_ms, options)
    check_bounds(energy_wh, price, options)
    if energy_wh > requirement["energy_wh"]:
        raise TxFailed("exceeds_requirement")
    if price > requirement["price"]:
        raise TxFailed("price_above_requirement")
    storage.require_store(state, tx.sender, carrier, context)
    feeder = qualify(state, tx.sender, options, context, carrier)
    if feeder != requirement["feeder"]:
        raise TxFailed("not_on_feeder", f"the requirement is for {requirement['feeder']}")
    if state.get(baseline_key(tx.sender, carrier)) is None:
        raise TxFailed("not_enrolled", "enrol for flexibility first: a baseline is needed")
    baseline = baseline_of(
        state, tx.sender, carrier, slot, options.slot_ms, requirement["direction"]
    )
    if baseline is None:
        raise TxFailed("no_baseline", "no metered history for this time of day yet")
    if energy_wh > baseline:
        raise TxFailed("exceeds_baseline", f"the baseline is {baseline} Wh")
    deposit = seller_deposit(energy_wh, price, options.deposit_bps)
    lock_margin(state, tx.sender, deposit)
    answer = with_carrier(
        {
            "id": context.tx_id,
            "owner": tx.sender,
            "requirement": requirement["id"],
            "slot": slot,
            "energy_wh": energy_wh,
            "price": price,
            "remaining_wh": energy_wh,
            "locked": deposit,
            "height": context.height,
        },
        carrier,
    )
    queue_push(state, answers_key(requirement["id"]), ANSWER_PREFIX, answer)
    names = ("id", "owner", "requirement", "slot", "energy_wh", "price")
    context.emit(ANSWER_POSTED, with_carrier({n: answer[n] for n in names}, carrier))


def answer_accept(state: State, tx: Transaction, context: Context) -> None:
    """``market.requirement.accept``. Precondition (registry): the sender is the grid
    operator; it must be the requirement's."""
    answer_id, energy_wh = payload_fields(tx, "answer", "energy_wh")
    answer = stored(state, ANSWER_PREFIX, answer_id, "unknown_answer")
    requirement = stored(state, REQUIREMENT_PREFIX, answer["requirement"], "unknown_requirement")
    if requirement["owner"] != tx.sender:
        raise TxFailed("not_owner")
    energy_wh = integer_field(energy_wh, "bad_energy")
    if energy_wh <= 0:
        raise TxFailed("bad_energy")
    slot, carrier = requirement["slot"], carrier_of(requirement)
    options = market_options(state).carrier(carrier)
    check_trading(slot, context.timestamp_ms, options)
    if energy_wh > answer["remaining_wh"]:
        raise TxFailed("exceeds_answer")
    if energy_wh > requirement["remaining_wh"]:
        raise TxFailed("exceeds_requirement")
    check_steps(energy_wh, options)

    requirement_left = requirement["remaining_wh"] - energy_wh
    budget_left = value(requirement_left, requirement["price"])
    escrow = value(energy_wh, answer["price"])  # <= the budget this energy frees
    answer_left = answer["remaining_wh"] - energy_wh
    deposit_left = seller_deposit(answer_left, answer["price"], options.deposit_bps)
    direction = requirement["direction"]
    baseline = baseline_of(state, answer["owner"], carrier, slot, options.slot_ms, direction)
    index: int = state.get(contracts_key(slot, carrier), 0)
    made: Contract = {
        "id": contract_id(slot, index, carrier),
        "kind": FLEXIBILITY,
        "slot": slot,
        "index": index,
        "seller": answer["owner"],
        "buyer": tx.sender,
        "energy_wh": energy_wh,
        "price": answer["price"],
        "network_fee": 0,
        "penalty_bps": options.penalty_bps,
        "escrow": escrow,
        "deposit": answer["locked"] - deposit_left,
        "seller_tx": answer["id"],
        "buyer_tx": requirement["id"],
        "tx": context.tx_id,
        "height": context.height,
        "timestamp_ms": context.timestamp_ms,
        "requirement": requirement["id"],
        "direction": direction,
        "feeder": requirement["feeder"],
        "baseline_wh": baseline or 0,
    }
    if carrier != ELECTRICITY:
        made["carrier"] = carrier
    state.set(contracts_key(slot, carrier), index + 1)
    state.set(contract_key(made["id"]), made)
    context.emit(CONTRACT_MADE, made)
    # The operator's budget for the energy leaves its lock and the escrow takes its place.
    add_locked(state, tx.sender, escrow - (requirement["locked"] - budget_left))

    if answer_left:
        state.set(
            answer_key(answer["id"]), answer | {"remaining_wh": answer_left, "locked": deposit_left}
        )
    else:
        queue_unlink(state, answers_key(requirement["id"]), ANSWER_PREFIX, answer)
        close_event(context, ANSWER_CLOSED, answer | {"remaining_wh": 0}, TAKEN)
    if requirement_left:
        state.set(
            requirement_key(requirement["id"]),
            requirement | {"remaining_wh": requirement_left, "locked": budget_left},
        )
    else:
        queue_unlink(state, requirements_key(slot, carrier), REQUIREMENT_PREFIX, requirement)
        _expire_answers(state, requirement["id"], context)
        close_event(context, REQUIREMENT_CLOSED, requirement | {"remaining_wh": 0}, FILLED)


def _expire_answers(state: State, requirement_id: str, context: Context) -> None:
    for answer in queue_delete(state, answers_key(requirement_id), ANSWER_PREFIX):
        add_locked(state, answer["owner"], -answer["locked"])
        close_event(context, ANSWER_CLOSED, answer, EXPIRED)


def expire(state: State, slot: int, carrier: str, context: Context) -> None:
    """The end of trading for a slot (``market.slot.clear``): every requirement of the
    carrier's book left, and every answer to it, expires and releases what it locked."""
    for requirement in queue_delete(state, requirements_key(slot, carrier), REQUIREMENT_PREFIX):
        _expire_answers(state, requirement["id"], context)
        add_locked(state, requirement["owner"], -requirement["locked"])
        close_event(context, REQUIREMENT_CLOSED, requirement, EXPIRED)
