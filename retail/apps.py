from __future__ import annotations

from django.apps import AppConfig


class RetailConfig(AppConfig):
    """The site side of energy sellers: households' grants and the orders retailers place for
    them (``market.chain.retail``)."""

    name = "retail"
