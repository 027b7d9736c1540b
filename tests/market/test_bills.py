"""A household's bill, through the site: the supplier's tariff, meters' signed readings relayed to
the ledger, a contract, the grid operator's timer settling every due slot (one with a contract,
one with readings only), the projection, and the bill (page, CSV, printable view) equal to the
hand computation of docs/market.md, "Bills and savings"."""

from __future__ import annotations

import calendar
import csv
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from gridplatform.accounts.models import User
from gridplatform.accounts.services import identity_unseal
from ledger.identity import KeyPair
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from market import bills, figures, services
from market.models import GridSettlement, MarketAccount
from meters import services as meter_services
from meters.signing import header_value
from tests.ledger.chains import OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network
from tests.market.support import batch, reading

pytestmark = pytest.mark.django_db
SLOT_MS, GATE_MS, DELAY_MS = 900_000, 300_000, 900_000
ADA_DEVICE = KeyPair(private_key=bytes(range(7, 39)))
BEN_DEVICE = KeyPair(private_key=bytes(range(8, 40)))
VIENNA = ZoneInfo("Europe/Vienna")
TARIFF = {"from_minute": 0, "retail": 30, "feed_in": 8, "network_fee": 6}


@pytest.fixture
def settled(
    settings: Any,
    tmp_path: Path,
    grid_operator: User,
    prosumer: User,
    consumer: User,
    django_capture_on_commit_callbacks: Any,
    tasks_inline: None,
) -> int:
    """Blocks two hours old, so that both slots are due by the site's clock too. Ada
    (prosumer) sells Ben (consumer) 2,000 Wh at 20 in slot A and exports 3,000 Wh; Ben imports
    4,000 Wh in A and 900 Wh in B, the slot after, with no contract. Both slots are settled by
    the operator's timer. Returns slot A (ms)."""
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1, start_ms=recent_start_ms() - 7_200_000)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    for user in (prosumer, consumer):
        address = user.identity.address
        site.register(address, user.identity.public_key, credits=100_000)
        site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="f-1")])
    now = site.blocks[-1].timestamp_ms + 5_000
    slot = (now + GATE_MS) // SLOT_MS * SLOT_MS + SLOT_MS
    site.commit([site.sign(OPERATOR, "market.tariff.publish", from_slot=slot, bands=[TARIFF])])

    meters = {}
    with django_capture_on_commit_callbacks(execute=True):
        for user, meter_id, device in (
            (prosumer, "ada-pv", ADA_DEVICE),
            (consumer, "ben", BEN_DEVICE),
        ):
            meters[meter_id], _ = meter_services.meter_register(
                by=user,
                owner=user,
                meter_id=meter_id,
                kind="bidirectional",
                public_key=device.public_key_hex,
                feeder="f-1",
                interval_s=900,
            )
    commit_pending(site)

    def keys(user: User) -> KeyPair:
        return identity_unseal(identity_=user.identity)

    sell = site.sign(
        keys(prosumer), "market.order.place", slot=slot, side="sell", energy_wh=2_000, price=20
    )
    buy = site.sign(
        keys(consumer), "market.order.place", slot=slot, side="buy", energy_wh=2_000, price=20
    )
    assert list(site.commit([sell, buy]).results) == ["ok", "ok"]

    later = slot + SLOT_MS
    t = int(time.time())
    batches = (
        ("ada-pv", ADA_DEVICE, batch(reading(slot, 3_000, duration_s=900))),
        (
            "ben",
            BEN_DEVICE,
            batch(
                reading(slot, 0, import_wh=4_000, duration_s=900),
                reading(later, 0, import_wh=900, duration_s=900),
            ),
        ),
    )
    for meter_id, device, text in batches:
        body = text.encode()
        with django_capture_on_commit_callbacks(execute=True):
            meter_services.readings_ingest(
                meter=meters[meter_id],
                body=body,
                signature_header=header_value(device, body, t=t),
                now_s=t,
            )
    # Relayed within the settlement delay: B, with no contract, would be closed after it.
    assert set(commit_pending(site, timestamp_ms=later + SLOT_MS + 1).results) == {"ok"}
    due = later + SLOT_MS + DELAY_MS + 1

    # The timer finds both slots: A by its contract, B by the readings recorded in it.
    assert services.slots_due_for_settlement(now=datetime_of_ms(due)) == [
        datetime_of_ms(slot),
        datetime_of_ms(later),
    ]
    sent = services.slots_settle(operator=grid_operator, now=datetime_of_ms(due))
    assert [tx.payload["slot"] for tx in sent] == [slot, later]
    assert list(commit_pending(site, timestamp_ms=due + 5_000).results) == ["ok", "ok"]
    assert services.slots_due_for_settlement(now=datetime_of_ms(due)) == []
    assert not SubmittedTransaction.objects.exists()
    return slot


def day_of(slot: int) -> Any:
    return datetime_of_ms(slot).astimezone(VIENNA).date()


def test_the_bill_equals_the_hand_computation(settled: int, prosumer: User, consumer: User) -> None:
    slot = settled
    assert GridSettlement.objects.filter(account=consumer.identity.address).count() == 2
    # Slots A and B may straddle midnight: the bills of the days holding them, together.
    t = bills.Totals()
    starts = []
    for day in sorted({day_of(slot), day_of(slot + SLOT_MS)}):
        ben = bills.household_bill(user=consumer, period=bills.DAY, day=day, zone=VIENNA)
        t.add(ben.totals)
        starts += [row.start for row in ben.rows]
    assert starts == [datetime_of_ms(slot), datetime_of_ms(slot + SLOT_MS)]
    # Slot A: 2,000 Wh from Ada at 20 = 40; 2,000 Wh from the grid: 60 + 12.
    # Slot B: 900 Wh from the grid: 27 + 5 (900 x 6 / 1,000 = 5.4, rounded down).
    assert (t.p2p_bought_wh, t.p2p_bought, t.p2p_fees) == (2_000, 40, 0)
    assert (t.grid_import_wh, t.grid_import_cost, t.grid_fees) == (2_900, 87, 17)
    assert (t.import_wh, t.metered_slots) == (4_900, 2)
    assert t.cost == 40 + 87 + 17 == 144
    # Without the community: A 4,000 Wh at 30 and 6 = 120 + 24; B 27 + 5.
    assert t.baseline == 144 + 32 == 176
    assert (t.saving, str(t.saving_percent)) == (32, "18.2")  # 32 / 176 = 18.18 %

    day = day_of(slot)
    ada = bills.household_bill(user=prosumer, period=bills.MONTH, day=day, zone=VIENNA)
    t = ada.totals
    # 2,000 Wh to Ben for 40; 1,000 Wh to the grid at 8 = 8. Alone: 3,000 Wh at 8 = 24.
    assert (t.p2p_sold_wh, t.p2p_sold, t.grid_export_wh, t.feed_in) == (2_000, 40, 1_000, 8)
    assert (t.cost, t.baseline, t.saving, str(t.saving_percent)) == (-48, -24, 24, "100.0")
    assert t.grid_import_wh == 0  # Ben's import is his alone
    assert len(ada.rows) == calendar.monthrange(day.year, day.month)[1]  # a row a day


def test_the_bill_page_csv_and_printable_view(
    settled: int, consumer: User, prosumer: User, client: Client
) -> None:
    """Ben's bill for the day of slot A: A alone (112, alone 144), or with B when B falls on
    the same day (144, alone 176): he saved 32 either way. Both see times in their own zone."""
    for user in (consumer, prosumer):
        user.time_zone = "Europe/Vienna"
        user.save(update_fields=["time_zone"])
    client.force_login(consumer)
    day = day_of(settled).isoformat()
    both = day_of(settled + SLOT_MS) == day_of(settled)
    net, baseline, percent = ("1.44", "1.76", "18.2") if both else ("1.12", "1.44", "22.2")
    page = client.get("/market/bill/", {"period": "day", "date": day})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="bill-saved">€0.32<' in html
    assert f"{percent} %" in html
    assert f'data-testid="bill-net">-€{net}<' in html
    assert f'data-testid="bill-baseline">-€{baseline}<' in html
    assert "Bought from the grid, at retail" in html

    response = client.get("/market/bill.csv", {"period": "day", "date": day})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="bill-day-{day}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["slot_start"] for row in rows[:-1]] == [
        datetime_of_ms(settled + n * SLOT_MS).astimezone(VIENNA).isoformat()
        for n in range(2 if both else 1)
    ]
    total = rows[-1]
    assert total["slot_start"] == "total"
    assert total["cost_minor_units"] == net.replace(".", "").lstrip("0")
    assert total["without_community_minor_units"] == baseline.replace(".", "").lstrip("0")
    assert total["saving_minor_units"] == "32"
    assert sum(int(row["grid_import_Wh"]) for row in rows[:-1]) == (2_900 if both else 2_000)

    printable = client.get("/market/bill/", {"period": "day", "date": day, "print": "1"})
    assert printable.status_code == 200
    assert b'class="printable"' in printable.content
    assert b"Bill of Ben Buyer" in printable.content
    assert b'class="site-header"' not in printable.content

    # Another household's bill holds nothing of Ben's: Ada saved 24 (100 %).
    client.force_login(prosumer)
    html = client.get("/market/bill/", {"period": "day", "date": day}).content.decode()
    assert 'data-testid="bill-saved">€0.24<' in html
    assert "100.0 %" in html


def test_a_bad_period_or_date_is_a_clear_error(consumer: User, client: Client) -> None:
    client.force_login(consumer)
    for query in ({"period": "year"}, {"date": "6 Dec"}):
        response = client.get("/market/bill/", query)
        assert response.status_code == 400
        assert b'data-testid="bill-error"' in response.content
        assert client.get("/market/bill.csv", query).status_code == 400
    empty = client.get("/market/bill/", {"period": "day", "date": "2026-01-01"})
    assert empty.status_code == 200
    assert b'data-testid="bill-empty"' in empty.content


def test_only_households_have_bills(grid_operator: User, client: Client) -> None:
    client.force_login(grid_operator)
    assert client.get("/market/bill/").status_code == 403


def test_a_day_is_its_local_day_across_a_change_of_daylight_saving_time() -> None:
    start, end = bills.period_bounds(bills.DAY, day_of(0).replace(2026, 10, 25), VIENNA)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=25)
    start, end = bills.period_bounds(bills.MONTH, day_of(0).replace(2026, 2, 14), VIENNA)
    assert (start.day, end.month, end.day) == (1, 3, 1)


def test_community_figures_for_a_household_and_its_community(
    settled: int, prosumer: User, consumer: User
) -> None:
    start, end = datetime_of_ms(settled), datetime_of_ms(settled + 2 * SLOT_MS)
    ben = figures.figures(address=consumer.identity.address, start=start, end=end, zone=VIENNA)
    # Ben drew 4,900 Wh, 2,900 of them from the grid: 2,000 / 4,900 = 40.8 % from neighbours.
    assert (ben.totals.import_wh, ben.totals.grid_import_wh) == (4_900, 2_900)
    assert str(ben.totals.self_sufficiency) == str(ben.totals.local_share) == "40.8"
    assert ben.totals.self_consumption is None  # he fed nothing in
    assert str(ben.totals.p2p_price) == "20.0"  # 40 for 2,000 Wh
    assert str(ben.totals.retail) == "30.0"
    ada = figures.figures(address=prosumer.identity.address, start=start, end=end, zone=VIENNA)
    assert str(ada.totals.self_consumption) == "66.7"  # 2,000 of 3,000 Wh to a neighbour
    assert str(ada.totals.feed_in) == "8.0"
    everyone = figures.figures(address=None, start=start, end=end, zone=VIENNA)
    assert (everyone.totals.import_wh, everyone.totals.export_wh) == (4_900, 3_000)
    assert str(everyone.totals.self_sufficiency) == "40.8"
    assert str(everyone.totals.self_consumption) == "66.7"
    assert sum(day.import_wh for _, day in everyone.days) == 4_900


def test_the_dashboard_and_the_console_show_this_months_figures(
    settled: int, prosumer: User, grid_operator: User, client: Client
) -> None:
    # Slot A was two hours ago: only in a month's first two hours is it last month's (UTC, the
    # site's zone), and this month then has nothing settled yet.
    this_month = datetime_of_ms(settled).month == datetime.now(UTC).month
    client.force_login(prosumer)
    html = client.get("/dashboard/").content.decode()
    assert 'data-testid="this-month"' in html
    assert 'data-testid="figures-days"' in html
    if this_month:
        assert 'data-figure="self-consumption-you">66.7 %<' in html
        assert "The community saved you <strong>€0.24</strong> (100.0 %)" in html
    else:
        assert 'data-figure="self-consumption-you">—<' in html
    client.force_login(grid_operator)
    html = client.get("/console/operator/").content.decode()
    assert 'data-testid="community-figures"' in html
    expected = "40.8 %" if this_month else "—"
    assert f'data-figure="self-sufficiency">{expected}<' in html


def test_the_read_model_audit_names_a_changed_line_with_the_supplier(
    settled: int, consumer: User
) -> None:
    from ledger import read_model_audit

    assert read_model_audit.read_models_compare().differences == []
    ben = consumer.identity.address
    line = GridSettlement.objects.get(account=ben, slot=datetime_of_ms(settled))
    GridSettlement.objects.filter(pk=line.pk).update(import_cost=1)
    MarketAccount.objects.filter(address=ben).update(arrears=500)
    found = {
        (d.model, d.row, d.field, d.chain, d.site)
        for d in read_model_audit.read_models_compare().differences
    }
    assert found == {
        ("GridSettlement", f"{settled}/{ben}", "import_cost", 60, 1),
        ("MarketAccount", ben, "arrears", 0, 500),
    }


def test_a_bill_says_when_trading_did_worse_than_the_grid_alone() -> None:
    """A seller who under-delivered: 24 from feed-in alone, 10 with the community."""
    t = bills.Totals(p2p_sold=30, penalties_paid=28, feed_in=8, baseline=-24, metered_slots=1)
    assert (t.cost, t.net, t.saving, t.loss) == (-10, 10, -14, 14)
    assert str(t.saving_percent) == "-58.3"
