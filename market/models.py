"""The market's read models: projections of committed blocks (``market.projection``).

Nothing here is the truth: the ledger's state is. Every row is written by the projection from
committed blocks and can be rebuilt from a validator's store (``manage.py rebuild_read_models``).
Money in integer minor units, prices in minor units per kWh, energy in Wh; times are block times.
"""

from __future__ import annotations

from django.db import models

from market.chain.options import ELECTRICITY, HEAT


class Carrier(models.TextChoices):
    """The carriers the market can trade (``market.chain.options.UNITS``, a test holds them
    equal). Each carrier's energy is in Wh of its own unit: rows of different carriers are never
    added up (money may be)."""

    ELECTRICITY = ELECTRICITY, "Electricity"
    HEAT = HEAT, "Heat"


def contract_carrier(contract_id: str) -> str:
    """The carrier of a contract from its id (``market.chain.schema.contract_id``):
    ``heat-<slot ms>-<n>`` is heat's, ``<slot ms>-<n>`` electricity's."""
    head = contract_id.split("-", 1)[0]
    return head if head in Carrier.values else ELECTRICITY


def carrier_field() -> models.CharField:
    """The ``carrier`` of a row that holds energy: electricity unless its event says another."""
    return models.CharField(
        max_length=16, choices=Carrier.choices, default=Carrier.ELECTRICITY, db_index=True
    )


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderStatus(models.TextChoices):
    OPEN = "open", "Open"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class OfferStatus(models.TextChoices):
    OPEN = "open", "Open"
    TAKEN = "taken", "Taken"
    WITHDRAWN = "withdrawn", "Withdrawn"
    EXPIRED = "expired", "Expired"


class Order(models.Model):
    """A limit order, from the block that placed it to the one that closed it."""

    id = models.CharField(max_length=64, primary_key=True, help_text="The placing transaction.")
    owner = models.CharField(max_length=50, db_index=True)
    slot = models.DateTimeField(db_index=True, help_text="Start of the delivery slot (UTC).")
    side = models.CharField(max_length=4, choices=Side.choices)
    carrier = carrier_field()
    price = models.BigIntegerField(help_text="Minor units per kWh (of the carrier's unit).")
    energy_wh = models.BigIntegerField()
    remaining_wh = models.BigIntegerField()
    locked = models.BigIntegerField(default=0, help_text="Margin still locked, minor units.")
    status = models.CharField(max_length=9, choices=OrderStatus.choices, db_index=True)
    height = models.BigIntegerField(help_text="The block that placed it.")
    placed_at = models.DateTimeField()
    closed_height = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-height", "id"]
        indexes = [models.Index(fields=["slot", "side", "status", "price"])]

    def __str__(self) -> str:
        return f"{self.side} {self.energy_wh} Wh at {self.price}/kWh for {self.slot:%Y-%m-%d %H:%M}"

    @property
    def filled_wh(self) -> int:
        return self.energy_wh - self.remaining_wh


class Offer(models.Model):
    """A seller's bilateral offer, to one buyer or (``buyer`` empty) to anyone."""

    id = models.CharField(max_length=64, primary_key=True, help_text="The posting transaction.")
    owner = models.CharField(max_length=50, db_index=True)
    buyer = models.CharField(max_length=50, blank=True, db_index=True)
    slot = models.DateTimeField(db_index=True)
    carrier = carrier_field()
    price = models.BigIntegerField()
    energy_wh = models.BigIntegerField()
    remaining_wh = models.BigIntegerField()
    locked = models.BigIntegerField(default=0)
    status = models.CharField(max_length=9, choices=OfferStatus.choices, db_index=True)
    height = models.BigIntegerField()
    posted_at = models.DateTimeField()
    closed_height = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["slot", "price", "height", "id"]

    def __str__(self) -> str:
        return f"offer of {self.energy_wh} Wh at {self.price}/kWh for {self.slot:%Y-%m-%d %H:%M}"


class Contract(models.Model):
    """A match: energy for a slot at a price, between a seller and a buyer."""

    id = models.CharField(
        max_length=40, primary_key=True, help_text="<slot ms>-<n>; heat's heat-<slot ms>-<n>"
    )
    kind = models.CharField(max_length=16)  # order, auction, offer, flexibility
    slot = models.DateTimeField(db_index=True)
    carrier = carrier_field()
    index = models.PositiveIntegerField(help_text="Time priority within the slot.")
    seller = models.CharField(max_length=50, db_index=True)
    buyer = models.CharField(max_length=50, db_index=True)
    energy_wh = models.BigIntegerField()
    price = models.BigIntegerField()
    network_fee = models.BigIntegerField(help_text="Minor units per kWh.")
    penalty_bps = models.BigIntegerField()
    escrow = models.BigIntegerField()
    deposit = models.BigIntegerField()
    seller_tx = models.CharField(max_length=64)
    buyer_tx = models.CharField(max_length=64)
    tx = models.CharField(max_length=64, help_text="The transaction that made the match.")
    height = models.BigIntegerField()
    made_at = models.DateTimeField()
    grid = models.JSONField(null=True, blank=True, help_text="Set when the grid check tailored it.")
    vetoed = models.BooleanField(
        default=False, help_text="A regulator vetoed it: it never settles."
    )
    acts = models.JSONField(
        default=list,
        blank=True,
        help_text="Supervisory acts on it, in order (supervision.chain.acts).",
    )

    class Meta:
        ordering = ["-height", "slot", "index"]

    def __str__(self) -> str:
        return f"contract {self.id}: {self.energy_wh} Wh at {self.price}/kWh"


class MarketAccount(models.Model):
    """An account's margins: what of its balance is locked (orders, offers, contracts); and
    what it owes the supplier of last resort (``market/arrears/<address>``)."""

    address = models.CharField(max_length=50, primary_key=True)
    locked = models.BigIntegerField(default=0)
    arrears = models.BigIntegerField(default=0)
    feeder = models.CharField(max_length=64, blank=True)
    heat_segment = models.CharField(
        max_length=64, blank=True, help_text="Its segment of the heating network, if assigned."
    )

    def __str__(self) -> str:
        return f"{self.address}: {self.locked} locked"


class RuleKind(models.TextChoices):
    SELL_SURPLUS = "sell_surplus", "Sell my surplus above"
    BUY_UP_TO = "buy_up_to", "Buy what I need, up to"


class StandingRule(models.Model):
    """A household's standing rule, turned into orders when its meter readings meet it
    (``market.rules``). Site data, not ledger state: the orders it makes are ordinary signed
    orders, and each remembers which rule made it (``RuleOrder``)."""

    owner = models.ForeignKey(
        "accounts.User", on_delete=models.CASCADE, related_name="standing_rules"
    )
    kind = models.CharField(max_length=12, choices=RuleKind.choices)
    energy_wh = models.BigIntegerField(
        help_text="Sell: what is kept, per slot, before selling the rest. Buy: the most per slot."
    )
    price = models.BigIntegerField(
        help_text="Minor units per kWh: the least to sell at, or the most to buy at."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.energy_wh} Wh at {self.price}/kWh"


class RuleOrder(models.Model):
    """An order a standing rule placed: at most one per rule and slot, with why (the reading it
    saw, the forecast for the slot it made of it, the rule's threshold and price)."""

    rule = models.ForeignKey(StandingRule, on_delete=models.CASCADE, related_name="orders")
    order_id = models.CharField(max_length=64, unique=True, help_text="The order's transaction id.")
    slot = models.DateTimeField()
    energy_wh = models.BigIntegerField()
    reading_start = models.DateTimeField(null=True)
    reading_s = models.PositiveIntegerField(default=0, help_text="The reading's interval.")
    reading_import_wh = models.BigIntegerField(default=0)
    reading_export_wh = models.BigIntegerField(default=0)
    forecast_wh = models.BigIntegerField(
        default=0, help_text="The slot's forecast surplus (sell) or need (buy)."
    )
    profile_days = models.PositiveSmallIntegerField(
        default=0,
        help_text="0: the forecast is the reading scaled to the slot; N: the household's own "
        "average for this slot of the day over N recent days.",
    )
    threshold_wh = models.BigIntegerField(default=0, help_text="The rule's N at the time.")
    price = models.BigIntegerField(default=0, help_text="The rule's price at the time.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "slot"], name="one_order_per_rule_and_slot")
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id} -> {self.order_id[:12]}"


class Tariff(models.Model):
    """A tariff of the supplier of last resort (``market.tariff_published``) for one carrier: in
    force from ``from_slot`` until the next one's of the same carrier. ``bands``: its
    time-of-use bands, as on the ledger, in minor units per kWh of the carrier's unit."""

    carrier = carrier_field()
    from_slot = models.DateTimeField()
    bands = models.JSONField()
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["-from_slot", "carrier"]
        constraints = [
            models.UniqueConstraint(fields=["carrier", "from_slot"], name="one_tariff_a_slot")
        ]

    def __str__(self) -> str:
        return f"{self.carrier} tariff from {self.from_slot:%Y-%m-%d %H:%M}"


class GridSettlement(models.Model):
    """One household's residual of one carrier with the supplier of last resort in a settled
    slot (``market.residual_settled``, ``market.chain.residual``): its metered energy of the
    carrier beyond its delivered P2P contracts of the carrier, bought at retail or sold at
    feed-in. Energy in Wh of the carrier's unit, prices in minor units per kWh of it (the
    carrier's tariff band's), money in minor units."""

    slot = models.DateTimeField(db_index=True)
    account = models.CharField(max_length=50, db_index=True)
    carrier = carrier_field()
    import_wh = models.BigIntegerField(help_text="Metered, the household's meters of the carrier.")
    export_wh = models.BigIntegerField()
    p2p_in_wh = models.BigIntegerField(help_text="Delivered to it by its contracts of the slot.")
    p2p_out_wh = models.BigIntegerField(help_text="Delivered by it through its contracts.")
    grid_import_wh = models.BigIntegerField()
    grid_export_wh = models.BigIntegerField()
    retail = models.BigIntegerField()
    feed_in = models.BigIntegerField()
    network_fee = models.BigIntegerField()
    import_cost = models.BigIntegerField()
    import_fee = models.BigIntegerField()
    feed_in_paid = models.BigIntegerField()
    arrears_paid = models.BigIntegerField()
    arrears_added = models.BigIntegerField()
    arrears = models.BigIntegerField(help_text="Owed to the supplier after the slot.")
    height = models.BigIntegerField()
    settled_at = models.DateTimeField()

    class Meta:
        ordering = ["-slot", "account"]
        constraints = [
            models.UniqueConstraint(
                fields=["slot", "account", "carrier"], name="one_residual_a_slot_and_carrier"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account} with the supplier at {self.slot:%Y-%m-%d %H:%M}"


class ArrearsPayment(models.Model):
    """Arrears a top-up paid to the supplier first (``market.arrears_paid``)."""

    account = models.CharField(max_length=50, db_index=True)
    paid = models.BigIntegerField()
    arrears = models.BigIntegerField(help_text="Still owed after it.")
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    paid_at = models.DateTimeField()

    class Meta:
        ordering = ["-height"]

    def __str__(self) -> str:
        return f"{self.account} paid {self.paid} of arrears"


class SlotSettlement(models.Model):
    """A settled slot (``market.slot_settled``): totals over its electricity contracts, and in
    ``carriers`` each other carrier's own totals (``{"heat": {"contracts", "energy_wh", ...}}``,
    only for a carrier whose contracts settled), never added to electricity's."""

    slot = models.DateTimeField(primary_key=True)
    contracts = models.PositiveIntegerField()
    energy_wh = models.BigIntegerField()
    delivered_wh = models.BigIntegerField()
    paid = models.BigIntegerField()
    fees = models.BigIntegerField()
    penalties = models.BigIntegerField()
    shortfalls = models.PositiveIntegerField()
    residual = models.JSONField(
        null=True, blank=True, help_text="Totals with the supplier; null: no tariff in force."
    )
    carriers = models.JSONField(
        default=dict, blank=True, help_text="Other carriers' totals, by carrier."
    )
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    settled_at = models.DateTimeField()

    class Meta:
        ordering = ["-slot"]

    def __str__(self) -> str:
        return f"settlement of {self.slot:%Y-%m-%d %H:%M}"


class SettlementLine(models.Model):
    """How one contract settled (``market/settlement/<slot>/<n>``): the lines of the parties'
    statements. Money in minor units: the buyer paid ``paid + fee`` and received ``penalty``;
    the seller received ``paid`` and paid ``penalty``; the rest of the margins was released."""

    contract = models.OneToOneField(Contract, on_delete=models.CASCADE, related_name="settlement")
    slot = models.DateTimeField(db_index=True)
    carrier = carrier_field()
    seller = models.CharField(max_length=50, db_index=True)
    buyer = models.CharField(max_length=50, db_index=True)
    energy_wh = models.BigIntegerField()
    export_wh = models.BigIntegerField(help_text="The seller's measured export in the slot.")
    delivered_wh = models.BigIntegerField()
    paid = models.BigIntegerField()
    fee = models.BigIntegerField()
    penalty = models.BigIntegerField()
    escrow_released = models.BigIntegerField()
    deposit_released = models.BigIntegerField()
    height = models.BigIntegerField()
    settled_at = models.DateTimeField()

    class Meta:
        ordering = ["-slot", "contract_id"]

    def __str__(self) -> str:
        return f"{self.contract_id}: {self.delivered_wh} of {self.energy_wh} Wh"
