"""The grid operator's households table in a real browser: the operator searches, filters,
sorts and pages it (``market.selectors.household_page`` on the server), then follows a row to
the household's page, with its meters, energy, contracts and the supervisory acts on it. And
the console's layout: a control room on a wide screen, one column on a phone."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import FloatRect, Locator, Page, expect

from gridplatform.accounts.models import HouseholdKind, User
from ledger.models import LedgerAccount
from market.models import MarketAccount
from meters.models import Meter
from supervision.models import Feeder, SupervisoryAct
from tests.browser.support import outside_event_loop
from tests.browser.test_accounts import log_in
from tests.browser.test_alerts import _suspended
from tests.factories import PASSWORD, ContractFactory, UserFactory
from tests.meters.support import store_readings

NewPage = Callable[..., Page]
FEEDERS = ("feeder-north", "feeder-south")


def _community() -> tuple[User, User, User]:
    """The grid operator and 60 households: every third waits for approval, the others are on
    the ledger (balance 100 x their number) on feeder north (odd) or south (even); household 07
    has a meter with readings, a contract with household 08 and a restriction on its account."""
    operator = UserFactory(name="Olga Operator", email="olga@test.example", role="grid_operator")
    now = timezone.now()
    for name in FEEDERS:
        Feeder.objects.create(
            name=name,
            export_limit_w=100_000,
            import_limit_w=100_000,
            published_height=1,
            published_at=now,
        )
    households = [
        UserFactory(
            name=f"Household {n:02d}",
            email=f"h{n:02d}@test.example",
            household_kind=HouseholdKind.CONSUMER if n % 5 == 0 else HouseholdKind.PROSUMER,
        )
        for n in range(60)
    ]
    for n, household in enumerate(households):
        if n % 3:
            address = household.identity.address
            LedgerAccount.objects.create(address=address, public_key="0" * 64, balance=100 * n)
            MarketAccount.objects.create(address=address, feeder=FEEDERS[n % 2 == 0])
    seven, eight = households[7], households[8]
    meter = Meter.objects.create(
        meter_id="roof-pv-07",
        owner=seven,
        kind="bidirectional",
        public_key="ab" * 32,
        feeder=FEEDERS[0],
        interval_s=60,
        registered_by=operator,
    )
    recent = now.replace(second=0, microsecond=0) - timedelta(hours=2)
    store_readings(meter, (recent, 40, 700))
    slot = (now + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    ContractFactory(
        id="contract-07-08",
        slot=slot,
        seller=seven.identity.address,
        buyer=eight.identity.address,
        energy_wh=1_500,
    )
    SupervisoryAct.objects.create(
        tx="d" * 64,
        type="supervision.account.restrict",
        actor="0" * 50,
        actor_role="regulator",
        reason="Unpaid deposits",
        address=seven.identity.address,
        payload={"address": seven.identity.address, "reason": "Unpaid deposits"},
        affected=[seven.identity.address],
        height=5,
        at=now,
    )
    return operator, seven, households[59]


def _box(locator: Locator) -> FloatRect:
    box = locator.bounding_box()
    assert box is not None, locator
    return box


def _names(page: Page) -> list[str]:
    return page.locator("#household-rows tr[data-household] td:first-child a").all_inner_texts()


def test_the_operator_finds_filters_sorts_and_pages_households_and_opens_one(
    new_page: NewPage,
) -> None:
    operator, seven, richest = outside_event_loop(_community)
    page = new_page(viewport={"width": 1280, "height": 900})
    log_in(page, email=operator.email, password=PASSWORD)
    page.goto("/console/operator/")
    count = page.get_by_test_id("households-count")
    expect(count).to_have_text("60 households; page 1 of 2.")
    rows = page.locator("#household-rows tr[data-household]")
    expect(rows).to_have_count(50)
    assert _names(page)[:2] == ["Household 00", "Household 01"]

    # Paging: the second page has the last ten, and a way back.
    pages = page.get_by_role("navigation", name="Pages of households")
    pages.get_by_role("link", name="Next page").click()
    expect(count).to_have_text("60 households; page 2 of 2.")
    assert _names(page) == [f"Household {n}" for n in range(50, 60)]
    pages.get_by_role("link", name="Previous page").click()
    expect(count).to_have_text("60 households; page 1 of 2.")

    # Filters: those waiting for approval (every third), then those trading on feeder north.
    search = page.get_by_role("search", name="Find households")
    search.get_by_label("State").select_option(label="waiting for approval")
    search.get_by_role("button", name="Show").click()
    expect(count).to_have_text("20 households match; page 1 of 1.")
    assert _names(page) == [f"Household {n:02d}" for n in range(0, 60, 3)]
    search = page.get_by_role("search", name="Find households")
    search.get_by_label("State").select_option(label="on the ledger with a feeder")
    search.get_by_label("Feeder").select_option("feeder-north")
    search.get_by_role("button", name="Show").click()
    north = [f"Household {n:02d}" for n in range(60) if n % 3 and n % 2]
    expect(count).to_have_text(f"{len(north)} households match; page 1 of 1.")
    assert _names(page) == north
    # Sorted by balance, highest first, on the same filters.
    search = page.get_by_role("search", name="Find households")
    search.get_by_label("Sort by").select_option(label="balance, highest first")
    search.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"sort=-balance"))
    assert _names(page)[:3] == ["Household 59", "Household 55", "Household 53"]
    # The kind filter, cleared of the others: the consumers (every fifth).
    search = page.get_by_role("search", name="Find households")
    search.get_by_label("State").select_option(label="any")
    search.get_by_label("Feeder").select_option(label="any")
    search.get_by_label("Kind").select_option(label=HouseholdKind.CONSUMER.label)
    search.get_by_role("button", name="Show").click()
    expect(count).to_have_text("12 households match; page 1 of 1.")
    assert set(_names(page)) == {f"Household {n:02d}" for n in range(0, 60, 5)}
    assert richest.name not in _names(page)

    # Search by name, then follow the row to the household's page.
    search = page.get_by_role("search", name="Find households")
    search.get_by_label("Kind").select_option(label="any")
    search.get_by_label("Find").fill("household 07")
    search.get_by_role("button", name="Show").click()
    expect(count).to_have_text("1 household matches; page 1 of 1.")
    rows.first.get_by_role("link", name="Household 07").click()

    expect(page).to_have_url(re.compile(rf"/console/households/{seven.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Household 07")
    expect(page.get_by_test_id("address")).to_have_text(seven.identity.address)
    meters = page.locator("section", has=page.get_by_role("heading", name="Meters"))
    expect(meters.locator("tbody tr")).to_have_count(1)
    expect(meters.locator("tbody td").first).to_have_text("roof-pv-07")
    totals = page.get_by_test_id("household-flow-totals")
    expect(totals).to_contain_text("Import40 Wh")
    expect(totals).to_contain_text("Export700 Wh")
    contract = page.locator('tr[data-contract="contract-07-08"]')
    expect(contract).to_contain_text("sold")
    expect(contract).to_contain_text("1.5 kWh")
    acts = page.locator("section", has=page.get_by_role("heading", name="Supervisory acts on it"))
    expect(acts.locator("li")).to_have_text(
        [re.compile(rf"Restricted account {seven.identity.address} \(Unpaid deposits\)")]
    )
    expect(acts.get_by_role("link", name="transaction")).to_have_attribute(
        "href", f"/ledger/tx/{'d' * 64}/"
    )


def test_the_console_is_a_control_room_on_a_wide_screen_and_one_column_on_a_phone(
    new_page: NewPage,
) -> None:
    operator, _seven, _richest = outside_event_loop(_community)
    wide = new_page(viewport={"width": 1280, "height": 900})
    log_in(wide, email=operator.email, password=PASSWORD)
    wide.goto("/console/operator/")
    alerts = _box(wide.get_by_role("heading", name="Alerts", exact=True))
    loading = _box(wide.get_by_role("heading", name="Feeder loading", exact=True))
    households = _box(wide.get_by_role("heading", name="Households", exact=True))
    # Alerts beside the feeder loading, the households below both.
    assert loading["x"] > alerts["x"] + 300
    assert abs(loading["y"] - alerts["y"]) < 100
    assert households["y"] > loading["y"]
    # The households table scrolls in its panel: 50 rows do not make the page taller than that.
    table = _box(wide.get_by_role("region", name="Households table"))
    assert table["height"] <= 40 * 16 + 2
    # The long sections are folded; the section bar opens one.
    flows = wide.get_by_test_id("fold-latest-flows")
    expect(flows).not_to_have_attribute("open", "")
    expect(wide.get_by_role("heading", name="Latest flows")).to_be_hidden()
    wide.get_by_role("navigation", name="Sections of the console").get_by_role(
        "link", name="Latest flows"
    ).click()
    expect(flows).to_have_attribute("open", "")
    expect(wide.get_by_role("heading", name="Latest flows")).to_be_visible()
    # Every live region connects, the folded ones too.
    statuses = wide.locator("[data-live-status]")
    for index in range(statuses.count()):
        expect(statuses.nth(index)).to_have_text(re.compile(r"^Live"))

    phone = new_page(viewport={"width": 390, "height": 800})
    log_in(phone, email=operator.email, password=PASSWORD)
    phone.goto("/console/operator/")
    alerts = _box(phone.get_by_role("heading", name="Alerts", exact=True))
    loading = _box(phone.get_by_role("heading", name="Feeder loading", exact=True))
    assert loading["y"] > alerts["y"]  # one column
    assert abs(loading["x"] - alerts["x"]) < 5
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_an_unfolded_list_stays_open_when_its_live_region_is_read_again(
    new_page: NewPage,
) -> None:
    """The acknowledged alerts, opened by the operator, are not shut by the next re-fetch of
    the alerts (a block, a minute): static/js/fold.js."""
    operator, _regulator = outside_event_loop(_suspended)
    page = new_page()
    log_in(page, email=operator.email, password=PASSWORD)
    page.goto("/console/operator/")
    alerts = page.locator("#operator-alerts")
    alerts.locator('[data-alert-key="suspension:market"]').get_by_role(
        "button", name="Acknowledge"
    ).click()
    acknowledged = alerts.get_by_test_id("acknowledged-alerts")
    expect(acknowledged.locator("summary")).to_have_text("Acknowledged (1)")
    acknowledged.locator("summary").click()
    moved = acknowledged.locator('[data-alert-key="suspension:market"]')
    expect(moved).to_be_visible()

    # Read the region again, as a block would, and wait for the new rows to be in.
    page.evaluate("document.querySelector('#operator-alerts ul').dataset.before = 'yes'")
    page.evaluate("htmx.trigger('#operator-alerts', 'live:refresh')")
    page.wait_for_function("() => !document.querySelector('#operator-alerts ul[data-before]')")
    expect(acknowledged).to_have_attribute("open", "")
    expect(moved).to_be_visible()
