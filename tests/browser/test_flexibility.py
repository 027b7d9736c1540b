"""The grid operator buys flexibility from a household, in two browsers, against the real
network: four validator processes and the site's worker projecting their blocks, behind the real
daphne server, on one-minute slots.

The household enrols on its flexibility page; its meter reports a slot through the site's
meters API (as its vendor's device does) and that slot settles: its baseline. The operator posts
a requirement on its console page; the household sees it appear and answers; the operator sees
the answer, with the household's baseline, and accepts it after a confirmation; both pages show
the contract, the household's without reloading. Then the operator registers the household's
battery as a store, and both pages show its state of charge.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from flexibility.models import Answer, Enrolment
from gridplatform.accounts.models import User
from ledger import services as ledger_services
from ledger.identity import KeyPair
from ledger.models import LedgerAccount, StateEntry
from ledger.projection import ms_of_datetime
from market import services as market_services
from market.chain.schema import baseline_key
from market.models import MarketAccount, SlotSettlement
from meters import services as meter_services
from meters.signing import header_value
from supervision import services as supervision_services
from supervision.models import Feeder
from tests.browser.support import outside_event_loop
from tests.browser.test_accessibility import AXE, violations
from tests.browser.test_accounts import log_in
from tests.browser.test_supervision import _live_server, running  # noqa: F401 (fixtures)
from tests.factories import PASSWORD, UserFactory
from tests.ledger.live import LiveNetwork
from tests.ledger.site import give_issuer_key
from tests.market.support import batch, reading

pytestmark = pytest.mark.workers
NewPage = Callable[[], Page]
LIVE = "Live: updates appear as they happen."
BLOCK_MS = 30_000  # a block, its projection and the page's re-fetch, on a busy machine
FEEDER = "north"
SLOT_S = 60
OPTIONS = {
    "market.slot_ms": SLOT_S * 1_000,
    "market.gate_closure_ms": 15_000,
    "market.settlement_delay_ms": 20_000,
}
DEVICE = KeyPair(private_key=bytes(range(80, 112)))
BATTERY = KeyPair(private_key=bytes(range(81, 113)))


@pytest.fixture
def network(django_db_setup: None, tmp_path: Path) -> Iterator[LiveNetwork]:
    """A network of its own, on one-minute slots (``_live_server`` and ``running``, imported,
    use it)."""
    live = LiveNetwork(tmp_path / "network", OPTIONS)
    try:
        yield live
    finally:
        live.stop()
        live.drop()


def _community(network: LiveNetwork) -> tuple[User, User, str]:
    """The grid operator with credits for its requirements, feeder north published, and Ada on
    it with credits, a meter (its token returned) and a battery meter."""
    operator = UserFactory(email="operator@test.example", role="grid_operator")
    give_issuer_key(operator)
    ada = UserFactory(name="Ada Sun", email="ada@test.example")
    supervision_services.feeder_publish(
        operator=operator, feeder=FEEDER, export_limit_w=1_000_000, import_limit_w=1_000_000
    )
    ledger_services.household_enrol(operator=operator, household=ada)
    ledger_services.transaction_sign_and_submit(
        user=operator,
        type="credit.issue",
        payload={"to": operator.identity.address, "amount": 10_000},
    )
    address = ada.identity.address
    network.until(
        "Ada registered, the feeder published",
        lambda: (
            LedgerAccount.objects.filter(address=address).exists()
            and Feeder.objects.filter(name=FEEDER).exists()
        ),
    )
    market_services.feeder_assign(operator=operator, household=ada, feeder=FEEDER)
    ledger_services.credits_top_up(operator=operator, household=ada, amount=20_000)
    network.until(
        "Ada on the feeder with credits",
        lambda: (
            MarketAccount.objects.filter(address=address, feeder=FEEDER).exists()
            and LedgerAccount.objects.filter(address=address, balance=20_000).exists()
        ),
    )
    tokens = {
        meter_id: meter_services.meter_register(
            by=ada,
            owner=ada,
            meter_id=meter_id,
            kind=kind,
            public_key=device.public_key_hex,
            feeder=FEEDER,
            interval_s=SLOT_S,
        )[1]
        for meter_id, kind, device in (
            ("ada-main", "bidirectional", DEVICE),
            ("ada-battery", "battery", BATTERY),
        )
    }
    keys = [f"meter/{meter_id}" for meter_id in tokens]
    network.until(
        "the meters on the ledger", lambda: StateEntry.objects.filter(key__in=keys).count() == 2
    )
    return operator, ada, tokens["ada-main"]


def _baseline(network: LiveNetwork, base_url: str, operator: User, ada: User, token: str) -> None:
    """Ada's meter reports the slot under way through the meters API as soon as it ends (1 kWh
    imported); the grid operator's timer settles it: her baseline."""
    now = timezone.now()
    slot = now.replace(second=0, microsecond=0)
    end = slot + timedelta(seconds=SLOT_S)
    time.sleep(max(0.0, (end - timezone.now()).total_seconds()) + 0.5)
    body = batch(reading(ms_of_datetime(slot), 0, import_wh=1_000, duration_s=SLOT_S)).encode()
    request = urllib.request.Request(  # noqa: S310 (the test's own server, over http)
        f"{base_url}/api/v1/meters/ada-main/readings",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Meter {token}",
            "X-Meter-Signature": header_value(DEVICE, body, t=int(time.time())),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert json.loads(response.read())["accepted"] == 1

    def settled() -> bool:
        market_services.slots_settle(operator=operator, now=timezone.now())
        return SlotSettlement.objects.filter(slot=slot).exists()

    network.until("the slot settled", settled, seconds=180)
    key = baseline_key(ada.identity.address)
    network.until("Ada's baseline", lambda: StateEntry.objects.get(key=key).value["recent"])


def _open_live(page: Page, user: User, url: str) -> None:
    log_in(page, email=user.email, password=PASSWORD)
    page.goto(url)
    _live(page)


def _live(page: Page) -> None:
    """The page's live region connected; marked, so that a later look can tell whether the page
    was reloaded since."""
    expect(page.locator("[data-live-status]")).to_have_text(LIVE, timeout=BLOCK_MS)
    page.evaluate("window.notReloaded = true")


@pytest.mark.usefixtures("running")  # the validators and the site's worker
def test_the_operator_posts_a_requirement_a_household_answers_and_the_operator_accepts(
    network: LiveNetwork, live_server_url: str, new_page: NewPage
) -> None:
    operator, ada, token = outside_event_loop(_community, network)
    console, household = new_page(), new_page()  # two browser contexts: two browsers
    household.add_init_script(path=str(AXE))

    # Ada enrols on her page; her next settled slot makes her baseline.
    _open_live(household, ada, "/flexibility/")
    expect(household.get_by_test_id("enrolment")).to_contain_text("not enrolled")
    household.get_by_role("button", name="Enrol for electricity").click()
    expect(household.get_by_role("status").filter(has_text="was submitted")).to_be_visible()
    address = ada.identity.address
    network.until("Ada enrolled", lambda: Enrolment.objects.filter(address=address).exists())
    outside_event_loop(_baseline, network, live_server_url, operator, ada, token)

    _open_live(console, operator, "/console/operator/flexibility/")
    household.goto("/flexibility/")
    _live(household)
    enrolment = household.get_by_test_id("enrolment")
    expect(enrolment).to_contain_text("Electricity (on north): enrolled")
    expect(household.get_by_test_id("baseline").locator("tbody tr").first).to_contain_text("1 kWh")
    assert household.locator("[data-requirement]").count() == 0

    # The operator asks for up to 2 kWh less import on north, four minutes ahead.
    form = console.get_by_role("form", name="Post a requirement")
    form.get_by_label("Feeder or heat segment").select_option(FEEDER)
    slot_select = form.get_by_label("Delivery slot")
    slot_value = slot_select.locator("option").nth(4).get_attribute("value")
    slot_select.select_option(slot_value)
    form.get_by_label("Reduce import").check()
    form.get_by_label("Reduction", exact=True).fill("2")
    form.get_by_label("Highest price", exact=True).fill("0.50")
    form.get_by_role("button", name="Post the requirement").click()
    expect(console.get_by_role("status").filter(has_text="was submitted")).to_be_visible()
    _live(console)  # the console again, after the post's redirect

    # The household sees it appear, and answers 0.8 kWh at €0.40.
    row = household.locator("[data-requirement]")
    expect(row).to_have_count(1, timeout=BLOCK_MS)
    expect(row).to_contain_text("€0.50/kWh")
    expect(row.get_by_test_id("time-left")).to_contain_text("answer within")
    assert household.evaluate("window.notReloaded === true")
    answer = row.get_by_role("form")
    answer.get_by_label("Reduction you offer").fill("0.8")
    answer.get_by_label("Energy unit").select_option("kWh")
    answer.get_by_label("Your price").fill("0.40")
    answer.get_by_role("button", name="Answer").click()
    expect(household.get_by_role("status").filter(has_text="was submitted")).to_be_visible()
    _live(household)

    # The operator sees the answer with Ada's name and baseline, and accepts it all.
    answered = console.locator("[data-answer]")
    expect(answered).to_have_count(1, timeout=BLOCK_MS)
    expect(answered).to_contain_text("Ada Sun")
    expect(answered).to_contain_text("0.8 kWh")
    expect(answered).to_contain_text("1 kWh")  # her baseline
    assert console.evaluate("window.notReloaded === true")
    answered.get_by_role("button", name="Accept the answer of Ada Sun at €0.40/kWh").click()
    expect(console.get_by_test_id("confirmation")).to_contain_text("0.8 kWh (the answer offers")
    console.get_by_role("button", name="Confirm: accept 0.8 kWh").click()
    expect(console.get_by_role("status").filter(has_text="was submitted")).to_be_visible()

    # Both pages show the contract: the operator's after its redirect, the household's live.
    answer_id = outside_event_loop(lambda: Answer.objects.get().id)
    for page in (console, household):
        contract = page.locator("[data-flexibility-contract]")
        expect(contract).to_have_count(1, timeout=BLOCK_MS)
        expect(contract).to_contain_text("0.8 kWh")
        expect(contract).to_contain_text("€0.40/kWh")
        expect(contract.get_by_test_id("contract-status")).to_have_text(
            "Awaiting its slot's settlement"
        )
    assert household.evaluate("window.notReloaded === true")
    expect(household.locator(f'[data-answer="{answer_id}"]')).to_contain_text("Taken")
    assert violations(household) == [], household.url

    # The operator registers Ada's battery: 10 kWh, charged to 4 kWh.
    store = console.get_by_role("form", name="Register a household's store")
    store.get_by_label("Household and storage meter").select_option(
        label="Ada Sun — ada-battery (battery)"
    )
    store.get_by_label("Capacity (kWh)").fill("10")
    store.get_by_label("State of charge now (kWh)").fill("4")
    store.get_by_role("button", name="Register the store").click()
    expect(console.get_by_role("status").filter(has_text="was submitted")).to_be_visible()
    for page in (console, household):
        charged = page.locator('[data-store="ada-battery"]')
        expect(charged).to_have_count(1, timeout=BLOCK_MS)
        expect(charged.get_by_test_id("soc")).to_contain_text("4 kWh")
    assert household.evaluate("window.notReloaded === true")
