"""Trigger trading: a household's standing rules, turned into orders by its meter readings.

A rule says "sell my surplus above N Wh per slot at no less than p" or "buy what I need, up to
N Wh per slot, at no more than p". When a household's readings arrive (the meters send
``meters.signals.batch_relayed`` after relaying a batch, and :func:`batch_relayed_receiver` calls
:func:`rules_apply`), the rule forecasts the next slot open for trading:

* once the household has **history** (readings in the same slot of the day on at least
  :data:`PROFILE_MIN_DAYS` of the last :data:`PROFILE_DAYS` days), its **own profile**: the
  average import and export of that slot of the day over those days;
* before that, the latest interval **scaled to the slot** (a persistence forecast: the next slot
  looks like the last interval, for as many intervals as the slot holds; a 1-minute reading of
  350 Wh on a 5-minute slot forecasts 1,750 Wh).

Then:

* sell: surplus = forecast export - forecast import; if it is above N, a sell order for
  (surplus - N) at p;
* buy: need = forecast import - forecast export; if it is above 0, a buy order for
  min(need, N) at p.

Each rule places at most one order per slot (``RuleOrder``), signed with the household's key
through the ordinary ``market.services.order_place`` (so it is rehearsed and may be refused like
any order; a refusal is logged and the rule waits for the next slot). Each order keeps why it was
placed (the reading, its interval, the forecast, the threshold and the price: ``RuleOrder``),
which the orders' page and API show.

Rules trade electricity: they read the household's electricity meters only (a heat meter's
readings are kWh thermal, ``meters.models.kinds_of``) and place electricity orders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError
from django.db.models import Q, Sum

from gridplatform.accounts.models import Role, User
from gridplatform.errors import DomainError
from ledger.crypto import Transaction
from ledger.projection import datetime_of_ms, ms_of_datetime
from market import selectors, services
from market.chain.options import ELECTRICITY
from market.forms import energy_text, price_text
from market.models import RuleKind, RuleOrder, StandingRule
from meters.models import Reading, kinds_of

log = logging.getLogger(__name__)
MAX_RULES = 10
# The kinds' values (RuleKind's members, as plain strings for the type checker).
SELL_SURPLUS, BUY_UP_TO = "sell_surplus", "buy_up_to"
# The meters whose readings the rules read: those of electricity.
POWER_KINDS = kinds_of(ELECTRICITY)


class RuleError(DomainError):
    pass


@dataclass(frozen=True)
class Flow:
    """What a household's meters measured in one interval of ``duration_s`` seconds, in Wh."""

    start: datetime
    import_wh: int
    export_wh: int
    duration_s: int


PROFILE_DAYS = 7
PROFILE_MIN_DAYS = 3


@dataclass(frozen=True)
class Forecast:
    """A slot's expected net flow, in Wh: from ``flow`` repeated ``intervals`` times (the slot's
    length over the interval's); or, when ``profile_days``, the household's average import and
    export in the same slot of the day over that many recent days."""

    flow: Flow
    intervals: int
    profile_days: int = 0
    profile_import_wh: int = 0
    profile_export_wh: int = 0

    @property
    def surplus_wh(self) -> int:
        if self.profile_days:
            return self.profile_export_wh - self.profile_import_wh
        return (self.flow.export_wh - self.flow.import_wh) * self.intervals

    @property
    def need_wh(self) -> int:
        return -self.surplus_wh


def forecast(flow: Flow, *, slot_s: int) -> Forecast:
    """The persistence forecast of a slot of ``slot_s`` seconds from one interval (a meter's
    interval divides the slot; a longer one counts as one slot)."""
    return Forecast(flow=flow, intervals=max(1, slot_s // max(1, flow.duration_s)))


SlotSums = dict[datetime, tuple[int, int]]


def slot_sums(*, owner: User, windows: list[tuple[datetime, datetime]]) -> SlotSums:
    """The household's import and export per slot (by the slot holding each reading's start)
    over the readings in ``windows``, summed over its meters."""
    if not windows:
        return {}
    within = Q()
    for start, end in windows:
        within |= Q(start__gte=start, start__lt=end)
    slot_ms = selectors.options().slot_ms
    sums: dict[datetime, tuple[int, int]] = {}
    rows = Reading.objects.filter(within, meter__owner=owner, meter__kind__in=POWER_KINDS)
    rows = rows.values_list("start", "import_wh", "export_wh")
    for start, import_wh, export_wh in rows.iterator():
        ms = ms_of_datetime(start)
        slot = datetime_of_ms(ms - ms % slot_ms)
        imported, exported = sums.get(slot, (0, 0))
        sums[slot] = (imported + import_wh, exported + export_wh)
    return sums


def profile_windows(slot: datetime, slot_ms: int) -> list[tuple[datetime, datetime]]:
    """The same slot of the day on each of the last :data:`PROFILE_DAYS` days."""
    length = timedelta(milliseconds=slot_ms)
    return [
        (slot - timedelta(days=d), slot - timedelta(days=d) + length)
        for d in range(1, PROFILE_DAYS + 1)
    ]


def expected(*, latest: Flow, slot: datetime, slot_ms: int, sums: SlotSums) -> Forecast:
    """The slot's forecast: the household's profile when it has the history (``sums`` holds
    its slots of the last days), else ``latest`` scaled to the slot."""
    days = [
        sums[start] for start, _ in profile_windows(slot, slot_ms) if start in sums
    ]  # a day whose meters sent nothing for that slot is no history
    persistence = forecast(latest, slot_s=slot_ms // 1_000)
    if len(days) < PROFILE_MIN_DAYS:
        return persistence
    return Forecast(
        flow=latest,
        intervals=persistence.intervals,
        profile_days=len(days),
        profile_import_wh=sum(imported for imported, _ in days) // len(days),
        profile_export_wh=sum(exported for _, exported in days) // len(days),
    )


def _check_rule(owner: User, kind: str, energy_wh: int, price: int) -> None:
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


def rule_create(*, owner: User, kind: str, energy_wh: int, price: int) -> StandingRule:
    _check_rule(owner, kind, energy_wh, price)
    if StandingRule.objects.filter(owner=owner, active=True).count() >= MAX_RULES:
        raise RuleError(f"At most {MAX_RULES} active rules.", code="too_many_rules")
    rule: StandingRule = StandingRule.objects.create(
        owner=owner, kind=kind, energy_wh=energy_wh, price=price
    )
    return rule


@dataclass(frozen=True)
class PreviewOrder:
    """An order a rule would have placed: for ``slot``, from the reading of ``flow``."""

    slot: datetime
    side: str
    energy_wh: int
    forecast_wh: int
    flow: Flow
    profile_days: int = 0  # > 0: forecast from the household's own profile


def rule_preview(
    *, owner: User, kind: str, energy_wh: int, price: int, now: datetime
) -> list[PreviewOrder]:
    """What a rule would have done over the day before ``now``, from the household's own
    readings: each interval, scaled to the slot, is the forecast for the slot that was next
    open for trading when the interval ended (the first slot whose gate closure is later), and
    the rule places at most one order per slot (the first interval that calls for one), as
    :func:`rules_apply` does. Refusals as :func:`rule_create`'s; nothing is placed or kept."""
    _check_rule(owner, kind, energy_wh, price)
    rule = StandingRule(owner=owner, kind=kind, energy_wh=energy_wh, price=price)
    options = selectors.options()
    slot_ms, gate_ms = options.slot_ms, options.gate_closure_ms
    readings = (
        Reading.objects.filter(
            meter__owner=owner,
            meter__kind__in=POWER_KINDS,
            start__gte=now - timedelta(days=1),
            start__lt=now,
        )
        .values("start", "duration_s")
        .annotate(import_wh=Sum("import_wh"), export_wh=Sum("export_wh"))
        .order_by("start")
    )
    # The days before, for the profile each slot would have had.
    history = slot_sums(owner=owner, windows=[(now - timedelta(days=PROFILE_DAYS + 1), now)])
    orders: dict[datetime, PreviewOrder] = {}
    for row in readings:
        flow = Flow(row["start"], row["import_wh"], row["export_wh"], row["duration_s"])
        ended_ms = ms_of_datetime(flow.start) + flow.duration_s * 1_000
        slot = datetime_of_ms((ended_ms + gate_ms) // slot_ms * slot_ms + slot_ms)
        outlook = expected(latest=flow, slot=slot, slot_ms=slot_ms, sums=history)
        order = wanted(rule, outlook)
        if order is None or slot in orders:
            continue
        side, energy = order
        forecast_wh = outlook.surplus_wh if side == "sell" else outlook.need_wh
        orders[slot] = PreviewOrder(slot, side, energy, forecast_wh, flow, outlook.profile_days)
    return list(orders.values())


def rule_stop(*, owner: User, rule_id: int) -> StandingRule:
    rule = StandingRule.objects.filter(owner=owner, pk=rule_id, active=True).first()
    if rule is None:
        raise RuleError("No such active rule.", code="unknown_rule")
    rule.active = False
    rule.save(update_fields=["active"])
    return rule


def wanted(rule: StandingRule, expected: Forecast) -> tuple[str, int] | None:
    """The order (side, Wh) ``rule`` calls for given the slot's forecast, or None."""
    if rule.kind == SELL_SURPLUS:
        surplus = expected.surplus_wh
        return ("sell", surplus - rule.energy_wh) if surplus > rule.energy_wh else None
    need = expected.need_wh
    return ("buy", min(need, rule.energy_wh)) if need > 0 else None


def rules_apply(*, owner: User, latest: Flow) -> list[Transaction]:
    """Place the orders ``owner``'s active rules call for, given its latest interval."""
    slots = selectors.slot_list()
    if not slots:
        return []
    slot = slots[0].start
    active = list(StandingRule.objects.filter(owner=owner, active=True))
    if not active:
        return []
    slot_ms = selectors.options().slot_ms
    sums = slot_sums(owner=owner, windows=profile_windows(slot, slot_ms))
    outlook = expected(latest=latest, slot=slot, slot_ms=slot_ms, sums=sums)
    placed = []
    for rule in active:
        order = wanted(rule, outlook)
        if order is None or RuleOrder.objects.filter(rule=rule, slot=slot).exists():
            continue
        side, energy_wh = order
        # Claim the slot for the rule first: two batches arriving at once place one order.
        try:
            claim = RuleOrder.objects.create(
                rule=rule,
                order_id=f"claim-{rule.pk}-{ms_of_datetime(slot)}",
                slot=slot,
                energy_wh=energy_wh,
                reading_start=latest.start,
                reading_s=latest.duration_s,
                reading_import_wh=latest.import_wh,
                reading_export_wh=latest.export_wh,
                forecast_wh=outlook.surplus_wh if side == "sell" else outlook.need_wh,
                profile_days=outlook.profile_days,
                threshold_wh=rule.energy_wh,
                price=rule.price,
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
    duration_s: int,
    carrier: str = ELECTRICITY,
    **kwargs: object,
) -> None:
    """``meters.signals.batch_relayed`` (connected in ``market.apps``): ``owner``'s rules see the
    relayed batch's latest interval. Runs in the relay's worker task; an error propagates to it.
    A heat meter's batch is not for them: the rules trade electricity."""
    if carrier != ELECTRICITY:
        return
    flow = Flow(start, import_wh=import_wh, export_wh=export_wh, duration_s=duration_s)
    rules_apply(owner=owner, latest=flow)


def rules_of(*, user: User) -> list[StandingRule]:
    return list(StandingRule.objects.filter(owner=user, active=True))


def reason_text(made: RuleOrder, *, slot_s: int) -> str:
    """Why the rule placed the order, in words: "your rule “sell surplus above 0.1 kWh”: 0.35 kWh
    out and 0 kWh in over 1 min, x5 for the 5-min slot: 1.75 kWh surplus forecast; at no less
    than €0.20/kWh". ``slot_s``: the network's slot, in seconds."""
    rule = made.rule
    if not made.reading_s:  # placed before orders kept their reasons
        return f"your rule “{rule.get_kind_display().lower()}”"
    intervals = max(1, slot_s // made.reading_s)
    selling = rule.kind == SELL_SURPLUS
    what = "surplus" if selling else "need"
    bound = "no less" if selling else "no more"
    if made.profile_days:
        return (
            f"your rule “{'sell surplus above' if selling else 'buy up to'} "
            f"{energy_text(made.threshold_wh)}”: your own average for this slot of the day over "
            f"your last {made.profile_days} days: {energy_text(made.forecast_wh)} {what} "
            f"forecast; at {bound} than {price_text(made.price)}"
        )
    return (
        f"your rule “{'sell surplus above' if selling else 'buy up to'} "
        f"{energy_text(made.threshold_wh)}”: {energy_text(made.reading_export_wh)} out and "
        f"{energy_text(made.reading_import_wh)} in over {made.reading_s // 60} min, "
        f"x{intervals} for the {slot_s // 60}-min slot: {energy_text(made.forecast_wh)} {what} "
        f"forecast; at {bound} than {price_text(made.price)}"
    )


def rule_of_orders(*, order_ids: list[str]) -> dict[str, RuleOrder]:
    """Which rule made each of these orders (those a rule made), and why."""
    rows = RuleOrder.objects.filter(order_id__in=order_ids).select_related("rule")
    return {row.order_id: row for row in rows}
