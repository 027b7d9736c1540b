"""``{{ amount|money }}``: integer minor units shown as the currency (gridplatform.money)."""

from __future__ import annotations

from django import template

from gridplatform.money import text_from_minor

register = template.Library()


@register.filter
def money(amount: object) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int):
        return "—"
    return text_from_minor(amount)
