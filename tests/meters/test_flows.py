"""The grid operator's latest flows (meters.selectors.latest_flow_list): each household's latest
interval over all its meters, on the operator console, live; for the grid operator only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from gridplatform.accounts.models import User
from meters.selectors import latest_flow_list
from tests.factories import UserFactory
from tests.meters.support import at, default_market, logged_in, register, store_readings  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_market")]


# --- the operator console ----------------------------------------------------------------------


def test_it_finds_each_households_latest_interval(
    grid_operator: User, prosumer: User, consumer: User, outsider: User
) -> None:
    pv = register(prosumer, "roof-pv", kind="pv").meter
    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    store_readings(pv, (at(11, 30), 0, 380), (at(11, 45), 1, 400))
    store_readings(grid, (at(11, 58), 4, 3), (at(11, 59), 5, 6))
    house = register(consumer, "house", kind="consumption").meter
    other = register(consumer, "heat-pump", kind="consumption").meter
    store_readings(house, (at(11, 30), 200, 0), (at(11, 45), 210, 0))
    store_readings(other, (at(11, 45), 90, 0))
    register(outsider, "new-meter")

    rows = {row.household: row for row in latest_flow_list(user=grid_operator)}

    latest = rows[prosumer]
    assert (latest.start, latest.end, latest.import_wh, latest.export_wh) == (
        at(11, 59),
        at(12, 0),
        5,
        6,
    )
    assert (latest.reporting, latest.meters) == (1, 2)
    latest = rows[consumer]
    assert (latest.start, latest.end, latest.import_wh, latest.export_wh) == (
        at(11, 45),
        at(12, 0),
        300,
        0,
    )
    assert (latest.reporting, latest.meters) == (2, 2)
    assert (rows[outsider].start, rows[outsider].meters) == (None, 1)
    assert set(rows) == {prosumer, consumer, outsider}


def test_the_operator_console_shows_the_latest_flows_live(
    grid_operator: User, prosumer: User
) -> None:
    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    store_readings(grid, (at(11, 59), 5, 6))
    UserFactory(name="Zoe Nometer")
    client = logged_in(grid_operator)

    page = client.get(reverse("operator-console")).content.decode()
    assert "Latest flows" in page
    assert (
        'data-live-socket="/ws/ledger/" data-live-target="#latest-flow-rows" data-live-targeted'
        in page
    )
    assert (
        f'hx-get="{reverse("operator-latest-flow-rows")}?flows=1" hx-trigger="live:refresh"' in page
    )
    # Each row follows its household's account (ledger.live) and re-fetches itself alone.
    address = prosumer.identity.address
    row_url = reverse("operator-latest-flow-row", args=[prosumer.pk])
    assert f'data-live-topic="account.{address}" hx-get="{row_url}"' in page
    row = client.get(row_url).content.decode()
    assert row.strip().startswith(f'<tr data-flow-household="{prosumer.pk}"')
    assert '<td class="num">5</td>\n  <td class="num">6</td>' in row
    rows = client.get(reverse("operator-latest-flow-rows")).content.decode()
    assert f'data-flow-household="{prosumer.pk}"' in rows
    assert '<time datetime="2026-03-10T11:59:00+00:00">Tue 10 Mar 11:59</time>' in rows
    assert '<td class="num">5</td>\n  <td class="num">6</td>\n  <td>1 of 1</td>' in rows
    assert "No meters" in rows


@pytest.mark.parametrize("actor", ["prosumer", "regulator"])
def test_the_latest_flows_are_refused_to_others(actor: str, request: pytest.FixtureRequest) -> None:
    user = request.getfixturevalue(actor)
    assert logged_in(user).get(reverse("operator-latest-flow-rows")).status_code == 403
    assert latest_flow_list(user=user) == []


def test_the_households_console_page_shows_its_energy_of_the_last_day(
    grid_operator: User, prosumer: User
) -> None:
    from django.utils import timezone

    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    recent = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    store_readings(grid, (recent, 40, 700), (recent + timedelta(minutes=1), 2, 300))
    store_readings(grid, (recent - timedelta(days=3), 9_999, 9_999))  # not the last day
    page = logged_in(grid_operator).get(f"/console/households/{prosumer.pk}/").content.decode()
    totals = page[page.index('data-testid="household-flow-totals"') :]
    assert "<dt>Import</dt><dd>42 Wh</dd>" in totals
    assert "<dt>Export</dt><dd>1000 Wh</dd>" in totals
    assert 'data-testid="household-flows"' in page  # the slot's row, in its table
