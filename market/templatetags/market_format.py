"""``{% load market_format %}``: the market's integers as people read them (market.forms).

``{{ wh|energy }}`` (``"1.5 kWh"``), ``{{ price|price }}`` (``"€0.25/kWh"``, minor units per
kWh), ``{{ start|slot }}`` (a slot's start in the site's time zone).
"""

from __future__ import annotations

from datetime import datetime

from django import template

from market.forms import energy_text, price_text, slot_label

register = template.Library()


def energy(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return energy_text(value)


def price(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        return "—"
    return price_text(value)


def slot(value: object) -> str:
    return slot_label(value) if isinstance(value, datetime) else "—"


# Registered by call, not as decorators: Django's are untyped, and this module is type-checked.
register.filter("energy", energy)
register.filter("price", price)
register.filter("slot", slot)
