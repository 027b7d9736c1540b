"""What a household is told before its order goes out, when the order looks like a mistake.

Nothing here refuses anything: the validators decide what is valid. These are the site's second
looks at a price or an amount that the household probably did not mean, shown beside the order
form with a "Place it anyway" button (``market.views.order_place``):

* a bid above the supplier's retail price for the slot (the grid sells for less), or an ask below
  its feed-in price (the supplier pays more);
* a price at least ``FAR`` times the market's, or at most 1/``FAR`` of it, where the market's is
  the median price of the contracts of the last 24 hours, or, on a thin market with none, the
  middle of the slot's tariff band;
* a sale of more energy than the household's meters exported, on any of the last 7 days, in the
  slot's time of day (energy it does not deliver is penalised), or a sale with no meter at all.

Each against the order's own carrier: its contracts, its meters (a heat order's are the heat
meters, ``meters.chain.schema.meter_carrier``), its units, its tariff (a heat order is
compared with heat's tariff, when the grid operator published one).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone

from gridplatform.accounts.models import User
from market.chain.options import ELECTRICITY
from market.chain.tariff import Band, band_of
from market.chain.tariff import Tariff as ChainTariff
from market.forms import energy_text, price_text
from market.models import Contract
from market.selectors import tariff_in_force
from meters.models import Meter, Reading, kinds_of

FAR = 3
HISTORY_DAYS = 7


def order_warnings(
    *,
    user: User,
    slot: datetime,
    slot_ms: int,
    side: str,
    energy_wh: int,
    price: int,
    carrier: str = ELECTRICITY,
) -> list[str]:
    """The warnings for ``user``'s order (``side`` "buy" or "sell", ``energy_wh`` of
    ``carrier`` in the slot starting at ``slot``, ``slot_ms`` long, at ``price`` minor units per
    kWh); [] if none."""
    warnings: list[str] = []
    band = _band(slot, carrier)
    if band is not None:
        if side == "buy" and price > band["retail"]:
            warnings.append(
                f"You bid {price_text(price, carrier)}, more than the "
                f"{price_text(band['retail'], carrier)} the "
                "supplier charges for energy in this slot: whatever your neighbours do not sell "
                "you, the grid sells you for less."
            )
        if side == "sell" and price < band["feed_in"]:
            warnings.append(
                f"You ask {price_text(price, carrier)}, less than the "
                f"{price_text(band['feed_in'], carrier)} the "
                "supplier pays for energy fed in during this slot."
            )
    reference, basis = _reference_price(band, carrier)
    if reference and (price >= FAR * reference or price * FAR <= reference):
        warnings.append(
            f"{price_text(price, carrier)} is far from the market: {basis} is "
            f"{price_text(reference, carrier)}."
        )
    if side == "sell":
        warnings += _supply_warnings(
            user=user, slot=slot, slot_ms=slot_ms, energy_wh=energy_wh, carrier=carrier
        )
    return warnings


def _band(slot: datetime, carrier: str) -> Band | None:
    """The band of the carrier's tariff in force for the slot, if there is one."""
    tariff = tariff_in_force(at=slot, carrier=carrier)
    if tariff is None or not tariff.bands:
        return None
    in_force: ChainTariff = {"from_slot": 0, "bands": tariff.bands, "tx": tariff.tx, "height": 0}
    return band_of(in_force, int(slot.timestamp() * 1000))


def _reference_price(band: Band | None, carrier: str) -> tuple[int, str]:
    """The carrier's market price now, and what it is: the median of the last day's contracts
    of the carrier, else the middle of the tariff band; (0, "") when there is neither."""
    recent = Contract.objects.filter(
        made_at__gte=timezone.now() - timedelta(hours=24), vetoed=False, carrier=carrier
    ).order_by("price")
    count = recent.count()
    if count:
        median = recent.values_list("price", flat=True)[count // 2]
        return int(median), "the median price of the last day's contracts"
    if band is not None:
        middle = (band["retail"] + band["feed_in"]) // 2
        return middle, "with no contract in the last day, the middle of the tariff band"
    return 0, ""


def _supply_warnings(
    *, user: User, slot: datetime, slot_ms: int, energy_wh: int, carrier: str
) -> list[str]:
    mine = Meter.objects.filter(owner=user, active=True, kind__in=kinds_of(carrier))
    meters = list(mine.values_list("pk", flat=True))
    if not meters:
        which = "" if carrier == ELECTRICITY else f"{carrier} "
        return [
            f"You have no {which}meter registered: nothing would measure the energy you sell, "
            "and energy not delivered is penalised. Register your meter on the Meters page "
            "first."
        ]
    length = timedelta(milliseconds=slot_ms)
    exported = []
    for days in range(1, HISTORY_DAYS + 1):
        start = slot - timedelta(days=days)
        window = Reading.objects.filter(
            meter_id__in=meters, start__gte=start, start__lt=start + length
        )
        total = window.aggregate(total=Sum("export_wh"))["total"]
        if total is not None:
            exported.append(int(total))
    if exported and energy_wh > max(exported):
        return [
            f"On the last {HISTORY_DAYS} days your meters exported at most "
            f"{energy_text(max(exported), carrier)} at this time of day; selling "
            f"{energy_text(energy_wh, carrier)} may leave you short, and energy not delivered "
            "is penalised."
        ]
    return []
