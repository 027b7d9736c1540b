"""The site's actions on requirements and stores: each signs one transaction of
``market.chain.flexibility`` or ``market.chain.storage`` and sends it to the validators.

As the market's actions (``market.services``, whose signing helpers these use): the transaction is
signed with the user's custodial key, rehearsed on the site's replica of the committed state so
that a refusal comes back at once with the validators' code, and submitted; what happens is known
when its block commits, and the read models (``flexibility.projection``) then show it. Every
action raises ``ledger.services.TransactionRejected`` (a ``DomainError``) with a stable code
(docs/flexibility.md); the refusals a supervisor's stop causes say the stop's reason.

Payloads leave ``carrier`` out for electricity, as the chain's worked examples write them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flexibility import selectors
from flexibility.errors import MESSAGES
from flexibility.models import Requirement, RequirementStatus
from gridplatform.accounts.models import TRADING_ROLES, Role, User
from ledger.crypto import Transaction
from ledger.services import TransactionRejected
from market import chain as market_chain
from market import services as market_services
from market.chain.options import ELECTRICITY
from market.selectors import options as market_options

# The market's signing helpers: one way to sign, rehearse and word a refusal for every market
# transaction the site sends.


def _require(user: User, role: object) -> None:
    # A household's actions are a storage provider's too (it answers with its store).
    roles = TRADING_ROLES if role == Role.HOUSEHOLD else (role,)
    if user.role not in roles:
        raise TransactionRejected("not_allowed", MESSAGES["not_allowed"])


def flexibility_enroll(*, user: User, carrier: str = ELECTRICITY) -> Transaction:
    """Enrol the household to answer requirements in ``carrier`` (``market.flexibility.enroll``):
    from its block on, each settled slot with its readings makes its baseline. Refusals:
    ``bad_carrier``, ``already_enrolled``."""
    _require(user, Role.HOUSEHOLD)
    return market_services.submit(
        user, market_chain.FLEXIBILITY_ENROLL, market_services.with_carrier({}, carrier)
    )


def requirement_post(
    *,
    operator: User,
    slot: datetime,
    feeder: str,
    direction: str,
    energy_wh: int,
    price: int,
    carrier: str = ELECTRICITY,
) -> Transaction:
    """The grid operator asks for a reduction of ``direction`` (import or export) on ``feeder``
    (a heat segment for heat) in ``slot``, of up to ``energy_wh``, paying up to ``price`` minor
    units per kWh (``market.requirement.post``). Its budget is locked when the block commits.
    Refusals: the slot's, the bounds', ``bad_feeder``, ``bad_direction``,
    ``insufficient_free_balance`` (market.chain.flexibility)."""
    _require(operator, Role.GRID_OPERATOR)
    payload = {
        "slot": market_services.slot_ms(slot),
        "feeder": feeder,
        "direction": direction,
        "energy_wh": market_services.whole(energy_wh, "bad_energy"),
        "price": market_services.whole(price, "bad_price"),
    }
    return market_services.submit(
        operator, market_chain.REQUIREMENT_POST, market_services.with_carrier(payload, carrier)
    )


def answer_post(*, user: User, requirement_id: str, energy_wh: int, price: int) -> Transaction:
    """The household offers a reduction of ``energy_wh`` at ``price`` (at most the
    requirement's) to an open requirement on its feeder (``market.requirement.answer``); its
    deposit is locked when the block commits. A requirement it may not see, or closed, is
    ``unknown_requirement``; then the validators' refusals (``not_enrolled``, ``no_baseline``,
    ``exceeds_baseline``, ``price_above_requirement``, ...)."""
    _require(user, Role.HOUSEHOLD)
    visible = selectors.requirement_list(user=user).filter(status=RequirementStatus.OPEN)
    if not market_services.is_id(requirement_id) or not visible.filter(id=requirement_id).exists():
        raise TransactionRejected("unknown_requirement", MESSAGES["unknown_requirement"])
    payload = {
        "requirement": requirement_id,
        "energy_wh": market_services.whole(energy_wh, "bad_energy"),
        "price": market_services.whole(price, "bad_price"),
    }
    return market_services.submit(user, market_chain.REQUIREMENT_ANSWER, payload)


def answer_accept(*, operator: User, answer_id: str, energy_wh: int) -> Transaction:
    """The grid operator accepts ``energy_wh`` of an open answer to one of its requirements
    (``market.requirement.accept``): a flexibility contract when the block commits. Refusals:
    ``unknown_answer``, then the validators' (``exceeds_answer``, ``exceeds_requirement``,
    ``slot_closed``, ...)."""
    _require(operator, Role.GRID_OPERATOR)
    if not market_services.is_id(answer_id):
        raise TransactionRejected("unknown_answer", MESSAGES["unknown_answer"])
    answer = selectors.access_open_answer(user=operator, answer_id=answer_id)
    payload = {"answer": answer.id, "energy_wh": market_services.whole(energy_wh, "bad_energy")}
    return market_services.submit(operator, market_chain.REQUIREMENT_ACCEPT, payload)


def store_register(
    *, operator: User, address: str, meter_id: str, capacity_wh: int, soc_wh: int
) -> Transaction:
    """The grid operator registers (or registers again) the household's store: its battery or
    thermal store meter, its capacity and its state of charge now (``market.storage.register``).
    Refusals: ``bad_address``, ``unknown_account``, ``not_household``, ``unknown_meter``,
    ``not_storage_meter``, ``bad_capacity``, ``bad_state_of_charge``, ``bad_carrier``."""
    _require(operator, Role.GRID_OPERATOR)
    payload = {
        "address": address,
        "meter": meter_id,
        "capacity_wh": market_services.whole(capacity_wh, "bad_capacity"),
        "soc_wh": market_services.whole(soc_wh, "bad_state_of_charge"),
    }
    return market_services.submit(operator, market_chain.STORAGE_REGISTER, payload)


# --- the end of trading -------------------------------------------------------------------------


def slots_due_for_clearing(*, now: datetime) -> list[datetime]:
    """Slots whose gate has closed while a requirement of theirs is still open: what is left of
    it, and of its answers, expires only with a ``market.slot.clear``, and a slot with an open
    requirement cannot settle (``slot_not_cleared``)."""
    gate = timedelta(milliseconds=market_options().gate_closure_ms)
    due = Requirement.objects.filter(status=RequirementStatus.OPEN, slot__lte=now + gate)
    return sorted(set(due.values_list("slot", flat=True)))


def slots_clear(*, operator: User, now: datetime) -> list[Transaction]:
    """Send ``market.slot.clear`` for every slot past its gate with an open requirement (signed
    by the grid operator), beside the market's own clearing of slots with open orders and offers
    (``market.services.slots_clear``); a slot whose clearing is pending is skipped."""
    slots = slots_due_for_clearing(now=now)
    return market_services.for_each_slot(operator, market_chain.SLOT_CLEAR, slots)
