from __future__ import annotations

from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "market"

    def ready(self) -> None:
        # The meters are below the market and do not import it: they announce each relayed
        # batch, and the household's standing rules react (market.rules).
        from market.rules import batch_relayed_receiver
        from meters.signals import batch_relayed

        batch_relayed.connect(batch_relayed_receiver, dispatch_uid="market.rules")
