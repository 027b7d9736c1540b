"""The read models of energy sellers, projected from real certified blocks: a grant, its new
limits, its end and a new one; an order a retailer placed for a household beside the market's
row of it; and a rebuild from a validator's store to exactly the same rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from ledger.projection import datetime_of_ms
from market.models import Order
from retail.models import Grant, RetailOrder
from tests.flexibility.support import ADA, BEN, CAT, SLOT_MS, History, commit, network, now_ms
from tests.ledger.site import Site

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(settings: Any, tmp_path: Path) -> Site:
    site = network(settings, tmp_path)
    History(site).households(ADA, BEN, CAT)
    return site


def grant(site: Site, **limits: int) -> Any:
    payload = {"max_energy_wh": 2_000, "max_price": 30, "min_price": 10} | limits
    return site.sign(ADA, "market.grant", retailer=BEN.address, **payload)


def test_it_projects_a_grant_its_change_its_end_and_a_new_one(site: Site) -> None:
    given = commit(site, [grant(site)])
    row = Grant.objects.get()
    assert (row.household, row.retailer, row.carrier) == (ADA.address, BEN.address, "electricity")
    assert (row.max_energy_wh, row.max_price, row.min_price) == (2_000, 30, 10)
    assert (row.height, row.granted_at, row.active) == (
        given.height,
        datetime_of_ms(given.timestamp_ms),
        True,
    )

    changed = commit(site, [grant(site, max_energy_wh=500)])
    row.refresh_from_db()
    assert (row.max_energy_wh, row.height) == (500, changed.height)

    revoked = commit(site, [site.sign(ADA, "market.grant.revoke", retailer=BEN.address)])
    row.refresh_from_db()
    assert (row.active, row.revoked_height) == (False, revoked.height)
    assert row.revoked_at == datetime_of_ms(revoked.timestamp_ms)

    commit(site, [grant(site)])
    row.refresh_from_db()
    assert (row.active, row.revoked_at, row.max_energy_wh) == (True, None, 2_000)
    assert Grant.objects.count() == 1


def test_it_projects_the_orders_a_retailer_placed_and_rebuilds_them(site: Site) -> None:
    commit(site, [grant(site)])
    slot = (now_ms() + 300_000) // SLOT_MS * SLOT_MS + 2 * SLOT_MS
    for_ada = site.sign(
        BEN,
        "market.order.place",
        slot=slot,
        side="buy",
        energy_wh=1_000,
        price=25,
        **{"for": ADA.address},
    )
    own = site.sign(CAT, "market.order.place", slot=slot, side="buy", energy_wh=1_000, price=25)
    commit(site, [for_ada, own])
    (placed,) = RetailOrder.objects.all()
    assert model_to_dict(placed) == {
        "order": for_ada.id,
        "placed_by": BEN.address,
        "household": ADA.address,
        "carrier": "electricity",
    }
    assert Order.objects.get(id=for_ada.id).owner == ADA.address  # the household's order

    live = [model_to_dict(row) for row in RetailOrder.objects.all()]
    grants = [model_to_dict(row, exclude=["id"]) for row in Grant.objects.all()]
    site.write_store()
    RetailOrder.objects.all().delete()
    Grant.objects.update(max_price=0)
    call_command("rebuild_read_models", node=0, stdout=io.StringIO())
    assert [model_to_dict(row) for row in RetailOrder.objects.all()] == live
    assert [model_to_dict(row, exclude=["id"]) for row in Grant.objects.all()] == grants
