"""Supervision's pages: the consoles' supervision sections, the acts' forms, a household's
transparency page and the order form's notice.

Real transactions signed by the site (``SubmittedTransaction``) with the real genesis keys of a
test chain (the site's regulator and grid operator hold them), committed in real certified
blocks and projected into the read models, as the validators would; the pages are read back with
Django's test client. Blocks are dated "now": the site's clock decides which slots are open.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger.blocks import Block
from ledger.crypto import Transaction
from ledger.models import SubmittedTransaction
from ledger.projection import ms_of_datetime
from market import selectors as market_selectors
from market.models import Contract
from supervision import selectors as supervision_selectors
from supervision.models import Notification, ReviewItem, SupervisoryAct, Suspension
from supervision.templatetags.supervision_format import scaled, when
from tests.factories import ContractFactory, UserFactory
from tests.ledger.chains import recent_start_ms
from tests.ledger.site import Site
from tests.supervision.support import address, network_site, setup_txs

pytestmark = pytest.mark.django_db
TAKES_EFFECT = "It takes effect when its block commits."
FEEDER = "f1"
REASON = "Storm damage on the line"


# --- the network, blocks "now", and who is on it -----------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def commit(site: Site, transactions: list[Transaction]) -> Block:
    """A block of ``transactions`` dated now (and after the last block); all must pass."""
    block = site.commit(transactions, timestamp_ms=max(site.blocks[-1].timestamp_ms + 1, _now_ms()))
    assert set(block.results) <= {"ok"}, block.results
    return block


def commit_pending(site: Site) -> Block:
    """Commit what the site submitted, in order, as the validators would."""
    rows = SubmittedTransaction.objects.order_by("id")
    block = commit(site, [Transaction.from_json(row.body) for row in rows])
    assert not SubmittedTransaction.objects.exists()
    return block


@pytest.fixture
def site(
    settings: Any,
    tmp_path: Path,
    grid_operator: User,
    regulator: User,
    prosumer: User,
    consumer: User,
) -> Site:
    """A network with feeder f1 published and both households on it, with credits."""
    site = network_site(
        settings,
        tmp_path,
        grid_operator=grid_operator,
        regulator=regulator,
        start_ms=recent_start_ms(),
    )
    commit(site, setup_txs(site, {FEEDER: 1_000_000}, {prosumer: FEEDER, consumer: FEEDER}))
    return site


def a_slot() -> int:
    """An open slot, a few slots ahead: still open however long the test takes."""
    return ms_of_datetime(market_selectors.slot_list()[2].start)


@pytest.fixture
def flagged(site: Site, prosumer: User, consumer: User) -> Contract:
    """A contract of 6 kWh (above the review size of 5 kWh), waiting for review."""
    slot = a_slot()
    sell, buy = (
        site.sign(
            identity_unseal(identity_=user.identity),
            "market.order.place",
            slot=slot,
            side=side,
            energy_wh=6_000,
            price=price,
        )
        for user, side, price in ((prosumer, "sell", 20), (consumer, "buy", 25))
    )
    commit(site, [sell, buy])
    contract = Contract.objects.get()
    assert ReviewItem.objects.get(contract=contract).status == "pending"
    return contract


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def submitted() -> dict[str, Any]:
    """The one transaction the site submitted: its type and payload."""
    row = SubmittedTransaction.objects.get()
    return {"type": row.body["type"], "payload": row.body["payload"]}


# --- who may open what ---------------------------------------------------------------------------

REGULATOR_PAGES = [
    "/console/regulator/",
    "/console/regulator/review/rows/",
    "/console/regulator/contracts/rows/",
    "/console/regulator/audit/rows/",
    "/console/regulator/statistics/rows/",
    "/console/regulator/alerts/",
]
OPERATOR_PAGES = [
    "/console/operator/",
    "/console/operator/loading/rows/",
    "/console/operator/alerts/",
    "/console/operator/grid/rows/",
]
HOUSEHOLD_PAGES = [
    "/supervision/",
    "/supervision/stops/",
    "/supervision/acts/",
    "/supervision/notifications/",
    "/supervision/trading-stop/",
]
REGULATOR_ACTS = [
    "/supervision/review/1-0/",
    "/supervision/contracts/1-0/",
    "/supervision/contract/",
    "/supervision/suspend/",
    "/supervision/resume/",
    "/supervision/account/",
]
OPERATOR_ACTS = ["/supervision/feeders/publish/", "/supervision/grid-state/"]
ROLES = ["anonymous", "household", "grid_operator", "regulator", "admin"]


@pytest.fixture
def people(
    site: Site, prosumer: User, grid_operator: User, regulator: User, admin: User
) -> dict[str, User | None]:
    return {
        "anonymous": None,
        "household": prosumer,
        "grid_operator": grid_operator,
        "regulator": regulator,
        "admin": admin,
    }


def _expected_get(url: str, role: str) -> int:
    if role == "anonymous":
        return 302
    allowed = {
        **{key: {"regulator", "admin"} for key in REGULATOR_PAGES},
        **{key: {"grid_operator", "admin"} for key in OPERATOR_PAGES},
        **{key: {"household"} for key in HOUSEHOLD_PAGES},
    }[url]
    return 200 if role in allowed else 403


@pytest.mark.parametrize("role", ROLES)
def test_it_opens_each_page_to_exactly_the_roles_it_serves(
    people: dict[str, User | None], role: str
) -> None:
    client = client_for(people[role])
    for url in REGULATOR_PAGES + OPERATOR_PAGES + HOUSEHOLD_PAGES:
        response = client.get(url)
        assert response.status_code == _expected_get(url, role), (url, role)
        if role == "anonymous":
            assert response["Location"].startswith("/accounts/login/?next="), url


@pytest.mark.parametrize("role", ROLES)
def test_it_lets_exactly_the_acting_role_post_each_act(
    people: dict[str, User | None], role: str
) -> None:
    client = client_for(people[role])
    for url in REGULATOR_ACTS + OPERATOR_ACTS + ["/supervision/notifications/read/"]:
        response = client.post(url, {})
        if role == "anonymous":
            assert response.status_code == 302, url
            assert response["Location"].startswith("/accounts/login/?next="), url
            continue
        acting = {
            **dict.fromkeys(REGULATOR_ACTS, "regulator"),
            **dict.fromkeys(OPERATOR_ACTS, "grid_operator"),
            "/supervision/notifications/read/": "household",
        }[url]
        if role != acting:
            assert response.status_code == 403, (url, role)
        elif url == "/supervision/review/1-0/":
            # No such contract under review: back to the console with a message.
            assert response.status_code == 302
            assert response["Location"] == "/console/regulator/"
        elif url == "/supervision/contracts/1-0/":
            assert response.status_code == 404  # no such contract
        elif url == "/supervision/notifications/read/":
            assert response.status_code == 302
            assert response["Location"] == "/supervision/"
        else:
            assert response.status_code == 400, url  # the empty form, its errors
    assert not SubmittedTransaction.objects.exists()


def test_the_acts_answer_only_posts(regulator: User, site: Site) -> None:
    client = client_for(regulator)
    for url in REGULATOR_ACTS:
        assert client.get(url).status_code == 405, url


def test_an_admin_sees_the_regulator_console_without_forms_to_sign(
    admin: User, flagged: Contract
) -> None:
    html = client_for(admin).get("/console/regulator/").content.decode()
    assert f'data-review="{flagged.id}"' in html
    assert "Only a regulator decides." in html
    assert "/supervision/suspend/" not in html
    assert "Only a regulator account signs supervisory acts" in html


# --- the regulator console ------------------------------------------------------------------------


def test_it_shows_the_review_queue_with_the_rules_that_flagged_each_contract(
    regulator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    html = client_for(regulator).get("/console/regulator/").content.decode()
    assert 'data-live-socket="/ws/ledger/"' in html
    regions = ("review-rows", "contract-rows", "regulator-alerts", "statistics-rows", "audit-rows")
    for region in regions:
        assert f'id="{region}"' in html
    # Each section follows what changes it (ledger.live): the grid (contracts load feeders),
    # the acts (the audit log, decisions on the review queue, vetoes in the contracts list), or
    # both.
    assert 'data-live-target="#supervision-live" data-live-targeted' in html
    assert html.count('hx-trigger="live:refresh from:#supervision-live, live:row') == 4
    assert 'id="contract-rows" data-live-topic="verdicts"' in html
    # The audit log reads only the acts after its cursor on an act's hint (static/js/audit.js)
    # and the whole log again on a reconnect.
    assert 'id="audit-rows" data-live-topic="acts" data-audit-through="' in html
    assert 'hx-trigger="live:refresh from:#supervision-live" hx-swap="innerHTML"' in html
    assert "js/audit.js" in html
    assert 'id="statistics-rows" data-live-topic="grid"' in html
    assert 'id="review-rows" data-live-topic="grid acts"' in html
    assert f'data-review="{flagged.id}"' in html
    assert '<li data-rule="size"><strong>size</strong>: 6,000 Wh is more than 5,000 Wh</li>' in html
    assert prosumer.name in html
    assert consumer.name in html
    assert "6 kWh" in html
    assert "€0.20/kWh" in html  # the resting sell order's price
    # How long the regulator has to decide: the slot's delivery starts in so long.
    left = re.search(r'<span data-testid="time-left">delivery in ([^<]+)</span>', html)
    assert left is not None
    assert re.fullmatch(
        r"\d+(\xa0|\s)minutes?|\d+(\xa0|\s)hours?(, \d+(\xa0|\s)minutes?)?", left[1]
    )
    for decision in ("clear", "veto", "curtail"):
        assert f'name="review-{flagged.id}-decision" value="{decision}"' in html
    # What is typed stays when a block re-fetches the queue.
    assert f'id="id_review-{flagged.id}-reason"' in html
    assert 'hx-preserve="true"' in html


def test_it_shows_the_statistics_of_each_slot_with_an_alert_for_a_dominant_seller(
    regulator: User, flagged: Contract, prosumer: User
) -> None:
    html = client_for(regulator).get("/console/regulator/statistics/rows/").content.decode()
    assert f'data-slot="{flagged.slot.isoformat()}" data-alert="concentration"' in html
    assert "6 kWh" in html
    assert f"{prosumer.name}:" in html
    assert "(100.00 %)" in html
    assert 'data-alert="seller_share">Alert: above the 50.00 % threshold' in html
    alerts = client_for(regulator).get("/console/regulator/alerts/").content.decode()
    assert 'data-alert="seller_share"' in alerts
    assert "Trading is not suspended anywhere." in alerts


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (1_500, 3, "1.5"),
        (2_000, 3, "2"),
        (1, 3, "0.001"),
        (1_234_567, 3, "1234.567"),
        (25, 2, "0.25"),
        (-5, 2, "-0.05"),
        (7, 0, "7"),
        (None, 3, ""),
        (True, 3, ""),
    ],
)
def test_scaled_writes_an_integer_as_a_plain_decimal_for_a_chart(
    value: object, places: int, text: str
) -> None:
    assert scaled(value, places) == text


def _statistics_rows(html: str) -> list[dict[str, str]]:
    """The chart's numbers on each row of the statistics table, in the table's order."""
    found = []
    for row in re.findall(r"<tr [^>]*data-statistics[^>]*>", html):
        found.append(dict(re.findall(r'(data-[a-z-]+)(?:="([^"]*)")?', row)))
    return found


def test_the_statistics_chart_reads_each_slots_volume_price_and_concentration_from_its_row(
    site: Site, regulator: User, prosumer: User, consumer: User, outsider: User
) -> None:
    older, newer = (slot.start for slot in market_selectors.slot_list()[2:4])
    parties = {"buyer": address(consumer)}
    ContractFactory(slot=older, seller=address(prosumer), energy_wh=1_500, price=120, **parties)
    ContractFactory(slot=newer, seller=address(prosumer), energy_wh=1_000, price=20, **parties)
    ContractFactory(slot=newer, seller=address(outsider), energy_wh=1_000, price=31, **parties)
    ContractFactory(  # left out: vetoed
        slot=newer, seller=address(prosumer), energy_wh=9_000, price=99, vetoed=True, **parties
    )
    html = client_for(regulator).get("/console/regulator/statistics/rows/").content.decode()
    # Newest first, as the table reads; the chart reverses them. kWh and € per kWh, exactly;
    # a seller with exactly the threshold's 50 % is not above it.
    assert _statistics_rows(html) == [
        {
            "data-slot": newer.isoformat(),
            "data-statistics": "",
            "data-slot-label": when(newer),
            "data-volume-kwh": "2",
            "data-median-price": "0.25",  # (20 + 31) // 2 minor units
            "data-top-share": "50.00 %",
        },
        {
            "data-slot": older.isoformat(),
            "data-alert": "concentration",
            "data-statistics": "",
            "data-slot-label": when(older),
            "data-volume-kwh": "1.5",
            "data-median-price": "1.2",
            "data-top-share": "100.00 %",
        },
    ]
    console = client_for(regulator).get("/console/regulator/").content.decode()
    assert (
        '<canvas data-statistics-chart="#statistics-rows" data-threshold="50.00 %"\n'
        '              data-price-unit="€ per kWh" role="img"'
    ) in console
    assert 'src="/static/js/statistics.js" defer' in console
    assert "the newest 24 slots with contracts, oldest on the left" in console


def test_an_act_needs_a_reason_and_without_one_nothing_is_signed(
    regulator: User, flagged: Contract
) -> None:
    client = client_for(regulator)
    cases = [
        ("/supervision/suspend/", "suspend", {"suspend-scope": "market"}),
        ("/supervision/resume/", "resume", {"resume-scope": "market"}),
        (
            "/supervision/account/",
            "account",
            {"account-act": "restrict", "account-address": flagged.seller},
        ),
        (
            "/supervision/contract/",
            "contract",
            {"contract-act": "veto", "contract-contract": flagged.id},
        ),
        (
            f"/supervision/review/{flagged.id}/",
            f"review-{flagged.id}",
            {f"review-{flagged.id}-decision": "veto"},
        ),
    ]
    for url, prefix, data in cases:
        for reason in ("", "   "):
            response = client.post(url, data | {f"{prefix}-reason": reason, "confirmed": "yes"})
            assert response.status_code == 400, url
            html = response.content.decode()
            assert (
                f'<p class="field-error" id="id_{prefix}-reason_error">Error: Give a reason: '
                "every supervisory act records why.</p>"
            ) in html, url
            assert "Nothing was signed." in html
    assert not SubmittedTransaction.objects.exists()


def test_a_curtailment_must_cut_the_contract(regulator: User, flagged: Contract) -> None:
    prefix = f"review-{flagged.id}"
    response = client_for(regulator).post(
        f"/supervision/review/{flagged.id}/",
        {
            f"{prefix}-decision": "curtail",
            f"{prefix}-reason": "Too large for the feeder",
            f"{prefix}-energy": "6",
            f"{prefix}-energy_unit": "kWh",
            "confirmed": "yes",
        },
    )
    assert response.status_code == 400
    assert (
        f'id="id_{prefix}-energy_error">Error: A curtailment cuts the contract below its 6 kWh; '
        "enter at most 5.999 kWh.</p>"
    ) in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


def _act_cases(contract: Contract) -> list[tuple[str, dict[str, str], str, dict[str, Any]]]:
    """(url, form data, transaction type, payload) for every act with its preconditions met."""
    review = f"review-{contract.id}"
    return [
        (
            f"/supervision/review/{contract.id}/",
            {f"{review}-decision": "veto", f"{review}-reason": REASON},
            "supervision.contract.veto",
            {"contract": contract.id, "reason": REASON},
        ),
        (
            f"/supervision/review/{contract.id}/",
            {f"{review}-decision": "clear", f"{review}-reason": REASON},
            "supervision.review.clear",
            {"contract": contract.id, "reason": REASON},
        ),
        (
            f"/supervision/review/{contract.id}/",
            {
                f"{review}-decision": "curtail",
                f"{review}-reason": REASON,
                f"{review}-energy": "2.5",
                f"{review}-energy_unit": "kWh",
            },
            "supervision.contract.curtail",
            {"contract": contract.id, "energy_wh": 2_500, "reason": REASON},
        ),
        (
            "/supervision/contract/",
            {"contract-act": "veto", "contract-contract": contract.id, "contract-reason": REASON},
            "supervision.contract.veto",
            {"contract": contract.id, "reason": REASON},
        ),
        (
            "/supervision/contract/",
            {
                "contract-act": "curtail",
                "contract-contract": contract.id,
                "contract-energy": "4000",
                "contract-energy_unit": "Wh",
                "contract-reason": REASON,
            },
            "supervision.contract.curtail",
            {"contract": contract.id, "energy_wh": 4_000, "reason": REASON},
        ),
        (
            "/supervision/suspend/",
            {"suspend-scope": f"feeder:{FEEDER}", "suspend-reason": REASON},
            "supervision.trading.suspend",
            {"scope": f"feeder:{FEEDER}", "reason": REASON, "until": 0},
        ),
        (
            "/supervision/account/",
            {
                "account-act": "restrict",
                "account-address": contract.buyer,
                "account-reason": REASON,
            },
            "supervision.account.restrict",
            {"address": contract.buyer, "reason": REASON},
        ),
    ]


@pytest.mark.parametrize("case", range(7))
def test_a_confirmed_act_submits_exactly_one_transaction_of_its_type(
    regulator: User, flagged: Contract, case: int
) -> None:
    url, data, type_, payload = _act_cases(flagged)[case]
    client = client_for(regulator)

    # Checked, then shown for confirmation: nothing is signed yet.
    confirm = client.post(url, data)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'data-testid="confirmation"' in html
    assert REASON in html
    assert 'name="confirmed" value="yes"' in html
    assert not SubmittedTransaction.objects.exists()

    done = client.post(url, data | {"confirmed": "yes"}, follow=True)
    assert done.redirect_chain == [("/console/regulator/", 302)]
    assert submitted() == {"type": type_, "payload": payload}
    assert TAKES_EFFECT in done.content.decode()


def test_a_suspension_with_an_end_signs_it_in_ms(regulator: User, site: Site) -> None:
    from datetime import timedelta

    from django.utils import timezone

    end = (timezone.localtime() + timedelta(hours=2)).replace(second=0, microsecond=0)
    data = {
        "suspend-scope": "market",
        "suspend-until": end.strftime("%Y-%m-%dT%H:%M"),
        "suspend-reason": REASON,
        "confirmed": "yes",
    }
    assert client_for(regulator).post("/supervision/suspend/", data).status_code == 302
    assert submitted()["payload"] == {
        "scope": "market",
        "reason": REASON,
        "until": ms_of_datetime(end),
    }


def test_a_suspension_cannot_end_in_the_past(regulator: User, site: Site) -> None:
    data = {
        "suspend-scope": "market",
        "suspend-until": "2020-01-01T10:00",
        "suspend-reason": REASON,
        "confirmed": "yes",
    }
    response = client_for(regulator).post("/supervision/suspend/", data)
    assert response.status_code == 400
    assert "Error: The end of a suspension is a time in the future." in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


def test_a_refused_act_shows_the_plain_message_beside_its_field(
    regulator: User, site: Site, prosumer: User
) -> None:
    client = client_for(regulator)
    response = client.post(
        "/supervision/resume/",
        {"resume-scope": "market", "resume-reason": REASON, "confirmed": "yes"},
    )
    assert response.status_code == 400
    assert "Trading there is not suspended." in response.content.decode()

    response = client.post(
        "/supervision/contract/",
        {
            "contract-act": "veto",
            "contract-contract": "1-0",
            "contract-reason": REASON,
            "confirmed": "yes",
        },
    )
    assert response.status_code == 400
    assert (
        'id="id_contract-contract_error">Error: No such contract.</p>' in response.content.decode()
    )

    response = client.post(
        "/supervision/account/",
        {
            "account-act": "defaults_reset",
            "account-address": prosumer.identity.address,
            "account-reason": REASON,
            "confirmed": "yes",
        },
    )
    assert response.status_code == 400
    assert "That account has no unsettled defaults." in response.content.decode()
    assert not SubmittedTransaction.objects.exists()


# --- from the act to what the household sees -----------------------------------------------------


def test_a_veto_from_the_review_queue_reaches_the_households_pages(
    site: Site, regulator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    prefix = f"review-{flagged.id}"
    data = {f"{prefix}-decision": "veto", f"{prefix}-reason": REASON, "confirmed": "yes"}
    assert client_for(regulator).post(f"/supervision/review/{flagged.id}/", data).status_code == 302
    commit_pending(site)

    flagged.refresh_from_db()
    assert flagged.vetoed
    assert ReviewItem.objects.get(contract=flagged).status == "vetoed"
    console = client_for(regulator)
    assert (
        "No contract is waiting for review."
        in console.get("/console/regulator/review/rows/").content.decode()
    )
    act = SupervisoryAct.objects.get(type="supervision.contract.veto")
    audit = console.get("/console/regulator/audit/rows/").content.decode()
    assert f'<tr data-act="{act.tx}" data-type="supervision.contract.veto">' in audit
    assert f"Vetoed contract {flagged.id}" in audit
    assert "<td>Regulator</td>" in audit
    assert regulator.name in audit
    assert REASON in audit
    assert f'href="/ledger/tx/{act.tx}/"' in audit

    for household in (prosumer, consumer):
        client = client_for(household)
        contracts = client.get("/market/contracts/").content.decode()
        assert f'<tr data-contract="{flagged.id}" data-vetoed="true">' in contracts
        assert f"<strong>Vetoed</strong> by a regulator: {REASON}" in contracts

        page = client.get("/supervision/").content.decode()
        assert f"Vetoed contract {flagged.id}" in page
        assert f'href="/ledger/tx/{act.tx}/"' in page
        assert 'data-read="no"' in page
        assert "1 unread." in page
        assert 'Supervision <span class="badge">(1 unread)</span>' in page  # the nav

        read = client.post("/supervision/notifications/read/", follow=True)
        assert read.redirect_chain == [("/supervision/", 302)]
        html = read.content.decode()
        assert "No unread notifications." in html
        assert 'data-read="yes"' in html
        assert "(1 unread)" not in html
    assert not Notification.objects.filter(read=False).exists()


def test_a_curtailment_shows_the_new_energy_and_the_reason(
    site: Site, regulator: User, flagged: Contract, prosumer: User
) -> None:
    data = {
        "contract-act": "curtail",
        "contract-contract": flagged.id,
        "contract-energy": "4",
        "contract-energy_unit": "kWh",
        "contract-reason": REASON,
        "confirmed": "yes",
    }
    assert client_for(regulator).post("/supervision/contract/", data).status_code == 302
    commit_pending(site)
    contracts = client_for(prosumer).get("/market/contracts/").content.decode()
    assert f"<strong>Curtailed</strong> from 6 kWh to 4 kWh by a regulator: {REASON}" in contracts


def test_a_feeder_suspension_shows_on_the_order_form_and_the_transparency_page(
    site: Site, regulator: User, prosumer: User
) -> None:
    household = client_for(prosumer)
    assert 'data-testid="trading-stop"' not in household.get("/market/").content.decode()
    assert "trading-stop" not in household.get("/supervision/trading-stop/").content.decode()

    data = {"suspend-scope": f"feeder:{FEEDER}", "suspend-reason": REASON, "confirmed": "yes"}
    assert client_for(regulator).post("/supervision/suspend/", data).status_code == 302
    commit_pending(site)
    assert Suspension.objects.get().scope == f"feeder:{FEEDER}"

    notice = f"Trading on feeder {FEEDER} is suspended: {REASON}"
    market = household.get("/market/").content.decode()
    assert 'id="market-trading-stop"' in market
    assert notice in market
    assert notice in household.get("/supervision/trading-stop/").content.decode()
    page = household.get("/supervision/").content.decode()
    assert notice in page
    assert f'<li data-suspension="feeder:{FEEDER}">' in page
    assert f"Suspended trading on feeder {FEEDER}" in page

    alerts = client_for(regulator).get("/console/regulator/alerts/").content.decode()
    assert f'<li data-suspension="feeder:{FEEDER}">' in alerts

    data = {"resume-scope": f"feeder:{FEEDER}", "resume-reason": "Repaired", "confirmed": "yes"}
    assert client_for(regulator).post("/supervision/resume/", data).status_code == 302
    assert submitted()["type"] == "supervision.trading.resume"
    commit_pending(site)
    assert "trading-stop" not in household.get("/supervision/trading-stop/").content.decode()


def test_a_restriction_shows_on_the_order_form(site: Site, regulator: User, consumer: User) -> None:
    address = consumer.identity.address
    data = {
        "account-act": "restrict",
        "account-address": address,
        "account-reason": "Unpaid deposits",
        "confirmed": "yes",
    }
    assert client_for(regulator).post("/supervision/account/", data).status_code == 302
    commit_pending(site)
    notice = "A regulator restricted your account; it may not trade: Unpaid deposits"
    assert notice in client_for(consumer).get("/market/").content.decode()

    data |= {"account-act": "reinstate", "account-reason": "Paid"}
    assert client_for(regulator).post("/supervision/account/", data).status_code == 302
    assert submitted() == {
        "type": "supervision.account.reinstate",
        "payload": {"address": address, "reason": "Paid"},
    }


# --- the grid operator console -------------------------------------------------------------------


def test_the_operator_console_shows_loading_as_a_chart_and_a_table(
    grid_operator: User, flagged: Contract
) -> None:
    html = client_for(grid_operator).get("/console/operator/").content.decode()
    assert 'data-loading-chart="#loading-rows"' in html
    assert "js/loading.js" in html
    assert "chart.umd.min.js" in html
    assert 'data-testid="loading-table"' in html
    # f1 carries 1,000,000 W for 15 minutes: 250,000 Wh each way; 6,000 Wh is 2 %.
    assert f'data-feeder="{FEEDER}" data-export-pct="2" data-import-pct="2"' in html
    assert '<td class="num">250000</td>' in html
    assert f'<tr data-feeder="{FEEDER}">' in html  # the topology
    assert "The whole grid: normal" in html
    # No control that moves money but the grid operator's own issuing (top-up) and enrolment
    # (of households, and of the storage providers and retailers it opens).
    actions = set(re.findall(r'action="([^"]*)"', html))
    household_controls = re.compile(r"/console/operator/households/[0-9]+/(enrol|top-up)/")
    assert {a for a in actions if not household_controls.fullmatch(a)} == {
        "/supervision/feeders/publish/",
        "/supervision/grid-state/",
        "/supervision/alerts/acknowledge/",  # the site's own record: nothing on the ledger
        "/accounts/logout/",
        "/console/operator/#households-heading",  # finding households: a GET, changes nothing
        "/console/operator/#accounts-heading",  # finding accounts: a GET too
        "/console/operator/participants/register/",  # a new account, on the ledger: no money
    }
    assert 'method="get" action="/console/operator/#households-heading"' in html


def test_the_grid_operator_publishes_a_feeder_and_declares_the_grid_state(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    client = client_for(grid_operator)
    publish = {
        "feeder-feeder": "f2",
        "feeder-export_limit_kw": "50",
        "feeder-import_limit_kw": "40.5",
    }
    assert client.post("/supervision/feeders/publish/", publish).status_code == 200  # confirm
    assert not SubmittedTransaction.objects.exists()
    bad = client.post(
        "/supervision/feeders/publish/",
        publish | {"feeder-export_limit_kw": "5.0005", "confirmed": "yes"},
    )
    assert bad.status_code == 400
    assert "Error: A limit has at most three decimals in kW" in bad.content.decode()
    assert not SubmittedTransaction.objects.exists()
    done = client.post("/supervision/feeders/publish/", publish | {"confirmed": "yes"})
    assert done.status_code == 302
    assert done["Location"] == "/console/operator/"
    assert submitted() == {
        "type": "grid.feeder.publish",
        "payload": {"feeder": "f2", "export_limit_w": 50_000, "import_limit_w": 40_500},
    }
    commit_pending(site)
    rows = client.get("/console/operator/grid/rows/").content.decode()
    assert '<tr data-feeder="f2">' in rows
    assert '<td class="num">50 kW</td>' in rows
    assert '<td class="num">40.5 kW</td>' in rows

    declare = {"grid-scope": f"feeder:{FEEDER}", "grid-state": "high_load", "confirmed": "yes"}
    response = client.post("/supervision/grid-state/", declare | {"grid-reason": ""})
    assert response.status_code == 400
    assert "Error: Give a reason" in response.content.decode()
    assert not SubmittedTransaction.objects.exists()
    assert (
        client.post("/supervision/grid-state/", declare | {"grid-reason": "Heat wave"}).status_code
        == 302
    )
    assert submitted() == {
        "type": "grid.state.declare",
        "payload": {"scope": f"feeder:{FEEDER}", "state": "high_load", "reason": "Heat wave"},
    }
    commit_pending(site)
    notice = f"The grid operator declared feeder {FEEDER} under high load: Heat wave"
    assert notice in client_for(prosumer).get("/market/").content.decode()
    assert (
        f"Feeder {FEEDER} is declared high load: Heat wave"
        in client.get("/console/operator/alerts/").content.decode()
    )


def test_the_regulator_picks_accounts_and_contracts_instead_of_pasting_ids(
    regulator: User, grid_operator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    html = client_for(regulator).get("/console/regulator/").content.decode()
    assert 'list="account-picker"' in html
    assert 'list="contract-picker"' in html
    assert f'<option value="{prosumer.identity.address}">{prosumer.name}</option>' in html
    picked = re.search(rf'<option value="{flagged.id}">([^<]+)</option>', html)
    assert picked is not None
    assert f"{prosumer.name} to {consumer.name} · 6 kWh at €0.20/kWh" in picked[1]
    # A row action on the accounts list opens the account form with the address filled in.
    action = f"/console/regulator/?account={prosumer.identity.address}#account-act-heading"
    assert f'href="{action}"' in html
    filled = client_for(regulator).get(action.split("#")[0]).content.decode()
    assert f'value="{prosumer.identity.address}"' in filled
    # The grid operator's list of accounts has no such action.
    operator_page = client_for(grid_operator).get("/console/operator/").content.decode()
    assert "?account=" not in operator_page


def test_a_households_page_shows_the_consoles_its_contracts_acts_and_transactions(
    site: Site,
    regulator: User,
    grid_operator: User,
    flagged: Contract,
    prosumer: User,
    consumer: User,
) -> None:
    url = f"/console/households/{prosumer.pk}/"
    console = client_for(regulator).get("/console/regulator/").content.decode()
    assert f'href="{url}"' in console  # linked from the accounts list
    page = client_for(regulator).get(url).content.decode()
    assert f"<h1>{prosumer.name}</h1>" in page
    assert f'<tr data-contract="{flagged.id}">' in page
    assert ">sold<" in page
    assert f'href="/ledger/address/{prosumer.identity.address}/"' in page
    assert "market.order.place" in page  # its own transaction, from the chain
    assert f"?account={prosumer.identity.address}#account-act-heading" in page
    operator_page = client_for(grid_operator).get(url).content.decode()
    assert "Approve or top it up on the console" in operator_page
    operator_console = client_for(grid_operator).get("/console/operator/").content.decode()
    assert f'href="{url}"' in operator_console  # linked from the households table
    # A household sees no one's page, its own included; a non-household is no household page.
    assert client_for(consumer).get(url).status_code == 403
    assert client_for(regulator).get(f"/console/households/{regulator.pk}/").status_code == 404


def test_a_households_page_lists_a_restriction_committed_on_it(
    site: Site, regulator: User, grid_operator: User, consumer: User, prosumer: User
) -> None:
    address = consumer.identity.address
    url = f"/console/households/{consumer.pk}/"

    def acts_section(user: User, page_url: str = url) -> str:
        page = client_for(user).get(page_url).content.decode()
        start = page.index('<section aria-labelledby="household-acts-heading">')
        return page[start : page.index("</section>", start)]

    assert "<li>None.</li>" in acts_section(grid_operator)
    data = {
        "account-act": "restrict",
        "account-address": address,
        "account-reason": "Unpaid deposits",
        "confirmed": "yes",
    }
    assert client_for(regulator).post("/supervision/account/", data).status_code == 302
    commit_pending(site)
    act = SupervisoryAct.objects.get(type="supervision.account.restrict")
    for user in (grid_operator, regulator):
        section = acts_section(user)
        assert f'<li data-act="{act.tx}">' in section
        assert f"Restricted account {address} (Unpaid deposits)" in section
        assert f'href="/ledger/tx/{act.tx}/"' in section
    # Another household's page does not list it.
    assert act.tx not in acts_section(grid_operator, f"/console/households/{prosumer.pk}/")


def test_the_operator_console_opens_with_the_community_at_a_glance(
    grid_operator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    html = client_for(grid_operator).get("/console/operator/").content.decode()
    figures = dict(re.findall(r'<dd data-testid="summary-(\w+)">([^<]+)</dd>', html))
    assert figures["households"] == "2"
    assert figures["traded"] == "6 kWh"  # the flagged contract, made today
    assert figures["alerts"] == str(len(supervision_selectors.alerts(user=grid_operator)))
    assert figures["validators"].endswith(" up")
    assert re.fullmatch(r"\d+ %", figures["busiest"])


# --- row actions: the contracts list, a household's contracts, the review queue; the pickers -----


def _future(hours: int) -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now().replace(second=0, microsecond=0) + timedelta(hours=hours)


def _contract_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-contract="([^"]+)"', html)


def test_the_contracts_list_shows_the_undelivered_contracts_nearest_first_with_their_acts(
    regulator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    from datetime import timedelta

    seller, buyer = prosumer.identity.address, consumer.identity.address
    later = ContractFactory(slot=_future(5), seller=seller, buyer=buyer)
    vetoed = ContractFactory(slot=_future(6), seller=seller, buyer=buyer, vetoed=True)
    delivered = ContractFactory(slot=flagged.slot - timedelta(days=1), seller=seller, buyer=buyer)
    html = client_for(regulator).get("/console/regulator/").content.decode()
    assert _contract_ids(html.split('id="contract-rows"')[1].split("</tbody>")[0]) == [
        flagged.id,
        later.id,
        vetoed.id,
    ]
    assert delivered.id not in html.split('id="contract-rows"')[1]
    assert '<p data-testid="contracts-count">3 contracts; page 1 of 1.</p>' in html
    rows = client_for(regulator).get("/console/regulator/contracts/rows/").content.decode()
    assert _contract_ids(rows) == [flagged.id, later.id, vetoed.id]
    # Each row that may still change has its veto and curtail form, signed through the review
    # queue's confirmation, coming back to the list; a vetoed one says so and has none.
    back = "next=%2Fconsole%2Fregulator%2F%23contracts-heading"
    for contract in (flagged, later):
        assert f'action="/supervision/contracts/{contract.id}/?{back}"' in rows
        assert f'aria-label="Veto or curtail contract {contract.id}"' in rows
    assert f"/supervision/contracts/{vetoed.id}/" not in rows
    assert '<span class="help">Vetoed.</span>' in rows
    # The parties link to their households' pages; the contract to the transaction that made it.
    assert f'<a href="/console/households/{prosumer.pk}/">{prosumer.name}</a>' in rows
    assert f'<a href="/console/households/{consumer.pk}/">{consumer.name}</a>' in rows
    assert f'href="/ledger/tx/{flagged.tx}/"' in rows


def test_the_contracts_list_is_searched_and_paged_in_the_database(
    regulator: User, admin: User, prosumer: User, consumer: User, grid_operator: User, site: Site
) -> None:
    seller, buyer = prosumer.identity.address, consumer.identity.address
    made = [ContractFactory(slot=_future(1 + n), seller=seller, buyer=buyer) for n in range(30)]
    other = UserFactory(name="Zelda Quartz")
    identity = other.identity
    theirs = ContractFactory(slot=_future(40), seller=identity.address, buyer=buyer)
    client = client_for(regulator)

    first = client.get("/console/regulator/contracts/rows/").content.decode()
    assert _contract_ids(first) == [c.id for c in made[:25]]  # nearest slot first
    second = client.get("/console/regulator/contracts/rows/?contracts=2").content.decode()
    assert _contract_ids(second) == [c.id for c in made[25:]] + [theirs.id]
    # A row's act comes back to the page it was on.
    back = "next=%2Fconsole%2Fregulator%2F%3Fcontracts%3D2%23contracts-heading"
    assert f'action="/supervision/contracts/{theirs.id}/?{back}"' in second
    odd = client.get("/console/regulator/contracts/rows/?contracts=abc").content.decode()
    assert _contract_ids(odd) == [c.id for c in made[:25]]  # no such page: the first
    page = client.get("/console/regulator/?contracts=2").content.decode()
    assert '<p data-testid="contracts-count">31 contracts; page 2 of 2.</p>' in page
    assert 'href="?contracts_q=&amp;contracts=1#contracts-heading">Previous page</a>' in page

    # By a party's name, by the start of an address, by the start of an id.
    for search in ("zelda", identity.address[:12], theirs.id):
        found = client.get("/console/regulator/contracts/rows/", {"contracts_q": search})
        assert _contract_ids(found.content.decode()) == [theirs.id], search
    none = client.get("/console/regulator/?contracts_q=nobody-at-all").content.decode()
    assert "No contract of the open and upcoming slots matches." in none
    assert '<p data-testid="contracts-count">0 contracts match; page 1 of 1.</p>' in none
    # A search that is no text is no search, and no error.
    bad = client.get("/console/regulator/contracts/rows/", {"contracts_q": "a\x00b"})
    assert bad.status_code == 200
    assert _contract_ids(bad.content.decode()) == [c.id for c in made[:25]]
    # An admin reads the list and can sign nothing; a household and the grid operator are
    # refused it.
    watched = client_for(admin).get("/console/regulator/contracts/rows/").content.decode()
    assert _contract_ids(watched) == [c.id for c in made[:25]]
    assert "/supervision/contracts/" not in watched
    for user in (prosumer, grid_operator):
        assert client_for(user).get("/console/regulator/contracts/rows/").status_code == 403


def test_a_regulator_curtails_a_contract_from_a_households_page_and_comes_back_to_it(
    site: Site, regulator: User, grid_operator: User, flagged: Contract, prosumer: User
) -> None:
    page_url = f"/console/households/{prosumer.pk}/"
    page = client_for(regulator).get(page_url).content.decode()
    back = f"%2Fconsole%2Fhouseholds%2F{prosumer.pk}%2F%23contracts-heading"
    action = f"/supervision/contracts/{flagged.id}/?next={back}"
    assert f'action="{action}"' in page
    # The grid operator reads the same page without the acts.
    operator_page = client_for(grid_operator).get(page_url).content.decode()
    assert f'<tr data-contract="{flagged.id}">' in operator_page
    assert "/supervision/contracts/" not in operator_page

    prefix = f"row-{flagged.id}"
    data = {
        f"{prefix}-decision": "curtail",
        f"{prefix}-reason": REASON,
        f"{prefix}-energy": "4",
        f"{prefix}-energy_unit": "kWh",
    }
    client = client_for(regulator)
    # Not a curtailment: the message beside the field, nothing signed.
    too_much = client.post(action, data | {f"{prefix}-energy": "6", "confirmed": "yes"})
    assert too_much.status_code == 400
    assert "A curtailment cuts the contract below its 6 kWh; enter at most 5.999 kWh." in (
        too_much.content.decode()
    )
    confirm = client.post(action, data)
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert f"<h1>Curtail contract {flagged.id}?</h1>" in html
    assert f'action="{action}"' in html  # the confirmation keeps where to come back to
    assert not SubmittedTransaction.objects.exists()
    done = client.post(action, data | {"confirmed": "yes"}, follow=True)
    assert done.redirect_chain == [(f"/console/households/{prosumer.pk}/#contracts-heading", 302)]
    assert submitted() == {
        "type": "supervision.contract.curtail",
        "payload": {"contract": flagged.id, "energy_wh": 4_000, "reason": REASON},
    }
    commit_pending(site)
    flagged.refresh_from_db()
    assert flagged.energy_wh == 4_000


def test_a_row_act_goes_back_only_to_the_consoles(regulator: User, flagged: Contract) -> None:
    prefix = f"row-{flagged.id}"
    data = {f"{prefix}-decision": "veto", f"{prefix}-reason": REASON, "confirmed": "yes"}
    client = client_for(regulator)
    for elsewhere in ("https://evil.example/console/", "//evil.example/console/", "/market/"):
        response = client.post(f"/supervision/contracts/{flagged.id}/?next={elsewhere}", data)
        assert response["Location"] == "/console/regulator/#contracts-heading", elsewhere
    assert SubmittedTransaction.objects.count() == 3  # three vetoes signed (a chain refuses two)


def test_a_vetoed_or_delivering_contract_has_no_row_act(
    regulator: User, prosumer: User, consumer: User, site: Site
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    seller, buyer = prosumer.identity.address, consumer.identity.address
    vetoed = ContractFactory(slot=_future(3), seller=seller, buyer=buyer, vetoed=True)
    started = ContractFactory(
        slot=timezone.now() - timedelta(minutes=1), seller=seller, buyer=buyer
    )
    client = client_for(regulator)
    for contract in (vetoed, started):
        prefix = f"row-{contract.id}"
        data = {f"{prefix}-decision": "veto", f"{prefix}-reason": REASON, "confirmed": "yes"}
        done = client.post(f"/supervision/contracts/{contract.id}/", data, follow=True)
        assert done.redirect_chain == [("/console/regulator/#contracts-heading", 302)]
        assert "is vetoed already or its delivery has started: it stands" in (done.content.decode())
    assert not SubmittedTransaction.objects.exists()


def test_a_regulator_restricts_a_party_from_the_review_queue(
    regulator: User, flagged: Contract, prosumer: User, consumer: User
) -> None:
    client = client_for(regulator)
    rows = client.get("/console/regulator/review/rows/").content.decode()
    links = {}
    for side, user in (("seller", prosumer), ("buyer", consumer)):
        link = (
            f"/console/regulator/?account={user.identity.address}&amp;account_act=restrict"
            "#account-act-heading"
        )
        assert f'href="{link}" aria-label="Restrict the {side}, {user.name}"' in rows
        links[side] = link.replace("&amp;", "&").split("#")[0]
    filled = client.get(links["buyer"]).content.decode()
    assert f'name="account-address" value="{consumer.identity.address}"' in filled
    assert re.search(r'<input type="radio" name="account-act" value="restrict"[^>]*checked', filled)
    # The same pre-fill for a contract.
    contract = client.get(
        "/console/regulator/", {"contract": flagged.id, "contract_act": "curtail"}
    ).content.decode()
    assert f'name="contract-contract" value="{flagged.id}"' in contract
    assert re.search(
        r'<input type="radio" name="contract-act" value="curtail"[^>]*checked', contract
    )
    odd = client.get("/console/regulator/", {"contract_act": "drop", "account": "x" * 500})
    assert odd.status_code == 200  # nothing to fill in, and no error


def test_the_pickers_search_the_server_for_a_regulator_only(
    regulator: User,
    admin: User,
    grid_operator: User,
    flagged: Contract,
    prosumer: User,
    consumer: User,
) -> None:
    client = client_for(regulator)
    by_name = client.get("/supervision/picks/accounts/", {"q": prosumer.name[:5].lower()})
    assert by_name.status_code == 200
    assert {"value": prosumer.identity.address, "label": prosumer.name} in by_name.json()["picks"]
    assert consumer.identity.address not in {p["value"] for p in by_name.json()["picks"]}
    by_address = client.get("/supervision/picks/accounts/", {"q": consumer.identity.address[:9]})
    assert by_address.json()["picks"] == [
        {"value": consumer.identity.address, "label": consumer.name}
    ]
    contracts = client.get("/supervision/picks/contracts/", {"q": consumer.name}).json()["picks"]
    assert [p["value"] for p in contracts] == [flagged.id]
    assert f"{prosumer.name} to {consumer.name} · 6 kWh at €0.20/kWh" in contracts[0]["label"]
    assert client.get("/supervision/picks/contracts/", {"q": "9-9"}).json() == {"picks": []}
    # Only a regulator picks: everyone else, signed in or not, gets a 403 with its code.
    for user in (None, prosumer, grid_operator, admin):
        for kind in ("accounts", "contracts"):
            refused = client_for(user).get(f"/supervision/picks/{kind}/", {"q": "a"})
            assert refused.status_code == 403
            assert refused.json()["code"] == "forbidden"
    # A search that is no text is a clear 400, never a 500.
    for q, message in (
        ("x" * 101, "Search for at most 100 characters."),
        ("a\x00b", "Search for printable text only."),
    ):
        bad = client.get("/supervision/picks/accounts/", {"q": q})
        assert bad.status_code == 400
        assert bad.json() == {"code": "bad_search", "message": message}


def test_the_pickers_find_any_of_many_households(regulator: User, site: Site) -> None:
    from gridplatform.accounts.models import Identity, Role

    for n in range(60):
        UserFactory(name=f"Household {n:03d}")
    assert Identity.objects.filter(user__role=Role.HOUSEHOLD).count() > 60
    client = client_for(regulator)
    page = client.get("/console/regulator/").content.decode()
    listed = page.split('<datalist id="account-picker">')[1].split("</datalist>")[0]
    assert listed.count("<option") == supervision_selectors.PICKS_SHOWN
    assert "Household 059" not in listed  # past the first picks, by name
    found = client.get("/supervision/picks/accounts/", {"q": "household 059"}).json()["picks"]
    assert [p["label"] for p in found] == ["Household 059"]
    assert 'data-picker="/supervision/picks/accounts/"' in page
    assert 'data-picker="/supervision/picks/contracts/"' in page
