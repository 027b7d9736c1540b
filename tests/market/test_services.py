"""The site's market services: sign with the user's key, rehearse on the replica, submit; the
grid operator assigns feeders and clears slots past their gate. Real certified blocks follow."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gridplatform.accounts.models import User
from ledger.models import SubmittedTransaction
from ledger.projection import datetime_of_ms
from ledger.services import TransactionRejected
from market import services
from market.models import MarketAccount, Order
from tests.ledger.chains import HOUSEHOLDS, OPERATOR, build_chain, recent_start_ms
from tests.ledger.site import Site, commit_pending, give_issuer_key, use_network
from tests.market.test_read_models import GATE_MS, open_slot

pytestmark = pytest.mark.django_db
OTHER = HOUSEHOLDS[7]


def market_site(
    settings: Any, tmp_path: Path, grid_operator: User, prosumer: User, start_ms: int
) -> Site:
    give_issuer_key(grid_operator)
    chain = build_chain(1, 1, start_ms=start_ms)
    use_network(settings, tmp_path, chain)
    site = Site(chain)
    site.project_all()
    site.register(prosumer.identity.address, prosumer.identity.public_key, credits=50_000)
    site.register(OTHER.address, OTHER.public_key_hex, credits=50_000)
    return site


@pytest.fixture
def site(settings: Any, tmp_path: Path, grid_operator: User, prosumer: User) -> Site:
    return market_site(settings, tmp_path, grid_operator, prosumer, recent_start_ms())


@pytest.fixture
def hour_old_site(settings: Any, tmp_path: Path, grid_operator: User, prosumer: User) -> Site:
    """Its blocks are an hour old: slots traded then are past their gate now."""
    return market_site(settings, tmp_path, grid_operator, prosumer, recent_start_ms() - 3_600_000)


def test_the_operator_assigns_a_feeder_and_the_household_can_then_trade(
    site: Site, grid_operator: User, prosumer: User
) -> None:
    slot = datetime_of_ms(open_slot(site))
    with pytest.raises(TransactionRejected) as refused:
        services.order_place(user=prosumer, slot=slot, side="sell", energy_wh=1_000, price=20)
    assert refused.value.code == "no_feeder"  # rehearsed: known at once, nothing sent
    assert not SubmittedTransaction.objects.exists()

    services.feeder_assign(operator=grid_operator, household=prosumer, feeder="north-1")
    commit_pending(site)
    assert MarketAccount.objects.get(address=prosumer.identity.address).feeder == "north-1"

    tx = services.order_place(user=prosumer, slot=slot, side="sell", energy_wh=1_000, price=20)
    block = commit_pending(site)
    assert list(block.results) == ["ok"]
    assert Order.objects.get(id=tx.id).status == "open"


def test_only_the_grid_operator_assigns_feeders(
    site: Site, grid_operator: User, prosumer: User, regulator: User
) -> None:
    for who, household, code in (
        (prosumer, prosumer, "not_allowed"),
        (regulator, prosumer, "not_allowed"),
        (grid_operator, regulator, "not_household"),
    ):
        with pytest.raises(TransactionRejected) as refused:
            services.feeder_assign(operator=who, household=household, feeder="north-1")
        assert refused.value.code == code
    with pytest.raises(TransactionRejected) as refused:
        services.feeder_assign(operator=grid_operator, household=prosumer, feeder="No Such!")
    assert refused.value.code == "bad_feeder"
    assert not SubmittedTransaction.objects.exists()


def test_a_refused_order_says_why_with_the_validators_code_and_sends_nothing(
    site: Site, grid_operator: User, prosumer: User, regulator: User
) -> None:
    services.feeder_assign(operator=grid_operator, household=prosumer, feeder="north-1")
    commit_pending(site)
    slot = datetime_of_ms(open_slot(site))
    cases = [
        (
            {"slot": slot, "side": "buy", "energy_wh": 10**6, "price": 10**5},
            "insufficient_free_balance",
        ),
        ({"slot": slot, "side": "hold", "energy_wh": 1_000, "price": 20}, "bad_side"),
        (
            {"slot": slot + timedelta(minutes=1), "side": "buy", "energy_wh": 1, "price": 1},
            "slot_misaligned",
        ),
        ({"slot": slot, "side": "buy", "energy_wh": 1.5, "price": 20}, "bad_energy"),
        ({"slot": slot, "side": "buy", "energy_wh": 1_000, "price": True}, "bad_price"),
        (
            {"slot": slot.replace(tzinfo=None), "side": "buy", "energy_wh": 1, "price": 1},
            "bad_slot",
        ),
        (
            {"slot": slot + timedelta(days=3), "side": "buy", "energy_wh": 1, "price": 1},
            "beyond_horizon",
        ),
    ]
    for order, code in cases:
        with pytest.raises(TransactionRejected) as refused:
            services.order_place(user=prosumer, **order)
        assert refused.value.code == code, order
        assert refused.value.message
        assert refused.value.message != code
    with pytest.raises(TransactionRejected) as refused:
        services.order_place(user=regulator, slot=slot, side="buy", energy_wh=1, price=1)
    assert refused.value.code == "not_allowed"
    assert not SubmittedTransaction.objects.exists()


def test_a_household_cancels_only_its_own_open_orders(
    site: Site, grid_operator: User, prosumer: User, consumer: User
) -> None:
    slot = open_slot(site)
    theirs = site.sign(OTHER, "market.order.place", slot=slot, side="sell", energy_wh=5, price=9)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=OTHER.address, feeder="f")])
    site.commit([theirs])
    assert Order.objects.get(id=theirs.id).status == "open"
    for who in (prosumer, consumer):
        with pytest.raises(TransactionRejected) as refused:
            services.order_cancel(user=who, order_id=theirs.id)
        assert refused.value.code == "unknown_order"
    assert not SubmittedTransaction.objects.exists()


def test_the_operator_clears_slots_past_their_gate_once(
    hour_old_site: Site, grid_operator: User
) -> None:
    site = hour_old_site
    slot_ms = open_slot(site)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=OTHER.address, feeder="f")])
    order = site.sign(OTHER, "market.order.place", slot=slot_ms, side="sell", energy_wh=5, price=9)
    site.commit([order])
    slot = datetime_of_ms(slot_ms)
    before_gate = datetime_of_ms(slot_ms - GATE_MS - 1)
    after_gate = datetime_of_ms(slot_ms - GATE_MS + 1)
    assert services.slots_due_for_clearing(now=before_gate) == []
    assert services.slots_due_for_clearing(now=after_gate) == [slot]

    sent = services.slots_clear(operator=grid_operator, now=after_gate)
    assert [tx.type for tx in sent] == ["market.slot.clear"]
    assert services.slots_clear(operator=grid_operator, now=after_gate) == []  # pending already
    block = commit_pending(site, timestamp_ms=slot_ms - GATE_MS + 1)
    assert list(block.results) == ["ok"]
    assert Order.objects.get(id=order.id).status == "expired"
    assert services.slots_due_for_clearing(now=after_gate) == []


def test_offers_are_private_unless_made_to_anyone_and_ids_are_checked(
    site: Site, grid_operator: User, prosumer: User, consumer: User
) -> None:
    slot_ms = open_slot(site)
    site.commit([site.sign(OPERATOR, "grid.feeder.assign", address=OTHER.address, feeder="f")])
    to_someone = site.sign(
        OTHER, "market.offer.post", slot=slot_ms, energy_wh=5, price=9, buyer=HOUSEHOLDS[6].address
    )
    site.commit([to_someone])
    with pytest.raises(TransactionRejected) as refused:
        services.offer_accept(user=prosumer, offer_id=to_someone.id, energy_wh=5)
    assert refused.value.code == "unknown_offer"  # not "not_offered_to_you": it is not for you
    for garbage in ("x\x00", "A" * 64, "", 7):
        for call, code in (
            (lambda g: services.order_cancel(user=prosumer, order_id=g), "unknown_order"),
            (lambda g: services.offer_withdraw(user=prosumer, offer_id=g), "unknown_offer"),
            (
                lambda g: services.offer_accept(user=prosumer, offer_id=g, energy_wh=1),
                "unknown_offer",
            ),
        ):
            with pytest.raises(TransactionRejected) as refused:
                call(garbage)
            assert refused.value.code == code
    slot = datetime_of_ms(slot_ms)
    for buyer in (None, 7):
        with pytest.raises(TransactionRejected) as refused:
            services.offer_post(user=prosumer, slot=slot, energy_wh=5, price=9, buyer=buyer)  # type: ignore[arg-type]
        assert refused.value.code == "bad_address"  # never an offer to anyone by mistake
    assert not SubmittedTransaction.objects.exists()
