"""A household's energy per slot (market.flows): its readings, contracts and settlement lines
summed per delivery slot over the last day or week, its own only; the JSON its charts are drawn
from (/meters/flows.json, served by the market) and the "Your energy" section of its dashboard.
The grid operator's latest flows are the meters' (tests/meters/test_flows.py)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from gridplatform.accounts.models import User
from market import flows
from market.chain.options import Options
from market.flows import floor_to_slot, household_flows
from tests.factories import ContractFactory, SettlementLineFactory
from tests.meters.support import at, default_market, logged_in, register, store_readings  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("default_market")]
SLOT = timedelta(minutes=15)
# Mid-slot: the period ends with the slot 12:00-12:15 that holds it.
NOW = datetime(2026, 3, 10, 12, 7, 30, tzinfo=UTC)


def address(user: User) -> str:
    return str(user.identity.address)


def nonzero(result: flows.Flows) -> dict[datetime, dict[str, Any]]:
    """The slots with any energy, each as its non-zero fields."""
    found = {}
    for slot in result.slots:
        values = {key: value for key, value in asdict(slot).items() if key != "start" and value}
        if values:
            found[slot.start] = values
    return found


# --- the computation ---------------------------------------------------------------------------


def test_it_sums_a_households_readings_per_slot_by_meter_kind(prosumer: User) -> None:
    pv = register(prosumer, "roof-pv", kind="pv").meter
    house = register(prosumer, "house", kind="consumption", interval_s=300).meter
    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    battery = register(prosumer, "battery", kind="battery").meter
    store_readings(pv, (at(11, 0), 3, 500), (at(11, 15), 0, 450))
    store_readings(house, (at(11, 0), 100, 0), (at(11, 5), 110, 0), (at(11, 10), 120, 1))
    store_readings(grid, (at(11, 14), 7, 9))
    store_readings(battery, (at(11, 15), 40, 20))

    result = household_flows(user=prosumer, now=NOW)

    assert nonzero(result) == {
        at(11, 0): {
            "generation_wh": 500,  # the PV meter's export
            "consumption_wh": 330,  # the consumption meter's import
            "import_wh": 3 + 330 + 7,
            "export_wh": 500 + 1 + 9,
        },
        at(11, 15): {"generation_wh": 450, "import_wh": 40, "export_wh": 450 + 20},
    }
    assert (result.meters, result.readings, result.ever_read) == (4, 7, True)


def test_it_counts_sold_and_bought_energy_against_what_was_delivered(
    prosumer: User, consumer: User, outsider: User
) -> None:
    sold = ContractFactory(
        slot=at(10, 0), seller=address(prosumer), buyer=address(consumer), energy_wh=2_000
    )
    SettlementLineFactory(contract=sold, delivered_wh=1_234)
    ContractFactory(  # bought, not settled yet
        slot=at(10, 0), seller=address(outsider), buyer=address(prosumer), energy_wh=500
    )
    bought = ContractFactory(
        slot=at(10, 15), seller=address(outsider), buyer=address(prosumer), energy_wh=300
    )
    SettlementLineFactory(contract=bought, delivered_wh=300)
    # Between two others: never the prosumer's.
    theirs = ContractFactory(
        slot=at(10, 0), seller=address(consumer), buyer=address(outsider), energy_wh=999
    )
    SettlementLineFactory(contract=theirs, delivered_wh=999)

    result = household_flows(user=prosumer, now=NOW)

    assert nonzero(result) == {
        at(10, 0): {"sold_wh": 2_000, "sold_delivered_wh": 1_234, "bought_wh": 500},
        at(10, 15): {"bought_wh": 300, "bought_delivered_wh": 300},
    }
    assert result.contracts == 3
    assert (result.meters, result.readings, result.ever_read) == (0, 0, False)


def test_it_aligns_the_period_to_slots_and_ends_with_the_slot_that_holds_now(
    prosumer: User,
) -> None:
    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    store_readings(
        grid,
        (at(12, 14, day=9), 1, 0),  # the minute before the period
        (at(12, 15, day=9), 2, 0),  # the first minute of the first slot
        (at(11, 59), 4, 0),  # the last minute of the slot before now's
        (at(12, 8), 8, 0),  # now's slot, after now
        (at(12, 15), 16, 0),  # the minute after the period
    )

    result = household_flows(user=prosumer, now=NOW)

    assert (result.start, result.end) == (at(12, 15, day=9), at(12, 15))
    starts = [slot.start for slot in result.slots]
    assert starts[:2] == [at(12, 15, day=9), at(12, 30, day=9)]
    assert {b - a for a, b in pairwise(starts)} == {SLOT}
    assert {start: v["import_wh"] for start, v in nonzero(result).items()} == {
        at(12, 15, day=9): 2,
        at(11, 45): 4,
        at(12, 0): 8,
    }
    assert result.readings == 3


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (NOW, at(12, 15, day=9), at(12, 15)),
        (at(12, 0), at(12, 15, day=9), at(12, 15)),  # on a slot's start: that slot holds it
        (at(11, 59) + timedelta(seconds=59), at(12, 0, day=9), at(12, 0)),
    ],
)
def test_a_day_is_96_slots_ending_with_the_slot_that_holds_now(
    prosumer: User, now: datetime, start: datetime, end: datetime
) -> None:
    result = household_flows(user=prosumer, period=flows.DAY, now=now)
    assert (result.start, result.end, len(result.slots)) == (start, end, 96)


def test_a_week_is_672_slots(prosumer: User) -> None:
    result = household_flows(user=prosumer, period=flows.WEEK, now=NOW)
    assert (result.start, result.end, len(result.slots)) == (at(12, 15, day=3), at(12, 15), 672)


def test_a_day_and_a_week_follow_the_sites_wall_clock_across_a_dst_change(
    prosumer: User, settings: Any
) -> None:
    # Berlin moves from CET (+01:00) to CEST (+02:00) at 02:00 on 29 March 2026.
    settings.TIME_ZONE = "Europe/Berlin"
    now = datetime(2026, 3, 29, 10, 7, tzinfo=UTC)  # 12:07 CEST

    day = household_flows(user=prosumer, period=flows.DAY, now=now)
    week = household_flows(user=prosumer, period=flows.WEEK, now=now)

    # From 12:15 local the day (and the week) before: 23 hours, and a week an hour short.
    assert (day.start, day.end, len(day.slots)) == (
        datetime(2026, 3, 28, 11, 15, tzinfo=UTC),
        datetime(2026, 3, 29, 10, 15, tzinfo=UTC),
        92,
    )
    assert (week.start, len(week.slots)) == (datetime(2026, 3, 22, 11, 15, tzinfo=UTC), 668)


def test_it_uses_the_markets_slot_length(prosumer: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.market_selectors, "options", lambda: Options(slot_ms=300_000))
    grid = register(prosumer, "grid", kind="bidirectional", interval_s=60).meter
    store_readings(grid, (at(11, 58), 4, 0), (at(11, 59), 5, 0), (at(12, 5), 6, 0))

    result = household_flows(user=prosumer, now=NOW)

    assert (result.start, result.end, len(result.slots)) == (at(12, 10, day=9), at(12, 10), 288)
    assert {start: v["import_wh"] for start, v in nonzero(result).items()} == {
        at(11, 55): 9,
        at(12, 5): 6,
    }


def test_it_refuses_an_unknown_period(prosumer: User) -> None:
    with pytest.raises(ValueError, match="unknown period"):
        household_flows(user=prosumer, period="month", now=NOW)


def test_it_never_shows_another_households_data(
    prosumer: User, consumer: User, outsider: User
) -> None:
    theirs = register(consumer, "their-pv", kind="pv").meter
    store_readings(theirs, (at(11, 0), 5, 700))
    contract = ContractFactory(
        slot=at(11, 0), seller=address(consumer), buyer=address(outsider), energy_wh=700
    )
    SettlementLineFactory(contract=contract, delivered_wh=700)

    mine = household_flows(user=prosumer, now=NOW)
    assert nonzero(mine) == {}
    assert (mine.meters, mine.readings, mine.ever_read, mine.contracts) == (0, 0, False, 0)
    # The same data is the consumer's own.
    assert nonzero(household_flows(user=consumer, now=NOW)) == {
        at(11, 0): {
            "generation_wh": 700,
            "import_wh": 5,
            "export_wh": 700,
            "sold_wh": 700,
            "sold_delivered_wh": 700,
        }
    }


def test_it_tells_a_meter_that_never_read_from_one_silent_in_the_period(prosumer: User) -> None:
    pv = register(prosumer, "roof-pv", kind="pv").meter
    assert household_flows(user=prosumer, now=NOW).ever_read is False
    store_readings(pv, (at(11, 0, day=1), 0, 100))  # nine days ago
    result = household_flows(user=prosumer, now=NOW)
    assert (result.meters, result.readings, result.ever_read) == (1, 0, True)


def test_floor_to_slot_counts_slots_from_the_epoch() -> None:
    assert floor_to_slot(NOW, SLOT) == at(12, 0)
    assert floor_to_slot(at(12, 0), SLOT) == at(12, 0)
    # In a zone whose offset is not whole hours, slots still start on the UTC quarter hours.
    kathmandu = NOW.astimezone(timezone.get_fixed_timezone(345))
    assert floor_to_slot(kathmandu, SLOT) == at(12, 0)


# --- the JSON endpoint -------------------------------------------------------------------------


def recent_slot() -> datetime:
    """The start of the slot before now's: inside the last day, whenever the test runs."""
    return floor_to_slot(timezone.now(), SLOT) - SLOT


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_json_serves_the_households_own_flows_per_slot(prosumer: User, consumer: User) -> None:
    slot = recent_slot()
    store_readings(register(prosumer, "roof-pv", kind="pv").meter, (slot, 2, 640))
    store_readings(register(consumer, "their-pv", kind="pv").meter, (slot, 1, 9_999))
    sold = ContractFactory(slot=slot, seller=address(prosumer), buyer=address(consumer))
    SettlementLineFactory(contract=sold, delivered_wh=640)

    response = logged_in(prosumer).get(reverse("meter-flows"), {"period": "day"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) == {
        "period",
        "time_zone",
        "start",
        "end",
        "slot_s",
        "meters",
        "readings",
        "contracts",
        "slots",
        "labels",
        "energy",
        "trade",
    }
    assert (data["period"], data["time_zone"], data["slot_s"]) == ("day", "UTC", 900)
    assert (data["meters"], data["readings"], data["contracts"]) == (1, 1, 1)
    assert len(data["slots"]) == len(data["labels"]) == 96
    assert data["slots"][0] == data["start"]
    assert set(data["energy"]) == set(flows.ENERGY_SERIES)
    assert set(data["trade"]) == set(flows.TRADE_SERIES)
    for series in [*data["energy"].values(), *data["trade"].values()]:
        assert len(series) == 96
        assert all(type(value) is int for value in series)
    i = data["slots"].index(iso(slot))
    assert data["labels"][i] == f"{slot:%H:%M}"
    assert {key: values[i] for key, values in data["energy"].items()} == {
        "generation_wh": 640,
        "consumption_wh": 0,
        "import_wh": 2,
        "export_wh": 640,
    }
    assert {key: values[i] for key, values in data["trade"].items()} == {
        "sold_wh": 1_000,
        "sold_delivered_wh": 640,
        "bought_wh": 0,
        "bought_delivered_wh": 0,
    }
    # Every other slot is zero: the consumer's 9,999 Wh is nowhere.
    assert sum(sum(values) for values in data["energy"].values()) == 640 + 2 + 640
    assert "9999" not in response.content.decode()


def test_the_json_of_a_week_labels_slots_with_their_day(prosumer: User) -> None:
    data = logged_in(prosumer).get(reverse("meter-flows"), {"period": "week"}).json()
    assert (data["period"], len(data["slots"])) == ("week", 672)
    first = datetime.fromisoformat(data["slots"][0])
    assert data["labels"][0] == f"{first:%a %H:%M}"


def test_the_json_refuses_an_unknown_period(prosumer: User) -> None:
    response = logged_in(prosumer).get(reverse("meter-flows"), {"period": "month"})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_period"


def test_the_json_sends_anonymous_visitors_to_the_login_page(client: Client) -> None:
    response = client.get(reverse("meter-flows"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("actor", ["grid_operator", "regulator", "admin"])
def test_the_json_is_refused_to_anyone_but_a_household(
    actor: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(actor)
    assert logged_in(user).get(reverse("meter-flows")).status_code == 403


# --- the dashboard -----------------------------------------------------------------------------


def test_the_dashboard_shows_both_charts_and_their_numbers(prosumer: User, consumer: User) -> None:
    slot = recent_slot()
    store_readings(register(prosumer, "roof-pv", kind="pv").meter, (slot, 2, 640))
    ContractFactory(slot=slot, seller=address(prosumer), buyer=address(consumer), energy_wh=512)

    page = logged_in(prosumer).get(reverse("dashboard")).content.decode()

    assert "Your energy" in page
    url = reverse("meter-flows")
    assert f'data-flows-chart="energy" data-flows-url="{url}?period=day"' in page
    assert f'data-flows-chart="trade" data-flows-url="{url}?period=day"' in page
    assert "vendor/chart.js-4.6.1/chart.umd.min.js" in page
    assert "js/flows.js" in page
    row = (
        f'<tr><th scope="row"><time datetime="{slot.isoformat()}">{slot:%a %-d %b %H:%M}</time>'
        "</th>"
    )
    energy = f'{row}<td class="num">640</td><td class="num">0</td><td class="num">2</td>'
    assert energy in page
    trade = f'{row}<td class="num">512</td><td class="num">0</td><td class="num">0</td>'
    assert trade in page
    flows_part = page.split('data-testid="this-month"')[0]  # "This month" has tables of its own
    assert flows_part.count("<caption>") == 2
    assert flows_part.count('<tr><th scope="row">') == 2 * 96
    assert '<a href="?period=day" aria-current="page">Last day</a>' in page


def test_the_dashboard_switches_to_a_week(prosumer: User) -> None:
    store_readings(register(prosumer, "roof-pv", kind="pv").meter, (recent_slot(), 0, 1))
    page = logged_in(prosumer).get(reverse("dashboard"), {"period": "week"}).content.decode()
    assert f'data-flows-url="{reverse("meter-flows")}?period=week"' in page
    assert '<a href="?period=week" aria-current="page">Last week</a>' in page
    assert page.split('data-testid="this-month"')[0].count('<tr><th scope="row">') == 672


def test_the_dashboard_says_when_there_are_no_meters(prosumer: User) -> None:
    page = logged_in(prosumer).get(reverse("dashboard"), {"period": "year"}).content.decode()
    assert "You have no meters yet." in page
    assert "No contracts for slots of the last day." in page
    assert "<canvas" not in page
    assert "chart.umd.min.js" not in page


def test_the_dashboard_says_when_no_reading_came_yet(prosumer: User) -> None:
    pv = register(prosumer, "roof-pv", kind="pv").meter
    client = logged_in(prosumer)
    page = client.get("/dashboard/").content.decode()
    assert "Your meters have not sent any readings yet." in page
    store_readings(pv, (recent_slot() - timedelta(days=2), 0, 100))
    page = client.get("/dashboard/").content.decode()
    assert "Your meters sent no readings for the last day." in page
    assert "<canvas" not in page


def test_the_dashboard_of_other_roles_has_no_energy_section(grid_operator: User) -> None:
    page = logged_in(grid_operator).get(reverse("dashboard")).content.decode()
    assert "Your energy" not in page
