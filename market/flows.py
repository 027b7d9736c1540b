"""A household's energy per delivery slot, for its charts: its meters' readings against its
contracts and what their settlement lines counted as delivered. Reads only, scoped by who asks.

Here, above the meters, because it sets the market's contracts beside the meters' readings; the
grid operator's latest flows are meter data only (``meters.selectors.latest_flow_list``).

A period is the last day or week of the site's wall clock (``TIME_ZONE``), ending with the slot
that holds now: across a change of daylight saving time a day is 23 or 25 hours long, so that a
week back starts at the same time of day. Slots are the market's (``market.slot_ms``,
counted from the Unix epoch); a meter's interval divides the slot (``meters.chain.metering``), so
every reading lies in exactly one slot. Energy in integer Wh; a slot without data is zero.

The slots' series are electricity's: the readings of electricity meters and the electricity
contracts. Each carrier's totals over the period (its meters' import and export, its contracts
and what was delivered, what its settled slots bought from and sold to the supplier of last
resort at the carrier's own tariff, in Wh of its own unit) are in ``Flows.carriers``, side by
side, never added together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.db.models import Count, Q, Sum
from django.utils import timezone

from gridplatform.accounts.models import User
from market import selectors as market_selectors
from market.chain.options import ELECTRICITY
from market.models import Contract, GridSettlement, SettlementLine
from meters.chain.schema import meter_carrier
from meters.models import Meter, MeterKind, Reading

DAY = "day"
WEEK = "week"
PERIODS = {DAY: 1, WEEK: 7}  # in days of the wall clock
# The series of the two charts, in the order of their legends and tables.
ENERGY_SERIES = ("generation_wh", "consumption_wh", "import_wh", "export_wh")
TRADE_SERIES = ("sold_wh", "sold_delivered_wh", "bought_wh", "bought_delivered_wh")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Traded:
    """A household's contracts of one carrier over some time, in Wh of the carrier's unit:
    ``sold_wh``/``bought_wh`` contracted, ``*_delivered_wh`` what their settlement lines say
    was delivered (zero until settled)."""

    sold_wh: int = 0
    sold_delivered_wh: int = 0
    bought_wh: int = 0
    bought_delivered_wh: int = 0


@dataclass(kw_only=True)
class SlotFlow(Traded):
    """One slot of a household's period, electricity's. ``generation_wh``: the export of its PV
    meters; ``consumption_wh``: the import of its consumption meters; ``import_wh``/
    ``export_wh``: over all its electricity meters; its contracts for the slot (``Traded``)."""

    start: datetime
    generation_wh: int = 0
    consumption_wh: int = 0
    import_wh: int = 0
    export_wh: int = 0


@dataclass(kw_only=True)
class CarrierFlow(Traded):
    """One carrier's energy over a period, in Wh of its unit (``market.chain.options.UNITS``):
    its meters' import and export, and its contracts (``Traded``)."""

    carrier: str
    import_wh: int = 0
    export_wh: int = 0
    # Settled with the supplier of last resort at the carrier's own tariff (its residual lines).
    grid_import_wh: int = 0
    grid_export_wh: int = 0


@dataclass(frozen=True)
class Flows:
    period: str
    start: datetime  # inclusive, the first slot's start
    end: datetime  # exclusive, the end of the slot that holds now
    slot_length: timedelta
    meters: int  # the household's meters, active or not
    readings: int  # its readings in the period
    ever_read: bool  # whether any of its meters ever sent a reading
    contracts: int  # its contracts for slots of the period
    slots: list[SlotFlow]  # electricity's
    carriers: list[CarrierFlow]  # each carrier the market trades, electricity first

    @property
    def slot_minutes(self) -> int:
        return self.slot_length // timedelta(minutes=1)


def floor_to_slot(moment: datetime, slot_length: timedelta) -> datetime:
    """The start of the slot that holds ``moment`` (slots counted from the Unix epoch)."""
    return moment - (moment - _EPOCH) % slot_length


def period_range(
    *, period: str, now: datetime, slot_length: timedelta, zone: tzinfo
) -> tuple[datetime, datetime]:
    """The start (inclusive) and end (exclusive, in UTC) of ``period`` ending with the slot that
    holds ``now``: one day or one week back on ``zone``'s wall clock."""
    end = floor_to_slot(now, slot_length) + slot_length
    # Arithmetic on an aware datetime in one zone is wall-clock arithmetic: the offset is
    # worked out again for the result, so a day across a DST change is 23 or 25 hours.
    wall_start = end.astimezone(zone) - timedelta(days=PERIODS[period])
    return floor_to_slot(wall_start.astimezone(UTC), slot_length), end


def household_flows(*, user: User, period: str = DAY, now: datetime | None = None) -> Flows:
    """``user``'s own energy per slot in ``period`` (``day`` or ``week``) ending now: its meters'
    readings, its contracts and their settlement lines; nothing of any other account."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    slot_length = timedelta(milliseconds=market_selectors.options().slot_ms)
    start, end = period_range(
        period=period,
        now=now or timezone.now(),
        slot_length=slot_length,
        zone=timezone.get_default_timezone(),
    )
    slots = [SlotFlow(start=start + i * slot_length) for i in range((end - start) // slot_length)]
    carriers = market_selectors.options().carriers
    totals = {carrier: CarrierFlow(carrier=carrier) for carrier in carriers}

    def total(carrier: str) -> CarrierFlow:  # a carrier of a market that stopped trading it too
        return totals.setdefault(carrier, CarrierFlow(carrier=carrier))

    def slot_of(moment: datetime) -> SlotFlow:
        return slots[(moment - start) // slot_length]

    meters = Meter.objects.filter(owner=user).count()
    readings = 0
    if meters:
        # Grouped by start and kind in the database: one row per interval and kind, not per
        # reading of every meter.
        rows = (
            Reading.objects.filter(meter__owner=user, start__gte=start, start__lt=end)
            .values("start", "meter__kind")
            .annotate(n=Count("id"), imported=Sum("import_wh"), exported=Sum("export_wh"))
            .order_by()
        )
        for row in rows:
            readings += row["n"]
            carrier = total(meter_carrier(row["meter__kind"]))
            carrier.import_wh += row["imported"]
            carrier.export_wh += row["exported"]
            if carrier.carrier != ELECTRICITY:
                continue
            slot = slot_of(row["start"])
            slot.import_wh += row["imported"]
            slot.export_wh += row["exported"]
            if row["meter__kind"] == MeterKind.PV:
                slot.generation_wh += row["exported"]
            elif row["meter__kind"] == MeterKind.CONSUMPTION:
                slot.consumption_wh += row["imported"]
    ever_read = readings > 0 or (meters > 0 and Reading.objects.filter(meter__owner=user).exists())

    contracts = 0
    address = market_selectors.address_of(user)
    if address is not None:
        party = Q(seller=address) | Q(buyer=address)
        in_period = Q(slot__gte=start, slot__lt=end)
        traded = Contract.objects.filter(party, in_period).values_list(
            "slot", "carrier", "seller", "buyer", "energy_wh"
        )
        for slot_start, carrier, seller, buyer, energy_wh in traded.order_by():
            contracts += 1
            for flow in _flows_of(carrier, slot_of(slot_start), total(carrier)):
                if seller == address:
                    flow.sold_wh += energy_wh
                if buyer == address:
                    flow.bought_wh += energy_wh
        settled = SettlementLine.objects.filter(party, in_period).values_list(
            "slot", "carrier", "seller", "buyer", "delivered_wh"
        )
        for slot_start, carrier, seller, buyer, delivered_wh in settled.order_by():
            for flow in _flows_of(carrier, slot_of(slot_start), total(carrier)):
                if seller == address:
                    flow.sold_delivered_wh += delivered_wh
                if buyer == address:
                    flow.bought_delivered_wh += delivered_wh
        residual = (
            GridSettlement.objects.filter(in_period, account=address)
            .values("carrier")
            .annotate(bought=Sum("grid_import_wh"), sold=Sum("grid_export_wh"))
            .order_by()
        )
        for row in residual:
            total(row["carrier"]).grid_import_wh += row["bought"]
            total(row["carrier"]).grid_export_wh += row["sold"]

    return Flows(
        period=period,
        start=start,
        end=end,
        slot_length=slot_length,
        meters=meters,
        readings=readings,
        ever_read=ever_read,
        contracts=contracts,
        slots=slots,
        carriers=list(totals.values()),
    )


def _flows_of(
    carrier: str, slot: SlotFlow, total: CarrierFlow
) -> tuple[SlotFlow | CarrierFlow, ...]:
    """Where a contract's energy counts: its carrier's total and, for electricity, its slot."""
    return (slot, total) if carrier == ELECTRICITY else (total,)
