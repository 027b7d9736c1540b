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
from gridplatform.demo import DEMO_HEAT, DEMO_HEAT_TOPOLOGY, HOUSEHOLDS, demo_community_create
from ledger.identity import KeyPair
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
    assert len(meters) == len(HOUSEHOLDS) + len(DEMO_HEAT) == Meter.objects.count()
    assert StandingRule.objects.count() == len(HOUSEHOLDS)
    # The heat loop's households have a heat meter each, on the loop's segment.
    heat = {m.household.name: m for m in meters if m.heat_role}
    assert {name: m.heat_role for name, m in heat.items()} == DEMO_HEAT
    kinds = dict(Meter.objects.filter(meter_id__endswith="-heat").values_list("meter_id", "kind"))
    assert sorted(kinds.values()) == ["heat"] * (len(DEMO_HEAT) - 1) + ["thermal_storage"]
    assert set(
        Meter.objects.filter(kind__in=["heat", "thermal_storage"]).values_list("feeder", flat=True)
    ) == set(DEMO_HEAT_TOPOLOGY)
    saved = var_dir / "demo-meters" / f"{meters[0].meter_id}.json"
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    again = simulation.demo_meters()  # a restart: the same meters, keys and tokens
    assert [(m.meter_id, m.device.public_key_hex, m.token) for m in again] == [
        (m.meter_id, m.device.public_key_hex, m.token) for m in meters
    ]
    assert Meter.objects.count() == len(HOUSEHOLDS) + len(DEMO_HEAT)
    assert StandingRule.objects.count() == len(HOUSEHOLDS)


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


@pytest.mark.django_db
def test_its_heat_flows_and_orders_follow_each_role() -> None:
    demo_community_create()
    people = {name: User.objects.get(name=name) for name in DEMO_HEAT}
    roles = {name: DEMO_HEAT[name] for name in people}
    by_role = {role: people[name] for name, role in roles.items()}
    evening = NOON.replace(hour=19)
    # A heat pump feeds the loop at any hour; a solar-thermal roof by day only; a consumer draws.
    assert simulation.heat_flow(by_role["heat_pump"], "heat_pump", NIGHT, 60)[1] > 0
    assert simulation.heat_flow(by_role["solar_thermal"], "solar_thermal", NOON, 60)[1] > 0
    assert simulation.heat_flow(by_role["solar_thermal"], "solar_thermal", NIGHT, 60)[1] == 0
    assert simulation.heat_flow(by_role["heat_consumer"], "heat_consumer", NOON, 60)[1] == 0
    store = by_role["thermal_store"]
    assert simulation.heat_flow(store, "thermal_store", NOON, 60) == (20, 0)  # 1.2 kW in
    assert simulation.heat_flow(store, "thermal_store", evening, 60) == (0, 25)  # 1.5 kW out
    # Orders: a seller offers 90 % of what its meter will feed in, a consumer bids for 80 %.
    meter = simulation.DemoMeter(
        by_role["heat_pump"], "x-heat", KeyPair.generate(), "t", "heat_pump"
    )
    fed_in = simulation.heat_flow(meter.household, "heat_pump", NIGHT, 300)[1]
    assert simulation.heat_order(meter, NIGHT, 300) == ("sell", fed_in * 9 // 10, 7)
    consumer = simulation.DemoMeter(
        by_role["heat_consumer"], "y-heat", KeyPair.generate(), "t", "heat_consumer"
    )
    drawn = simulation.heat_flow(consumer.household, "heat_consumer", NIGHT, 300)[0]
    assert simulation.heat_order(consumer, NIGHT, 300) == ("buy", drawn * 8 // 10, 10)
    quiet = simulation.DemoMeter(store, "z-heat", KeyPair.generate(), "t", "thermal_store")
    assert simulation.heat_order(quiet, NIGHT, 300) is None  # the store rests at night


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


@pytest.mark.django_db
def test_a_household_that_sold_a_reduction_keeps_below_its_baseline() -> None:
    """The demo's households keep their word: while a flexibility contract covers a minute, the
    meter's import is capped at the baseline less what was sold, spread over the slot."""
    from flexibility.models import FlexibilityContract
    from market.models import Contract
    from market.selectors import options

    demo_community_create()
    household = User.objects.filter(household_kind=HouseholdKind.CONSUMER).first()
    assert household is not None
    slot_s = options().slot_ms // 1_000
    slot = datetime.fromtimestamp(NOON.timestamp() // slot_s * slot_s, tz=UTC)
    assert simulation.curbed_import(household, slot, 60) >= 2**31  # nothing sold: no cap
    made = Contract.objects.create(
        id=f"{int(slot.timestamp() * 1_000)}-0",
        kind="flexibility",
        slot=slot,
        index=0,
        seller=household.identity.address,
        buyer="operator",
        energy_wh=300,
        price=25,
        network_fee=0,
        penalty_bps=2_000,
        escrow=7,
        deposit=1,
        seller_tx="a" * 64,
        buyer_tx="b" * 64,
        tx="c" * 64,
        height=1,
        made_at=slot,
    )
    FlexibilityContract.objects.create(
        contract=made,
        requirement="b" * 64,
        answer="a" * 64,
        direction="import",
        feeder="feeder-mill-lane",
        baseline_wh=900,
    )
    assert simulation.curbed_import(household, slot, 60) == (900 - 300) * 60 // slot_s
    later = slot + timedelta(seconds=slot_s)
    assert simulation.curbed_import(household, later, 60) >= 2**31  # the next slot: free again
