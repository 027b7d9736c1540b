"""Writes of meters: registration, tokens, and reading ingestion. One outermost transaction each.

Every error is a ``DomainError`` with a stable code (listed in docs/meters.md), which the API's
exception handler answers as ``{"code", "message", "detail"?}`` and the pages show as a message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from gridplatform.accounts.models import TRADING_ROLES, Role, User
from gridplatform.errors import DomainError
from ledger import identity
from meters import readings as batch_rules
from meters import selectors, signing
from meters.errors import MESSAGES
from meters.models import (
    FEEDER_REGEX,
    INTERVALS,
    METER_ID_REGEX,
    Meter,
    MeterKind,
    MeterToken,
    Reading,
    ReadingBatch,
)

log = logging.getLogger(__name__)

TOKEN_PREFIX_LENGTH = 8
# Meters one household may have (the ledger's limit too, meters.chain.metering).
MAX_METERS_PER_OWNER = 16
_METER_ID = re.compile(METER_ID_REGEX)
_FEEDER = re.compile(FEEDER_REGEX)


class MeterError(DomainError):
    """A refused meter action: ``code`` is one of ``MESSAGES``' keys."""


class Forbidden(MeterError):
    code = "forbidden"
    status_code = 403


class ReadingConflict(DomainError):
    """Readings for intervals already stored with other values; ``detail["conflicts"]``."""

    code = "conflict"
    status_code = 409


def _refuse(code: str) -> MeterError:
    return MeterError(MESSAGES[code], code=code)


def _token_digest(token: str) -> str:
    """SHA-256 of the token, 64 hex: 256 random bits need no salt or slow hash (as for
    ``gridplatform.accounts.services.api_token_digest``)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token_issue(meter: Meter) -> tuple[MeterToken, str]:
    token = secrets.token_urlsafe(32)
    row = MeterToken.objects.create(
        meter=meter, prefix=token[:TOKEN_PREFIX_LENGTH], digest=_token_digest(token)
    )
    return row, token


def _may_manage(*, by: User, owner: User) -> bool:
    """The household (or storage provider) itself, or the grid operator for any of them."""
    if by.role == Role.GRID_OPERATOR:
        return True
    return by.role in TRADING_ROLES and by.pk == owner.pk


# --- registration and tokens -----------------------------------------------------------------


def meter_register(
    *,
    by: User,
    owner: User,
    meter_id: str,
    kind: str,
    public_key: str,
    feeder: str | None = None,
    interval_s: int | None = None,
) -> tuple[Meter, str]:
    """Register ``owner``'s meter; return it and its token, shown this once.

    A household registers its own meters, the grid operator any household's; anyone else is
    refused (``Forbidden``). Refusals, in this order: ``forbidden``, ``not_household`` (the
    owner is not an active household), ``bad_meter_id``, ``bad_kind``, ``bad_public_key``,
    ``feeder_not_assigned`` (none named, and the grid operator has not assigned the owner's
    yet: the meter is on the owner's own feeder by default), ``bad_feeder``, ``bad_interval``,
    ``interval_not_in_slot`` (the interval does not divide
    the network's slot: the ledger would refuse the meter), ``meter_id_taken``,
    ``public_key_taken``,
    ``too_many_meters``. The owner's row is locked, so that two registrations at once cannot
    both pass the limit.
    """
    if not _may_manage(by=by, owner=owner):
        raise Forbidden(MESSAGES["forbidden"])
    if owner.role not in TRADING_ROLES or not owner.is_active:
        raise _refuse("not_household")
    if not isinstance(meter_id, str) or not _METER_ID.fullmatch(meter_id):
        raise _refuse("bad_meter_id")
    if kind not in MeterKind.values:
        raise _refuse("bad_kind")
    try:
        identity.public_key_bytes(public_key)
    except identity.InvalidPublicKey:
        raise _refuse("bad_public_key") from None
    if feeder is None:
        feeder = selectors.household_feeder(user=owner)
        if not feeder:
            raise _refuse("feeder_not_assigned")
    if not isinstance(feeder, str) or not _FEEDER.fullmatch(feeder):
        raise _refuse("bad_feeder")
    if interval_s is None:
        interval_s = selectors.default_interval_s()
    if type(interval_s) is not int or interval_s not in INTERVALS:
        raise _refuse("bad_interval")
    if interval_s not in selectors.intervals_allowed():
        raise _refuse("interval_not_in_slot")
    with transaction.atomic(durable=True):
        User.objects.select_for_update().filter(pk=owner.pk).values_list("pk").get()
        if Meter.objects.filter(meter_id=meter_id).exists():
            raise _refuse("meter_id_taken")
        if Meter.objects.filter(public_key=public_key).exists():
            raise _refuse("public_key_taken")
        if Meter.objects.filter(owner=owner).count() >= MAX_METERS_PER_OWNER:
            raise _refuse("too_many_meters")
        try:
            # A savepoint: two registrations of one id at once both pass the checks above,
            # and the unique index decides.
            with transaction.atomic():
                meter = Meter.objects.create(
                    meter_id=meter_id,
                    owner=owner,
                    kind=kind,
                    public_key=public_key,
                    feeder=feeder,
                    interval_s=interval_s,
                    registered_by=by,
                )
        except IntegrityError:
            raise _refuse("meter_id_taken") from None
        _, token = _token_issue(meter)
        transaction.on_commit(lambda: _meter_relay(meter))
    log.info("meter %s registered for user %s by user %s", meter_id, owner.pk, by.pk)
    return meter, token


def _meter_relay(meter: Meter) -> None:
    from meters import relay

    relay.meter_relay(meter)


def _locked_meter(*, by: User, meter_id: str) -> Meter:
    """The meter ``by`` may manage, locked. A meter ``by`` may not even see is a 404
    (``selectors.access_meter``); one it may see but not manage (a regulator's) ``Forbidden``.
    Call inside a transaction."""
    meter = selectors.access_meter(user=by, meter_id=meter_id)
    meter = Meter.objects.select_for_update().select_related("owner").get(pk=meter.pk)
    if not _may_manage(by=by, owner=meter.owner):
        raise Forbidden(MESSAGES["forbidden"])
    return meter


def _revoke_active(meter: Meter) -> MeterToken | None:
    """Revoke the meter's active token, if any. Precondition: the meter row is locked."""
    active = MeterToken.objects.filter(meter=meter, revoked_at__isnull=True).first()
    if active is not None:
        active.revoked_at = timezone.now()
        active.save(update_fields=["revoked_at"])
    return active


def meter_token_rotate(*, by: User, meter_id: str) -> tuple[MeterToken, str]:
    """Give the meter a new token (returned in plain, shown this once); the old one stops
    working at once. For the owner and the grid operator; 404 for anyone who may not see the
    meter, ``Forbidden`` for a regulator. The meter row is locked, so two rotations at once
    leave one active token."""
    with transaction.atomic(durable=True):
        meter = _locked_meter(by=by, meter_id=meter_id)
        _revoke_active(meter)
        row, token = _token_issue(meter)
    log.info("meter %s token rotated by user %s", meter_id, by.pk)
    return row, token


def meter_token_revoke(*, by: User, meter_id: str) -> MeterToken | None:
    """Revoke the meter's active token: the meter cannot send readings until its token is
    rotated. Idempotent: returns the token revoked now, or None when none was active. Same
    permissions as ``meter_token_rotate``."""
    with transaction.atomic(durable=True):
        meter = _locked_meter(by=by, meter_id=meter_id)
        revoked = _revoke_active(meter)
    log.info("meter %s token revoked by user %s", meter_id, by.pk)
    return revoked


class InvalidMeterToken(DomainError):
    code = "authentication_failed"
    status_code = 401


def meter_authenticate(*, meter_id: str, token: str) -> Meter:
    """The active meter ``meter_id`` whose active token is ``token``, or ``InvalidMeterToken``.

    An unknown, revoked or malformed token, another meter's token, an inactive meter and a
    deactivated owner all give the same error: a caller learns nothing about what exists.
    One query.
    """
    if not token or len(token) > 200 or not _METER_ID.fullmatch(meter_id):
        raise InvalidMeterToken("Invalid or revoked meter token.")
    row = (
        MeterToken.objects.select_related("meter__owner")
        .filter(
            digest=_token_digest(token),
            revoked_at__isnull=True,
            meter__meter_id=meter_id,
            meter__active=True,
            meter__owner__is_active=True,
        )
        .first()
    )
    if row is None:
        raise InvalidMeterToken("Invalid or revoked meter token.")
    meter: Meter = row.meter
    return meter


# --- ingestion -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ingestion:
    """What one request of readings did. ``batch`` is None when nothing in it was new."""

    batch: ReadingBatch | None
    accepted: int
    duplicates: int


def _iso(start_s: int) -> str:
    return datetime.fromtimestamp(start_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# On PostgreSQL the batch goes in and out as a few arrays, not as thousands of parameters or
# model instances: each statement below is one round trip whatever the batch's size, and costs
# a fifth of the ORM's time (bulk_create spends it preparing each value of each row). SQLite,
# for development and tests, takes the ORM's way; both are tested.
_PG_STORED = """
    SELECT extract(epoch FROM start)::bigint, duration_s, import_wh, export_wh, quality
    FROM meters_reading
    WHERE meter_id = %s AND start = ANY(SELECT to_timestamp(s) FROM unnest(%s::bigint[]) AS s)
"""
_PG_INSERT = """
    INSERT INTO meters_reading
        (meter_id, batch_id, start, duration_s, import_wh, export_wh, quality, received_at)
    SELECT %s, %s, to_timestamp(s), d, i, e, q, %s
    FROM unnest(%s::bigint[], %s::integer[], %s::bigint[], %s::bigint[], %s::text[])
        AS r(s, d, i, e, q)
"""


def _pg_array(values: list[int] | list[str]) -> str:
    """A PostgreSQL array literal of integers or of quality names (``[a-z]`` words, checked by
    ``meters.readings``), which the statement casts: the driver then quotes one string instead
    of adapting every element in Python, which cost a batch of 2,000 readings a quarter of its
    time."""
    return "{" + ",".join(map(str, values)) + "}"


def _stored(meter: Meter, starts: list[int]) -> list[tuple[int, int, int, int, str]]:
    """``(start_s, duration_s, import_wh, export_wh, quality)`` of the meter's readings stored
    at any of ``starts`` (Unix seconds): on the (meter, start) index. A meter that reports in
    time order sends intervals after the latest it has stored: one index probe shows it, and
    the batch's intervals are not looked up one by one."""
    latest = (
        Reading.objects.filter(meter=meter).order_by("-start").values_list("start", flat=True)
    ).first()
    if latest is None or int(latest.timestamp()) < min(starts):
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_PG_STORED, [meter.pk, _pg_array(starts)])
            return [tuple(row) for row in cursor.fetchall()]
    rows = Reading.objects.filter(
        meter=meter, start__in=[datetime.fromtimestamp(s, UTC) for s in starts]
    ).values_list("start", "duration_s", "import_wh", "export_wh", "quality")
    return [(int(start.timestamp()), *values) for start, *values in rows]


def _insert(batch: ReadingBatch, readings: list[batch_rules.ParsedReading]) -> None:
    """Insert ``readings`` as the batch's, in bulk (no query per reading)."""
    if connection.vendor == "postgresql":
        columns = [
            _pg_array([r.start_s for r in readings]),
            _pg_array([r.duration_s for r in readings]),
            _pg_array([r.import_wh for r in readings]),
            _pg_array([r.export_wh for r in readings]),
            _pg_array([r.quality for r in readings]),
        ]
        with connection.cursor() as cursor:
            cursor.execute(_PG_INSERT, [batch.meter_id, batch.pk, batch.received_at, *columns])
        return
    Reading.objects.bulk_create(
        [
            Reading(
                meter_id=batch.meter_id,
                batch_id=batch.pk,
                start=datetime.fromtimestamp(r.start_s, UTC),
                duration_s=r.duration_s,
                import_wh=r.import_wh,
                export_wh=r.export_wh,
                quality=r.quality,
                received_at=batch.received_at,
            )
            for r in readings
        ]
    )


def readings_ingest(
    *, meter: Meter, body: bytes, signature_header: str | None, now_s: int | None = None
) -> Ingestion:
    """Store the new readings of one signed request from ``meter``, all or nothing.

    Checks, in this order: the body's size (``batch_too_large``); the device's signature over
    the exact body (``bad_signature``, ``stale_signature``, ``meters.signing``); the batch's
    format and every reading (``malformed``, ``batch_too_large``, ``invalid_readings``,
    ``meters.readings``); then, under a lock on the meter row (so that two requests of one meter
    are stored one after the other), one query for the batch's intervals already stored:
    equal values are duplicates, other values a ``conflict`` (409, the intervals in
    ``detail``, nothing stored). The new readings and the batch's signed bytes are inserted in
    bulk; after the commit the batch is handed to the site's worker (``batch_relay``), so the
    request never waits for the ledger. A request with nothing new stores nothing, not even a
    batch row.

    Precondition: ``meter`` was authenticated for this request (``meter_authenticate``).
    ``now_s`` (Unix seconds) is for tests; it defaults to the clock.
    """
    if now_s is None:
        now_s = int(time.time())
    if len(body) > batch_rules.MAX_BODY_BYTES:
        raise batch_rules.BatchTooLarge(
            f"The body is larger than {batch_rules.MAX_BODY_BYTES} bytes."
        )
    signed_t, signature = signing.verify_header(
        meter.public_key, header=signature_header, body=body, now_s=now_s
    )
    parsed = batch_rules.parse_batch(body, interval_s=meter.interval_s, now_s=now_s)
    if not parsed:
        return Ingestion(batch=None, accepted=0, duplicates=0)

    new = {r.start_s: r for r in parsed}
    with transaction.atomic(durable=True):
        Meter.objects.select_for_update().filter(pk=meter.pk).values_list("pk").get()
        conflicts: list[dict[str, Any]] = []
        duplicates = 0
        for start_s, duration_s, import_wh, export_wh, quality in _stored(meter, list(new)):
            sent = new.pop(start_s)
            if (duration_s, import_wh, export_wh, quality) == sent.values:
                duplicates += 1
                continue
            stored = {
                "duration_s": duration_s,
                "import_wh": import_wh,
                "export_wh": export_wh,
                "quality": quality,
            }
            conflicts.append({"index": sent.index, "start": _iso(sent.start_s), "stored": stored})
        if conflicts:
            conflicts.sort(key=lambda c: c["index"])
            raise ReadingConflict(
                f"{len(conflicts)} readings differ from the ones stored for their intervals; "
                "a stored reading is never overwritten. Nothing was stored.",
                detail={"conflicts": conflicts},
            )
        if not new:
            return Ingestion(batch=None, accepted=0, duplicates=duplicates)
        batch = ReadingBatch.objects.create(
            meter=meter,
            received_at=timezone.now(),
            signed_t=signed_t,
            signature=signature,
            body=body,
            accepted=len(new),
            duplicates=duplicates,
        )
        _insert(batch, list(new.values()))
        transaction.on_commit(lambda: batch_relay(batch))
    return Ingestion(batch=batch, accepted=batch.accepted, duplicates=duplicates)


def batch_relay(batch: ReadingBatch) -> None:
    """Queue an accepted batch for the relay to the ledger (the task ``meters.batch_relay`` on
    the site's worker runs ``meters.relay.batch_relay``), after its transaction committed.

    If the broker cannot take it, the batch is stored all the same and the beat task
    ``meters.relay_pending`` relays it later; the meter's request does not fail for it.
    """
    from meters import tasks

    try:
        tasks.batch_relay.delay(batch.pk)
    except (OSError, KombuError):
        log.warning("batch %s not queued for the relay; relay_pending will send it", batch.pk)
