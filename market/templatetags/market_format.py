"""``{% load market_format %}``: the market's integers as people read them (market.forms).

``{{ wh|energy }}`` (``"1.5 kWh"``; ``{{ wh|energy:row.carrier }}`` in the carrier's unit,
``"1.5 kWh thermal"`` for heat), ``{{ price|price }}`` (``"€0.25/kWh"``, minor units per kWh;
``{{ price|price:row.carrier }}`` likewise), ``{{ row.carrier|carrier }}`` (``"Heat"``),
``{{ row.carrier|unit }}`` (``"kWh thermal"``), ``{{ start|slot }}`` (a slot's start in the
site's time zone), ``{{ share|percent }}`` (``"12.5 %"``), ``{{ contract.id|contract_number }}``
(``"#3"``) and ``{{ average|unit_price }}`` (a ``Decimal`` of minor units per kWh:
``"€0.215/kWh"``); ``"—"`` for what has no value.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.conf import settings

from market.chain.options import ELECTRICITY, UNITS
from market.forms import energy_text, price_text, slot_label
from market.models import Carrier

register = template.Library()


def energy(value: object, carrier: str = ELECTRICITY) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return energy_text(value, carrier)


def price(value: object, carrier: str = ELECTRICITY) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return price_text(value, carrier)


def carrier(value: object) -> str:
    """A carrier's name as people read it: ``"heat"`` -> ``"Heat"``."""
    return str(Carrier(value).label) if value in Carrier.values else "—"


def unit(value: object) -> str:
    """A carrier's unit: ``"heat"`` -> ``"kWh thermal"``."""
    return UNITS.get(value, "—") if isinstance(value, str) else "—"


def slot(value: object) -> str:
    return slot_label(value) if isinstance(value, datetime) else "—"


def contract_number(value: object) -> str:
    """A contract's short name within its slot: ``"1767229200000-2"`` -> ``"#3"`` (the third
    made for the slot; pages show it beside the slot and link it to its transaction)."""
    if not isinstance(value, str) or "-" not in value:
        return "—"
    index = value.rsplit("-", 1)[1]
    return f"#{int(index) + 1}" if index.isdigit() else "—"


def percent(value: object) -> str:
    return f"{value} %" if isinstance(value, Decimal) else "—"


def unit_price(value: object) -> str:
    """Minor units per kWh, with a tenth of a minor unit: 21.5 -> ``"€0.215/kWh"``."""
    if not isinstance(value, Decimal):
        return "—"
    return f"{settings.CURRENCY_SYMBOL}{value / 100:.3f}/kWh"


# Registered by call, not as decorators: Django's are untyped, and this module is type-checked.
register.filter("energy", energy)
register.filter("price", price)
register.filter("slot", slot)
register.filter("percent", percent)
register.filter("contract_number", contract_number)
register.filter("unit_price", unit_price)
register.filter("carrier", carrier)
register.filter("unit", unit)
