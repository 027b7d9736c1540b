"""Reads of requirements, answers, flexibility contracts and stores, each scoped by who asks.

The grid operator (and an admin, read-only) sees every requirement, answer, flexibility contract
and store. A household sees the requirements on its own feeder or heat segment, its own answers,
its own flexibility contracts and its own store. Anyone else sees none of them.

Some reads go to the site's replica of the ledger state (``ledger.models.StateEntry``), through
the owners' key functions: the published feeders and heat segments
(``supervision.chain.schema``), the household's feeder per carrier, its baseline
(``market.chain.flexibility.baseline_of``) and the meters of kind battery and thermal store
(``meters.chain.schema``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from flexibility.errors import MESSAGES
from flexibility.models import (
    Answer,
    AnswerStatus,
    Enrolment,
    FlexibilityContract,
    Requirement,
    RequirementStatus,
    Store,
    StoreCharge,
)
from gridplatform.accounts.models import TRADING_ROLES, Identity, Role, User
from gridplatform.errors import NotFoundError
from ledger.models import StateEntry
from ledger.projection import ms_of_datetime
from ledger.state import State
from market import selectors as market_selectors
from market.chain.flexibility import DIRECTIONS, baseline_of
from market.chain.schema import baseline_key
from market.chain.storage import STORAGE_KINDS
from meters.chain import schema as meters_schema
from supervision.chain import schema as grid_schema

# The upcoming slots a household's baseline is shown for.
BASELINE_SLOTS = 8
STORE_CHARGES_SHOWN = 12


def is_operator(user: User) -> bool:
    """Who sees every requirement, answer, flexibility contract and store: the grid operator,
    and an admin (who signs nothing)."""
    return user.is_authenticated and user.role in (Role.GRID_OPERATOR, Role.ADMIN)


def _household_address(user: User) -> str | None:
    if not user.is_authenticated or user.role not in TRADING_ROLES:
        return None
    return market_selectors.address_of(user)


def _state_value(key: str) -> object:
    return StateEntry.objects.filter(key=key).values_list("value", flat=True).first()


# --- the grid: networks and who is on them ------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """A published feeder (electricity) or heat segment: where a requirement may be posted."""

    name: str
    carrier: str


def networks() -> list[Network]:
    """The published feeders and heat segments (``grid/topology/<name>``), by name."""
    prefix = grid_schema.topology_key("")
    rows = StateEntry.objects.filter(key__startswith=prefix).order_by("key")
    return [
        Network(name=key[len(prefix) :], carrier=grid_schema.carrier_of_feeder(value))
        for key, value in rows.values_list("key", "value")
    ]


def household_networks(*, address: str) -> dict[str, str]:
    """The feeder (electricity) and heat segment the household is on, by carrier."""
    found = {}
    for carrier in market_selectors.options().carriers:
        feeder = _state_value(grid_schema.feeder_key(address, carrier))
        if isinstance(feeder, str):
            found[carrier] = feeder
    return found


# --- enrolment and baselines --------------------------------------------------------------------


def enrolment_list(*, user: User) -> QuerySet[Enrolment]:
    """The household's enrolments, one per carrier; none for anyone else."""
    return Enrolment.objects.filter(address=_household_address(user) or "-")


def enrolled_carriers(*, user: User) -> list[str]:
    return list(enrolment_list(user=user).values_list("carrier", flat=True))


@dataclass(frozen=True)
class BaselineSlot:
    """A household's baseline for an upcoming slot: its metered flows at that time of day (None
    when it has none yet, and cannot answer for the slot)."""

    start: datetime
    carrier: str
    import_wh: int | None
    export_wh: int | None


def baselines(*, user: User, now: datetime | None = None) -> list[BaselineSlot]:
    """The household's baseline for each of the next ``BASELINE_SLOTS`` open slots, for each
    carrier it is enrolled in (``market.chain.flexibility``, "The baseline")."""
    address = _household_address(user)
    if address is None:
        return []
    options = market_selectors.options()
    rows = []
    for carrier in enrolled_carriers(user=user):
        # Each carrier's own slots: heat's may be longer (market.heat.slot_ms).
        slots = market_selectors.slot_list(now=now, carrier=carrier)[:BASELINE_SLOTS]
        slot_ms = options.carrier(carrier).slot_ms
        record = _state_value(baseline_key(address, carrier))
        state = State({baseline_key(address, carrier): record} if record is not None else None)
        for slot in slots:
            start = ms_of_datetime(slot.start)
            flows = [
                baseline_of(state, address, carrier, start, slot_ms, direction)
                for direction in DIRECTIONS
            ]
            rows.append(BaselineSlot(slot.start, carrier, flows[0], flows[1]))
    return rows


# --- requirements and answers -------------------------------------------------------------------


def requirement_list(*, user: User) -> QuerySet[Requirement]:
    """The requirements ``user`` may see, earliest slot first: every one for the grid operator;
    for a household, those on its feeder or heat segment."""
    if is_operator(user):
        return Requirement.objects.all()
    address = _household_address(user)
    if address is None:
        return Requirement.objects.none()
    on_mine = Q(pk__in=[])
    for carrier, feeder in household_networks(address=address).items():
        on_mine |= Q(carrier=carrier, feeder=feeder)
    return Requirement.objects.filter(on_mine)


def gate(now: datetime | None = None) -> datetime:
    """The earliest slot start still open for trading at ``now``."""
    closure = timedelta(milliseconds=market_selectors.options().gate_closure_ms)
    return (now or timezone.now()) + closure


def open_requirements(*, user: User, now: datetime | None = None) -> QuerySet[Requirement]:
    """The requirements ``user`` may see that may still be answered: open, gate not closed."""
    return requirement_list(user=user).filter(status=RequirementStatus.OPEN, slot__gt=gate(now))


def access_requirement(*, user: User, requirement_id: str) -> Requirement:
    """One requirement ``user`` may see, or ``unknown_requirement`` (404)."""
    found = requirement_list(user=user).filter(id=requirement_id).first()
    if found is None:
        raise NotFoundError(MESSAGES["unknown_requirement"], code="unknown_requirement")
    return found


def answer_list(*, user: User) -> QuerySet[Answer]:
    """Answers ``user`` may see, oldest first: every one for the grid operator, its own for a
    household."""
    answers = Answer.objects.select_related("requirement")
    if is_operator(user):
        return answers.all()
    return answers.filter(owner=_household_address(user) or "-")


def access_open_answer(*, user: User, answer_id: str) -> Answer:
    """An open answer to an open requirement, for the grid operator to accept; or
    ``unknown_answer`` (404)."""
    found = (
        answer_list(user=user)
        .filter(id=answer_id, status=AnswerStatus.OPEN)
        .filter(requirement__status=RequirementStatus.OPEN)
        .first()
    )
    if found is None or user.role != Role.GRID_OPERATOR:
        raise NotFoundError(MESSAGES["unknown_answer"], code="unknown_answer")
    return found


def acceptable_wh(answer: Answer) -> int:
    """The most of ``answer`` its requirement can still take."""
    return min(answer.remaining_wh, answer.requirement.remaining_wh)


# --- flexibility contracts ----------------------------------------------------------------------


def contract_list(*, user: User) -> QuerySet[FlexibilityContract]:
    """Flexibility contracts ``user`` may see, newest slot first: every one for the grid
    operator, those it sells for a household."""
    rows = FlexibilityContract.objects.select_related("contract")
    if is_operator(user):
        return rows.all()
    return rows.filter(contract__seller=_household_address(user) or "-")


# --- stores -------------------------------------------------------------------------------------


def store_list(*, user: User) -> QuerySet[Store]:
    """The stores ``user`` may see: every one for the grid operator, its own for a household."""
    if is_operator(user):
        return Store.objects.all()
    return Store.objects.filter(address=_household_address(user) or "-")


def store_charges(*, store: Store) -> QuerySet[StoreCharge]:
    """The store's newest charges, newest first."""
    found = StoreCharge.objects.filter(address=store.address, carrier=store.carrier)
    return found[:STORE_CHARGES_SHOWN]


@dataclass(frozen=True)
class StorageMeter:
    """A household's battery or thermal store meter on the ledger, which the grid operator may
    register as a store."""

    meter_id: str
    kind: str
    carrier: str
    address: str
    household: str  # its name on the site, "" if none


def storage_meters(*, user: User) -> list[StorageMeter]:
    """The battery and thermal store meters registered on the ledger (``meter/<id>``), by
    household name then meter, for the grid operator; none for anyone else."""
    if not is_operator(user):
        return []
    rows = StateEntry.objects.filter(
        key__startswith=meters_schema.meter_key(""), value__kind__in=STORAGE_KINDS
    ).values_list("value", flat=True)
    meters = [row for row in rows if isinstance(row, dict) and "owner" in row]
    names = dict(
        Identity.objects.filter(address__in={m["owner"] for m in meters}).values_list(
            "address", "user__name"
        )
    )
    found = [
        StorageMeter(
            meter_id=m["id"],
            kind=m["kind"],
            carrier=meters_schema.meter_carrier(m["kind"]),
            address=m["owner"],
            household=names.get(m["owner"], ""),
        )
        for m in meters
    ]
    return sorted(found, key=lambda m: (m.household, m.meter_id))
