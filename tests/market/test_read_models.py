"""The market's read models, projected from real certified blocks of market transactions, and
rebuilt from the chain to exactly the same rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from gridplatform.accounts.models import User
from ledger import read_model_audit
from ledger.projection import datetime_of_ms
from market.chain import schema as market_schema
from market.chain.options import market_options
from market.models import (
    Contract,
    MarketAccount,
    Offer,
    Order,
    SettlementLine,
    SlotSettlement,
)
from tests.ledger.chains import HOUSEHOLDS, OPERATOR, REGULATOR
from tests.ledger.site import GATE_MS, Site, open_slot, order, trading_site
from tests.supervision import support as supervised

pytestmark = pytest.mark.django_db
SELLER, BUYER, OTHER = HOUSEHOLDS[5], HOUSEHOLDS[6], HOUSEHOLDS[7]


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    return trading_site(settings, tmp_path, (SELLER, BUYER, OTHER))


def dump() -> dict[str, list[dict[str, Any]]]:
    """Every market row, less the numbers the database gives rows (a rebuild numbers anew)."""

    def fields(row: Any) -> dict[str, Any]:
        numbered = row._meta.pk.get_internal_type() in ("AutoField", "BigAutoField")
        return {k: v for k, v in model_to_dict(row).items() if not (numbered and k == "id")}

    models = (Order, Offer, Contract, MarketAccount, SlotSettlement, SettlementLine)
    return {
        model.__name__: [fields(row) for row in model.objects.order_by(*model._meta.ordering)]
        for model in models
    }


def test_it_projects_orders_contracts_offers_and_margins_and_rebuilds_them_exactly(
    site: Site,
) -> None:
    slot = open_slot(site)
    sell = order(site, SELLER, "sell", 3_000, 20, slot)
    buy = order(site, BUYER, "buy", 2_000, 25, slot)
    block = site.commit([sell, buy])
    assert list(block.results) == ["ok", "ok"]

    seller_order, buyer_order = Order.objects.get(id=sell.id), Order.objects.get(id=buy.id)
    assert (seller_order.status, seller_order.remaining_wh, seller_order.filled_wh) == (
        "open",
        1_000,
        2_000,
    )
    assert seller_order.locked > 0
    assert (buyer_order.status, buyer_order.remaining_wh, buyer_order.locked) == ("filled", 0, 0)
    assert buyer_order.slot == datetime_of_ms(slot)
    contract = Contract.objects.get()
    assert (contract.seller, contract.buyer, contract.energy_wh, contract.price) == (
        SELLER.address,
        BUYER.address,
        2_000,
        20,  # the resting order's price
    )
    assert (contract.seller_tx, contract.buyer_tx, contract.tx) == (sell.id, buy.id, buy.id)
    assert MarketAccount.objects.get(address=BUYER.address).locked == contract.escrow
    assert MarketAccount.objects.get(address=SELLER.address).feeder == "feeder-1"

    cancel = site.sign(SELLER, "market.order.cancel", order=sell.id)
    offer = site.sign(
        OTHER, "market.offer.post", slot=slot, energy_wh=500, price=18, buyer=BUYER.address
    )
    expiring = order(site, OTHER, "sell", 700, 90, slot)
    site.commit([cancel, offer, expiring])
    assert Order.objects.get(id=sell.id).status == "cancelled"
    assert Order.objects.get(id=sell.id).remaining_wh == 1_000
    assert Offer.objects.get(id=offer.id).status == "open"

    accept = site.sign(BUYER, "market.offer.accept", offer=offer.id, energy_wh=500)
    site.commit([accept])
    taken = Offer.objects.get(id=offer.id)
    assert (taken.status, taken.remaining_wh) == ("taken", 0)
    assert Contract.objects.get(kind="offer").seller_tx == offer.id

    # After the gate closes, clearing the slot expires what is left.
    clear = site.sign(OPERATOR, "market.slot.clear", slot=slot)
    after_gate = max(site.blocks[-1].timestamp_ms + 5_000, slot - GATE_MS + 1)
    late = site.commit([clear], timestamp_ms=after_gate)
    assert list(late.results) == ["ok"]
    assert Order.objects.get(id=expiring.id).status == "expired"
    assert MarketAccount.objects.get(address=OTHER.address).locked > 0  # its contract's deposit

    # Settlement: the slot's contracts leave the state; their rows stay, from the events.
    options = market_options(site.state)
    due = slot + options.slot_ms + options.settlement_delay_ms
    settled = site.commit([site.sign(OPERATOR, "market.slot.settle", slot=slot)], timestamp_ms=due)
    assert list(settled.results) == ["ok"]
    assert site.state.get(market_schema.contracts_key(slot)) is None
    assert Contract.objects.count() == 2
    assert SlotSettlement.objects.get().contracts == 2
    assert SettlementLine.objects.count() == 2
    assert Contract.objects.get(kind="offer").settlement.delivered_wh == 0  # no meter data

    # `manage.py rebuild_read_models` from a validator's store gives exactly the same rows.
    live = dump()
    site.write_store()
    Order.objects.all().delete()  # the site's rows lost or damaged: the chain brings them back
    Contract.objects.update(price=0)
    MarketAccount.objects.create(address="stray", locked=7)
    out = io.StringIO()
    call_command("rebuild_read_models", node=0, stdout=out)
    assert f"blocks 0..{settled.height}" in out.getvalue()
    assert dump() == live


def test_an_open_orders_remainder_stays_when_a_regulator_curtails_its_contract(
    settings: Any,
    tmp_path: Path,
    grid_operator: User,
    regulator: User,
    prosumer: User,
    consumer: User,
) -> None:
    """A curtailment cuts a contract, not the orders that made it: on the chain the seller's
    resting order keeps the remainder it had; the read model must not give the cut energy
    back to it (found by the read-model audit)."""
    site = supervised.supervised_site(
        settings,
        tmp_path,
        grid_operator=grid_operator,
        regulator=regulator,
        households={prosumer: "f1", consumer: "f2"},
    )
    slot = supervised.slot_at(site, 4)
    sell = supervised.order(site, prosumer, "sell", 1_000, 100, slot)
    supervised.commit(site, [sell])
    supervised.commit(site, [supervised.order(site, consumer, "buy", 400, 100, slot)])
    made = Contract.objects.get(seller_tx=sell.id)
    cut = site.sign(
        REGULATOR, "supervision.contract.curtail", contract=made.id, energy_wh=100, reason="why"
    )
    supervised.commit(site, [cut])
    supervised.commit(
        site, [supervised.order(site, consumer, "buy", 300, 100, slot)]
    )  # touches the order again
    on_chain = site.state.get(market_schema.order_key(sell.id))
    assert on_chain["remaining_wh"] == 300
    assert Order.objects.get(id=sell.id).remaining_wh == 300
    assert read_model_audit.read_models_compare().differences == []
