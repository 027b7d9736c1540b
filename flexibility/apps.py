from __future__ import annotations

from django.apps import AppConfig


class FlexibilityConfig(AppConfig):
    """The site side of the network operators' requirements and of energy storage providers
    (``market.chain.flexibility``, ``market.chain.storage``)."""

    name = "flexibility"
