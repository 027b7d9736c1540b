"""Supervision's selectors on projected chains: who may read what, the market's statistics and
the feeders' loading, and what stops a household's trading, in the validators' order (each
answer checked against what the validators then do with an order)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from gridplatform.accounts.models import User
from ledger.projection import datetime_of_ms
from market.models import Contract
from supervision import selectors
from supervision.selectors import SellerShare, TradingStop
from tests.ledger.chains import OPERATOR, REGULATOR
from tests.ledger.site import Site
from tests.supervision.support import (
    address,
    commit,
    order,
    slot_at,
    trade,
)

pytestmark = pytest.mark.django_db


def test_each_selector_serves_only_its_roles(
    site: Site, prosumer: User, grid_operator: User, regulator: User, admin: User
) -> None:
    refused = {
        selectors.review_queue: (prosumer, grid_operator),
        selectors.acts_touching: (grid_operator, regulator, admin),
        selectors.notifications: (grid_operator, regulator, admin),
        selectors.unread_count: (grid_operator, regulator, admin),
        selectors.slot_statistics: (prosumer,),
        selectors.feeder_loading: (prosumer,),
        selectors.alerts: (prosumer,),
    }
    for selector, users in refused.items():
        for user in users:
            with pytest.raises(PermissionDenied):
                selector(user=user)
    assert list(selectors.review_queue(user=admin)) == []
    assert selectors.acts(user=admin).count() == 2  # the two feeders published
    assert selectors.unread_count(user=prosumer) == 0


def test_statistics_leave_vetoed_contracts_out_and_flag_a_dominant_seller(
    site: Site, prosumer: User, consumer: User, outsider: User, regulator: User
) -> None:
    first, second, third = (slot_at(site, ahead) for ahead in (4, 5, 6))
    trade(site, prosumer, consumer, 1_000, 100, first)
    trade(site, prosumer, consumer, 600, 100, second)
    trade(site, outsider, consumer, 400, 120, second)
    vetoed = trade(site, prosumer, consumer, 300, 90, third)
    veto = {"contract": vetoed.id, "reason": "wash trade"}
    commit(site, [site.sign(REGULATOR, "supervision.contract.veto", **veto)])

    newest, oldest = selectors.slot_statistics(user=regulator)
    assert (newest.slot, newest.contracts, newest.volume_wh, newest.median_price) == (
        datetime_of_ms(second),
        2,
        1_000,
        110,
    )
    assert newest.shares == [
        SellerShare(address(prosumer), "Ada Seller", 600, 6_000),
        SellerShare(address(outsider), "Olga Outsider", 400, 4_000),
    ]
    assert newest.alert  # 60 % is more than 50 %
    assert (oldest.slot, oldest.volume_wh, oldest.alert) == (datetime_of_ms(first), 1_000, True)
    assert [s.slot for s in selectors.slot_statistics(user=regulator, limit=1)] == [newest.slot]

    loading = selectors.feeder_loading(user=regulator, limit_slots=1)
    assert [(row.feeder, row.slot) for row in loading] == [
        ("f1", datetime_of_ms(second)),
        ("f2", datetime_of_ms(second)),
    ]
    f1, f2 = loading
    assert (f1.export_wh, f1.export_capacity_wh, f1.export_pct, f1.alert) == (600, 2_000, 30, False)
    assert (f2.export_wh, f2.import_wh, f2.import_pct, f2.alert) == (400, 1_000, 66, False)


def test_alerts_leave_out_slots_that_have_ended_and_lapsed_suspensions(
    site: Site, prosumer: User, consumer: User, grid_operator: User
) -> None:
    # The blocks are an hour old: this slot, open for them, has ended by the site's clock, and
    # the suspension's end has passed.
    ended = trade(site, prosumer, consumer, 1_500, 100, slot_at(site, 0))
    lapsed_ms = site.blocks[-1].timestamp_ms + 600_000
    suspend = {"scope": "market", "reason": "audit", "until": lapsed_ms}
    commit(site, [site.sign(REGULATOR, "supervision.trading.suspend", **suspend)])
    assert selectors.suspensions_in_force().count() == 0
    assert selectors.trading_stop(address=address(prosumer)) is None
    assert selectors.alerts(user=grid_operator) == []

    # While the slot was on, its full feeder and its only seller were alerts.
    during = ended.slot + timedelta(minutes=1)
    assert [(a.kind, a.slot) for a in selectors.alerts(user=grid_operator, now=during)] == [
        ("feeder_load", ended.slot),
        ("seller_share", ended.slot),
    ]
    before = datetime_of_ms(lapsed_ms) - timedelta(minutes=1)
    suspended, *rest = selectors.alerts(user=grid_operator, now=before)
    assert (suspended.kind, suspended.text) == (
        "suspension",
        "Trading is suspended on the whole market: audit",
    )
    assert [a.kind for a in rest] == ["feeder_load", "seller_share"]  # the slot is to come


def stop(user: User) -> TradingStop | None:
    return selectors.trading_stop(address=address(user))


def refusal(site: Site, user: User) -> str:
    """What the validators answer to an order of ``user`` now."""
    tx = order(site, user, "buy", 100, 100, slot_at(site, 4))
    return site.commit([tx]).results[0]


def test_the_trading_stop_is_what_the_validators_refuse_first(site: Site, prosumer: User) -> None:
    assert stop(prosumer) is None
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (
            OPERATOR.address,
            "grid.state.declare",
            {"scope": "feeder:f1", "state": "high_load", "reason": "transformer hot"},
        ),
        (
            OPERATOR.address,
            "grid.state.declare",
            {"scope": "grid", "state": "unstable", "reason": "frequency"},
        ),
        (
            REGULATOR.address,
            "supervision.trading.suspend",
            {"scope": "feeder:f1", "reason": "storm", "until": 0},
        ),
        (
            REGULATOR.address,
            "supervision.account.restrict",
            {"address": address(prosumer), "reason": "tampering"},
        ),
        (
            REGULATOR.address,
            "supervision.trading.suspend",
            {"scope": "market", "reason": "audit", "until": 0},
        ),
    ]
    expected = [
        TradingStop("grid_high_load", "transformer hot", "feeder:f1", None),
        TradingStop("grid_unstable", "frequency", "grid", None),
        TradingStop("feeder_suspended", "storm", "feeder:f1", None),
        TradingStop("account_restricted", "tampering", "account", None),
        TradingStop("market_suspended", "audit", "market", None),
    ]
    for (who, type_, payload), answer in zip(steps, expected, strict=True):
        signer = OPERATOR if who == OPERATOR.address else REGULATOR
        commit(site, [site.sign(signer, type_, **payload)])
        assert stop(prosumer) == answer
        assert refusal(site, prosumer) == answer.code


def test_a_household_sees_the_acts_of_its_feeder_and_the_whole_market(
    site: Site, prosumer: User, consumer: User
) -> None:
    acts = [
        site.sign(REGULATOR, "supervision.trading.suspend", scope=s, reason="r", until=0)
        for s in ("feeder:f1", "feeder:f2", "market")
    ]
    commit(site, acts)
    assert {a.scope for a in selectors.acts_touching(user=prosumer)} == {"feeder:f1", "market"}
    assert {a.scope for a in selectors.acts_touching(user=consumer)} == {"feeder:f2", "market"}
    assert not Contract.objects.exists()
