"""Tariffs of the supplier of last resort on the ledger (``market.tariff.publish``): who may
publish, every refusal, which tariff and band a slot falls in, bounded history; and the site's
page, where the grid operator publishes and everyone reads the tariff in force."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from market import services, views
from market.chain import tariff
from market.models import Tariff
from tests.ledger.chains import build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network
from tests.market.support import ADA, OPERATOR, SLOT, SLOT_MS, T0, Market

DAY = 86_400_000
BANDS = [
    {"from_minute": 0, "retail": 24, "feed_in": 6, "network_fee": 4},
    {"from_minute": 420, "retail": 32, "feed_in": 8, "network_fee": 5},
    {"from_minute": 1_320, "retail": 24, "feed_in": 6, "network_fee": 4},
]


def publish(market: Market, who: Any = OPERATOR, **payload: Any) -> str:
    return market.send(
        who, "market.tariff.publish", **({"from_slot": SLOT, "bands": BANDS} | payload)
    )


def test_the_grid_operator_publishes_a_tariff_and_slots_find_their_band() -> None:
    market = Market()
    assert publish(market) == "ok"
    [published] = market.emitted(tariff.TARIFF_PUBLISHED)
    assert published["from_slot"] == SLOT
    assert published["bands"] == BANDS
    assert tariff.in_force(market.state, SLOT - SLOT_MS) is None  # before it: none
    found = tariff.in_force(market.state, SLOT + 3 * DAY)
    assert found is not None
    assert found["from_slot"] == SLOT
    # SLOT is 01:00 UTC: the night band; 07:00 and 21:45 the day band; 22:00 the night again.
    midnight = SLOT - SLOT % DAY
    assert tariff.band_of(found, SLOT)["retail"] == 24
    assert tariff.band_of(found, midnight + 7 * 3_600_000)["retail"] == 32
    assert tariff.band_of(found, midnight + 21 * 3_600_000 + 45 * 60_000)["retail"] == 32
    assert tariff.band_of(found, midnight + 22 * 3_600_000)["network_fee"] == 4
    # A later tariff takes over from its slot; one for the same slot replaces it.
    later = SLOT + DAY
    assert publish(market, from_slot=later, bands=[BANDS[1] | {"from_minute": 0}]) == "ok"
    assert tariff.band_of(tariff.in_force(market.state, later), later)["retail"] == 32  # type: ignore[arg-type]
    assert publish(market, from_slot=later, bands=[BANDS[0]]) == "ok"
    assert [t["from_slot"] for t in tariff.tariffs(market.state)] == [SLOT, later]
    assert tariff.in_force(market.state, later)["bands"] == [BANDS[0]]  # type: ignore[index]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"from_slot": "soon"}, "bad_slot"),
        ({"from_slot": SLOT + 1}, "slot_misaligned"),
        ({"from_slot": T0}, "tariff_in_past"),
        ({"bands": []}, "bad_bands"),
        ({"bands": [BANDS[1]]}, "bad_bands"),  # the first band does not start at 0
        ({"bands": [BANDS[0], BANDS[0]]}, "bad_bands"),  # not increasing
        ({"bands": [BANDS[0] | {"from_minute": 1_440}]}, "bad_bands"),
        ({"bands": [BANDS[0] | {"extra": 1}]}, "bad_bands"),
        ({"bands": [BANDS[0]] * 25}, "bad_bands"),
        ({"bands": [BANDS[0] | {"retail": -1}]}, "bad_price"),
        ({"bands": [BANDS[0] | {"feed_in": 10**7}]}, "bad_price"),
        ({"bands": [BANDS[0] | {"network_fee": True}]}, "bad_price"),
    ],
)
def test_a_bad_tariff_is_refused_and_changes_nothing(payload: dict[str, Any], code: str) -> None:
    market = Market()
    assert publish(market, **payload) == code
    assert tariff.tariffs(market.state) == []
    assert market.emitted(tariff.TARIFF_PUBLISHED) == []


def test_only_the_grid_operator_publishes_tariffs() -> None:
    market = Market()
    market.household(ADA)
    assert publish(market, ADA) == "not_allowed"
    assert market.send(OPERATOR, "market.tariff.publish", from_slot=SLOT) == "bad_payload"


def test_a_tariff_superseded_more_than_the_keep_period_ago_leaves_the_state() -> None:
    market = Market()
    assert publish(market) == "ok"
    second = SLOT + SLOT_MS
    assert publish(market, from_slot=second) == "ok"
    # Long after the second took over, a third is published: the first can price no slot left.
    late = second + tariff.KEEP_MS + DAY
    assert publish(market, at=late, from_slot=late + SLOT_MS) == "ok"
    assert [t["from_slot"] for t in tariff.tariffs(market.state)] == [second, late + SLOT_MS]
    # ...and stays in the blocks: its event.
    assert market.emitted(tariff.TARIFF_PUBLISHED)[0]["from_slot"] == SLOT


# --- the site --------------------------------------------------------------------------------


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User) -> Site:
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    return site


@pytest.mark.django_db
def test_the_operator_publishes_on_the_tariffs_page_and_households_read_it(
    site: Site, grid_operator: User, prosumer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = Client()
    operator.force_login(grid_operator)
    household = Client()
    household.force_login(prosumer)
    assert "No tariff is in force" in household.get("/market/tariffs/").content.decode()
    assert 'name="bands"' not in household.get("/market/tariffs/").content.decode()
    assert household.post("/market/tariffs/", {"from_slot": "x", "bands": ""}).status_code == 403

    start = site.blocks[-1].timestamp_ms // SLOT_MS * SLOT_MS + 4 * SLOT_MS
    from_slot = datetime_of_ms(start).isoformat().replace("+00:00", "Z")
    bad = operator.post("/market/tariffs/", {"from_slot": from_slot, "bands": "7h 32 8 5"})
    assert bad.status_code == 400
    assert "Write one band a line" in bad.content.decode()
    misaligned = operator.post(
        "/market/tariffs/", {"from_slot": from_slot, "bands": "07:00 32 8 5"}
    )
    assert "the first 0" in misaligned.content.decode()  # bad_bands from the rehearsal
    assert not SubmittedTransaction.objects.exists()

    response = operator.post(
        "/market/tariffs/",
        {"from_slot": from_slot, "bands": "00:00 24 6 4\n07:00 32 8 5\n22:00 24 6 4"},
        follow=True,
    )
    assert "The tariff was submitted" in response.content.decode()
    commit_pending(site, timestamp_ms=start - 60_000)
    row = Tariff.objects.get()
    assert row.bands == BANDS
    # Once its slot has started (the page reads the site's clock), it is the one in force.
    monkeypatch.setattr(views.timezone, "now", lambda: datetime_of_ms(start + 1_000))
    page = household.get("/market/tariffs/").content.decode()
    assert "— in force now" in page
    assert "<td>07:00\u201322:00</td><td>€0.32/kWh</td><td>€0.08/kWh</td><td>€0.05/kWh</td>" in page
    assert "<td>22:00\u201324:00</td>" in page
    api = household.get("/api/v1/tariffs").json()["results"]
    assert api == [
        {
            "carrier": "electricity",
            "from_slot": from_slot,
            "bands": BANDS,
            "tx": row.tx,
            "height": row.height,
        }
    ]


@pytest.mark.django_db
def test_the_read_model_audit_names_an_altered_or_missing_tariff(
    site: Site, grid_operator: User
) -> None:
    from market import audit

    start = site.blocks[-1].timestamp_ms // SLOT_MS * SLOT_MS + 4 * SLOT_MS
    commit_pending(site)  # nothing pending: a block all the same
    services.tariff_publish(operator=grid_operator, from_slot=datetime_of_ms(start), bands=BANDS)
    services.tariff_publish(
        operator=grid_operator, from_slot=datetime_of_ms(start + SLOT_MS), bands=BANDS[:1]
    )
    commit_pending(site)

    def differences() -> list[tuple[str, str, str]]:
        found = audit.audit(height=site.blocks[-1].height, state=site.state)
        return [(d.model, d.row, d.field) for d in found]

    assert differences() == []
    Tariff.objects.filter(from_slot=datetime_of_ms(start)).update(bands=BANDS[:1])
    Tariff.objects.filter(from_slot=datetime_of_ms(start + SLOT_MS)).delete()
    assert differences() == [
        ("Tariff", str(start), "bands"),
        ("Tariff", str(start + SLOT_MS), "(row)"),
    ]


@pytest.mark.django_db(transaction=True)
def test_the_carrier_migration_keeps_every_tariff_as_electricitys() -> None:
    """Tariffs projected before carriers (keyed by ``from_slot``) are electricity's after the
    migration that gave tariffs their carrier, and back again."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("market", "0010_merge_0009_carriers_0009_contract_kind_flexibility")]
    after = [("market", "0011_tariff_and_residual_carriers")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("market", "Tariff")
    start = datetime(2027, 1, 1, tzinfo=UTC)
    old.objects.create(from_slot=start, bands=BANDS, tx="a" * 64, height=3, published_at=start)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("market", "Tariff")
    (row,) = new.objects.all()
    assert (row.carrier, row.from_slot, row.bands, row.height) == ("electricity", start, BANDS, 3)
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
