"""Trigger trading: a household's standing rules, turned into orders by its meter readings.

A rule says "sell my surplus above N Wh per slot at no less than p" or "buy what I need, up to
N Wh per slot, at no more than p". When a household's readings arrive (the meters send
``meters.signals.batch_relayed`` after relaying a batch, and :func:`batch_relayed_receiver` calls
:func:`rules_apply`), the latest complete interval is the forecast for the next slot open for
trading (a persistence forecast: the next quarter hour looks like the last):

* sell: surplus = export - import; if it is above N, a sell order for (surplus - N) at p;
* buy: need = import - export; if it is above 0, a buy order for min(need, N) at p.

Each rule places at most one order per slot (``RuleOrder``), signed with the household's key
through the ordinary ``market.services.order_place`` (so it is rehearsed and may be refused like
any order; a refusal is logged and the rule waits for the next slot). Orders show which rule
made them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError

from gridplatform.accounts.models import Role, User
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from ledger.projection import ms_of_datetime
from market import selectors, services
from market.models import RuleKind, RuleOrder, StandingRule

log = logging.getLogger(__name__)
MAX_RULES = 10
# The kinds' values (RuleKind's members, as plain strings for the type checker).
SELL_SURPLUS, BUY_UP_TO = "sell_surplus", "buy_up_to"


class RuleError(DomainError):
    pass


@dataclass(frozen=True)
class Flow:
    """What a household's meters measured in one interval, in Wh."""

    start: datetime
    import_wh: int
    export_wh: int


def rule_create(*, owner: User, kind: str, energy_wh: int, price: int) -> StandingRule:
    if owner.role != Role.HOUSEHOLD:
        raise RuleError("Only households set standing rules.", code="not_allowed")
    if kind not in RuleKind.values:
        raise RuleError("Choose selling surplus or buying what you need.", code="bad_kind")
    for value, code in ((energy_wh, "bad_energy"), (price, "bad_price")):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
            raise RuleError(services.MESSAGES[code], code=code)
    if kind == BUY_UP_TO and energy_wh == 0:
        raise RuleError("A buying rule needs a most per slot above 0 Wh.", code="bad_energy")
    if price == 0:
        raise RuleError(services.MESSAGES["bad_price"], code="bad_price")
    if StandingRule.objects.filter(owner=owner, active=True).count() >= MAX_RULES:
        raise RuleError(f"At most {MAX_RULES} active rules.", code="too_many_rules")
    rule: StandingRule = StandingRule.objects.create(
        owner=owner, kind=kind, energy_wh=energy_wh, price=price
    )
    return rule


def rule_stop(*, owner: User, rule_id: int) -> StandingRule:
    rule = StandingRule.objects.filter(owner=owner, pk=rule_id, active=True).first()
    if rule is None:
        raise RuleError("No such active rule.", code="unknown_rule")
    rule.active = False
    rule.save(update_fields=["active"])
    return rule


def _wanted(rule: StandingRule, flow: Flow) -> tuple[str, int] | None:
    if rule.kind == SELL_SURPLUS:
        surplus = flow.export_wh - flow.import_wh
        return ("sell", surplus - rule.energy_wh) if surplus > rule.energy_wh else None
    need = flow.import_wh - flow.export_wh
    return ("buy", min(need, rule.energy_wh)) if need > 0 else None


def rules_apply(*, owner: User, latest: Flow) -> list[Transaction]:
    """Place the orders ``owner``'s active rules call for, given its latest interval."""
    slots = selectors.slot_list()
    if not slots:
        return []
    slot = slots[0].start
    placed = []
    for rule in StandingRule.objects.filter(owner=owner, active=True):
        wanted = _wanted(rule, latest)
        if wanted is None or RuleOrder.objects.filter(rule=rule, slot=slot).exists():
            continue
        side, energy_wh = wanted
        # Claim the slot for the rule first: two batches arriving at once place one order.
        try:
            claim = RuleOrder.objects.create(
                rule=rule,
                order_id=f"claim-{rule.pk}-{ms_of_datetime(slot)}",
                slot=slot,
                energy_wh=energy_wh,
            )
        except IntegrityError:
            continue
        try:
            tx = services.order_place(
                user=owner, slot=slot, side=side, energy_wh=energy_wh, price=rule.price
            )
        except DomainError as error:
            claim.delete()
            log.info("rule %s placed nothing for %s: %s", rule.pk, slot, error)
            continue
        claim.order_id = tx.id
        claim.save(update_fields=["order_id"])
        placed.append(tx)
    return placed


def batch_relayed_receiver(
    sender: object,
    *,
    owner: User,
    start: datetime,
    import_wh: int,
    export_wh: int,
    **kwargs: object,
) -> None:
    """``meters.signals.batch_relayed`` (connected in ``market.apps``): ``owner``'s rules see the
    relayed batch's latest interval. Runs in the relay's worker task; an error propagates to it."""
    rules_apply(owner=owner, latest=Flow(start, import_wh=import_wh, export_wh=export_wh))


def rules_of(*, user: User) -> list[StandingRule]:
    return list(StandingRule.objects.filter(owner=user, active=True))


def rule_of_orders(*, order_ids: list[str]) -> dict[str, StandingRule]:
    """Which rule made each of these orders (those a rule made)."""
    rows = RuleOrder.objects.filter(order_id__in=order_ids).select_related("rule")
    return {row.order_id: row.rule for row in rows}
