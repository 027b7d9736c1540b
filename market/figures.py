"""Community figures as energy communities' field trials report them, for a household and for its
community, per day and over a month: read only, from the settlement events' read models.

Over the slots of a period, from each metered household's line with the supplier
(``GridSettlement``: metered import and export, and what of them went to or came from the grid)
and the settled contracts (``SettlementLine``):

* **self-sufficiency**: the share of the energy drawn that came from neighbours instead of the
  grid, ``(import - grid_import) / import``;
* **self-consumption**: the share of the energy fed in that neighbours used instead of the grid,
  ``(export - grid_export) / export``;
* **local share**: the P2P energy delivered over the energy drawn (for the community, the same
  energy counted once: what its members bought from one another);
* the **average P2P price** (what delivered P2P energy was paid, per kWh) beside the average
  **retail** and **feed-in** prices of the slots' tariffs (weighted by the energy drawn and fed in).

A household's figures are its own lines; the community's are every household's, the grid operator's
view. They are electricity's: the supplier's lines are, and the P2P lines are the electricity
contracts' (a heat contract's energy is in kWh thermal and never counts here). Energy of slots
without meter data is not in them. Percentages and prices are ``Decimal`` to one decimal (display
only: nothing here goes back to the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from market.bills import local_days
from market.chain.options import ELECTRICITY
from market.models import GridSettlement, SettlementLine

_TENTH = Decimal("0.1")


def _ratio(part: int, whole: int, scale: int = 100) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part * scale) / Decimal(whole)).quantize(_TENTH, rounding=ROUND_HALF_EVEN)


@dataclass
class Figures:
    import_wh: int = 0
    export_wh: int = 0
    grid_import_wh: int = 0
    grid_export_wh: int = 0
    retail_wh: int = 0  # sum of retail x import_wh: minor units x Wh per kWh
    feed_in_wh: int = 0
    p2p_wh: int = 0  # delivered P2P energy
    p2p_paid: int = 0  # what it was paid, minor units

    def add(self, other: Figures) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def self_sufficiency(self) -> Decimal | None:
        return _ratio(self.import_wh - self.grid_import_wh, self.import_wh)

    @property
    def self_consumption(self) -> Decimal | None:
        return _ratio(self.export_wh - self.grid_export_wh, self.export_wh)

    @property
    def local_share(self) -> Decimal | None:
        return _ratio(min(self.p2p_wh, self.import_wh), self.import_wh)

    @property
    def p2p_price(self) -> Decimal | None:
        """Minor units per kWh."""
        return _ratio(self.p2p_paid, self.p2p_wh, 1_000)

    @property
    def retail(self) -> Decimal | None:
        return _ratio(self.retail_wh, self.import_wh, 1)

    @property
    def feed_in(self) -> Decimal | None:
        return _ratio(self.feed_in_wh, self.export_wh, 1)


@dataclass
class Period:
    start: datetime
    end: datetime
    totals: Figures
    days: list[tuple[date, Figures]]


def _grid_lines(address: str | None, start: datetime, end: datetime) -> QuerySet[GridSettlement]:
    # Electricity's: the figures are of the electricity community (heat's residual has its own
    # lines, in the household's bill and statement).
    rows = GridSettlement.objects.filter(slot__gte=start, slot__lt=end, carrier=ELECTRICITY)
    return rows if address is None else rows.filter(account=address)


def _p2p_lines(address: str | None, start: datetime, end: datetime) -> QuerySet[SettlementLine]:
    rows = SettlementLine.objects.filter(slot__gte=start, slot__lt=end, carrier=ELECTRICITY)
    if address is None:
        return rows
    # A household's local share counts the energy neighbours delivered to it.
    return rows.filter(Q(buyer=address))


def figures(*, address: str | None, start: datetime, end: datetime, zone: ZoneInfo) -> Period:
    """The figures of ``address`` (a household), or of the whole community (None), over
    [start, end), in total and per day of ``zone``."""
    days = {day.date(): Figures() for day, _ in local_days(start, end, zone)}
    grid = (
        _grid_lines(address, start, end)
        .annotate(day=TruncDate("slot", tzinfo=zone))
        .values("day")
        .annotate(
            import_wh_sum=Sum("import_wh"),
            export_wh_sum=Sum("export_wh"),
            grid_import_wh_sum=Sum("grid_import_wh"),
            grid_export_wh_sum=Sum("grid_export_wh"),
            retail_wh_sum=Sum(F("retail") * F("import_wh")),
            feed_in_wh_sum=Sum(F("feed_in") * F("export_wh")),
        )
        .order_by()
    )
    for row in grid:
        day = days.setdefault(row["day"], Figures())
        day.import_wh += row["import_wh_sum"] or 0
        day.export_wh += row["export_wh_sum"] or 0
        day.grid_import_wh += row["grid_import_wh_sum"] or 0
        day.grid_export_wh += row["grid_export_wh_sum"] or 0
        day.retail_wh += row["retail_wh_sum"] or 0
        day.feed_in_wh += row["feed_in_wh_sum"] or 0
    p2p = (
        _p2p_lines(address, start, end)
        .annotate(day=TruncDate("slot", tzinfo=zone))
        .values("day")
        .annotate(delivered=Sum("delivered_wh"), paid_sum=Sum("paid"))
        .order_by()
    )
    for row in p2p:
        day = days.setdefault(row["day"], Figures())
        day.p2p_wh += row["delivered"] or 0
        day.p2p_paid += row["paid_sum"] or 0
    totals = Figures()
    for day_figures in days.values():
        totals.add(day_figures)
    return Period(start=start, end=end, totals=totals, days=sorted(days.items()))
