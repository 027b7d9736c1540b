"""A household's bill for a day or a month, and what it saved against the grid alone.

Reads only, scoped to the household that asks, from the read models the chain's settlement
events made (``market.projection``): its settled contracts (``SettlementLine``) and its lines
with the supplier of last resort (``GridSettlement``). Every number is the validators' own, in
integer Wh and minor units; nothing is recomputed except the comparison below.

**The bill.** For the slots that start in the period (the household's own time zone, so a day
is 23 to 25 hours across a change of daylight saving time): energy bought from neighbours and
what was paid for it, energy sold to neighbours and what was received, the network fees of P2P
energy, penalties paid and received, energy bought from the grid (at retail, with the tariff's
network fee) and sold to it (at feed-in), and the net **cost** (+ paid, - received).

**Without the community.** The same metered energy, each slot on its own, settled with the
supplier alone: ``value(import_wh, retail) + value(import_wh, network_fee) - value(export_wh,
feed_in)`` at that slot's tariff band (``market.chain.pricing.value``: rounded down, as the
validators round). Only slots with a metered line count there (a slot the household's meters
sent nothing for has no baseline); the **saving** is that cost less the bill's, and its percent
is of the baseline's magnitude (what the grid alone would have cost, or paid).

**Arrears.** What the household could not pay the supplier stays owed (``market/arrears``): the
bill shows what was added in the period, what was paid off (from later income at settlement,
from top-ups), and what is owed now.

**Carriers.** The figures above (the rows, the saving, the CSV) are electricity's. Each other
carrier (heat, in kWh thermal) is totalled on its own in ``Bill.carriers``: its contracts
(energy and money traded with neighbours, fees, penalties) and its lines with the supplier at
that carrier's own tariff (bought from and sold to the heating network, its network fee,
arrears added and paid), never added to electricity's energy; ``Bill.net`` sums the money of
all of them. The comparison with the supplier alone stays electricity's.
"""

from __future__ import annotations

import calendar
import csv
import io
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum
from django.utils import timezone

from gridplatform.accounts.models import User
from market.chain.options import ELECTRICITY
from market.chain.pricing import value
from market.models import ArrearsPayment, GridSettlement, MarketAccount, SettlementLine
from market.selectors import StatementLine, address_of, options, statement
from market.statements import neutralise

DAY = "day"
MONTH = "month"
PERIODS = (DAY, MONTH)


class BadPeriod(ValueError):
    """A period the bill cannot show: the message says what to ask for instead."""


@dataclass
class Totals:
    """A bill's figures over some slots. Energy in Wh; money in minor units, all >= 0 except
    the derived ``cost``, ``baseline`` and ``saving`` (+ the household pays, - it receives)."""

    import_wh: int = 0  # metered
    export_wh: int = 0
    p2p_bought_wh: int = 0  # delivered to it by its contracts
    p2p_bought: int = 0
    p2p_fees: int = 0
    p2p_sold_wh: int = 0  # delivered by it through its contracts
    p2p_sold: int = 0
    penalties_paid: int = 0
    penalties_received: int = 0
    grid_import_wh: int = 0
    grid_import_cost: int = 0
    grid_fees: int = 0
    grid_export_wh: int = 0
    feed_in: int = 0
    arrears_added: int = 0
    arrears_paid: int = 0  # at settlement, from later income
    baseline: int = 0  # the metered energy with the supplier alone
    metered_slots: int = 0

    @property
    def cost(self) -> int:
        return (
            self.p2p_bought
            + self.p2p_fees
            + self.penalties_paid
            + self.grid_import_cost
            + self.grid_fees
            - self.p2p_sold
            - self.penalties_received
            - self.feed_in
        )

    @property
    def net(self) -> int:
        """The bill's money from the household's side: + received, - paid."""
        return -self.cost

    @property
    def baseline_net(self) -> int:
        return -self.baseline

    @property
    def fees(self) -> int:
        return self.p2p_fees + self.grid_fees

    @property
    def saving(self) -> int:
        return self.baseline - self.cost

    @property
    def loss(self) -> int:
        """What trading cost beyond the grid alone (when the saving is negative)."""
        return -self.saving

    @property
    def saving_percent(self) -> Decimal | None:
        """The saving as a percent of the baseline's magnitude, to one decimal; None without
        a baseline."""
        if not self.baseline:
            return None
        ratio = Decimal(self.saving * 100) / Decimal(abs(self.baseline))
        return ratio.quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)

    def add(self, other: Totals) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Row:
    """A slot (a day's bill) or a day (a month's), in the household's time zone."""

    start: datetime
    end: datetime
    totals: Totals = field(default_factory=Totals)


@dataclass
class Bill:
    period: str
    start: datetime  # inclusive, local midnight
    end: datetime  # exclusive
    totals: Totals
    rows: list[Row]  # every slot with anything (a day), every day of the month (a month)
    slots: list[Row]  # every slot with anything, oldest first (the CSV's rows)
    penalties: list[StatementLine]  # the period's contract lines with a penalty
    arrears_from_top_ups: int  # arrears top-ups paid in the period
    arrears_now: int  # owed to the supplier now
    carriers: dict[str, Totals] = field(default_factory=dict)  # other carriers' P2P totals

    @property
    def net(self) -> int:
        """The money of every carrier (+ received, - paid)."""
        return self.totals.net + sum(other.net for other in self.carriers.values())

    @property
    def previous(self) -> date:
        return (self.start - timedelta(days=1)).date()

    @property
    def following(self) -> date:
        return self.end.date()


def period_bounds(period: str, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The period holding ``day``: [local midnight of its first day, of the day after its last)."""
    if period == DAY:
        first, last = day, day
    elif period == MONTH:
        first = day.replace(day=1)
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    else:
        raise BadPeriod("A bill is for a day or a month.")
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The days of ``zone`` from ``start`` (a local midnight) to ``end``: each one's
    [midnight, next midnight), 23 to 25 hours across a change of daylight saving time."""
    days = []
    moment = start.astimezone(zone)
    while moment < end:
        following = datetime.combine(moment.date() + timedelta(days=1), datetime.min.time(), zone)
        days.append((moment, following))
        moment = following
    return days


def parse_day(text: str | None, zone: ZoneInfo) -> date:
    """``YYYY-MM-DD`` (default: today in ``zone``)."""
    if not text:
        today: date = timezone.now().astimezone(zone).date()
        return today
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadPeriod("Give the date as YYYY-MM-DD, e.g. 2026-12-06.") from None


def _baseline(line: GridSettlement) -> int:
    return (
        value(line.import_wh, line.retail)
        + value(line.import_wh, line.network_fee)
        - value(line.export_wh, line.feed_in)
    )


def household_bill(*, user: User, period: str, day: date, zone: ZoneInfo) -> Bill:
    """``user``'s bill for the period holding ``day`` (module docstring); nothing of any other
    account."""
    start, end = period_bounds(period, day, zone)
    address = address_of(user) or "-"
    slot_length = timedelta(milliseconds=options().slot_ms)
    by_slot: dict[datetime, Totals] = {}
    others: dict[str, Totals] = {}

    def at(slot: datetime, carrier: str) -> Totals:
        if carrier != ELECTRICITY:
            return others.setdefault(carrier, Totals())
        return by_slot.setdefault(slot, Totals())

    in_period = Q(slot__gte=start, slot__lt=end)
    for line in SettlementLine.objects.filter(in_period, Q(seller=address) | Q(buyer=address)):
        totals = at(line.slot, line.carrier)
        if line.seller == address:
            totals.p2p_sold_wh += line.delivered_wh
            totals.p2p_sold += line.paid
            totals.penalties_paid += line.penalty
        if line.buyer == address:
            totals.p2p_bought_wh += line.delivered_wh
            totals.p2p_bought += line.paid
            totals.p2p_fees += line.fee
            totals.penalties_received += line.penalty
    for grid in GridSettlement.objects.filter(in_period, account=address):
        totals = at(grid.slot, grid.carrier)
        totals.import_wh += grid.import_wh
        totals.export_wh += grid.export_wh
        totals.grid_import_wh += grid.grid_import_wh
        totals.grid_import_cost += grid.import_cost
        totals.grid_fees += grid.import_fee
        totals.grid_export_wh += grid.grid_export_wh
        totals.feed_in += grid.feed_in_paid
        totals.arrears_added += grid.arrears_added
        totals.arrears_paid += grid.arrears_paid
        if grid.carrier == ELECTRICITY:  # the comparison with the supplier alone
            totals.baseline += _baseline(grid)
            totals.metered_slots += 1

    slots = [Row(s, s + slot_length, by_slot[s]) for s in sorted(by_slot)]
    total = Totals()
    for row in slots:
        total.add(row.totals)
    if period == DAY:
        rows = slots
    else:
        days = {day.date(): Row(day, following) for day, following in local_days(start, end, zone)}
        for row in slots:
            days[row.start.astimezone(zone).date()].totals.add(row.totals)
        rows = list(days.values())
    penalties = []
    penalised = [total, *others.values()]
    if any(t.penalties_paid or t.penalties_received for t in penalised):  # else none to read
        penalties = [line for line in statement(user=user, start=start, end=end) if line.penalty]
    from_top_ups = ArrearsPayment.objects.filter(
        account=address, paid_at__gte=start, paid_at__lt=end
    ).aggregate(total=Sum("paid"))["total"]
    owed = MarketAccount.objects.filter(address=address).values_list("arrears", flat=True).first()
    return Bill(
        period=period,
        start=start,
        end=end,
        totals=total,
        rows=rows,
        slots=slots,
        penalties=penalties,
        arrears_from_top_ups=from_top_ups or 0,
        arrears_now=owed or 0,
        carriers=others,
    )


CSV_HEADER = (
    "slot_start",
    "slot_end",
    "metered_import_Wh",
    "metered_export_Wh",
    "p2p_bought_Wh",
    "p2p_bought_minor_units",
    "p2p_network_fee_minor_units",
    "p2p_sold_Wh",
    "p2p_sold_minor_units",
    "penalties_paid_minor_units",
    "penalties_received_minor_units",
    "grid_import_Wh",
    "grid_import_minor_units",
    "grid_network_fee_minor_units",
    "grid_export_Wh",
    "feed_in_minor_units",
    "arrears_added_minor_units",
    "cost_minor_units",
    "without_community_minor_units",
    "saving_minor_units",
)


def bill_csv(bill: Bill) -> str:
    """One row per slot with anything in it, oldest first, then a ``total`` row. Times ISO
    8601 with their offset in the household's zone; every amount an integer; ``cost``,
    ``without_community`` and ``saving`` signed (+ paid, - received)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    zone = bill.start.tzinfo
    for start, end, totals in [
        *((row.start.astimezone(zone), row.end.astimezone(zone), row.totals) for row in bill.slots),
        ("total", "", bill.totals),
    ]:
        t = totals
        row: list[object] = [
            start.isoformat() if isinstance(start, datetime) else start,
            end.isoformat() if isinstance(end, datetime) else end,
            t.import_wh,
            t.export_wh,
            t.p2p_bought_wh,
            t.p2p_bought,
            t.p2p_fees,
            t.p2p_sold_wh,
            t.p2p_sold,
            t.penalties_paid,
            t.penalties_received,
            t.grid_import_wh,
            t.grid_import_cost,
            t.grid_fees,
            t.grid_export_wh,
            t.feed_in,
            t.arrears_added,
            t.cost,
            t.baseline,
            t.saving,
        ]
        writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()
