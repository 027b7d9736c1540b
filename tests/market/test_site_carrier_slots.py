"""Heat's own slot length and energy step on the site (docs/market.md, "Integrated energy"):
with ``market.heat.slot_ms`` an hour, the market page, its forms and the API list and accept
heat's hourly slots only, the beat settles a heat hour with its last quarter, and a statement
shows a heat line's hour; electricity keeps its 15-minute slots."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from market import selectors
from market import services as market_services
from market.errors import MESSAGES
from market.models import Contract
from tests.ledger.chains import HOUSEHOLDS, OPERATOR
from tests.ledger.site import GATE_MS, SLOT_MS, Site
from tests.market.test_api import client_for, error_of, iso, post
from tests.market.test_site_carriers import heat_site
from tests.market.test_views import order_data

pytestmark = pytest.mark.django_db
ADA, BEN = HOUSEHOLDS[5], HOUSEHOLDS[6]
HOUR_MS = 3_600_000
HOURLY = (
    ("market.heat", 1),
    ("market.heat.slot_ms", HOUR_MS),
    ("market.heat.energy_step_wh", 1_000),
)
SEGMENT = "loop-1"
MARKET = "/market/"


@pytest.fixture
def site(
    settings: Any, tmp_path: Path, prosumer: User, consumer: User, grid_operator: User
) -> Site:
    """Ada (``prosumer``) and Ben (``consumer``) on heat segment loop-1, heat traded hourly in
    whole kWh."""
    return heat_site(settings, tmp_path, prosumer, consumer, grid_operator, HOURLY)


def open_hour(site: Site) -> int:
    """An hour open for heat at the next blocks and on the site's clock, for the next minute
    whichever of the two is ahead (the blocks' time lags the wall clock a little: near the
    hour's gate the two would disagree)."""
    wall = int(time.time() * 1_000)
    now = max(site.blocks[-1].timestamp_ms, wall) + 60_000
    return (now + GATE_MS) // HOUR_MS * HOUR_MS + HOUR_MS


def test_heats_slot_list_is_hourly_and_electricitys_is_unchanged(site: Site) -> None:
    heat = selectors.slot_list(carrier="heat")
    assert heat
    assert all(s.end - s.start == timedelta(hours=1) for s in heat)
    assert all(s.start.minute == 0 and s.start.second == 0 for s in heat)
    assert all(s.gate_closure == s.start - timedelta(milliseconds=GATE_MS) for s in heat)
    power = selectors.slot_list()
    assert all(s.end - s.start == timedelta(milliseconds=SLOT_MS) for s in power)
    assert {s.start for s in heat} < {s.start for s in power}
    assert len(power) > 3 * len(heat)


def test_the_market_page_offers_heat_hours_only(site: Site, prosumer: User) -> None:
    client = Client()
    client.force_login(prosumer)
    hour = open_hour(site)
    heat = client.get(MARKET, {"carrier": "heat"}).context["order_form"].fields["slot"]
    power = client.get(MARKET).context["order_form"].fields["slot"]
    # The slot picker picks a day and hour, then a minute: heat's hours start on the hour only.
    assert heat.widget.minutes == ["00"]
    assert power.widget.minutes == ["00", "15", "30", "45"]
    heat_starts = {int(value) for _, group in heat.choices for value, _ in group}
    assert hour in heat_starts
    assert hour + SLOT_MS not in heat_starts
    assert hour + SLOT_MS in {int(value) for _, group in power.choices for value, _ in group}


def test_the_order_form_refuses_a_heat_quarter_and_energy_off_the_step(
    site: Site, prosumer: User
) -> None:
    client = Client()
    client.force_login(prosumer)
    hour = open_hour(site)
    off_the_hour = client.post(
        f"{MARKET}orders/place/",
        order_data(hour + SLOT_MS, side="sell", energy="2", price="9", carrier="heat"),
    )
    assert off_the_hour.status_code == 400
    assert MESSAGES["slot_misaligned"] in off_the_hour.content.decode().replace("&#x27;", "'")
    half = client.post(
        f"{MARKET}orders/place/",
        order_data(hour, side="sell", energy="1.5", price="9", carrier="heat"),
    )
    assert half.status_code == 400
    assert "whole steps of 1 kWh thermal" in half.content.decode()
    assert not SubmittedTransaction.objects.exists()
    # Electricity keeps its quarters and its 1 Wh step.
    power = client.post(
        f"{MARKET}orders/place/",
        order_data(hour + SLOT_MS, side="sell", energy="1.5", price="9", carrier="electricity"),
    )
    assert power.status_code == 302
    heat = client.post(
        f"{MARKET}orders/place/",
        order_data(hour, side="sell", energy="2", price="9", carrier="heat"),
    )
    assert heat.status_code == 302
    assert SubmittedTransaction.objects.count() == 2


def test_the_api_refuses_a_heat_quarter_and_energy_off_the_step(site: Site, prosumer: User) -> None:
    client = client_for(prosumer)
    hour = open_hour(site)
    body = {"carrier": "heat", "slot": iso(hour), "side": "sell", "energy_wh": 2_000, "price": 9}
    assert error_of(post(client, "/orders", body | {"slot": iso(hour + SLOT_MS)})) == (
        400,
        "slot_misaligned",
    )
    assert error_of(post(client, "/orders", body | {"energy_wh": 1_500})) == (
        400,
        "energy_not_in_steps",
    )
    assert post(client, "/orders", body).status_code == 202
    book = client.get(f"/api/v1/market/slots/{iso(hour + SLOT_MS)}/book", {"carrier": "heat"})
    assert error_of(book) == (400, "slot_misaligned")
    heat_slots = client.get("/api/v1/market/slots?carrier=heat").json()
    assert iso(hour) in {row["start"] for row in heat_slots}
    assert iso(hour + SLOT_MS) not in {row["start"] for row in heat_slots}


def test_the_beat_settles_a_heat_hour_with_its_last_quarter(site: Site, prosumer: User) -> None:
    hour = open_hour(site)
    trades = [
        site.sign(
            who,
            "market.order.place",
            slot=hour,
            side=side,
            energy_wh=2_000,
            price=12,
            carrier="heat",
        )
        for who, side in ((ADA, "sell"), (BEN, "buy"))
    ]
    assert list(site.commit(trades).results) == ["ok", "ok"]
    assert Contract.objects.get().carrier == "heat"
    delay = timedelta(milliseconds=SLOT_MS)  # market.settlement_delay_ms
    start = datetime_of_ms(hour)
    quarter = timedelta(milliseconds=SLOT_MS)
    # When the hour's first quarter is due, heat's hour is not.
    assert market_services.slots_due_for_settlement(now=start + quarter + delay) == []
    last = start + 3 * quarter
    due = start + timedelta(hours=1) + delay
    assert market_services.slots_due_for_settlement(now=due - timedelta(seconds=1)) == []
    assert market_services.slots_due_for_settlement(now=due) == [last]
    settled = site.commit(
        [site.sign(OPERATOR, "market.slot.settle", slot=hour + 3 * SLOT_MS)],
        timestamp_ms=hour + HOUR_MS + SLOT_MS,
    )
    assert list(settled.results) == ["ok"]
    assert market_services.slots_due_for_settlement(now=due) == []
    # The statement shows the heat line's hour.
    (line,) = selectors.statement(user=prosumer)
    assert (line.carrier, line.slot, line.slot_end) == ("heat", start, start + timedelta(hours=1))
