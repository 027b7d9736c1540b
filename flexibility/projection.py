"""The read models of requirements and stores (``flexibility.models``), projected block by block.

A ``ledger.projection.ReadModel`` named in ``settings.LEDGER_READ_MODELS`` after
``market.projection``: the market's projection has written the block's ``Contract`` rows (in the
same database transaction) before this one runs, and a flexibility contract's row points at its
contract's.

What happened comes from the block's events (``market.chain.schema``, ``market.chain.storage``):

* ``market.flexibility_enrolled`` -> ``Enrolment``;
* ``market.requirement_posted`` / ``market.answer_posted`` open a row; the answer's row keeps the
  household's baseline for the requirement's flow in the slot, read from the state after the
  block (``market.chain.flexibility.baseline_of``), which is what the answer was checked
  against;
* ``market.contract_made`` of kind ``flexibility`` -> ``FlexibilityContract`` (the requirement,
  direction, feeder and baseline the contract records), and its energy off the remainders of
  its requirement and answer;
* ``market.requirement_closed`` / ``market.answer_closed`` close the row with the chain's status
  (filled, taken, expired) and what was left;
* ``market.contract_settled`` of a flexibility contract -> its measured, delivered, paid and
  penalty;
* ``market.storage_registered`` -> ``Store``; ``market.storage_charged`` -> a ``StoreCharge`` and
  the store's new state of charge.

What is live stays live, from the state after the block: the budget an open requirement and the
deposit an open answer still lock (``market/requirement/<id>``, ``market/answer/<id>``), and a
store's commitments (``market/storage/<carrier>/<address>``), which its orders and offers move
without an event of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import F

from flexibility.models import (
    Answer,
    Enrolment,
    FlexibilityContract,
    Requirement,
    Store,
    StoreCharge,
)
from ledger.blocks import Block
from ledger.projection import datetime_of_ms
from ledger.state import State
from market.chain import schema, storage
from market.chain.flexibility import FLEXIBILITY, baseline_of
from market.chain.options import market_options

REQUIREMENT = schema.REQUIREMENT_PREFIX
ANSWER = schema.ANSWER_PREFIX
STORE = "market/storage/"
# A flexibility contract's settlement, as ``market.contract_settled`` has it.
SETTLED_FIELDS = ("measured_wh", "delivered_wh", "paid", "penalty")


def clear() -> None:
    for model in (StoreCharge, Store, FlexibilityContract, Answer, Requirement, Enrolment):
        model.objects.all().delete()


def project(*, block: Block, state: State, changes: dict[str, Any]) -> None:
    when = datetime_of_ms(block.timestamp_ms)
    for event in block.events:
        handler = _HANDLERS.get(event["type"])
        if handler is not None:
            handler(event["data"], block.height, when, state)
    _locked(Requirement, REQUIREMENT, state, changes)
    _locked(Answer, ANSWER, state, changes)
    _commitments(changes)


def _carrier(data: dict[str, Any]) -> str:
    return schema.carrier_of(data)


def _enrolled(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    Enrolment.objects.get_or_create(
        address=data["account"],
        carrier=_carrier(data),
        defaults={"height": height, "enrolled_at": when},
    )


def _requirement_posted(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    Requirement.objects.create(
        id=data["id"],
        owner=data["owner"],
        slot=datetime_of_ms(data["slot"]),
        carrier=_carrier(data),
        feeder=data["feeder"],
        direction=data["direction"],
        energy_wh=data["energy_wh"],
        price=data["price"],
        remaining_wh=data["energy_wh"],
        height=height,
        posted_at=when,
    )


def _answer_posted(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    requirement = Requirement.objects.get(id=data["requirement"])
    carrier = _carrier(data)
    baseline = baseline_of(
        state,
        data["owner"],
        carrier,
        data["slot"],
        market_options(state).carrier(carrier).slot_ms,
        requirement.direction,
    )
    Answer.objects.create(
        id=data["id"],
        requirement=requirement,
        owner=data["owner"],
        slot=datetime_of_ms(data["slot"]),
        carrier=carrier,
        energy_wh=data["energy_wh"],
        price=data["price"],
        remaining_wh=data["energy_wh"],
        baseline_wh=baseline,
        height=height,
        posted_at=when,
    )


def _contract_made(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    if data.get("kind") != FLEXIBILITY:
        return
    FlexibilityContract.objects.create(
        contract_id=data["id"],
        requirement=data["requirement"],
        answer=data["seller_tx"],
        carrier=_carrier(data),
        direction=data["direction"],
        feeder=data["feeder"],
        baseline_wh=data["baseline_wh"],
    )
    taken = F("remaining_wh") - data["energy_wh"]
    Requirement.objects.filter(id=data["requirement"]).update(remaining_wh=taken)
    Answer.objects.filter(id=data["seller_tx"]).update(remaining_wh=taken)


def _closer(model: Any) -> Callable[[dict[str, Any], int, datetime, State], None]:
    def closed(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
        model.objects.filter(id=data["id"]).update(
            status=data["status"],
            remaining_wh=data["remaining_wh"],
            locked=0,
            closed_height=height,
        )

    return closed


def _contract_settled(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    if "measured_wh" not in data:  # an energy contract's: the market's projection has it
        return
    FlexibilityContract.objects.filter(contract_id=data["contract"]).update(
        **{name: data[name] for name in SETTLED_FIELDS},
        settled_height=height,
        settled_at=when,
    )


def _storage_registered(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    Store.objects.update_or_create(
        address=data["account"],
        carrier=data["carrier"],
        defaults={
            "meter": data["meter"],
            "capacity_wh": data["capacity_wh"],
            "soc_wh": data["soc_wh"],
            "soc_slot": datetime_of_ms(data["soc_slot"]) if data["soc_slot"] else None,
            "sell_wh": data["sell_wh"],
            "buy_wh": data["buy_wh"],
            "registered_height": height,
            "registered_at": when,
        },
    )


def _storage_charged(data: dict[str, Any], height: int, when: datetime, state: State) -> None:
    slot = datetime_of_ms(data["slot"])
    StoreCharge.objects.create(
        address=data["account"],
        carrier=data["carrier"],
        slot=slot,
        soc_wh=data["soc_wh"],
        import_wh=data["import_wh"],
        export_wh=data["export_wh"],
        height=height,
    )
    Store.objects.filter(address=data["account"], carrier=data["carrier"]).update(
        soc_wh=data["soc_wh"], soc_slot=slot
    )


_HANDLERS: dict[str, Callable[[dict[str, Any], int, datetime, State], None]] = {
    schema.FLEXIBILITY_ENROLLED: _enrolled,
    schema.REQUIREMENT_POSTED: _requirement_posted,
    schema.ANSWER_POSTED: _answer_posted,
    schema.CONTRACT_MADE: _contract_made,
    schema.REQUIREMENT_CLOSED: _closer(Requirement),
    schema.ANSWER_CLOSED: _closer(Answer),
    schema.CONTRACT_SETTLED: _contract_settled,
    storage.STORAGE_REGISTERED: _storage_registered,
    storage.STORAGE_CHARGED: _storage_charged,
}


def _locked(model: Any, prefix: str, state: State, changes: dict[str, Any]) -> None:
    """What each open requirement (or answer) the block changed still locks."""
    for key in sorted(changes):
        if key.startswith(prefix):
            value = state.get(key)
            if value is not None:
                model.objects.filter(id=key[len(prefix) :]).update(locked=value["locked"])


def _commitments(changes: dict[str, Any]) -> None:
    """A store's commitments, from its record (``market/storage/<carrier>/<address>``; not the
    per-slot ``.../<slot>`` keys) as the block left it."""
    for key in sorted(changes):
        parts = key[len(STORE) :].split("/") if key.startswith(STORE) else []
        value = changes[key]
        if len(parts) == 2 and value is not None:
            carrier, address = parts
            Store.objects.filter(address=address, carrier=carrier).update(
                sell_wh=value["sell_wh"], buy_wh=value["buy_wh"]
            )
