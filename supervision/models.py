"""Supervision's read models: projections of committed blocks (``supervision.projection``).

The truth is the ledger's state and blocks (``supervision.chain.grid``,
``supervision.chain.acts``); every row here but a notification's read flag and the consoles'
acknowledgements of alerts (site data, never on the ledger) is rebuilt from them
(``manage.py rebuild_read_models``). Energy in Wh, limits in W, times are block times.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from market.models import carrier_field


class GridState(models.TextChoices):
    NORMAL = "normal", "Normal"
    HIGH_LOAD = "high_load", "High load"
    UNSTABLE = "unstable", "Unstable"


class Feeder(models.Model):
    """A feeder the grid operator published (``grid/topology/<name>``), with its declared state
    (``grid/state/feeder/<name>``); or, with ``carrier`` heat, a segment of the heating network
    (its limits in W thermal). Feeders and segments share one namespace of names."""

    name = models.CharField(max_length=64, primary_key=True)
    carrier = carrier_field()
    export_limit_w = models.BigIntegerField()
    import_limit_w = models.BigIntegerField()
    published_height = models.BigIntegerField()
    published_at = models.DateTimeField()
    state = models.CharField(max_length=9, choices=GridState.choices, default="normal")
    state_reason = models.TextField(blank=True)
    state_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return str(self.name)


class GridDeclaration(models.Model):
    """The grid operator's declaration for the whole grid (``grid/state/grid``); absent: normal.
    At most one row (``scope`` = ``grid``)."""

    scope = models.CharField(max_length=8, primary_key=True, default="grid")
    state = models.CharField(max_length=9, choices=GridState.choices)
    reason = models.TextField()
    by = models.CharField(max_length=50)
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"grid {self.state}"


class FeederLoad(models.Model):
    """What a slot's contracts load a feeder with (``grid/load/<slot>/<feeder>``)."""

    feeder = models.CharField(max_length=64)
    slot = models.DateTimeField()
    export_wh = models.BigIntegerField(default=0)
    import_wh = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["slot", "feeder"]
        constraints = [
            models.UniqueConstraint(fields=["feeder", "slot"], name="one_load_per_feeder_and_slot")
        ]

    def __str__(self) -> str:
        return f"{self.feeder} {self.slot:%Y-%m-%d %H:%M}"


class Suspension(models.Model):
    """A suspension in force (``supervision/suspended/...``): ``scope`` is ``market`` or
    ``feeder:<name>``. One with an end lapses by itself at ``until`` (the row stays until the
    block that ends it otherwise; readers compare ``until`` with the time)."""

    scope = models.CharField(max_length=72, primary_key=True)
    reason = models.TextField()
    by = models.CharField(max_length=50)
    until = models.DateTimeField(null=True, blank=True)
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.scope} suspended"


class Restriction(models.Model):
    """A restricted account (``supervision/restricted/<address>``)."""

    address = models.CharField(max_length=50, primary_key=True)
    reason = models.TextField()
    by = models.CharField(max_length=50)
    tx = models.CharField(max_length=64)
    height = models.BigIntegerField()
    since = models.DateTimeField()
    cancelled_orders = models.JSONField(default=list)
    cancelled_offers = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{self.address} restricted"


class SupervisoryAct(models.Model):
    """The audit log: every supervisory transaction that succeeded (``supervision.*``, and the
    grid operator's ``grid.feeder.publish`` and ``grid.state.declare``), from the blocks."""

    tx = models.CharField(max_length=64, primary_key=True)
    type = models.CharField(max_length=64, db_index=True)
    actor = models.CharField(max_length=50, db_index=True)
    actor_role = models.CharField(max_length=16)
    reason = models.TextField(blank=True)
    contract = models.CharField(max_length=40, blank=True, db_index=True)
    address = models.CharField(max_length=50, blank=True, db_index=True)
    scope = models.CharField(max_length=72, blank=True)
    payload = models.JSONField()
    affected = models.JSONField(
        default=list, help_text="Household addresses whose orders or contracts it touched."
    )
    height = models.BigIntegerField(db_index=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-height", "tx"]

    def __str__(self) -> str:
        return f"{self.type} at height {self.height}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Waiting for review"
    CLEARED = "cleared", "Cleared"
    VETOED = "vetoed", "Vetoed"
    CURTAILED = "curtailed", "Curtailed"


class ReviewItem(models.Model):
    """A contract that tripped a review rule (``supervision.review``), and what became of it."""

    contract = models.OneToOneField(
        "market.Contract", on_delete=models.CASCADE, primary_key=True, related_name="review"
    )
    rules = models.JSONField(help_text='[{"rule": "size"|"price"|"defaults"|"feeder_load", ...}]')
    status = models.CharField(
        max_length=9, choices=ReviewStatus.choices, default="pending", db_index=True
    )
    decided_by = models.CharField(max_length=64, blank=True, help_text="The act's transaction.")
    flagged_height = models.BigIntegerField()

    class Meta:
        ordering = ["flagged_height", "contract"]

    def __str__(self) -> str:
        return f"review of {self.contract_id}: {self.status}"


class Notification(models.Model):
    """A household is told of a supervisory act that touched its orders or contracts (made by
    the projection), or that the grid operator approved it (made when the approval is sent,
    ``act`` its feeder assignment). A rebuild keeps the rows (and so whether they were read)."""

    address = models.CharField(max_length=50, db_index=True)
    act = models.CharField(max_length=64, help_text="The act's transaction.")
    message = models.TextField()
    read = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["address", "act"], name="one_notification_per_act")
        ]

    def __str__(self) -> str:
        return f"to {self.address}: {self.message[:40]}"


class Desk(models.TextChoices):
    """Who an alert is acknowledged for: the control room behind one console. An administrator,
    who opens both, acknowledges for the desk of the console it acts on."""

    OPERATOR = "operator", "Grid operator console"
    REGULATOR = "regulator", "Regulator console"


class AlertAcknowledgement(models.Model):
    """Someone at a desk acknowledged an alert as it stood (``supervision.selectors.Alert``).

    Site data, not a read model: alerts are the site's view of the read models, and
    acknowledging one changes nothing on the ledger. Append-only: a second acknowledgement
    (after the alert re-opened) is a new row, the latest one of a desk and key counts. What it
    covers is what the alert was (``fingerprint``, ``slots``, ``level``, ``last_slot``); see
    ``supervision.selectors.alert_inbox`` for when the alert re-opens.
    """

    desk = models.CharField(max_length=9, choices=Desk.choices)
    key = models.CharField(max_length=128, help_text="The alert's key: seller_share:<address>...")
    fingerprint = models.CharField(max_length=128)
    slots = models.PositiveIntegerField(default=0, help_text="How many slots it named; 0: none.")
    level = models.PositiveIntegerField(default=0, help_text="Its peak, in 10 % steps.")
    last_slot = models.DateTimeField(null=True, blank=True, help_text="The latest slot it named.")
    text = models.TextField(help_text="What the alert said when it was acknowledged.")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["desk", "key", "-at"], name="ack_by_desk_key_at")]

    def __str__(self) -> str:
        return f"{self.key} acknowledged at the {self.desk} desk"
