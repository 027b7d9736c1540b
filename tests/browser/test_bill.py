"""A household reads its bill in a real browser: from the dashboard's "This month" (what the
community saved it, its figures beside its neighbours', the chart drawn from the table) to the
bill for the month and for a day, its CSV download and its printable view.

The ledger part is real blocks (the supplier's tariff, meters and their device-signed readings, a
contract, the slot's settlement with the residual), projected by the site; the numbers are the
worked example of docs/market.md, "Bills and savings"."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger.identity import KeyPair
from ledger.projection import datetime_of_ms
from tests.browser.support import LiveServer, outside_event_loop, server_with_environment
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, UserFactory
from tests.ledger.chains import OPERATOR, Chain, build_chain, recent_start_ms
from tests.ledger.site import Site
from tests.market.support import batch, device_signature, reading

NewPage = Callable[[], Page]
SLOT_MS, GATE_MS, DELAY_MS = 900_000, 300_000, 900_000
ADA_DEVICE = KeyPair(private_key=bytes(range(7, 39)))
BEN_DEVICE = KeyPair(private_key=bytes(range(8, 40)))
TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Chain]:
    """A network whose blocks began two hours ago: slots of then have ended and settle."""
    directory = tmp_path_factory.mktemp("network")
    chain = build_chain(1, 1, start_ms=recent_start_ms() - 7_200_000)
    chain.genesis.to_json_file(directory / "genesis.json")
    return directory, chain


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, network: tuple[Path, Chain]) -> Iterator[LiveServer]:
    directory, _ = network
    server = server_with_environment(LEDGER_DIR=str(directory))
    yield server
    server.stop()


def _settled(site: Site) -> tuple[User, int]:
    """Ada sells Ben 2,000 Wh at 20 in slot A and exports 3,000 Wh; Ben imports 4,000 Wh in A
    and 900 Wh in B, the slot after; both slots settle. Returns Ben and slot A."""
    ada: User = UserFactory(name="Ada Seller", email="ada@test.example")
    ben: User = UserFactory(name="Ben Buyer", email="ben@test.example")
    site.project_all()
    for user in (ada, ben):
        address = user.identity.address
        site.register(address, user.identity.public_key, credits=100_000)
        site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="f-1")])
    now = site.blocks[-1].timestamp_ms + 5_000
    slot = (now + GATE_MS) // SLOT_MS * SLOT_MS + SLOT_MS
    later = slot + SLOT_MS
    site.commit([site.sign(OPERATOR, "market.tariff.publish", from_slot=slot, bands=[TARIFF])])
    meters = []
    for user, meter_id, device in ((ada, "ada", ADA_DEVICE), (ben, "ben", BEN_DEVICE)):
        payload = {
            "meter": meter_id,
            "owner": user.identity.address,
            "kind": "bidirectional",
            "public_key": device.public_key_hex,
            "feeder": "f-1",
            "interval_s": 900,
        }
        meters.append(site.sign(OPERATOR, "meter.register", **payload))
    assert set(site.commit(meters).results) == {"ok"}
    orders = [
        site.sign(
            identity_unseal(identity_=user.identity),
            "market.order.place",
            slot=slot,
            side=side,
            energy_wh=2_000,
            price=20,
        )
        for user, side in ((ada, "sell"), (ben, "buy"))
    ]
    assert set(site.commit(orders).results) == {"ok"}
    ended = later + SLOT_MS + 1
    relays = []
    for meter_id, device, body in (
        ("ada", ADA_DEVICE, batch(reading(slot, 3_000, duration_s=900))),
        (
            "ben",
            BEN_DEVICE,
            batch(
                reading(slot, 0, import_wh=4_000, duration_s=900),
                reading(later, 0, import_wh=900, duration_s=900),
            ),
        ),
    ):
        t = ended // 1_000
        signature = device_signature(device, t, body)
        relays.append(
            site.sign(
                OPERATOR, "meter.readings", meter=meter_id, t=t, body=body, signature=signature
            )
        )
    assert set(site.commit(relays, timestamp_ms=ended).results) == {"ok"}
    settle = [site.sign(OPERATOR, "market.slot.settle", slot=s) for s in (slot, later)]
    assert list(site.commit(settle, timestamp_ms=later + SLOT_MS + DELAY_MS + 1).results) == [
        "ok",
        "ok",
    ]
    return ben, slot


def test_a_household_reads_what_it_saved_and_its_bill(
    network: tuple[Path, Chain], live_server_url: str, settings: Any, new_page: NewPage
) -> None:
    directory, chain = network
    settings.LEDGER_DIR = directory
    settings.LEDGER_STORE_URL = f"sqlite:///{directory}/store-{{node}}.sqlite3"
    ben, slot = outside_event_loop(_settled, Site(chain))
    both_today = datetime_of_ms(slot).date() == datetime_of_ms(slot + SLOT_MS).date()

    page = new_page()
    log_in(page, email=ben.email, password=PASSWORD)
    page.goto(f"{live_server_url}/dashboard/")
    month = page.get_by_test_id("this-month")
    expect(month.get_by_role("heading", name="This month")).to_be_visible()
    if datetime_of_ms(slot).month == datetime.now(UTC).month:  # not in a month's first hours
        expect(month.get_by_test_id("month-saving")).to_contain_text(
            "The community saved you €0.32"
        )
        expect(month.locator('[data-figure="self-sufficiency-you"]')).to_have_text("40.8 %")
    expect(month.locator("canvas[data-figures-chart]")).to_have_attribute(
        "data-chart-state", "drawn"
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Bill").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your bill")
    form = page.get_by_test_id("bill-form")
    form.get_by_label("Period").select_option("day")
    form.get_by_label("Date").fill(datetime_of_ms(slot).date().isoformat())
    form.get_by_role("button", name="Show").click()
    summary = page.get_by_test_id("bill-summary")
    expect(summary.locator('[data-line="p2p-bought"] td').first).to_have_text("2 kWh")
    grid = "2.9 kWh" if both_today else "2 kWh"
    expect(summary.locator('[data-line="grid-bought"] td').first).to_have_text(grid)
    expect(page.get_by_test_id("bill-saved")).to_have_text("€0.32")
    expect(page.get_by_test_id("bill-saved-percent")).to_have_text(
        "18.2 %" if both_today else "22.2 %"
    )

    with page.expect_download() as download:
        page.get_by_test_id("bill-csv").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows[-1]["slot_start"] == "total"
    assert rows[-1]["saving_minor_units"] == "32"

    page.get_by_test_id("bill-print").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bill of Ben Buyer")
    expect(page.locator(".site-header")).to_have_count(0)
    expect(page.get_by_test_id("bill-saved")).to_have_text("€0.32")
