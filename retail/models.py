"""The read models of energy sellers (``market.chain.retail``): households' grants and the
orders retailers placed for them, projected from committed blocks (``retail.projection``).

Nothing here is the truth: the grants live in the ledger's state
(``market/grant/<carrier>/<household>/<retailer>``) and every row is rebuilt from the blocks.
Energy in Wh, prices in minor units per kWh; times are block times.
"""

from __future__ import annotations

from django.db import models

from market.chain.options import ELECTRICITY


class Grant(models.Model):
    """A household's grant to a retailer in a carrier (``market.grant_given``; given again: new
    limits), and its end (``market.grant_revoked``): the row stays, revoked, so the household
    sees what it granted and ended."""

    household = models.CharField(max_length=50, db_index=True)
    retailer = models.CharField(max_length=50, db_index=True)
    carrier = models.CharField(max_length=16, default=ELECTRICITY)
    max_energy_wh = models.BigIntegerField(help_text="The most energy in one order.")
    max_price = models.BigIntegerField(help_text="The highest buy price, minor units per kWh.")
    min_price = models.BigIntegerField(help_text="The lowest sell price, minor units per kWh.")
    height = models.BigIntegerField(help_text="The block that gave (or last changed) it.")
    granted_at = models.DateTimeField()
    revoked_height = models.BigIntegerField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["household", "retailer", "carrier"]
        constraints = [
            models.UniqueConstraint(
                fields=["household", "retailer", "carrier"], name="one_grant_a_retailer_and_carrier"
            )
        ]

    def __str__(self) -> str:
        return f"{self.household} grants {self.retailer} ({self.carrier})"

    @property
    def active(self) -> bool:
        return self.revoked_height is None


class RetailOrder(models.Model):
    """An order a retailer placed for a household (``market.order_placed`` with ``placed_by``):
    the market's order row is the household's; this says who placed it."""

    order = models.OneToOneField(
        "market.Order", on_delete=models.CASCADE, primary_key=True, related_name="retail"
    )
    placed_by = models.CharField(max_length=50, db_index=True, help_text="The retailer.")
    household = models.CharField(max_length=50, db_index=True)
    carrier = models.CharField(max_length=16, default=ELECTRICITY)

    class Meta:
        ordering = ["-order__height", "order_id"]

    def __str__(self) -> str:
        return f"{self.order_id} placed by {self.placed_by}"
