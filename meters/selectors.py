"""Reads of meters and readings, each scoped by who asks; the grid operator's latest flows."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.utils.module_loading import import_string

from gridplatform.accounts.models import Role, User
from ledger import config
from meters.chain.options import slot_ms_of
from meters.chain.schema import HEAT, WINDOW_PREFIX, inslot_key, meter_carrier
from meters.models import DEFAULT_INTERVAL_S, INTERVALS, METER_ID_REGEX, Meter, MeterToken, Reading

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


# --- what a new meter may be ---------------------------------------------------------------------


def slots_with_readings(*, ended_by: datetime) -> list[datetime]:
    """The slots, starting at ``ended_by`` or before, that the site's replica of the committed
    state indexes as holding recorded readings (``meter/inslot/<slot>``) not yet settled."""
    from ledger.models import StateEntry
    from ledger.projection import datetime_of_ms

    prefix = inslot_key(0)[:-1]
    # The prefix first, so that the database reads the key index's range, not every row.
    keys = StateEntry.objects.filter(
        key__startswith=prefix, key__regex=rf"^{re.escape(prefix)}[0-9]+$"
    ).values_list("key", flat=True)
    slots = (datetime_of_ms(int(key[len(prefix) :])) for key in keys)
    return sorted(slot for slot in slots if slot <= ended_by)


def network_slot_ms() -> int:
    """The slot a meter's reading interval must divide on this network (its genesis options;
    ``meters.chain.options``), in ms."""
    genesis = config.load_genesis()
    return slot_ms_of(dict(genesis.options) if genesis else {})


def intervals_allowed() -> tuple[int, ...]:
    """The reading intervals (s) a meter may have here: those of ``INTERVALS`` that divide the
    network's slot, so that every reading lies in one slot and counts at settlement."""
    slot_ms = network_slot_ms()
    return tuple(s for s in INTERVALS if slot_ms % (s * 1_000) == 0)


def default_interval_s() -> int:
    """The interval a registration without one gets: 15 minutes, or the longest allowed."""
    allowed = intervals_allowed()
    return DEFAULT_INTERVAL_S if DEFAULT_INTERVAL_S in allowed else max(allowed, default=60)


def household_feeder(*, user: User) -> str:
    """The feeder the grid operator assigned to the household ("" none yet): the provider
    ``settings.METERS_FEEDER_OF`` names (supervision, which owns the grid)."""
    feeder_of = import_string(settings.METERS_FEEDER_OF)
    feeder: str = feeder_of(user=user)
    return feeder


# --- the grid operator's view ------------------------------------------------------------------


@dataclass(frozen=True)
class LatestFlow:
    """A household's latest interval: the latest start of any of its meters' readings, with the
    import and export of every reading of its meters that starts then (``reporting`` of its
    ``meters``). ``start`` is None when it has no readings. ``import_wh`` and ``export_wh`` are
    its electricity meters' (Wh); ``heat_import_wh`` and ``heat_export_wh`` its heat meters'
    (Wh thermal), never added to them."""

    household: User
    address: str  # its ledger address: the live topic of its row (ledger.live)
    meters: int
    reporting: int = 0
    start: datetime | None = None
    end: datetime | None = None
    import_wh: int = 0
    export_wh: int = 0
    heat_import_wh: int = 0
    heat_export_wh: int = 0


FLOWS_PER_PAGE = 50


def _watchers_households(user: User) -> QuerySet[User]:
    if not user.is_authenticated or user.role not in (Role.GRID_OPERATOR, Role.ADMIN):
        return User.objects.none()
    return (
        User.objects.filter(role=Role.HOUSEHOLD, email_confirmed=True)
        .select_related("identity")
        .order_by("name", "id")
    )


@dataclass(frozen=True)
class LatestFlowPage:
    flows: list[LatestFlow]
    page: Page[User]


def latest_flow_page(*, user: User, page: int | str | None = 1) -> LatestFlowPage:
    """The latest flows of one page of the households (``FLOWS_PER_PAGE``, by name). For the
    grid operator and admins; empty for anyone else. Its cost does not grow with the number of
    households."""
    shown = Paginator(_watchers_households(user), FLOWS_PER_PAGE).get_page(page)
    return LatestFlowPage(flows=_latest_flows(list(shown)), page=shown)


def latest_flow_list(*, user: User, household_ids: Iterable[int] | None = None) -> list[LatestFlow]:
    """The latest interval of the households ``household_ids`` (every household if None), by
    name; for the grid operator (and administrators) only, empty for anyone else."""
    households = _watchers_households(user)
    if household_ids is not None:
        households = households.filter(pk__in=list(household_ids))
    return _latest_flows(list(households))


def _latest_flows(households: list[User]) -> list[LatestFlow]:
    meters = Meter.objects.filter(owner__in=households)
    meter_counts = dict(
        meters.values("owner_id").annotate(n=Count("id")).order_by().values_list("owner_id", "n")
    )
    # Each meter's latest reading, found on the (meter, start) index: one row per meter.
    latest = Reading.objects.filter(meter=OuterRef("pk")).order_by("-start").values("pk")[:1]
    last_readings = Reading.objects.filter(
        pk__in=meters.annotate(last=Subquery(latest)).filter(last__isnull=False).values("last")
    ).values_list("meter__owner_id", "start", "duration_s", "import_wh", "export_wh", "meter__kind")
    by_owner: dict[int, list[tuple[datetime, int, int, int, bool]]] = defaultdict(list)
    for owner_id, start, duration_s, import_wh, export_wh, kind in last_readings:
        heat = meter_carrier(kind) == HEAT
        by_owner[owner_id].append((start, duration_s, import_wh, export_wh, heat))

    flows = []
    for household in households:
        count = meter_counts.get(household.pk, 0)
        rows = by_owner.get(household.pk)
        address = getattr(getattr(household, "identity", None), "address", "")
        if not rows:
            flows.append(LatestFlow(household=household, address=address, meters=count))
            continue
        start = max(row[0] for row in rows)
        latest_rows = [row for row in rows if row[0] == start]
        flows.append(
            LatestFlow(
                household=household,
                address=address,
                meters=count,
                reporting=len(latest_rows),
                start=start,
                end=start + timedelta(seconds=max(row[1] for row in latest_rows)),
                import_wh=sum(row[2] for row in latest_rows if not row[4]),
                export_wh=sum(row[3] for row in latest_rows if not row[4]),
                heat_import_wh=sum(row[2] for row in latest_rows if row[4]),
                heat_export_wh=sum(row[3] for row in latest_rows if row[4]),
            )
        )
    return flows


# --- private data on the public ledger (settings.LEDGER_PRIVATE_DATA) ---------------------------

# Meter readings are personal data (docs/ledger.md, "Privacy of meter readings"). The ledger's
# public reads (ledger.selectors) withhold, unless ``may_see_reading_data``: the ``body`` of the
# payload of these transaction types (the device-signed readings), whose meter the payload field
# named here gives; and the values of the state keys under these prefixes, each followed by the
# meter's id (``meter/window/<meter>``: the readings settlement may still need). The events of a
# batch carry no reading's values and are public.
PRIVATE_TX_TYPES = {"meter.readings": "meter"}
PRIVATE_STATE_PREFIXES = (WINDOW_PREFIX,)


def may_see_reading_data(user: User, *, meter_id: str) -> bool:
    """Whether ``user`` may see the readings of meter ``meter_id`` on the ledger: whoever may
    see them on the site (``reading_list``), that is its owner and those who watch every
    account (the grid operator, regulators, administrators). Nobody else, anonymous included;
    for a meter the site does not know, only the watchers."""
    if not user.is_authenticated:
        return False
    if user.watches_accounts:
        return True
    owns: bool = Meter.objects.filter(meter_id=meter_id, owner=user).exists()
    return owns
