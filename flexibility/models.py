"""The read models of requirements, answers, enrolments, flexibility contracts and stores:
projections of committed blocks (``flexibility.projection``).

Nothing here is the truth: the ledger's state and blocks are (``market.chain.flexibility``,
``market.chain.storage``). Every row is written by the projection from committed blocks and is
rebuilt from a validator's store (``manage.py rebuild_read_models``). Energy in Wh of the
carrier's unit, money in integer minor units, prices in minor units per kWh; times are block
times.
"""

from __future__ import annotations

from django.db import models

from market.models import Carrier


def _carrier() -> models.CharField:
    return models.CharField(max_length=16, choices=Carrier.choices, default=Carrier.ELECTRICITY)


class Direction(models.TextChoices):
    IMPORT = "import", "Reduce import"
    EXPORT = "export", "Reduce export"


class RequirementStatus(models.TextChoices):
    OPEN = "open", "Open"
    FILLED = "filled", "Filled"
    EXPIRED = "expired", "Expired"


class AnswerStatus(models.TextChoices):
    OPEN = "open", "Open"
    TAKEN = "taken", "Taken"
    EXPIRED = "expired", "Expired"


class Enrolment(models.Model):
    """A household enrolled to answer requirements in a carrier (``market.flexibility_enrolled``):
    from then on its settled slots make its baseline (``market/baseline/<carrier>/<address>``)."""

    address = models.CharField(max_length=50, db_index=True)
    carrier = _carrier()
    height = models.BigIntegerField(help_text="The block that enrolled it.")
    enrolled_at = models.DateTimeField()

    class Meta:
        ordering = ["address", "carrier"]
        constraints = [
            models.UniqueConstraint(fields=["address", "carrier"], name="one_enrolment_a_carrier")
        ]

    def __str__(self) -> str:
        return f"{self.address} enrolled in {self.carrier}"


class Requirement(models.Model):
    """A network operator's requirement, from the block that posted it to the one that closed it
    (``market.requirement_posted``, ``market.requirement_closed``): "reduce ``direction`` on
    ``feeder`` in ``slot`` by up to ``energy_wh``, paying up to ``price`` per kWh"."""

    id = models.CharField(max_length=64, primary_key=True, help_text="The posting transaction.")
    owner = models.CharField(max_length=50, db_index=True, help_text="The grid operator.")
    slot = models.DateTimeField(db_index=True, help_text="Start of the delivery slot (UTC).")
    carrier = _carrier()
    feeder = models.CharField(max_length=64, db_index=True, help_text="Feeder or heat segment.")
    direction = models.CharField(max_length=6, choices=Direction.choices)
    energy_wh = models.BigIntegerField()
    price = models.BigIntegerField(help_text="At most this, minor units per kWh.")
    remaining_wh = models.BigIntegerField(help_text="Not yet accepted.")
    locked = models.BigIntegerField(default=0, help_text="The budget the remainder still locks.")
    status = models.CharField(
        max_length=7, choices=RequirementStatus.choices, default=RequirementStatus.OPEN
    )
    height = models.BigIntegerField()
    posted_at = models.DateTimeField()
    closed_height = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["slot", "height", "id"]
        indexes = [models.Index(fields=["status", "carrier", "feeder", "slot"])]

    def __str__(self) -> str:
        return f"reduce {self.direction} on {self.feeder} by {self.energy_wh} Wh at {self.price}"

    @property
    def accepted_wh(self) -> int:
        return self.energy_wh - self.remaining_wh


class Answer(models.Model):
    """A household's answer to a requirement: a reduction it offers at its price
    (``market.answer_posted``, ``market.answer_closed``), with its baseline for the
    requirement's flow in the slot when it answered (read from the state after that block)."""

    id = models.CharField(max_length=64, primary_key=True, help_text="The answering transaction.")
    requirement = models.ForeignKey(Requirement, on_delete=models.CASCADE, related_name="answers")
    owner = models.CharField(max_length=50, db_index=True)
    slot = models.DateTimeField(db_index=True)
    carrier = _carrier()
    energy_wh = models.BigIntegerField()
    price = models.BigIntegerField()
    remaining_wh = models.BigIntegerField()
    locked = models.BigIntegerField(default=0, help_text="The deposit the remainder still locks.")
    baseline_wh = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=7, choices=AnswerStatus.choices, default=AnswerStatus.OPEN)
    height = models.BigIntegerField()
    posted_at = models.DateTimeField()
    closed_height = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["height", "id"]

    def __str__(self) -> str:
        return f"answer of {self.energy_wh} Wh at {self.price}/kWh"


class FlexibilityContract(models.Model):
    """What a contract of kind ``flexibility`` adds to the market's contract row: the requirement
    it answers, the flow it reduces, the feeder, the household's baseline when accepted; and,
    once its slot settled (``market.contract_settled``), what the meters measured against it."""

    contract = models.OneToOneField(
        "market.Contract", on_delete=models.CASCADE, primary_key=True, related_name="flexibility"
    )
    requirement = models.CharField(max_length=64, db_index=True)
    answer = models.CharField(max_length=64, help_text="The answer it accepted.")
    carrier = _carrier()
    direction = models.CharField(max_length=6, choices=Direction.choices)
    feeder = models.CharField(max_length=64)
    baseline_wh = models.BigIntegerField()
    measured_wh = models.BigIntegerField(null=True, blank=True)
    delivered_wh = models.BigIntegerField(null=True, blank=True)
    paid = models.BigIntegerField(null=True, blank=True)
    penalty = models.BigIntegerField(null=True, blank=True)
    settled_height = models.BigIntegerField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-contract__slot", "contract__index"]

    def __str__(self) -> str:
        return f"flexibility {self.contract_id}"

    @property
    def settled(self) -> bool:
        return self.settled_height is not None


class Store(models.Model):
    """A household's store (``market/storage/<carrier>/<address>``): registered by the grid
    operator (``market.storage_registered``), its state of charge moved by each settled slot
    (``market.storage_charged``) and its commitments by its orders and offers (from the state
    after each block)."""

    address = models.CharField(max_length=50, db_index=True)
    carrier = _carrier()
    meter = models.CharField(max_length=64)
    capacity_wh = models.BigIntegerField()
    soc_wh = models.BigIntegerField(help_text="State of charge, as of soc_slot.")
    soc_slot = models.DateTimeField(
        null=True, blank=True, help_text="The settled slot it is as of; null: as registered."
    )
    sell_wh = models.BigIntegerField(default=0, help_text="Committed to sell, unsettled slots.")
    buy_wh = models.BigIntegerField(default=0, help_text="Committed to buy, unsettled slots.")
    registered_height = models.BigIntegerField()
    registered_at = models.DateTimeField()

    class Meta:
        ordering = ["address", "carrier"]
        constraints = [
            models.UniqueConstraint(fields=["address", "carrier"], name="one_store_a_carrier")
        ]

    def __str__(self) -> str:
        return f"store of {self.address} ({self.carrier})"

    @property
    def can_sell_wh(self) -> int:
        """What it may still offer: its charge less what it committed to sell."""
        return max(0, self.soc_wh - self.sell_wh)

    @property
    def can_buy_wh(self) -> int:
        """What it may still take: the room left less what it committed to buy."""
        return max(0, self.capacity_wh - self.soc_wh - self.buy_wh)


class StoreCharge(models.Model):
    """How a settled slot moved a store's state of charge (``market.storage_charged``):
    append-only."""

    address = models.CharField(max_length=50, db_index=True)
    carrier = _carrier()
    slot = models.DateTimeField()
    soc_wh = models.BigIntegerField(help_text="After the slot.")
    import_wh = models.BigIntegerField(help_text="What the store's meter took in the slot.")
    export_wh = models.BigIntegerField(help_text="What it gave.")
    height = models.BigIntegerField()

    class Meta:
        ordering = ["-slot"]

    def __str__(self) -> str:
        return f"{self.address} at {self.soc_wh} Wh after {self.slot:%Y-%m-%d %H:%M}"
