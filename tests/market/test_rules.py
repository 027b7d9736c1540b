"""Trigger trading: standing rules turned into ordinary signed orders by the latest readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from market import rules, selectors
from market.models import Order, RuleOrder, StandingRule
from market.rules import Flow, RuleError
from meters import relay
from meters.models import ReadingBatch
from tests.ledger.chains import OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, use_network
from tests.meters.support import register, store_readings

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # the flow's own interval: not used to pick the slot


def flow(import_wh: int, export_wh: int) -> Flow:
    """A 15-minute interval (the test network's slot): its forecast is itself."""
    return Flow(NOW, import_wh=import_wh, export_wh=export_wh, duration_s=900)


@pytest.fixture
def site(settings: Any, tmp_path: Path, prosumer: User) -> Site:
    chain = build_chain(1, 1, start_ms=recent_start_ms())
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    address = prosumer.identity.address
    site.register(address, prosumer.identity.public_key, credits=100_000)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=address, feeder="f-1")])
    return site


def pending_orders() -> list[tuple[str, int, int]]:
    return [
        (
            row.body["payload"]["side"],
            row.body["payload"]["energy_wh"],
            row.body["payload"]["price"],
        )
        for row in SubmittedTransaction.objects.order_by("id")
    ]


def test_a_sell_rule_sells_the_surplus_above_its_threshold_once_per_slot(
    site: Site, prosumer: User
) -> None:
    rule = rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=300, price=18)
    assert rules.rules_apply(owner=prosumer, latest=flow(200, 400)) == []
    [tx] = rules.rules_apply(owner=prosumer, latest=flow(200, 1_500))
    assert pending_orders() == [("sell", 1_000, 18)]
    assert tx.payload["slot"] == int(selectors.slot_list()[0].start.timestamp()) * 1_000
    # The same slot again: the rule has placed its order for it already.
    assert rules.rules_apply(owner=prosumer, latest=flow(0, 9_000)) == []
    commit_pending(site)
    order = Order.objects.get(id=tx.id)
    assert (order.side, order.energy_wh, order.price) == ("sell", 1_000, 18)
    made = rules.rule_of_orders(order_ids=[order.id])[order.id]
    assert (made.rule, made.forecast_wh, made.threshold_wh, made.price) == (rule, 1_300, 300, 18)


def test_a_buy_rule_buys_what_is_needed_up_to_its_cap(site: Site, prosumer: User) -> None:
    rules.rule_create(owner=prosumer, kind="buy_up_to", energy_wh=500, price=30)
    assert rules.rules_apply(owner=prosumer, latest=flow(100, 100)) == []
    rules.rules_apply(owner=prosumer, latest=flow(800, 100))
    assert pending_orders() == [("buy", 500, 30)]


def test_a_relayed_batch_of_the_households_meter_drives_its_rules(
    site: Site, prosumer: User
) -> None:
    rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=300, price=18)
    pv = register(prosumer, "roof-pv", kind="pv").meter
    # The latest interval of the batch is what the rule sees: 1,500 - 200 Wh, 300 kept.
    store_readings(pv, (NOW, 900, 100), (NOW + timedelta(minutes=15), 200, 1_500))
    relay.batch_relay(ReadingBatch.objects.get())  # the meters' signal: the market's rules react
    assert pending_orders() == [("sell", 1_000, 18)]


def test_a_heat_meters_readings_drive_no_rule_and_count_in_no_forecast(
    site: Site, prosumer: User
) -> None:
    """Rules trade electricity: a heat meter's kWh thermal are no surplus of electricity."""
    rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=300, price=18)
    loop = register(prosumer, "loop-heat", kind="heat").meter
    store_readings(loop, (NOW, 0, 5_000))
    relay.batch_relay(ReadingBatch.objects.get())
    assert pending_orders() == []
    assert rules.slot_sums(owner=prosumer, windows=[(NOW, NOW + timedelta(hours=1))]) == {}


def test_a_refused_order_leaves_the_rule_free_to_try_again(
    site: Site, prosumer: User, consumer: User
) -> None:
    # The consumer is not on the ledger: its order is refused at rehearsal.
    rules.rule_create(owner=consumer, kind="buy_up_to", energy_wh=500, price=30)
    assert rules.rules_apply(owner=consumer, latest=flow(800, 0)) == []
    assert not RuleOrder.objects.exists()
    assert not SubmittedTransaction.objects.exists()


def test_it_refuses_bad_rules_and_stops_rules(site: Site, prosumer: User, regulator: User) -> None:
    cases = [
        ({"owner": regulator, "kind": "sell_surplus", "energy_wh": 1, "price": 1}, "not_allowed"),
        ({"owner": prosumer, "kind": "hoard", "energy_wh": 1, "price": 1}, "bad_kind"),
        ({"owner": prosumer, "kind": "sell_surplus", "energy_wh": -1, "price": 1}, "bad_energy"),
        ({"owner": prosumer, "kind": "sell_surplus", "energy_wh": 1.5, "price": 1}, "bad_energy"),
        ({"owner": prosumer, "kind": "buy_up_to", "energy_wh": 0, "price": 1}, "bad_energy"),
        ({"owner": prosumer, "kind": "buy_up_to", "energy_wh": 5, "price": 0}, "bad_price"),
        ({"owner": prosumer, "kind": "buy_up_to", "energy_wh": 5, "price": True}, "bad_price"),
    ]
    for arguments, code in cases:
        with pytest.raises(RuleError) as refused:
            rules.rule_create(**arguments)
        assert refused.value.code == code
    rule = rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=0, price=5)
    with pytest.raises(RuleError):
        rules.rule_stop(owner=regulator, rule_id=rule.pk)
    rules.rule_stop(owner=prosumer, rule_id=rule.pk)
    assert rules.rules_of(user=prosumer) == []
    assert rules.rules_apply(owner=prosumer, latest=flow(0, 500)) == []


def test_a_household_sets_and_stops_a_rule_on_the_market_page(
    site: Site, prosumer: User, client: Any
) -> None:
    client.force_login(prosumer)
    response = client.post(
        "/market/rules/",
        {"kind": "sell_surplus", "energy_kwh": "0.3", "price_cents": "18"},
        follow=True,
    )
    assert "Standing rule set: sell my surplus above 0.3 kWh per slot at €0.18/kWh" in (
        response.content.decode()
    )
    [rule] = rules.rules_of(user=prosumer)
    assert (rule.kind, rule.energy_wh, rule.price) == ("sell_surplus", 300, 18)

    [tx] = rules.rules_apply(owner=prosumer, latest=flow(0, 1_300))
    commit_pending(site)
    page = client.get("/market/").content.decode()
    assert f'data-order="{tx.id}" data-rule="{rule.pk}"' in page
    assert (
        "by your rule “sell surplus above 0.3 kWh”: 1.3 kWh out and 0 kWh in over 15 min, x1 "
        "for the 15-min slot: 1.3 kWh surplus forecast; at no less than €0.18/kWh"
    ) in page

    bad = client.post(
        "/market/rules/", {"kind": "sell_surplus", "energy_kwh": "0.0001", "price_cents": "18"}
    )
    assert bad.status_code == 400
    assert "up to 3 decimals" in bad.content.decode()
    client.post(f"/market/rules/{rule.pk}/stop/")
    assert rules.rules_of(user=prosumer) == []


def test_the_forecast_is_the_reading_scaled_to_the_slot() -> None:
    # The case: a 1-minute reading of 350 Wh surplus, a 5-minute slot, 100 Wh kept.
    rule = StandingRule(kind="sell_surplus", energy_wh=100, price=20)
    minute = Flow(NOW, import_wh=50, export_wh=400, duration_s=60)
    expected = rules.forecast(minute, slot_s=300)
    assert (expected.intervals, expected.surplus_wh) == (5, 1_750)
    assert rules.wanted(rule, expected) == ("sell", 1_650)
    # A buying rule facing the same interval reversed, capped at its most.
    buyer = StandingRule(kind="buy_up_to", energy_wh=1_000, price=30)
    need = rules.forecast(Flow(NOW, import_wh=400, export_wh=50, duration_s=60), slot_s=300)
    assert rules.wanted(buyer, need) == ("buy", 1_000)
    # A reading as long as the slot is the slot.
    assert rules.forecast(minute, slot_s=60).surplus_wh == 350


def test_a_five_minute_meter_on_fifteen_minute_slots_orders_three_intervals_worth(
    site: Site, prosumer: User, client: Any
) -> None:
    rule = rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=100, price=20)
    pv = register(prosumer, "roof-pv", kind="pv", interval_s=300).meter
    store_readings(pv, (NOW, 0, 350))
    relay.batch_relay(ReadingBatch.objects.get())
    # 350 Wh in 5 minutes is 1,050 Wh over the 15-minute slot; 100 kept: 950 Wh offered.
    assert pending_orders() == [("sell", 950, 20)]
    commit_pending(site)
    [order] = Order.objects.all()
    client.force_login(prosumer)
    [row] = client.get("/api/v1/orders").json()["results"]
    assert row["made_by_rule"] == {
        "rule": rule.pk,
        "kind": "sell_surplus",
        "reading_start": "2026-01-01T00:00:00Z",
        "reading_s": 300,
        "reading_import_wh": 0,
        "reading_export_wh": 350,
        "forecast_wh": 1_050,
        "profile_days": 0,  # no history yet: the reading, scaled
        "threshold_wh": 100,
        "price": 20,
    }
    one = client.get(f"/api/v1/orders/{order.id}").json()
    assert one["made_by_rule"] == row["made_by_rule"]


def test_with_history_a_rule_forecasts_from_the_households_own_profile(
    site: Site, prosumer: User, client: Any
) -> None:
    """Readings of the same slot of the day on 3 of the last 7 days: their average (900 Wh out)
    is the forecast, not the latest reading (100 Wh, which alone would sell nothing)."""
    rule = rules.rule_create(owner=prosumer, kind="sell_surplus", energy_wh=100, price=20)
    pv = register(prosumer, "roof-pv", kind="pv", interval_s=900).meter
    slot = selectors.slot_list()[0].start
    store_readings(pv, (slot - timedelta(days=1), 0, 600), (slot - timedelta(days=2), 0, 900))
    # Two days are not history yet: the reading, scaled, decides (nothing to sell).
    assert rules.rules_apply(owner=prosumer, latest=flow(0, 100)) == []
    store_readings(pv, (slot - timedelta(days=4), 30, 1_230), (slot - timedelta(days=9), 0, 9_000))
    [tx] = rules.rules_apply(owner=prosumer, latest=flow(0, 100))
    assert pending_orders() == [("sell", 800, 20)]  # (600 + 900 + 1,200) / 3 = 900, 100 kept
    made = RuleOrder.objects.get(order_id=tx.id)
    assert (made.profile_days, made.forecast_wh) == (3, 900)
    assert "your own average for this slot of the day over your last 3 days" in rules.reason_text(
        made, slot_s=900
    )
    commit_pending(site)
    client.force_login(prosumer)
    [row] = client.get("/api/v1/orders").json()["results"]
    assert (row["made_by_rule"]["profile_days"], row["made_by_rule"]["forecast_wh"]) == (3, 900)
    assert made.rule == rule


def test_the_rule_form_previews_what_the_rule_would_have_done_over_the_last_day(
    site: Site, prosumer: User, client: Any
) -> None:
    pv = register(prosumer, "roof-pv", kind="pv", interval_s=300).meter
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0) - timedelta(hours=2)
    start -= timedelta(minutes=start.minute % 15)
    # 5-minute readings; the slot next open when a reading ends is the first whose gate
    # (5 minutes before it) is still ahead.
    store_readings(
        pv,
        (start, 0, 100),  # ends at :05, for the :15 slot: 300 Wh forecast, 200 Wh above 100
        (start + timedelta(minutes=5), 0, 500),  # ends at :10, for the :30 slot: 1,400 Wh
        (start + timedelta(minutes=10), 0, 900),  # ends at :15, for the :30 slot: taken
        (start + timedelta(minutes=15), 50, 80),  # 90 Wh forecast: below what is kept
        (start - timedelta(days=2), 0, 900),  # older than a day: not looked at
    )
    quarter = timedelta(minutes=15)
    orders = rules.rule_preview(
        owner=prosumer, kind="sell_surplus", energy_wh=100, price=20, now=now
    )
    assert [(o.slot, o.side, o.energy_wh, o.forecast_wh) for o in orders] == [
        (start + quarter, "sell", 200, 300),
        (start + 2 * quarter, "sell", 1_400, 1_500),
    ]
    assert not RuleOrder.objects.exists()
    assert not SubmittedTransaction.objects.exists()

    client.force_login(prosumer)
    page = client.get(
        "/market/rules/preview/",
        {"kind": "sell_surplus", "energy_kwh": "0.1", "price_cents": "20"},
    ).content.decode()
    assert "What this rule would have done over the last day" in page
    assert "2 orders, 1.6 kWh in all. Nothing was placed." in page
    assert 'value="0.1"' in page
    bad = client.get(
        "/market/rules/preview/", {"kind": "hoard", "energy_kwh": "1", "price_cents": "5"}
    )
    assert "Choose selling surplus or buying what you need." in bad.content.decode()
    assert not StandingRule.objects.exists()
