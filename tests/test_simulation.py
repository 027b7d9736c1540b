"""The demo community's simulator: meters and rules set up once, plausible flows, and readings
sent through the real meters API of a running site."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from gridplatform import simulation
from gridplatform.accounts.models import HouseholdKind, User
from gridplatform.demo import HOUSEHOLDS, demo_community_create
from market.models import StandingRule
from meters.models import Meter, Reading
from tests.browser.support import LiveServer

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def var_dir(settings: Any, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.mark.django_db
def test_it_gives_every_demo_household_a_meter_and_a_rule_once(var_dir: Path) -> None:
    demo_community_create()
    meters = simulation.demo_meters()
    assert len(meters) == len(HOUSEHOLDS) == Meter.objects.count()
    assert StandingRule.objects.count() == len(HOUSEHOLDS)
    saved = var_dir / "demo-meters" / f"{meters[0].meter_id}.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    again = simulation.demo_meters()  # a restart: the same meters, keys and tokens
    assert [(m.meter_id, m.device.public_key_hex, m.token) for m in again] == [
        (m.meter_id, m.device.public_key_hex, m.token) for m in meters
    ]
    assert Meter.objects.count() == StandingRule.objects.count() == len(HOUSEHOLDS)


@pytest.mark.django_db
def test_its_flows_are_plausible_and_whole_watt_hours() -> None:
    demo_community_create()
    kinds = {kind: User.objects.filter(household_kind=kind).first() for kind in HouseholdKind}
    prosumer, consumer = kinds[HouseholdKind.PROSUMER], kinds[HouseholdKind.CONSUMER]
    assert prosumer is not None
    assert consumer is not None
    noon_import, noon_export = simulation.flow(prosumer, NOON, 60)
    assert noon_import == 0 < noon_export < 100  # a few kW of PV over one minute
    night_import, night_export = simulation.flow(prosumer, NIGHT, 60)
    assert night_export == 0 < night_import
    assert simulation.flow(consumer, NOON, 60)[1] == 0  # no PV: never exports
    for when in (NOON + timedelta(minutes=m) for m in range(0, 24 * 60, 37)):
        values = simulation.flow(prosumer, when, 60)
        assert all(isinstance(v, int) and v >= 0 for v in values)
        assert simulation.flow(prosumer, when, 60) == values  # deterministic


@pytest.fixture
def server(transactional_db: None) -> Iterator[LiveServer]:
    live = LiveServer(database_name=str(connection.settings_dict["NAME"]))
    yield live
    live.stop()


def test_its_meters_report_through_the_real_api(var_dir: Path, server: LiveServer) -> None:
    demo_community_create()
    meters = simulation.demo_meters()
    minute = datetime.now(tz=UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    assert simulation.report(meters[0], minute, server.url) == 202
    assert simulation.report(meters[0], minute, server.url) == 200  # sent again: a duplicate
    # A site that does not answer (stopping, restarting) is tried again next minute, no crash.
    assert simulation.report(meters[1], minute, "http://127.0.0.1:9") == 0
    stored = Reading.objects.get()
    assert (stored.meter.meter_id, stored.start, stored.duration_s) == (
        meters[0].meter_id,
        minute,
        60,
    )
