"""Reads of meters and readings, each scoped by who asks."""

from __future__ import annotations

import re
from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from gridplatform.accounts.models import User
from meters.models import METER_ID_REGEX, Meter, MeterToken, Reading

_METER_ID = re.compile(METER_ID_REGEX)


def meter_list(*, user: User) -> QuerySet[Meter]:
    """A household's own meters; every meter for those who watch every account (the grid
    operator, regulators, administrators); nothing for anyone else. Each row carries its
    active token's prefix (``token_prefix``, None when revoked) and its latest reading's start
    (``last_reading_start``)."""
    if not user.is_authenticated:
        return Meter.objects.none()
    active_token = MeterToken.objects.filter(meter=OuterRef("pk"), revoked_at__isnull=True)
    # A subquery, not Max() over a join: it reads one row of the (meter, start) index.
    latest = Reading.objects.filter(meter=OuterRef("pk")).order_by("-start")
    meters = (
        Meter.objects.select_related("owner__identity")
        .annotate(
            token_prefix=Subquery(active_token.values("prefix")[:1]),
            token_created_at=Subquery(active_token.values("created_at")[:1]),
            last_reading_start=Subquery(latest.values("start")[:1]),
        )
        .order_by("meter_id")
    )
    if user.watches_accounts:
        return meters
    return meters.filter(owner=user)


def access_meter(*, user: User, meter_id: str) -> Meter:
    """The meter ``meter_id`` if ``user`` may see it; 404 otherwise (no existence leak)."""
    # Anything but a meter id is unknown without a query (a URL can hold what a database
    # refuses in a string, e.g. a NUL for PostgreSQL).
    if not isinstance(meter_id, str) or not _METER_ID.fullmatch(meter_id):
        raise Http404("No such meter.")
    try:
        return meter_list(user=user).get(meter_id=meter_id)
    except Meter.DoesNotExist:
        raise Http404("No such meter.") from None


def reading_list(
    *, user: User, meter_id: str, start: datetime | None = None, end: datetime | None = None
) -> QuerySet[Reading]:
    """The readings of a meter ``user`` may see (``access_meter``), ordered by start, from
    ``start`` (inclusive) to ``end`` (exclusive), either optional."""
    meter = access_meter(user=user, meter_id=meter_id)
    readings = Reading.objects.filter(meter=meter)
    if start is not None:
        readings = readings.filter(start__gte=start)
    if end is not None:
        readings = readings.filter(start__lt=end)
    return readings.order_by("start")
