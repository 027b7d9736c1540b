"""Money as the ledger counts it: integers in minor units (cents), and how people write it.

The ledger never sees anything but integers. People type and read amounts in major units with
up to two decimals ("12.5" is 1250 minor units); the conversion is exact (``Decimal``, no floats)
and refuses anything finer than a minor unit rather than rounding it. The currency's symbol is
``settings.CURRENCY_SYMBOL`` (display only).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings

MINOR_PER_MAJOR = 100
MAX_MINOR = 2**53 - 1


class MoneyError(ValueError):
    """Not an amount people may type: not a number, negative, finer than a cent, too large."""


def minor_from_text(text: str) -> int:
    """``"12.5"`` -> 1250. Raises MoneyError."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise MoneyError("Enter an amount such as 12.50.") from None
    if not value.is_finite() or value < 0:
        raise MoneyError("Enter an amount of zero or more.")
    minor = value * MINOR_PER_MAJOR
    if minor != minor.to_integral_value():
        raise MoneyError("Amounts are in whole cents (at most two decimals).")
    if minor > MAX_MINOR:
        raise MoneyError("That amount is too large.")
    return int(minor)


def text_from_minor(amount: int) -> str:
    """1250 -> ``"€12.50"``; -5 -> ``"-€0.05"``."""
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), MINOR_PER_MAJOR)
    return f"{sign}{settings.CURRENCY_SYMBOL}{major:,}.{minor:02d}"
