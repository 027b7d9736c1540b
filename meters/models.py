"""Meters, their tokens, the readings they send (append-only) and each batch's signed bytes."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from gridplatform.accounts.models import User
from meters.chain.schema import HEAT, meter_carrier

# A meter id is a lowercase slug: it appears in URLs and, relayed, in the ledger's state keys.
METER_ID_REGEX = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A feeder is named as the ledger names it (``grid.feeder.assign``): 1-64 of [a-z0-9._-],
# starting with a letter or a digit.
FEEDER_REGEX = r"^[a-z0-9][a-z0-9._-]{0,63}$"
PUBLIC_KEY_REGEX = r"^[0-9a-f]{64}$"
# The intervals meters measure in (1, 5, 15 minutes): each divides the market's 15-minute slot
# (as the ledger requires, meters.chain.metering), so an interval aligned to the epoch lies in one
# slot.
INTERVALS = (60, 300, 900)
DEFAULT_INTERVAL_S = 900


class MeterKind(models.TextChoices):
    PV = "pv", "PV generation"
    CONSUMPTION = "consumption", "Consumption"
    BIDIRECTIONAL = "bidirectional", "Bidirectional (import and export)"
    BATTERY = "battery", "Battery"
    HEAT = "heat", "Heat (heating network)"
    THERMAL_STORAGE = "thermal_storage", "Thermal storage"


def kinds_of(carrier: str) -> list[str]:
    """The meter kinds that measure ``carrier`` (``meters.chain.schema.meter_carrier``)."""
    return [kind for kind in MeterKind.values if meter_carrier(kind) == carrier]


class Quality(models.TextChoices):
    ACTUAL = "actual", "Actual"
    ESTIMATED = "estimated", "Estimated"
    MISSING = "missing", "Missing"


class Meter(models.Model):
    """A household's meter: a device that signs its readings with its own Ed25519 key.

    Registered by the household itself or by the grid operator (``registered_by``). The device
    authenticates with a token (``MeterToken``) and signs each batch with the private key of
    ``public_key``. An inactive meter cannot send readings.
    """

    meter_id = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="meters")
    kind = models.CharField(max_length=20, choices=MeterKind.choices)
    public_key = models.CharField(max_length=64, unique=True)
    feeder = models.CharField(max_length=64)
    interval_s = models.PositiveIntegerField(default=DEFAULT_INTERVAL_S)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    registered_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["meter_id"]
        constraints = [
            models.CheckConstraint(
                name="meter_id_is_a_slug", condition=models.Q(meter_id__regex=METER_ID_REGEX)
            ),
            models.CheckConstraint(
                name="meter_public_key_is_64_hex",
                condition=models.Q(public_key__regex=PUBLIC_KEY_REGEX),
            ),
            models.CheckConstraint(
                name="meter_feeder_is_a_name", condition=models.Q(feeder__regex=FEEDER_REGEX)
            ),
            models.CheckConstraint(
                name="meter_kind_is_known", condition=models.Q(kind__in=MeterKind.values)
            ),
            models.CheckConstraint(
                name="meter_interval_is_known", condition=models.Q(interval_s__in=INTERVALS)
            ),
        ]

    def __str__(self) -> str:
        return self.meter_id

    @property
    def carrier(self) -> str:
        """What it measures: ``electricity`` or ``heat`` (``meters.chain.schema.meter_carrier``);
        its readings settle that carrier's contracts only."""
        return meter_carrier(self.kind)

    @property
    def unit(self) -> str:
        """The unit of its readings' energy: the market's unit of its carrier
        (``market.chain.options.UNITS``, which the meters sit below; a test holds them equal)."""
        return "kWh thermal" if self.carrier == HEAT else "kWh"


class MeterToken(models.Model):
    """The token a meter authenticates with (``Authorization: Meter <token>``).

    As for account API tokens, only the SHA-256 digest is stored; the token is shown once, when
    the meter is registered or its token rotated. A meter has at most one active token; revoked
    ones stay as a record.
    """

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="tokens")
    prefix = models.CharField(max_length=8)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="meter_token_digest_is_64_hex",
                condition=models.Q(digest__regex=r"^[0-9a-f]{64}$"),
            ),
            models.UniqueConstraint(
                fields=["meter"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_token_per_meter",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id}: {self.prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ReadingBatch(models.Model):
    """One accepted request of readings, kept as the meter signed it.

    ``body`` holds the request body byte for byte, ``signed_t`` and ``signature`` the
    ``X-Meter-Signature`` header's parts: with the meter's public key anyone can check the
    signature again (``meters.signing.check``), which is what the validators do when the batch
    is relayed to the ledger (``meters.services.batch_relay``). ``accepted`` readings of it were
    new and are stored with it; ``duplicates`` had been stored before.
    """

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="batches")
    received_at = models.DateTimeField(default=timezone.now)
    signed_t = models.BigIntegerField(help_text="The signature's t: Unix seconds.")
    signature = models.CharField(max_length=128)
    body = models.BinaryField()
    accepted = models.PositiveIntegerField()
    duplicates = models.PositiveIntegerField()
    relay_tx = models.CharField(
        max_length=64,
        blank=True,
        help_text="The ledger transaction that relayed it (meters.relay).",
    )

    class Meta:
        verbose_name_plural = "reading batches"
        constraints = [
            models.CheckConstraint(
                name="reading_batch_signature_is_128_hex",
                condition=models.Q(signature__regex=r"^[0-9a-f]{128}$"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} batch {self.pk}"


class Reading(models.Model):
    """One interval's energy at one meter. Append-only: never updated or deleted.

    A reading sent again with the same values is a duplicate; with other values, a conflict
    that is refused. Only ``meters.services.readings_ingest`` writes readings (in bulk).
    """

    # The unique index on (meter, start) is also the index charts read by (a meter's readings
    # in a time range, ordered by start), so neither foreign key gets an index of its own:
    # every one would slow down inserts, which is where readings spend their time. Nor does
    # the database check them (db_constraint=False): PostgreSQL checks a foreign key with a
    # trigger per row, two per reading, which tripled the cost of storing a batch
    # (docs/benchmarks.md). Both always hold: readings are written only by readings_ingest, in
    # the transaction that creates their batch, for the meter it has locked; meters and
    # batches are never deleted (PROTECT keeps the ORM from trying).
    meter = models.ForeignKey(
        Meter,
        on_delete=models.PROTECT,
        related_name="readings",
        db_index=False,
        db_constraint=False,
    )
    batch = models.ForeignKey(
        ReadingBatch,
        on_delete=models.PROTECT,
        related_name="readings",
        db_index=False,
        db_constraint=False,
    )
    start = models.DateTimeField()
    duration_s = models.PositiveIntegerField()
    import_wh = models.BigIntegerField()
    export_wh = models.BigIntegerField()
    quality = models.CharField(max_length=10, choices=Quality.choices)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meter", "start"], name="one_reading_per_interval"),
            models.CheckConstraint(
                name="reading_energy_not_negative",
                condition=models.Q(import_wh__gte=0, export_wh__gte=0),
            ),
            models.CheckConstraint(
                name="reading_duration_positive", condition=models.Q(duration_s__gt=0)
            ),
            models.CheckConstraint(
                name="reading_quality_is_known", condition=models.Q(quality__in=Quality.values)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.start:%Y-%m-%dT%H:%M:%SZ}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Readings are append-only: a stored reading is never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("Readings are append-only: a stored reading is never deleted.")
