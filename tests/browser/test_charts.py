"""The charts in a real browser: Chart.js draws the household's energy charts from
meters/flows.json and the regulator's market statistics from their table's rows (and again when
a block re-fetches them); the tables show the same numbers, and nothing breaks the site's strict
CSP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from market.flows import floor_to_slot
from tests.browser.support import LiveServer, outside_event_loop, server_with_environment
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.factories import PASSWORD, ContractFactory, SettlementLineFactory, UserFactory
from tests.meters.support import iso, register

NewPage = Callable[[], Page]
SLOT = timedelta(minutes=15)
# Collects what the page's CSP refused; Playwright injects it, so the CSP does not apply to it.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
PAINTED = """(canvas) => {
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i]) return true; }
  return false;
}"""


@pytest.fixture(scope="module")
def no_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LEDGER_DIR without a genesis document: the market's default options (15-minute
    slots), whatever the checkout's own ledger directory holds."""
    return tmp_path_factory.mktemp("no-network")


@pytest.fixture(scope="module")
def _live_server(django_db_setup: None, no_network: Path) -> Iterator[LiveServer]:
    """The conftest's server, started with that LEDGER_DIR in its environment."""
    server = server_with_environment(LEDGER_DIR=str(no_network))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _same_network_here(settings: Any, no_network: Path) -> None:
    settings.LEDGER_DIR = no_network


def drawn(canvas: Locator) -> None:
    expect(canvas).to_have_attribute("data-chart-state", "drawn")
    box = canvas.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 100
    assert canvas.evaluate(PAINTED) is True


def test_it_draws_the_households_energy_and_trades(new_page: NewPage) -> None:
    household = outside_event_loop(UserFactory, name="Ines Prosumer", email="ines@test.example")
    buyer = outside_event_loop(UserFactory, name="Ben Buyer", email="ben@test.example")
    device = outside_event_loop(register, household, "roof-pv-1", kind="pv")
    slot = floor_to_slot(timezone.now(), SLOT) - 2 * SLOT  # well inside the last day
    readings = [
        {"start": iso(int(slot.timestamp())), "import_wh": 3, "export_wh": 640},
        {"start": iso(int((slot + SLOT).timestamp())), "import_wh": 0, "export_wh": 815},
    ]
    response = outside_event_loop(
        device.send,
        [dict(r, duration_s=900, quality="actual") for r in readings],
    )
    assert response.status_code == 202
    contract = outside_event_loop(
        ContractFactory,
        slot=slot,
        seller=household.identity.address,
        buyer=buyer.identity.address,
        energy_wh=700,
    )
    outside_event_loop(SettlementLineFactory, contract=contract, delivered_wh=640)

    page = new_page()
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    log_in(page, email=household.email, password=PASSWORD)
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_role("heading", name="Your energy")).to_be_visible()

    energy = page.locator('canvas[data-flows-chart="energy"]')
    drawn(energy)
    drawn(page.locator('canvas[data-flows-chart="trade"]'))
    # The chart holds the JSON's numbers, with a legend and axis titles in Wh.
    chart = energy.evaluate(
        """(canvas) => {
          const chart = window.Chart.getChart(canvas);
          return {
            labels: chart.data.datasets.map((d) => d.label),
            dashes: chart.data.datasets.map((d) => d.borderDash.join(",")),
            generation: chart.data.datasets[0].data,
            legend: chart.options.plugins.legend.display !== false,
            y: chart.options.scales.y.title.text,
          };
        }"""
    )
    assert chart["labels"] == ["Generation", "Consumption", "Import", "Export"]
    assert len(set(chart["dashes"])) == 4
    assert chart["legend"] is True
    assert chart["y"] == "Energy per 15-minute slot (Wh)"
    assert sum(chart["generation"]) == 640 + 815
    assert len(chart["generation"]) == 96

    # The tables hold the same numbers as the charts.
    energy_table = page.get_by_test_id("energy-table")
    energy_table.locator("xpath=ancestor::details").locator("summary").click()
    local = timezone.localtime(slot).isoformat()
    row = energy_table.locator("tr", has=page.locator(f'time[datetime="{local}"]'))
    expect(row.locator("td")).to_have_text(["640", "0", "3", "640"])
    trade_table = page.get_by_test_id("trade-table")
    trade_table.locator("xpath=ancestor::details").locator("summary").click()
    row = trade_table.locator("tr", has=page.locator(f'time[datetime="{local}"]'))
    expect(row.locator("td")).to_have_text(["700", "640", "0", "0"])

    # A week: the same charts, from the week's JSON.
    page.get_by_role("link", name="Last week").click()
    expect(page).to_have_url(re.compile(r"/dashboard/\?period=week$"))
    drawn(page.locator('canvas[data-flows-chart="energy"]'))
    generation = page.locator('canvas[data-flows-chart="energy"]').evaluate(
        "(canvas) => window.Chart.getChart(canvas).data.datasets[0].data"
    )
    assert (len(generation), sum(generation)) == (672, 640 + 815)

    assert page.evaluate("window.__cspViolations") == []
    assert problems == []  # no CSP violation, no script error, no failed request


BARS = """(canvas) => {
  const chart = window.Chart.getChart(canvas);
  const [plain, flagged, price] = chart.data.datasets;
  return {
    slots: chart.data.labels.length,
    bars: chart.data.labels.map(
      (_, i) => [plain, flagged].filter((d) => d.data[i] !== null).length,
    ),
    volume: chart.data.labels.map((_, i) => plain.data[i] ?? flagged.data[i]),
    flagged: flagged.data.map((v) => v !== null),
    price: price.data,
    legend: chart.data.datasets.map((d) => d.label),
    axes: [chart.options.scales.y.title.text, chart.options.scales.price.title.text],
    label: canvas.getAttribute("aria-label"),
  };
}"""


def test_the_regulator_console_charts_each_slots_volume_and_median_price(
    new_page: NewPage,
) -> None:
    regulator = outside_event_loop(UserFactory, email="rita@test.example", role="regulator")
    ada = outside_event_loop(UserFactory, name="Ada Seller", email="ada@test.example")
    olga = outside_event_loop(UserFactory, name="Olga Seller", email="olga@test.example")
    ben = outside_event_loop(UserFactory, name="Ben Buyer", email="ben@test.example")
    first = floor_to_slot(timezone.now(), SLOT) + 2 * SLOT

    def contract(slot: Any, seller: Any, energy_wh: int, price: int) -> None:
        outside_event_loop(
            ContractFactory,
            slot=slot,
            seller=seller.identity.address,
            buyer=ben.identity.address,
            energy_wh=energy_wh,
            price=price,
        )

    contract(first, ada, 2_000, 25)  # Ada alone: 100 %, above the 50 % threshold
    contract(first + SLOT, ada, 1_000, 20)  # 50 % each: not above it
    contract(first + SLOT, olga, 1_000, 30)
    contract(first + 2 * SLOT, ada, 600, 20)  # Ada 60 %
    contract(first + 2 * SLOT, olga, 400, 22)

    page = new_page()
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    page.add_init_script(path=str(AXE))
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    log_in(page, email=regulator.email, password=PASSWORD)
    page.goto("/console/regulator/")

    canvas = page.locator("canvas[data-statistics-chart]")
    drawn(canvas)
    chart = canvas.evaluate(BARS)
    # One bar per slot with contracts, oldest on the left, in kWh, and the median in € per kWh.
    assert chart["slots"] == 3
    assert chart["bars"] == [1, 1, 1]
    assert chart["volume"] == [2, 2, 1]
    assert chart["flagged"] == [True, False, True]
    assert chart["price"] == [0.25, 0.25, 0.21]
    assert chart["legend"] == [
        "Volume (kWh)",
        "Volume, a seller above 50.00 % (kWh)",
        "Median price (€ per kWh)",
    ]
    assert chart["axes"] == ["Volume (kWh)", "Median price (€ per kWh)"]
    assert "of the 3 slots with contracts" in chart["label"]
    assert "in 2 slots:" in chart["label"]
    assert "(100.00 %)" in chart["label"]
    assert "(60.00 %)" in chart["label"]
    assert violations(page) == []

    # A block re-fetches the table; the chart follows it without a reload.
    contract(first - SLOT, olga, 500, 10)
    page.evaluate("window.htmx.trigger('#supervision-live', 'live:refresh')")
    page.wait_for_function(
        "() => window.Chart.getChart(document.querySelector('canvas[data-statistics-chart]'))"
        ".data.labels.length === 4"
    )
    chart = canvas.evaluate(BARS)
    assert (chart["bars"], chart["volume"]) == ([1, 1, 1, 1], [0.5, 2, 2, 1])
    assert chart["flagged"] == [True, True, False, True]  # Olga alone in the earliest slot

    assert page.evaluate("window.__cspViolations") == []
    assert problems == []
